"""Health, metrics, lists, auth, policies, shadow, reload."""

from __future__ import annotations

import copy
import time
from pathlib import Path

from fsbrain.engine.policy import default_policy_path


def test_health_ready_metrics(client, application):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] is True
    client.post("/v1/decisions/loan_application", json=application)
    m = client.get("/metrics").text
    assert "fsbrain_decisions_total" in m and 'event_type="loan_application"' in m
    assert "fsbrain_decision_latency_seconds_bucket" in m
    assert "fsbrain_rule_errors_total" in m or "fsbrain_engine_rule_errors" in m
    assert "fsbrain_state_backend_errors_total" in m
    from fsbrain import speedups

    assert f"fsbrain_compiled_hot_path {int(speedups.active())}" in m
    assert ready.json()["checks"]["compiled_hot_path"] is speedups.active()


def test_lists_api_validates_hashes_and_masks(client, application):
    r = client.post("/v1/lists", json={"list_type": "black", "entity_type": "id_number",
                                       "value": "11010519491231002X", "reason": "confirmed fraud"})
    assert r.status_code == 201, r.text
    entry = r.json()
    assert "11010519491231002X" not in str(entry)
    listed = client.get("/v1/lists").json()["items"]
    assert listed[0]["masked"] == "110105********002X"
    d = client.post("/v1/decisions/loan_application", json=application).json()
    assert d["outcome"] == "reject" and "blacklist" in d["labels"]
    assert client.delete(f"/v1/lists/{entry['entry_id']}").status_code == 200
    app2 = copy.deepcopy(application)
    app2["event_id"] = "after-removal"
    after = client.post("/v1/decisions/loan_application", json=app2).json()
    assert "blacklist" not in after["labels"]
    audit = client.get("/v1/audit", params={"object_type": "list_entry"}).json()["items"]
    assert len(audit) >= 2


def test_list_bad_values(client):
    r = client.post("/v1/lists", json={"list_type": "black", "entity_type": "id_number", "value": "123"})
    assert r.status_code == 422 and "value" in r.json()["message"]
    r = client.post("/v1/lists", json={"list_type": "purple", "entity_type": "ip", "value": "1.2.3.4"})
    assert r.status_code == 422
    r = client.post("/v1/lists", json={"list_type": "black", "entity_type": "spaceship", "value": "x"})
    assert r.status_code == 422 and "entity_type" in r.json()["message"]
    r = client.post("/v1/lists", json={"list_type": "black", "entity_type": "ip", "value": "1.2.3.4",
                                       "expires_at": time.time() - 10})
    assert r.status_code == 422 and "expires_at" in r.json()["message"]


def test_whitelist_short_circuits(client, application):
    client.post("/v1/lists", json={"list_type": "white", "entity_type": "phone", "value": "13812345678"})
    d = client.post("/v1/decisions/loan_application", json=application).json()
    assert d["outcome"] == "approve" and d["score"] == 0 and d["reasons"][0]["source"] == "list"


def test_auth_required_when_configured(make_client, application):
    client, platform = make_client(auth=True)
    r = client.post("/v1/decisions/loan_application", json=application)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    key = platform.store.create_api_key("risk-team", actor="test")
    assert client.post("/v1/decisions/loan_application", json=application,
                       headers={"X-API-Key": "wrong"}).status_code == 401
    r = client.post("/v1/lists", json={"list_type": "grey", "entity_type": "ip", "value": "1.2.3.4"},
                    headers={"X-API-Key": key})
    assert r.status_code == 201
    audit = platform.store.list_audit(limit=10, object_type="list_entry")
    assert audit[0]["actor"] == "risk-team"
    assert client.get("/healthz").status_code == 200


def test_auth_forced_off_loopback(tmp_path):
    from fsbrain.config import load_settings

    assert load_settings(home=tmp_path, host="0.0.0.0", auth=False).auth_required is True
    assert load_settings(home=tmp_path).auth_required is False


