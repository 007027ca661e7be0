"""The decision log's write path on the database driver itself (``sqlite3`` / psycopg 3), no SQLAlchemy.

:meth:`fsbrain.store.Store.save_decisions` is the reference: the same checks (with the same error
messages), the same rows (JSON columns written with the same orjson encoding SQLAlchemy is configured
with), the same answers per item (the stored decision, the earlier one for a repeated event, or the item's
own error) and the same all-or-nothing transaction. It costs a fraction of the time because

* JSON columns are encoded once, with orjson, and that encoding is also what the checks look at (strict
  JSON, NUL characters, raw identity numbers); the slower exact checks of :mod:`fsbrain.store.validate`
  run only when the quick look finds something that might be wrong;
* statements are plain SQL text executed on one long-lived driver connection.

``tests/store/test_raw_decisions.py`` writes the same decisions both ways on SQLite and PostgreSQL and
compares the rows.
"""

from __future__ import annotations

import contextlib
import math
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import make_url

from fsbrain.core.errors import BackendError, ConflictError, FsbrainError, InputError
from fsbrain.core.model import Decision, Reason
from fsbrain.store import validate as v
from fsbrain.store.db import SQLITE_BUSY_TIMEOUT_MS, _enable_wal, _json_dumps, _redact, _schema_hint

COLUMNS = ("decision_id", "event_id", "event_type", "outcome", "score", "labels", "reasons", "policy",
           "policy_name", "policy_version", "latency_ms", "features", "errors", "created_at", "event_time",
           "event_data")
_JSON_COLUMNS = frozenset(("labels", "reasons", "features", "errors", "event_data"))
_READ_COLUMNS = [c for c in COLUMNS if c != "event_data"]
_REASON_FIELDS = tuple(Reason.__dataclass_fields__)

# orjson options that send every value the standard library would not encode the same way (subclasses,
# dates, dataclasses, non-str keys) to ``default``, which sends the value to the exact check
_STRICT = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# validate.require_no_raw_identity's pre-filter, on UTF-8 JSON bytes: a raw ID or mobile number can only
# hide in a JSON string of ASCII digits and phone punctuation (both encoders escape the same characters)
_CANDIDATE_RE = re.compile(rb'"(?:\d{17}[\dXx]|[+\d\s\-()]{11,24})"')
# ... which cannot match unless a quote is followed by at least 11 bytes of its character classes: map
# those bytes to "1" and look for that plain substring first (a few µs on a 3 KB event, the regex ~35)
_CLASS_MAP = bytes(0x31 if chr(b) in "0123456789+-()Xx \t\n\r\f\v" else (0x22 if b == 0x22 else 0x30)
                   for b in range(256))
_CANDIDATE_RUN = b'"' + b"1" * 11


JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


class _NotPlain(Exception):
    pass


def _not_plain(_obj: Any) -> Any:
    raise _NotPlain


def _has_non_finite(obj: Any) -> bool:
    """Whether a JSON-like value holds a NaN or an infinity anywhere (orjson writes them as ``null``)."""
    todo = [obj]
    while todo:
        o = todo.pop()
        t = type(o)
        if t is float:
            if not math.isfinite(o):
                return True
            continue
        if t is dict:
            o = list(o.values())
        elif t is not list and t is not tuple:
            continue
        types = set(map(type, o))  # one C-level pass; most event fields are strings, ints and bools
        if float in types and not all(map(math.isfinite, [x for x in o if type(x) is float])):
            return True
        if dict in types or list in types or tuple in types:
            todo += [x for x in o if type(x) is dict or type(x) is list or type(x) is tuple]
    return False


def encode_json(value: Any, name: str) -> str:
    """``value`` as the JSON text the store keeps, after :func:`fsbrain.store.validate.json_value`'s checks.

    Raises:
        InputError: exactly when ``validate.json_value`` raises, with its message.
    """
    try:
        out = orjson.dumps(value, default=_not_plain, option=_STRICT)
    except (_NotPlain, orjson.JSONEncodeError, TypeError):
        out = None
    if out is None or b"\\u0000" in out or (b"null" in out and _has_non_finite(value)):
        v.json_value(value, name)  # raises with the reference message, or the value is fine after all
        try:
            return _json_dumps(value)
        except (orjson.JSONEncodeError, TypeError) as err:
            raise InputError(f"{name}: not JSON-serialisable ({err})") from err
    return out.decode()


def _check_identity(value: Any, encoded: str, what: str) -> None:
    raw = encoded.encode()
    if _CANDIDATE_RUN in raw.translate(_CLASS_MAP) and _CANDIDATE_RE.search(raw):
        v.require_no_raw_identity(value, what)


def _reason_dict(r: Any) -> dict[str, Any]:
    if type(r) is Reason:
        out = {}
        for f in _REASON_FIELDS:
            x = getattr(r, f)
            if x is not None:
                out[f] = x
        return out
    return r.to_dict()  # type: ignore[no-any-return]


