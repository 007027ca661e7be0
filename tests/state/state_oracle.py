"""Brute-force oracle for windowed features: keeps every raw observation and recomputes from scratch.

It follows the rules written in :mod:`fsbrain.state.base` (and docs/state.md) literally, sharing no code
with the backends: clock ``T``, watermark ``W = T - lateness``, per-entity newest bucket ``H``,
``Heff = max(H, b(W))``; an observation is kept iff its bucket ``> Heff - n``; a read at ``t`` folds kept
observations with bucket in ``(max(b(t), Heff) - n, b(t)]``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

SCALE = 10_000


def _ns(spec: Any) -> tuple[Any, ...]:
    return (spec.name, spec.agg, spec.n_buckets, float(spec.bucket))


class Oracle:
    """Reference model of a state backend (update, update_get, get, expire)."""

    def __init__(self, allowed_lateness: float) -> None:
        self.lateness = allowed_lateness
        self.clock: float | None = None
        self.kept: dict[tuple[Any, ...], list[tuple[int, Any]]] = defaultdict(list)
        self.newest: dict[tuple[Any, ...], int] = {}

    def _heff(self, spec: Any, k: tuple[Any, ...]) -> float:
        h: float = self.newest.get(k, -math.inf)
        if self.clock is not None:
            h = max(h, math.floor((self.clock - self.lateness) / spec.bucket))
        return h

    @staticmethod
    def encode(agg: str, value: Any) -> Any:
        if agg == "count":
            return 1
        if value is None:
            return None
        if agg == "distinct":
            return str(value)
        if agg in ("min", "max"):
            return float(value)
        return value * SCALE if isinstance(value, int) else round(float(value) * SCALE)

    def _observe(self, op: Any, ts: float) -> None:
        spec = op.spec
        x = self.encode(spec.agg, op.value)
        if x is None:
            return
        k = (*_ns(spec), op.key)
        b = math.floor(ts / spec.bucket)
        if b > self._heff(spec, k) - spec.n_buckets:
            self.kept[k].append((b, x))
            self.newest[k] = max(self.newest.get(k, b), b)

    def value(self, spec: Any, key: Any, as_of: float) -> Any:
        k = (*_ns(spec), key)
        bt = math.floor(as_of / spec.bucket)
        lo = max(bt, self._heff(spec, k)) - spec.n_buckets
        xs = [x for b, x in self.kept.get(k, []) if lo < b <= bt]
        agg = spec.agg
        if agg == "count":
            return len(xs)
        if agg == "distinct":
            return len(set(xs))
        if agg == "sum":
            return sum(xs) / SCALE
        if agg == "mean":
            return sum(xs) / (len(xs) * SCALE) if xs else None
        if not xs:
            return None
        return min(xs) if agg == "min" else max(xs)

    def update(self, ops: list[Any], ts: float) -> None:
        if not ops:
            return
        self.clock = ts if self.clock is None else max(self.clock, ts)
        for op in ops:
            self._observe(op, ts)

    def update_get(self, ops: list[Any], ts: float) -> list[Any]:
        if not ops:
            return []
        self.clock = ts if self.clock is None else max(self.clock, ts)
        out = []
        for op in ops:
            self._observe(op, ts)
            out.append(self.value(op.spec, op.key, ts))
        return out

    def get(self, reads: list[Any], as_of: float) -> list[Any]:
        return [self.value(r.spec, r.key, as_of) for r in reads]
