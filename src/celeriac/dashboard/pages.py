"""The HTML pages: each renders the same data as its ``/api/`` twin through a Jinja2 template.

A page marks the parts that change with ``data-live``; ``static/dashboard.js`` fetches the page
again when the live feed says something happened and swaps those parts in, so the page updates
without a reload and without a second rendering path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from celeriac.dashboard import drawing, history_view, reading
from celeriac.dashboard.api import status_of
from celeriac.exceptions import CeleriacError
from celeriac.history import TaskEntry

if TYPE_CHECKING:
    from celeriac.app import Celeriac

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
STATES = ("PENDING", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED", "REJECTED")


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.globals["state_colours"] = drawing.STATE_COLOURS


def page(template: str, gather: Callable[[Celeriac, Request], dict[str, Any]]) -> Any:
    """A page endpoint: ``gather`` (run in the thread pool: it blocks on the stores) gives the
    template's values; a celeriac error becomes the error page with the API's status."""

    async def render(request: Request) -> Response:
        app = request.app.state.celeriac
        try:
            values = await run_in_threadpool(gather, app, request)
        except CeleriacError as exc:
            context = {"error": str(exc), "title": "Error"}
            return _render(request, "error.html", context, status_of(exc))
        return _render(request, template, values, 200)

    return render


def _render(request: Request, template: str, values: dict[str, Any], status: int) -> Response:
    app = request.app.state.celeriac
    context = {
        "csrf": request.state.csrf,
        "app_name": app.main or "celeriac",
        "connection": reading.connection(app),
        "path": request.url.path,
        **values,
    }
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status)


def _overview(app: Celeriac, request: Request) -> dict[str, Any]:
    found = history_view.overview(app)
    return {
        "title": "Overview",
        "overview": found,
        "charts": drawing.series_charts(found["series"]),
        "queues": reading.queues(app),
    }


def _tasks(app: Celeriac, request: Request) -> dict[str, Any]:
    filters = history_view.TaskFilters.from_params(request.query_params)
    return {
        "title": "Tasks",
        "filters": filters,
        "found": history_view.task_list(app, filters),
        "states": STATES,
        "query": {k: v for k, v in request.query_params.items() if k != "page"},
    }


def _task(app: Celeriac, request: Request) -> dict[str, Any]:
    task_id = request.path_params["task_id"]
    found = history_view.task_detail(app, task_id)
    if found is None:
        # As Celery says of an id it does not know: PENDING. The page stays live, so a task
        # opened as soon as it is sent shows itself once its first event is recorded.
        found = history_view.entry_dict(app, TaskEntry(task_id=task_id), timeline=True)
        found["unknown"] = True
    return {"title": f"Task {task_id}", "task": found}


def _workers(app: Celeriac, request: Request) -> dict[str, Any]:
    return {"title": "Workers", "workers": history_view.workers(app)}


def _queues(app: Celeriac, request: Request) -> dict[str, Any]:
    return {
        "title": "Queues",
        "queues": reading.queues(app),
        "dead_letters": reading.dead_letters(app),
    }


def _schedules(app: Celeriac, request: Request) -> dict[str, Any]:
    return {"title": "Schedules", "entries": reading.schedules(app)}


def _dag(app: Celeriac, request: Request) -> dict[str, Any]:
    run = reading.dag_run(app, request.path_params["run_id"])
    return {"title": f"DAG run {run['name']}", "run": run, "graph": drawing.dag_graph(run["nodes"])}


def _dags(app: Celeriac, request: Request) -> dict[str, Any]:
    return {"title": "DAG runs", "runs": reading.dag_runs(app)}


ROUTES = [
    Route("/", page("overview.html", _overview)),
    Route("/tasks", page("tasks.html", _tasks)),
    Route("/tasks/{task_id}", page("task.html", _task)),
    Route("/workers", page("workers.html", _workers)),
    Route("/queues", page("queues.html", _queues)),
    Route("/schedules", page("schedules.html", _schedules)),
    Route("/dags", page("dags.html", _dags)),
    Route("/dags/{run_id}", page("dag.html", _dag)),
]
