"""Schema management and database plumbing: migrations, defaults, SQLite settings, error translation."""

from __future__ import annotations

import threading
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fsbrain.core.errors import BackendError, InputError
from fsbrain.store import Store
from fsbrain.store.db import MIGRATIONS_DIR, VERSION_TABLE
from fsbrain.store.tables import Base

TABLES = {"decisions", "shadow_decisions", "decision_labels", "alerts", "alert_labels", "list_entries",
          "counters", "audit_log", "api_keys", "cases", "case_items", "case_notes", "policy_versions",
          "fsbrain_alembic_version"}


def test_migrate_empty_database_then_noop(store_url, make_decision):
    s = Store(store_url)
    assert s.schema_revision() is None and s.ping() is False
    s.migrate()
    head = Store.head_revision()
    assert head is not None and s.schema_revision() == head and s.ping() is True
    eng = sa.create_engine(s._db.url)
    with eng.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) == TABLES
    d = make_decision()
    s.save_decision(d, {"a": 1})
    ddl: list[str] = []

    @sa.event.listens_for(s._db.engine, "before_cursor_execute")
    def _log(conn, cursor, statement, *args):
        ddl.extend([statement] if statement.lstrip().upper().startswith(("CREATE", "ALTER", "DROP")) else [])

    s.migrate()
    assert ddl == [] and s.schema_revision() == head
    assert s.get_decision(d.decision_id).to_dict() == d.to_dict()
    assert s.list_version() == 0
    s.close()
    eng.dispose()


def test_models_match_migrations(store):
    with store._db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        assert compare_metadata(ctx, Base.metadata) == []


def test_concurrent_migrators(store_url):
    stores = [Store(store_url) for _ in range(3)]
    errors: list[BaseException] = []

    def run(s: Store) -> None:
        try:
            s.migrate()
        except BaseException as err:  # noqa: BLE001 - asserted below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(s.schema_revision() == Store.head_revision() for s in stores)
    for s in stores:
        s.close()


def test_migration_files_ship_in_the_package():
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["fsbrain"]
    package_root = MIGRATIONS_DIR.parents[1]
    files = [p for p in MIGRATIONS_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any(p.name == "0001_initial_schema.py" for p in files)
    for p in files:
        rel = p.relative_to(package_root).as_posix()
        if p.suffix == ".py":
            assert (p.parent / "__init__.py").exists(), f"{rel} is not in a package: setuptools would drop it"
        else:
            assert any(fnmatch(rel, g) or fnmatch(p.name, g.split("/")[-1]) for g in globs), rel


def test_default_url_under_fsbrain_home(tmp_path):
    s = Store()
    assert s.url == f"sqlite:///{tmp_path / 'fsbrain-home' / 'fsbrain.db'}"
    s.migrate()
    assert (tmp_path / "fsbrain-home" / "fsbrain.db").exists()
    with s._db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    s.close()


def test_in_memory_sqlite_is_shared_between_threads():
    s = Store("sqlite://")
    s.migrate()
    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(s.list_version()))
    t.start()
    t.join()
    assert out == [0]
    s.close()


def test_errors_are_translated(tmp_path):
    with pytest.raises(InputError, match="unsupported database 'mysql'"):
        Store("mysql://x@localhost/db")
    with pytest.raises(InputError, match="cannot parse"):
        Store("::not a url::")
    bare = Store(f"sqlite:///{tmp_path / 'bare.db'}")
    with pytest.raises(BackendError, match="run Store.migrate"):
        bare.list_decisions()
    bare.close()
    with pytest.raises(BackendError, match="closed"):
        bare.list_decisions()
    down = Store("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2")
    with pytest.raises(BackendError, match="database error") as info:
        down.migrate()
    assert info.value.http_status == 503
    down.close()
