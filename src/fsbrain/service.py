"""The platform: engine + store + state + pseudonymisation, shared by the API server and the CLI."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from fsbrain.config import Settings
from fsbrain.core.errors import BackendError, FsbrainError, InputError, PolicyError
from fsbrain.core.model import Decision
from fsbrain.core.pii import Pseudonymizer, load_or_create_key, mask
from fsbrain.engine.evaluator import Engine
from fsbrain.engine.events import prepare_event
from fsbrain.engine.lists import LIST_TYPES, ListIndex
from fsbrain.engine.policy import POLICY_DIR, CompiledPolicy, load_policy
from fsbrain.metrics import Metrics
from fsbrain.state import make_backend
from fsbrain.state.base import StateBackend

log = logging.getLogger("fsbrain")

# entity types whose list values are identity data: validated, then stored as keyed hashes only
IDENTITY_ENTITY_TYPES = {"id_number": "id_number", "phone": "phone", "bank_card": "bank_card",
                         "contact_phone": "phone", "name": "name", "email": "email"}
ENTITY_TYPES = sorted({*IDENTITY_ENTITY_TYPES, "device_id", "ip", "account_id", "employer", "ip_prefix"})


class GroupCommitWriter:
    """Stores decisions in batches: each caller waits until *its* decision is committed (nothing is
    answered before it is stored), but concurrent callers share one transaction, so the commit cost is
    paid once per batch instead of once per decision.

    Args:
        store: the decision store.
        max_batch: most decisions per transaction.
    """

    def __init__(self, store: Any, max_batch: int = 64) -> None:
        import queue

        self.store = store
        self.max_batch = max_batch
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="fsbrain-decision-writer", daemon=True)
        self._thread.start()

    def submit(self, items: list[tuple[Decision, dict[str, Any]]]) -> Any:
        """Queue ``items``; returns a ``concurrent.futures.Future`` of the per-item results."""
        from concurrent.futures import Future

        fut: Future[list[Any]] = Future()
        self._q.put((items, fut))
        return fut

    def submit_async(self, items: list[tuple[Decision, dict[str, Any]]]) -> Any:
        """:meth:`submit` as an asyncio future of the running loop."""
        import asyncio

        return asyncio.wrap_future(self.submit(items))

    def save(self, items: list[tuple[Decision, dict[str, Any]]]) -> list[Decision]:
        """Store ``items`` (the live decision first, then its shadows); returns what is stored."""
        result = self.submit(items).result()
        for r in result:
            if isinstance(r, BaseException):
                raise r
        return result

    def _run(self) -> None:
        import queue

        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.append(nxt)
            flat = [item for items, _ in batch for item in items]
            try:
                results: list[Any] = self.store.save_decisions(flat)
            except Exception as exc:  # the database failed: every waiter gets the same error
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            pos = 0
            for items, fut in batch:
                fut.set_result(results[pos:pos + len(items)])
                pos += len(items)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=10)


class LoopCommitWriter:
    """Commits decisions on the event loop's own thread, through the database driver (SQLite files).

    A request that finds the writer idle (nothing committed in the last millisecond) is committed at once,
    in its own step, so its answer leaves in the same turn of the loop. In a burst, the requests decided in
    one turn share one transaction: the first schedules the commit with ``call_soon``, the others join it.
    Every waiter's future resolves once its decisions are stored.
    There is no thread or process hand-over (no pickling, no wake-ups of another task), so a decision costs
    the server one pass through the loop; a SQLite commit in WAL mode is a write to the page cache, and the
    WAL is checkpointed by a thread of its own, off the loop. When another process holds the write lock
    (another worker, the CLI), the commit is retried a little later instead of waiting inside SQLite, so the
    loop keeps serving meanwhile. Synchronous callers (CLI, other threads) use :meth:`save`, serialised with
    the loop by a lock.

    Args:
        db_url: a SQLite file URL (PostgreSQL works too, but every commit would hold the loop for a network
            round trip: the process writer is the choice there).
        max_batch: most submissions per transaction.
    """

    BUSY_TIMEOUT = 10.0  # seconds a batch may wait for the write lock, as the store's own connections
    IDLE_COMMIT_AFTER = 0.001  # a submission this long after the last commit is committed at once

    def __init__(self, db_url: str, max_batch: int = 64) -> None:
        from fsbrain.store.rawdecisions import RawDecisionWriter, WalCheckpointer

        self._raw = RawDecisionWriter(db_url, autocheckpoint=0)
        self._checkpointer = WalCheckpointer(db_url) if self._raw.dialect == "sqlite" else None
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._batch: list[tuple[list[tuple[Decision, dict[str, Any]]], Any]] = []
        self._retry: Any = None  # (batch, flat items, rows, out, first busy time, delay) waiting for the lock
        self._scheduled = False
        self._closed = False
        self._last_commit = 0.0

    def submit_async(self, items: list[tuple[Decision, dict[str, Any]]]) -> Any:
        """Queue ``items`` for this loop turn's commit; returns an asyncio future of the per-item results."""
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if self._closed:
            fut.set_exception(BackendError("decision writer is closed"))
            return fut
        self._batch.append((items, fut))
        if self._scheduled:
            return fut
        if len(self._batch) == 1 and time.perf_counter() - self._last_commit > self.IDLE_COMMIT_AFTER:
            # the writer has been idle: commit now, in this request's own step (its answer goes out in the
            # same turn of the loop, two turns sooner); in a burst, later requests join a batch instead
            self._flush()
        else:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        import asyncio

        from fsbrain.store.rawdecisions import WriterBusy, decision_row

        self._scheduled = False
        if self._retry is not None:
            batch, flat, rows, out, busy_since, delay = self._retry
            self._retry = None
        else:
            batch = self._batch[:self.max_batch]
            del self._batch[:len(batch)]
            if not batch:
                return
            flat = [item for items, _ in batch for item in items]
            out: list[Any] = [None] * len(flat)
            rows = []
            for i, (decision, event_data) in enumerate(flat):
                try:
                    rows.append((i, decision_row(decision, event_data)))
                except FsbrainError as err:
                    out[i] = err
            busy_since, delay = None, 0.0005
        try:
            if rows:
                with self._lock:
                    self._raw.write_rows(rows, flat, out, wait=False)
        except WriterBusy:
            now = time.monotonic()
            busy_since = busy_since or now
            if now - busy_since < self.BUSY_TIMEOUT:
                self._retry = (batch, flat, rows, out, busy_since, min(delay * 2, 0.002))
                self._scheduled = True
                asyncio.get_running_loop().call_later(delay, self._flush)
                return
            self._fail(batch, BackendError("store: database is locked (another writer held it for "
                                           f"{self.BUSY_TIMEOUT:g} s)"))
        except Exception as exc:  # the database failed: every waiter gets the same error
            self._fail(batch, exc)
        else:
            pos = 0
            for items, fut in batch:
                if not fut.done():
                    fut.set_result(out[pos:pos + len(items)])
                pos += len(items)
        self._last_commit = time.perf_counter()
        if self._batch and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    @staticmethod
    def _fail(batch: list[tuple[Any, Any]], exc: BaseException) -> None:
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(exc)

    def save(self, items: list[tuple[Decision, dict[str, Any]]]) -> list[Decision]:
        """Store ``items`` now (from any thread); raises the first per-item error."""
        if self._closed:
            raise BackendError("decision writer is closed")
        with self._lock:
            result = self._raw.save_decisions(items)
        for r in result:
            if isinstance(r, BaseException):
                raise r
        return result  # type: ignore[return-value]

    def close(self) -> None:
        self._closed = True
        pending = ([self._retry[0]] if self._retry is not None else []) + [self._batch]
        self._retry, self._batch = None, []
        for batch in pending:
            self._fail(batch, BackendError("decision writer is closed"))
        with self._lock:
            self._raw.close()
        if self._checkpointer is not None:
            self._checkpointer.close()


