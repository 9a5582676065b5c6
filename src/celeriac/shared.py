"""``shared_task``: a task written once, for whichever app the project makes.

Reusable code (a Django app, a library) cannot import the project's app, so Celery lets it
write ``@shared_task``: the function is registered with every app, those that exist and those
created later, and the object returned stands for the task of the current app
(``celeriac.current_app()``)::

    from celeriac import shared_task

    @shared_task
    def add(x, y):
        return x + y

    add.delay(2, 2)   # sent by the current app, as add's task there

This module sits low in the layers: it imports neither the app nor ``celeriac.current`` (its
neighbour in the same layer). It calls the app objects that register themselves here, and each
tells it how to find the current app (``Celeriac.__init__`` calls :func:`register_app`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, cast, overload

from celeriac.exceptions import ConfigurationError

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.task import AsyncTask, Task, TaskDecorator

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.RLock()
_apps: weakref.WeakSet[Celeriac] = weakref.WeakSet()
_shared: list[SharedTask] = []
_current: list[Callable[[], Celeriac]] = []  # how to find the current app, once one exists


class SharedTask:
    """What ``@shared_task`` returns: the same task in every app, used through the current one.

    Attribute access, calls and ``repr`` go to the task registered with the current app
    (``.delay``, ``.s``, ``.apply_async``, ``.name``, ``.request``...), so a shared task works as
    Celery's does whichever app the process made.
    """

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self._fn = fn
        self._options = options
        self._tasks: weakref.WeakKeyDictionary[Celeriac, Task[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", repr(fn))
        self.__module__ = fn.__module__
        self.__wrapped__ = fn

    def register(self, app: Celeriac) -> Task[Any, Any]:
        """Register the function with ``app`` (once) and return its task there.

        Raises:
            ConfigurationError: an unknown task option (named in the message).
        """
        with _lock:
            task = self._tasks.get(app)
            if task is None:
                task = self._tasks[app] = app.task(self._fn, **self._options)
            return task

    def _task(self) -> Task[Any, Any]:
        if not _current:
            raise ConfigurationError(
                f"shared task {self.__name__!r} used before any celeriac app exists: "
                "create the app first (proj/celery.py, imported by proj/__init__.py)"
            )
        return self.register(_current[0]())

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this proxy lacks: everything a task has, from the current app.
        if name.startswith("__") or name in ("_fn", "_options", "_tasks"):
            raise AttributeError(name)
        return getattr(self._task(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._task()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<@shared_task: {getattr(self._fn, '__qualname__', self.__name__)}>"


def register_app(app: Celeriac, current_app: Callable[[], Celeriac]) -> None:
    """Give a new app every shared task defined so far; later ones reach it when defined.
    ``current_app`` finds the current app (``celeriac.current.current_app``).

    Raises:
        ConfigurationError: a shared task's options are unknown to the app.
    """
    with _lock:
        _apps.add(app)
        _current[:] = [current_app]
        shared = list(_shared)
    for task in shared:
        task.register(app)


@overload
def shared_task(fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...


@overload
def shared_task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def shared_task(*, bind: Literal[True], **options: Any) -> TaskDecorator[Literal[True]]: ...


@overload
def shared_task(
    *, bind: Literal[False] = False, **options: Any
) -> TaskDecorator[Literal[False]]: ...


def shared_task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Register a function with every app, existing and future: ``@shared_task`` or
    ``@shared_task(bind=True, base=MyTask, ...)``, as in Celery.

    The options are those of ``@app.task``; they are checked by each app the task reaches.

    Raises:
        ConfigurationError: an unknown task option (named in the message), once an app exists.
    """

    def create(function: Callable[..., Any]) -> Task[Any, Any]:
        shared = SharedTask(function, options)
        with _lock:
            _shared.append(shared)
            apps = list(_apps)
        for app in apps:
            shared.register(app)
        return cast("Task[Any, Any]", shared)

    if fn is not None:
        return create(fn)
    return create
