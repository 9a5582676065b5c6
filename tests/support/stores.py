"""The fixtures of the store conformance suites (``tests/brokers``, ``tests/backends``): a table
of factories, one per implementation, and a fixture parametrized over it.

A conftest names its factories and gets its two fixtures::

    FACTORIES = {"memory": _memory, "sqlite": _sqlite, "redis": _redis}
    clock, broker = store_fixtures("broker", FACTORIES)

``clock`` is the :class:`FakeClock` the store under test reads; the store fixture builds a
fresh, empty store from each factory (the test id is the factory's name) and closes it after.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pytest

from support.clock import FakeClock
from support.redis_server import shared_server

if TYPE_CHECKING:
    from celeriac._redis.connect import RedisOptions


class Store(Protocol):
    """What the fixture needs of a store: a way to close it."""

    def close(self) -> None: ...


S = TypeVar("S", bound=Store)
Factory = Callable[[Path, FakeClock], S]


def unique_name() -> str:
    """A name no other test uses (for the process-wide memory stores)."""
    return f"test-{uuid.uuid4().hex}"


def redis_test_url() -> str:
    """The URL of the session's one Redis server."""
    return shared_server().url()


def redis_test_options() -> RedisOptions:
    """Options with a key prefix of their own, which keeps each test's keys apart on the
    session's one server."""
    from celeriac._redis.connect import RedisOptions

    return RedisOptions(global_keyprefix=f"{unique_name()}:")


def store_fixtures(name: str, factories: Mapping[str, Factory[S]]) -> tuple[Any, Any]:
    """The ``clock`` fixture and the fixture called ``name`` that yields one store per factory."""

    @pytest.fixture(name="clock")
    def clock_fixture() -> FakeClock:
        """The clock the store under test reads."""
        return FakeClock()

    @pytest.fixture(name=name, params=sorted(factories))
    def store_fixture(
        request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
    ) -> Iterator[S]:
        """A fresh, empty store of each implementation in the table (the test id is its name)."""
        built = factories[request.param](tmp_path, clock)
        yield built
        built.close()

    return clock_fixture, store_fixture
