"""``/v1/host`` brute-force endpoints on the real platform (SQLite store)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from fsbrain.api.app import create_app
from fsbrain.config import load_settings
from fsbrain.service import Platform


@pytest.fixture
def client(tmp_path):
    platform = Platform(load_settings(home=tmp_path / "home"))
    yield TestClient(create_app(platform, background=False), raise_server_exceptions=False)
    platform.close()


def test_ban_endpoints(client):
    r = client.post("/v1/host/bans", json={"target": "192.0.2.5", "seconds": 600, "reason": "test"})
    assert r.status_code == 201 and r.json()["target"] == "192.0.2.5"
    assert client.post("/v1/host/bans", json={"target": "2001:db8::/64", "seconds": None}).status_code == 201
    items = client.get("/v1/host/bans").json()["items"]
    assert {i["target"] for i in items} == {"192.0.2.5", "2001:db8::/64"}
    assert client.delete("/v1/host/bans/2001:db8::%2F64").status_code == 200
    assert client.delete("/v1/host/bans/192.0.2.5").status_code == 200
    r = client.delete("/v1/host/bans/192.0.2.5")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.post("/v1/host/bans", json={"target": "127.0.0.1"})
    assert r.status_code == 409
    r = client.post("/v1/host/bans", json={"target": "junk"})
    assert r.status_code == 422
    r = client.post("/v1/host/bans", json={"target": "192.0.2.9", "extra": 1})
    assert r.status_code == 422


def test_logs_in_alerts_out_and_ban(client):
    now = dt.datetime.now()
    lines = [(now + dt.timedelta(seconds=i)).strftime("%b %d %H:%M:%S")
             + f" srv sshd[{10 + i}]: Failed password for root from 203.0.113.8 port 22 ssh2" for i in range(5)]
    lines.append("\x00 binary junk")
    r = client.post("/v1/host/logs", json={"filter": "sshd", "lines": lines, "ban": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["labels"] for a in body["alerts"]] == [["brute_force"]]
    assert body["counts"]["failure"] == 5 and body["counts"]["skipped"] == 1
    assert "203.0.113.8" in {i["target"] for i in client.get("/v1/host/bans").json()["items"]}


def test_logs_errors(client):
    r = client.post("/v1/host/logs", json={"filter": "nope", "lines": ["x"]})
    assert r.status_code == 422 and "no filter named" in r.json()["message"]
    r = client.post("/v1/host/logs", json={"filter": "sshd", "lines": []})
    assert r.status_code == 422
    r = client.post("/v1/host/logs", json={"filter": "sshd", "lines": ["x"] * 10_001})
    assert r.status_code == 422


@pytest.mark.redis
def test_logs_counts_are_shared_through_redis(tmp_path, redis_url):
    """Two API processes on one Redis see each other's failures (the jail fires on the second one)."""
    now = dt.datetime.now()
    lines = [(now + dt.timedelta(seconds=i)).strftime("%b %d %H:%M:%S")
             + f" srv sshd[{10 + i}]: Failed password for root from 203.0.113.99 port 22 ssh2" for i in range(6)]
    platforms = [Platform(load_settings(home=tmp_path / f"h{i}", state_type="redis", redis_url=redis_url))
                 for i in range(2)]
    try:
        a, b = (TestClient(create_app(p, background=False)) for p in platforms)
        first = a.post("/v1/host/logs", json={"filter": "sshd", "lines": lines[:3]}).json()
        second = b.post("/v1/host/logs", json={"filter": "sshd", "lines": lines[3:]}).json()
        assert first["alerts"] == []
        assert [x["labels"] for x in second["alerts"]] == [["brute_force"]]
        assert second["alerts"][0]["reasons"][0]["value"] == 5
    finally:
        for p in platforms:
            p.close()
