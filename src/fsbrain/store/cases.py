"""A minimal analyst case queue: cases group decisions and alerts, move open → in_review → closed, and
end with a resolution; every change leaves a note on the case and an entry in the audit log."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fsbrain.core.errors import InputError, NotFoundError
from fsbrain.core.model import new_id
from fsbrain.store import validate as v
from fsbrain.store.audit import write_audit
from fsbrain.store.db import Database
from fsbrain.store.tables import AlertRow, CaseItemRow, CaseNoteRow, CaseRow, DecisionRow

CASE_STATUSES = ("open", "in_review", "closed")
RESOLUTIONS = ("fraud", "legit", "false_positive", "duplicate", "inconclusive")
_ITEM_TABLES: dict[str, tuple[Any, Any]] = {
    "decision": (DecisionRow, DecisionRow.decision_id), "alert": (AlertRow, AlertRow.alert_id)}


def _ids(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) and x for x in value):
        raise InputError(f"{name}: must be a list of ids")
    return list(dict.fromkeys(value))


def _attach(s: Session, case_id: str, item_type: str, ids: list[str]) -> list[str]:
    """Attach existing decisions or alerts; returns the labels they carry."""
    if not ids:
        return []
    table, key = _ITEM_TABLES[item_type]
    rows = {getattr(r, key.key): r for r in s.scalars(sa.select(table).where(key.in_(ids)))}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise InputError(f"{item_type}_ids: not found: {', '.join(missing[:5])}")
    have = set(s.scalars(sa.select(CaseItemRow.item_id).where(
        CaseItemRow.case_id == case_id, CaseItemRow.item_type == item_type)))
    s.add_all(CaseItemRow(case_id=case_id, item_type=item_type, item_id=i) for i in ids if i not in have)
    return [lb for i in ids for lb in rows[i].labels]


def _case_dict(s: Session, row: CaseRow, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "case_id": row.case_id, "title": row.title, "status": row.status, "resolution": row.resolution,
        "labels": list(row.labels), "assignee": row.assignee, "created_at": row.created_at,
        "created_by": row.created_by, "updated_at": row.updated_at,
    }
    items = s.execute(sa.select(CaseItemRow.item_type, CaseItemRow.item_id).where(
        CaseItemRow.case_id == row.case_id).order_by(CaseItemRow.item_type, CaseItemRow.item_id)).all()
    out["decision_ids"] = [i for t, i in items if t == "decision"]
    out["alert_ids"] = [i for t, i in items if t == "alert"]
    if full:
        notes = s.scalars(sa.select(CaseNoteRow).where(CaseNoteRow.case_id == row.case_id)
                          .order_by(CaseNoteRow.at, CaseNoteRow.note_id))
        out["notes"] = [{"at": n.at, "actor": n.actor, "status": n.status, "resolution": n.resolution,
                         "note": n.note} for n in notes]
    return out


class CaseRepository:
    """Case-queue methods of :class:`fsbrain.store.Store`."""

    _db: Database

    def open_case(self, title: str, decision_ids: list[str] | None = None, alert_ids: list[str] | None = None,
                  labels: list[str] | None = None, assignee: str | None = None,
                  actor: str = "system") -> dict[str, Any]:
        """Open a case on stored decisions and/or alerts.

        Args:
            title: one-line summary.
            decision_ids: live decisions to attach.
            alert_ids: alerts to attach.
            labels: risk labels; when ``None``, the union of the attached items' labels.
            assignee: analyst, or ``None`` for the unassigned queue.
            actor: who opened it.

        Returns:
            The case, with its items and notes.

        Raises:
            InputError: a bad argument or an id that is not stored.
        """
        title = v.text(title, "title", max_len=512)
        dec_ids, al_ids = _ids(decision_ids, "decision_ids"), _ids(alert_ids, "alert_ids")
        if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
            raise InputError("labels: must be a list of strings")
        assignee = None if assignee is None else v.text(assignee, "assignee", max_len=128)
        actor = v.text(actor, "actor", max_len=128)
        now = time.time()
        case_id = new_id("c")
        with self._db.write() as s:
            row = CaseRow(case_id=case_id, title=title, status="open", resolution=None, labels=[],
                          assignee=assignee, created_at=now, created_by=actor, updated_at=now)
            s.add(row)
            s.flush()
            found = _attach(s, case_id, "decision", dec_ids) + _attach(s, case_id, "alert", al_ids)
            row.labels = list(dict.fromkeys(labels if labels is not None else found))
            s.add(CaseNoteRow(case_id=case_id, at=now, actor=actor, status="open", resolution=None,
                              note="opened"))
            write_audit(s, actor, "case.open", "case", case_id,
                        {"decisions": len(dec_ids), "alerts": len(al_ids), "assignee": assignee})
            s.flush()
            return _case_dict(s, row, full=True)

    def update_case(self, case_id: str, status: str | None = None, resolution: str | None = None,
                    note: str | None = None, actor: str = "system", assignee: str | None = None,
                    decision_ids: list[str] | None = None, alert_ids: list[str] | None = None) -> dict[str, Any]:
        """Change a case's status, resolution or assignee, attach items, or add a note.

        Closing needs a resolution (given now or earlier); a resolution is only kept on a closed case, so
        reopening clears it.

        Raises:
            NotFoundError: no case has this id.
            InputError: a bad status or resolution, or nothing to change.
        """
        if status is not None:
            v.choice(status, "status", CASE_STATUSES)
        if resolution is not None:
            v.choice(resolution, "resolution", RESOLUTIONS)
        note = None if note is None else v.text(note, "note", max_len=10_000)
        assignee = None if assignee is None else v.text(assignee, "assignee", max_len=128)
        actor = v.text(actor, "actor", max_len=128)
        dec_ids, al_ids = _ids(decision_ids, "decision_ids"), _ids(alert_ids, "alert_ids")
        if status is None and resolution is None and note is None and assignee is None and not (dec_ids or al_ids):
            raise InputError("update_case: nothing to change (status, resolution, note, assignee or items)")
        with self._db.write() as s:
            row = s.get(CaseRow, case_id)
            if row is None:
                raise NotFoundError(f"case {case_id!r} not found")
            new_status = status or row.status
            new_resolution = resolution if resolution is not None else row.resolution
            if new_status != "closed":
                if resolution is not None:
                    raise InputError("resolution: only a closed case has one (pass status='closed')")
                new_resolution = None
            elif new_resolution is None:
                raise InputError("resolution: closing a case needs one of " + ", ".join(RESOLUTIONS))
            changes = {k: val for k, val in (("status", new_status), ("resolution", new_resolution))
                       if getattr(row, k) != val}
            if assignee is not None and assignee != row.assignee:
                changes["assignee"] = assignee
            for k, val in changes.items():
                setattr(row, k, val)
            _attach(s, case_id, "decision", dec_ids)
            _attach(s, case_id, "alert", al_ids)
            row.updated_at = time.time()
            s.add(CaseNoteRow(case_id=case_id, at=row.updated_at, actor=actor, status=changes.get("status"),
                              resolution=changes.get("resolution"), note=note or ""))
            write_audit(s, actor, "case.update", "case", case_id,
                        {**changes, "note": bool(note), "decisions_added": len(dec_ids),
                         "alerts_added": len(al_ids)})
            s.flush()
            return _case_dict(s, row, full=True)

    def get_case(self, case_id: str) -> dict[str, Any]:
        """One case with its items and notes.

        Raises:
            NotFoundError: no case has this id.
        """
        with self._db.read() as s:
            row = s.get(CaseRow, case_id)
            if row is None:
                raise NotFoundError(f"case {case_id!r} not found")
            return _case_dict(s, row, full=True)

    def list_cases(self, status: str | None = None, assignee: str | None = None, item_id: str | None = None,
                   limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Cases, most recently updated first (without notes).

        Args:
            status: ``open``, ``in_review`` or ``closed``.
            assignee: the analyst; ``""`` selects unassigned cases.
            item_id: only cases holding this decision or alert.
        """
        limit, offset = v.page(limit, offset)
        q = sa.select(CaseRow)
        if status is not None:
            q = q.where(CaseRow.status == v.choice(status, "status", CASE_STATUSES))
        if assignee is not None:
            q = q.where(CaseRow.assignee.is_(None) if assignee == "" else CaseRow.assignee == assignee)
        if item_id is not None:
            q = q.where(CaseRow.case_id.in_(sa.select(CaseItemRow.case_id).where(CaseItemRow.item_id == item_id)))
        q = q.order_by(CaseRow.updated_at.desc(), CaseRow.case_id.desc()).limit(limit).offset(offset)
        with self._db.read() as s:
            return [_case_dict(s, r, full=False) for r in s.scalars(q)]
