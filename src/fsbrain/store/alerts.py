"""Alerts from the security and regtech pillars, in the same reasons/labels shape as decisions."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from fsbrain.core.errors import InputError, NotFoundError
from fsbrain.core.model import SEVERITIES, Alert
from fsbrain.store import validate as v
from fsbrain.store.db import Database
from fsbrain.store.tables import AlertLabelRow, AlertRow

MAX_BATCH = 10_000


def _row_from_alert(a: Alert, i: int) -> AlertRow:
    where = f"alerts[{i}]"
    if not isinstance(a, Alert):
        raise InputError(f"{where}: expected an Alert, got {type(a).__name__}")
    if isinstance(a.severity, bool) or a.severity not in SEVERITIES:
        raise InputError(f"{where}.severity: must be an integer 1..5, got {a.severity!r}")
    if isinstance(a.score, bool) or not isinstance(a.score, int) or not 0 <= a.score <= 1000:
        raise InputError(f"{where}.score: must be an integer 0..1000, got {a.score!r}")
    data = a.to_dict()
    for field in ("labels", "reasons", "details"):
        v.json_value(data[field], f"{where}.{field}")
    v.require_no_raw_identity(data["details"], f"{where}.details")
    for label in a.labels:
        v.text(label, f"{where}.labels[]", max_len=64)
    entity = None if a.entity is None else v.text(a.entity, f"{where}.entity", max_len=512)
    if entity is not None and v.looks_like_raw_identity(entity):
        raise InputError(f"{where}.entity: holds a raw identity value; pseudonymise it before storing")
    return AlertRow(
        alert_id=v.text(a.alert_id, f"{where}.alert_id", max_len=64),
        source=v.text(a.source, f"{where}.source", max_len=128),
        labels=data["labels"],
        severity=a.severity,
        score=a.score,
        title=v.text(a.title, f"{where}.title", max_len=512, allow_empty=True),
        entity_type=None if a.entity_type is None else v.text(a.entity_type, f"{where}.entity_type", max_len=64),
        entity=entity,
        reasons=data["reasons"],
        action=None if a.action is None else v.text(a.action, f"{where}.action", max_len=64),
        start=v.timestamp(a.start, f"{where}.start"),
        end=v.timestamp(a.end, f"{where}.end"),
        details=data["details"],
        created_at=v.timestamp(a.created_at, f"{where}.created_at", optional=False),
    )


def _alert_from_row(row: AlertRow) -> Alert:
    return Alert.from_dict({
        "alert_id": row.alert_id, "source": row.source, "labels": row.labels, "severity": row.severity,
        "score": row.score, "title": row.title, "entity_type": row.entity_type, "entity": row.entity,
        "reasons": row.reasons, "action": row.action, "start": row.start, "end": row.end,
        "details": row.details, "created_at": row.created_at,
    })


class AlertRepository:
    """Alert methods of :class:`fsbrain.store.Store`."""

    _db: Database

    def save_alerts(self, alerts: list[Alert]) -> int:
        """Store a batch of alerts in one transaction.

        Every alert is validated before anything is written; an alert whose id is already stored is skipped,
        so re-sending a batch is harmless.

        Args:
            alerts: the alerts (at most 10,000 per call).

        Returns:
            How many were newly stored.

        Raises:
            InputError: an alert is invalid (nothing is written).
            BackendError: the database failed (nothing is written).
        """
        if not isinstance(alerts, (list, tuple)):
            raise InputError(f"alerts: must be a list, got {type(alerts).__name__}")
        if len(alerts) > MAX_BATCH:
            raise InputError(f"alerts: at most {MAX_BATCH} per call (got {len(alerts)})")
        rows = [_row_from_alert(a, i) for i, a in enumerate(alerts)]
        unique = list({r.alert_id: r for r in rows}.values())
        if not unique:
            return 0
        stored = 0
        with self._db.write() as s:
            have = set(s.scalars(sa.select(AlertRow.alert_id).where(
                AlertRow.alert_id.in_([r.alert_id for r in unique]))))
            for row in unique:
                if row.alert_id in have:
                    continue
                labels = list(dict.fromkeys(row.labels))
                try:
                    with s.begin_nested():
                        s.add(row)
                        s.flush()
                        s.add_all(AlertLabelRow(alert_id=row.alert_id, label=lb) for lb in labels)
                        s.flush()
                except exc.IntegrityError:  # stored concurrently by another writer
                    continue
                stored += 1
        return stored

    def get_alert(self, alert_id: str) -> Alert:
        """One alert by id.

        Raises:
            NotFoundError: no alert has this id.
        """
        with self._db.read() as s:
            row = s.get(AlertRow, alert_id)
            if row is None:
                raise NotFoundError(f"alert {alert_id!r} not found")
            return _alert_from_row(row)

    def list_alerts(self, source: str | None = None, label: str | None = None, min_severity: int | None = None,
                    entity: str | None = None, since: float | None = None, limit: int = 100, offset: int = 0,
                    until: float | None = None, entity_type: str | None = None) -> list[Alert]:
        """Alerts, newest first.

        Args:
            source: exact detector source (``web.rules``), or a pillar prefix ending in ``.`` (``web.``).
            label: alerts carrying this label.
            min_severity: 1..5; alerts at least this severe.
            entity: the alert's entity value (an IP, a host …); ``entity_type`` narrows it.
            since: inclusive lower bound on ``created_at``; ``until`` exclusive upper bound.
        """
        limit, offset = v.page(limit, offset)
        since, until = v.timestamp(since, "since"), v.timestamp(until, "until")
        q = sa.select(AlertRow)
        if label is not None:
            q = q.join(AlertLabelRow, AlertLabelRow.alert_id == AlertRow.alert_id).where(AlertLabelRow.label == label)
        if source is not None:
            prefix = source.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(AlertRow.source.like(prefix + "%", escape="\\") if source.endswith(".")
                        else AlertRow.source == source)
        if min_severity is not None:
            if isinstance(min_severity, bool) or min_severity not in SEVERITIES:
                raise InputError(f"min_severity: must be an integer 1..5, got {min_severity!r}")
            q = q.where(AlertRow.severity >= min_severity)
        if entity is not None:
            q = q.where(AlertRow.entity == entity)
        if entity_type is not None:
            q = q.where(AlertRow.entity_type == entity_type)
        if since is not None:
            q = q.where(AlertRow.created_at >= since)
        if until is not None:
            q = q.where(AlertRow.created_at < until)
        q = q.order_by(AlertRow.created_at.desc(), AlertRow.alert_id.desc()).limit(limit).offset(offset)
        with self._db.read() as s:
            return [_alert_from_row(r) for r in s.scalars(q)]

    def alert_counts(self, since: float | None = None) -> dict[str, Any]:
        """Alert counts by source, by severity and by label (for dashboards and reports)."""
        since = v.timestamp(since, "since")
        cond = [] if since is None else [AlertRow.created_at >= since]
        with self._db.read() as s:
            by_source = s.execute(sa.select(AlertRow.source, sa.func.count()).where(*cond)
                                  .group_by(AlertRow.source)).all()
            by_sev = s.execute(sa.select(AlertRow.severity, sa.func.count()).where(*cond)
                               .group_by(AlertRow.severity)).all()
            by_label = s.execute(sa.select(AlertLabelRow.label, sa.func.count())
                                 .join(AlertRow, AlertRow.alert_id == AlertLabelRow.alert_id).where(*cond)
                                 .group_by(AlertLabelRow.label)).all()
        return {
            "total": sum(int(c) for _, c in by_source),
            "by_source": {k: int(c) for k, c in by_source},
            "by_severity": {SEVERITIES[int(k)]: int(c) for k, c in by_sev},
            "by_label": {k: int(c) for k, c in by_label},
        }
