"""What applying a workflow writes: backend documents and broker messages, and how they are sent.

Every canvas type turns itself into a ``Plan`` (see ``Signature._plan``): the documents to store
(a chord's record, a saved group) and the messages to publish. The client publishes a plan at
once; the worker publishes the plans of follow-ups inside the batch that records the outcome
that caused them; a fan-in step (a chord's body, a DAG node) is published with
``Broker.publish_once`` so that it is enqueued once even when the step that publishes it runs
twice. The backend keys of workflow state are named here (a saved group's in ``result``).

``message.workflow`` (the part of a message that says what comes after it) holds:

===============  =====================================================================
``chain``        the steps after this one (signature dicts, next first)
``link``         callbacks, each applied with this task's result
``link_error``   errbacks, each applied with this task's id (see ``canvas.calls``)
``chord``        ``{"id", "size"}``: this task ends a member of that chord's header
``dag``          ``{"run", "node", "attempt"}``: this task ends that node of a DAG run
``errback``      a marker: this call is an errback (the failed task's request and error)
``xmap``         a marker: ``"map"`` or ``"starmap"`` the task over the first argument
``dag_failed``   a marker: which parents' values are failures to rebuild as exceptions
===============  =====================================================================

``chord`` and ``dag`` are *carried*: the worker passes them on to the next step of a chain, so
that the last step of a chain reports for the whole chain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import ConfigurationError
from celeriac.message import Message
from celeriac.request import current_request, note_children, sender_lineage
from celeriac.sending import SEND_OPTIONS

if TYPE_CHECKING:
    from celeriac.app import Celeriac

CARRIED = ("chord", "dag")
DEFAULT_ONCE_TTL = 86400.0
# Options a container (chain, group, chord) hands down to the tasks it holds; the others
# (ids, links, countdown and eta) are about the container itself or the tasks sent first.
NOT_INHERITED = frozenset(
    {"task_id", "group_id", "link", "link_error", "countdown", "eta", "workflow"}
)
IMMEDIATE = ("countdown", "eta")


# -- backend and broker keys ------------------------------------------------------------------
def chord_key(chord_id: str) -> str:
    """The chord's document: body, member ids, size, what it reports to."""
    return f"chord:{chord_id}"


def chord_done_key(chord_id: str) -> str:
    """The set of header members that succeeded."""
    return f"chord:{chord_id}:done"


def chord_body_key(chord_id: str) -> str:
    """The ``publish_once`` key of the chord's body."""
    return f"chord:{chord_id}:body"


def dag_key(run_id: str) -> str:
    """A DAG run's document: nodes, edges, task ids per attempt."""
    return f"dag:{run_id}"


def dag_parents_key(run_id: str, node: str, attempt: int) -> str:
    """The set of a node's parents that finished, for one attempt of the node."""
    return f"dag:{run_id}:{node}:{attempt}:parents"


def dag_publish_key(run_id: str, node: str, attempt: int) -> str:
    """The ``publish_once`` key of one attempt of a node."""
    return f"dag:{run_id}:{node}:{attempt}"


def dag_runs_key(generation: int) -> str:
    """One generation of the index of recent DAG runs (``canvas.dag_index``): a set of
    ``"<created>:<run id>"``."""
    return f"dag-runs:{generation}"


def dag_runs_pointer_key() -> str:
    """The document that says which generation of the DAG run index is being filled."""
    return "dag-runs"


# -- plans ---------------------------------------------------------------------------------------
@dataclass
class Plan:
    """Documents to store, then messages to publish."""

    documents: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    def extend(self, other: Plan) -> Plan:
        """Add another plan's documents and messages to this one; returns self."""
        self.documents.extend(other.documents)
        self.messages.extend(other.messages)
        return self


@dataclass(frozen=True)
class Context:
    """Where a plan is made: the app, the lineage, and what the tasks it sends must carry.

    ``carry`` goes to the task that ends the canvas (and along a chain to it); ``extra`` goes
    into the workflow of the first message(s) only; ``immediate`` holds options (countdown,
    eta) for the messages sent now, not for later steps.
    """

    app: Celeriac
    carry: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    immediate: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None

    def but(self, **changes: Any) -> Context:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def message(
        self, name: str, args: Iterable[Any], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Message:
        """The message of one task call in this context.

        Raises:
            ConfigurationError: an unknown option, or a bad priority or time.
            TypeError: the arguments do not serialize.
            MessageTooLarge: the message is over ``message_max_bytes``.
        """
        merged = self.send_options(name, options)
        task = self.app.tasks.get(name)
        return self.app.sender.message(
            name,
            tuple(args),
            dict(kwargs),
            merged,
            task_defaults=task.message_defaults() if task is not None else {},
            lineage=sender_lineage(current_request()),
        )

    def send_options(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        """The send options of a call of ``name`` in this context: its own, with what the
        context adds (the immediate options under them, the carried workflow and the lineage
        over them).

        Raises:
            ConfigurationError: an unknown option.
        """
        merged = {**self.immediate, **options}
        unknown = sorted(set(merged) - SEND_OPTIONS)
        if unknown:
            raise ConfigurationError(f"{name}: unknown option(s): {', '.join(unknown)}")
        merged["workflow"] = {**(merged.get("workflow") or {}), **self.extra, **self.carry}
        if self.carry:
            merged["ignore_result"] = False  # a chord or a DAG reads this result
        for key in ("parent_id", "root_id", "group_id"):
            value = getattr(self, key)
            if value is not None:
                merged[key] = value
        return merged


def expiry(app: Celeriac) -> float | None:
    """How long workflow documents and sets live: as long as results."""
    return app.conf.seconds("result_expires")


def once_ttl(app: Celeriac) -> float:
    """How long a ``publish_once`` key is kept: as long as results (a day when they never
    expire), which is far longer than any redelivery of the step that publishes."""
    return expiry(app) or DEFAULT_ONCE_TTL


def publish(app: Celeriac, plan: Plan) -> None:
    """Store the plan's documents, then publish its messages in one round trip.

    Raises:
        BackendError: a document was not stored.
        PublishError: the messages were not enqueued.
    """
    for key, document in plan.documents:
        app.backend.put_document(key, document, expires=expiry(app))
    if plan.messages:
        app.sender.publish(plan.messages)
        note_children(m.id for m in plan.messages)


def publish_once(app: Celeriac, plan: Plan, key: str) -> None:
    """Like :func:`publish`, but each message is enqueued once under ``key`` (``key:<n>`` for
    the n-th of several), however many times this is called.

    Documents are stored again each time, which changes nothing: they are the same.

    Raises:
        BackendError: a document was not stored.
        PublishError: a message was not enqueued.
    """
    for name, document in plan.documents:
        app.backend.put_document(name, document, expires=expiry(app))
    ttl = once_ttl(app)
    single = len(plan.messages) == 1
    for index, message in enumerate(plan.messages):
        app.sender.publish_once(message, key if single else f"{key}:{index}", ttl=ttl)
