"""The asyncio client (issue 13): ``adelay``, ``await result``, ``aget``, with a real worker
subprocess on SQLite and on Redis.

No test asserts a duration: that the loop runs on while a coroutine waits is shown by another
coroutine that keeps ticking, and a timeout by the error it raises.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from celeriac import Celeriac, group
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import PublishError, TimeoutError
from support.redis_server import RedisServer
from support.waiting import wait_for

from .conftest import Flows


def test_adelay_then_await_the_result(flows: Flows) -> None:
    async def main() -> tuple[int, int, int, int]:
        first = await flows.add.adelay(2, 3)
        by_name = await flows.app.asend_task("flows.add", (10, 20))
        with_options = await flows.add.aapply_async((1, 1), countdown=0.1, priority=5)
        signature = await flows.add.s(4).adelay(4)
        return (
            await first,
            await by_name.aget(timeout=30),
            await with_options.aget(timeout=30),
            await signature.aget(timeout=30),
        )

    assert asyncio.run(main()) == (5, 30, 2, 8)


def test_aget_times_out_and_propagates_as_get_does(flows: Flows) -> None:
    async def main() -> None:
        slow = await flows.slow_add.adelay(1, 1, 5.0)
        with pytest.raises(TimeoutError, match=r"did not finish within 0\.2 seconds"):
            await slow.aget(timeout=0.2)
        failed = await flows.fails.adelay(7)
        with pytest.raises(KeyError, match="failed with"):
            await failed
        error = await failed.aget(timeout=30, propagate=False)
        assert isinstance(error, KeyError)
        assert failed.state == "FAILURE"  # the sync side reads the same record
        with pytest.raises(TimeoutError):
            await (await flows.app.asend_task("flows.add", (1, 2), countdown=30)).aget(timeout=0)

    asyncio.run(main())


def test_the_loop_runs_on_while_a_coroutine_awaits_a_result(flows: Flows) -> None:
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def main() -> int:
        stop = asyncio.Event()
        ticking = asyncio.create_task(ticker(stop))
        await asyncio.sleep(0)
        before = ticks
        value = await (await flows.slow_add.adelay(2, 2, 1.0)).aget(timeout=30)
        during = ticks - before
        stop.set()
        await ticking
        assert during >= 3, f"the ticker ticked {during} times during a one-second wait"
        return value

    assert asyncio.run(main()) == 4


def test_many_coroutines_await_at_once(flows: Flows) -> None:
    async def one(n: int) -> int:
        return await (await flows.add.adelay(n, n)).aget(timeout=60)

    async def main() -> list[int]:
        return await asyncio.gather(*(one(n) for n in range(20)))

    assert asyncio.run(main()) == [2 * n for n in range(20)]


def test_a_cancelled_await_leaves_the_client_working(flows: Flows) -> None:
    async def main() -> int:
        slow = await flows.slow_add.adelay(1, 1, 3.0)
        waiting = asyncio.create_task(slow.aget(timeout=30))
        done, _ = await asyncio.wait([waiting], timeout=0.3)
        assert not done  # still waiting: cancel it, as a client that went away does
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        fast = await (await flows.add.adelay(20, 1)).aget(timeout=30)
        assert await slow.aget(timeout=30) == 2
        return fast

    assert asyncio.run(main()) == 21


def test_one_app_serves_several_event_loops_in_turn(flows: Flows) -> None:
    async def main(n: int) -> int:
        return await (await flows.add.adelay(n, 1)).aget(timeout=30)

    assert [asyncio.run(main(n)) for n in range(3)] == [1, 2, 3]
    # ... and the thread side still works after them.
    assert flows.add.delay(5, 5).get(timeout=30) == 10


def test_a_result_sent_by_delay_can_be_awaited_and_one_sent_by_adelay_got(flows: Flows) -> None:
    sync_sent = flows.add.delay(3, 4)

    async def main() -> tuple[int, str]:
        async_sent = await flows.add.adelay(5, 6)
        return await sync_sent, async_sent.id

    value, task_id = asyncio.run(main())
    assert value == 7
    assert flows.app.AsyncResult(task_id).get(timeout=30) == 11


def test_adelay_raises_publish_error_when_the_broker_is_down() -> None:
    app = Celeriac("down", broker="redis://127.0.0.1:1/0", broker_publish_timeout=0.3)

    @app.task(name="flows.add")
    def add(x: int, y: int) -> int:
        return x + y

    async def main() -> None:
        with pytest.raises(
            PublishError, match=r"task not enqueued: Redis at redis://127\.0\.0\.1:1"
        ):
            await add.adelay(1, 2)
        with pytest.raises(PublishError, match=r"refused the connection|unreachable"):
            await add.aapply_async((1, 2), retry=False)
        policy = {"max_retries": 2, "interval_start": 0.01}
        with pytest.raises(PublishError, match="unreachable"):
            await add.aapply_async((1, 2), retry_policy=policy)

    asyncio.run(main())
    with pytest.raises(PublishError, match="task not enqueued"):
        add.delay(1, 2)


def test_the_message_of_adelay_is_the_one_delay_sends() -> None:
    broker = MemoryBroker(clock=lambda: 1_700_000_000.0)
    app = Celeriac("same", broker=broker, backend="memory://")

    @app.task(queue="q", priority=3, soft_time_limit=5)
    def add(x: int, y: int) -> int:
        return x + y

    sent = [
        add.apply_async((1, 2), task_id="t1", expires=60, headers={"h": 1}),
        add.delay(1, 2),
    ]

    async def main() -> list[str]:
        return [
            (await add.aapply_async((1, 2), task_id="t1", expires=60, headers={"h": 1})).id,
            (await add.adelay(1, 2)).id,
        ]

    awaited = asyncio.run(main())
    deliveries = broker.fetch(["q"], 10, lease=30, consumer="test", timeout=0)
    deliveries += broker.fetch(["q"], 10, lease=30, consumer="test", timeout=0)
    bodies = sorted(d.body for d in deliveries)
    assert len(bodies) == 4
    # The same call, the same bytes (one task id given; the other two differ only by theirs).
    explicit = [b for b in bodies if b'"t1"' in b]
    assert len(explicit) == 2 and explicit[0] == explicit[1]
    plain = [b for b in bodies if b'"t1"' not in b]
    assert plain[0].replace(sent[1].id.encode(), b"ID").replace(awaited[1].encode(), b"ID") == (
        plain[1].replace(sent[1].id.encode(), b"ID").replace(awaited[1].encode(), b"ID")
    )


def test_each_event_loop_has_its_own_redis_connections_closed_with_it(tmp_path: Path) -> None:
    with RedisServer(tmp_path).start() as server:
        app = Celeriac("loops", broker=server.url())
        admin = server.client()
        baseline = len(admin.client_list())

        async def main() -> int:
            results = await asyncio.gather(*(app.asend_task("x.noop") for _ in range(3)))
            waits = [r.aget(timeout=0.3) for r in results]
            for outcome in await asyncio.gather(*waits, return_exceptions=True):
                assert isinstance(outcome, TimeoutError)  # no worker: each waited on its own
            return len(admin.client_list())

        assert asyncio.run(main()) > baseline
        assert wait_for(lambda: len(admin.client_list()) == baseline, 10)
        admin.script_flush()  # Redis lost its scripts: the EVALSHA is sent again with its source
        assert asyncio.run(main()) > baseline  # a new loop: new connections, and they work
        assert wait_for(lambda: len(admin.client_list()) == baseline, 10)
        assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 6}

        async def many() -> int:  # past 500 messages: chunks in one MULTI/EXEC
            sig = app.signature("x.noop")
            return len(await group(sig.clone() for _ in range(1200)).aapply_async())

        assert asyncio.run(many()) == 1200
        assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 1206}
        app.close()


def test_in_eager_mode_adelay_runs_the_task_here_and_await_reads_it() -> None:
    app = Celeriac("eager", broker=MemoryBroker(), backend="memory://", task_always_eager=True)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    async def main() -> tuple[int, int, list[int]]:
        one = await add.adelay(1, 2)
        two = await add.aapply_async((2, 3))
        both = await group(add.s(1, 1), add.s(2, 2)).aapply_async()
        return await one, await two.aget(timeout=0), await both

    assert asyncio.run(main()) == (3, 5, [2, 4])
