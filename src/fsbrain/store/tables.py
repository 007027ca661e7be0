"""ORM table definitions (SQLAlchemy 2 typed declarative).

The schema itself is created and upgraded by the alembic migrations in ``fsbrain/store/migrations``;
these classes must stay identical to it (``tests/store/test_migrations.py`` compares them).

Times are epoch seconds (UTC) stored as double-precision floats, the same representation as
:class:`fsbrain.core.model.Decision` and :class:`fsbrain.core.model.Alert`. JSON columns are JSONB on
PostgreSQL and JSON text on SQLite.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
"""JSON column type: JSONB on PostgreSQL, JSON (text) elsewhere."""

SCHEMA_VERSION = 1
"""Version of the persisted layout; bumped together with a new alembic revision."""


class Base(DeclarativeBase):
    """Declarative base of every fsbrain table."""

    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType, float: sa.Double()}


class _DecisionColumns:
    """Columns shared by live and shadow decisions."""

    decision_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(128))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    outcome: Mapped[str] = mapped_column(sa.String(32))
    score: Mapped[int] = mapped_column(sa.Integer)
    labels: Mapped[list[Any]]
    reasons: Mapped[list[Any]]
    policy: Mapped[str] = mapped_column(sa.String(160))
    policy_name: Mapped[str] = mapped_column(sa.String(128))
    policy_version: Mapped[str] = mapped_column(sa.String(32))
    latency_ms: Mapped[float]
    features: Mapped[dict[str, Any]]
    errors: Mapped[list[Any]]
    created_at: Mapped[float]
    event_time: Mapped[float | None]
    event_data: Mapped[dict[str, Any]]


class DecisionRow(_DecisionColumns, Base):
    """A live decision; at most one per (event_type, event_id)."""

    __tablename__ = "decisions"
    __table_args__ = (
        sa.UniqueConstraint("event_type", "event_id", name="uq_decisions_event"),
        sa.Index("ix_decisions_created_at", "created_at"),
        sa.Index("ix_decisions_type_created", "event_type", "created_at"),
        sa.Index("ix_decisions_outcome_created", "outcome", "created_at"),
        sa.Index("ix_decisions_policy_name", "policy_name"),
    )


class ShadowDecisionRow(_DecisionColumns, Base):
    """A candidate policy's decision; at most one per (event_type, event_id, policy)."""

    __tablename__ = "shadow_decisions"
    __table_args__ = (
        sa.UniqueConstraint("event_type", "event_id", "policy", name="uq_shadow_decisions_event_policy"),
        sa.Index("ix_shadow_decisions_policy_created", "policy", "created_at"),
        sa.Index("ix_shadow_decisions_policy_name_created", "policy_name", "created_at"),
    )


class DecisionLabelRow(Base):
    """One risk label of one live decision (for label filters)."""

    __tablename__ = "decision_labels"
    __table_args__ = (sa.Index("ix_decision_labels_label", "label", "decision_id"),)

    decision_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("decisions.decision_id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


class AlertRow(Base):
    """A finding of a security or regtech detector."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.Index("ix_alerts_created_at", "created_at"),
        sa.Index("ix_alerts_source_created", "source", "created_at"),
        sa.Index("ix_alerts_severity_created", "severity", "created_at"),
        sa.Index("ix_alerts_entity", "entity"),
    )

    alert_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(128))
    labels: Mapped[list[Any]]
    severity: Mapped[int] = mapped_column(sa.SmallInteger)
    score: Mapped[int] = mapped_column(sa.Integer)
    title: Mapped[str] = mapped_column(sa.String(512))
    entity_type: Mapped[str | None] = mapped_column(sa.String(64))
    entity: Mapped[str | None] = mapped_column(sa.String(512))
    reasons: Mapped[list[Any]]
    action: Mapped[str | None] = mapped_column(sa.String(64))
    start: Mapped[float | None]
    end: Mapped[float | None]
    details: Mapped[dict[str, Any]]
    created_at: Mapped[float]


class AlertLabelRow(Base):
    """One risk label of one alert (for label filters)."""

    __tablename__ = "alert_labels"
    __table_args__ = (sa.Index("ix_alert_labels_label", "label", "alert_id"),)

    alert_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("alerts.alert_id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


class ListEntryRow(Base):
    """A black/white/grey list entry; the value is a keyed-hash token (or a non-identity value)."""

    __tablename__ = "list_entries"
    __table_args__ = (
        sa.UniqueConstraint("list_type", "entity_type", "value_hash", name="uq_list_entries_value"),
        sa.Index("ix_list_entries_expires_at", "expires_at"),
        sa.Index("ix_list_entries_entity_type", "entity_type", "list_type"),
    )

    entry_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    list_type: Mapped[str] = mapped_column(sa.String(8))
    entity_type: Mapped[str] = mapped_column(sa.String(32))
    value_hash: Mapped[str] = mapped_column(sa.String(256))
    masked: Mapped[str] = mapped_column(sa.String(256))
    reason: Mapped[str] = mapped_column(sa.String(512))
    source: Mapped[str] = mapped_column(sa.String(128))
    expires_at: Mapped[float | None]
    created_at: Mapped[float]
    created_by: Mapped[str] = mapped_column(sa.String(128))
    updated_at: Mapped[float]


class CounterRow(Base):
    """Named monotonically increasing counters (``lists`` is bumped on every list change)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger)


