"""The JSON API (``/api/...``): one table of endpoints, from which both the routes and the
OpenAPI document (``/api/openapi.json``) are made, so the two cannot drift apart.

Handlers are plain functions of the app, the path and query parameters, and the JSON body;
they block on the stores, so each runs in Starlette's thread pool. Celeriac's errors become
HTTP statuses: 404 for what does not exist, 409 for an action refused, 400 for a bad
argument, 503 when a store cannot be reached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from celeriac.canvas.dag import DagRunNotFound
from celeriac.dashboard import actions, history_view, reading
from celeriac.exceptions import CeleriacError, ConfigurationError

if TYPE_CHECKING:
    from celeriac.app import Celeriac

Params = Mapping[str, str]
Handler = Callable[["Celeriac", Params, dict[str, Any]], Any]


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint: its method, path, handler, and what the OpenAPI document says."""

    method: str
    path: str
    handler: Handler
    summary: str
    query: tuple[str, ...] = ()
    body: Mapping[str, str] = field(default_factory=dict)  # JSON body field -> its type


def _tags(body: dict[str, Any]) -> list[str] | None:
    """The ``tags`` of a dead-letter action: a list, or ``"all"`` for every one.

    Raises:
        ConfigurationError: neither (an empty body must not mean "all").
    """
    tags = body.get("tags")
    if tags == "all":
        return None
    if isinstance(tags, list) and tags and all(isinstance(t, str) for t in tags):
        return tags
    raise ConfigurationError('give "tags": a list of dead-letter tags, or "all"')


def _count(body: dict[str, Any]) -> int:
    n = body.get("n", 1)
    if not isinstance(n, int) or n < 1:
        raise ConfigurationError('"n" must be a positive whole number')
    return n


def _pool_handler(what: str) -> Handler:
    def handle(app: Celeriac, params: Params, body: dict[str, Any]) -> Any:
        n = _count(body) if what != "shutdown" else 1
        return actions.pool(app, params["hostname"], what, n)

    return handle


def _schedule_handler(what: str) -> Handler:
    def handle(app: Celeriac, params: Params, body: dict[str, Any]) -> Any:
        return actions.schedule(app, params["name"], what)

    return handle


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/api/overview", lambda a, p, b: history_view.overview(a), "Counts and series"),
    Endpoint(
        "GET",
        "/api/tasks",
        lambda a, p, b: history_view.task_list(a, history_view.TaskFilters.from_params(p)),
        "Search the task history, newest first",
        query=("state", "name", "worker", "since", "until", "text", "page", "size"),
    ),
    Endpoint(
        "POST",
        "/api/tasks/retry-failed",
        lambda a, p, b: actions.retry_failed(a, b.get("name")),
        "Retry every failed task (of one task name, if given)",
        body={"name": "string"},
    ),
    Endpoint("GET", "/api/tasks/{task_id}", lambda a, p, b: _task(a, p["task_id"]), "One task"),
    Endpoint(
        "POST",
        "/api/tasks/{task_id}/revoke",
        lambda a, p, b: actions.revoke(a, p["task_id"]),
        "Revoke a task",
    ),
    Endpoint(
        "POST",
        "/api/tasks/{task_id}/terminate",
        lambda a, p, b: actions.revoke(a, p["task_id"], terminate=True),
        "Revoke a task and kill it where it runs",
    ),
    Endpoint(
        "POST",
        "/api/tasks/{task_id}/retry",
        lambda a, p, b: actions.retry(a, p["task_id"]),
        "Send the task again as a new task linked to it",
    ),
    Endpoint("GET", "/api/workers", lambda a, p, b: history_view.workers(a), "Workers"),
    *(
        Endpoint(
            "POST",
            f"/api/workers/{{hostname}}/{what}",
            _pool_handler(what),
            summary,
            body={"n": "integer"} if what != "shutdown" else {},
        )
        for what, summary in (
            ("grow", "Grow a worker's pool"),
            ("shrink", "Shrink a worker's pool"),
            ("shutdown", "Shut a worker down"),
        )
    ),
    Endpoint("GET", "/api/queues", lambda a, p, b: reading.queues(a), "Queue lengths"),
    Endpoint(
        "GET",
        "/api/deadletters",
        lambda a, p, b: reading.dead_letters(a, int(p.get("limit") or 100)),
        "Dead letters, newest first",
        query=("limit",),
    ),
    Endpoint(
        "POST",
        "/api/deadletters/requeue",
        lambda a, p, b: actions.requeue_dead_letters(a, _tags(b), b.get("queue")),
        'Requeue dead letters ("tags": [...] or "all"; "queue" to send them elsewhere)',
        body={"tags": "array", "queue": "string"},
    ),
    Endpoint(
        "POST",
        "/api/deadletters/delete",
        lambda a, p, b: actions.delete_dead_letters(a, _tags(b)),
        'Delete dead letters ("tags": [...] or "all")',
        body={"tags": "array"},
    ),
    Endpoint("GET", "/api/schedules", lambda a, p, b: reading.schedules(a), "Beat entries"),
    *(
        Endpoint(
            "POST",
            f"/api/schedules/{{name}}/{what}",
            _schedule_handler(what),
            f"{what.capitalize()} a beat entry",
        )
        for what in ("pause", "resume", "run")
    ),
    Endpoint(
        "GET",
        "/api/dags",
        lambda a, p, b: reading.dag_runs(a, _limit(p)),
        f"Recent DAG runs, newest first ({reading.DAG_RUNS_SHOWN} unless limit says, at most "
        f"{reading.DAG_RUNS_KEPT})",
        query=("limit",),
    ),
    Endpoint(
        "GET", "/api/dags/{run_id}", lambda a, p, b: reading.dag_run(a, p["run_id"]), "A DAG run"
    ),
    Endpoint(
        "POST",
        "/api/dags/{run_id}/retry",
        lambda a, p, b: actions.retry_dag(a, p["run_id"]),
        "Retry a DAG run's failed nodes",
    ),
    Endpoint(
        "POST",
        # A node's name may hold a slash: the rest of the path up to /retry is the name.
        "/api/dags/{run_id}/nodes/{node:path}/retry",
        lambda a, p, b: actions.retry_dag_node(a, p["run_id"], p["node"]),
        "Retry one failed node of a DAG run (and the nodes that did not run because of it)",
    ),
)


