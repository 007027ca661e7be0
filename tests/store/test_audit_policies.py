"""Audit log entries and traceable policy versions."""

from __future__ import annotations

import hashlib

import pytest

from fsbrain.core.errors import ConflictError, InputError, NotFoundError

POLICY = "name: credit-default\nversion: 3\nrules: []\n"
SHA = hashlib.sha256(POLICY.encode()).hexdigest()


def test_audit_entries(store):
    entry = store.audit("alice", "policy.reload", "policy", "credit-default@3", {"from": "2"})
    assert entry["actor"] == "alice" and entry["details"] == {"from": "2"}
    store.audit("bob", "config.change", "config", "auth", None)
    assert [a["actor"] for a in store.list_audit()] == ["bob", "alice"]
    assert [a["actor"] for a in store.list_audit(object_type="policy")] == ["alice"]
    assert [a["actor"] for a in store.list_audit(limit=1, offset=1)] == ["alice"]
    with pytest.raises(InputError, match="actor"):
        store.audit("", "x", "y", "z", {})
    with pytest.raises(InputError, match="raw id_number"):
        store.audit("alice", "x", "y", "z", {"who": "11010519491231002X"})


def test_policy_versions(store, make_decision):
    rec = store.record_policy_version("credit-default", 3, SHA, POLICY, "alice")
    assert rec["policy"] == "credit-default@3" and rec["source_text"] == POLICY
    assert store.record_policy_version("credit-default", "3", SHA.upper(), POLICY, "bob")["created_by"] == "alice"
    with pytest.raises(ConflictError, match="different text"):
        store.record_policy_version("credit-default", 3, "0" * 64, POLICY + "#", "bob")
    with pytest.raises(InputError, match="sha256"):
        store.record_policy_version("credit-default", 4, "abc", POLICY, "bob")
    store.record_policy_version("credit-default", 4, "1" * 64, POLICY + "# v4\n", "bob")
    assert [p["version"] for p in store.list_policy_versions("credit-default")] == ["4", "3"]
    assert "source_text" not in store.list_policy_versions()[0]
    d = make_decision()
    store.save_decision(d, {})
    traced = store.get_policy_version(store.get_decision(d.decision_id).policy)
    assert traced["sha256"] == SHA and traced["source_text"] == POLICY
    with pytest.raises(NotFoundError, match="credit-default@9"):
        store.get_policy_version("credit-default", 9)
    audit = store.list_audit(object_type="policy")
    assert [(a["action"], a["object_id"]) for a in audit] == [("policy.record", "credit-default@4"),
                                                              ("policy.record", "credit-default@3")]
