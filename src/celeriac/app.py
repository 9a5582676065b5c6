"""``Celeriac`` (alias ``Celery``): settings, the task registry, and sending task calls."""

from __future__ import annotations

import datetime
import importlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, overload

from celeriac import states
from celeriac.backends import ResultBackend, ResultRecord, create_backend
from celeriac.brokers import Broker, create_broker
from celeriac.canvas.eager import run_links
from celeriac.canvas.signature import Signature, links_workflow
from celeriac.config import Settings, to_seconds
from celeriac.control import Control
from celeriac.exceptions import ConfigurationError, MessageTooLarge, NotRegistered
from celeriac.execution import IGNORED, execute
from celeriac.message import Message
from celeriac.result import AsyncResult, EagerResult, decode_record
from celeriac.router import Router
from celeriac.schedules import as_schedule
from celeriac.serialization import Serializer
from celeriac.signals import Signal
from celeriac.task import Request, Task, current_request, sender_lineage

P = ParamSpec("P")
R = TypeVar("R")

SEND_OPTIONS = frozenset(
    {
        "countdown",
        "eta",
        "expires",
        "queue",
        "priority",
        "task_id",
        "headers",
        "link",
        "link_error",
        "ignore_result",
        "time_limit",
        "soft_time_limit",
        "retries",
        "parent_id",
        "root_id",
        "group_id",
        "workflow",
        "serializer",
        "add_to_parent",
    }
)

# The built-in task that starts a scheduled workflow: beat sends one message per fire, and a
# worker turns it into the workflow's messages (see docs/design/beat.md).
APPLY_SCHEDULED = "celeriac.apply_scheduled"

_current: Celeriac | None = None
_current_lock = threading.Lock()


