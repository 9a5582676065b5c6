"""The dashboard's ASGI app (:func:`create_app`) and serving it with uvicorn (:func:`serve`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from celeriac import __version__
from celeriac.dashboard import api, live, metrics, pages
from celeriac.dashboard.indexing import BackgroundIndexer
from celeriac.dashboard.options import DashboardOptions
from celeriac.dashboard.security import ASGIApp, Gate

if TYPE_CHECKING:
    from celeriac.app import Celeriac

STATIC = Path(__file__).with_name("static")


def create_app(app: Celeriac, options: DashboardOptions | None = None) -> ASGIApp:
    """The dashboard of ``app`` as an ASGI app, behind its gate (credentials, CSRF, same
    origin; see ``security``). It does not check the address: :func:`serve` does.
    """
    options = options or DashboardOptions()
    histogram = metrics.RuntimeHistogram()

    async def csrf(request: Request) -> Response:
        return JSONResponse({"token": request.state.csrf})

    async def openapi(request: Request) -> Response:
        return JSONResponse(api.openapi(f"celeriac dashboard ({app.main or 'app'})", __version__))

    def scrape() -> str:
        return metrics.render(app, histogram)

    async def prometheus(request: Request) -> Response:
        body = await run_in_threadpool(scrape)
        return PlainTextResponse(body, media_type=metrics.CONTENT_TYPE)

    routes = [
        Route("/api/csrf", csrf),
        Route("/api/openapi.json", openapi),
        Route("/api/events", live.events),
        Route("/metrics", prometheus),
        *[api.route(endpoint) for endpoint in api.ENDPOINTS],
        *pages.ROUTES,
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(web: Starlette) -> AsyncIterator[None]:
        indexer = BackgroundIndexer(app.backend)  # keeps the history indexed while it serves
        indexer.start()
        try:
            yield
        finally:
            indexer.stop()

    web = Starlette(routes=routes, lifespan=lifespan)
    web.state.celeriac = app
    return Gate(web, options)


def serve(app: Celeriac, options: DashboardOptions, *, ready: str | None = None) -> None:
    """Serve the dashboard until interrupted; ``ready`` is printed once it listens.

    Raises:
        ConfigurationError: a public address without credentials (nothing is served), or
            the dashboard extra is not installed.
    """
    options.check()
    import uvicorn

    config = uvicorn.Config(
        create_app(app, options),
        host=options.address,
        port=options.port,
        log_level="warning",
        timeout_graceful_shutdown=2,  # live streams never end by themselves
    )
    server = uvicorn.Server(config)
    if ready:
        print(ready, flush=True)
    server.run()
