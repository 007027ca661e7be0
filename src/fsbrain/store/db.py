"""Database connection: engine setup per dialect, transactional sessions, error translation, migrations.

SQLite (the default) runs in WAL mode with a busy timeout; write transactions start with
``BEGIN IMMEDIATE`` so concurrent writers queue on the lock instead of failing on a stale snapshot, while
reads use deferred transactions and never block writers. PostgreSQL uses psycopg 3 with pre-ping.

Every database failure surfaces as :class:`~fsbrain.core.errors.BackendError`; a transaction either
commits whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from fsbrain.core.errors import BackendError, ConflictError, FsbrainError, InputError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "fsbrain_alembic_version"
SQLITE_BUSY_TIMEOUT_MS = 10_000
_PG_MIGRATION_LOCK = 7_310_482_661  # arbitrary advisory-lock key shared by all fsbrain processes


def default_url() -> str:
    """``sqlite:///{FSBRAIN_HOME or .fsbrain}/fsbrain.db``, creating the folder."""
    home = Path(os.environ.get("FSBRAIN_HOME", ".fsbrain"))
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'fsbrain.db'}"


def _enable_wal(cur: Any) -> None:
    """Switch a SQLite database to WAL (persistent; a no-op once done).

    The first switch needs an exclusive lock; when another connection is committing in rollback-journal
    mode at that moment SQLite reports a deadlock at once (no busy wait), so retry briefly.
    """
    for attempt in range(100):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or attempt == 99:
                raise
            time.sleep(0.02 + 0.01 * (attempt % 5))


