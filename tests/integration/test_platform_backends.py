"""The whole platform on the real Redis state backend and the real PostgreSQL store."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fsbrain.api.app import create_app
from fsbrain.config import load_settings
from fsbrain.service import Platform

FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "application.json").read_text("utf-8"))


def _stream(n: int = 40):
    """Applications sharing devices, IPs and IDs so every kind of feature moves."""
    out = []
    for i in range(n):
        a = copy.deepcopy(FIXTURE)
        a["event_id"] = f"s-{i}"
        a["timestamp"] = 1795140900 + i * 600
        a["platform_id"] = f"p{i % 7}"
        a["device"]["device_id"] = f"dev-{i % 5}"
        a["device"]["ip"] = f"36.112.{i % 3}.{10 + i % 4}"
        a["loan"]["amount"] = 1000 + 137 * i
        a["account"]["account_id"] = f"acc-{i % 9}"
        a["account"]["is_new_user"] = i % 4 == 0
        if i % 3 == 0:
            a["loan"]["coupon_code"] = "NEW50"
        if i % 2:
            a["applicant"]["id_number"] = "110105194912310037"
        out.append(a)
    return out


def _run(platform: Platform) -> list[dict]:
    client = TestClient(create_app(platform, background=False))
    res = []
    for a in _stream():
        r = client.post("/v1/decisions/loan_application", json=a)
        assert r.status_code == 200, r.text
        d = r.json()
        full = client.get(f"/v1/decisions/{d['decision_id']}").json()
        res.append({k: full[k] for k in ("outcome", "score", "labels", "features")} |
                   {"reasons": [(x["id"], x.get("value")) for x in full["reasons"]]})
    return res


@pytest.mark.redis
def test_memory_and_redis_give_identical_decisions(tmp_path, redis_url):
    mem = Platform(load_settings(home=tmp_path / "m"))
    red = Platform(load_settings(home=tmp_path / "r", state_type="redis", redis_url=redis_url,
                                  state_prefix=f"t{uuid.uuid4().hex[:10]}"))
    try:
        assert red.engine.state.name == "redis"
        a, b = _run(mem), _run(red)
    finally:
        mem.close()
        red.close()
    assert a == b
    assert any(d["labels"] for d in a)
    assert max(d["features"]["device_ids_30d"] for d in a) >= 2


@pytest.mark.redis
def test_redis_state_shared_between_two_platforms(tmp_path, redis_url):
    """Two workers (platforms) on one Redis see each other's events."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    p1 = Platform(load_settings(home=tmp_path / "a", state_type="redis", redis_url=redis_url, state_prefix=prefix))
    p2 = Platform(load_settings(home=tmp_path / "b", state_type="redis", redis_url=redis_url, state_prefix=prefix))
    try:
        for i, p in enumerate((p1, p2, p1, p2, p1)):
            a = copy.deepcopy(FIXTURE)
            a["event_id"] = f"w-{i}"
            a["platform_id"] = f"p{i}"
            d, _ = p.decide("loan_application", a)
        assert d.features["id_platforms_7d"] == 5
        assert "multi_lending" in d.labels
    finally:
        p1.close()
        p2.close()


@pytest.mark.postgres
def test_platform_on_postgresql(tmp_path, postgres_url):
    p = Platform(load_settings(home=tmp_path, database_url=postgres_url))
    try:
        client = TestClient(create_app(p, background=False))
        d = client.post("/v1/decisions/loan_application", json=FIXTURE).json()
        again = client.post("/v1/decisions/loan_application", json=FIXTURE).json()
        assert again["decision_id"] == d["decision_id"] and again["replayed"] is True
        assert client.get(f"/v1/decisions/{d['decision_id']}").json()["features"]
        r = client.post("/v1/lists", json={"list_type": "black", "entity_type": "phone", "value": "13812345678"})
        assert r.status_code == 201
        other = copy.deepcopy(FIXTURE)
        other["event_id"] = "pg-2"
        assert client.post("/v1/decisions/loan_application", json=other).json()["outcome"] == "reject"
        assert p.store.dialect == "postgresql"
        assert client.get("/readyz").status_code == 200
    finally:
        p.close()


@pytest.mark.redis
def test_redis_down_gives_503_and_service_recovers(tmp_path):
    p = Platform(load_settings(home=tmp_path, state_type="redis", redis_url="redis://127.0.0.1:1/0"))
    try:
        client = TestClient(create_app(p, background=False), raise_server_exceptions=False)
        r = client.post("/v1/decisions/loan_application", json=FIXTURE)
        assert r.status_code == 503 and r.json()["error"] == "backend_unavailable"
        assert p.store.list_decisions(limit=5) == []
        assert "fsbrain_state_backend_errors_total 1.0" in client.get("/metrics").text
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
    finally:
        p.close()
