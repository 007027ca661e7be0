"""The direct path for POST /v1/decisions/{event_type} answers exactly as the routed FastAPI endpoint."""

from __future__ import annotations

import copy
import json

import pytest


def _cases(application: dict) -> list[tuple[str, dict]]:
    bad_amount = copy.deepcopy(application)
    bad_amount["loan"]["amount"] = "many"
    extra = copy.deepcopy(application)
    extra["surprise"] = 1
    return [
        ("ok", {"json": application}),
        ("replay", {"json": application}),
        ("malformed", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("empty", {"content": b"", "headers": {"content-type": "application/json"}}),
        ("array", {"json": [1, 2]}),
        ("bad amount", {"json": bad_amount}),
        ("extra field", {"json": extra}),
        ("too large", {"content": b"{" + b" " * 2_000_000 + b"}", "headers": {"content-type": "application/json"}}),
    ]


def _answers(client, application: dict, path: str = "/v1/decisions/loan_application", headers=None) -> list:
    out = []
    for name, kw in _cases(application):
        kw = dict(kw)
        if headers:
            kw["headers"] = {**kw.get("headers", {}), **headers}
        r = client.post(path, **kw)
        body = r.json()
        for k in ("decision_id", "latency_ms", "created_at"):
            body.pop(k, None)
        if "message" in body:
            body["message"] = body["message"].split(" at line")[0]
        out.append((name, r.status_code, r.headers.get("content-type"), json.dumps(body, sort_keys=True)))
    return out


@pytest.mark.parametrize("path", ["/v1/decisions/loan_application", "/v1/decisions/no_such_type"])
def test_fast_and_routed_paths_answer_alike(make_client, application, path, tmp_path):
    fast, _ = make_client(home=tmp_path / "fast")
    routed, _ = make_client(home=tmp_path / "routed")
    routed.app.fast_decisions = False
    a, b = _answers(fast, application, path), _answers(routed, application, path)
    assert a == b
    if path.endswith("loan_application"):
        assert a[0][1] == 200 and json.loads(a[1][3])["replayed"] is True
        assert {x[1] for x in a[2:]} == {413, 422}
    else:
        assert {x[1] for x in a[:-1]} <= {404, 422}


def test_fast_path_auth(make_client, application, tmp_path):
    for fast in (True, False):
        client, platform = make_client(home=tmp_path / f"auth{fast}", auth=True)
        client.app.fast_decisions = fast
        r = client.post("/v1/decisions/loan_application", json=application)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        r = client.post("/v1/decisions/loan_application", json=application, headers={"X-API-Key": "fsb_nope"})
        assert r.status_code == 401
        key = platform.store.create_api_key("risk-team", actor="test")
        for h in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
            app = dict(application, event_id=f"auth-{fast}-{len(h)}-{list(h)[0]}")
            r = client.post("/v1/decisions/loan_application", json=app, headers=h)
            assert r.status_code == 200, r.text
        assert platform.cached_api_key(key) == "risk-team"  # verified once, then cached briefly


def test_other_decision_routes_still_go_through_fastapi(client, application):
    d = client.post("/v1/decisions/loan_application", json=application).json()
    assert client.get(f"/v1/decisions/{d['decision_id']}").json()["features"]
    assert client.post("/v1/decisions/loan_application/extra", json=application).status_code in (404, 405)
    assert client.get("/openapi.json").json()["paths"]["/v1/decisions/loan_application"]["post"]
