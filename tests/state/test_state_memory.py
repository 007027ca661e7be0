"""In-process backend specifics: the automatic sweep, thread safety, spec caching, config and exports."""

from __future__ import annotations

import importlib
import threading

import pytest

import fsbrain.state as state_pkg
from fsbrain.core.errors import InputError
from fsbrain.state import BACKEND_CLASS_FOR_TYPE, make_backend
from fsbrain.state.base import WindowOp, WindowRead, WindowSpec
from fsbrain.state.memory import MemoryStateBackend, resident_bytes

SPEC = WindowSpec(name="dev_apps_1m", agg="count", window=60, bucket=1)


def test_automatic_sweep_deletes_idle_entities_without_expire() -> None:
    b = MemoryStateBackend(allowed_lateness=0, sweep_every=10, sweep_chunk=50)
    for i in range(1_000):
        b.update([WindowOp(SPEC, f"dev{i}")], float(i))  # one new entity per second, each idle after
    assert b.entity_count() < 200  # without the sweep all 1000 would still be held
    assert b.get([WindowRead(SPEC, "dev999")], 999.0) == [1]
    assert b.get([WindowRead(SPEC, "dev950")], 999.0) == [1]


def test_without_sweep_idle_entities_stay_until_expire() -> None:
    b = MemoryStateBackend(allowed_lateness=0, sweep_every=0)
    for i in range(300):
        b.update([WindowOp(SPEC, f"dev{i}")], float(i))
    assert b.entity_count() == 300
    assert b.expire(299.0) == 240
    assert b.entity_count() == 60


def test_concurrent_expire_and_updates_stay_consistent() -> None:
    b = MemoryStateBackend(allowed_lateness=0, sweep_every=0)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(3_000):
                b.update_get([WindowOp(SPEC, f"k{(i + offset) % 500}")], 1_000.0 + i * 0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def sweeper() -> None:
        for i in range(40):
            b.expire(1_000.0 + i)

    threads = [threading.Thread(target=work, args=(o,)) for o in (0, 250)] + [
        threading.Thread(target=sweeper)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    total = sum(b.get([WindowRead(SPEC, f"k{i}") for i in range(500)], 1_029.99))
    assert total == 6_000  # every update within the last minute is counted exactly once


def test_fresh_specs_never_share_a_cache_entry() -> None:
    b = MemoryStateBackend()
    for i in range(300):  # ids of discarded specs get reused by CPython; state must not mix
        spec = WindowSpec(name=f"s{i}", agg="sum", window=60)
        assert b.update_get([WindowOp(spec, "k", i)], 1.0) == [float(i)]
    assert b.stats()["features"] == 300


def test_stats_report_entities_and_resident_memory() -> None:
    b = MemoryStateBackend()
    b.update([WindowOp(SPEC, f"e{i}") for i in range(10)], 5.0)
    stats = b.stats()
    assert stats["entities"] == 10 and stats["clock"] == 5.0
    assert stats["rss_bytes"] == resident_bytes() or stats["rss_bytes"] > 1_000_000


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"allowed_lateness": -1}, "allowed_lateness"),
        ({"sweep_chunk": 0}, "sweep_chunk"),
        ({"allowed_lateness": float("inf")}, "allowed_lateness"),
    ],
)
def test_invalid_configuration_is_an_input_error(kw: dict[str, float], problem: str) -> None:
    with pytest.raises(InputError, match=rf"invalid memory state backend configuration.*{problem}"):
        MemoryStateBackend(**kw)  # type: ignore[arg-type]


def test_registry_matches_the_backend_classes() -> None:
    for kind, path in BACKEND_CLASS_FOR_TYPE.items():
        mod, _, cls = path.rpartition(".")
        klass = getattr(importlib.import_module(mod), cls)
        assert klass.name == kind
        assert klass.__name__.endswith("StateBackend")
        assert hasattr(importlib.import_module(mod), f"{cls}Config")
    assert isinstance(make_backend("memory"), MemoryStateBackend)
    with pytest.raises(InputError, match="unknown state backend 'disk'"):
        make_backend("disk")


def test_public_exports_are_deliberate() -> None:
    assert sorted(state_pkg.__all__) == sorted(
        [
            "AGGREGATES",
            "BACKEND_CLASS_FOR_TYPE",
            "MemoryStateBackend",
            "MemoryStateBackendConfig",
            "StateBackend",
            "WindowOp",
            "WindowRead",
            "WindowSpec",
            "make_backend",
        ]
    )
