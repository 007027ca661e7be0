"""POST /v1/decisions/loan_application and friends, against a real platform on SQLite."""

from __future__ import annotations

import copy
import json

import pytest


def test_decision_round_trip(client, application):
    r = client.post("/v1/decisions/loan_application", json=application)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["outcome"] in ("approve", "review", "reject")
    assert 0 <= d["score"] <= 1000 and isinstance(d["score"], int)
    assert d["policy"].startswith("credit-default@")
    assert d["event_id"] == "demo-0001" and d["replayed"] is False
    for reason in d["reasons"]:
        assert {"source", "id", "weight"} <= set(reason)
    assert "features" not in d
    g = client.get(f"/v1/decisions/{d['decision_id']}")
    assert g.status_code == 200
    stored = g.json()
    assert stored["outcome"] == d["outcome"] and stored["score"] == d["score"]
    assert "id_platforms_7d" in stored["features"]


def test_same_event_id_returns_stored_decision(client, application):
    a = client.post("/v1/decisions/loan_application", json=application).json()
    b = client.post("/v1/decisions/loan_application", json=application).json()
    assert b["decision_id"] == a["decision_id"] and b["replayed"] is True
    assert b["score"] == a["score"]
    # the replay must not have counted the event twice in the windows
    other = copy.deepcopy(application)
    other["event_id"] = "demo-0002"
    c = client.get(f"/v1/decisions/{client.post('/v1/decisions/loan_application', json=other).json()['decision_id']}")
    assert c.json()["features"]["id_apps_24h"] == 2


def test_raw_identity_values_never_stored(client, application):
    d = client.post("/v1/decisions/loan_application", json=application).json()
    stored = json.dumps(client.get(f"/v1/decisions/{d['decision_id']}").json(), ensure_ascii=False)
    platform = client.app.state.platform
    event = json.dumps(platform.store.get_event_data(d["decision_id"]), ensure_ascii=False)
    for raw in ("11010519491231002X", "13812345678", "6222021234567890128", "王小明", "13900001111"):
        assert raw not in stored and raw not in event


def test_multi_lending_detected_over_api(client, application):
    last = None
    for i in range(6):
        app = copy.deepcopy(application)
        app["event_id"] = f"ml-{i}"
        app["platform_id"] = f"platform-{i}"
        last = client.post("/v1/decisions/loan_application", json=app).json()
    assert "multi_lending" in last["labels"]
    ml = [r for r in last["reasons"] if r["label"] == "multi_lending"]
    assert any(r["feature"] == "id_platforms_7d" and r["value"] == 6 for r in ml)
    assert last["outcome"] in ("review", "reject")


@pytest.mark.parametrize("mutate, status, fragment", [
    (lambda a: a.pop("loan"), 422, "loan"),
    (lambda a: a["loan"].update(amount=-5), 422, "loan.amount"),
    (lambda a: a["loan"].update(amount="many"), 422, "loan.amount"),
    (lambda a: a.update(surprise=1), 422, "surprise"),
    (lambda a: a["applicant"].update(monthly_income=10**12), 422, "monthly_income"),
])
def test_bad_fields_name_the_field(client, application, mutate, status, fragment):
    mutate(application)
    r = client.post("/v1/decisions/loan_application", json=application)
    assert r.status_code == status
    body = r.json()
    assert body["error"] == "invalid_input" and fragment in body["message"]


def test_malformed_json_and_wrong_shapes(client):
    r = client.post("/v1/decisions/loan_application", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "malformed JSON" in r.json()["message"]
    r = client.post("/v1/decisions/loan_application", content=b"[1,2]")
    assert r.status_code == 422 and "object" in r.json()["message"]
    r = client.post("/v1/decisions/loan_application", content=b"")
    assert r.status_code == 422 and "empty" in r.json()["message"]


def test_unknown_event_type_404(client, application):
    r = client.post("/v1/decisions/spaceship_launch", json=application)
    assert r.status_code == 404 and r.json()["error"] == "unknown_event_type"


def test_huge_payload_413_and_service_keeps_serving(client, application):
    r = client.post("/v1/decisions/loan_application", content=b"{" + b" " * 2_000_000 + b"}")
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    assert client.post("/v1/decisions/loan_application", json=application).status_code == 200


def test_nothing_half_written_on_invalid_input(client, application):
    platform = client.app.state.platform
    bad = copy.deepcopy(application)
    bad["loan"]["amount"] = -1
    client.post("/v1/decisions/loan_application", json=bad)
    assert platform.store.list_decisions(limit=10) == []


def test_unknown_decision_404(client):
    r = client.get("/v1/decisions/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_list_decisions_filters(client, application):
    client.post("/v1/decisions/loan_application", json=application)
    items = client.get("/v1/decisions", params={"event_type": "loan_application"}).json()["items"]
    assert len(items) == 1
    assert client.get("/v1/decisions", params={"limit": 0}).status_code == 422


def test_openapi_documents_the_application(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/decisions/loan_application" in spec["paths"]
    assert "LoanApplication" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_concurrent_same_event_decided_once(make_client, application):
    import asyncio

    client, platform = make_client()

    async def both():
        return await asyncio.gather(*(platform.decide_async("loan_application", copy.deepcopy(application))
                                      for _ in range(5)))

    results = asyncio.run(both())
    assert len({d.decision_id for d, _ in results}) == 1
    assert sorted(r for _, r in results) == [False, True, True, True, True]
    other = copy.deepcopy(application)
    other["event_id"] = "next"
    d, _ = asyncio.run(platform.decide_async("loan_application", other))
    assert d.features["id_apps_24h"] == 2  # the five copies were counted once
