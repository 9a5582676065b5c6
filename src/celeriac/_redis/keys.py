"""Every Redis key name celeriac uses, in one place (the layout is in ``docs/design/redis.md``).

All keys start with ``<global_keyprefix>celeriac:``, so several apps can share one Redis by
giving each its own ``broker_transport_options = {'global_keyprefix': 'app1:'}``, and
``redis-cli --scan --pattern '*celeriac:*'`` finds everything celeriac stored.
"""

from __future__ import annotations

NAMESPACE = "celeriac:"


def glob_escape(text: str) -> str:
    """``text`` with the glob characters of ``SCAN MATCH`` escaped (for a pattern that finds
    the keys starting with ``text``: ``glob_escape(prefix) + "*"``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class BrokerKeys:
    """Key names of the Redis broker.

    Every message lives in one hash, ``messages``, under two fields named after its tag (a
    number from ``seq``): ``<tag>`` holds the message bytes and ``<tag>:s`` its state,
    ``<priority>:<attempt>``, followed by ``:<token>`` while the message is leased. So a batch
    of messages is read, or deleted, with one command. Each queue has three keys: ``ready``,
    a sorted set of the tags that may be fetched, by hand-out rank; ``pending``, a sorted set
    of the tags that wait for a time (a delayed message's ETA, a leased one's deadline); and
    ``wake``, a list that a waiting fetch blocks on.
    """

    def __init__(self, prefix: str = "") -> None:
        base = prefix + NAMESPACE
        self.base = base
        self.seq = base + "seq"  # string: the last tag handed out
        # hash: "<tag>" -> message bytes, "<tag>:s" -> "<priority>:<attempt>[:<lease token>]"
        self.messages = base + "messages"
        self.dead = base + "dead"  # list, newest first: dead letters
        self.broadcasts = base + "broadcasts"  # stream: control messages with their expiry
        self.broadcasts_last = base + "broadcasts:last"  # string: the newest broadcast's id

    def ready(self, queue: str) -> str:
        """Sorted set: the tags of a queue's messages that may be fetched, by rank
        ((9 - priority) * 1e14 + tag: priority 9 first, then oldest first)."""
        return f"{self.base}ready:{queue}"

    def pending(self, queue: str) -> str:
        """Sorted set: the tags of a queue's delayed messages (by ETA) and leased messages
        (by lease deadline)."""
        return f"{self.base}pending:{queue}"

    def wake(self, queue: str) -> str:
        """List: holds one element while a waiting fetch of this queue may find work."""
        return f"{self.base}wake:{queue}"

    def queue_keys(self, queue: str) -> list[str]:
        """The three keys of one queue, in the order every script takes them."""
        return [self.ready(queue), self.pending(queue), self.wake(queue)]

    def once(self, key: str) -> str:
        """String: present while a ``publish_once`` key is remembered."""
        return f"{self.base}once:{key}"


class BackendKeys:
    """Key names of the Redis result backend.

    Every value starts with a line holding its expiry time (empty: never), so that expiry can
    be checked against the backend's clock as well as left to Redis's TTL.
    """

    def __init__(self, prefix: str = "") -> None:
        self.base = prefix + NAMESPACE
        self.result_prefix = self.base + "result:"
        self.waiting_prefix = self.base + "waiting:"
        self.reply_prefix = self.base + "reply:"
        self.set_prefix = self.base + "set:"
        self.set_expiry_prefix = self.base + "setx:"
        self.document_prefix = self.base + "doc:"

    def result(self, task_id: str) -> str:
        """String: one task's record."""
        return self.result_prefix + task_id

    def waiting(self, task_id: str) -> str:
        """Set: one member per client waiting for the task's final state."""
        return self.waiting_prefix + task_id

    def reply(self, task_id: str) -> str:
        """List: the final record, pushed once for each waiting client."""
        return self.reply_prefix + task_id

    def set(self, key: str) -> str:
        """Set: the members of a workflow set."""
        return self.set_prefix + key

    def set_expiry(self, key: str) -> str:
        """String: when the workflow set ``key`` expires."""
        return self.set_expiry_prefix + key

    def document(self, key: str) -> str:
        """String: a workflow document (expiry line, then JSON)."""
        return self.document_prefix + key
