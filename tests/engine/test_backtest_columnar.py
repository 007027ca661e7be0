"""The columnar backtest against the streaming one (the reference): identical feature values, identical
reports, and a fallback to streaming wherever the columnar pass cannot promise that."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fsbrain import speedups
from fsbrain.cli import _register, app
from fsbrain.core.errors import InputError
from fsbrain.domains.credit.simulator import iter_applications
from fsbrain.engine import Engine, default_policy_path, load_policy
from fsbrain.engine.backtest import backtest_file, comparable, prepare_records, run_backtest
from fsbrain.engine.columnar import (
    Unsupported,
    extract_inputs,
    feature_values,
    merge_inputs,
    values_as_python,
)
from fsbrain.engine.policy import compile_policy
from fsbrain.state.memory import MemoryStateBackend

KEY = b"k" * 32
T0 = 1_700_000_000.0  # a multiple of every bucket width below

POLICY = """
policy: columnar-test
version: 1
event_type: loan_application
outcomes: [{name: approve, min_score: 0}, {name: review, min_score: 100}, {name: reject, min_score: 300}]
features:
  - {name: c, agg: count, key: [ent], window: 60s, bucket: 10s}
  - {name: c_multi, agg: count, key: [ent, ent2], window: 30s, bucket: 10s}
  - {name: d, agg: distinct, key: [ent], value: val, window: 2m, bucket: 10s}
  - {name: d_nested, agg: distinct, key: [ent], value: sub.v, window: 1m}
  - {name: s, agg: sum, key: [ent], value: num, window: 60s, bucket: 10s}
  - {name: mn, agg: min, key: [ent], value: num, window: 60s, bucket: 20s}
  - {name: mx, agg: max, key: [ent2], value: num, window: 40s, bucket: 10s}
  - {name: avg, agg: mean, key: [ent], value: num, window: 90s, bucket: 30s}
  - {name: tag_d, agg: distinct, key: [tags], value: ent, window: 60s, bucket: 10s}
  - {name: tag_c, agg: count, key: [tags], window: 30s, bucket: 10s}
  - {name: tag_s, agg: sum, key: [tags], value: num, window: 60s, bucket: 10s}
  - {name: tag_mean, agg: mean, key: [tags], value: num, window: 60s, bucket: 10s}
  - {name: tag_max, agg: max, key: [tags], value: num, window: 60s, bucket: 10s}
  - {name: flagged, agg: count, key: [ent], window: 60s, bucket: 10s, when: "flag == true"}
  - {name: not_flagged, agg: distinct, key: [ent2], value: val, window: 60s, bucket: 10s, when: "flag != true"}
  - {name: big, agg: sum, key: [ent], value: num, window: 60s, bucket: 10s, when: "num > 3"}
  - {name: long, agg: count, key: [ent], window: 1h}
  - {name: x_only, agg: count, key: [ent], window: 60s, bucket: 10s, when: "val == 'x'"}
  - {name: two_only, agg: distinct, key: [ent2], value: val, window: 60s, bucket: 10s, when: "num == 2"}
  - {name: null_only, agg: count, key: [ent], window: 60s, bucket: 10s, when: "flag == null"}
  - {name: not_y, agg: count, key: [tags], window: 60s, bucket: 10s, when: "val != 'y'"}
rules:
  - {id: R1, label: multi_lending, when: "f.c >= 2", weight: 100}
  - {id: R2, label: gang_fraud, when: "f.d >= 2 or f.tag_d >= 2", weight: 150}
  - {id: R3, label: forged_application, when: "f.s > 10", weight: 120, outcome: review}
  - {id: R4, label: device_risk, when: "(f.mx ?? 0) > 5 and f.flagged >= 1", weight: 300}
  - {id: R5, label: promotion_abuse, when: "num > 2", weight: 50}
