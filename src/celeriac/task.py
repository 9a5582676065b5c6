"""``Task``: a function registered with an app, callable here or on a worker.

``add(2, 2)`` runs the function in this process; ``add.delay(2, 2)`` sends a message and returns
an ``AsyncResult``; ``add.apply((2, 2))`` runs it here the way a worker would (retries and all).
A task with ``bind=True`` receives itself first, for ``self.request`` and ``self.retry()``.
"""

from __future__ import annotations

import contextvars
import datetime
import functools
import inspect
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    NoReturn,
    ParamSpec,
    Protocol,
    TypeVar,
    overload,
)

from celeriac.arguments import fits, plain_parameters
from celeriac.canvas.maps import chunks, xmap, xstarmap
from celeriac.canvas.signature import Signature, maybe_signature
from celeriac.eager import apply_eagerly
from celeriac.exceptions import ConfigurationError, MaxRetriesExceededError, Retry
from celeriac.execution import Replaced, replacement_plan
from celeriac.middleware.events import record_progress
from celeriac.rates import Rate, parse_rate
from celeriac.request import (
    Request,
    current_request,
    pop_request,
    push_request,
    sender_lineage,
)
from celeriac.request import current_task as current_task  # where Celery users import it from
from celeriac.request import get_current_task as get_current_task
from celeriac.result import allow_join_result, state_record
from celeriac.retries import backoff_delay, check_retry

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.result import AsyncResult, EagerResult

P = ParamSpec("P")
R = TypeVar("R")

# Celery's handlers: a base class (``@app.task(base=MyTask)``) overrides them, and the built-in
# middleware ``TaskHandlers`` calls them where the task runs.
HANDLERS = ("before_start", "on_success", "on_failure", "on_retry", "after_return")

# Options accepted by @app.task, with their defaults (None: take the app's setting).
TASK_OPTIONS: dict[str, Any] = {
    "name": None,
    "bind": False,
    "base": None,
    "max_retries": 3,
    "default_retry_delay": 180.0,
    "autoretry_for": (),
    "dont_autoretry_for": (),
    "retry_kwargs": {},
    "retry_backoff": False,
    "retry_backoff_max": 600.0,
    "retry_jitter": True,
    "acks_late": None,
    "time_limit": None,
    "soft_time_limit": None,
    "queue": None,
    "priority": None,
    "ignore_result": None,
    "track_started": None,
    "expires": None,
    "rate_limit": None,
    "typing": True,
    "shared": True,
}


def _on_commit(send: Callable[[], Any]) -> None:
    """Hand ``send`` to Django's ``transaction.on_commit``.

    Raises:
        ConfigurationError: Django is not installed.
    """
    try:
        from django.db import transaction
    except ImportError:
        raise ConfigurationError(
            "delay_on_commit() and apply_async_on_commit() need Django (pip install django): "
            "without a Django transaction, call delay() or apply_async()"
        ) from None
    transaction.on_commit(send)


def maybe_apply(sig: Signature, app: Celeriac) -> Any:
    """Run ``sig`` (any canvas) here and return its value.

    Raises:
        BaseException: the exception of the first task that failed.
    """
    return maybe_signature(sig, app).clone().apply().get()