def current_app() -> Celeriac:
    """The most recently created app (a default one, on the SQLite file, if none exists)."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Celeriac("default")
        return _current


def _epoch(value: float | datetime.datetime | None, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    raise ConfigurationError(f"{what} must be a datetime or epoch seconds, not {value!r}")


class Celeriac:
    """A celeriac application: where tasks are registered and from where they are sent.

    ``Celeriac('tasks')`` uses the SQLite file ``./celeriac.db`` (or ``$CELERIAC_BROKER_URL``)
    as broker and result store. ``broker`` and ``backend`` take URLs, or ready-made broker and
    backend objects (a ``MemoryBroker`` with a test clock, say). Those given as URLs are built
    the first time they are needed, so settings may be changed after the app is created.

    Raises:
        ConfigurationError: an unknown setting.
    """

    def __init__(
        self,
        main: str | None = None,
        broker: str | Broker | None = None,
        backend: str | ResultBackend | None = None,
        include: Sequence[str] | None = None,
        **settings: Any,
    ) -> None:
        global _current
        self.main = main
        self.conf = Settings(settings)
        self._broker: Broker | None = None
        self._backend: ResultBackend | None = None
        if isinstance(broker, Broker):
            self._broker, broker = broker, broker.url
        if isinstance(backend, ResultBackend):
            self._backend, backend = backend, backend.url
        if broker:
            self.conf.broker_url = broker
        if backend:
            self.conf.result_backend = backend
        if include:
            self.conf.include = list(include)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._serializer: Serializer | None = None
        self.control = Control(self)
        self.on_after_configure = Signal("on_after_configure")
        self._finalized = False
        self._finalize_lock = threading.RLock()
        with _current_lock:
            _current = self

    def __repr__(self) -> str:
        return f"<Celeriac {self.main or '__main__'}>"

    # -- configuration -----------------------------------------------------------------------
    def config_from_object(self, obj: object | str, namespace: str | None = None) -> None:
        """Load settings from a module, an object, a dotted module path or
        ``'module:attribute'`` (see ``Settings.from_object``).

        Raises:
            ConfigurationError: the module or attribute cannot be imported, or a setting is
                unknown.
        """
        self.conf.from_object(obj, namespace)

    @property
    def broker(self) -> Broker:
        """The broker named by ``broker_url`` (built on first use).

        Raises:
            ConfigurationError: the URL names no known broker.
        """
        if self._broker is None:
            self._broker = create_broker(
                self.conf.broker_url_or_default(),
                self.conf.broker_transport_options,
                publish_timeout=self.conf.seconds("broker_publish_timeout"),
            )
        return self._broker

    @property
    def backend(self) -> ResultBackend:
        """The result backend: ``result_backend``, else the broker's own store.

        Raises:
            ConfigurationError: the URL names no known backend.
        """
        if self._backend is None:
            url = self.conf.result_backend_or_default() or self.conf.broker_url_or_default()
            self._backend = create_backend(url, self.conf.broker_transport_options)
        return self._backend

    @property
    def serializer(self) -> Serializer:
        """How task arguments and results are serialized, accepted and signed.

        Raises:
            ConfigurationError: an unknown serializer, or pickle without ``security_key``.
        """
        if self._serializer is None:
            self._serializer = Serializer.from_settings(
                self.conf.task_serializer,
                [*self.conf.accept_content, self.conf.result_serializer],
                self.conf.security_key,
            )
        return self._serializer

    def check(self) -> None:
        """Build everything the settings describe, so that a bad setting fails now.

        Raises:
            ConfigurationError: a bad URL, serializer, lease or duration.
        """
        _ = self.broker, self.backend, self.serializer
        self.conf.lease_seconds()
        Router(self.conf.task_routes)
        for name in ("result_expires", "task_time_limit", "task_soft_time_limit"):
            self.conf.seconds(name)

    def import_task_modules(self) -> None:
        """Import the modules named by ``include`` and ``imports`` (tasks register on import).

        Raises:
            ConfigurationError: a module cannot be imported.
        """
        for name in [*self.conf.include, *self.conf.imports]:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise ConfigurationError(f"cannot import task module {name!r}: {exc}") from exc

    def finalize(self) -> None:
        """Get ready to serve: register the built-in tasks and send ``on_after_configure``.

        Workers (``Worker.run``), beat and ``ScheduleControl`` call it when they start, after the
        task modules are imported; later calls do nothing. Call it yourself before draining an
        in-process test worker that must run scheduled workflows.

        Raises:
            Exception: whatever an ``on_after_configure`` receiver raised.
        """
        with self._finalize_lock:  # held while receivers run: beat must see what they add
            if self._finalized:
                return
            self._finalized = True
            self.tasks.setdefault(
                APPLY_SCHEDULED, Task(_apply_scheduled, self, name=APPLY_SCHEDULED, bind=True)
            )
            self.on_after_configure.send(sender=self, source=self.conf)

    def add_periodic_task(
        self,
        schedule: Any,
        sig: Any,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> str:
        """Add an entry to ``beat_schedule``, as Celery does; returns its name.

        ``schedule`` is a ``crontab``, ``schedule``, ``clocked``, seconds or a ``timedelta``.
        ``sig`` is a signature (``scan.s(1, 2)``), a task name, or any workflow (chain, group,
        chord, DAG). ``name`` defaults to ``repr(sig)``. ``options`` are send options
        (``queue``, ``priority``, ``expires``...) and the entry's ``relative`` and ``missed``.

        Raises:
            ConfigurationError: ``schedule`` is not a schedule, or arguments were given for a
                workflow (they belong in its signatures).
        """
        from celeriac.canvas import Signature

        as_schedule(schedule, what=f"add_periodic_task({name or sig!r})")
        entry: dict[str, Any] = {"schedule": schedule}
        for key in ("relative", "missed"):
            if key in options:
                entry[key] = options.pop(key)
        if isinstance(sig, str):
            sig = Signature(sig, app=self)
        if isinstance(sig, Signature) and sig.to_dict().get("subtask_type") is None:
            call = sig.clone(args, kwargs)
            entry.update(
                task=call.task,
                args=call.args,
                kwargs=call.kwargs,
                options={**call.options, **options},
            )
        elif args or kwargs:
            raise ConfigurationError(
                f"add_periodic_task({sig!r}): give a workflow's arguments in its signatures"
            )
        else:
            entry.update(task=sig, options=options)
        key = name or repr(sig)
        # A new dict: the one the project assigned is not changed behind its back.
        self.conf.beat_schedule = {**(self.conf.beat_schedule or {}), key: entry}
        return key

    def close(self) -> None:
        """Close broker and backend connections of this thread."""
        if self._broker is not None:
            self._broker.close()
        if self._backend is not None:
            self._backend.close()

    # -- registering tasks ---------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self, /, *, bind: Literal[True], **options: Any
    ) -> Callable[[Callable[Concatenate[Any, P], R]], Task[P, R]]: ...

    @overload
    def task(
        self, /, *, bind: Literal[False] = False, **options: Any
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self, fn: Callable[..., Any] | None = None, /, *, bind: bool = False, **options: Any
    ) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(bind=True, ...)``.

        Raises:
            ConfigurationError: an unknown task option (named in the message).
        """

        def register(function: Callable[..., Any]) -> Task[Any, Any]:
            base: type[Task[Any, Any]] = options.pop("base", None) or Task
            task = base(function, self, bind=bind, **options)
            self.tasks[task.name] = task
            return task

        if fn is not None:
            return register(fn)
        return register

    def register_task(self, task: Task[Any, Any]) -> Task[Any, Any]:
        """Add an existing task object to the registry under its name."""
        self.tasks[task.name] = task
        return task

    def get_task(self, name: str) -> Task[Any, Any]:
        """The task registered under ``name``.

        Raises:
            NotRegistered: no task has that name.
        """
        try:
            return self.tasks[name]
        except KeyError:
            raise NotRegistered(f"task {name!r} is not registered with this app") from None

    # -- sending -------------------------------------------------------------------------------
    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        task: Task[Any, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        """Send a call of the task ``name`` (it need not be registered here).

        Raises:
            ConfigurationError: an unknown option, or a bad priority or time.
            TypeError: the arguments do not fit a task registered here, or do not serialize.
            MessageTooLarge: the message is over ``message_max_bytes``.
            PublishError: the message was not enqueued.
        """
        unknown = sorted(set(options) - SEND_OPTIONS)
        if unknown:
            raise ConfigurationError(f"unknown option(s) for sending a task: {', '.join(unknown)}")
        args, kwargs = tuple(args or ()), dict(kwargs or {})
        task = task or self.tasks.get(name)
        if task is not None:
            task.check_arguments(args, kwargs)
        if self.conf.task_always_eager and task is not None:
            return self.apply_eagerly(task, list(args), kwargs, **options)
        message = self.build_message(name, args, kwargs, task, options)
        self.broker.publish(message)
        _note_child(message.id, options)
        return AsyncResult(message.id, self)

    def build_message(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        task: Task[Any, Any] | None,
        options: dict[str, Any],
    ) -> Message:
        """The signed message for one call, routed and checked, ready to publish.

        ``countdown`` and relative ``expires`` count from the broker's clock, the clock that
        decides when the broker hands the message out.

        Raises:
            ConfigurationError: a bad priority or time.
            TypeError: the arguments do not serialize.
            MessageTooLarge: the message is over ``message_max_bytes``.
        """
        given = {k: v for k, v in options.items() if v is not None}
        routed = {**self._route(name, args, kwargs, given), **_task_defaults(task), **given}
        try:
            body = self.serializer.dumps([list(args), kwargs])
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: arguments cannot be serialized: {exc}") from exc
        now = self.broker.clock()
        countdown = to_seconds(routed.get("countdown"), "countdown")
        eta = now + countdown if countdown is not None else _epoch(routed.get("eta"), "eta")
        message = Message(
            id=str(routed.get("task_id") or uuid.uuid4()),
            task=name,
            body=body,
            content_type=self.serializer.content_type,
            queue=str(routed.get("queue") or self.conf.task_default_queue),
            priority=_priority(routed.get("priority", self.conf.task_default_priority)),
            eta=eta,
            expires=_expiry(routed.get("expires"), now),
            retries=int(routed.get("retries", 0)),
            sent_at=now,
            headers=dict(routed.get("headers") or {}),
            workflow=links_workflow(routed, self),
            ignore_result=bool(routed.get("ignore_result", self.conf.task_ignore_result)),
            time_limit=to_seconds(routed.get("time_limit"), "time_limit"),
            soft_time_limit=to_seconds(routed.get("soft_time_limit"), "soft_time_limit"),
            **_lineage(routed),
        ).signed(self.serializer)
        self._check_size(message)
        return message

    def _route(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any]:
        return Router(self.conf.task_routes).route(name, args, kwargs, options)

    def _check_size(self, message: Message) -> None:
        limit = int(self.conf.message_max_bytes)
        size = len(message.encode())
        if size > limit:
            raise MessageTooLarge(
                f"{message.task}: message is {size} bytes, over message_max_bytes ({limit})"
            )

    def apply_eagerly(
        self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], **options: Any
    ) -> EagerResult[Any]:
        """Run a call here, retrying at once as Celery's eager mode does.

        ``throw=True`` (or False) says whether a failure is raised here, as Celery's
        ``apply(throw=...)``; by default ``task_eager_propagates`` decides.

        Raises:
            BaseException: the task's exception, when ``throw`` or ``task_eager_propagates``.
        """
        task_id = str(options.get("task_id") or uuid.uuid4())
        retries = 0
        while True:
            request = Request(
                id=task_id,
                task=task.name,
                args=args,
                kwargs=kwargs,
                retries=retries,
                is_eager=True,
                called_directly=False,
                hostname="eager",
                workflow=dict(options.get("workflow") or {}),
            )
            outcome = execute(task, request, args, kwargs, self.serializer)
            if outcome.state != states.RETRY:
                break
            retries += 1
            args = outcome.retry_args if outcome.retry_args is not None else args
            kwargs = outcome.retry_kwargs if outcome.retry_kwargs is not None else kwargs
        state = states.SUCCESS if outcome.state == IGNORED else outcome.state
        if state not in states.ALL_STATES:
            state = states.FAILURE
        record = ResultRecord(
            task_id,
            state,
            outcome.payload,
            outcome.content_type,
            time.time(),
            retries,
            {"task": task.name},
        )
        if self.conf.task_store_eager_result:
            self.backend.store(record, expires=self.conf.seconds("result_expires"))
        if options.get("link") or options.get("link_error"):
            run_links(self, record, options, (args, kwargs))
        throw = options.get("throw")
        if throw is None:
            throw = self.conf.task_eager_propagates
        if state == states.FAILURE and throw:
            raise decode_record(self, record)
        return EagerResult(task_id, self, record)

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:
        """A handle on a task call by its id."""
        return AsyncResult(task_id, self)

    def signature(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A signature of the task ``name`` (registered here or not), sent by this app:
        ``app.signature('tasks.add', args=(2, 2), countdown=1)``."""
        immutable = bool(options.pop("immutable", False))
        return Signature(
            name, args or (), kwargs or {}, options=options, immutable=immutable, app=self
        )


def _apply_scheduled(
    task: Task[Any, Any], workflow: dict[str, Any] | str, options: dict[str, Any]
) -> Any:
    """Start a workflow that beat scheduled: one given as its ``to_dict()``, or (a DAG, which
    has no dict form) the name of a ``beat_schedule`` entry of this app. Returns its id.

    Raises:
        ConfigurationError: this app has no such entry.
    """
    from celeriac.canvas import signature

    if isinstance(workflow, dict):
        return signature(workflow, app=task.app).apply_async(**options).id
    target = (task.app.conf.beat_schedule.get(workflow) or {}).get("task")
    if target is None:
        raise ConfigurationError(f"this worker's app has no schedule entry {workflow!r}")
    return getattr(target.apply_async(), "id", None)


def _note_child(task_id: str, options: dict[str, Any]) -> None:
    """Sent from inside a task run by a worker: the task's result lists it as a child."""
    request = current_request()
    if request is not None and not request.called_directly and options.get("add_to_parent", True):
        request.children.append(task_id)


def _task_defaults(task: Task[Any, Any] | None) -> dict[str, Any]:
    if task is None:
        return {}
    values = {
        "queue": task.queue,
        "priority": task.priority,
        "expires": task.expires,
        "ignore_result": task.ignore_result,
        "time_limit": task.time_limit,
        "soft_time_limit": task.soft_time_limit,
    }
    return {k: v for k, v in values.items() if v is not None}


def _lineage(options: dict[str, Any]) -> dict[str, str | None]:
    """Parent and root ids: given, or those of the task running here (a call from a task)."""
    parent_id, root_id = sender_lineage(current_request())
    return {
        "parent_id": options.get("parent_id") or parent_id,
        "root_id": options.get("root_id") or root_id,
        "group_id": options.get("group_id"),
    }


def _priority(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        raise ConfigurationError(f"priority must be an integer from 0 to 9, not {value!r}")
    return value


def _expiry(value: Any, now: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return _epoch(value, "expires")
    seconds = to_seconds(value, "expires")
    return None if seconds is None else now + seconds


Celery = Celeriac
