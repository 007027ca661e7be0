"""Initial schema: decisions (live and shadow), alerts, lists, counters, audit log, API keys, cases, policies.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

This revision is frozen: it does not import the ORM classes, so later model changes need a new revision.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE_KEY = sa.text("revoked_at IS NULL")


def _col(name: str, type_: sa.types.TypeEngine[Any], nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=nullable, **kw)


def _decision_columns() -> list[sa.Column[Any]]:
    return [
        _col("decision_id", sa.String(64), primary_key=True),
        _col("event_id", sa.String(128)),
        _col("event_type", sa.String(64)),
        _col("outcome", sa.String(32)),
        _col("score", sa.Integer()),
        _col("labels", JSON),
        _col("reasons", JSON),
        _col("policy", sa.String(160)),
        _col("policy_name", sa.String(128)),
        _col("policy_version", sa.String(32)),
        _col("latency_ms", sa.Double()),
        _col("features", JSON),
        _col("errors", JSON),
        _col("created_at", sa.Double()),
        _col("event_time", sa.Double(), nullable=True),
        _col("event_data", JSON),
    ]


def upgrade() -> None:
    """Create every table, index and the ``lists`` counter."""
    op.create_table("decisions", *_decision_columns(),
                    sa.UniqueConstraint("event_type", "event_id", name="uq_decisions_event"))
    op.create_index("ix_decisions_created_at", "decisions", ["created_at"])
    op.create_index("ix_decisions_type_created", "decisions", ["event_type", "created_at"])
    op.create_index("ix_decisions_outcome_created", "decisions", ["outcome", "created_at"])
    op.create_index("ix_decisions_policy_name", "decisions", ["policy_name"])

    op.create_table("shadow_decisions", *_decision_columns(),
                    sa.UniqueConstraint("event_type", "event_id", "policy",
                                        name="uq_shadow_decisions_event_policy"))
    op.create_index("ix_shadow_decisions_policy_created", "shadow_decisions", ["policy", "created_at"])
    op.create_index("ix_shadow_decisions_policy_name_created", "shadow_decisions",
                    ["policy_name", "created_at"])

    op.create_table(
        "decision_labels",
        _col("decision_id", sa.String(64), primary_key=True),
        _col("label", sa.String(64), primary_key=True),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.decision_id"], ondelete="CASCADE"),
    )
    op.create_index("ix_decision_labels_label", "decision_labels", ["label", "decision_id"])

    op.create_table(
        "alerts",
        _col("alert_id", sa.String(64), primary_key=True),
        _col("source", sa.String(128)),
        _col("labels", JSON),
        _col("severity", sa.SmallInteger()),
        _col("score", sa.Integer()),
        _col("title", sa.String(512)),
        _col("entity_type", sa.String(64), nullable=True),
        _col("entity", sa.String(512), nullable=True),
        _col("reasons", JSON),
        _col("action", sa.String(64), nullable=True),
        _col("start", sa.Double(), nullable=True),
        _col("end", sa.Double(), nullable=True),
        _col("details", JSON),
        _col("created_at", sa.Double()),
    )
    op.create_index("ix_alerts_created_at", "alerts", ["created_at"])
    op.create_index("ix_alerts_source_created", "alerts", ["source", "created_at"])
    op.create_index("ix_alerts_severity_created", "alerts", ["severity", "created_at"])
    op.create_index("ix_alerts_entity", "alerts", ["entity"])

    op.create_table(
        "alert_labels",
        _col("alert_id", sa.String(64), primary_key=True),
        _col("label", sa.String(64), primary_key=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.alert_id"], ondelete="CASCADE"),
    )
    op.create_index("ix_alert_labels_label", "alert_labels", ["label", "alert_id"])

    op.create_table(
        "list_entries",
        _col("entry_id", sa.String(64), primary_key=True),
        _col("list_type", sa.String(8)),
        _col("entity_type", sa.String(32)),
        _col("value_hash", sa.String(256)),
        _col("masked", sa.String(256)),
        _col("reason", sa.String(512)),
        _col("source", sa.String(128)),
        _col("expires_at", sa.Double(), nullable=True),
        _col("created_at", sa.Double()),
        _col("created_by", sa.String(128)),
        _col("updated_at", sa.Double()),
        sa.UniqueConstraint("list_type", "entity_type", "value_hash", name="uq_list_entries_value"),
    )
    op.create_index("ix_list_entries_expires_at", "list_entries", ["expires_at"])
    op.create_index("ix_list_entries_entity_type", "list_entries", ["entity_type", "list_type"])

    counters = op.create_table(
        "counters",
        _col("name", sa.String(32), primary_key=True),
        _col("value", sa.BigInteger()),
    )
    op.bulk_insert(counters, [{"name": "lists", "value": 0}])

    op.create_table(
        "audit_log",
        _col("audit_id", BIGID, primary_key=True, autoincrement=True),
        _col("at", sa.Double()),
        _col("actor", sa.String(128)),
        _col("action", sa.String(64)),
        _col("object_type", sa.String(64)),
        _col("object_id", sa.String(256)),
        _col("details", JSON),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"])

    op.create_table(
        "api_keys",
        _col("key_id", sa.String(16), primary_key=True),
        _col("name", sa.String(128)),
        _col("key_hash", sa.String(64)),
        _col("created_at", sa.Double()),
        _col("created_by", sa.String(128)),
        _col("revoked_at", sa.Double(), nullable=True),
    )
    op.create_index("uq_api_keys_active_name", "api_keys", ["name"], unique=True,
                    sqlite_where=ACTIVE_KEY, postgresql_where=ACTIVE_KEY)

    op.create_table(
        "cases",
        _col("case_id", sa.String(64), primary_key=True),
        _col("title", sa.String(512)),
        _col("status", sa.String(16)),
        _col("resolution", sa.String(32), nullable=True),
        _col("labels", JSON),
        _col("assignee", sa.String(128), nullable=True),
        _col("created_at", sa.Double()),
        _col("created_by", sa.String(128)),
        _col("updated_at", sa.Double()),
    )
    op.create_index("ix_cases_status_updated", "cases", ["status", "updated_at"])
    op.create_index("ix_cases_assignee", "cases", ["assignee"])

    op.create_table(
        "case_items",
        _col("case_id", sa.String(64), primary_key=True),
        _col("item_type", sa.String(16), primary_key=True),
        _col("item_id", sa.String(64), primary_key=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], ondelete="CASCADE"),
    )
    op.create_index("ix_case_items_item", "case_items", ["item_type", "item_id"])

    op.create_table(
        "case_notes",
        _col("note_id", BIGID, primary_key=True, autoincrement=True),
        _col("case_id", sa.String(64)),
        _col("at", sa.Double()),
        _col("actor", sa.String(128)),
        _col("status", sa.String(16), nullable=True),
        _col("resolution", sa.String(32), nullable=True),
        _col("note", sa.Text()),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], ondelete="CASCADE"),
    )
    op.create_index("ix_case_notes_case", "case_notes", ["case_id", "at"])

    op.create_table(
        "policy_versions",
        _col("policy_version_id", BIGID, primary_key=True, autoincrement=True),
        _col("name", sa.String(128)),
        _col("version", sa.String(32)),
        _col("sha256", sa.String(64)),
        _col("source_text", sa.Text()),
        _col("created_at", sa.Double()),
        _col("created_by", sa.String(128)),
        sa.UniqueConstraint("name", "version", name="uq_policy_versions_name_version"),
    )


def downgrade() -> None:
    """Drop every table (children first)."""
    for table in ("policy_versions", "case_notes", "case_items", "cases", "api_keys", "audit_log",
                  "counters", "list_entries", "alert_labels", "alerts", "decision_labels",
                  "shadow_decisions", "decisions"):
        op.drop_table(table)
