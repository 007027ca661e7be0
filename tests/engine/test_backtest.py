"""Backtests: same evaluator as the API, any input format, prepared events, report contents."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fsbrain.cli import _register, app
from fsbrain.core.errors import InputError
from fsbrain.domains.credit.simulator import iter_applications
from fsbrain.engine import default_policy_path, load_policy
from fsbrain.engine.backtest import prepare_records, run_backtest

KEY = b"k" * 32
runner = CliRunner()


@pytest.fixture(scope="module")
def records():
    return list(iter_applications(1500, seed=3, days=10))


def test_report_has_every_section(records):
    rep = run_backtest(load_policy(default_policy_path()), records, key=KEY).to_dict()
    assert rep["events"] == 1500 and rep["invalid_events"] == 0
    assert set(rep["outcomes"]) <= {"approve", "review", "reject"}
    assert sum(rep["outcomes"].values()) == 1500
    for lab in ("multi_lending", "forged_application", "gang_fraud", "device_risk", "promotion_abuse"):
        v = rep["labels"][lab]
        assert v["support"] > 0 and 0 <= v["precision"] <= 1 and 0 <= v["recall"] <= 1
    rule = next(iter(rep["rules"].values()))
    assert {"hits", "precision_fraud", "precision_label", "unique_catches"} <= set(rule)
    assert rep["events_per_second"] > 0


def test_prepared_events_give_the_same_report(records):
    pol = load_policy(default_policy_path())
    raw = run_backtest(pol, records, key=KEY).to_dict()
    prepared = list(prepare_records(records, KEY))
    assert all("error" not in p for p in prepared)
    again = run_backtest(pol, prepared).to_dict()
    for k in ("outcomes", "labels", "rules", "truth"):
        assert raw[k] == again[k]


def test_parallel_preparation_is_identical(records):
    pol = load_policy(default_policy_path())
    a = run_backtest(pol, records, key=KEY, workers=1).to_dict()
    b = run_backtest(pol, records, key=KEY, workers=2).to_dict()
    assert a["outcomes"] == b["outcomes"] and a["labels"] == b["labels"]


def test_out_of_order_history_is_refused(records):
    pol = load_policy(default_policy_path())
    with pytest.raises(InputError, match="not in time order"):
        run_backtest(pol, list(reversed(records[:50])), key=KEY)


def test_invalid_records_counted_not_fatal(records):
    bad = [dict(records[0], loan={"amount": -3})] + records[1:20]
    rep = run_backtest(load_policy(default_policy_path()), bad, key=KEY)
    assert rep.invalid == 1 and rep.events == 19 and "loan" in rep.invalid_examples[0]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_cli_backtest_every_format(tmp_path, fmt):
    _register()
    out = tmp_path / f"sim.{fmt}"
    r = runner.invoke(app, ["simulate", "credit", "--n", "400", "--seed", "4", "--out", str(out), "--format", fmt])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["backtest", "--events", str(out), "--json", "--workers", "1"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["events"] == 400 and rep["invalid_events"] == 0


def test_cli_backtest_table_output(tmp_path):
    _register()
    out = tmp_path / "sim.jsonl"
    runner.invoke(app, ["simulate", "credit", "--n", "300", "--seed", "4", "--out", str(out)])
    r = runner.invoke(app, ["backtest", "--events", str(out), "--workers", "1"])
    assert r.exit_code == 0 and "Per label" in r.stdout and "Rules" in r.stdout and "review rate" in r.stdout


def test_events_prepare_cli(tmp_path):
    _register()
    raw = tmp_path / "raw.jsonl"
    runner.invoke(app, ["simulate", "credit", "--n", "200", "--seed", "4", "--out", str(raw)])
    prepared = tmp_path / "prepared.jsonl"
    r = runner.invoke(app, ["events", "prepare", "--events", str(raw), "--out", str(prepared), "--workers", "1"])
    assert r.exit_code == 0, r.output
    text = prepared.read_text(encoding="utf-8")
    first_raw = json.loads(raw.read_text(encoding="utf-8").splitlines()[0])
    assert first_raw["applicant"]["id_number"] not in text and first_raw["applicant"]["phone"] not in text
    assert len(text.splitlines()) == 200


def test_rule_workers_give_the_same_report(records):
    """Features in order here, rules and tallies in worker processes: the report must not change."""
    import copy

    pol = load_policy(default_policy_path())
    recs = copy.deepcopy(records)
    recs[7]["timestamp"] = "not a time"  # an invalid record is counted, not tallied
    one = run_backtest(pol, recs, key=KEY).to_dict()
    two = run_backtest(pol, recs, key=KEY, rule_workers=2).to_dict()
    for r in (one, two):
        r.pop("seconds"), r.pop("events_per_second")
    assert one == two
    assert one["invalid_events"] == 1 and one["events"] == len(recs) - 1


def test_rule_workers_refuse_out_of_order_events(records):
    recs = [dict(r) for r in records[:50]]
    recs[30]["timestamp"] = "2001-01-01T00:00:00+08:00"
    with pytest.raises(InputError, match="not in time order"):
        run_backtest(load_policy(default_policy_path()), recs, key=KEY, rule_workers=1)


def test_null_or_missing_label_counts_as_normal(records, tmp_path):
    """A history whose label is null (unlabelled) or missing is scored as normal by both paths."""
    from fsbrain.engine.backtest import backtest_file

    pol = load_policy(default_policy_path())
    prepared = [p for p in prepare_records(records[:300], KEY)]
    for i, p in enumerate(prepared):
        if p["label"] == "normal":
            if i % 2:
                p["label"] = None
            else:
                del p["label"]
    want = run_backtest(pol, [dict(p, label=p.get("label") or "normal") for p in prepared]).to_dict()
    got = run_backtest(pol, prepared).to_dict()
    assert got["truth"] == want["truth"] and got["labels"] == want["labels"]
    path = tmp_path / "ev.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in prepared))
    for method in ("columnar", "streaming"):
        rep = backtest_file(pol, path, method=method).to_dict()
        assert rep["truth"] == want["truth"] and rep["labels"] == want["labels"]