def decision_row(d: Decision, event_data: dict[str, Any]) -> tuple[Any, ...]:
    """Validate a decision and its event; returns the row's values in :data:`COLUMNS` order.

    Same checks, order and messages as the SQLAlchemy path (``decisions._values_from_decision``).
    """
    if not isinstance(d, Decision):
        raise InputError(f"decision: expected a Decision, got {type(d).__name__}")
    if not isinstance(event_data, dict):
        raise InputError(f"event_data: must be a JSON object, got {type(event_data).__name__}")
    if isinstance(d.score, bool) or not isinstance(d.score, int) or not 0 <= d.score <= 1000:
        raise InputError(f"decision.score: must be an integer 0..1000, got {d.score!r}")
    policy = v.text(d.policy, "decision.policy", max_len=160, allow_empty=True)
    name, version = v.split_policy(policy)
    labels = list(d.labels)
    reasons = [_reason_dict(r) for r in d.reasons]
    features = dict(d.features)
    errors = list(d.errors)
    labels_j = encode_json(labels, "decision.labels")
    reasons_j = encode_json(reasons, "decision.reasons")
    features_j = encode_json(features, "decision.features")
    errors_j = encode_json(errors, "decision.errors")
    event_j = encode_json(event_data, "event_data")
    _check_identity(event_data, event_j, "event_data")
    _check_identity(features, features_j, "decision.features")
    for label in d.labels:
        v.text(label, "decision.labels[]", max_len=64)
    return (
        v.text(d.decision_id, "decision.decision_id", max_len=64),
        v.text(d.event_id, "decision.event_id", max_len=128),
        v.text(d.event_type, "decision.event_type", max_len=64),
        v.text(d.outcome, "decision.outcome", max_len=32),
        d.score,
        labels_j,
        reasons_j,
        policy,
        name[:128],
        version[:32],
        float(d.latency_ms),
        features_j,
        errors_j,
        v.timestamp(d.created_at, "decision.created_at", optional=False),
        v.timestamp(d.event_time, "decision.event_time"),
        event_j,
    )


class WriterBusy(Exception):
    """SQLite: another connection holds the write lock right now (raised only with ``wait=False``)."""


