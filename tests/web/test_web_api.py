"""The /v1/web API: inspect and logs, with 4xx JSON errors for bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fsbrain.api.app import create_app
from fsbrain.config import load_settings
from fsbrain.service import Platform


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    platform = Platform(load_settings(home=tmp_path_factory.mktemp("home")))
    yield TestClient(create_app(platform, background=False), raise_server_exceptions=False)
    platform.close()


def test_inspect_attack_and_benign(client):
    r = client.post("/v1/web/inspect", json={"method": "GET", "uri": "/item?id=1%27%20union%20select%201,2--",
                                             "headers": {"Host": "bank.example.com"}})
    assert r.status_code == 200
    v = r.json()
    assert set(v) == {"attack", "score", "labels", "rules", "reasons"}
    assert v["attack"] and "web_sqli" in v["labels"]
    r = client.post("/v1/web/inspect", json={"uri": "/search?q=%E4%BF%A1%E7%94%A8%E5%8D%A1", "paranoia": 2,
                                             "explain": True, "headers": [["Host", "bank.example.com"]]})
    v = r.json()
    assert r.status_code == 200 and not v["attack"] and v["paranoia"] == 2 and "model" in v


@pytest.mark.parametrize("body,where", [
    ({"uri": "/", "paranoia": 7}, "paranoia"),
    ({"uri": "/", "headers": 5}, "headers"),
    ({"uri": "/", "surprise": 1}, "surprise"),
    ({"uri": ""}, "uri"),
])
def test_inspect_bad_input_is_422(client, body, where):
    r = client.post("/v1/web/inspect", json=body)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_input" and where in r.json()["message"]


def test_inspect_not_json_is_4xx(client):
    r = client.post("/v1/web/inspect", content=b"{oops", headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500


def test_logs_endpoint(client):
    lines = ['203.0.113.5 - - [27/Oct/2024:03:33:20 +0000] "GET /item?id=1%27%20union%20select%20password%20from%20users-- HTTP/1.1" 403 0 "-" "sqlmap/1.7"',
             "garbage"]
    r = client.post("/v1/web/logs", json={"lines": lines})
    assert r.status_code == 200
    out = r.json()
    assert out["summary"]["bad_lines"] == 1 and out["summary"]["bad_line_samples"][0]["line"] == 2
    assert {a["source"] for a in out["alerts"]} >= {"web.inspector", "web.bots"}
    assert client.post("/v1/web/logs", json={"lines": []}).status_code == 422


def test_inspect_names_a_limit_without_explain(client):
    r = client.post("/v1/web/inspect", json={"uri": "/", "headers": [[f"X-H{i}", "v"] for i in range(300)]})
    assert r.status_code == 200 and r.json()["limits_hit"] == ["max_headers"]
    r = client.post("/v1/web/inspect", json={"uri": "/"})
    assert r.status_code == 200 and "limits_hit" not in r.json()
