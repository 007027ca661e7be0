"""Windowed entity features and the state-backend interface.

A *windowed feature* is an aggregate (count, distinct count, sum, min, max, mean) of one event field over a
sliding time window, kept per entity key ("distinct lending platforms per ID number in 7 days", "failed
logins per IP in 10 minutes", "packets per destination in 10 seconds").

Semantics (identical in every backend, and what the oracle tests check):

* Time is cut into buckets of ``spec.bucket`` seconds; bucket index ``b(t) = floor(t / bucket)``.
* The value at time ``t`` aggregates every observation whose bucket lies in
  ``(b(t) - spec.n_buckets, b(t)]``; so the window covers ``window`` seconds, rounded to whole buckets.
* Observations are added to the bucket of their own timestamp, so late (out-of-order) events count
  where they belong. Reading *as of* a time evicts what has expired by then, whatever arrived since.
* An empty window reads as 0 for count, distinct and sum, and ``None`` for min, max and mean.

Backends keep one small aggregate per (feature, entity, bucket) — never raw events — so memory is bounded
by entities × buckets, and everything older than the window is dropped.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

AGGREGATES = ("count", "distinct", "sum", "min", "max", "mean")
MIN_WINDOW = 1.0
MAX_WINDOW = 400 * 86400.0
DEFAULT_BUCKETS = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowSpec:
    """One windowed aggregate.

    Args:
        name: feature name, unique within a policy (also the storage namespace).
        agg: one of :data:`AGGREGATES`.
        window: window length in seconds.
        bucket: bucket width in seconds (default ``window / 60``, at least 1 s).

    >>> spec = WindowSpec(name="ip_fail_10m", agg="count", window=600)
    >>> spec.bucket, spec.n_buckets
    (10.0, 60)
    """

    name: str
    agg: str
    window: float
    bucket: float = 0.0

    def __post_init__(self) -> None:
        from fsbrain.core.errors import InputError

        if self.agg not in AGGREGATES:
            raise InputError(f"feature {self.name!r}: unknown aggregate {self.agg!r} (one of {AGGREGATES})")
        if not (MIN_WINDOW <= self.window <= MAX_WINDOW):
            raise InputError(f"feature {self.name!r}: window {self.window}s outside [{MIN_WINDOW}, {MAX_WINDOW}]")
        if not self.bucket:
            object.__setattr__(self, "bucket", max(1.0, float(self.window) / DEFAULT_BUCKETS))
        if self.bucket <= 0 or self.bucket > self.window:
            raise InputError(f"feature {self.name!r}: bucket {self.bucket}s must be in (0, window]")

    @property
    def n_buckets(self) -> int:
        return max(1, math.ceil(self.window / self.bucket - 1e-9))

    def bucket_of(self, ts: float) -> int:
        return math.floor(ts / self.bucket)

    def empty_value(self) -> float | int | None:
        return 0 if self.agg in ("count", "distinct", "sum") else None


@dataclass(frozen=True, slots=True)
class WindowOp:
    """Observe ``value`` for entity ``key`` under ``spec`` (for ``count`` the value is ignored)."""

    spec: WindowSpec
    key: str
    value: Any = 1


@dataclass(frozen=True, slots=True)
class WindowRead:
    """Read the current value of ``spec`` for entity ``key``."""

    spec: WindowSpec
    key: str


class StateBackend(ABC):
    """Where windowed features live. Three operations: update, get, expire.

    ``update_get`` (observe then read, in one round trip) has a default built from the two; backends
    override it when they can do better (the Redis backend uses one pipelined script call).
    """

    name = "abstract"

    @abstractmethod
    def update(self, ops: Sequence[WindowOp], ts: float) -> None:
        """Add each observation at event time ``ts``."""

    @abstractmethod
    def get(self, reads: Sequence[WindowRead], as_of: float) -> list[Any]:
        """Values of each read as of time ``as_of`` (see the module docstring for the semantics)."""

    @abstractmethod
    def expire(self, now: float) -> int:
        """Drop every bucket that has left its window at ``now``; return how many entries were freed."""

    def update_get(self, ops: Sequence[WindowOp], ts: float) -> list[Any]:
        """Observe ``ops`` at ``ts`` and return each op's window value including the new observation."""
        self.update(ops, ts)
        return self.get([WindowRead(op.spec, op.key) for op in ops], ts)

    def clear(self) -> None:
        """Forget everything (tests, backtests)."""

    def close(self) -> None:
        """Release connections."""

    def stats(self) -> dict[str, Any]:
        """Backend-specific sizes for /metrics and memory reports."""
        return {}


def combine(agg: str, states: list[Any]) -> Any:
    """Fold per-bucket states of one aggregate into a value (shared helper for backends and oracles)."""
    if agg == "count" or agg == "sum":
        return sum(states) if states else 0
    if agg == "distinct":
        seen: set[Any] = set()
        for s in states:
            seen |= s
        return len(seen)
    if agg == "min":
        return min(states) if states else None
    if agg == "max":
        return max(states) if states else None
    if agg == "mean":
        total = sum(s[0] for s in states)
        n = sum(s[1] for s in states)
        return total / n if n else None
    raise ValueError(agg)
