"""The AMQP broker's one connection to RabbitMQ, through py-amqp (``pip install 'celeriac[amqp]'``).

A :class:`Link` owns a connection and its three channels: ``work`` (fetches and acks; the
deliveries it holds are the leases), ``pub`` (publishes in confirm mode, declares) and ``log``
(the broadcast stream's consumer). py-amqp is not thread-safe, so every use goes through
``Link.lock``. When the connection fails it is dropped whole, and ``generation`` moves on: the
deliveries of the old one are RabbitMQ's again (it requeues them), so the broker forgets them.
A forked child never uses its parent's socket: it opens its own.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import select
import ssl
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from celeriac.exceptions import BrokerError, ConfigurationError, PublishError
from celeriac.urls import mask_url

try:
    # Imported by name: py-amqp ships no types, and mypy would take tests/amqp (which, like
    # tests/redis, has no __init__.py) for the package.
    amqp: Any = importlib.import_module("amqp")
    _errors: Any = importlib.import_module("amqp.exceptions")
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigurationError(
        "the amqp:// broker needs py-amqp: pip install 'celeriac[amqp]'"
    ) from exc

AMQPError: type[Exception] = _errors.AMQPError
ChannelError: type[Exception] = _errors.ChannelError

# What a dropped or refused connection raises, from the socket or from py-amqp.
FAILURES: tuple[type[BaseException], ...] = (OSError, AMQPError, EOFError)


@dataclass(frozen=True)
class AmqpOptions:
    """The broker's ``broker_transport_options`` that the AMQP broker reads.

    ``namespace`` prefixes every queue and exchange this broker declares (tests give each
    their own). ``consumer_timeout`` is the server's delivery acknowledgement timeout: a
    delivery held for half of it is renewed (see ``docs/design/amqp.md``).
    """

    queue_type: str = "classic"  # or "quorum"
    max_priority: int = 9
    consumer_timeout: float = 1800.0
    namespace: str = ""
    heartbeat: float = 60.0
    connect_timeout: float = 5.0
    broadcast_retention: float = 86400.0
    scan_limit: int = 10_000  # dead letters and delayed messages read by one scan
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @classmethod
    def from_settings(cls, options: Mapping[str, Any] | None) -> AmqpOptions:
        """The options found in ``broker_transport_options`` (others are ignored).

        Raises:
            ConfigurationError: an option has a value of the wrong kind.
        """
        names = set(cls.__dataclass_fields__)
        picked = {k: v for k, v in (options or {}).items() if k in names}
        try:
            built = cls(**picked)
        except TypeError as exc:
            raise ConfigurationError(f"bad AMQP broker option: {exc}") from None
        if built.queue_type not in ("classic", "quorum"):
            raise ConfigurationError("queue_type must be 'classic' or 'quorum'")
        if built.consumer_timeout <= 0 or not 0 <= built.max_priority <= 255:
            raise ConfigurationError("consumer_timeout must be > 0, max_priority 0..255")
        return built


@dataclass(frozen=True)
class Address:
    """Where RabbitMQ is, from an ``amqp://user:password@host:port/vhost`` URL."""

    host: str
    port: int
    userid: str
    password: str
    vhost: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Address:
        """Read the URL; ``amqp://host//`` and ``amqp://host/`` both name the vhost ``/``.

        Raises:
            ValueError: the URL is malformed.
        """
        parts = urlsplit(url)
        tls = parts.scheme.lower() == "amqps"
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (5671 if tls else 5672),
            userid=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            vhost=unquote(path) or "/",
            tls=tls,
        )


def _tls_context(options: AmqpOptions) -> ssl.SSLContext:
    """Certificates and the host name are checked: a default context, plus our CA and key."""
    context = ssl.create_default_context(cafile=options.ssl_ca_certs)
    if options.ssl_certfile:
        context.load_cert_chain(options.ssl_certfile, options.ssl_keyfile)
    return context


