"""Conformance suite: the documented window semantics, checked on every backend (memory and Redis)."""

from __future__ import annotations

from typing import Any

import pytest

from fsbrain.core.errors import InputError
from fsbrain.state.base import AGGREGATES, WindowOp, WindowRead, WindowSpec

W60 = {agg: WindowSpec(name=f"f_{agg}", agg=agg, window=60, bucket=10) for agg in AGGREGATES}


def _ops(key: str, values: dict[str, Any]) -> list[WindowOp]:
    return [WindowOp(W60[agg], key, v) for agg, v in values.items()]


def test_each_aggregate_over_one_window(backend: Any) -> None:
    assert backend.update_get(_ops("k", {a: 4 for a in AGGREGATES} | {"distinct": "u1"}), 100.0) == [
        1,
        1,
        4.0,
        4.0,
        4.0,
        4.0,
    ]
    got = backend.update_get(
        _ops("k", {"count": None, "distinct": "u2", "sum": 2.5, "min": -1, "max": 7.25, "mean": 1}), 101.0
    )
    assert got == [2, 2, 6.5, -1.0, 7.25, 2.5]
    got = backend.update_get(
        _ops("k", {"count": 1, "distinct": "u1", "sum": -0.5, "min": 3, "max": 0, "mean": 4}), 125.0
    )
    assert got == [3, 2, 6.0, -1.0, 7.25, 3.0]


def test_empty_windows_read_as_documented(backend: Any) -> None:
    got = backend.get([WindowRead(W60[a], "nobody") for a in AGGREGATES], 1_000.0)
    assert got == [0, 0, 0.0, None, None, None]
    assert [type(v) for v in got] == [int, int, float, type(None), type(None), type(None)]
    assert backend.update_get([], 5.0) == []
    assert backend.get([], 5.0) == []


def test_window_is_whole_buckets_and_expires_when_read_later(backend: Any) -> None:
    spec = W60["count"]  # 6 buckets of 10 s
    backend.update_get([WindowOp(spec, "ip")], 1_000.0)  # bucket 100
    assert backend.update_get([WindowOp(spec, "ip")], 1_009.9) == [2]  # same bucket
    read = [WindowRead(spec, "ip")]
    assert backend.get(read, 1_059.99) == [2]  # bucket 105: window (99, 105]
    assert backend.get(read, 1_060.0) == [0]  # bucket 106: bucket 100 has left
    assert backend.get(read, 5_000.0) == [0]
    assert backend.get(read, 999.0) == [0]  # before the first event
    assert backend.get(read, 1_005.0) == [2]  # reads never change state


def test_out_of_order_event_counts_in_its_own_bucket(backend: Any) -> None:
    spec = W60["sum"]
    backend.update_get([WindowOp(spec, "id", 1)], 1_000.0)
    backend.update_get([WindowOp(spec, "id", 10)], 1_045.0)
    # Late: read as of its own time, so the later event (bucket 104) is not in its window yet.
    assert backend.update_get([WindowOp(spec, "id", 100)], 1_030.0) == [101.0]
    read = [WindowRead(spec, "id")]
    assert backend.get(read, 1_059.0) == [111.0]
    assert backend.get(read, 1_065.0) == [110.0]  # bucket 100 gone, 103 and 104 remain
    assert backend.get(read, 1_095.0) == [10.0]  # only bucket 104 left
    assert backend.get(read, 1_105.0) == [0.0]


def test_allowed_lateness_decides_what_a_late_event_still_sees(make_backend: Any) -> None:
    spec = WindowSpec(name="apps", agg="count", window=100, bucket=10)
    for lateness, expected in ((0.0, 0), (200.0, 2)):
        b = make_backend(allowed_lateness=lateness)
        b.update([WindowOp(spec, "k")], 0.0)
        b.update([WindowOp(spec, "other")], 150.0)  # moves the clock: watermark 150 - lateness
        # 100 s late: without lateness its bucket (5) is at the watermark's horizon and is dropped.
        assert b.update_get([WindowOp(spec, "k")], 50.0) == [expected]
        assert b.get([WindowRead(spec, "k")], 55.0) == [expected]


def test_event_older_than_its_entitys_window_is_dropped(backend: Any) -> None:
    spec = W60["count"]
    backend.update([WindowOp(spec, "dev")], 10_000.0)
    assert backend.update_get([WindowOp(spec, "dev")], 9_000.0) == [0]
    assert backend.get([WindowRead(spec, "dev")], 9_005.0) == [0]
    assert backend.get([WindowRead(spec, "dev")], 10_000.0) == [1]


