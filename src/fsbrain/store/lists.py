"""Black, white and grey lists with reason, source and optional expiry; every change is audited.

Values are stored as given by the caller: a keyed-hash token (``h:`` + 32 hex, see
:class:`fsbrain.core.pii.Pseudonymizer`) for identity kinds (``id_number``, ``phone``, ``bank_card``,
``name``, ``email``, ``address``), and the value itself or a token for others (``device_id``, ``ip`` …).
Kinds ending in ``_id_number``, ``_phone``, ``_bank_card`` or ``_email`` (``contact_phone``) count as identity
kinds too. A raw resident ID or mobile number is refused under any kind.

Adding a value that is already on the same list updates that entry (reason, source, expiry). Every add,
update and removal bumps the ``lists`` counter returned by :meth:`ListRepository.list_version`, so engines
can poll it and reload only on change; expiry does not bump it, so engines must honour ``expires_at``.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.orm import Session

from fsbrain.core.errors import ConflictError, InputError, NotFoundError
from fsbrain.core.model import new_id
from fsbrain.core.pii import Pseudonymizer
from fsbrain.store import validate as v
from fsbrain.store.audit import write_audit
from fsbrain.store.db import Database
from fsbrain.store.tables import CounterRow, ListEntryRow

LIST_TYPES = ("black", "white", "grey")
LISTS_COUNTER = "lists"

_COUNTERS = CounterRow.__table__
_VERSION_Q = sa.select(_COUNTERS.c.value).where(_COUNTERS.c.name == LISTS_COUNTER)


def _entry_dict(row: ListEntryRow) -> dict[str, Any]:
    return {
        "entry_id": row.entry_id, "list_type": row.list_type, "entity_type": row.entity_type,
        "value_hash": row.value_hash, "masked": row.masked, "reason": row.reason, "source": row.source,
        "expires_at": row.expires_at, "created_at": row.created_at, "created_by": row.created_by,
        "updated_at": row.updated_at,
    }


def check_list_value(entity_type: str, value_hash: str, masked: str) -> None:
    """Refuse raw identity values: tokens are required for identity kinds, and no kind may hold a raw ID.

    Raises:
        InputError: naming the argument and the problem.
    """
    identity = v.is_identity_kind(entity_type)
    if identity and not Pseudonymizer.is_token(value_hash):
        raise InputError(f"value_hash: {entity_type} values must be keyed-hash tokens (h: + 32 hex) made by "
                         "Pseudonymizer.hash, never raw values")
    kind = v.looks_like_raw_identity(value_hash, with_cards=identity)
    if kind:
        raise InputError(f"value_hash: looks like a raw {kind}; pass its keyed-hash token")
    kind = v.looks_like_raw_identity(masked, with_cards=identity)
    if kind:
        raise InputError(f"masked: looks like an unmasked {kind}; pass a masked display string")


def _bump(s: Session) -> None:
    updated = s.execute(sa.update(CounterRow).where(CounterRow.name == LISTS_COUNTER)
                        .values(value=CounterRow.value + 1))
    if getattr(updated, "rowcount", 1) == 0:
        s.add(CounterRow(name=LISTS_COUNTER, value=1))


class ListRepository:
    """List methods of :class:`fsbrain.store.Store`."""

    _db: Database

    def add_list_entry(self, list_type: str, entity_type: str, value_hash: str, masked: str, reason: str,
                       source: str, expires_at: float | None, actor: str) -> dict[str, Any]:
        """Put a value on a list, or update its entry when it is already there.

        Args:
            list_type: ``black``, ``white`` or ``grey``.
            entity_type: ``id_number``, ``phone``, ``device_id``, ``ip``, ``bank_card``, ``email`` …
            value_hash: keyed-hash token (required for identity kinds) or the non-identity value.
            masked: display string (e.g. ``110105********002X``).
            reason: why it is listed.
            source: where the listing came from (``manual``, ``case:…``, ``import:…``).
            expires_at: epoch seconds after which the entry no longer applies, or ``None``.
            actor: who made the change (audited).

        Returns:
            The stored entry.

        Raises:
            InputError: a bad argument or a raw identity value.
        """
        list_type = v.choice(list_type, "list_type", LIST_TYPES)
        entity_type = v.identifier(entity_type, "entity_type")
        value_hash = v.text(value_hash, "value_hash", max_len=256)
        masked = v.text(masked, "masked", max_len=256, allow_empty=True)
        check_list_value(entity_type, value_hash, masked)
        reason = v.text(reason, "reason", max_len=512, allow_empty=True)
        source = v.text(source, "source", max_len=128)
        expires = v.timestamp(expires_at, "expires_at")
        actor = v.text(actor, "actor", max_len=128)
        fields = {"masked": masked, "reason": reason, "source": source, "expires_at": expires}
        for attempt in range(2):
            try:
                with self._db.write() as s:
                    return self._upsert(s, list_type, entity_type, value_hash, fields, actor)
            except ConflictError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _upsert(self, s: Session, list_type: str, entity_type: str, value_hash: str, fields: dict[str, Any],
                actor: str) -> dict[str, Any]:
        now = time.time()
        row = s.scalars(sa.select(ListEntryRow).where(
            ListEntryRow.list_type == list_type, ListEntryRow.entity_type == entity_type,
            ListEntryRow.value_hash == value_hash)).one_or_none()
        if row is None:
            row = ListEntryRow(entry_id=new_id("l"), list_type=list_type, entity_type=entity_type,
                               value_hash=value_hash, created_at=now, created_by=actor, updated_at=now, **fields)
            try:
                with s.begin_nested():
                    s.add(row)
                    s.flush()
            except exc.IntegrityError as err:  # a concurrent writer added it first: retry as an update
                raise ConflictError(f"list entry {list_type}/{entity_type} was added concurrently") from err
            action = "list.add"
        else:
            for key, val in fields.items():
                setattr(row, key, val)
            row.updated_at = now
            action = "list.update"
        _bump(s)
        write_audit(s, actor, action, "list_entry", row.entry_id,
                    {"list_type": list_type, "entity_type": entity_type, "masked": fields["masked"],
                     "reason": fields["reason"], "source": fields["source"], "expires_at": fields["expires_at"]})
        s.flush()
        return _entry_dict(row)

    def remove_list_entry(self, entry_id: str, actor: str) -> dict[str, Any]:
        """Delete an entry (the audit log keeps what it was).

        Returns:
            The removed entry.

        Raises:
            NotFoundError: no entry has this id.
        """
        actor = v.text(actor, "actor", max_len=128)
        with self._db.write() as s:
            row = s.get(ListEntryRow, entry_id)
            if row is None:
                raise NotFoundError(f"list entry {entry_id!r} not found")
            out = _entry_dict(row)
            s.delete(row)
            _bump(s)
            write_audit(s, actor, "list.remove", "list_entry", entry_id,
                        {k: out[k] for k in ("list_type", "entity_type", "masked", "reason", "source")})
            return out

    def get_list_entry(self, entry_id: str) -> dict[str, Any]:
        """One entry by id.

        Raises:
            NotFoundError: no entry has this id.
        """
        with self._db.read() as s:
            row = s.get(ListEntryRow, entry_id)
            if row is None:
                raise NotFoundError(f"list entry {entry_id!r} not found")
            return _entry_dict(row)

    def list_entries(self, list_type: str | None = None, entity_type: str | None = None,
                     include_expired: bool = False, limit: int = 100, offset: int = 0,
                     now: float | None = None) -> list[dict[str, Any]]:
        """Entries, newest first; expired ones only when ``include_expired``."""
        limit, offset = v.page(limit, offset)
        if list_type is not None:
            v.choice(list_type, "list_type", LIST_TYPES)
        q = sa.select(ListEntryRow)
        if list_type is not None:
            q = q.where(ListEntryRow.list_type == list_type)
        if entity_type is not None:
            q = q.where(ListEntryRow.entity_type == entity_type)
        if not include_expired:
            at = time.time() if now is None else v.timestamp(now, "now", optional=False)
            q = q.where(sa.or_(ListEntryRow.expires_at.is_(None), ListEntryRow.expires_at > at))
        q = q.order_by(ListEntryRow.updated_at.desc(), ListEntryRow.entry_id.desc()).limit(limit).offset(offset)
        with self._db.read() as s:
            return [_entry_dict(r) for r in s.scalars(q)]

    def active_list_entries(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every entry not expired at ``now`` (default: the current time), for the engine's index."""
        at = time.time() if now is None else v.timestamp(now, "now", optional=False)
        q = sa.select(ListEntryRow).where(
            sa.or_(ListEntryRow.expires_at.is_(None), ListEntryRow.expires_at > at)
        ).order_by(ListEntryRow.entry_id)
        with self._db.read() as s:
            return [_entry_dict(r) for r in s.scalars(q)]

    def list_version(self) -> int:
        """A counter bumped by every list change; unchanged means nothing to reload."""
        with self._db.connect() as conn:
            value = conn.scalar(_VERSION_Q)
        return int(value or 0)

    def purge_expired_list_entries(self, now: float, actor: str) -> int:
        """Delete entries expired before ``now`` (each removal audited); returns how many."""
        at = v.timestamp(now, "now", optional=False)
        with self._db.write() as s:
            rows = list(s.scalars(sa.select(ListEntryRow).where(ListEntryRow.expires_at <= at)))
            for row in rows:
                write_audit(s, actor, "list.expire", "list_entry", row.entry_id,
                            {"list_type": row.list_type, "entity_type": row.entity_type, "masked": row.masked,
                             "expires_at": row.expires_at})
                s.delete(row)
            if rows:
                _bump(s)
            return len(rows)
