"""Storage layer: decisions, alerts, lists, audit log, API keys, cases and policy versions.

SQLAlchemy 2 on SQLite (default) or PostgreSQL, schema managed by packaged alembic migrations.
See docs/storage.md for the tables.
"""

from __future__ import annotations

from fsbrain.store.cases import CASE_STATUSES, RESOLUTIONS
from fsbrain.store.lists import LIST_TYPES
from fsbrain.store.store import Store

__all__ = ["CASE_STATUSES", "LIST_TYPES", "RESOLUTIONS", "Store"]
