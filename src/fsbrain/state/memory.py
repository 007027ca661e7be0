"""In-process state backend (the embedded default).

Window state per feature namespace and entity lives in plain dicts and lists (see
:mod:`fsbrain.state._windows`); each update and read is O(1) in the common case. Memory stays bounded in
three ways: an entity's buckets older than its window are dropped as it advances, an incremental sweep
deletes entities whose whole window has passed the watermark (every ``sweep_every`` ops it looks at
``sweep_chunk`` entities), and :meth:`MemoryStateBackend.expire` prunes everything at once.

The backend is thread-safe: the API's upkeep thread may call ``expire`` while requests update state; a
long expire takes the lock in chunks so decisions are never blocked for long.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fsbrain.state._extremes import DistinctSpace, MaxSpace, MinSpace
from fsbrain.state._windows import CountSpace, MeanSpace, Space, SumSpace
from fsbrain.state.base import (
    DEFAULT_ALLOWED_LATENESS,
    StateBackend,
    WindowOp,
    WindowRead,
    WindowSpec,
    config_error,
    state_namespace,
)

_floor = math.floor
SPACE_FOR_AGG: dict[str, type[Space]] = {
    "count": CountSpace,
    "sum": SumSpace,
    "mean": MeanSpace,
    "min": MinSpace,
    "max": MaxSpace,
    "distinct": DistinctSpace,
}
_EXPIRE_CHUNK = 4096
# aggregate kind codes of the compiled hot path (fsbrain._speedups)
KIND_FOR_SPACE: dict[type[Space], int] = {
    CountSpace: 0, SumSpace: 1, MeanSpace: 2, MinSpace: 3, MaxSpace: 4, DistinctSpace: 5}


class MemoryStateBackendConfig(BaseModel):
    """Configuration of the in-process backend."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["memory"] = "memory"
    """Selects this backend."""
    allowed_lateness: float = Field(default=DEFAULT_ALLOWED_LATENESS, ge=0, allow_inf_nan=False)
    """Seconds an event may lag the newest one and still be read over its full window."""
    sweep_every: int = Field(default=8192, ge=0)
    """Ops between two incremental sweep steps (0: no automatic sweep; call ``expire``)."""
    sweep_chunk: int = Field(default=512, ge=1)
    """Entities examined per sweep step."""