def _json_dumps(value: Any) -> str:
    """JSON columns are written with orjson (several times faster than the stdlib encoder; values are
    checked for NaN, surrogates and non-JSON types by ``validate.json_value`` before they get here)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _redact(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _schema_hint(err: BaseException) -> str:
    text = str(err).lower()
    if "no such table" in text or "undefinedtable" in text or "does not exist" in text:
        return " (the schema is missing or old: run Store.migrate())"
    return ""


class Database:
    """An engine plus read and write session factories.

    Args:
        url: SQLAlchemy URL; ``None`` means the default SQLite file under ``FSBRAIN_HOME``.

    Raises:
        InputError: the URL cannot be parsed or names an unsupported database.
        BackendError: the driver cannot be loaded.
    """

    def __init__(self, url: str | None = None) -> None:
        raw = url or default_url()
        try:
            self.url = make_url(raw)
        except exc.ArgumentError as err:
            raise InputError(f"store url: cannot parse {raw!r}: {err}") from err
        self.dialect = self.url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise InputError(f"store url: unsupported database {self.dialect!r} (sqlite or postgresql)")
        try:
            self.engine = self._create_engine()
        except (ImportError, exc.ArgumentError) as err:
            raise BackendError(f"store: cannot open {_redact(self.url)}: {err}") from err
        self._writer = self.engine.execution_options(fsbrain_write=True)
        if self.dialect == "postgresql":
            self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            self._reader = self.engine.execution_options(fsbrain_autocommit=True)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self._writer, expire_on_commit=False)
        self._closed = threading.Event()
        self._insert_cache: dict[tuple[str, str], Any] = {}
        self._probe_conn: Any = None
        self._raw_lock = threading.Lock()

    def _create_engine(self) -> Engine:
        if self.dialect == "postgresql":
            return sa.create_engine(self.url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                                    json_serializer=_json_dumps)
        database = self.url.database or ""
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30},
                                  "json_serializer": _json_dumps}
        if database in ("", ":memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(self.url, **kwargs)
        memory = database in ("", ":memory:")

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            if not memory:
                _enable_wal(cur)
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            opts = conn.get_execution_options()
            if opts.get("fsbrain_autocommit"):
                return  # single-statement reads: each sees one WAL snapshot, no transaction needed
            conn.exec_driver_sql("BEGIN IMMEDIATE" if opts.get("fsbrain_write") else "BEGIN")

        return engine

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A Core connection in autocommit mode for reads on hot paths (no ORM, no transaction)."""
        with self._guard(), self._reader.connect() as conn:
            yield conn

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A Core connection in one write transaction, committed on success, rolled back on error."""
        with self._guard(), self._writer.begin() as conn:
            yield conn

    def insert_ignore(self, table: sa.Table, returning: sa.Column[Any], *more: sa.Column[Any]) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING RETURNING returning[, more…]`` for ``table`` (built once, then
        reused).

        Execute it with a dict of values; a returned row means the insert happened, none means a unique
        constraint already held an equal row (race-safe: the database decides, not a prior SELECT).
        """
        key = (table.name, returning.name, *(c.name for c in more))
        stmt = self._insert_cache.get(key)
        if stmt is None:
            from sqlalchemy.dialects import postgresql, sqlite

            base = postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)
            stmt = base.on_conflict_do_nothing().returning(returning, *more)
            self._insert_cache[key] = stmt
        return stmt

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session; database failures become :class:`BackendError`."""
        with self._guard(), self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one transaction, committed on success and rolled back on any error."""
        with self._guard(), self._write() as session, session.begin():
            yield session

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if self._closed.is_set():
            raise BackendError("store: already closed")
        try:
            yield
        except FsbrainError:
            raise
        except exc.IntegrityError as err:
            raise ConflictError(f"store: constraint violated: {err.orig}") from err
        except exc.SQLAlchemyError as err:
            detail = getattr(err, "orig", None) or err
            raise BackendError(f"store: database error on {_redact(self.url)}: {detail}"
                               f"{_schema_hint(err)}") from err

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` with the packaged alembic migrations.

        On PostgreSQL an advisory lock serialises concurrent migrators; on SQLite the write lock does.

        Raises:
            BackendError: the database failed or a migration could not be applied.
        """
        from alembic import command

        with self._guard(), self._writer.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg = self.alembic_config(conn)
            command.upgrade(cfg, revision)

    def current_revision(self) -> str | None:
        """The schema revision the database is at, or ``None`` for an empty database."""
        from alembic.runtime.migration import MigrationContext

        with self._guard(), self.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        """The newest revision shipped in the package."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(Database.alembic_config()).get_current_head()

    @staticmethod
    def alembic_config(connection: sa.Connection | None = None) -> Any:
        """An alembic ``Config`` pointing at the packaged migrations (no ini file needed)."""
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = connection
        cfg.attributes["version_table"] = VERSION_TABLE
        return cfg

    def probe(self, sql: str, params: tuple[Any, ...]) -> Any:
        """First row of one small read, or ``None``, on a dedicated driver connection (not from the pool).

        The hot path of the decision API (is this event already decided?) costs ~20 µs this way instead of
        the ~300 µs of a pooled Core connection. ``sql`` uses ``?`` placeholders and must be a constant
        string (never built from input). Driver errors become :class:`BackendError` and drop the connection.
        """
        if self._closed.is_set():
            raise BackendError("store: already closed")
        if self.dialect == "sqlite" and (self.url.database or "") in ("", ":memory:"):
            with self.connect() as c:  # one shared in-memory connection: use it through the pool
                return c.exec_driver_sql(sql, params).first()
        dbapi = self.engine.dialect.dbapi
        driver_error: type[Exception] = dbapi.Error if dbapi is not None else exc.SQLAlchemyError
        with self._raw_lock:
            try:
                conn = self._probe_conn
                if conn is None:
                    conn = self._probe_conn = self._open_probe_connection()
                cur = conn.cursor()
                try:
                    cur.execute(sql if self.dialect == "sqlite" else sql.replace("?", "%s"), params)
                    return cur.fetchone()
                finally:
                    cur.close()
            except driver_error as err:
                if self._probe_conn is not None:
                    with contextlib.suppress(Exception):
                        self._probe_conn.close()
                self._probe_conn = None
                raise BackendError(f"store: database error on {_redact(self.url)}: {err}") from err

    def _open_probe_connection(self) -> Any:
        if self.dialect == "sqlite":
            conn = sqlite3.connect(Path(self.url.database or "").expanduser(), check_same_thread=False,
                                   timeout=30, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            return conn
        import psycopg

        params = self.url.translate_connect_args(username="user", database="dbname")
        params.update(self.url.query)
        return psycopg.connect(autocommit=True, **params)

    def close(self) -> None:
        """Release every pooled connection; later calls raise :class:`BackendError`."""
        self._closed.set()
        with self._raw_lock:
            if self._probe_conn is not None:
                with contextlib.suppress(Exception):
                    self._probe_conn.close()
                self._probe_conn = None
        self.engine.dispose()
