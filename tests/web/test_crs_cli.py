"""``fsbrain web rules-check`` and ``fsbrain web crs-test``."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from fsbrain.domains.web import cli_crs


@pytest.fixture
def app():
    a = typer.Typer()
    cli_crs.register(a)
    return a


def test_rules_check_ok_on_default_rules(app):
    from fsbrain.domains.web.seclang.engine import RULES_DIR

    res = CliRunner().invoke(app, ["rules-check", str(RULES_DIR)])
    assert res.exit_code == 0 and "ok:" in res.output


def test_rules_check_reports_file_and_line(app, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text('# x\nSecRule ARGS "@rx (" "id:1,phase:2"\n')
    res = CliRunner().invoke(app, ["rules-check", str(bad)])
    assert res.exit_code == 1
    assert f"{bad}:2:" in res.output and "RE2" in res.output


def test_crs_test_json_on_a_small_suite(app, tmp_path, shared_data):
    crs = shared_data("crs-regression")
    tests = tmp_path / "tests" / "REQUEST-911-METHOD-ENFORCEMENT"
    tests.mkdir(parents=True)
    src = crs / "tests" / "regression" / "tests" / "REQUEST-911-METHOD-ENFORCEMENT"
    for f in src.glob("*.yaml"):
        (tests / f.name).write_bytes(f.read_bytes())
    res = CliRunner().invoke(app, ["crs-test", "--rules", str(crs), "--tests", str(tmp_path / "tests"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["total"]["passed"] == out["total"]["applicable"] > 0