def check_task_options(options: dict[str, Any]) -> None:
    """Raise if ``options`` holds a name that ``@app.task`` does not know.

    Raises:
        ConfigurationError: naming the unknown option.
    """
    unknown = sorted(set(options) - set(TASK_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"unknown task option{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}"
        )


class Task(Generic[P, R]):
    """A registered task; see the module docstring. Create with ``@app.task``."""

    rate_limit: Rate = None  # Celery's per-worker limit ('10/s'); a base class may set it

    def __init__(self, fn: Callable[..., R], app: Celeriac, **options: Any) -> None:
        check_task_options(options)
        settings = {**TASK_OPTIONS, **options}
        self.fn = fn
        self.app = app
        module = fn.__module__
        if module == "__main__" and app.main:
            module = app.main  # as Celery does: a script and a worker agree on the name
        self.name: str = settings["name"] or f"{module}.{fn.__qualname__}"
        self.bind: bool = settings["bind"]
        self.max_retries: int | None = settings["max_retries"]
        self.default_retry_delay: float = settings["default_retry_delay"]
        self.autoretry_for: tuple[type[BaseException], ...] = tuple(settings["autoretry_for"])
        self.dont_autoretry_for: tuple[type[BaseException], ...] = tuple(
            settings["dont_autoretry_for"]
        )
        self.retry_kwargs: dict[str, Any] = dict(settings["retry_kwargs"])
        self.retry_backoff: float | bool = settings["retry_backoff"]
        self.retry_backoff_max: float = settings["retry_backoff_max"]
        self.retry_jitter: bool = settings["retry_jitter"]
        self.acks_late: bool | None = settings["acks_late"]
        self.time_limit: float | None = settings["time_limit"]
        self.soft_time_limit: float | None = settings["soft_time_limit"]
        self.queue: str | None = settings["queue"]
        self.priority: int | None = settings["priority"]
        self.ignore_result: bool | None = settings["ignore_result"]
        self.track_started: bool | None = settings["track_started"]
        self.expires: float | datetime.datetime | None = settings["expires"]
        if "rate_limit" in options:
            self.rate_limit = options["rate_limit"]
        parse_rate(self.rate_limit)  # a bad rate fails at decoration, not in the worker
        self.typing: bool = settings["typing"]
        self._signature = inspect.signature(fn)
        self._plain_parameters = plain_parameters(self._signature, bind=self.bind)
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__module__ = fn.__module__
        self.__wrapped__ = fn
        cls = type(self)
        self.overridden_handlers = frozenset(
            name for name in HANDLERS if getattr(cls, name) is not getattr(Task, name)
        )

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"

    # -- running here ---------------------------------------------------------------------
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function in this process (no message, no worker).

        The call gets its own ``self.request`` (``called_directly``), also when made from inside
        another task; calls it sends still descend from the task that called it.
        """
        parent_id, root_id = sender_lineage(current_request())
        request = Request(
            task=self.name, args=list(args), kwargs=kwargs, parent_id=parent_id, root_id=root_id
        )
        request.executing = self
        token = push_request(request)
        try:
            return self.run(*args, **kwargs)
        finally:
            pop_request(token)

    def run(self, *args: Any, **kwargs: Any) -> R:
        """Call the underlying function (with the task first when ``bind=True``)."""
        if self.bind:
            return self.fn(self, *args, **kwargs)
        return self.fn(*args, **kwargs)

    @property
    def request(self) -> Request:
        """The call being executed (an empty ``Request`` outside of one)."""
        return current_request() or Request(task=self.name)

    def push_request(self, request: Request) -> contextvars.Token[Request | None]:
        """Make ``request`` the current call; pair with :meth:`pop_request`."""
        return push_request(request)

    def pop_request(self, token: contextvars.Token[Request | None]) -> None:
        """Restore the call that was current before :meth:`push_request`."""
        pop_request(token)

    def message_defaults(self) -> dict[str, Any]:
        """The send options this task sets for its calls (``queue``, ``priority``...); a
        call's own options win over them, and they win over ``task_routes``."""
        values: dict[str, Any] = {}  # read on every send: no intermediate dict
        if self.queue is not None:
            values["queue"] = self.queue
        if self.priority is not None:
            values["priority"] = self.priority
        if self.expires is not None:
            values["expires"] = self.expires
        if self.ignore_result is not None:
            values["ignore_result"] = self.ignore_result
        if self.time_limit is not None:
            values["time_limit"] = self.time_limit
        if self.soft_time_limit is not None:
            values["soft_time_limit"] = self.soft_time_limit
        return values

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Fail early, in the caller, when the arguments do not fit the function.

        Raises:
            TypeError: as calling the function with them would.
        """
        if not self.typing:
            return
        plain = self._plain_parameters
        if plain is not None and fits(plain, args, kwargs):
            return  # what bind() would accept, without building a BoundArguments
        bound_args = (None, *args) if self.bind else args
        try:
            self._signature.bind(*bound_args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}: {exc}") from None

    # -- sending ----------------------------------------------------------------------------
    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send a call with these arguments; shortcut for :meth:`apply_async`.

        Raises:
            PublishError: the message was not enqueued.
        """
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Send a call; options as in Celery (``countdown``, ``eta``, ``expires``, ``queue``,
        ``priority``, ``task_id``, ``headers``, ``link``, ``link_error``, ``ignore_result``,
        ``time_limit``, ``soft_time_limit``).

        Raises:
            TypeError: the arguments do not fit the function.
            ConfigurationError: an unknown option.
            PublishError: the message was not enqueued.
        """
        return self.app.send_task(self.name, args, kwargs, task=self, **options)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """:meth:`delay` from asyncio code: the same message, published without blocking the
        event loop; ``await`` the result (or its ``aget(timeout=...)``) for the value.

        Raises:
            PublishError: the message was not enqueued.
        """
        return await self.aapply_async(args, kwargs)

    async def aapply_async(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """:meth:`apply_async` from asyncio code (``app.asend_task``); the same options.

        Raises:
            TypeError: the arguments do not fit the function.
            ConfigurationError: an unknown option.
            PublishError: the message was not enqueued.
        """
        return await self.app.asend_task(self.name, args, kwargs, task=self, **options)

    def apply(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """Run the call here as a worker would (retries included) and return its result.

        Raises:
            BaseException: the task's exception, with ``throw=True`` or ``task_eager_propagates``.
        """
        return apply_eagerly(self.app, self, list(args or ()), dict(kwargs or {}), **options)

    def AsyncResult(self, task_id: str) -> AsyncResult[R]:
        """A handle on a call of this task by its id."""
        return self.app.AsyncResult(task_id)

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Send the call when the current Django database transaction commits (Celery 5.4's
        ``DjangoTask.delay_on_commit``); at once when no transaction is open. Returns None:
        nothing is sent yet, so there is no result handle.

        Raises:
            ConfigurationError: Django is not installed.
        """
        _on_commit(functools.partial(self.delay, *args, **kwargs))

    def apply_async_on_commit(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        """:meth:`apply_async` when the current Django transaction commits; see
        :meth:`delay_on_commit`.

        Raises:
            ConfigurationError: Django is not installed.
        """
        _on_commit(functools.partial(self.apply_async, args, kwargs, **options))

    # -- from inside a run -------------------------------------------------------------------
    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Any = None,
        **kwargs: Any,
    ) -> None:
        """Store ``state`` (any name: ``'PROGRESS'``) with ``meta`` for this call (or
        ``task_id``) now, so that ``AsyncResult(id).state`` and ``.info`` show it while the
        task runs. A final state set here (SUCCESS, FAILURE) is the one kept: the run's own
        outcome does not replace it.

        Raises:
            ValueError: no ``state``, or no ``task_id`` outside a task run.
            BackendError: the backend cannot be reached.
        """
        request = current_request()
        task_id = task_id or (request.id if request is not None else None)
        if task_id is None:
            raise ValueError(f"{self.name}.update_state(): no task_id, and no call is running")
        if not state:
            raise ValueError(f"{self.name}.update_state(): a state is required")
        record = state_record(self.app, task_id, state, meta, task=self.name, request=request)
        self.app.backend.store(record, expires=self.app.conf.seconds("result_expires"))
        hostname = request.hostname if request is not None else ""
        record_progress(self.app.conf, self.app.backend, task_id, state, meta, hostname or "")

    def replace(self, sig: Signature) -> NoReturn:
        """Replace this call with ``sig``, which inherits its task id (Celery's
        ``raise self.replace(sig)``): ``AsyncResult(this id).get()`` returns the replacement's
        result, and this call's links and the rest of its chain follow the replacement. For a
        chain, its last task takes the id; for a group, the id holds the list of results.

        On a worker the replacement is sent when this call's message is settled, in the same
        step; in ``apply()`` it runs here at once.

        Raises:
            Replaced: always (the worker or ``apply()`` catches it).
            RuntimeError: the task was called directly (there is no call to replace).
            ConfigurationError: a group replacing a call that has links or a chain after it.
            BaseException: in ``apply()``, the replacement's own exception.
        """
        request = current_request()
        if request is None or request.called_directly or request.id is None:
            raise RuntimeError(f"{self.name}.replace(): only a call run by a worker or apply()")
        if request.is_eager:
            with allow_join_result():
                value = maybe_apply(sig, self.app)
            raise Replaced(value=value)
        raise Replaced(plan=replacement_plan(sig, request, self.app))

    # -- handlers: override them in a base class ---------------------------------------------
    def before_start(self, task_id: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Called where the task runs, just before it does."""

    def on_success(
        self, retval: Any, task_id: str, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        """Called where the task ran, after it returned ``retval``."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        """Called where the task ran, after it raised ``exc`` (``einfo``: its traceback)."""

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        """Called where the task ran, when it asked to be retried because of ``exc``."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        """Called where the task ran, after every run: its state, and what it returned or
        raised (``einfo`` is None when it succeeded)."""

    # -- retrying ---------------------------------------------------------------------------
    def retry(
        self,
        args: Any = None,
        kwargs: dict[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime.datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Ask for this call to run again later (``raise self.retry(exc=e)``).

        ``self.retry(e)`` with the exception first works too. The retry waits in the broker.

        Raises:
            Retry: always when ``throw`` (the worker catches it).
            BaseException: ``exc`` (or the exception being handled) when no retries are left.
            MaxRetriesExceededError: when no retries are left and there is no exception.
            ConfigurationError: a countdown, priority or queue that cannot go in a message.
        """
        if isinstance(args, BaseException):
            exc, args = args, None
        request = self.request
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and request.retries >= limit:
            gave_up = f"{self.name}[{request.id}]: gave up after {request.retries} retries"
            raise exc or sys.exc_info()[1] or MaxRetriesExceededError(gave_up)
        if request.called_directly:
            raise exc or Retry("task called directly: nothing to retry")
        when = eta if eta is not None else countdown
        when = self.default_retry_delay if when is None else when
        check_retry(when, options)
        retry = Retry(exc=exc, when=when, args=args, kwargs=kwargs, options=options)
        if throw:
            raise retry
        return retry

    def autoretry(self, exc: BaseException) -> None:
        """Turn ``exc`` into a retry when ``autoretry_for`` covers it; return otherwise.

        Raises:
            Retry: the call will run again.
            BaseException: ``exc`` when no retries are left.
        """
        if not self.autoretry_for or not isinstance(exc, self.autoretry_for):
            return
        if self.dont_autoretry_for and isinstance(exc, self.dont_autoretry_for):
            return
        options = dict(self.retry_kwargs)
        if self.retry_backoff and "countdown" not in options:
            factor = 1.0 if self.retry_backoff is True else float(self.retry_backoff)
            options["countdown"] = backoff_delay(
                factor, self.request.retries, self.retry_backoff_max, self.retry_jitter
            )
        raise self.retry(exc=exc, **options)

    # -- signatures (canvas) ---------------------------------------------------------------
    def signature(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A signature of a call of this task (``add.signature((2, 2), countdown=1)``)."""
        immutable = bool(options.pop("immutable", False))
        return Signature(
            self.name, args or (), kwargs or {}, options=options, immutable=immutable, app=self.app
        )

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A partial signature: the previous step's result is added to its arguments."""
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: it ignores the previous step's result."""
        return self.signature(args, kwargs, immutable=True)

    def map(self, it: Iterable[Any]) -> xmap:
        """One task that calls this one with each item: ``[self(item) for item in it]``."""
        return xmap(self.s(), it, app=self.app)

    def starmap(self, it: Iterable[Any]) -> xstarmap:
        """One task that calls this one with each item as arguments: ``[self(*i) for i in it]``."""
        return xstarmap(self.s(), it, app=self.app)

    def chunks(self, it: Iterable[Any], n: int) -> chunks:
        """Split ``it`` (argument tuples) into tasks of ``n`` items each; applied, a group."""
        return chunks(self.s(), it, n, app=self.app)


if TYPE_CHECKING:

    class AsyncTask(Task[P, R]):
        """What the type checker sees of an ``async def`` task (``@app.task async def
        fetch(url: str) -> int``): its results are typed by what the coroutine returns
        (``await fetch.delay(url)`` is an ``int``), and calling it here gives the coroutine.
        No such class exists at run time: the object is the app's ``Task``."""

        def __call__(  # type: ignore[override]
            self, *args: P.args, **kwargs: P.kwargs
        ) -> Coroutine[Any, Any, R]: ...

        def run(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, R]: ...  # type: ignore[override]

    Bound = TypeVar("Bound", bound=bool, covariant=True)

    class TaskDecorator(Protocol[Bound]):
        """``@app.task(...)``: an ``async def`` becomes an ``AsyncTask``, a function a
        ``Task``; with ``bind=True`` (``TaskDecorator[Literal[True]]``) the function's first
        parameter is the task itself, not one of the call's. One generic protocol for both,
        so that ``@app.task(**options)``, where ``bind`` may hide in the dictionary, is still
        a typed decorator."""

        @overload
        def __call__(
            self: TaskDecorator[Literal[True]],
            fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]],
            /,
        ) -> AsyncTask[P, R]: ...

        @overload
        def __call__(
            self: TaskDecorator[Literal[True]], fn: Callable[Concatenate[Any, P], R], /
        ) -> Task[P, R]: ...

        @overload
        def __call__(
            self: TaskDecorator[Literal[False]], fn: Callable[P, Coroutine[Any, Any, R]], /
        ) -> AsyncTask[P, R]: ...

        @overload
        def __call__(self: TaskDecorator[Literal[False]], fn: Callable[P, R], /) -> Task[P, R]: ...
