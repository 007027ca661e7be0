"""The per-flow classifier: shipped model evaluation on the held-out split, retraining, the CLI and API."""

from __future__ import annotations

import csv
import gzip
import io

import numpy as np
import pytest
from typer.testing import CliRunner

from fsbrain.core.errors import InputError
from fsbrain.domains.flow import classifier as C


def _holdout(path):
    """The stratified 25 % the shipped model never saw (same split as scripts/train_flow_classifier.py)."""
    from sklearn.model_selection import train_test_split

    x, y, feats, _ = C.load_labelled(path)
    _, te = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=2017)
    return x, y, feats, np.sort(te)


@pytest.mark.conformance
def test_shipped_model_on_held_out_cicids2017_flows(shared_data):
    x, y, feats, te = _holdout(shared_data("cicids2017-flows") / "flows_train.csv.gz")
    model = C.FlowClassifier.load()
    assert model.features == feats
    pred = np.asarray(model.booster.predict(x[te])).argmax(axis=1)
    rep = C.report(y[te], pred)
    assert rep["n"] == 3761
    assert rep["macro_f1"] >= 0.97
    for cls in ("benign", "ddos", "dos_hulk", "port_scan", "ssh_brute_force", "ftp_brute_force", "botnet"):
        assert rep["per_class"][cls]["recall"] >= 0.95, cls
    assert model.meta["evaluation"]["stratified"]["macro_f1"] == rep["macro_f1"]


def _subsample_csv(src, dst, per_class=60):
    with gzip.open(src, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    li = header.index("Label")
    seen: dict[str, int] = {}
    keep = []
    for r in body:
        if seen.get(r[li], 0) < per_class:
            seen[r[li]] = seen.get(r[li], 0) + 1
            keep.append(r)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(keep)
    dst.write_text(buf.getvalue())
    return len(keep)


@pytest.mark.conformance
def test_train_and_classify_cli(shared_data, tmp_path):
    from fsbrain.cli import _register, app

    _register()
    data = tmp_path / "small.csv"
    n = _subsample_csv(shared_data("cicids2017-flows") / "flows_train.csv.gz", data, per_class=40)
    model = tmp_path / "m.lgb.gz"
    runner = CliRunner()
    res = runner.invoke(app, ["flow", "train", str(data), "--out", str(model), "--rounds", "10"])
    assert res.exit_code == 0, res.output
    assert C.FlowClassifier.load(model).meta["trained_rows"] < n  # Heartbleed/Infiltration skipped
    out = tmp_path / "labels.csv"
    res = runner.invoke(app, ["flow", "classify", str(data), "--model", str(model), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == n
    assert {r["label"] for r in rows} <= set(C.CLASSES)
    assert all(0.0 < float(r["probability"]) <= 1.0 for r in rows)
    truth = [C.CLASS_OF_LABEL.get(r["Label"].lower()) for r in csv.DictReader(data.open())]
    agree = np.mean([t == r["label"] for t, r in zip(truth, rows, strict=True) if t])
    assert agree > 0.9


def test_garbage_cells_become_missing_values(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("Flow Duration,Total Fwd Packet,Dst Port,Label\n100,abc,80,BENIGN\ninf,3,x,DDoS\n5,7\n")
    blocks = list(C.read_csv(p, labels=True))
    cols = blocks[0]["columns"]
    assert np.isnan(cols["total fwd packet"][0]) and np.isnan(cols["flow duration"][1])
    assert blocks[0]["rows"] == 2 and blocks[0]["bad_rows"] == 1


def test_bad_model_files_are_clear_errors(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text("tree\nversion=v4\n")
    with pytest.raises(InputError, match="not an fsbrain flow model"):
        C.FlowClassifier.load(p)
    p.write_text('# fsbrain-flow-model {"version": 1, "classes": [], "features": []}\nnot lightgbm')
    with pytest.raises(InputError, match="corrupt flow model"):
        C.FlowClassifier.load(p)
    with pytest.raises(InputError, match="no such file"):
        list(C.read_csv(tmp_path / "none.csv", labels=False))


def test_shipped_model_is_small_text():
    raw = C.MODEL_PATH.read_bytes()
    assert len(raw) < 3_000_000
    assert gzip.decompress(raw).startswith(b"# fsbrain-flow-model ")


def test_api_classify_and_attacks(tmp_path):
    from fastapi.testclient import TestClient

    from fsbrain.api.app import create_app
    from fsbrain.config import load_settings
    from fsbrain.service import Platform

    platform = Platform(load_settings(home=tmp_path / "home"))
    try:
        client = TestClient(create_app(platform, background=False), raise_server_exceptions=False)
        r = client.get("/v1/flow/attacks")
        assert r.status_code == 200 and r.json()["active"] == [] and "no flow detector" in r.json()["note"]
        flow = {"Dst Port": 22, "Protocol": 6, "Flow Duration": 13317894, "Total Fwd Packet": 20,
                "Total Bwd packets": 32, "FWD Init Win Bytes": 29200, "Bwd Init Win Bytes": 247}
        r = client.post("/v1/flow/classify", json={"flows": [flow, {"Dst Port": "junk"}]})
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        assert len(res) == 2 and res[0]["label"] in C.CLASSES and 0 < res[0]["probability"] <= 1
        recs = [{"ts": 1000 + s + 0.5, "src": f"11.0.0.{i}", "dst": "203.0.113.4", "proto": 1, "packets": 500,
                 "bytes": 42000} for s in range(6) for i in range(40)]
        r = client.post("/v1/flow/records", json={"records": recs})
        assert r.status_code == 200 and r.json()["started"][0]["labels"] == ["ddos_icmp_flood"]
        r = client.get("/v1/flow/attacks")
        assert r.json()["active"][0]["entity"] == "203.0.113.4/32"
        r = client.post("/v1/flow/records", json={"records": [{"ts": 1, "src": "x", "dst": "1.1.1.1", "proto": 6,
                                                                "packets": 1, "bytes": 1}]})
        assert r.status_code == 422
    finally:
        platform.close()
