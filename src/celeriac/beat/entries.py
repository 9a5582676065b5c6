"""Schedule entries: what ``beat_schedule`` says, checked, and the message one fire becomes.

An entry calls one task (a name, or a plain signature), or starts a workflow (a chain, group,
chord, DAG: anything with ``apply_async`` and ``to_dict``). A task call fires as its own message.
A workflow fires as one message of the built-in task ``celeriac.apply_scheduled``, carrying the
workflow's ``to_dict()``; the worker that runs it starts the workflow. Either way one fire is one
message, which is what lets ``publish_once`` send each fire exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from celeriac.app import Celeriac
from celeriac.canvas import Signature
from celeriac.config import to_seconds
from celeriac.exceptions import ConfigurationError
from celeriac.message import Message
from celeriac.periodic import APPLY_SCHEDULED
from celeriac.schedules import Schedule, as_schedule, schedule_from_dict
from celeriac.sending import SEND_OPTIONS

SKIP, RUN_ONCE = "skip", "run_once"
MISSED_POLICIES = (SKIP, RUN_ONCE)
ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative", "missed"})
# Beat decides when a fire is sent and what its id is; the rest of send_task's options apply.
ENTRY_OPTIONS = SEND_OPTIONS - {"countdown", "eta", "task_id", "add_to_parent"}
_LINK_OPTIONS = ("link", "link_error")


@dataclass(frozen=True)
class Entry:
    """One checked schedule entry.

    ``task`` is the task a fire calls: the entry's own, or ``celeriac.apply_scheduled`` when
    the entry starts ``workflow``: a workflow's ``to_dict()``, or, for one without a dict form
    (a DAG), the entry's own name, by which a worker finds it in its app's ``beat_schedule``.
    ``runtime`` entries were added while beat runs and live in the backend; the others come
    from the app's code.
    """

    name: str
    schedule: Schedule
    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    workflow: dict[str, Any] | str | None = None
    missed: str = SKIP
    runtime: bool = False

    def describe(self) -> str:
        """What a fire runs, for people: ``tasks.report(7)`` or ``workflow celery.chain``."""
        if isinstance(self.workflow, str):
            return "workflow (defined in code)"
        if self.workflow is not None:
            return f"workflow {self.workflow.get('task') or self.workflow.get('subtask_type')}"
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}({', '.join(parts)})"

    def to_document(self) -> dict[str, Any]:
        """The JSON-ready form in which a run-time entry is stored.

        Raises:
            ConfigurationError: the arguments or options are not JSON.
        """
        document = {
            "schedule": self.schedule.to_dict(),
            "task": self.task,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "options": self.options,
            "workflow": self.workflow,
            "missed": self.missed,
        }
        try:
            json.dumps(document)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"schedule entry {self.name!r} is not JSON: {exc}") from exc
        return document

    @classmethod
    def from_document(cls, name: str, document: Mapping[str, Any]) -> Entry:
        """Rebuild a run-time entry stored by :meth:`to_document`.

        Raises:
            ConfigurationError: the document does not describe an entry.
        """
        try:
            return cls(
                name=name,
                schedule=schedule_from_dict(document["schedule"]),
                task=str(document["task"]),
                args=tuple(document.get("args") or ()),
                kwargs=dict(document.get("kwargs") or {}),
                options=_checked_options(name, document.get("options")),
                workflow=document.get("workflow"),
                missed=_checked_missed(name, document.get("missed", SKIP)),
                runtime=True,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"stored schedule entry {name!r} is damaged: {exc}") from exc


def parse_entry(
    name: str, spec: Mapping[str, Any], *, default_missed: str = SKIP, runtime: bool = False
) -> Entry:
    """Check one ``beat_schedule`` entry (Celery's dict form, plus ``missed``).

    Raises:
        ConfigurationError: naming the entry and what is wrong with it.
    """
    where = f"beat_schedule[{name!r}]"
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"{where} must be a dict, not {spec!r}")
    unknown = sorted(set(spec) - ENTRY_KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {', '.join(unknown)}")
    for required in ("task", "schedule"):
        if required not in spec:
            raise ConfigurationError(f"{where} has no {required!r}")
    entry = Entry(
        name=name,
        schedule=as_schedule(spec["schedule"], bool(spec.get("relative", False)), what=where),
        task="",
        options=_checked_options(name, spec.get("options")),
        missed=_checked_missed(name, spec.get("missed", default_missed)),
        runtime=runtime,
    )
    args, kwargs = tuple(spec.get("args") or ()), dict(spec.get("kwargs") or {})
    return _with_target(entry, spec["task"], args, kwargs)


def _with_target(
    entry: Entry, target: object, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Entry:
    where = f"beat_schedule[{entry.name!r}]"
    if isinstance(target, str):
        return replace(entry, task=target, args=args, kwargs=kwargs)
    if isinstance(target, Signature) and _is_task_call(target):
        call = target.clone(args, kwargs)
        options = _checked_options(entry.name, {**call.options, **entry.options})
        return replace(entry, task=call.task, args=call.args, kwargs=call.kwargs, options=options)
    if not callable(getattr(target, "apply_async", None)):
        raise ConfigurationError(
            f"{where}: {target!r} is not a task name, a signature or a workflow"
        )
    if args or kwargs:
        raise ConfigurationError(f"{where}: give a workflow's arguments in its signatures")
    to_dict = getattr(target, "to_dict", None)
    if callable(to_dict):
        return replace(entry, task=APPLY_SCHEDULED, workflow=dict(to_dict()))
    if entry.runtime:
        raise ConfigurationError(
            f"{where}: {target!r} has no to_dict(), so it cannot be stored: define it in code"
        )
    # A DAG has no dict form: the worker finds it by entry name in its own app's schedule.
    return replace(entry, task=APPLY_SCHEDULED, workflow=entry.name)


def _is_task_call(sig: Signature) -> bool:
    """A plain signature of one task, with no callbacks: it fires as its own message."""
    return sig.to_dict().get("subtask_type") is None and not any(
        sig.options.get(k) for k in _LINK_OPTIONS
    )


def _checked_options(name: str, options: object) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"beat_schedule[{name!r}]['options'] must be a dict")
    unknown = sorted(set(options) - ENTRY_OPTIONS)
    if unknown:
        raise ConfigurationError(f"beat_schedule[{name!r}]: unknown option(s) {', '.join(unknown)}")
    return dict(options)


def _checked_missed(name: str, policy: object) -> str:
    if policy not in MISSED_POLICIES:
        raise ConfigurationError(
            f"beat_schedule[{name!r}]: missed={policy!r}, choose from {', '.join(MISSED_POLICIES)}"
        )
    return str(policy)


def code_entries(app: Celeriac) -> dict[str, Entry]:
    """The entries the app's code defines (``beat_schedule``, ``add_periodic_task``).

    Raises:
        ConfigurationError: a bad entry, or a bad ``beat_missed_policy``.
    """
    default = app.conf.beat_missed_policy
    if default not in MISSED_POLICIES:
        raise ConfigurationError(
            f"beat_missed_policy={default!r}: choose from {', '.join(MISSED_POLICIES)}"
        )
    specs = app.conf.beat_schedule or {}
    return {name: parse_entry(name, spec, default_missed=default) for name, spec in specs.items()}


def fire_message(app: Celeriac, entry: Entry, due: dt.datetime, task_id: str) -> Message:
    """The message for the fire of ``entry`` due at ``due``, built as a client builds one.

    A relative ``expires`` counts from the due time, so a fire that waited too long (in beat or
    in the queue) is dropped. The headers ``beat_entry`` and ``beat_due`` (epoch seconds) tell
    the task which fire it is.

    Raises:
        ConfigurationError: a bad option.
        TypeError: the arguments do not serialize.
        MessageTooLarge: the message is over ``message_max_bytes``.
    """
    options = dict(entry.options)
    expires = options.pop("expires", None)
    if expires is not None and not isinstance(expires, dt.datetime):
        expires = due + dt.timedelta(seconds=to_seconds(expires, "expires") or 0.0)
    headers = {
        **(options.pop("headers", None) or {}),
        "beat_entry": entry.name,
        "beat_due": due.timestamp(),
    }
    fixed = {"expires": expires, "headers": headers, "task_id": task_id}
    if entry.workflow is None:
        task = app.tasks.get(entry.task)
        defaults = task.message_defaults() if task is not None else {}
        return app.sender.message(
            entry.task, entry.args, entry.kwargs, {**options, **fixed}, task_defaults=defaults
        )
    # The trigger goes where the workflow's tasks go; a workflow sent as a dict also gets the
    # options (a DAG has its own, in its nodes).
    routing: dict[str, Any] = {k: options[k] for k in ("queue", "priority") if k in options}
    passed = options if isinstance(entry.workflow, dict) else {}
    return app.sender.message(
        APPLY_SCHEDULED, (entry.workflow, passed), {}, {**routing, **fixed}, task_defaults={}
    )
