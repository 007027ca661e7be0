"""Decision writer in its own process: the database work of the decision API off the request process.

The in-thread :class:`fsbrain.service.GroupCommitWriter` shares the GIL with the event loop: every batch
insert (SQLAlchemy statement building, JSON encoding of features and reasons) delays requests. This
writer runs the same group commit (``Store.save_decisions``' semantics, on the driver directly:
:class:`fsbrain.store.rawdecisions.RawDecisionWriter`) in a child process, so it uses the second core and
the request process keeps only pickling. On SQLite the WAL is checkpointed by a thread of its own
(:class:`fsbrain.store.rawdecisions.WalCheckpointer`), never by a commit a request waits for. Semantics are the same: each caller's future resolves once
*its* decisions are committed (stored decision or the per-item error), and a database failure fails the
whole batch.

Used by ``fsbrain serve`` for file and PostgreSQL databases (``decision_writer: process``, the default);
an in-memory SQLite database cannot be shared between processes and always uses the thread writer.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing as mp
import threading
from concurrent.futures import Future
from typing import Any

from fsbrain.core import errors as E
from fsbrain.core.model import Decision

log = logging.getLogger(__name__)


def _encode_result(item: Decision, stored: Any) -> tuple[Any, ...]:
    if isinstance(stored, BaseException):
        code = type(stored).__name__
        return ("error", code, getattr(stored, "message", str(stored)))
    if isinstance(stored, Decision) and stored.decision_id == item.decision_id:
        return ("ok",)
    return ("stored", stored)


def _decode_result(item: Decision, res: tuple[Any, ...]) -> Any:
    if res[0] == "ok":
        return item
    if res[0] == "stored":
        return res[1]
    cls = getattr(E, res[1], None)
    if not (isinstance(cls, type) and issubclass(cls, E.FsbrainError)):
        cls = E.BackendError
    return cls(res[2])


def _child(conn: Any, db_url: str, max_batch: int) -> None:
    """The writer process: receive batches, commit them, answer per item."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    from fsbrain.store.rawdecisions import RawDecisionWriter, WalCheckpointer

    store = RawDecisionWriter(db_url, autocheckpoint=0)
    checkpointer = WalCheckpointer(db_url) if store.dialect == "sqlite" else None
    try:
        while True:
            try:
                first = conn.recv()
            except EOFError:
                return
            if first is None:
                return
            batch = [first]
            while len(batch) < max_batch and conn.poll(0):
                nxt = conn.recv()
                if nxt is None:
                    _commit(store, conn, batch)
                    return
                batch.append(nxt)
            _commit(store, conn, batch)
    finally:
        if checkpointer is not None:
            checkpointer.close()
        store.close()


def _commit(store: Any, conn: Any, batch: list[tuple[int, list[tuple[Decision, dict[str, Any]]]]]) -> None:
    flat = [item for _, items in batch for item in items]
    try:
        results = store.save_decisions(flat)
    except Exception as exc:  # the database failed: every waiter gets the same error
        msg = getattr(exc, "message", str(exc))
        conn.send([(seq, ("batch_error", type(exc).__name__, msg)) for seq, _ in batch])
        return
    out, pos = [], 0
    for seq, items in batch:
        out.append((seq, [_encode_result(d, r) for (d, _), r in zip(items, results[pos:pos + len(items)],
                                                                    strict=True)]))
        pos += len(items)
    conn.send(out)


class ProcessCommitWriter:
    """Same interface as :class:`fsbrain.service.GroupCommitWriter`, the work in a child process.

    Args:
        db_url: the store's URL (the child opens its own connections).
        max_batch: most submissions per transaction.
    """

    def __init__(self, db_url: str, max_batch: int = 64) -> None:
        self.db_url = db_url
        self.max_batch = max_batch
        self._seq = itertools.count()
        self._pending: dict[int, tuple[Future[list[Any]], list[Decision]]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=_child, args=(child, self.db_url, self.max_batch),
                                 name="fsbrain-decision-writer", daemon=True)
        self._proc.start()
        child.close()
        self._reader = threading.Thread(target=self._read, args=(self._conn,), name="fsbrain-writer-results",
                                        daemon=True)
        self._reader.start()

    def submit(self, items: list[tuple[Decision, dict[str, Any]]]) -> Future[list[Any]]:
        """Queue ``items``; returns a future of the per-item results (decision or error)."""
        fut: Future[list[Any]] = Future()
        with self._lock:
            if self._closed:
                fut.set_exception(E.BackendError("decision writer is closed"))
                return fut
            if not self._proc.is_alive():
                log.error("decision writer process exited (code %s): restarting it", self._proc.exitcode)
                self._fail_all(E.BackendError("decision writer process exited"))
                self._start()
            seq = next(self._seq)
            self._pending[seq] = (fut, [d for d, _ in items])
            try:
                self._conn.send((seq, items))
            except (OSError, ValueError) as exc:
                self._pending.pop(seq, None)
                fut.set_exception(E.BackendError(f"decision writer unreachable: {exc}"))
        return fut

    def submit_async(self, items: list[tuple[Decision, dict[str, Any]]]) -> Any:
        """:meth:`submit` as an asyncio future of the running loop."""
        import asyncio

        return asyncio.wrap_future(self.submit(items))

    def save(self, items: list[tuple[Decision, dict[str, Any]]]) -> list[Decision]:
        """Store ``items`` and wait; raises the first per-item error."""
        result = self.submit(items).result()
        for r in result:
            if isinstance(r, BaseException):
                raise r
        return result

    def _read(self, conn: Any) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                with self._lock:
                    if conn is self._conn:
                        self._fail_all(E.BackendError("decision writer process exited"))
                return
            for seq, res in msg:
                with self._lock:
                    entry = self._pending.pop(seq, None)
                if entry is None:
                    continue
                fut, decisions = entry
                if isinstance(res, tuple) and res and res[0] == "batch_error":
                    cls = getattr(E, res[1], None)
                    if not (isinstance(cls, type) and issubclass(cls, E.FsbrainError)):
                        cls = E.BackendError
                    fut.set_exception(cls(res[2]))
                else:
                    fut.set_result([_decode_result(d, r) for d, r in zip(decisions, res, strict=True)])

    def _fail_all(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for fut, _ in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(None)
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        with contextlib.suppress(OSError):
            self._conn.close()
        self._reader.join(timeout=5)
        with self._lock:
            self._fail_all(E.BackendError("decision writer is closed"))
