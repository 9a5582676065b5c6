"""A FastAPI service that sends tasks and awaits their results without blocking its event loop
(``pip install fastapi uvicorn``).

    celeriac -A fastapi_tasks worker            # in examples/, one terminal
    uvicorn fastapi_app:api                     # in examples/, another terminal
    curl -X POST 'localhost:8000/add?x=2&y=3'   # {"id": "..."}
    curl 'localhost:8000/tasks/<id>?wait=5'     # {"state": "SUCCESS", "result": 5}
    curl 'localhost:8000/add/2/3'               # {"result": 5}: sent and awaited in one request
    curl -X POST localhost:8000/sum-of-squares -H 'content-type: application/json' -d '[1,2,3]'

``adelay()`` publishes without blocking the loop, ``await result`` (or ``result.aget(timeout=)``)
waits without blocking it: on Redis through redis-py's asyncio client, woken the moment the
worker stores the result. One connection pool per event loop, closed when the loop ends.
"""

from fastapi import FastAPI, HTTPException
from fastapi_tasks import add, app, divide, square, tsum

from celeriac import TimeoutError, chord, group

api = FastAPI(title="celeriac from asyncio")


@api.post("/add")
async def send_add(x: int, y: int) -> dict[str, str]:
    """Send ``add(x, y)`` and answer at once with the task's id."""
    result = await add.adelay(x, y)
    return {"id": result.id}


@api.get("/add/{x}/{y}")
async def add_now(x: int, y: int) -> dict[str, int]:
    """Send ``add(x, y)`` and await its result in the same request."""
    result = await add.adelay(x, y)
    return {"result": await result.aget(timeout=10)}


@api.get("/tasks/{task_id}")
async def task_result(task_id: str, wait: float = 0.0) -> dict[str, object]:
    """A task's result, awaited for up to ``wait`` seconds (PENDING if it is not done by then).
    A failed task answers with its error, not an exception of this service."""
    result = app.AsyncResult(task_id)
    try:
        value = await result.aget(timeout=wait, propagate=False)
    except TimeoutError:
        return {"state": "PENDING"}
    if isinstance(value, BaseException):
        return {"state": "FAILURE", "error": f"{type(value).__name__}: {value}"}
    return {"state": "SUCCESS", "result": value}


@api.get("/divide/{x}/{y}")
async def divide_now(x: float, y: float) -> dict[str, float]:
    """The task's own exception, re-raised by ``await``, becomes a 400 here."""
    try:
        return {"result": await (await divide.adelay(x, y)).aget(timeout=10)}
    except ZeroDivisionError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


@api.post("/sum-of-squares")
async def sum_of_squares(numbers: list[int]) -> dict[str, int]:
    """A chord: the squares computed in parallel by the workers, then summed by one more task."""
    workflow = chord(group(square.s(n) for n in numbers), tsum.s())
    result = await workflow.aapply_async()
    return {"result": await result.aget(timeout=30)}
