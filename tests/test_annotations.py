"""``task_annotations``: options set on tasks from the configuration, as in Celery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from celeriac import Celeriac, Task
from celeriac.exceptions import ConfigurationError
from support.processes import WorkerProcess


@pytest.fixture
def app() -> Celeriac:
    return Celeriac("annotations", broker="memory://annotations")


def test_by_name_and_star_later_entries_winning(app: Celeriac) -> None:
    app.conf.task_annotations = [
        {"*": {"max_retries": 7, "priority": 3}},
        {"annotations.add": {"priority": 9}},
    ]

    @app.task(name="annotations.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="annotations.other")
    def other() -> None: ...

    assert (add.max_retries, add.priority) == (7, 9)
    assert (other.max_retries, other.priority) == (7, 3)


def test_an_object_with_annotate(app: Celeriac) -> None:
    class Slow:
        def annotate(self, task: Task[Any, Any]) -> dict[str, Any] | None:
            return {"rate_limit": "1/m"} if task.name.endswith("slow") else None

    app.conf.task_annotations = Slow()

    @app.task(name="x.slow")
    def slow() -> None: ...

    @app.task(name="x.fast")
    def fast() -> None: ...

    assert (slow.rate_limit, fast.rate_limit) == ("1/m", None)


def test_tasks_defined_before_the_configuration_get_them_at_finalize(app: Celeriac) -> None:
    @app.task(name="early.add")
    def add() -> None: ...

    app.conf.task_annotations = {"early.add": {"acks_late": False}}
    assert add.acks_late is None
    app.finalize()
    assert add.acks_late is False


def test_a_method_wrapper_runs_around_the_handler(app: Celeriac) -> None:
    seen: list[str] = []

    def around(on_failure: Any) -> Any:
        def wrapper(self: Task[Any, Any], exc: BaseException, *rest: Any) -> Any:
            seen.append(f"{self.name}: {exc}")
            return on_failure(self, exc, *rest)

        return wrapper

    app.conf.task_annotations = {"*": {"@on_failure": around}}

    @app.task(name="w.boom")
    def boom() -> None:
        raise KeyError("gone")

    assert boom.apply().failed()
    assert seen == ["w.boom: 'gone'"]


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ({"*": {"no_such_option": 1}}, "no task option 'no_such_option'"),
        ({"*": {"rate_limit": "fast"}}, "rate"),
        (["not a dict"], "must be dicts by task name"),
    ],
)
def test_a_bad_annotation_is_an_error_that_says_why(
    app: Celeriac, setting: Any, error: str
) -> None:
    app.conf.task_annotations = setting
    with pytest.raises(ConfigurationError, match=error):

        @app.task(name="bad.one")
        def one() -> None: ...


def test_a_worker_runs_with_the_annotations(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    stamps = [client.send_task("annotated.stamp", (n,)) for n in range(5)]
    plain = client.send_task("annotated.plain", (7,))
    with WorkerProcess(
        sqlite_url, "-c", "2", app="annotated", CELERIAC_TEST_MARKS=str(marks)
    ) as worker:
        started = sorted(r.get(timeout=60) for r in stamps)
        assert plain.get(timeout=30) == 7
        worker.wait_for("annotated.plain", 10)
    assert started[-1] - started[0] >= 0.8  # '4/s': four gaps of 0.25 s at least
    assert "annotated.plain 7" in marks.read_text().splitlines()
    assert sum(line.startswith("annotated.stamp ") for line in marks.read_text().splitlines()) == 5
