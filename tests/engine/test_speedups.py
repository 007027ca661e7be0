"""The compiled hot paths (fsbrain._speedups) against the pure-Python reference they replace."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain import speedups
from fsbrain.engine import Engine, default_policy_path, load_policy
from fsbrain.state.base import WindowOp, WindowRead, WindowSpec
from fsbrain.state.memory import MemoryStateBackend

needs_ext = pytest.mark.skipif(speedups.load(True) is None, reason="fsbrain._speedups is not built")

SPECS = [
    WindowSpec(name="c", agg="count", window=600, bucket=60),
    WindowSpec(name="s", agg="sum", window=600, bucket=60),
    WindowSpec(name="m", agg="mean", window=600, bucket=60),
    WindowSpec(name="lo", agg="min", window=600, bucket=60),
    WindowSpec(name="hi", agg="max", window=600, bucket=60),
    WindowSpec(name="d", agg="distinct", window=600, bucket=60),
    WindowSpec(name="d1", agg="distinct", window=60),
]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["a", "b", "c", "", "1"]),
)


def test_extension_is_built_where_a_compiler_is() -> None:
    """CI builds the extension; a silent fallback to Python would hide a 2x slowdown."""
    if os.environ.get("FSBRAIN_SPEEDUPS", "1") == "0":
        pytest.skip("FSBRAIN_SPEEDUPS=0")
    assert speedups.load(True) is not None, "fsbrain._speedups did not build: run `pip install -e .` with gcc"


def _run(backend: MemoryStateBackend, stream: list[tuple[float, list[WindowOp]]]) -> list[Any]:
    out: list[Any] = []
    for ts, ops in stream:
        try:
            out.append(backend.update_get(ops, ts))
        except Exception as exc:  # invalid values must fail the same way
            out.append((type(exc).__name__, str(exc)))
        reads = [WindowRead(s, k) for s in SPECS for k in ("k1", "k2")]
        out.append(backend.get(reads, ts))
        out.append(backend.get(reads, ts - 90))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


@needs_ext
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 3000), st.lists(
    st.tuples(st.sampled_from(SPECS), st.sampled_from(["k1", "k2"]), VALUES), min_size=1, max_size=6)),
    min_size=1, max_size=40), st.sampled_from([0.0, 30.0, 600.0]))
def test_state_hot_path_matches_python(events: list[tuple[float, list[Any]]], lateness: float) -> None:
    stream = [(ts, [WindowOp(*o) for o in ops]) for ts, ops in events]
    fast = MemoryStateBackend(allowed_lateness=lateness, speedups=True)
    slow = MemoryStateBackend(allowed_lateness=lateness, speedups=False)
    assert fast._hot is not None and slow._hot is None
    assert _same(_run(fast, stream), _run(slow, stream))


@needs_ext
def test_state_hot_path_rejects_non_ops() -> None:
    b = MemoryStateBackend(speedups=True)
    with pytest.raises(TypeError, match="WindowOp"):
        b.update_get(["not an op"], 10.0)  # type: ignore[list-item]


@needs_ext
def test_engine_decisions_identical_with_and_without_speedups() -> None:
    from fsbrain.domains.credit.simulator import iter_applications
    from fsbrain.engine.backtest import prepare_records

    events = [r for r in prepare_records(iter_applications(3000, seed=9, days=5), b"k" * 32, workers=1)
              if "error" not in r]
    pol = load_policy(default_policy_path())
    out = []
    for flag in (True, False):
        eng = Engine(state=MemoryStateBackend(speedups=flag), speedups=flag)
        eng.set_policy(pol)
        got = []
        for ev in events:
            d, _ = eng.decide(ev["event_type"], ev["data"], event_id=ev["event_id"], timestamp=ev["timestamp"])
            got.append((d.outcome, d.score, d.labels, d.features, [r.to_dict() for r in d.reasons], d.errors))
        out.append(got)
    assert out[0] == out[1]
    assert any(g[1] > 0 for g in out[0])  # the stream exercises rules, not only empty windows


@needs_ext
def test_engine_feature_errors_identical_with_and_without_speedups() -> None:
    """Odd values (strings for sums, booleans, nested objects) take the Python slow path in both."""
    import yaml

    doc = {
        "policy": "odd", "version": 1, "event_type": "odd_event",
        "outcomes": [{"name": "approve", "min_score": 0}, {"name": "reject", "min_score": 5}],
        "features": [
            {"name": "amt_sum", "agg": "sum", "key": ["user"], "value": "amount", "window": "1h"},
            {"name": "amt_max", "agg": "max", "key": ["user"], "value": "amount", "window": "1h",
             "when": "kind == 'a' or kind == 'b'"},
            {"name": "tags_n", "agg": "distinct", "key": ["tags"], "value": "amount", "window": "1h"},
            {"name": "pair_n", "agg": "count", "key": ["user", "meta.site"], "window": "1h",
             "when": "kind != 'x'"},
        ],
        "rules": [{"id": "R1", "label": "gambling", "weight": 10, "when": "f.amt_sum > 5"}],
    }
    from fsbrain.engine.policy import compile_policy

    pol = compile_policy(yaml.safe_dump(doc), source="odd.yaml")
    rows = [{"user": "u1", "amount": 3, "kind": "a", "tags": ["x", "y", "x"], "meta": {"site": "s"}},
            {"user": "u1", "amount": "7.5", "kind": "b", "tags": "z", "meta": {"site": 3}},
            {"user": "u1", "amount": True, "kind": "a", "tags": [], "meta": "flat"},
            {"user": "u1", "amount": "abc", "kind": "x", "tags": [None, "", 5]},
            {"user": "u2", "amount": 2.5, "kind": None, "tags": ["q"], "meta": {"site": None}},
            {"amount": 1}]
    out = []
    for flag in (True, False):
        eng = Engine(state=MemoryStateBackend(speedups=flag), speedups=flag)
        eng.set_policy(pol)
        out.append([(d.features, d.errors, d.score) for d, _ in (
            eng.decide("odd_event", r, event_id=f"e{i}", timestamp=100.0 + i) for i, r in enumerate(rows))])
    assert out[0] == out[1]
    assert any(d[1] for d in out[0])  # some rows produced feature errors