def test_policies_listing_and_check(client):
    items = client.get("/v1/policies").json()["items"]
    assert items[0]["role"] == "live" and items[0]["rules"] >= 40
    ok = client.post("/v1/policies/check", content=default_policy_path().read_bytes()).json()
    assert ok["valid"] is True
    bad = client.post("/v1/policies/check", content=b"policy: x\nversion: one\n").json()
    assert bad["valid"] is False and bad["problems"][0]["line"] == 2
    assert any(lab["zh"] == "多头借贷" for lab in client.get("/v1/labels").json()["items"])


def test_shadow_policy_stored_and_compared_never_returned(make_client, application, tmp_path):
    text = default_policy_path().read_text(encoding="utf-8")
    shadow = tmp_path / "candidate.yaml"
    shadow.write_text(text.replace("version: 1", "version: 2").replace("min_score: 300", "min_score: 100"))
    client, platform = make_client(shadow_policies=[shadow])
    d = client.post("/v1/decisions/loan_application", json=application).json()
    assert d["policy"] == "credit-default@1" and d["shadow"] is False
    cmp = client.get("/v1/policies/credit-default@2/shadow").json()
    assert cmp["compared"] == 1 and cmp["unmatched_shadow"] == 0
    assert sum(sum(v.values()) for v in cmp["confusion"].values()) == 1
    assert platform.store.list_shadow_decisions("credit-default@2")


def test_hot_reload_and_broken_file_keeps_old(make_client, application, tmp_path):
    pol = tmp_path / "live.yaml"
    text = default_policy_path().read_text(encoding="utf-8")
    pol.write_text(text)
    client, platform = make_client(policies=[pol])
    assert client.get("/v1/policies").json()["items"][0]["version"] == 1
    pol.write_text(text.replace("version: 1", "version: 5"))
    _bump_mtime(pol)
    assert client.post("/v1/policies/reload").json()["reloaded"] == ["credit-default@5"]
    pol.write_text("policy: broken\n  : : :\n")
    _bump_mtime(pol)
    assert client.post("/v1/policies/reload").json()["reloaded"] == []
    d = client.post("/v1/decisions/loan_application", json=application).json()
    assert d["policy"] == "credit-default@5"


def _bump_mtime(p: Path) -> None:
    import os

    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_reload_under_concurrent_requests_drops_nothing(make_client, application, tmp_path):
    import threading

    pol = tmp_path / "live.yaml"
    text = default_policy_path().read_text(encoding="utf-8")
    pol.write_text(text)
    client, platform = make_client(policies=[pol])
    statuses: list[int] = []
    policies: set[str] = set()
    stop = threading.Event()

    def hammer(worker: int) -> None:
        i = 0
        while not stop.is_set() and i < 200:
            app = copy.deepcopy(application)
            app["event_id"] = f"rl-{worker}-{i}"
            r = client.post("/v1/decisions/loan_application", json=app)
            statuses.append(r.status_code)
            if r.status_code == 200:
                policies.add(r.json()["policy"])
            i += 1

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for v in range(2, 7):
        pol.write_text(text.replace("version: 1", f"version: {v}"))
        _bump_mtime(pol)
        platform.reload_if_changed()
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    assert statuses and set(statuses) == {200}
    assert "credit-default@6" in {p["policy"] for p in client.get("/v1/policies").json()["items"]}
    assert len(policies) >= 2


def test_future_event_time_is_clamped_for_windows(client, application):
    def send(event_id, ts):
        app = copy.deepcopy(application)
        app["event_id"], app["timestamp"] = event_id, ts
        d = client.post("/v1/decisions/loan_application", json=app).json()
        return client.get(f"/v1/decisions/{d['decision_id']}").json()

    now = time.time()
    send("before-1", now - 60)
    far = send("future-1", now + 40 * 86400)
    assert far["event_time"] == now + 40 * 86400
    after = send("after-1", now)
    # had the far-future time moved the windows' clock 40 days ahead, today's events would be too late to
    # count; clamped, today's application still sees the one from a minute ago
    assert after["features"]["id_apps_24h"] >= 2