def _limit(params: Params) -> int:
    """The ``limit`` query parameter of a list, when given.

    Raises:
        ConfigurationError: it is not a positive whole number.
    """
    raw = params.get("limit") or str(reading.DAG_RUNS_SHOWN)
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError('"limit" must be a positive whole number')
    return int(raw)


def _task(app: Celeriac, task_id: str) -> dict[str, Any]:
    found = history_view.task_detail(app, task_id)
    if found is None:
        raise actions.NotFound(f"no task {task_id}")
    return found


def status_of(exc: CeleriacError) -> int:
    """The HTTP status of a celeriac error raised by a handler."""
    if isinstance(exc, actions.NotFound | DagRunNotFound):
        return 404
    if isinstance(exc, actions.ActionRefused):
        return 409
    if isinstance(exc, ConfigurationError):
        return 400
    return 503  # a store that cannot be reached


def route(endpoint: Endpoint) -> Route:
    """The Starlette route of ``endpoint``."""

    async def serve(request: Request) -> Response:
        params = {**request.query_params, **request.path_params}
        body: dict[str, Any] = {}
        if request.method == "POST":
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                return JSONResponse({"error": "the body is not JSON"}, status_code=400)
            if not isinstance(body, dict):
                return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
        app = request.app.state.celeriac
        try:
            found = await run_in_threadpool(endpoint.handler, app, params, body)
        except CeleriacError as exc:
            return JSONResponse({"error": str(exc)}, status_code=status_of(exc))
        return JSONResponse(found)

    return Route(endpoint.path, serve, methods=[endpoint.method])


def _openapi_path(path: str) -> str:
    """A route's path as OpenAPI writes it: ``{node}``, not Starlette's ``{node:path}``."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def openapi(title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of :data:`ENDPOINTS`."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "responses": {
                "200": {"description": "OK (JSON)"},
                "401": {"description": "credentials required"},
                "403": {"description": "cross-site request, or CSRF token missing"},
                "404": {"description": "no such thing"},
                "409": {"description": "refused"},
                "503": {"description": "a store cannot be reached"},
            },
        }
        path = _openapi_path(endpoint.path)
        parameters = [
            {"name": name[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for name in path.split("/")
            if name.startswith("{")
        ]
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in endpoint.query
        ]
        if parameters:
            operation["parameters"] = parameters
        if endpoint.method == "POST":
            operation["parameters"] = [
                *parameters,
                {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "from GET /api/csrf",
                },
            ]
            props = {name: {"type": kind} for name, kind in endpoint.body.items()}
            operation["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {"schema": {"type": "object", "properties": props}}
                },
            }
        paths.setdefault(path, {})[endpoint.method.lower()] = operation
    for path, summary in (
        ("/api/csrf", "The CSRF token that POSTs send in X-CSRF-Token"),
        ("/api/events", "Live task events (text/event-stream)"),
        ("/metrics", "Prometheus metrics (text format 0.0.4)"),
    ):
        paths[path] = {"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "token": {"type": "http", "scheme": "bearer"},
            }
        },
        "paths": paths,
    }
