"""The app's side of periodic tasks: ``add_periodic_task`` entries, and the built-in task that
starts a scheduled workflow (beat sends one message per fire; a worker turns it into the
workflow's messages, see docs/design/beat.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas import Signature, signature
from celeriac.exceptions import ConfigurationError
from celeriac.schedules import as_schedule

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.task import Task

APPLY_SCHEDULED = "celeriac.apply_scheduled"


def periodic_entry(
    app: Celeriac,
    schedule: Any,
    sig: Any,
    args: Sequence[Any],
    kwargs: dict[str, Any] | None,
    name: str | None,
    options: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """The ``beat_schedule`` name and entry that ``add_periodic_task`` adds.

    Raises:
        ConfigurationError: ``schedule`` is not a schedule, or arguments were given for a
            workflow (they belong in its signatures).
    """
    as_schedule(schedule, what=f"add_periodic_task({name or sig!r})")
    entry: dict[str, Any] = {"schedule": schedule}
    for key in ("relative", "missed"):
        if key in options:
            entry[key] = options.pop(key)
    if isinstance(sig, str):
        sig = Signature(sig, app=app)
    if isinstance(sig, Signature) and sig.to_dict().get("subtask_type") is None:
        call = sig.clone(args, kwargs)
        entry.update(
            task=call.task, args=call.args, kwargs=call.kwargs, options={**call.options, **options}
        )
    elif args or kwargs:
        raise ConfigurationError(
            f"add_periodic_task({sig!r}): give a workflow's arguments in its signatures"
        )
    else:
        entry.update(task=sig, options=options)
    return name or repr(sig), entry


def apply_scheduled(
    task: Task[Any, Any], workflow: dict[str, Any] | str, options: dict[str, Any]
) -> Any:
    """Start a workflow that beat scheduled: one given as its ``to_dict()``, or (a DAG, which
    has no dict form) the name of a ``beat_schedule`` entry of this app. Returns its id.

    Raises:
        ConfigurationError: this app has no such entry.
    """
    if isinstance(workflow, dict):
        return signature(workflow, app=task.app).apply_async(**options).id
    target = (task.app.conf.beat_schedule.get(workflow) or {}).get("task")
    if target is None:
        raise ConfigurationError(f"this worker's app has no schedule entry {workflow!r}")
    return getattr(target.apply_async(), "id", None)
