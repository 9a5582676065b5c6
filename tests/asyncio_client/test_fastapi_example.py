"""``examples/fastapi_app.py``, driven through httpx's ASGI transport, against a real
``celeriac -A fastapi_tasks worker`` subprocess started in ``examples/`` (SQLite and Redis)."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from support.processes import WorkerProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def example(sqlite_or_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example imported afresh on this test's broker, with its worker running."""
    monkeypatch.setenv("CELERIAC_BROKER_URL", sqlite_or_redis_url)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    for name in ("fastapi_app", "fastapi_tasks"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module("fastapi_app")
    worker = WorkerProcess(sqlite_or_redis_url, "-c", "4", app="fastapi_tasks")
    worker.cwd = EXAMPLES
    with worker:
        yield module
    module.app.close()
    for name in ("fastapi_app", "fastapi_tasks"):
        sys.modules.pop(name, None)


def test_the_fastapi_example(example: ModuleType) -> None:
    async def main() -> None:
        transport = httpx.ASGITransport(app=example.api)
        async with httpx.AsyncClient(transport=transport, base_url="http://example") as http:
            sent = (await http.post("/add", params={"x": 2, "y": 3})).json()
            done = await http.get(f"/tasks/{sent['id']}", params={"wait": 30})
            assert done.json() == {"state": "SUCCESS", "result": 5}
            both = await asyncio.gather(*(http.get(f"/add/{n}/{n}") for n in range(5)))
            assert [r.json() for r in both] == [{"result": 2 * n} for n in range(5)]
            squares = await http.post("/sum-of-squares", json=[1, 2, 3, 4])
            assert squares.json() == {"result": 30}
            failed = await http.get("/divide/1/0")
            assert failed.status_code == 400 and "division" in failed.json()["detail"]
            unknown = await http.get("/tasks/no-such-task")
            assert unknown.json() == {"state": "PENDING"}

    asyncio.run(main())