def test_none_value_only_reads(backend: Any) -> None:
    ops = [WindowOp(W60[a], "k", 3) for a in ("sum", "min", "mean")]
    backend.update(ops, 50.0)
    got = backend.update_get([WindowOp(W60[a], "k", None) for a in ("sum", "min", "mean", "distinct")], 51.0)
    assert got == [3.0, 3.0, 3.0, 0]


@pytest.mark.parametrize(
    ("agg", "value"),
    [("sum", "12"), ("mean", float("nan")), ("min", float("inf")), ("max", "high"), ("sum", [1])],
)
def test_non_numeric_values_raise_input_error(backend: Any, agg: str, value: Any) -> None:
    with pytest.raises(InputError, match=rf"feature 'f_{agg}' \({agg}\): value .* is not a finite number"):
        backend.update_get([WindowOp(W60[agg], "k", value)], 1.0)


def test_distinct_compares_values_by_their_string_form(backend: Any) -> None:
    spec = W60["distinct"]
    assert backend.update_get(
        [
            WindowOp(spec, "d", 1),
            WindowOp(spec, "d", "1"),
            WindowOp(spec, "d", 1.5),
            WindowOp(spec, "d", "a:b"),
            WindowOp(spec, "d", ""),
            WindowOp(spec, "d", "=a"),
        ],
        7.0,
    ) == [1, 1, 2, 3, 4, 5]


def test_same_key_twice_in_one_call_and_separate_namespaces(backend: Any) -> None:
    a = WindowSpec(name="x", agg="count", window=60)
    b = WindowSpec(name="x", agg="sum", window=60)
    c = WindowSpec(name="x", agg="count", window=120)
    got = backend.update_get(
        [WindowOp(a, "k"), WindowOp(a, "k"), WindowOp(b, "k", 5), WindowOp(c, "k"), WindowOp(a, "other")], 1.0
    )
    assert got == [1, 2, 5.0, 1, 1]
    equal = WindowSpec(name="x", agg="count", window=60)  # an equal spec shares the state
    assert backend.get([WindowRead(equal, "k")], 1.0) == [2]


def test_update_then_get_equals_update_get(make_backend: Any) -> None:
    one, two = make_backend(), make_backend()
    for i in range(30):
        ops = _ops(
            f"k{i % 3}", {"count": 1, "distinct": f"v{i % 4}", "sum": i * 0.1, "min": -i, "max": i, "mean": i}
        )
        ts = 100.0 + 7 * i
        one.update(ops, ts)
        assert one.get([WindowRead(o.spec, o.key) for o in ops], ts) == two.update_get(ops, ts)


def test_expire_frees_old_buckets_and_never_changes_a_value(backend: Any) -> None:
    ops = [WindowOp(W60[a], f"e{i}", i) for a in ("count", "sum", "max") for i in range(5)]
    backend.update(ops, 0.0)  # 15 entities, one bucket each
    backend.update([WindowOp(W60["count"], "e0")], 35.0)
    backend.update([WindowOp(W60["count"], "late")], 200.0)  # clock 200
    reads = [WindowRead(o.spec, o.key) for o in ops]
    before = backend.get(reads, 200.0)
    assert backend.expire(30.0) == 0  # nothing has left its window at t=30 - 60 s lateness
    assert backend.expire(10_000.0) == 16  # prunes against the clock (200), not beyond it
    assert backend.get(reads, 200.0) == before == [0] * 5 + [0.0] * 5 + [None] * 5
    assert backend.entity_count() == 1  # only "late" is still inside its window
    assert backend.expire(10_000.0) == 0


def test_state_stays_bounded_under_a_stream_of_new_entities(make_backend: Any) -> None:
    backend = make_backend(allowed_lateness=0.0, sweep=True)
    spec = WindowSpec(name="req_10s", agg="count", window=10, bucket=1)
    for i in range(400):  # a new entity every 0.5 s: at most ~21 are inside a 10 s window
        backend.update([WindowOp(spec, f"ip{i}")], i * 0.5)
        if i % 50 == 49:
            backend.expire(i * 0.5)
            assert backend.entity_count() <= 22
    assert backend.get([WindowRead(spec, "ip399")], 199.5) == [1]


def test_clear_forgets_everything(backend: Any) -> None:
    backend.update(_ops("k", {"count": 1, "sum": 2}), 10.0)
    backend.clear()
    assert backend.get([WindowRead(W60["count"], "k")], 10.0) == [0]
    assert backend.entity_count() == 0
    assert backend.stats()["backend"] == backend.name


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"agg": "median", "window": 60}, "unknown aggregate 'median'"),
        ({"agg": "count", "window": 0.5}, "window 0.5s outside"),
        ({"agg": "count", "window": 60, "bucket": 61}, "bucket 61s must be in"),
    ],
)
def test_invalid_specs_are_rejected(kw: dict[str, Any], problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        WindowSpec(name="bad", **kw)