def default_policy_files() -> list[Path]:
    return sorted(POLICY_DIR.glob("*.yaml"))


class Platform:
    """Everything a decision needs, wired once per process.

    Args:
        settings: configuration.
        state: a state backend to use instead of the configured one (tests, backtests).
    """

    EVAL_THREADS_REMOTE_STATE = 4
    """Threads that evaluate for :meth:`decide_async` when the state backend is remote (Redis); 0 keeps the
    evaluation on the event loop. The in-process backend always evaluates on the loop (pure CPU work)."""

    def __init__(self, settings: Settings, *, state: StateBackend | None = None) -> None:
        from fsbrain.store import Store

        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.metrics = Metrics()
        self._metric_children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._key_cache: dict[bytes, tuple[str, float]] = {}
        self.freeze_gc = False  # the server turns this on (see fsbrain.server.tune_gc)
        self.pseudonymizer = Pseudonymizer(load_or_create_key(settings.home / "pii.key"))
        self.store = Store(settings.db_url)
        self.store.migrate()
        if state is None:
            sc = settings.state
            kw: dict[str, Any] = {"allowed_lateness": sc.allowed_lateness}
            if sc.type == "redis":
                kw |= {"url": sc.url, "prefix": sc.prefix, "socket_timeout": sc.socket_timeout,
                       "socket_connect_timeout": sc.socket_timeout, "ttl_grace": sc.ttl_grace}
            state = make_backend(sc.type, **kw)
        self.engine = Engine(state=state, lists=ListIndex())
        memory_db = settings.db_url.startswith("sqlite") and settings.db_url.rstrip("/") in ("sqlite:", "sqlite:/",
                                                                                               "sqlite:///:memory:")
        self.writer: Any = self._make_writer(settings.decision_writer, memory_db)
        self.engine.on_rule_error = lambda pol, rule: self.metrics.rule_errors.labels(pol, rule).inc()
        self._policy_files: dict[str, tuple[Path, float]] = {}
        self._shadow_files: dict[str, list[tuple[Path, float]]] = {}
        self._event_locks = [threading.Lock() for _ in range(64)]
        self._pending: dict[tuple[str, str], Any] = {}
        self._eval_pool: Any = None
        if getattr(self.engine.state, "name", "") == "redis" and self.EVAL_THREADS_REMOTE_STATE:
            from concurrent.futures import ThreadPoolExecutor

            self._eval_pool = ThreadPoolExecutor(self.EVAL_THREADS_REMOTE_STATE,
                                                 thread_name_prefix="fsbrain-evaluate")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.load_policies()
        self.refresh_lists(force=True)
        self._preload()

    def _make_writer(self, kind: str, memory_db: bool) -> Any:
        """The decision writer for ``settings.decision_writer`` (an in-memory SQLite database, shared by
        one connection, always gets the thread writer on the store)."""
        if kind == "auto":
            kind = "loop" if self.store.dialect == "sqlite" else "process"
        if memory_db:
            kind = "thread"
        self.writer_kind = kind
        if kind == "thread":
            return GroupCommitWriter(self.store)
        if kind == "loop":
            return LoopCommitWriter(self.settings.db_url)
        from fsbrain.writer_process import ProcessCommitWriter

        return ProcessCommitWriter(self.settings.db_url)

    @staticmethod
    def _preload() -> None:
        """Load code tables now, so the first requests don't pay for them."""
        import importlib

        from fsbrain.engine.events import EVENT_TYPE_MODULES

        for mod, _, _ in EVENT_TYPE_MODULES.values():
            pre = getattr(importlib.import_module(mod), "preload", None)
            if pre is not None:
                pre()

    # -- policies ------------------------------------------------------------------------------
    def load_policies(self) -> list[str]:
        """(Re)load every configured live and shadow policy; returns the refs loaded."""
        files = self.settings.policies or default_policy_files()
        if not files:
            raise PolicyError("no policy files configured and none shipped")
        loaded = []
        for path in files:
            pol = load_policy(path)
            self._install(pol, path)
            loaded.append(pol.ref)
        shadows: dict[str, list[CompiledPolicy]] = {}
        for path in self.settings.shadow_policies:
            pol = load_policy(path)
            shadows.setdefault(pol.event_type, []).append(pol)
            self._shadow_files.setdefault(pol.event_type, []).append((Path(path), _mtime(path)))
            self._record(pol, "shadow")
        for et, pols in shadows.items():
            self.engine.set_shadows(et, pols)
            loaded += [p.ref + " (shadow)" for p in pols]
        return loaded

    def _install(self, pol: CompiledPolicy, path: Path) -> None:
        self.engine.set_policy(pol)
        self._policy_files[pol.event_type] = (Path(path), _mtime(path))
        self._record(pol, "live")

    def _record(self, pol: CompiledPolicy, role: str) -> None:
        self.store.record_policy_version(pol.name, pol.version, pol.sha256, pol.text, actor=f"system:{role}")

    def reload_if_changed(self) -> list[str]:
        """Reload policy files whose modification time changed. A broken file keeps the old policy."""
        reloaded = []
        for et, (path, mtime) in list(self._policy_files.items()):
            now_m = _mtime(path)
            if now_m == mtime:
                continue
            try:
                pol = load_policy(path)
                if pol.event_type != et:
                    raise PolicyError(f"event_type changed from {et!r} to {pol.event_type!r}", source=str(path))
                self._install(pol, path)
                self.metrics.policy_reloads.labels("ok").inc()
                reloaded.append(pol.ref)
                log.info("reloaded policy %s from %s", pol.ref, path)
            except FsbrainError as exc:
                self._policy_files[et] = (path, now_m)
                self.metrics.policy_reloads.labels("error").inc()
                log.error("policy reload failed, keeping %s: %s", self.engine.policy(et).ref, exc)
        return reloaded

    # -- lists ---------------------------------------------------------------------------------
    def refresh_lists(self, *, force: bool = False) -> None:
        v = self.store.list_version()
        if force or v != self.engine.lists.version:
            self.engine.lists.replace_all(self.store.active_list_entries(time.time()), v)
            self.metrics.list_entries.set(len(self.engine.lists))

    def list_value_token(self, entity_type: str, value: str) -> tuple[str, str]:
        """Validate a raw list value and return (stored value, masked display)."""
        from fsbrain.core.pii import validate_bank_card, validate_id_number, validate_phone

        if entity_type not in ENTITY_TYPES:
            raise InputError(f"entity_type: unknown {entity_type!r} (one of {ENTITY_TYPES})")
        value = str(value).strip()
        if not value:
            raise InputError("value: must not be empty")
        kind = IDENTITY_ENTITY_TYPES.get(entity_type)
        if kind is None:
            if len(value) > 256:
                raise InputError("value: longer than 256 characters")
            return value, value
        if kind == "id_number":
            validate_id_number(value, field="value")
        elif kind == "phone":
            value = validate_phone(value, field="value")
        elif kind == "bank_card":
            value = validate_bank_card(value, field="value")
        return self.pseudonymizer.hash(kind, value), mask(kind, value)

    def add_list_entry(self, *, list_type: str, entity_type: str, value: str, reason: str, source: str,
                       expires_at: float | None, actor: str) -> dict[str, Any]:
        if list_type not in LIST_TYPES:
            raise InputError(f"list_type: must be one of {LIST_TYPES}")
        if expires_at is not None and expires_at <= time.time():
            raise InputError("expires_at: must be in the future")
        token, masked = self.list_value_token(entity_type, value)
        entry = self.store.add_list_entry(list_type, entity_type, token, masked, reason, source, expires_at, actor)
        self.refresh_lists()
        return entry

    def remove_list_entry(self, entry_id: str, actor: str) -> dict[str, Any]:
        entry = self.store.remove_list_entry(entry_id, actor)
        self.refresh_lists()
        return entry

    # -- decisions -----------------------------------------------------------------------------
    def decide(self, event_type: str, payload: Any) -> tuple[Decision, bool]:
        """Validate, decide, store. Returns (decision, replayed) — replayed when event_id was seen before."""
        t0 = time.perf_counter()
        prepared = self._prepare(event_type, payload)
        lock = self._event_locks[hash(prepared.event_id) % len(self._event_locks)]
        with lock:
            existing = self._existing(event_type, prepared.event_id)
            if existing is not None:
                return existing, True
            decision, shadows = self._evaluate(event_type, prepared)
            stored = self.writer.save(self._items(prepared, decision, shadows))[0]
        return self._account(event_type, decision, shadows, stored, t0)

    async def decide_async(self, event_type: str, payload: Any) -> tuple[Decision, bool]:
        """:meth:`decide` for the event loop: CPU work inline, the commit awaited without blocking the loop
        (the group-commit writer resolves an asyncio future), so one process serves many requests without a
        thread per request."""
        import asyncio

        t0 = time.perf_counter()
        prepared = self._prepare(event_type, payload)
        key = (event_type, prepared.event_id)
        pending = self._pending.get(key)
        if pending is not None:  # the same event is being decided right now: answer with that decision
            first = (await asyncio.shield(pending))[0]
            if isinstance(first, BaseException):
                raise first
            self.metrics.replays.labels(event_type).inc()
            return first, True
        existing = self._existing(event_type, prepared.event_id)
        if existing is not None:
            return existing, True
        if self._eval_pool is not None:
            results, decision, shadows = await self._decide_off_loop(key, event_type, prepared)
        else:
            decision, shadows = self._evaluate(event_type, prepared)
            fut = self.writer.submit_async(self._items(prepared, decision, shadows))
            self._pending[key] = fut
            try:
                results = await fut
            finally:
                self._pending.pop(key, None)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return self._account(event_type, decision, shadows, results[0], t0)

    async def _decide_off_loop(self, key: tuple[str, str], event_type: str, prepared: Any,
                               ) -> tuple[list[Any], Decision, list[Decision]]:
        """Evaluate on the evaluation threads, then commit. A remote state backend answers each decision
        after network round trips; waiting for them here would hold the loop (no other request could be
        read, validated or answered meanwhile) and serialise every decision behind the slowest answer.
        Copies of the event arriving meanwhile wait for this one's result."""
        import asyncio

        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._pending[key] = done
        try:
            decision, shadows = await loop.run_in_executor(self._eval_pool, self._evaluate, event_type, prepared)
            results = await self.writer.submit_async(self._items(prepared, decision, shadows))
            done.set_result(results)
            return results, decision, shadows
        except BaseException as exc:
            done.set_exception(exc)
            done.exception()  # retrieved: nobody may be waiting for it
            raise
        finally:
            self._pending.pop(key, None)

    def _prepare(self, event_type: str, payload: Any) -> Any:
        self.engine.policy(event_type)  # unknown event type → 404 before validation
        return prepare_event(event_type, payload, self.pseudonymizer)

    def _existing(self, event_type: str, event_id: str) -> Decision | None:
        if not self.store.has_decision_for_event(event_type, event_id):
            return None
        existing = self.store.get_decision_by_event(event_type, event_id)
        if existing is not None:
            self.metrics.replays.labels(event_type).inc()
        return existing

    def _evaluate(self, event_type: str, prepared: Any) -> tuple[Decision, list[Decision]]:
        # one event stamped far in the future would move every window's horizon: count it at the
        # server's clock (+ allowed skew) and keep its own time on the decision
        state_ts = min(prepared.timestamp, time.time() + self.settings.max_clock_skew)
        try:
            decision, shadows = self.engine.decide(event_type, prepared.data, event_id=prepared.event_id,
                                                   timestamp=state_ts)
        except BackendError:
            self.metrics.state_errors.inc()
            raise
        for d in (decision, *shadows):
            d.event_time = prepared.timestamp
        return decision, shadows

    @staticmethod
    def _items(prepared: Any, decision: Decision, shadows: list[Decision]) -> list[tuple[Decision, dict[str, Any]]]:
        return [(decision, prepared.data), *((s, prepared.data) for s in shadows)]

    def _account(self, event_type: str, decision: Decision, shadows: list[Decision], stored: Decision,
                 t0: float) -> tuple[Decision, bool]:
        replayed = stored.decision_id != decision.decision_id
        m, child = self.metrics, self._metric_child
        if not replayed:
            for s in shadows:
                child(m.shadow, s.policy, str(s.outcome == decision.outcome).lower()).inc()
            child(m.decisions, event_type, decision.outcome).inc()
            for lab in decision.labels:
                child(m.labels, event_type, lab).inc()
            child(m.latency, event_type).observe(decision.latency_ms / 1000)
        child(m.request_latency, event_type).observe(time.perf_counter() - t0)
        return stored, replayed

    API_KEY_CACHE_SECONDS = 5.0

    def cached_api_key(self, raw: str) -> str | None:
        """The key's name if it was verified in the last :data:`API_KEY_CACHE_SECONDS`, else ``None``.

        Only successful verifications are cached (a revoked key stops working within that time); the cache
        is keyed by a hash of the key, never the key itself.
        """
        hit = self._key_cache.get(hashlib.sha256(raw.encode()).digest())
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def verify_api_key(self, raw: str) -> str | None:
        """Check a key against the store (hashed there) and remember a success briefly."""
        name = self.store.verify_api_key(raw)
        if name is not None:
            if len(self._key_cache) > 10_000:
                self._key_cache.clear()
            self._key_cache[hashlib.sha256(raw.encode()).digest()] = (name, time.monotonic() + self.API_KEY_CACHE_SECONDS)
        return name

    def _metric_child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached (prometheus_client's lookup costs more than the increment)."""
        key = (id(metric), labels)
        c = self._metric_children.get(key)
        if c is None:
            if len(self._metric_children) > 10_000:  # label values come from policies: bounded, but be safe
                self._metric_children.clear()
            c = self._metric_children[key] = metric.labels(*labels)
        return c

    # -- background upkeep ---------------------------------------------------------------------
    def start_background(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="fsbrain-upkeep", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        period = max(0.1, min(self.settings.list_refresh_seconds, self.settings.policy_reload_seconds or 1e9))
        last_expire = time.time()
        while not self._stop.wait(period):
            try:
                if self.settings.policy_reload_seconds:
                    self.reload_if_changed()
                self.refresh_lists()
                if time.time() - last_expire > 60:
                    self.engine.state.expire(time.time())
                    last_expire = time.time()
                    if self.freeze_gc:
                        # move what survived (mostly window state) out of the collector's sight: a full
                        # collection then walks only new objects, so it cannot stall requests for long as
                        # the state grows (state holds no reference cycles; plain refcounting frees it)
                        import gc

                        gc.freeze()
            except Exception:  # keep serving; the failure is logged with its traceback
                log.exception("background upkeep failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._eval_pool is not None:
            self._eval_pool.shutdown(wait=True)
        self.writer.close()
        self.engine.state.close()
        self.store.close()


def _mtime(path: Path | str) -> float:
    try:
        return Path(path).stat().st_mtime_ns / 1e9
    except OSError:
        return -1.0
