"""The fsbrain command: exit codes, messages, JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fsbrain.cli import _register, app
from fsbrain.engine.policy import default_policy_path

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "application.json"
runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _registered():
    _register()


def test_policy_check_ok_and_bad(tmp_path):
    r = runner.invoke(app, ["policy", "check", str(default_policy_path())])
    assert r.exit_code == 0 and "credit-default@" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: x\nversion: 1\nevent_type: loan_application\noutcomes: [{name: a, min_score: 0}, "
                   "{name: b, min_score: 5}]\nrules:\n  - {id: R1, label: multi_lending, when: 'f.nope > 1', weight: 5}\n")
    r = runner.invoke(app, ["policy", "check", str(bad)])
    assert r.exit_code == 1
    assert f"{bad}:6" in r.output and "f.nope" in r.output
    r = runner.invoke(app, ["policy", "check", "--json", str(bad)])
    assert json.loads(r.stdout)[0]["valid"] is False


def test_decide_from_file_and_replay(tmp_path):
    r = runner.invoke(app, ["decide", "loan_application", str(FIXTURE)])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert d["event_id"] == "demo-0001" and d["replayed"] is False
    r = runner.invoke(app, ["decide", "loan_application", str(FIXTURE)])
    assert json.loads(r.stdout.strip().splitlines()[-1])["replayed"] is True


def test_decide_bad_records_exit_nonzero(tmp_path):
    f = tmp_path / "events.jsonl"
    good = json.loads(FIXTURE.read_text("utf-8"))
    bad = dict(good, event_id="bad-1", loan={"amount": -1, "term_months": 12, "purpose": "other", "product": "x"})
    f.write_text(json.dumps(good, ensure_ascii=False) + "\n" + json.dumps(bad, ensure_ascii=False) + "\n")
    r = runner.invoke(app, ["decide", "loan_application", str(f)])
    assert r.exit_code == 1
    assert "loan.amount" in r.stdout
    f.write_text("{broken\n")
    r = runner.invoke(app, ["decide", "loan_application", str(f)])
    assert r.exit_code == 2 and "malformed JSON" in r.output


def test_lists_cli_round_trip():
    r = runner.invoke(app, ["lists", "add", "black", "phone", "13812345678", "--reason", "fraud", "--ttl", "30d"])
    assert r.exit_code == 0, r.output
    assert "13812345678" not in r.stdout and "138****5678" in r.stdout
    r = runner.invoke(app, ["lists", "add", "black", "phone", "12345"])
    assert r.exit_code == 2 and "value" in r.output
    r = runner.invoke(app, ["lists", "add", "black", "ip", "1.2.3.4", "--ttl", "soon"])
    assert r.exit_code == 2 and "--ttl" in r.output
    r = runner.invoke(app, ["lists", "list"])
    assert "138****5678" in r.stdout


def test_keys_cli():
    r = runner.invoke(app, ["keys", "create", "ops"])
    assert r.exit_code == 0 and len(r.stdout.strip()) >= 20
    r = runner.invoke(app, ["keys", "list"])
    assert "ops" in r.stdout
    raw = runner.invoke(app, ["keys", "create", "ops2"]).stdout.strip()
    assert raw not in runner.invoke(app, ["keys", "list"]).stdout


def test_labels_cli():
    r = runner.invoke(app, ["labels", "--json"])
    ids = {x["id"]: x["zh"] for x in json.loads(r.stdout)}
    assert ids["multi_lending"] == "多头借贷" and ids["promotion_abuse"] == "羊毛党"


def test_serve_refuses_memory_with_workers():
    r = runner.invoke(app, ["serve", "--workers", "2"])
    assert r.exit_code == 2 and "--state redis" in r.output


def test_backtest_bad_file(tmp_path):
    r = runner.invoke(app, ["backtest", "--events", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 2 and "no such file" in r.output
    f = tmp_path / "x.txt"
    f.write_text("hi")
    r = runner.invoke(app, ["backtest", "--events", str(f)])
    assert r.exit_code == 2 and "unknown file type" in r.output


def test_console_script_installed():
    exe = Path(sys.executable).with_name("fsbrain")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "backtest" in out.stdout