"""

ENT = st.one_of(st.sampled_from(["a", "b", "c", "a|b", ""]), st.none(), st.integers(0, 2), st.just(True))
NUM = st.one_of(st.none(), st.integers(-5, 20), st.floats(-10, 20, allow_nan=False).map(lambda x: round(x, 5)),
                st.sampled_from(["2.5", "x", "", "1e1"]), st.booleans(), st.just(0.00005), st.just(-0.00015))
TAGS = st.one_of(st.lists(st.one_of(st.sampled_from(["t1", "t2", "t3", ""]), st.none(), st.integers(1, 2)),
                          max_size=5), st.sampled_from(["t1", "t2"]), st.none())
STEP = st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.0, 9.999, 10.0, 0.001, 29.0, 30.0, 59.999, 60.0, 61.0, 3600.0,
                        86400.0 * 3])


@st.composite
def event(draw: st.DrawFn) -> dict:
    d: dict = {}
    for name, strat in (("ent", ENT), ("ent2", ENT), ("val", st.one_of(st.sampled_from(["x", "y", "z", ""]),
                        st.integers(1, 2), st.floats(1, 2).map(lambda x: round(x, 1)), st.none())),
                        ("num", NUM), ("tags", TAGS), ("flag", st.one_of(st.booleans(), st.none(), st.just(1))),
                        ("sub", st.one_of(st.fixed_dictionaries({"v": st.sampled_from(["p", "q", 1])}),
                                          st.none(), st.just("flat")))):
        if draw(st.booleans()) or name == "ent":
            d[name] = draw(strat)
    return d


@st.composite
def stream(draw: st.DrawFn) -> list[tuple[float, dict]]:
    n = draw(st.integers(1, 60))
    t = T0 + draw(st.sampled_from([0.0, 5.0, 9.99]))
    out = []
    for _ in range(n):
        t += draw(STEP)
        out.append((t, draw(event())))
    return out


def _engine(policy_text: str = POLICY) -> tuple[Engine, object]:
    eng = Engine(state=MemoryStateBackend())
    pol = compile_policy(policy_text)
    eng.set_policy(pol)
    return eng, eng._plans[pol.event_type]


def _columnar(eng: Engine, plan: object, events: list[tuple[float, dict]], cuts: list[int], fast: object,
              ) -> tuple[list[tuple[str, list]], dict[int, list]]:
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(events))), len(events)]
    parts = [extract_inputs(plan, [d for _, d in events[a:b]], [t for t, _ in events[a:b]], fast)
             for a, b in zip(bounds, bounds[1:], strict=False)]
    inputs = merge_inputs(parts)
    return values_as_python(plan, feature_values(plan, inputs)), inputs.errors


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=stream(), cuts=st.lists(st.integers(0, 60), max_size=3), compiled=st.booleans())
def test_feature_values_equal_the_streaming_state(events, cuts, compiled):
    """Every feature of every event, value and type, and the feature errors, as the state backend gives."""
    eng, plan = _engine()
    fast = eng._fast if compiled else None
    ref = [eng._features(plan, d, t) for t, d in events]
    cols, errors = _columnar(eng, plan, events, cuts, fast)
    for name, values in cols:
        for i, (v, _) in enumerate(ref):
            assert type(values[i]) is type(v[name]) and values[i] == v[name], (name, i, values[i], v[name])
    for i, (_, errs) in enumerate(ref):
        assert errors.get(i, []) == errs


def test_window_boundaries_by_hand():
    """Window 60 s in 10 s buckets: an event at 1059.99 still sees 1000 and 1009.9; one at 1060 does not."""
    eng, plan = _engine()
    events = [(1000.0, {"ent": "a", "num": 1}), (1009.9, {"ent": "a", "num": 2}), (1059.99, {"ent": "a"}),
              (1060.0, {"ent": "a", "num": None}), (1060.0, {"ent": "a", "num": 4})]
    by_state = dict(_columnar(eng, plan, events, [], None)[0])
    cols = {f.name: by_state[f.spec.name] for f, _, _ in plan.rows}
    assert cols["c"] == [1, 2, 3, 2, 3]
    assert cols["s"] == [1.0, 3.0, 3.0, 0.0, 4.0]
    assert cols["mn"] == [1.0, 1.0, 1.0, None, 4.0]  # 20 s buckets: (1000, 1060] holds nothing before 1060


def test_out_of_order_and_bad_values_are_unsupported():
    eng, plan = _engine()
    inputs = extract_inputs(plan, [{"ent": "a"}, {"ent": "a"}], [T0 + 1, T0], None)
    with pytest.raises(Unsupported, match="older"):
        feature_values(plan, inputs)
    with pytest.raises(Unsupported, match="finite"):
        extract_inputs(plan, [{"ent": "a", "num": float("inf")}], [T0], None)
    with pytest.raises(Unsupported, match="too large"):
        extract_inputs(plan, [{"ent": "a", "num": 10**16}], [T0], None)


@pytest.mark.skipif(not speedups.active(), reason="compiled extension not built")
def test_compiled_and_python_extraction_agree():
    eng, plan = _engine()
    evs = [(T0 + i, {"ent": ["x", "y"][i % 2], "tags": ["t1", "t1", "", None, 2], "num": "3", "val": 1.0})
           for i in range(20)]
    assert _columnar(eng, plan, evs, [7], eng._fast) == _columnar(eng, plan, evs, [7], None)


# -- whole backtests -------------------------------------------------------------------------------
def _text(rep) -> str:
    return json.dumps(comparable(rep.to_dict()), ensure_ascii=False)


def _write(path, recs) -> None:
    with open(path, "wb") as fh:
        for r in recs:
            fh.write(orjson.dumps(r) + b"\n")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    recs = [r for r in prepare_records(iter_applications(2500, seed=11, days=3), KEY) if "error" not in r]
    path = tmp_path_factory.mktemp("cb") / "prepared.jsonl"
    _write(path, recs)
    return path, recs


@pytest.mark.parametrize("workers", [1, 2])
def test_columnar_report_equals_streaming_report(prepared, workers, monkeypatch):
    import fsbrain.engine.backtest as bt

    monkeypatch.setattr(bt, "_SPAN_BYTES", 200_000)  # many ranges, so ranges meet mid-stream
    path, recs = prepared
    pol = load_policy(default_policy_path())
    col = backtest_file(pol, path, method="columnar", workers=workers)
    ref = run_backtest(pol, recs)
    assert col.method == "columnar" and ref.method == "streaming"
    # the same JSON text: counts equal and their keys in the same order
    assert _text(col) == _text(ref)
    assert col.events == len(recs)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(events=stream())
def test_generated_streams_give_the_same_report(tmp_path, monkeypatch, events):
    import fsbrain.engine.backtest as bt

    monkeypatch.setattr(bt, "_SPAN_BYTES", 1500)  # a few events per byte range
    pol = compile_policy(POLICY)
    labels = ["normal", "multi_lending", "gang_fraud", "device_risk", "promotion_abuse"]
    recs = [{"event_type": "loan_application", "event_id": f"e{i}", "timestamp": t, "label": labels[i % 5],
             "data": d} for i, (t, d) in enumerate(events)]
    for r in recs[3::7]:
        del r["label"]  # no label: normal
    path = tmp_path / "gen.jsonl"
    _write(path, recs)
    seen = []
    col = backtest_file(pol, path, method="columnar", workers=2, progress=seen.append)
    assert _text(col) == _text(run_backtest(pol, recs))
    assert sum(seen) == len(recs)


def test_falls_back_to_streaming_and_says_why(tmp_path, prepared):
    pol = load_policy(default_policy_path())
    _, recs = prepared
    # raw applications need validation: the streaming path does it
    raw = tmp_path / "raw.jsonl"
    _write(raw, list(iter_applications(200, seed=2, days=1)))
    rep = backtest_file(pol, raw, key=KEY, workers=1)
    assert rep.method == "streaming" and "not prepared" in rep.method_note and rep.events == 200
    with pytest.raises(InputError, match="columnar path not used"):
        backtest_file(pol, raw, key=KEY, method="columnar", workers=1)
    # a hair out of order (within the streaming path's tolerance): streaming decides, same as before
    few = [dict(r) for r in recs[:300]]
    few[100] = dict(few[100], timestamp=few[99]["timestamp"] - 5e-7)
    assert few[100]["timestamp"] < few[99]["timestamp"]
    p = tmp_path / "jitter.jsonl"
    _write(p, few)
    rep = backtest_file(pol, p, workers=1)
    assert rep.method == "streaming" and "older" in rep.method_note
    assert comparable(rep.to_dict()) == comparable(run_backtest(pol, few).to_dict())
    # really out of order: the streaming path's error
    few[200] = dict(few[200], timestamp=few[0]["timestamp"] - 3600)
    _write(p, few)
    with pytest.raises(InputError, match="not in time order"):
        backtest_file(pol, p, workers=1)
    # CSV files stream
    csv = tmp_path / "sim.csv"
    runner = CliRunner()
    _register()
    assert runner.invoke(app, ["simulate", "credit", "--n", "50", "--seed", "4", "--out", str(csv)]).exit_code == 0
    rep = backtest_file(pol, csv, key=KEY, workers=1)
    assert rep.method == "streaming" and "JSON-lines" in rep.method_note


def test_another_event_type_gives_the_streaming_error(tmp_path, prepared):
    from fsbrain.core.errors import UnknownEventTypeError

    _, recs = prepared
    p = tmp_path / "types.jsonl"
    _write(p, [*recs[:10], dict(recs[10], event_type="payment"), *recs[11:20]])
    with pytest.raises(UnknownEventTypeError, match="payment"):
        backtest_file(load_policy(default_policy_path()), p, workers=1)


def test_an_invalid_line_gives_the_streaming_error(tmp_path, prepared):
    _, recs = prepared
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs[:5]) + b"{not json\n")
    with pytest.raises(InputError, match="malformed JSON"):
        backtest_file(load_policy(default_policy_path()), p, workers=1)


def test_cli_method_option(prepared):
    _register()
    runner = CliRunner()
    path, _ = prepared
    outs = {}
    for method in ("columnar", "streaming"):
        r = runner.invoke(app, ["backtest", "--events", str(path), "--json", "--workers", "1", "--method", method])
        assert r.exit_code == 0, r.output
        outs[method] = json.loads(r.stdout)
        assert outs[method]["method"] == method
    assert comparable(outs["columnar"]) == comparable(outs["streaming"])
    r = runner.invoke(app, ["backtest", "--events", str(path), "--workers", "1"])
    assert r.exit_code == 0 and "features computed columnar" in r.stdout
    r = runner.invoke(app, ["backtest", "--events", str(path), "--method", "sideways"])
    assert r.exit_code != 0 and "unknown backtest method" in r.output


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"\n")
    rep = backtest_file(load_policy(default_policy_path()), p, workers=1)
    assert rep.method == "columnar" and rep.events == 0
    assert np.isscalar(rep.to_dict()["events"])
