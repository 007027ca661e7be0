"""``fsbrain host`` brute-force commands, end to end through the CLI."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import threading
import time

import pytest
from typer.testing import CliRunner

from fsbrain.cli import _register, app


@pytest.fixture(scope="module")
def cli():
    _register()
    return CliRunner()


def sshd_lines(n, host="203.0.113.7", start=None, user="root"):
    t = start or dt.datetime.now()
    out = []
    for i in range(n):
        ts = (t + dt.timedelta(seconds=i)).strftime("%b %d %H:%M:%S")
        out.append(f"{ts} srv sshd[{1000 + i}]: Failed password for {user} from {host} port {4000 + i} ssh2")
    return "\n".join(out) + "\n"


def test_scan_jsonl_alerts_and_summary(cli, tmp_path):
    log = tmp_path / "auth.log"
    log.write_text(sshd_lines(8) + "garbage \x00 binary line\n" + "unrelated line\n")
    res = cli.invoke(app, ["host", "scan", str(log), "--format", "jsonl", "--filter", "sshd"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{") and '"alert_id"' in x]
    assert any(a["labels"] == ["brute_force"] and a["entity"] == "203.0.113.7" for a in lines)
    summary = json.loads([x for x in res.stderr.splitlines() if x.startswith('{"summary"')][0])["summary"]
    assert summary["totals"]["failure"] == 8 and summary["totals"]["binary"] == 1
    assert summary["totals"]["missed"] == 1


def test_scan_guesses_the_filter_and_reads_gzip(cli, tmp_path):
    log = tmp_path / "auth.log.1.gz"
    with gzip.open(log, "wt") as fh:
        fh.write(sshd_lines(6))
    res = cli.invoke(app, ["host", "scan", str(log), "--format", "table"])
    assert res.exit_code == 0, res.output
    assert "filter sshd" in res.stdout and "203.0.113.7" in res.stdout


def test_scan_bad_inputs_give_clear_errors(cli, tmp_path):
    res = cli.invoke(app, ["host", "scan", str(tmp_path / "missing.log")])
    assert res.exit_code == 2 and "no such file" in res.stderr and "Traceback" not in res.output
    res = cli.invoke(app, ["host", "scan", str(tmp_path)])
    assert res.exit_code == 2 and "directory" in res.stderr
    res = cli.invoke(app, ["host", "scan", str(tmp_path), "--filter", "nosuchfilter"])
    assert res.exit_code == 2 and "no filter named" in res.stderr


def test_hostile_file_name_is_escaped(cli, tmp_path):
    evil = tmp_path / "a\x1b[2Jb\nc.log"
    evil.write_text(sshd_lines(2))
    res = cli.invoke(app, ["host", "scan", str(evil), "--format", "jsonl", "--filter", "sshd"])
    assert res.exit_code == 0
    summary = [x for x in res.stderr.splitlines() if x.startswith('{"summary"')][0]
    assert "\x1b" not in summary and "\\x1b" in summary


def test_filter_test_counts(cli, tmp_path):
    log = tmp_path / "auth.log"
    log.write_text(sshd_lines(3) + "Jun 21 16:47:48 h sshd[9]: Accepted password for a from 192.0.2.5 port 1 ssh2\n"
                   + "no date, no match\n")
    res = cli.invoke(app, ["host", "filter-test", "sshd", str(log)])
    assert res.exit_code == 0, res.output
    assert "matched 3" in res.stdout and "successes 1" in res.stdout and "missed 1" in res.stdout
    assert "no date 1" in res.stdout


def test_bans_and_firewall(cli, tmp_path):
    res = cli.invoke(app, ["host", "bans", "add", "192.0.2.44", "--seconds", "600", "--backend", "json"])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["host", "bans", "add", "127.0.0.1", "--backend", "json"])
    assert res.exit_code == 2 and "allow-list" in res.stderr
    res = cli.invoke(app, ["host", "bans", "add", "1.2.3.4;reboot", "--backend", "json"])
    assert res.exit_code == 2 and "not an IP" in res.stderr
    res = cli.invoke(app, ["host", "bans", "list", "--backend", "json", "--json"])
    assert [json.loads(x)["target"] for x in res.stdout.splitlines()] == ["192.0.2.44"]
    res = cli.invoke(app, ["host", "firewall", "--backend", "iptables", "--ban-backend", "json"])
    assert "ipset add fsbrain4 192.0.2.44 timeout" in res.stdout
    res = cli.invoke(app, ["host", "bans", "remove", "192.0.2.44", "--backend", "json"])
    assert res.exit_code == 0
    assert "no bans in force" in cli.invoke(app, ["host", "bans", "list", "--backend", "json"]).stdout


def test_follow_cli_with_rotation(cli, tmp_path):
    log = tmp_path / "auth.log"
    log.write_text("")

    def writer():
        time.sleep(1.5)  # the follower starts at the end of the file, like tail -F: let it start first
        with open(log, "a") as fh:
            fh.write(sshd_lines(3, host="198.51.100.23"))
        os.rename(log, tmp_path / "auth.log.1")
        with open(log, "a") as fh:
            fh.write(sshd_lines(3, host="198.51.100.23"))

    t = threading.Thread(target=writer)
    t.start()
    res = cli.invoke(app, ["host", "follow", str(log), "--filter", "sshd", "--interval", "0.05",
                           "--max-seconds", "4"])
    t.join()
    assert res.exit_code == 0, res.output
    alerts = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert any(a["entity"] == "198.51.100.23" and a["labels"] == ["brute_force"] for a in alerts)
    summary = json.loads([x for x in res.stderr.splitlines() if x.startswith('{"summary"')][0])["summary"]
    assert summary["rotations"] == 1 and summary["failure"] == 6
