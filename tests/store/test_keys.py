"""API keys: raw key returned once, only its hash stored, revocation, audit."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from fsbrain.core.errors import ConflictError, NotFoundError


def _dump_database(store) -> str:
    """Every value of every table, as one string."""
    eng = sa.create_engine(store._db.url)
    out = []
    with eng.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            out += [repr(tuple(r)) for r in conn.execute(sa.text(f'SELECT * FROM "{table}"'))]
    eng.dispose()
    return "\n".join(out)


def test_create_verify_revoke(store):
    raw = store.create_api_key("ops-bot", "alice")
    assert raw.startswith("fsb_") and len(raw) > 50
    assert store.verify_api_key(raw) == "ops-bot"
    for wrong in (raw[:-1] + ("A" if raw[-1] != "A" else "B"), "", "fsb_", raw + "x", "Bearer " + raw):
        assert store.verify_api_key(wrong) is None
    keys = store.list_api_keys()
    assert [(k["name"], k["active"], k["created_by"]) for k in keys] == [("ops-bot", True, "alice")]
    assert "key_hash" not in keys[0]
    revoked = store.revoke_api_key("ops-bot", actor="bob")
    assert revoked["active"] is False
    assert store.verify_api_key(raw) is None
    with pytest.raises(NotFoundError, match="ops-bot"):
        store.revoke_api_key("ops-bot", actor="bob")
    assert [(a["action"], a["actor"], a["object_id"]) for a in store.list_audit(object_type="api_key")] == [
        ("api_key.revoke", "bob", "ops-bot"), ("api_key.create", "alice", "ops-bot")]


def test_raw_key_never_stored(store):
    raw = store.create_api_key("svc", "alice")
    dump = _dump_database(store)
    secret = raw.split("_", 2)[2]
    assert secret not in dump and raw not in dump
    assert hashlib.sha256(raw.encode()).hexdigest() in dump


def test_one_active_key_per_name(store):
    first = store.create_api_key("svc", "alice")
    with pytest.raises(ConflictError, match="svc"):
        store.create_api_key("svc", "alice")
    store.revoke_api_key("svc", actor="alice")
    second = store.create_api_key("svc", "alice")
    assert store.verify_api_key(second) == "svc" and store.verify_api_key(first) is None
    assert len(store.list_api_keys()) == 2 and len(store.list_api_keys(include_revoked=False)) == 1