class Link:
    """One connection to RabbitMQ and its channels; see the module docstring."""

    def __init__(self, url: str, options: AmqpOptions) -> None:
        self.address = Address.parse(url)
        self.url = mask_url(url)
        self.options = options
        self.lock = threading.RLock()
        self.generation = 0
        self.declared: set[str] = set()  # queue and exchange names declared on this connection
        # Every (kind, name) ever declared, kind "queue" or "exchange": a level of the delay
        # chain is an exchange and a queue of the same name.
        self.history: set[tuple[str, str]] = set()
        self._conn: Any = None
        self._pid = os.getpid()
        self._channels: dict[str, Any] = {}
        self._confirm = _Confirms()
        self.on_reset: list[Callable[[], None]] = []
        # A child forked while another thread held the lock would wait on it for ever.
        link = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(link()))

    # -- the connection ---------------------------------------------------------------------------
    def connection(self, timeout: float | None = None) -> Any:
        """The open connection, opened now if need be (within ``timeout`` seconds).

        Raises:
            OSError, AMQPError: RabbitMQ cannot be reached or refused the login.
        """
        if self._pid != os.getpid():  # a forked child: the socket is the parent's
            self._conn, self._pid = None, os.getpid()
            self._forget()
        if self._conn is None:
            a, o = self.address, self.options
            wait = o.connect_timeout if timeout is None else max(0.05, min(timeout, 30.0))
            conn = amqp.Connection(
                f"{a.host}:{a.port}",
                userid=a.userid,
                password=a.password,
                virtual_host=a.vhost,
                ssl=_tls_context(o) if a.tls else False,
                heartbeat=o.heartbeat,
                connect_timeout=wait,
                client_properties={"connection_name": f"celeriac {os.getpid()}"},
            )
            conn.connect()
            self._conn = conn
        return self._conn

    def channel(self, name: str, timeout: float | None = None) -> Any:
        """The channel ``name`` (work, pub or log), opened now if need be.

        Raises:
            OSError, AMQPError: RabbitMQ cannot be reached.
        """
        channel = self._channels.get(name)
        if channel is not None and channel.is_open:
            return channel
        if channel is not None and name == "work":
            self.reset()  # the leases of a closed work channel are gone: start again
        conn = self.connection(timeout)
        channel = conn.channel()
        if name == "pub":
            channel.confirm_select()
            self._confirm.watch(channel)
        self._channels[name] = channel
        return channel

    def reset(self) -> None:
        """Drop the connection (RabbitMQ requeues what it delivered on it); the next use
        opens a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*FAILURES):
                conn.collect()  # close the socket without a handshake that could hang
        self._forget()

    def _forget(self) -> None:
        self._channels.clear()
        self.declared.clear()
        self._confirm = _Confirms()
        self.generation += 1
        for callback in self.on_reset:
            callback()

    def close(self) -> None:
        """Close the connection politely (or drop it if that fails)."""
        with self.lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                try:
                    conn.close()
                except FAILURES:
                    with contextlib.suppress(*FAILURES):
                        conn.collect()
            self._forget()

    @contextlib.contextmanager
    def errors(self, what: str, error: type[BrokerError] = BrokerError) -> Iterator[None]:
        """Hold the lock; turn a failure into ``error`` and drop the connection.

        Raises:
            BrokerError: (or ``error``) RabbitMQ could not be reached or refused the call.
        """
        with self.lock:
            try:
                yield
            except FAILURES as exc:
                self._on_failure(exc)
                raise error(f"{what}: RabbitMQ at {self.url}: {type(exc).__name__}: {exc}") from exc

    def _on_failure(self, exc: BaseException) -> None:
        if isinstance(exc, ChannelError) and self._conn is not None:
            # A channel error closes only that channel; the work channel's loss is a reset.
            for name, channel in list(self._channels.items()):
                if not channel.is_open:
                    if name == "work":
                        self.reset()
                        return
                    del self._channels[name]
            return
        self.reset()

    def drain(self, timeout: float) -> bool:
        """Handle what RabbitMQ sent, waiting up to ``timeout`` seconds; False if nothing came.

        Raises:
            OSError, AMQPError: the connection failed.
        """
        conn = self.connection()
        try:
            conn.drain_events(timeout=max(timeout, 0.0001))
        except TimeoutError:
            conn.heartbeat_tick()
            return False
        return True

    def wait_readable(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds, *without* the lock, until RabbitMQ has sent
        something: a waiting fetch holds the lock only to read what came, so the thread that
        acks and publishes never waits a slice for it. (py-amqp reads a frame's bytes exactly,
        so nothing it has read waits unseen in its buffer; TLS may hold decrypted bytes back,
        hence ``pending``.)"""
        conn = self._conn
        sock = getattr(getattr(conn, "transport", None), "sock", None)
        if sock is None:
            time.sleep(timeout)  # not connected: the next drain connects or fails
            return
        with contextlib.suppress(OSError, ValueError):  # closed by a reset meanwhile
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return
            select.select([sock], [], [], max(timeout, 0.0))

    def tick(self) -> None:
        """Read what RabbitMQ sent (its heartbeats among it), then send a heartbeat if one is
        due: py-amqp has no thread of its own, and a connection that reads nothing for two
        heartbeat intervals is taken for dead (a worker busy with one long task, say).

        Raises:
            OSError, AMQPError: the connection failed.
        """
        for _ in range(100):
            if not self.drain(0):
                break

    # -- declaring and publishing ---------------------------------------------------------------
    def declare_queue(self, name: str, arguments: Mapping[str, Any]) -> None:
        """Declare a durable queue once per connection.

        Raises:
            OSError, AMQPError: RabbitMQ refused it (for example other arguments than before).
        """
        if name not in self.declared:
            self.channel("pub").queue_declare(
                name, durable=True, auto_delete=False, arguments=dict(arguments)
            )
            self.declared.add(name)
            self.history.add(("queue", name))

    def declare_exchange(self, name: str) -> None:
        """Declare a durable topic exchange once per connection.

        Raises:
            OSError, AMQPError: RabbitMQ refused it.
        """
        if f"exchange:{name}" not in self.declared:
            self.channel("pub").exchange_declare(name, "topic", durable=True, auto_delete=False)
            self.declared.add(f"exchange:{name}")
            self.history.add(("exchange", name))

    def publish(
        self, items: Sequence[tuple[str, str, Any]], deadline: float, *, nack_ok: bool = False
    ) -> bool:
        """Publish ``(exchange, routing key, amqp.Message)`` items as mandatory, and wait until
        RabbitMQ confirms all of them (it has stored them), until ``deadline`` (monotonic).
        False when RabbitMQ refused one (a nack) and ``nack_ok``.

        Raises:
            PublishError: RabbitMQ refused (nack) or could not route one, or did not confirm
                in time.
            OSError, AMQPError: the connection failed.
        """
        channel = self.channel("pub", deadline - time.monotonic())
        confirm = self._confirm
        confirm.returned = confirm.nacked = False
        for exchange, key, message in items:
            confirm.sent += 1
            confirm.pending.add(confirm.sent)
            channel.basic_publish(message, exchange=exchange, routing_key=key, mandatory=True)
        while confirm.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.reset()  # a late confirm must not be read as the next publish's
                raise PublishError(f"RabbitMQ at {self.url} did not confirm in time")
            self.drain(min(remaining, 1.0))
        if confirm.returned:
            raise PublishError(f"RabbitMQ at {self.url} could not route a message")
        if confirm.nacked and not nack_ok:
            raise PublishError(f"RabbitMQ at {self.url} refused a message (nack)")
        return not confirm.nacked


def _after_fork(link: Link | None) -> None:
    """In a forked child: a lock of its own, and the parent's socket left alone."""
    if link is not None:
        link.lock = threading.RLock()
        link._conn, link._pid = None, os.getpid()
        link._forget()


class _Confirms:
    """The publisher confirms of the pub channel: which sequence numbers are unconfirmed."""

    def __init__(self) -> None:
        self.sent = 0
        self.pending: set[int] = set()
        self.nacked = False
        self.returned = False

    def watch(self, channel: Any) -> None:
        channel.events["basic_ack"].add(self._ack)
        channel.events["basic_nack"].add(self._nack)
        channel.events["basic_return"].add(self._return)

    def _settle(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self.pending = {n for n in self.pending if n > delivery_tag}
        else:
            self.pending.discard(delivery_tag)

    def _ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked = True
        self._settle(delivery_tag, multiple)

    def _return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self.returned = True


def new_id() -> str:
    """A message tag or instance name."""
    return uuid.uuid4().hex
