"""``aapply_async`` on every canvas type, and a group's ``aget``, with a real worker subprocess
on SQLite and on Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from celeriac import GroupResult, ResultSet, chain, chord, dag, group
from support.waiting import wait_for

from .conftest import Flows


def test_a_signature_a_chain_and_a_chord(flows: Flows) -> None:
    app, add = flows.app, flows.add

    async def main() -> tuple[Any, ...]:
        one = await add.s(1, 2).aapply_async()
        steps = await chain(add.s(1, 1), add.s(10), add.s(100)).aapply_async()
        piped = await (add.s(2, 2) | add.s(3)).aapply_async()
        tally = app.signature("flows.tsum")
        fan_in = await chord([add.s(n, n) for n in range(4)], tally).aapply_async()
        empty = await chord([], tally).aapply_async()
        return (
            await one,
            await steps.aget(timeout=30),
            await steps.parent.parent.aget(timeout=30),
            await piped,
            await fan_in.aget(timeout=30),
            await empty.aget(timeout=30),
        )

    assert asyncio.run(main()) == (3, 112, 2, 7, 12, 0)


def test_groups_and_their_aget(flows: Flows) -> None:
    app, add = flows.app, flows.add

    async def main() -> tuple[Any, ...]:
        flat = await group(add.s(n, 1) for n in range(5)).aapply_async()
        partial = await group(add.s(1), add.s(2)).aapply_async((10,))
        nested = await group(add.s(1, 1), chain(add.s(2, 2), add.s(1))).aapply_async()
        assert isinstance(flat, GroupResult) and isinstance(nested, GroupResult)
        restored = GroupResult.restore(flat.id, app)  # saved, as apply_async saves it
        assert restored is not None and [r.id for r in restored] == [r.id for r in flat]
        seen: list[tuple[str, Any]] = []
        await partial.aget(timeout=30, callback=lambda task_id, v: seen.append((task_id, v)))
        assert [v for _, v in seen] == [11, 12]
        loose = ResultSet([await add.adelay(3, 3), await add.adelay(4, 4)])
        return await flat.aget(timeout=30), await nested, await loose.aget(timeout=30)

    assert asyncio.run(main()) == ([1, 2, 3, 4, 5], [2, 5], [6, 8])


def test_a_group_aget_raises_the_first_failure_or_returns_it(flows: Flows) -> None:
    async def main() -> list[Any]:
        mixed = await group(flows.add.s(1, 1), flows.fails.s(2)).aapply_async()
        try:
            await mixed.aget(timeout=30)
        except KeyError as exc:
            assert "failed with" in str(exc)
        else:
            raise AssertionError("a failed member must raise")
        values: list[Any] = await mixed.aget(timeout=30, propagate=False)
        return values

    first, second = asyncio.run(main())
    assert first == 2 and isinstance(second, KeyError)


def test_map_starmap_chunks_and_a_dag(flows: Flows) -> None:
    app, add = flows.app, flows.add

    async def main() -> tuple[Any, ...]:
        mapped = await flows.tsum.map([[1, 2], [3, 4]]).aapply_async()
        starred = await add.starmap([(1, 2), (3, 4)]).aapply_async()
        chunked = await add.chunks([(n, n) for n in range(6)], 2).aapply_async()
        flow = dag("aio", app=app)
        first = flow.add(app.signature("flows.stamp", kwargs={"name": "a"}), name="a")
        flow.add(app.signature("flows.stamp", kwargs={"name": "b"}), after=[first], name="b")
        run = await flow.aapply_async()
        done = await asyncio.to_thread(run.get, timeout=30)
        return await mapped, await starred, await chunked.aget(timeout=30), sorted(done)

    mapped, starred, chunked, nodes = asyncio.run(main())
    assert mapped == [3, 7]
    assert starred == [3, 7]
    assert chunked == [[0, 2], [4, 6], [8, 10]]
    assert nodes == ["a", "b"]


def test_links_given_to_aapply_async_run(flows: Flows, tmp_path: Path) -> None:
    log = tmp_path / "log"
    app = flows.app
    logged = app.signature("flows.log_value", kwargs={"path": str(log)})

    async def main() -> int:
        return await (await flows.add.aapply_async((20, 22), link=logged)).aget(timeout=30)

    assert asyncio.run(main()) == 42
    assert wait_for(lambda: log.exists() and "value 42" in log.read_text(), 30)