def resident_bytes() -> int:
    """Resident set size of this process in bytes (Linux ``/proc/self/statm``), 0 where unknown."""
    try:
        with open("/proc/self/statm") as fh:
            import os

            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class MemoryStateBackend(StateBackend):
    """Windowed features in process memory.

    Args:
        allowed_lateness: see :class:`MemoryStateBackendConfig` (must match the Redis backend's setting
            for the two to agree on late events).
        sweep_every: ops between incremental sweep steps; 0 turns the automatic sweep off.
        sweep_chunk: entities examined per sweep step.
        speedups: use the compiled hot path (:mod:`fsbrain.speedups`); ``None`` follows
            ``FSBRAIN_SPEEDUPS``. Results are identical either way.

    >>> from fsbrain.state.base import WindowSpec, WindowOp
    >>> b = MemoryStateBackend()
    >>> s = WindowSpec(name="dev_ids_1h", agg="distinct", window=3600)
    >>> b.update_get([WindowOp(s, "dev1", "id-a")], 100.0)
    [1]
    >>> b.update_get([WindowOp(s, "dev1", "id-b")], 200.0)
    [2]
    >>> b.get([WindowRead(s, "dev1")], 100.0 + 3600 + 60)
    [1]
    """

    name = "memory"

    def __init__(
        self,
        *,
        allowed_lateness: float = DEFAULT_ALLOWED_LATENESS,
        sweep_every: int = 8192,
        sweep_chunk: int = 512,
        speedups: bool | None = None,
    ) -> None:
        try:
            cfg = MemoryStateBackendConfig(
                allowed_lateness=allowed_lateness, sweep_every=sweep_every, sweep_chunk=sweep_chunk
            )
        except ValidationError as exc:
            raise config_error("memory", exc) from exc
        self.allowed_lateness = cfg.allowed_lateness
        self.sweep_every = cfg.sweep_every
        self.sweep_chunk = cfg.sweep_chunk
        self._spaces: dict[str, Space] = {}
        self._by_id: dict[int, tuple[WindowSpec, Space, Any, float]] = {}
        self._clock: float | None = None
        self._lock = threading.Lock()
        self._since_sweep = 0
        self._todo: list[tuple[Space, list[Any]]] = []
        from fsbrain.speedups import load

        fast = load(speedups)
        self._hot = fast.apply_hot if fast is not None else None
        self._hot_get = fast.get_hot if fast is not None else None

    @classmethod
    def from_config(cls, config: MemoryStateBackendConfig) -> MemoryStateBackend:
        """Build from a validated config."""
        return cls(
            allowed_lateness=config.allowed_lateness,
            sweep_every=config.sweep_every,
            sweep_chunk=config.sweep_chunk,
        )

    # -- helpers ---------------------------------------------------------------------------------
    def _entry(self, spec: WindowSpec) -> tuple[WindowSpec, Space, Any, float, int, int]:
        """``(spec, space, space.ug, bucket width)``, cached by ``id(spec)``."""
        hit = self._by_id.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit
        ns = state_namespace(spec)
        sp = self._spaces.get(ns)
        if sp is None:
            sp = self._spaces[ns] = SPACE_FOR_AGG[spec.agg](spec)
        if len(self._by_id) > 65536:
            self._by_id.clear()
        # (spec, space, space.ug, bucket width, kind code, buckets); keeps the spec alive: no id reuse
        hit = self._by_id[id(spec)] = (spec, sp, sp.ug, sp.bucket, KIND_FOR_SPACE.get(type(sp), -1), sp.n)
        return hit

    def _space(self, spec: WindowSpec) -> Space:
        return self._entry(spec)[1]

    def _watermark(self) -> float | None:
        return None if self._clock is None else self._clock - self.allowed_lateness

    def _tick(self, ts: float) -> float | None:
        """Advance the clock to ``ts``; return the watermark when ``ts`` lies behind it (a late call)."""
        if self._clock is None or ts > self._clock:
            self._clock = ts
        w = self._clock - self.allowed_lateness
        return w if ts < w else None

    def _apply(self, ops: Sequence[WindowOp], ts: float, read: bool) -> list[Any]:
        w = self._tick(ts)
        out: list[Any] = []
        by_id, entry = self._by_id, self._entry
        if read and w is None and self._hot is not None:  # the hot path, compiled
            out = self._hot(by_id, entry, ops, ts)
        elif read and w is None:  # the hot path: an event that is not late
            append = out.append
            for op in ops:
                spec = op.spec
                hit = by_id.get(id(spec))
                if hit is None or hit[0] is not spec:
                    hit = entry(spec)
                append(hit[2](op.key, _floor(ts / hit[3]), op.value, None))
        else:
            for op in ops:
                sp = entry(op.spec)[1]
                bw = sp.bucket
                hf = None if w is None else _floor(w / bw)
                if read:
                    out.append(sp.ug(op.key, _floor(ts / bw), op.value, hf))
                else:
                    x = sp.encode(op.value)
                    if x is not None:
                        sp.observe(op.key, _floor(ts / bw), x, hf)
        if self.sweep_every:
            self._since_sweep += len(ops)
            if self._since_sweep >= self.sweep_every:
                self._since_sweep = 0
                self._sweep_step()
        return out

    def _sweep_step(self) -> int:
        w = self._watermark()
        if w is None:
            return 0
        if not self._todo:
            self._todo = [(sp, list(sp.data)) for sp in self._spaces.values() if sp.data]
            if not self._todo:
                return 0
        sp, keys = self._todo[-1]
        chunk = keys[-self.sweep_chunk :]
        del keys[-self.sweep_chunk :]
        if not keys:
            self._todo.pop()
        return sp.sweep(chunk, _floor(w / sp.bucket))

    # -- interface -------------------------------------------------------------------------------
    def update(self, ops: Sequence[WindowOp], ts: float) -> None:
        """Add each observation at event time ``ts``."""
        if ops:
            with self._lock:
                self._apply(ops, ts, False)

    def update_get(self, ops: Sequence[WindowOp], ts: float) -> list[Any]:
        """Observe each op at ``ts`` and return its window value including the observation."""
        if not ops:
            return []
        with self._lock:
            return self._apply(ops, ts, True)

    def get(self, reads: Sequence[WindowRead], as_of: float) -> list[Any]:
        """Values of each read as of ``as_of``."""
        out = []
        with self._lock:
            w = self._watermark()
            if self._hot_get is not None:
                return self._hot_get(self._by_id, self._entry, reads, as_of, w)
            for r in reads:
                sp = self._space(r.spec)
                hf = None if w is None else _floor(w / sp.bucket)
                out.append(sp.read(sp.data.get(r.key), _floor(as_of / sp.bucket), hf))
        return out

    def expire(self, now: float) -> int:
        """Prune every entity against ``min(now, clock) - allowed_lateness``; return buckets freed."""
        with self._lock:
            if self._clock is None:
                return 0
            cut = min(now, self._clock) - self.allowed_lateness
            work = [(sp, list(sp.data)) for sp in self._spaces.values()]
        freed = 0
        for sp, keys in work:
            bw = _floor(cut / sp.bucket)
            for i in range(0, len(keys), _EXPIRE_CHUNK):
                with self._lock:
                    freed += sp.expire(keys[i : i + _EXPIRE_CHUNK], bw)
        return freed

    def clear(self) -> None:
        """Forget all state and the clock."""
        with self._lock:
            self._spaces.clear()
            self._by_id.clear()
            self._todo.clear()
            self._clock = None

    def entity_count(self) -> int:
        """Number of (feature, entity) pairs currently held."""
        return sum(len(sp.data) for sp in self._spaces.values())

    def stats(self) -> dict[str, Any]:
        """Cheap sizes for /metrics: entities held, features, the clock and the process's RSS."""
        return {
            "backend": self.name,
            "entities": self.entity_count(),
            "features": len(self._spaces),
            "clock": self._clock,
            "rss_bytes": resident_bytes(),
        }
