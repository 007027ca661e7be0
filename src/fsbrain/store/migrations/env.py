"""Alembic environment for fsbrain's packaged migrations.

Run programmatically by :meth:`fsbrain.store.db.Database.migrate`, which passes an open connection (already
inside a transaction) in ``config.attributes["connection"]``. Running ``alembic`` from the command line
works too when ``FSBRAIN_STORE_URL`` (or ``sqlalchemy.url``) names the database.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from fsbrain.store.db import VERSION_TABLE
from fsbrain.store.tables import Base


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=context.config.attributes.get("version_table", VERSION_TABLE),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the connection handed over by the caller, or one opened from the configured URL."""
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("FSBRAIN_STORE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set FSBRAIN_STORE_URL or sqlalchemy.url to run fsbrain migrations")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if hasattr(context, "config"):  # under alembic; plain imports (doctest collection) do nothing
    if context.is_offline_mode():
        raise RuntimeError("fsbrain migrations run online only (Store.migrate())")
    run_migrations_online()
