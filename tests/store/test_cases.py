"""Case queue: open on decisions and alerts, status flow with resolutions, notes and audit."""

from __future__ import annotations

import pytest

from fsbrain.core.errors import InputError, NotFoundError
from fsbrain.core.model import Alert


@pytest.fixture
def items(store, make_decision):
    d1 = make_decision("e1", labels=["gang_fraud"])
    d2 = make_decision("e2", labels=["device_risk", "gang_fraud"])
    a = Alert(source="host.bruteforce", labels=["brute_force"], severity=3, title="ssh brute force")
    for d in (d1, d2):
        store.save_decision(d, {"amount": 1})
    store.save_alerts([a])
    return d1, d2, a


def test_case_lifecycle(store, items):
    d1, d2, a = items
    case = store.open_case("ring on device X", decision_ids=[d1.decision_id, d2.decision_id],
                           alert_ids=[a.alert_id], actor="alice")
    assert case["status"] == "open" and case["resolution"] is None
    assert case["labels"] == ["gang_fraud", "device_risk", "brute_force"]
    assert sorted(case["decision_ids"]) == sorted([d1.decision_id, d2.decision_id])
    assert case["alert_ids"] == [a.alert_id]
    cid = case["case_id"]
    case = store.update_case(cid, status="in_review", assignee="bob", note="looking", actor="bob")
    assert case["status"] == "in_review" and case["assignee"] == "bob"
    with pytest.raises(InputError, match="resolution"):
        store.update_case(cid, status="closed", actor="bob")
    with pytest.raises(InputError, match="resolution"):
        store.update_case(cid, resolution="fraud", actor="bob")
    case = store.update_case(cid, status="closed", resolution="fraud", note="confirmed ring", actor="bob")
    assert (case["status"], case["resolution"]) == ("closed", "fraud")
    assert [n["note"] for n in case["notes"]] == ["opened", "looking", "confirmed ring"]
    reopened = store.update_case(cid, status="open", actor="carol")
    assert reopened["resolution"] is None
    actions = [(x["action"], x["actor"]) for x in store.list_audit(object_type="case")]
    assert actions == [("case.update", "carol"), ("case.update", "bob"), ("case.update", "bob"),
                       ("case.open", "alice")]
    assert store.get_case(cid)["notes"][-1]["status"] == "open"


def test_bad_cases(store, items):
    d1, _, _ = items
    with pytest.raises(InputError, match="decision_ids: not found: d-missing"):
        store.open_case("x", decision_ids=[d1.decision_id, "d-missing"])
    assert store.list_cases() == []
    with pytest.raises(InputError, match="title"):
        store.open_case("", decision_ids=[d1.decision_id])
    cid = store.open_case("x", decision_ids=[d1.decision_id])["case_id"]
    with pytest.raises(InputError, match="status"):
        store.update_case(cid, status="done")
    with pytest.raises(InputError, match="nothing to change"):
        store.update_case(cid)
    with pytest.raises(NotFoundError, match="c-nope"):
        store.update_case("c-nope", note="x")


def test_list_cases(store, items):
    d1, d2, a = items
    c1 = store.open_case("one", decision_ids=[d1.decision_id], labels=["multi_lending"])
    c2 = store.open_case("two", alert_ids=[a.alert_id], assignee="bob")
    store.update_case(c1["case_id"], decision_ids=[d2.decision_id], note="more")
    assert [c["case_id"] for c in store.list_cases()] == [c1["case_id"], c2["case_id"]]
    assert [c["case_id"] for c in store.list_cases(assignee="bob")] == [c2["case_id"]]
    assert [c["case_id"] for c in store.list_cases(assignee="")] == [c1["case_id"]]
    assert [c["case_id"] for c in store.list_cases(item_id=d2.decision_id)] == [c1["case_id"]]
    assert store.list_cases(status="closed") == []
    assert store.get_case(c1["case_id"])["labels"] == ["multi_lending"]
