"""The store's public surface: changing it must be deliberate (the engine, API and CLI call these names)."""

from __future__ import annotations

import inspect

import fsbrain.store
from fsbrain.store import Store

PUBLIC_METHODS = {
    "migrate", "close", "schema_revision", "head_revision", "ping", "url", "dialect",
    "save_decision", "save_decisions", "get_decision", "get_event_data", "get_decision_by_event", "has_decision_for_event", "list_decisions",
    "list_shadow_decisions", "shadow_comparison",
    "save_alerts", "get_alert", "list_alerts", "alert_counts",
    "add_list_entry", "remove_list_entry", "get_list_entry", "list_entries", "active_list_entries",
    "list_version", "purge_expired_list_entries",
    "audit", "list_audit", "record_policy_version", "list_policy_versions", "get_policy_version",
    "create_api_key", "verify_api_key", "list_api_keys", "revoke_api_key",
    "open_case", "update_case", "get_case", "list_cases",
}


def test_exported_names():
    assert sorted(fsbrain.store.__all__) == ["CASE_STATUSES", "LIST_TYPES", "RESOLUTIONS", "Store"]
    assert fsbrain.store.LIST_TYPES == ("black", "white", "grey")


def test_store_public_methods():
    public = {name for name, _ in inspect.getmembers(Store) if not name.startswith("_")}
    assert public == PUBLIC_METHODS


def test_documented_signatures():
    params = lambda fn: list(inspect.signature(fn).parameters)[1:]  # noqa: E731
    assert params(Store.save_decision) == ["decision", "event_data"]
    assert params(Store.add_list_entry) == ["list_type", "entity_type", "value_hash", "masked", "reason",
                                            "source", "expires_at", "actor"]
    assert params(Store.list_decisions)[:7] == ["event_type", "outcome", "label", "since", "until", "limit",
                                                "offset"]
    assert params(Store.list_alerts)[:7] == ["source", "label", "min_severity", "entity", "since", "limit",
                                             "offset"]
    assert params(Store.audit) == ["actor", "action", "object_type", "object_id", "details"]
    assert params(Store.record_policy_version) == ["name", "version", "sha256", "source_text", "actor"]
    for method in PUBLIC_METHODS - {"url", "dialect"}:
        assert inspect.getdoc(getattr(Store, method)), f"Store.{method} has no docstring"