class RawDecisionWriter:
    """``save_decisions`` of :class:`fsbrain.store.Store` on one driver connection of its own.

    Not thread-safe: one writer per thread or process (the decision writers own theirs). A driver error
    fails the batch with :class:`BackendError` (nothing of it is stored) and drops the connection; the next
    call reconnects.

    Args:
        url: the store's SQLAlchemy URL (``sqlite:///file`` or ``postgresql+psycopg://…``); an in-memory
            SQLite database cannot be shared with the store's own connections and is refused.
        autocheckpoint: SQLite only: pages in the WAL before a commit also checkpoints it (SQLite's
            default, 1000); ``0`` leaves checkpoints to :meth:`checkpoint` (the server runs them off the
            request path).
    """

    def __init__(self, url: str, *, autocheckpoint: int = 1000) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            if (self.url.database or "") in ("", ":memory:"):
                raise InputError("raw decision writer: an in-memory SQLite database cannot be shared")
            ph = "?"
        elif self.dialect == "postgresql":
            ph = "%s"
        else:
            raise InputError(f"store url: unsupported database {self.dialect!r} (sqlite or postgresql)")
        self.autocheckpoint = autocheckpoint
        cols = ", ".join(COLUMNS)
        vals = ", ".join(f"{ph}::jsonb" if self.dialect == "postgresql" and c in _JSON_COLUMNS else ph
                         for c in COLUMNS)
        self._insert = {t: f"INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT DO NOTHING"
                        for t in ("decisions", "shadow_decisions")}
        read = ", ".join(_READ_COLUMNS)
        self._by_event = f"SELECT {read} FROM decisions WHERE event_type = {ph} AND event_id = {ph}"
        self._shadow_by_event = (f"SELECT {read} FROM shadow_decisions WHERE event_type = {ph} AND event_id = {ph}"
                                 f" AND policy = {ph}")
        self._labels = f"INSERT INTO decision_labels (decision_id, label) VALUES ({ph}, {ph})"
        self._conn: Any = None
        self._driver_error: type[Exception] = sqlite3.Error
        self._integrity_error: type[Exception] = sqlite3.IntegrityError
        if self.dialect == "postgresql":
            import psycopg

            self._driver_error, self._integrity_error = psycopg.Error, psycopg.IntegrityError

    # -- connection ----------------------------------------------------------------------------
    def _connect(self, create: bool = True) -> Any:
        if self._conn is not None:
            return self._conn
        if self.dialect == "sqlite":
            path = Path(self.url.database or "").expanduser()
            if not create and not path.exists():
                raise BackendError(f"store: {_redact(self.url)} does not exist")
            conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None,
                                   cached_statements=256)
            cur = conn.cursor()
            # no busy wait inside SQLite: BEGIN IMMEDIATE answers "busy" at once and save_decisions waits (or
            # lets the caller retry); the WAL switch below retries by itself
            cur.execute("PRAGMA busy_timeout=0")
            cur.execute("PRAGMA foreign_keys=ON")
            _enable_wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA wal_autocheckpoint={int(self.autocheckpoint)}")
            cur.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")  # the WAL file shrinks back on restart
            cur.close()
        else:
            import psycopg

            params = self.url.translate_connect_args(username="user", database="dbname")
            params.update(self.url.query)
            conn = psycopg.connect(**params)
        self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop()

    def checkpoint(self, mode: str = "PASSIVE", busy_timeout_ms: int = 0) -> tuple[int, int, int]:
        """SQLite: copy the WAL back into the database file; returns SQLite's ``(busy, log frames,
        checkpointed frames)`` (``(0, 0, 0)`` elsewhere).

        ``PASSIVE`` never waits for, nor blocks, writers and readers. ``RESTART`` also waits (up to
        ``busy_timeout_ms``) for the write lock and for readers, so that the next commit starts the WAL
        from its beginning; it holds the write lock while it copies what is left and syncs the file.
        """
        if self.dialect != "sqlite":
            return (0, 0, 0)
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise InputError(f"checkpoint mode: {mode!r}")
        try:
            conn = self._connect(create=False)
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            try:
                row = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            finally:
                conn.execute("PRAGMA busy_timeout=0")
            return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)
        except sqlite3.Error as err:
            self._drop()
            raise BackendError(f"store: checkpoint failed on {_redact(self.url)}: {err}") from err

    # -- writing -------------------------------------------------------------------------------
    def save_decisions(self, items: list[tuple[Decision, dict[str, Any]]], *, wait: bool = True,
                       ) -> list[Decision | FsbrainError]:
        """Same contract as :meth:`fsbrain.store.Store.save_decisions`.

        Args:
            wait: SQLite: when another connection holds the write lock, wait for it (up to the store's
                busy timeout, as every store connection does). ``False`` raises :class:`WriterBusy` at once
                instead, before anything is written, so an event loop can retry later without blocking.
        """
        out: list[Any] = [None] * len(items)
        rows: list[tuple[int, tuple[Any, ...]]] = []
        for i, (decision, event_data) in enumerate(items):
            try:
                rows.append((i, decision_row(decision, event_data)))
            except FsbrainError as err:
                out[i] = err
        if rows:
            self.write_rows(rows, items, out, wait=wait)
        return out

    def write_rows(self, rows: list[tuple[int, tuple[Any, ...]]], items: list[tuple[Decision, dict[str, Any]]],
                   out: list[Any], *, wait: bool = True) -> None:
        """Write rows made by :func:`decision_row` (``(item index, row)``) in one transaction, filling ``out``."""
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        delay = 0.0005
        while True:
            try:
                self._write(rows, items, out)
                return
            except WriterBusy:
                if not wait:
                    raise
                if time.monotonic() > deadline:
                    raise BackendError(f"store: database error on {_redact(self.url)}: database is locked") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.01)
            except self._integrity_error as err:
                self._drop()
                raise ConflictError(f"store: constraint violated: {err}") from err
            except self._driver_error as err:
                self._drop()
                raise BackendError(f"store: database error on {_redact(self.url)}: {err}{_schema_hint(err)}") from err

    def _write(self, rows: list[tuple[int, tuple[Any, ...]]], items: list[tuple[Decision, dict[str, Any]]],
               out: list[Any]) -> None:
        conn = self._connect()
        sqlite = self.dialect == "sqlite"
        cur = conn.cursor()
        if sqlite:
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                cur.close()
                if getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
                    raise WriterBusy from None
                raise
        ok = False
        try:
            landed = self._insert_rows(cur, rows, items)
            # then, as Store.save_decisions does, resolve the rows the database skipped, after every insert
            labels: list[tuple[str, str]] = []
            claimed: set[str] = set()
            for (i, row), ins in zip(rows, landed, strict=True):
                decision = items[i][0]
                shadow = bool(decision.shadow)
                did = row[0]
                if ins and did not in claimed:
                    claimed.add(did)
                    if not shadow:
                        labels += [(did, lb) for lb in dict.fromkeys(decision.labels)]
                    out[i] = decision
                    continue
                if shadow:
                    cur.execute(self._shadow_by_event, (row[2], row[1], row[7]))
                else:
                    cur.execute(self._by_event, (row[2], row[1]))
                existing = cur.fetchone()
                out[i] = (self._decision(existing, shadow) if existing is not None else
                          ConflictError(f"decision id {did} is already stored for another event"))
            if labels:
                cur.executemany(self._labels, labels)
            if sqlite:
                cur.execute("COMMIT")
            else:
                conn.commit()
            ok = True
        finally:
            cur.close()
            if not ok:
                with contextlib.suppress(Exception):
                    if sqlite:
                        conn.execute("ROLLBACK")
                    else:
                        conn.rollback()

    def _insert_rows(self, cur: Any, rows: list[tuple[int, tuple[Any, ...]]],
                     items: list[tuple[Decision, dict[str, Any]]]) -> list[bool]:
        """Insert every row in order (``ON CONFLICT DO NOTHING``); whether each one landed.

        SQLite: one call per row on the prepared statement (no round trips). PostgreSQL: one pipelined
        ``executemany`` per table, so a batch costs one network round trip, not one per row.
        """
        if self.dialect == "sqlite":
            landed = []
            for i, row in rows:
                cur.execute(self._insert["shadow_decisions" if items[i][0].shadow else "decisions"], row)
                landed.append(cur.rowcount == 1)
            return landed
        landed = [False] * len(rows)
        for table, shadow in (("decisions", False), ("shadow_decisions", True)):
            idx = [k for k, (i, _) in enumerate(rows) if bool(items[i][0].shadow) is shadow]
            if not idx:
                continue
            cur.executemany(self._insert[table] + " RETURNING decision_id", [rows[k][1] for k in idx],
                            returning=True)
            for n, k in enumerate(idx):
                if n:
                    cur.nextset()
                landed[k] = cur.fetchone() is not None
        return landed

    def _decision(self, row: tuple[Any, ...], shadow: bool) -> Decision:
        data = dict(zip(_READ_COLUMNS, row, strict=True))
        if self.dialect == "sqlite":
            for c in ("labels", "reasons", "features", "errors"):
                data[c] = orjson.loads(data[c])
        return Decision.from_dict({**data, "shadow": shadow})


