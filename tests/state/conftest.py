"""Fixtures for the state-backend suites: one factory per backend, the same tests for each."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fsbrain.state.base import StateBackend
from fsbrain.state.memory import MemoryStateBackend

# "memory" runs the compiled hot path (fsbrain._speedups) where it is built; "memory-python" forces the
# pure-Python reference, so every conformance test checks that both give the same answers.
BACKENDS = ["memory", "memory-python", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BACKENDS)
def make_backend(request: pytest.FixtureRequest) -> Iterator[Callable[..., StateBackend]]:
    """Return ``(allowed_lateness=..., sweep=...) -> StateBackend`` for the parametrised backend.

    Every call gives a fresh, empty backend (Redis: its own key prefix in the test database).
    """
    made: list[StateBackend] = []
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    def factory(*, allowed_lateness: float = 60.0, sweep: bool = False) -> StateBackend:
        b: StateBackend
        if redis_url is None:
            b = MemoryStateBackend(
                allowed_lateness=allowed_lateness, sweep_every=7 if sweep else 0, sweep_chunk=3,
                speedups=False if request.param == "memory-python" else None,
            )
        else:
            from fsbrain.state.redis import RedisStateBackend

            b = RedisStateBackend(
                url=redis_url, prefix=f"t{uuid.uuid4().hex[:10]}", allowed_lateness=allowed_lateness
            )
        made.append(b)
        return b

    yield factory
    for b in made:
        b.close()


@pytest.fixture
def backend(make_backend: Callable[..., StateBackend]) -> Any:
    """A fresh backend with the default settings (parametrised: memory, redis)."""
    return make_backend()
