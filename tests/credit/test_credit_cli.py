"""``fsbrain simulate credit``: outputs in three formats, summary, exit codes and messages."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from fsbrain.domains.credit.cli import register
from fsbrain.domains.credit.schema import parse_application
from fsbrain.domains.credit.simulator import split_truth
from fsbrain.io import read_records


@pytest.fixture(scope="module")
def cli():
    app = typer.Typer()
    group = typer.Typer()
    app.add_typer(group, name="simulate")
    register(group)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, ["simulate", "credit", *args])

    return run


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_writes_valid_applications(cli, tmp_path, suffix):
    out = tmp_path / f"apps.{suffix}"
    res = cli("--n", "300", "--seed", "5", "--days", "7", "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["n"] == 300 and summary["format"] == suffix
    assert sum(v["count"] for v in summary["labels"].values()) == 300
    recs = list(read_records(out))
    assert len(recs) == 300
    for rec in recs[:100]:
        app, truth = split_truth(rec)
        parse_application(app)
        assert truth["label"] in summary["labels"]


def test_csv_has_dotted_columns(cli, tmp_path):
    out = tmp_path / "apps.csv"
    res = cli("--n", "50", "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    header = out.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert {"applicant.id_number", "device.ip", "contacts", "label", "scenario"} <= set(header)
    assert len(out.read_text(encoding="utf-8").splitlines()) == 51


def test_same_seed_same_file(cli, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert cli("--n", "200", "--seed", "9", "--out", str(a)).exit_code == 0
    assert cli("--n", "200", "--seed", "9", "--out", str(b)).exit_code == 0
    assert a.read_bytes() == b.read_bytes()


def test_table_summary(cli, tmp_path):
    res = cli("--n", "200", "--out", str(tmp_path / "x.jsonl"))
    assert res.exit_code == 0, res.output
    assert "normal" in res.stdout and "applications" in res.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--n", "0"], "n: must be between 1"),
    (["--days", "0"], "days: must be between 1 and 366"),
    (["--format", "xml"], "format: must be one of jsonl, csv, parquet"),
    (["--start", "2026-13-01"], "start: not a date"),
])
def test_bad_arguments_exit_2_with_message(cli, tmp_path, args, message):
    out = tmp_path / "x.jsonl"
    res = cli("--out", str(out), *args)
    assert res.exit_code == 2
    assert message in res.stderr and "Traceback" not in res.output
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written


def test_missing_directory_and_non_integer(cli, tmp_path):
    res = cli("--n", "10", "--out", str(tmp_path / "nope" / "x.jsonl"))
    assert res.exit_code == 2 and "out: directory" in res.stderr
    res = cli("--n", "many", "--out", str(tmp_path / "x.jsonl"))
    assert res.exit_code == 2 and "--n" in res.output
    res = cli("--n", "10")
    assert res.exit_code == 2 and "--out" in res.output
