"""The AMQP benchmark suite's own logic (``benchmarks/amqp_peers.py``, ``amqp_suite.py``): when
a run counts as finished, which names a run owns, where RabbitMQ's CPU goes in the table, and
that ``python -m benchmarks`` runs the suite after the Redis one."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # benchmarks/ is not installed: it lives beside src/
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import __main__ as bench_main  # noqa: E402
from benchmarks import amqp_peers, amqp_suite, cpu  # noqa: E402
from benchmarks.amqp_peers import RunNames, all_stored  # noqa: E402
from benchmarks.redis_suite import Samples  # noqa: E402


class FakeRedis:
    """``EXISTS`` over a set of keys, counting the calls and the keys asked about."""

    def __init__(self, present: set[str]) -> None:
        self.present = present
        self.calls: list[int] = []

    def exists(self, *keys: str) -> int:
        self.calls.append(len(keys))
        return sum(key in self.present for key in keys)


def test_a_run_is_finished_only_when_every_result_key_exists() -> None:
    keys = [f"k{i}" for i in range(2500)]
    assert all_stored(FakeRedis(set(keys)), keys)
    assert not all_stored(FakeRedis(set(keys) - {"k1234"}), keys)
    assert all_stored(FakeRedis(set()), [])


def test_the_last_key_missing_costs_one_exists_of_one_key() -> None:
    keys = [f"k{i}" for i in range(2500)]
    redis = FakeRedis(set(keys[:-1]))
    assert not all_stored(redis, keys)
    assert redis.calls == [1]


def test_a_full_check_asks_in_chunks() -> None:
    keys = [f"k{i}" for i in range(2500)]
    redis = FakeRedis(set(keys))
    all_stored(redis, keys)
    assert redis.calls == [1, amqp_peers.CHUNK, amqp_peers.CHUNK, 500]


def test_every_name_a_run_deletes_is_under_its_own_prefix() -> None:
    names = RunNames.new()
    known = names.known()
    assert known, "nothing to delete"
    assert all(name.startswith(names.prefix) for _, name in known)
    assert ("queue", f"{names.prefix}celeriac") in known
    assert ("queue", names.celery_queue) in known
    assert ("exchange", names.celery_queue) in known  # Celery's default exchange: the queue's name
    assert ("queue", f"{names.celery_node}.celery.pidbox") in known
    assert ("exchange", f"{names.prefix}celeriac.delay.0") in known
    assert RunNames.new().prefix != names.prefix


def test_the_workers_get_the_runs_names_and_urls() -> None:
    names = RunNames("bench-000000000000-", "host")
    target = amqp_peers.Target("amqp://h/", "redis://h/13", names)
    env = amqp_peers.worker("celery", target, Path("/nonexistent.log")).env
    assert env[amqp_peers.PREFIX_ENV] == names.prefix
    assert env[amqp_peers.QUEUE_ENV] == "bench-000000000000-celery"
    assert env[amqp_peers.AMQP_ENV] == "amqp://h/"
    assert env[amqp_peers.REDIS_ENV] == "redis://h/13"
    command = amqp_peers.worker_command("celery", names)
    assert command[-2:] == ["-n", "bench-000000000000-celery@host"]


def test_rabbitmqs_cpu_goes_under_all_together_and_into_a_sum() -> None:
    samples = Samples()
    samples.cpu_per_task["celeriac"] = [cpu.CpuSample(100, 10, 20, {"evalsha": 5.0})]
    samples.cpu_per_task["celery"] = [cpu.CpuSample(200, 50, 10, {"setex": 3.0})]
    samples.add("rabbit_cpu", "celeriac", 40)
    samples.add("rabbit_cpu", "celery", 60)
    rows = amqp_suite.cpu_rows(samples)
    labels = [row.scenario for row in rows]
    at = labels.index(amqp_suite.RABBIT_ROW)
    assert "all together" in labels[at - 1]
    assert labels[at + 1] == amqp_suite.ALL_ROW
    assert rows[at + 1].samples == {"celeriac": [170.0], "celery": [320.0]}
    assert any("EVALSHA" in label for label in labels[at + 2 :])


def test_the_suite_runs_after_redis_by_default() -> None:
    assert "amqp" in bench_main.SUITES
    suites = bench_main.DEFAULT_SUITES
    assert suites.index("amqp") == suites.index("redis") + 1
    assert bench_main.parse_arguments(["amqp", "--tasks", "10"]).suites == ["amqp"]
