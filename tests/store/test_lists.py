"""Black/white/grey lists: tokens only, expiry, upsert, version counter and audit entries."""

from __future__ import annotations

import time

import pytest

from fsbrain.core.errors import InputError, NotFoundError
from fsbrain.core.pii import mask


def _add(store, pseudo, *, list_type="black", kind="id_number", raw="11010519491231002X", expires_at=None,
         reason="fraud confirmed", actor="alice"):
    return store.add_list_entry(list_type, kind, pseudo.hash(kind, raw), mask(kind, raw), reason, "manual",
                                expires_at, actor)


def test_add_get_remove_with_audit_and_version(store, pseudo):
    v0 = store.list_version()
    entry = _add(store, pseudo)
    assert entry["value_hash"] == pseudo.hash("id_number", "11010519491231002X")
    assert entry["masked"] == "110105********002X" and entry["created_by"] == "alice"
    assert store.get_list_entry(entry["entry_id"]) == entry
    assert store.list_version() == v0 + 1
    removed = store.remove_list_entry(entry["entry_id"], "bob")
    assert removed["entry_id"] == entry["entry_id"]
    assert store.list_version() == v0 + 2
    assert store.list_entries() == []
    with pytest.raises(NotFoundError, match=entry["entry_id"]):
        store.remove_list_entry(entry["entry_id"], "bob")
    audit = store.list_audit(object_type="list_entry")
    assert [(a["action"], a["actor"]) for a in audit] == [("list.remove", "bob"), ("list.add", "alice")]
    assert all(a["object_id"] == entry["entry_id"] for a in audit)
    assert audit[1]["details"]["masked"] == "110105********002X"


def test_adding_twice_updates_the_entry(store, pseudo):
    first = _add(store, pseudo, reason="first")
    second = _add(store, pseudo, reason="second", expires_at=time.time() + 60)
    assert second["entry_id"] == first["entry_id"] and second["reason"] == "second"
    assert len(store.list_entries()) == 1
    assert [a["action"] for a in store.list_audit()] == ["list.update", "list.add"]
    white = _add(store, pseudo, list_type="white")
    assert white["entry_id"] != first["entry_id"]
    assert len(store.list_entries()) == 2


def test_expiry(store, pseudo):
    now = time.time()
    _add(store, pseudo, raw="13812345678", kind="phone", expires_at=now - 1)
    live = _add(store, pseudo, raw="13900001111", kind="phone", expires_at=now + 3600)
    forever = store.add_list_entry("grey", "ip", "203.0.113.7", "203.0.113.*", "proxy", "feed:x", None, "sys")
    active = {e["entry_id"] for e in store.active_list_entries(now)}
    assert active == {live["entry_id"], forever["entry_id"]}
    assert {e["entry_id"] for e in store.active_list_entries(now + 7200)} == {forever["entry_id"]}
    assert len(store.list_entries(include_expired=True)) == 3
    assert len(store.list_entries()) == 2
    assert [e["entry_id"] for e in store.list_entries(list_type="grey")] == [forever["entry_id"]]
    assert len(store.list_entries(entity_type="phone", include_expired=True)) == 2
    version = store.list_version()
    assert store.purge_expired_list_entries(now, "janitor") == 1
    assert store.list_version() == version + 1
    assert store.list_audit(limit=1)[0]["action"] == "list.expire"


@pytest.mark.parametrize("kind, value, masked, match", [
    ("id_number", "11010519491231002X", "110105********002X", "token"),
    ("phone", "13812345678", "138****5678", "token"),
    ("bank_card", "6222021234567890123", "622202*********0123", "token"),
    ("email", "a@example.com", "a***", "token"),
    ("contact_phone", "h:" + "0" * 31, "138****5678", "token"),
    ("bank_card", "h:" + "0" * 32, "6222021234567890128", "unmasked bank_card"),
    ("device_id", "11010519491231002X", "dev", "raw id_number"),
    ("device_id", "13812345678", "dev", "raw phone"),
    ("phone", "h:" + "0" * 32, "13812345678", "masked"),
])
def test_raw_identity_is_refused(store, kind, value, masked, match):
    v0 = store.list_version()
    with pytest.raises(InputError, match=match):
        store.add_list_entry("black", kind, value, masked, "r", "manual", None, "alice")
    assert store.list_entries(include_expired=True) == [] and store.list_audit() == []
    assert store.list_version() == v0


@pytest.mark.parametrize("kw, match", [
    ({"list_type": "purple"}, "list_type"), ({"entity_type": "Phone Number"}, "entity_type"),
    ({"expires_at": "tomorrow"}, "expires_at"), ({"actor": ""}, "actor"), ({"source": ""}, "source"),
])
def test_bad_arguments(store, kw, match):
    args = dict(list_type="black", entity_type="device_id", value_hash="dev-1", masked="dev-*", reason="r",
                source="manual", expires_at=None, actor="alice")
    args.update(kw)
    with pytest.raises(InputError, match=match):
        store.add_list_entry(**args)


def test_non_identity_values_are_allowed_raw(store, pseudo):
    imei = "352099001761481"  # Luhn-valid like a card number, but a device id is not identity data
    e = store.add_list_entry("black", "device_id", imei, imei, "farm", "manual", None, "a")
    assert store.active_list_entries(time.time())[0]["value_hash"] == e["value_hash"] == imei
    token = pseudo.hash("phone", "13812345678")
    c = store.add_list_entry("grey", "contact_phone", token, "138****5678", "ring contact", "case:1", None, "a")
    assert c["value_hash"] == token
