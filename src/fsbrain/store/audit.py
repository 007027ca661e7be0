"""Audit log (who changed which policy, list, key or case, when) and traceable policy versions."""

from __future__ import annotations

import re
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.orm import Session

from fsbrain.core.errors import ConflictError, InputError, NotFoundError
from fsbrain.store import validate as v
from fsbrain.store.db import Database
from fsbrain.store.tables import AuditRow, PolicyVersionRow

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def write_audit(s: Session, actor: str, action: str, object_type: str, object_id: str,
                details: dict[str, Any] | None = None) -> AuditRow:
    """Add one audit entry inside the caller's transaction, so it commits (or not) with the change."""
    if details is not None and not isinstance(details, dict):
        raise InputError("audit details: must be a JSON object")
    details = v.json_value(details or {}, "audit details")
    v.require_no_raw_identity(details, "audit details")
    row = AuditRow(
        at=time.time(),
        actor=v.text(actor, "actor", max_len=128),
        action=v.text(action, "action", max_len=64),
        object_type=v.text(object_type, "object_type", max_len=64),
        object_id=v.text(str(object_id), "object_id", max_len=256),
        details=details,
    )
    s.add(row)
    return row


def _audit_dict(row: AuditRow) -> dict[str, Any]:
    return {
        "audit_id": row.audit_id, "at": row.at, "actor": row.actor, "action": row.action,
        "object_type": row.object_type, "object_id": row.object_id, "details": dict(row.details),
    }


def _policy_dict(row: PolicyVersionRow, with_text: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": row.name, "version": row.version, "policy": f"{row.name}@{row.version}",
        "sha256": row.sha256, "created_at": row.created_at, "created_by": row.created_by,
    }
    if with_text:
        out["source_text"] = row.source_text
    return out


class AuditRepository:
    """Audit-log and policy-version methods of :class:`fsbrain.store.Store`."""

    _db: Database

    def audit(self, actor: str, action: str, object_type: str, object_id: str,
              details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record one change (``actor`` did ``action`` to ``object_type``/``object_id``) in its own transaction.

        The store's own changes (lists, keys, cases, policy versions) are audited automatically in the same
        transaction as the change; call this for changes made elsewhere (e.g. a policy reload).

        Returns:
            The stored entry.

        Raises:
            InputError: an argument is empty, too long, or details are not a JSON object.
        """
        with self._db.write() as s:
            row = write_audit(s, actor, action, object_type, object_id, details)
            s.flush()
            return _audit_dict(row)

    def list_audit(self, limit: int = 100, offset: int = 0, object_type: str | None = None,
                   object_id: str | None = None, actor: str | None = None) -> list[dict[str, Any]]:
        """Audit entries, newest first."""
        limit, offset = v.page(limit, offset)
        q = sa.select(AuditRow)
        if object_type is not None:
            q = q.where(AuditRow.object_type == object_type)
        if object_id is not None:
            q = q.where(AuditRow.object_id == object_id)
        if actor is not None:
            q = q.where(AuditRow.actor == actor)
        q = q.order_by(AuditRow.at.desc(), AuditRow.audit_id.desc()).limit(limit).offset(offset)
        with self._db.read() as s:
            return [_audit_dict(r) for r in s.scalars(q)]

    def record_policy_version(self, name: str, version: str | int, sha256: str, source_text: str,
                              actor: str) -> dict[str, Any]:
        """Keep the exact text of a policy version so ``name@version`` on decisions can be traced.

        Recording the same ``(name, version, sha256)`` again is a no-op returning the stored record.

        Args:
            name: policy name, e.g. ``credit-default``.
            version: its version, e.g. ``3``.
            sha256: hex SHA-256 of the policy file as loaded.
            source_text: the policy file's text.
            actor: who loaded it.

        Raises:
            ConflictError: this name and version is already stored with a different hash.
            InputError: an argument is invalid.
        """
        name = v.text(name, "name", max_len=128)
        version = v.text(str(version), "version", max_len=32)
        sha = v.text(sha256, "sha256", max_len=64).lower()
        if not _SHA256_RE.fullmatch(sha):
            raise InputError("sha256: must be 64 hex characters")
        if not isinstance(source_text, str):
            raise InputError("source_text: must be a string")
        with self._db.write() as s:
            existing = self._find_policy(s, name, version)
            if existing is None:
                row = PolicyVersionRow(name=name, version=version, sha256=sha, source_text=source_text,
                                       created_at=time.time(), created_by=v.text(actor, "actor", max_len=128))
                try:
                    with s.begin_nested():
                        s.add(row)
                        s.flush()
                except exc.IntegrityError:
                    existing = self._find_policy(s, name, version)
                else:
                    write_audit(s, actor, "policy.record", "policy", f"{name}@{version}", {"sha256": sha})
                    return _policy_dict(row)
            if existing is None:
                raise ConflictError(f"policy {name}@{version}: could not be recorded")
            if existing.sha256 != sha:
                raise ConflictError(f"policy {name}@{version} is already recorded with a different text "
                                    f"(sha256 {existing.sha256[:12]}…); bump the version")
            return _policy_dict(existing)

    @staticmethod
    def _find_policy(s: Session, name: str, version: str) -> PolicyVersionRow | None:
        return s.scalars(sa.select(PolicyVersionRow).where(
            PolicyVersionRow.name == name, PolicyVersionRow.version == version)).one_or_none()

    def list_policy_versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Recorded versions (without their text), newest first; all policies when ``name`` is ``None``."""
        q = sa.select(PolicyVersionRow)
        if name is not None:
            q = q.where(PolicyVersionRow.name == name)
        q = q.order_by(PolicyVersionRow.created_at.desc(), PolicyVersionRow.policy_version_id.desc())
        with self._db.read() as s:
            return [_policy_dict(r, with_text=False) for r in s.scalars(q)]

    def get_policy_version(self, policy: str, version: str | int | None = None) -> dict[str, Any]:
        """One recorded version with its text, by ``("credit-default", 3)`` or ``"credit-default@3"``.

        Raises:
            NotFoundError: it was never recorded.
        """
        name, ver = (policy, str(version)) if version is not None else v.split_policy(policy)
        with self._db.read() as s:
            row = self._find_policy(s, name, ver)
            if row is None:
                raise NotFoundError(f"policy {name}@{ver} was never recorded")
            return _policy_dict(row)
