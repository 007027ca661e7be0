"""Flow files (nfdump CSV, CICFlowMeter CSV, garbage) and the ``fsbrain flow`` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fsbrain.cli import _register, app
from fsbrain.domains.flow.fileio import read_flows
from fsbrain.domains.flow.records import DecodeStats

NFDUMP = """ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt
2026-11-02 10:00:00.100,2026-11-02 10:00:00.900,0.8,10.0.0.1,198.51.100.7,40000,443,TCP,.A..S.,0,0,12,7200,0,0
2026-11-02 10:00:01.000,2026-11-02 10:00:01.000,0.0,10.0.0.2,198.51.100.7,53,5353,17,......,0,0,1,512,0,0
not,a,row
2026-11-02 10:00:02.000,2026-11-02 10:00:02.000,0.0,999.1.1.1,198.51.100.7,1,2,6,......,0,0,1,60,0,0
Summary
flows,bytes,packets
"""


@pytest.fixture
def runner():
    _register()
    return CliRunner()


def test_nfdump_csv_rows_and_garbage_counted(tmp_path):
    p = tmp_path / "nf.csv"
    p.write_text(NFDUMP)
    stats = DecodeStats()
    out = np.concatenate(list(read_flows(p, stats=stats)))
    assert out["sport"].tolist() == [40000, 53]
    assert out["proto"].tolist() == [6, 17] and out["flags"].tolist() == [0x12, 0]
    assert out["te"][0] - out["ts"][0] == pytest.approx(0.8)
    assert stats.errors["bad_address"] == 1 and stats.errors["bad_row"] >= 2


def test_cicflowmeter_csv(shared_data):
    path = shared_data("cicids2017-flows") / "flows_train.csv.gz"
    stats = DecodeStats()
    out = np.concatenate(list(read_flows(path, stats=stats)))
    assert len(out) == 15076 and stats.errors == {}
    assert (out["te"] >= out["ts"]).all() and set(np.unique(out["proto"]).tolist()) <= {0, 6, 17}


def test_scan_jsonl_finds_a_flood(runner, tmp_path):
    lines = ["ts,te,sa,da,sp,dp,pr,flg,ipkt,ibyt"]
    for s in range(5):
        for i in range(50):
            lines.append(f"2026-11-02 10:00:{s:02d}.5,2026-11-02 10:00:{s:02d}.5,11.0.{i}.1,203.0.113.9,123,4444,17,"
                         f"......,1000,468000")
    p = tmp_path / "amp.csv"
    p.write_text("\n".join(lines) + "\n")
    res = runner.invoke(app, ["flow", "scan", str(p), "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    alerts = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert [a["labels"] for a in alerts] == [["ddos_amplification"]]
    assert alerts[0]["entity"] == "203.0.113.9/32" and alerts[0]["details"]["top_src_ports"][0]["port"] == 123
    table = runner.invoke(app, ["flow", "scan", str(p)])
    assert "ddos_amplification" in table.stdout


def test_cli_errors_are_messages_not_tracebacks(tmp_path, monkeypatch, capsys):
    import sys

    from fsbrain.cli import main

    bad = tmp_path / "x.csv"
    bad.write_text("hello,world\n1,2\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("window: 1\nthreshold: 5\n")
    for args, needle in ((["scan", str(tmp_path / "missing.csv")], "no such file"),
                         (["scan", str(bad)], "unrecognised flow file"),
                         (["scan", str(bad), "--config", str(cfg)], "threshold"),
                         (["classify", str(bad), "--model", str(bad)], "not an fsbrain flow model"),
                         (["collect", "--listen", "nonsense"], "HOST:PORT")):
        monkeypatch.setattr(sys, "argv", ["fsbrain", "flow", *args])
        with pytest.raises(SystemExit) as exc:
            main()
        err = capsys.readouterr().err
        assert exc.value.code == 2, (args, err)
        assert needle in err and "Traceback" not in err, err


def test_simulate_writes_flows_and_truth(runner, tmp_path, monkeypatch):
    from fsbrain.domains.flow import simulator

    small = simulator.Scenario(start=1793577600.0, hours=0.05, events=[
        simulator.Event(type="icmp_flood", target="198.51.100.12", start=1793577660.0, end=1793577690.0,
                        pps=40_000, sources=50)])
    monkeypatch.setattr(simulator, "default_scenario", lambda **kw: small)
    for name in ("s.csv", "s.pcap"):
        out = tmp_path / name
        res = runner.invoke(app, ["flow", "simulate", "--out", str(out)])
        assert res.exit_code == 0, res.output
        truth = json.loads((tmp_path / f"{name}.truth.json").read_text())
        assert truth[0]["label"] == "ddos_icmp_flood"
        scan = runner.invoke(app, ["flow", "scan", str(out), "--format", "jsonl"])
        alerts = [json.loads(x) for x in scan.stdout.splitlines() if x.startswith("{")]
        assert [a["labels"] for a in alerts] == [["ddos_icmp_flood"]], scan.output


def test_collect_command_receives_sflow_and_reports(tmp_path):
    import signal
    import socket
    import subprocess
    import sys
    import time

    from fsbrain.domains.flow.sflow import encode_sflow, ipv4_header, packet_sample

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    alerts, stats = tmp_path / "alerts.jsonl", tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, "-c", "from fsbrain.cli import main; main()", "flow", "collect",
                             "--listen", f"127.0.0.1:{port}", "--duration", "60", "--out", str(alerts),
                             "--stats-file", str(stats)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    line = proc.stderr.readline()  # "listening on …" once the socket is bound
    assert "listening on" in line, line
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for k in range(300):
        hdr = ipv4_header(0x0B000000 + k, 0xCB007105, 17, 123, 4444)
        s.sendto(encode_sflow([packet_sample(hdr, 468, 1000)] * 8), ("127.0.0.1", port))
    s.close()
    time.sleep(4)  # > lateness: the idle collector evaluates the windows and reports the start
    proc.send_signal(signal.SIGTERM)  # stop: open attacks end and are reported
    err = proc.communicate(timeout=max(1, deadline - time.time()))[1]
    assert proc.returncode == 0, err
    summary = json.loads(stats.read_text())
    assert summary["sflow"]["records"] == 2400 and summary["collector"]["datagrams"] == 300
    got = [json.loads(x) for x in alerts.read_text().splitlines()]
    assert {a["labels"][0] for a in got} == {"ddos_amplification"}
    assert [a["end"] is None for a in got] == [True, False]  # at start, then at the end


def test_scan_saves_and_reloads_learned_baselines(runner, tmp_path):
    from fsbrain.domains.flow.cli import write_records
    from fsbrain.domains.flow.detector import VolumetricDetector
    from fsbrain.domains.flow.simulator import Scenario, simulate

    recs, _ = simulate(Scenario(start=1793577600.0, hours=0.1))
    csv_path = tmp_path / "normal.csv"
    write_records(recs, csv_path)
    base = tmp_path / "baseline.json"
    res = runner.invoke(app, ["flow", "scan", str(csv_path), "--baseline", str(base), "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    det = VolumetricDetector()
    det.load_baselines(str(base))
    assert len(det.baselines["host"]) == 40
    bad = tmp_path / "bad.json"
    bad.write_text('{"window": 2.0}')
    res = runner.invoke(app, ["flow", "scan", str(csv_path), "--baseline", str(bad)])
    assert res.exit_code != 0 and "another window" in str(res.exception)