class AuditRow(Base):
    """Who changed what, when: policies, lists, API keys, cases."""

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_at", "at"),
        sa.Index("ix_audit_log_object", "object_type", "object_id"),
    )

    audit_id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                          primary_key=True, autoincrement=True)
    at: Mapped[float]
    actor: Mapped[str] = mapped_column(sa.String(128))
    action: Mapped[str] = mapped_column(sa.String(64))
    object_type: Mapped[str] = mapped_column(sa.String(64))
    object_id: Mapped[str] = mapped_column(sa.String(256))
    details: Mapped[dict[str, Any]]


class ApiKeyRow(Base):
    """An API key: only the SHA-256 of the raw key is stored, looked up by its public prefix."""

    __tablename__ = "api_keys"
    __table_args__ = (
        sa.Index("uq_api_keys_active_name", "name", unique=True,
                 sqlite_where=sa.text("revoked_at IS NULL"), postgresql_where=sa.text("revoked_at IS NULL")),
    )

    key_id: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[float]
    created_by: Mapped[str] = mapped_column(sa.String(128))
    revoked_at: Mapped[float | None]


class CaseRow(Base):
    """An analyst case grouping decisions and alerts."""

    __tablename__ = "cases"
    __table_args__ = (
        sa.Index("ix_cases_status_updated", "status", "updated_at"),
        sa.Index("ix_cases_assignee", "assignee"),
    )

    case_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(512))
    status: Mapped[str] = mapped_column(sa.String(16))
    resolution: Mapped[str | None] = mapped_column(sa.String(32))
    labels: Mapped[list[Any]]
    assignee: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[float]
    created_by: Mapped[str] = mapped_column(sa.String(128))
    updated_at: Mapped[float]


class CaseItemRow(Base):
    """A decision or alert attached to a case."""

    __tablename__ = "case_items"
    __table_args__ = (sa.Index("ix_case_items_item", "item_type", "item_id"),)

    case_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("cases.case_id", ondelete="CASCADE"), primary_key=True
    )
    item_type: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    item_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


class CaseNoteRow(Base):
    """A note or status change on a case, in order."""

    __tablename__ = "case_notes"
    __table_args__ = (sa.Index("ix_case_notes_case", "case_id", "at"),)

    note_id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                         primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("cases.case_id", ondelete="CASCADE"))
    at: Mapped[float]
    actor: Mapped[str] = mapped_column(sa.String(128))
    status: Mapped[str | None] = mapped_column(sa.String(16))
    resolution: Mapped[str | None] = mapped_column(sa.String(32))
    note: Mapped[str] = mapped_column(sa.Text)


class PolicyVersionRow(Base):
    """The exact text of every policy version that has decided, so ``name@version`` is traceable."""

    __tablename__ = "policy_versions"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_policy_versions_name_version"),)

    policy_version_id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                                   primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    version: Mapped[str] = mapped_column(sa.String(32))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    source_text: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[float]
    created_by: Mapped[str] = mapped_column(sa.String(128))
