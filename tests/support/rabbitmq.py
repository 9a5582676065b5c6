"""RabbitMQ for tests: the shared server on the machine (127.0.0.1:5672, guest/guest), each test
with its own names (a namespace every queue and exchange starts with), deleted afterwards.

``disposable_broker()`` builds an :class:`AmqpBroker` in a fresh namespace and remembers it;
``delete_names(broker)`` deletes every queue and exchange it ever declared, and whatever is
still remembered is deleted when the test process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import uuid
import weakref
from typing import Any

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.amqp_link import AmqpOptions

URL = os.environ.get("CELERIAC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
VHOST = "celeriac-test"  # the worker tests' vhost: a test may close every connection there
HINT = "RabbitMQ is not running on 127.0.0.1:5672: apt-get install rabbitmq-server, then start it"

_brokers: weakref.WeakSet[AmqpBroker] = weakref.WeakSet()
_names: set[tuple[str, str]] = set()  # ("queue" or "exchange", name) of brokers collected


def require_rabbitmq() -> None:
    """Fail with a hint when no RabbitMQ listens (the tests never skip)."""
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError as exc:
        raise RuntimeError(HINT) from exc


def namespace() -> str:
    """A prefix no other test uses."""
    return f"celeriac-test-{uuid.uuid4().hex[:12]}."


def disposable_broker(clock: Any = None, **options: Any) -> AmqpBroker:
    """A broker in a namespace of its own; its names are deleted by :func:`delete_names`."""
    settings = AmqpOptions.from_settings({"namespace": namespace(), **options})
    broker = AmqpBroker(URL, settings, publish_timeout=10.0, clock=clock)
    _brokers.add(broker)
    weakref.finalize(broker, _names.update, broker.link.history)
    return broker


def delete_names(broker: AmqpBroker) -> None:
    """Close ``broker`` and delete every queue and exchange it declared."""
    broker.close()
    delete(set(broker.link.history))
    broker.link.history.clear()


def delete(names: set[tuple[str, str]], vhost: str = "/") -> None:
    """Delete these queues and exchanges (those already gone are skipped)."""
    if not names:
        return
    from celeriac.brokers.amqp_link import amqp

    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", virtual_host=vhost)
    conn.connect()
    try:
        channel = conn.channel()
        for kind, name in sorted(names):
            if not channel.is_open:
                channel = conn.channel()
            with contextlib.suppress(Exception):
                if kind == "queue":
                    channel.queue_delete(name)
                else:
                    channel.exchange_delete(name)
    finally:
        conn.close()


def delete_namespace(vhost: str, prefix: str) -> None:
    """Delete every queue and exchange of ``vhost`` whose name starts with ``prefix`` (those
    that worker processes declared too)."""
    import subprocess

    names: set[tuple[str, str]] = set()
    for kind, command in (("queue", "list_queues"), ("exchange", "list_exchanges")):
        listed = subprocess.run(
            ["rabbitmqctl", "-q", "--no-table-headers", command, "-p", vhost, "name"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        names.update((kind, name) for name in listed if name.startswith(prefix))
    delete(names, vhost)


@atexit.register
def _delete_the_rest() -> None:
    names = set(_names)
    for broker in list(_brokers):
        names.update(broker.link.history)
    with contextlib.suppress(Exception):
        delete(names)