class WalCheckpointer:
    """A daemon thread that keeps a SQLite WAL short for writers that turned automatic checkpoints off.

    SQLite's automatic checkpoint runs inside the commit that crosses 1000 WAL pages: that commit (and
    every request waiting on it) pays for copying the pages back and syncing the database file. Here a
    thread pays, with the GIL released while SQLite works. Every ``interval`` seconds it first copies the
    WAL back with a ``PASSIVE`` checkpoint (no lock: writers go on appending meanwhile), then runs a
    ``RESTART`` checkpoint, which takes the write lock only to copy the few frames appended since and sync
    the file, so that the next commit writes the WAL from its start again. Without that second step a WAL
    that is written to without pause is never found fully copied and grows without bound (measured: 480 MB
    after 20 s at 500 decisions/s). While it holds the lock, the loop writer retries its commit from a
    timer (see :class:`fsbrain.service.LoopCommitWriter`).
    """

    RESTART_WAIT_MS = 200  # how long the restart may wait for the write lock and for readers
    RESTART_FRAMES = 16384  # restart once the WAL holds this many frames (64 MB of 4 KB pages) ...
    RESTART_EVERY = 30.0  # ... or this many seconds after the last restart

    def __init__(self, url: str, interval: float = 1.0) -> None:
        import threading

        self._writer = RawDecisionWriter(url)
        self._path = Path(self._writer.url.database or "").expanduser()
        self._interval = interval
        self._stop = threading.Event()
        self.restarts = 0
        self.last_restart_seconds = 0.0  # how long the last restart held things up (lock wait included)
        self._last_restart = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="fsbrain-wal-checkpoint", daemon=True)
        self._thread.start()

    def run_once(self, *, force: bool = False) -> None:
        """One passive copy, then — when the WAL has grown past :data:`RESTART_FRAMES` frames, or
        :data:`RESTART_EVERY` seconds after the last one, or ``force`` — the short restart."""
        _, frames, _ = self._writer.checkpoint("PASSIVE")
        now = time.monotonic()
        if not (force or frames >= self.RESTART_FRAMES or now - self._last_restart >= self.RESTART_EVERY):
            return
        busy, _, _ = self._writer.checkpoint("RESTART", busy_timeout_ms=self.RESTART_WAIT_MS)
        self.last_restart_seconds = time.monotonic() - now
        if not busy:
            self.restarts += 1
            self._last_restart = now

    def _run(self) -> None:
        import logging

        while not self._stop.wait(self._interval):
            if not self._path.exists():
                continue  # nothing to checkpoint yet (the store creates the file)
            try:
                self.run_once()
            except Exception as exc:  # keep trying; a failed checkpoint only lets the WAL grow
                logging.getLogger(__name__).warning("WAL checkpoint failed: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._path.exists():
            with contextlib.suppress(Exception):
                self._writer.checkpoint()
        self._writer.close()
