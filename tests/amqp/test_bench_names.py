"""The AMQP benchmark deletes what it declared: every name a celeriac broker declares in the
run's namespace is among those ``RunNames`` deletes, and none is left afterwards (on the
machine's RabbitMQ, vhost ``/``, as the benchmark runs)."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.amqp_link import AmqpOptions
from celeriac.message import Message
from support.rabbitmq import require_rabbitmq

ROOT = Path(__file__).resolve().parents[2]  # benchmarks/ is not installed: it lives beside src/
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.amqp_peers import DEFAULT_AMQP_URL, RunNames, listed  # noqa: E402


def test_a_run_leaves_no_queue_or_exchange_behind() -> None:
    require_rabbitmq()
    names = RunNames.new()
    broker = AmqpBroker(DEFAULT_AMQP_URL, AmqpOptions(namespace=names.prefix))
    try:
        body = b"[[],{}]"
        broker.publish_many([Message(id=uuid.uuid4().hex, task="t", body=body, queue="celeriac")])
        later = Message(
            id=uuid.uuid4().hex, task="t", body=body, queue="celeriac", eta=time.time() + 60
        )
        broker.publish_many([later])  # declares the delay chain
        broker.broadcast(b"x", ttl=60)  # declares the broadcast stream
        broker.queue_lengths(["celeriac"])
        declared = set(broker.link.history)
    finally:
        broker.close()
        names.delete(DEFAULT_AMQP_URL)
    assert declared, "the broker declared nothing"
    assert declared <= names.known()
    left = [name for _, name in listed(DEFAULT_AMQP_URL) if name.startswith(names.prefix)]
    assert left == []
