"""``Celeriac`` (alias ``Celery``): settings, the task registry, and sending task calls."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from celeriac.annotations import annotate
from celeriac.app.asending import asend_task
from celeriac.app.discovery import Discovery, Packages
from celeriac.backends import ResultBackend, create_backend
from celeriac.brokers import Broker, create_broker, results_url
from celeriac.canvas.signature import Signature, links_workflow
from celeriac.config import Settings, import_object
from celeriac.control import Control
from celeriac.current import current_app, set_current_app
from celeriac.eager import apply_eagerly
from celeriac.events import Events
from celeriac.exceptions import ConfigurationError, NotRegistered
from celeriac.fixups.django import DjangoFixup, django_in_use, setup_django
from celeriac.middleware import CelerySignals, Middleware, MiddlewareStack, TaskHandlers
from celeriac.middleware.events import TaskEvents
from celeriac.periodic import APPLY_SCHEDULED, apply_scheduled, periodic_entry
from celeriac.request import current_request, note_children, sender_lineage
from celeriac.result import AsyncResult
from celeriac.router import Router
from celeriac.sending import Sender, check_send_options
from celeriac.serialization import Serializer
from celeriac.shared import register_app
from celeriac.signals import Signal
from celeriac.task import Task

if TYPE_CHECKING:
    from celeriac.task import AsyncTask, TaskDecorator

P = ParamSpec("P")
R = TypeVar("R")
_Task = Task  # for annotations inside Celeriac, where ``Task`` is the app's task class


class Celeriac:
    """A celeriac application: where tasks are registered and from where they are sent.

    ``Celeriac('tasks')`` uses the SQLite file ``./celeriac.db`` (or ``$CELERIAC_BROKER_URL``)
    as broker and result store. ``broker`` and ``backend`` take URLs, or ready-made broker and
    backend objects (a ``MemoryBroker`` with a test clock, say). Those given as URLs are built
    the first time they are needed, so settings may be changed after the app is created.
    ``middleware=[...]`` (the ``middleware`` setting) adds middleware after the built-in ones.
    The newest app becomes the current one (``celeriac.current_app()``), and every
    ``@shared_task`` is registered with it. ``task_cls`` (a class or ``'module:Class'``) is
    the base class of its tasks, ``app.Task``.

    Raises:
        ConfigurationError: an unknown setting.
    """

    def __init__(
        self,
        main: str | None = None,
        broker: str | Broker | None = None,
        backend: str | ResultBackend | None = None,
        include: Sequence[str] | None = None,
        task_cls: type[_Task[Any, Any]] | str | None = None,
        **settings: Any,
    ) -> None:
        self.main = main
        self._task_cls = task_cls
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
        self.tasks: dict[str, _Task[Any, Any]] = {}
        self._serializer: Serializer | None = None
        self._sender: Sender | None = None
        self._middleware: tuple[tuple[Any, ...], MiddlewareStack] | None = None
        self.control = Control(self)
        self.events = Events(self)  # app.events.Receiver: the task events (events.py)
        self.on_after_configure = Signal("on_after_configure")
        self.on_after_finalize = Signal("on_after_finalize")
        self._discovery = Discovery()
        self._finalized = False
        self._finalize_lock = threading.RLock()
        set_current_app(self)
        register_app(self, current_app)

    def __repr__(self) -> str:
        return f"<Celeriac {self.main or '__main__'}>"

    # -- configuration -----------------------------------------------------------------------
    def config_from_object(
        self,
        obj: object | str,
        silent: bool = False,
        force: bool = False,
        namespace: str | None = None,
    ) -> None:
        """Load settings from a module, an object, a dotted module path or
        ``'module:attribute'`` (see ``Settings.from_object``), with Celery's signature.

        With ``silent=True`` a module that cannot be imported is skipped quietly, as in
        Celery. ``force`` is accepted for Celery's sake: settings are always loaded at once.

        Raises:
            ConfigurationError: the module or attribute cannot be imported (unless
                ``silent``), or a setting is unknown.
        """
        if isinstance(obj, str):
            try:
                obj = import_object(obj)
            except ConfigurationError:
                if silent:
                    return
                raise
        self.conf.from_object(obj, namespace)

    def config_from_envvar(
        self, variable_name: str, silent: bool = False, force: bool = False
    ) -> bool:
        """Load settings from the module that the environment variable ``variable_name`` names
        (``app.config_from_envvar('CELERY_CONFIG_MODULE')``), as Celery does; True once loaded.

        With ``silent=True``, a variable that is not set or a module that cannot be imported
        returns False instead. ``force`` is accepted for Celery's sake: settings are always
        loaded at once.

        Raises:
            ConfigurationError: (``ImproperlyConfigured``) the variable is not set, or its module
                cannot be imported (unless ``silent``), or a setting in it is unknown.
        """
        module_name = os.environ.get(variable_name)
        if not module_name:
            if silent:
                return False
            raise ConfigurationError(
                f"the environment variable {variable_name} is not set: it should name the "
                "module to load settings from (config_from_envvar)"
            )
        try:
            source = import_object(module_name)
        except ConfigurationError:
            if silent:
                return False
            raise
        self.conf.from_object(source)
        return True

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
            url = self.conf.result_backend_or_default()
            url = url or results_url(self.conf.broker_url_or_default())
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
                result_compression=self.conf.result_compression,
            )
        return self._serializer

    @property
    def middleware(self) -> MiddlewareStack:
        """The built-in middleware (Celery's signals, the task classes' handlers, task events,
        and the Django fixup when Django is in use), then the ``middleware`` setting's.

        Raises:
            ConfigurationError: an entry is not a middleware, or its class cannot be imported.
        """
        given = tuple(self.conf.middleware or ())
        if self._middleware is None or self._middleware[0] != given:
            built = [
                CelerySignals(lambda: self.serializer),
                TaskHandlers(),
                TaskEvents(lambda: self.conf, lambda: self.backend),  # middleware/events.py
                *([DjangoFixup()] if django_in_use() else []),
                *map(_middleware, given),
            ]
            self._middleware = given, MiddlewareStack(built)
        return self._middleware[1]

    @property
    def sender(self) -> Sender:
        """What builds and publishes this app's messages (made again when settings change).

        Raises:
            ConfigurationError: a bad broker URL, serializer or ``task_routes``.
        """
        sender = self._sender
        if (
            sender is None
            or sender.version != self.conf.version
            or sender.broker is not self.broker
        ):
            sender = self._sender = Sender(self.broker, self.serializer, self.middleware, self.conf)
        return sender

    def check(self) -> None:
        """Build everything the settings describe, so that a bad setting fails now.

        Also logs, once a process, the Celery settings that celeriac does not use and what it
        does instead (``Settings.log_notes``).

        Raises:
            ConfigurationError: a bad URL, serializer, lease or duration.
        """
        self.conf.log_notes()
        _ = self.broker, self.backend, self.serializer
        self.conf.lease_seconds()
        Router(self.conf.task_routes)
        for name in ("result_expires", "task_time_limit", "task_soft_time_limit"):
            self.conf.seconds(name)

    def import_task_modules(self) -> None:
        """Import the modules named by ``include`` and ``imports`` and those that
        ``autodiscover_tasks`` asked for (tasks register on import). The worker and beat call
        it; with Django in use, ``django.setup()`` comes first, so a ``tasks.py`` may import
        models.

        Raises:
            ConfigurationError: a module cannot be imported, or ``django.setup()`` failed.
        """
        setup_django()
        for name in [*self.conf.include, *self.conf.imports]:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise ConfigurationError(f"cannot import task module {name!r}: {exc}") from exc
        self._discovery.run()

    def autodiscover_tasks(
        self,
        packages: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        related_name: str = "tasks",
        force: bool = False,
    ) -> None:
        """Import ``<package>.tasks`` of each package when the worker imports its task modules
        (or the app finalizes), as Celery does; ``force=True`` imports them now.

        ``packages`` may be a callable returning them; with none given and Django configured,
        every installed app is searched. A package without the module is skipped.

        Raises:
            ConfigurationError: (with ``force``) a package cannot be imported, or an existing
                ``tasks`` module fails to import (the message names it).
        """
        packages_given: Packages = packages
        self._discovery.add(packages_given, related_name)
        if force:
            self._discovery.run()

    @property
    def Task(self) -> type[_Task[Any, Any]]:
        """The base class of this app's tasks: ``task_cls`` when given, else ``Task``.
        ``class MyTask(app.Task)`` and ``@app.task(base=MyTask)`` work as in Celery.

        Raises:
            ConfigurationError: ``task_cls`` names a class that cannot be imported.
        """
        given = self._task_cls
        if isinstance(given, str):
            found = import_object(given if ":" in given else ":".join(given.rsplit(".", 1)))
            if not (isinstance(found, type) and issubclass(found, Task)):
                raise ConfigurationError(f"task_cls {given!r} is not a celeriac Task class")
            self._task_cls = given = found
        return given or Task

    @Task.setter
    def Task(self, cls: type[_Task[Any, Any]]) -> None:
        self._task_cls = cls

    def worker_main(self, argv: Sequence[str] | None = None) -> None:
        """Run ``celeriac worker`` with this app in this process, as Celery's
        ``app.worker_main(argv=['worker', '-l', 'INFO'])`` does (no ``-A`` needed).

        Raises:
            SystemExit: when the worker ends, with its exit status (the command line's way).
        """
        args = list(argv) if argv is not None else sys.argv[1:]
        if not args or args[0].startswith("-"):
            args = ["worker", *args]
        self.start(args)

    def start(self, argv: Sequence[str] | None = None) -> None:
        """Run the ``celeriac`` command with this app (``argv`` defaults to the program's
        arguments), as Celery's ``app.start()`` does: ``python -m proj.celery worker -l INFO``
        with ``if __name__ == '__main__': app.start()`` at the end of ``proj/celery.py``.

        Raises:
            SystemExit: when the command ends, with its exit status.
        """
        # The CLI is the outermost ring; it is loaded by name so that the app does not import it.
        cli = importlib.import_module("celeriac.cli.main").cli
        args = list(argv) if argv is not None else sys.argv[1:]
        cli.main(args=args, prog_name="celeriac", obj={"app": self})

    def finalize(self) -> None:
        """Get ready to serve: import what ``autodiscover_tasks`` asked for, register the
        built-in tasks, then send ``on_after_configure`` and ``on_after_finalize``.

        Workers (``Worker.run``), beat and ``ScheduleControl`` call it when they start, after the
        task modules are imported; later calls do nothing. Call it yourself before draining an
        in-process test worker that must run scheduled workflows.

        Raises:
            ConfigurationError: a discovered task module fails to import.
            Exception: whatever an ``on_after_configure`` or ``on_after_finalize`` receiver
                raised.
        """
        self.conf.log_notes()  # beat checks no settings of its own: say it here, once
        with self._finalize_lock:  # held while receivers run: beat must see what they add
            if self._finalized:
                return
            self._finalized = True
            self._discovery.run()
            for task in list(self.tasks.values()):  # those defined before the configuration
                annotate(task, self.conf.task_annotations)
            self.tasks.setdefault(
                APPLY_SCHEDULED, Task(apply_scheduled, self, name=APPLY_SCHEDULED, bind=True)
            )
            self.on_after_configure.send(sender=self, source=self.conf)
            self.on_after_finalize.send(sender=self)

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
        key, entry = periodic_entry(self, schedule, sig, args, kwargs, name, options)
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
    # An ``async def`` is typed by what its coroutine returns: ``fetch.delay(url)`` is an
    # ``AsyncResult[int]``, not an ``AsyncResult[Coroutine[..., int]]``.
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R], /) -> _Task[P, R]: ...

    @overload
    def task(self, /, *, bind: Literal[True], **options: Any) -> TaskDecorator[Literal[True]]: ...

    @overload
    def task(
        self, /, *, bind: Literal[False] = False, **options: Any
    ) -> TaskDecorator[Literal[False]]: ...

    def task(
        self, fn: Callable[..., Any] | None = None, /, *, bind: bool = False, **options: Any
    ) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(bind=True, ...)``.

        Raises:
            ConfigurationError: an unknown task option (named in the message).
        """

        def register(function: Callable[..., Any]) -> _Task[Any, Any]:
            base: type[_Task[Any, Any]] = options.pop("base", None) or self.Task
            task = base(function, self, bind=bind, **options)
            annotate(task, self.conf.task_annotations)
            self.tasks[task.name] = task
            return task

        if fn is not None:
            return register(fn)
        return register

    def register_task(self, task: _Task[Any, Any]) -> _Task[Any, Any]:
        """Add an existing task object to the registry under its name.

        Raises:
            ConfigurationError: ``task_annotations`` gives it something it cannot take.
        """
        annotate(task, self.conf.task_annotations)
        self.tasks[task.name] = task
        return task

    def get_task(self, name: str) -> _Task[Any, Any]:
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
        task: _Task[Any, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        """Send a call of the task ``name`` (it need not be registered here).

        Raises:
            ConfigurationError: an unknown option, or a bad priority or time.
            TypeError: the arguments do not fit a task registered here, or do not serialize.
            MessageTooLarge: the message is over ``message_max_bytes``.
            PublishError: the message was not enqueued.
        """
        check_send_options(options)
        args, kwargs = tuple(args or ()), dict(kwargs or {})
        task = task or self.tasks.get(name)
        if task is not None:
            task.check_arguments(args, kwargs)
            if self.conf["task_always_eager"]:  # by key: conf.name is a failed lookup first
                return apply_eagerly(self, task, list(args), kwargs, **options)
        if options.get("link") or options.get("link_error"):
            options["workflow"] = links_workflow(options, self)
        sender = self.sender
        message = sender.message(
            name,
            args,
            kwargs,
            options,
            task_defaults=task.message_defaults() if task is not None else {},
            lineage=sender_lineage(current_request()),
        )
        sender.publish([message], options)
        if options.get("add_to_parent", True):
            note_children([message.id])
        return AsyncResult(message.id, self)

    async def asend_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        task: _Task[Any, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        """:meth:`send_task` from asyncio code: the same message, published without blocking
        the event loop (``app/asending.py``); ``await`` the result, or its ``aget()``.

        Raises:
            ConfigurationError: an unknown option, or a bad priority or time.
            TypeError: the arguments do not fit a task registered here, or do not serialize.
            MessageTooLarge: the message is over ``message_max_bytes``.
            PublishError: the message was not enqueued.
        """
        return await asend_task(self, name, args, kwargs, task, options)

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


def _middleware(entry: Any) -> Middleware:
    """A middleware from a ``middleware`` setting entry: an instance, a class, or the dotted
    path of a class (``'proj.metrics:Timing'`` or ``'proj.metrics.Timing'``).

    Raises:
        ConfigurationError: the entry is none of those, or cannot be imported.
    """
    if isinstance(entry, str):
        module_name, sep, name = entry.partition(":")
        if not sep:
            module_name, _, name = entry.rpartition(".")
        try:
            entry = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigurationError(f"cannot import middleware {entry!r}: {exc}") from None
    if isinstance(entry, type) and issubclass(entry, Middleware):
        entry = entry()
    if not isinstance(entry, Middleware):
        raise ConfigurationError(
            f"middleware must be celeriac.middleware.Middleware instances, not {entry!r}"
        )
    return entry


Celery = Celeriac
