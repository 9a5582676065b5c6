"""``GET /api/events``: the live feed as server-sent events, which every page listens to.

Each message is ``event: task`` with the new task events as a JSON list (Celery's flat
shape), or ``event: ping`` every few seconds when nothing happened, on which a page refreshes
what task events do not announce (queue lengths, heartbeats). The feed is read from the
backend (``read_events``), so the dashboard needs no worker of its own and several
dashboards may watch one app.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from celeriac.dashboard.reading import hide_args
from celeriac.exceptions import CeleriacError
from celeriac.history import TaskEvent

POLL = 0.5  # seconds between reads of the feed
PING = 2.0  # seconds of quiet before a ping


async def events(request: Request) -> StreamingResponse:
    """The stream; ``?limit=N`` ends it after N messages (for scripts and tests)."""
    limit = int(request.query_params.get("limit") or 0)
    return StreamingResponse(
        _stream(request, limit),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(request: Request, limit: int) -> AsyncIterator[str]:
    app = request.app.state.celeriac
    backend, hidden = app.backend, hide_args(app)
    cursor: str | None = None
    sent, quiet_since = 0, time.monotonic()
    yield "retry: 2000\n\n"
    while not limit or sent < limit:
        try:
            found, cursor = await run_in_threadpool(backend.read_events, cursor, 200)
        except CeleriacError as exc:  # the backend is away: say so, and try again
            found, message = [], f"event: error\ndata: {json.dumps(str(exc))}\n\n"
            yield message
        if found:
            payload = json.dumps([_shown(event, hidden) for event in found], default=str)
            yield f"event: task\ndata: {payload}\n\n"
            sent, quiet_since = sent + 1, time.monotonic()
        elif time.monotonic() - quiet_since >= PING:
            yield "event: ping\ndata: {}\n\n"
            sent, quiet_since = sent + 1, time.monotonic()
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL)


def _shown(event: TaskEvent, hidden: bool) -> dict[str, Any]:
    shown = event.to_dict()
    if hidden:  # dashboard_hide_args: not on the pages, not in the feed either
        shown.pop("args", None)
        shown.pop("kwargs", None)
    return shown
