"""API keys: shown once at creation, stored only as a SHA-256 hash, looked up by a public key id.

A raw key reads ``fsb_<key id>_<secret>``: 12 hex characters of key id (stored in clear, used to find the
row) and 32 random bytes, URL-safe base64. The database keeps ``sha256(raw key)`` and compares it in
constant time, so a leaked database does not leak usable keys. Key names are what the audit log records as
the actor; one active key per name.

>>> raw = generate_raw_key()
>>> parse_key_id(raw) == raw.split("_")[1]
True
>>> parse_key_id("not-a-key") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from fsbrain.core.errors import ConflictError, NotFoundError
from fsbrain.store import validate as v
from fsbrain.store.audit import write_audit
from fsbrain.store.db import Database
from fsbrain.store.tables import ApiKeyRow

KEY_PREFIX = "fsb"
_KEY_RE = re.compile(r"^fsb_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")

_KEYS = ApiKeyRow.__table__.c
_ACTIVE_KEY_Q = sa.select(_KEYS.name, _KEYS.key_hash).where(_KEYS.key_id == sa.bindparam("key_id"),
                                                             _KEYS.revoked_at.is_(None))


def generate_raw_key() -> str:
    """A fresh raw key ``fsb_<12 hex>_<43 url-safe chars>`` (48 random bytes in all)."""
    return f"{KEY_PREFIX}_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def parse_key_id(raw: str) -> str | None:
    """The key id of a well-formed raw key, else ``None``."""
    m = _KEY_RE.fullmatch(raw) if isinstance(raw, str) else None
    return m.group(1) if m else None


def hash_key(raw: str) -> str:
    """Hex SHA-256 of a raw key (the only form stored)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def _key_dict(row: ApiKeyRow) -> dict[str, Any]:
    return {
        "name": row.name, "key_id": row.key_id, "created_at": row.created_at, "created_by": row.created_by,
        "revoked_at": row.revoked_at, "active": row.revoked_at is None,
    }


class ApiKeyRepository:
    """API-key methods of :class:`fsbrain.store.Store`."""

    _db: Database

    def create_api_key(self, name: str, actor: str) -> str:
        """Create a key and return the raw key; it cannot be read back later.

        Args:
            name: who uses the key (recorded as the actor in the audit log); unique among active keys.
            actor: who created it.

        Raises:
            ConflictError: an active key already has this name.
            InputError: the name or actor is empty or too long.
        """
        name = v.text(name, "name", max_len=128)
        actor = v.text(actor, "actor", max_len=128)
        raw = generate_raw_key()
        key_id = parse_key_id(raw)
        assert key_id is not None
        with self._db.write() as s:
            row = ApiKeyRow(key_id=key_id, name=name, key_hash=hash_key(raw), created_at=time.time(),
                            created_by=actor, revoked_at=None)
            try:
                with s.begin_nested():
                    s.add(row)
                    s.flush()
            except exc.IntegrityError as err:
                raise ConflictError(f"an active API key named {name!r} already exists; revoke it first") from err
            write_audit(s, actor, "api_key.create", "api_key", name, {"key_id": key_id})
        return raw

    def verify_api_key(self, raw: str) -> str | None:
        """The name of the active key ``raw`` is, or ``None`` (malformed, unknown, revoked or wrong)."""
        key_id = parse_key_id(raw)
        if key_id is None:
            return None
        with self._db.connect() as conn:
            row = conn.execute(_ACTIVE_KEY_Q, {"key_id": key_id}).first()
        if row is None:
            return None
        return str(row.name) if hmac.compare_digest(row.key_hash, hash_key(raw)) else None

    def list_api_keys(self, include_revoked: bool = True) -> list[dict[str, Any]]:
        """Keys (never their secrets), newest first."""
        q = sa.select(ApiKeyRow)
        if not include_revoked:
            q = q.where(ApiKeyRow.revoked_at.is_(None))
        q = q.order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.key_id)
        with self._db.read() as s:
            return [_key_dict(r) for r in s.scalars(q)]

    def revoke_api_key(self, name: str, actor: str = "system") -> dict[str, Any]:
        """Revoke the active key with this name; it stops verifying at once.

        Returns:
            The revoked key's record.

        Raises:
            NotFoundError: no active key has this name.
        """
        actor = v.text(actor, "actor", max_len=128)
        with self._db.write() as s:
            row = s.scalars(sa.select(ApiKeyRow).where(ApiKeyRow.name == name,
                                                       ApiKeyRow.revoked_at.is_(None))).one_or_none()
            if row is None:
                raise NotFoundError(f"no active API key named {name!r}")
            row.revoked_at = time.time()
            write_audit(s, actor, "api_key.revoke", "api_key", name, {"key_id": row.key_id})
            s.flush()
            return _key_dict(row)
