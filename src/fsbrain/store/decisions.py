"""Decision log: live decisions (idempotent per event), shadow decisions and their comparison."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa

from fsbrain.core.errors import ConflictError, FsbrainError, InputError, NotFoundError
from fsbrain.core.model import Decision
from fsbrain.store import validate as v
from fsbrain.store.db import Database
from fsbrain.store.tables import DecisionLabelRow, DecisionRow, ShadowDecisionRow

LIVE = cast(sa.Table, DecisionRow.__table__)
SHADOW = cast(sa.Table, ShadowDecisionRow.__table__)
LABELS = cast(sa.Table, DecisionLabelRow.__table__)


_COLUMNS = [c.name for c in DecisionRow.__table__.columns]


def _values_from_decision(d: Decision, event_data: dict[str, Any]) -> dict[str, Any]:
    """Validate a decision and its event; returns the column values of its row."""
    if not isinstance(d, Decision):
        raise InputError(f"decision: expected a Decision, got {type(d).__name__}")
    if not isinstance(event_data, dict):
        raise InputError(f"event_data: must be a JSON object, got {type(event_data).__name__}")
    if isinstance(d.score, bool) or not isinstance(d.score, int) or not 0 <= d.score <= 1000:
        raise InputError(f"decision.score: must be an integer 0..1000, got {d.score!r}")
    policy = v.text(d.policy, "decision.policy", max_len=160, allow_empty=True)
    name, version = v.split_policy(policy)
    data = d.to_dict()
    for field in ("labels", "reasons", "features", "errors"):
        v.json_value(data[field], f"decision.{field}")
    v.json_value(event_data, "event_data")
    v.require_no_raw_identity(event_data, "event_data")
    v.require_no_raw_identity(data["features"], "decision.features")
    for label in d.labels:
        v.text(label, "decision.labels[]", max_len=64)
    return {
        "decision_id": v.text(d.decision_id, "decision.decision_id", max_len=64),
        "event_id": v.text(d.event_id, "decision.event_id", max_len=128),
        "event_type": v.text(d.event_type, "decision.event_type", max_len=64),
        "outcome": v.text(d.outcome, "decision.outcome", max_len=32),
        "score": d.score,
        "labels": data["labels"],
        "reasons": data["reasons"],
        "policy": policy,
        "policy_name": name[:128],
        "policy_version": version[:32],
        "latency_ms": float(d.latency_ms),
        "features": data["features"],
        "errors": data["errors"],
        "created_at": v.timestamp(d.created_at, "decision.created_at", optional=False),
        "event_time": v.timestamp(d.event_time, "decision.event_time"),
        "event_data": event_data,
    }


def _decision_from_row(row: Any, shadow: bool) -> Decision:
    """A :class:`Decision` from a result row (mapping) of either decision table."""
    m = row._mapping
    return Decision.from_dict({**{k: m[k] for k in _COLUMNS if k != "event_data"}, "shadow": shadow})


def _columns(table: sa.Table, with_event: bool = False) -> list[sa.Column[Any]]:
    return [c for c in table.columns if with_event or c.name != "event_data"]


_BY_EVENT = sa.select(*_columns(LIVE)).where(LIVE.c.event_type == sa.bindparam("event_type"),
                                             LIVE.c.event_id == sa.bindparam("event_id"))
_HAS_EVENT_SQL = f"SELECT 1 FROM {LIVE.name} WHERE event_type = ? AND event_id = ? LIMIT 1"
_SHADOW_BY_EVENT = sa.select(*_columns(SHADOW)).where(SHADOW.c.event_type == sa.bindparam("event_type"),
                                                      SHADOW.c.event_id == sa.bindparam("event_id"),
                                                      SHADOW.c.policy == sa.bindparam("policy"))


class DecisionRepository:
    """Decision methods of :class:`fsbrain.store.Store`."""

    _db: Database

    def save_decision(self, decision: Decision, event_data: dict[str, Any]) -> Decision:
        """Store a decision and the pseudonymised event it was made on.

        Live decisions are idempotent on ``(event_type, event_id)``: when one is already stored (even by a
        concurrent writer) the stored one is returned and nothing is written. Shadow decisions
        (``decision.shadow``) go to their own table, one per ``(event_type, event_id, policy)``.

        Args:
            decision: the engine's decision, features included.
            event_data: the event payload with identity fields already pseudonymised.

        Returns:
            The stored decision: ``decision`` itself, or the earlier one for a repeated event.

        Raises:
            InputError: a field is invalid, not strict JSON, or a raw ID/mobile number is present.
            ConflictError: the decision id is already used by another event.
            BackendError: the database failed.
        """
        values = _values_from_decision(decision, event_data)
        table = SHADOW if decision.shadow else LIVE
        with self._db.begin() as conn:
            if conn.execute(self._db.insert_ignore(table, table.c.decision_id), values).first() is not None:
                labels = list(dict.fromkeys(decision.labels))
                if labels and not decision.shadow:
                    conn.execute(LABELS.insert(), [{"decision_id": values["decision_id"], "label": lb}
                                                   for lb in labels])
                return decision
            existing = conn.execute(_SHADOW_BY_EVENT if decision.shadow else _BY_EVENT, values).first()
        if existing is None:
            raise ConflictError(f"decision id {values['decision_id']} is already stored for another event")
        return _decision_from_row(existing, decision.shadow)

    def save_decisions(self, items: list[tuple[Decision, dict[str, Any]]]) -> list[Decision | FsbrainError]:
        """Store several decisions in one transaction (group commit); same semantics as :meth:`save_decision`.

        Returns, per item in order, the stored decision or the error that item alone raised (an invalid
        item does not fail the others). A database failure fails the whole batch with ``BackendError``.
        """
        out: list[Decision | FsbrainError | None] = [None] * len(items)
        rows: list[tuple[int, dict[str, Any]]] = []
        for i, (decision, event_data) in enumerate(items):
            try:
                rows.append((i, _values_from_decision(decision, event_data)))
            except FsbrainError as err:
                out[i] = err
        if rows:
            with self._db.begin() as conn:
                for shadow, table in ((False, LIVE), (True, SHADOW)):
                    part = [(i, values) for i, values in rows if bool(items[i][0].shadow) is shadow]
                    if part:
                        self._insert_part(conn, table, shadow, part, items, out)
        return [o for o in out if o is not None]

    def _insert_part(self, conn: sa.Connection, table: sa.Table, shadow: bool,
                     part: list[tuple[int, dict[str, Any]]], items: list[tuple[Decision, dict[str, Any]]],
                     out: list[Any]) -> None:
        """One multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING decision_id`` for a batch; rows the
        database skipped (the event is already decided) get the stored decision, or a conflict error."""
        # a returned row names the decision id *and* the event it was stored for, so an item whose id was
        # stored by another row of the batch (for another event) is not taken for stored itself
        inserted = {tuple(r) for r in conn.execute(
            self._db.insert_ignore(table, table.c.decision_id, table.c.event_type, table.c.event_id),
            [values for _, values in part])}
        labels: list[dict[str, Any]] = []
        claimed: set[str] = set()
        for i, values in part:
            decision, did = items[i][0], values["decision_id"]
            if (did, values["event_type"], values["event_id"]) in inserted and did not in claimed:
                claimed.add(did)
                if not shadow:
                    labels += [{"decision_id": did, "label": lb} for lb in dict.fromkeys(decision.labels)]
                out[i] = decision
                continue
            existing = conn.execute(_SHADOW_BY_EVENT if shadow else _BY_EVENT, values).first()
            out[i] = (_decision_from_row(existing, shadow) if existing is not None else
                      ConflictError(f"decision id {did} is already stored for another event"))
        if labels:
            conn.execute(LABELS.insert(), labels)

    def _find(self, conn: sa.Connection, decision_id: str, with_event: bool) -> tuple[Any, bool]:
        for table, shadow in ((LIVE, False), (SHADOW, True)):
            row = conn.execute(sa.select(*_columns(table, with_event))
                               .where(table.c.decision_id == decision_id)).first()
            if row is not None:
                return row, shadow
        raise NotFoundError(f"decision {decision_id!r} not found")

    def get_decision(self, decision_id: str) -> Decision:
        """A live or shadow decision by id.

        Raises:
            NotFoundError: no decision has this id.
        """
        with self._db.connect() as conn:
            row, shadow = self._find(conn, decision_id, with_event=False)
        return _decision_from_row(row, shadow)

    def get_event_data(self, decision_id: str) -> dict[str, Any]:
        """The pseudonymised event payload stored with a decision.

        Raises:
            NotFoundError: no decision has this id.
        """
        with self._db.connect() as conn:
            row, _ = self._find(conn, decision_id, with_event=True)
        return dict(row._mapping["event_data"])

    def has_decision_for_event(self, event_type: str, event_id: str) -> bool:
        """Whether a live decision for this event is stored (a cheap probe on the hot path)."""
        return self._db.probe(_HAS_EVENT_SQL, (event_type, event_id)) is not None

    def get_decision_by_event(self, event_type: str, event_id: str) -> Decision | None:
        """The live decision for an event, or ``None``."""
        with self._db.connect() as conn:
            row = conn.execute(_BY_EVENT, {"event_type": event_type, "event_id": event_id}).first()
        return _decision_from_row(row, False) if row is not None else None

    def list_decisions(self, event_type: str | None = None, outcome: str | None = None,
                       label: str | None = None, since: float | None = None, until: float | None = None,
                       limit: int = 100, offset: int = 0, policy: str | None = None) -> list[Decision]:
        """Live decisions, newest first, filtered by type, outcome, label, policy and time.

        Args:
            since: inclusive lower bound on ``created_at`` (epoch seconds).
            until: exclusive upper bound on ``created_at``.
            policy: ``name@version`` or just ``name``.
        """
        limit, offset = v.page(limit, offset)
        since, until = v.timestamp(since, "since"), v.timestamp(until, "until")
        q = sa.select(*_columns(LIVE))
        if label is not None:
            q = q.join(LABELS, LABELS.c.decision_id == LIVE.c.decision_id).where(LABELS.c.label == label)
        if event_type is not None:
            q = q.where(LIVE.c.event_type == event_type)
        if outcome is not None:
            q = q.where(LIVE.c.outcome == outcome)
        if policy is not None:
            q = q.where(LIVE.c.policy == policy if "@" in policy else LIVE.c.policy_name == policy)
        if since is not None:
            q = q.where(LIVE.c.created_at >= since)
        if until is not None:
            q = q.where(LIVE.c.created_at < until)
        q = q.order_by(LIVE.c.created_at.desc(), LIVE.c.decision_id.desc()).limit(limit).offset(offset)
        with self._db.connect() as conn:
            return [_decision_from_row(r, False) for r in conn.execute(q)]

    def list_shadow_decisions(self, policy: str, event_id: str | None = None, since: float | None = None,
                              limit: int = 100, offset: int = 0) -> list[Decision]:
        """Shadow decisions of one candidate policy (``name@version`` or ``name``), newest first."""
        limit, offset = v.page(limit, offset)
        since = v.timestamp(since, "since")
        q = sa.select(*_columns(SHADOW)).where(
            SHADOW.c.policy == policy if "@" in policy else SHADOW.c.policy_name == policy)
        if event_id is not None:
            q = q.where(SHADOW.c.event_id == event_id)
        if since is not None:
            q = q.where(SHADOW.c.created_at >= since)
        q = q.order_by(SHADOW.c.created_at.desc(), SHADOW.c.decision_id.desc()).limit(limit).offset(offset)
        with self._db.connect() as conn:
            return [_decision_from_row(r, True) for r in conn.execute(q)]

    def shadow_comparison(self, policy: str, since: float | None = None) -> dict[str, Any]:
        """Compare a shadow policy's decisions with the live decisions on the same events.

        Args:
            policy: the shadow policy, ``name@version`` or ``name`` (all its versions).
            since: only shadow decisions made at or after this time.

        Returns:
            ``compared`` (events with both), ``agree`` / ``disagree`` on outcome, ``agreement_rate``,
            ``confusion`` (``{live_outcome: {shadow_outcome: count}}``), ``mean_score_delta``
            (shadow minus live), ``unmatched_shadow`` (shadow decisions without a live one).
        """
        v.text(policy, "policy", max_len=160)
        since = v.timestamp(since, "since")
        S, D = SHADOW.c, LIVE.c
        cond = [S.policy == policy if "@" in policy else S.policy_name == policy]
        if since is not None:
            cond.append(S.created_at >= since)
        joined = (
            sa.select(D.outcome, S.outcome, sa.func.count(), sa.func.sum(S.score - D.score))
            .select_from(SHADOW.join(LIVE, sa.and_(D.event_type == S.event_type, D.event_id == S.event_id)))
            .where(*cond).group_by(D.outcome, S.outcome)
        )
        with self._db.connect() as conn:
            cells = conn.execute(joined).all()
            total_shadow = conn.scalar(sa.select(sa.func.count()).select_from(SHADOW).where(*cond)) or 0
        confusion: dict[str, dict[str, int]] = {}
        compared = agree = 0
        delta_sum = 0.0
        for live, shadow, count, delta in cells:
            confusion.setdefault(live, {})[shadow] = int(count)
            compared += int(count)
            delta_sum += float(delta or 0)
            if live == shadow:
                agree += int(count)
        return {
            "policy": policy,
            "since": since,
            "compared": compared,
            "agree": agree,
            "disagree": compared - agree,
            "agreement_rate": agree / compared if compared else None,
            "confusion": confusion,
            "mean_score_delta": delta_sum / compared if compared else None,
            "unmatched_shadow": int(total_shadow) - compared,
        }
