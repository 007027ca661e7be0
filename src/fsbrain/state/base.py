"""Windowed entity features and the state-backend interface.

A *windowed feature* is an aggregate (count, distinct count, sum, min, max, mean) of one event field over a
sliding time window, kept per entity key ("distinct lending platforms per ID number in 7 days", "failed
logins per IP in 10 minutes", "packets per destination in 10 seconds").

Semantics (identical in every backend, and what the oracle tests check; docs/state.md has the long form):

* Time is cut into buckets of ``spec.bucket`` seconds; bucket index ``b(t) = floor(t / bucket)``; a window
  spans ``n = spec.n_buckets`` buckets.
* The backend keeps a clock ``T``: the largest ``ts`` of any ``update``/``update_get`` call. Its
  *watermark* is ``W = T - allowed_lateness``. For each (feature, entity) let ``H`` be the largest bucket
  that ever took an observation, and ``Heff = max(H, b(W))``.
* An observation at ``ts`` goes to bucket ``b(ts)`` (late events count where they belong) if
  ``b(ts) > Heff - n``; an event that old is *too late* and is dropped.
* The value read at time ``t`` aggregates the kept observations whose bucket lies in
  ``(max(b(t), Heff) - n, b(t)]``: a window of ``window`` seconds rounded to whole buckets, never
  reaching further back than the entity's (or the watermark's) own window.
* ``update_get`` reads each op right after applying it, at ``b(ts)``. Reads never change state.
* ``expire(now)`` and automatic sweeps only free what the rules above already make invisible, so they
  never change a value (they prune by ``min(now, T) - allowed_lateness``).
* Values: count and distinct are ``int``; sum, min, max and mean are ``float``. Sum and mean add values
  in fixed point (``VALUE_SCALE`` units, 1e-4), so every backend returns bit-identical results whatever
  the order of addition. Distinct compares values by their ``str()``. Count ignores the value; for the
  other aggregates a ``None`` value means "no observation" and the op only reads.
* An empty window reads as 0 for count and distinct, 0.0 for sum, and ``None`` for min, max and mean.

Backends keep one small aggregate per (feature, entity, bucket), never raw events, so memory is bounded by
entities x buckets, and everything older than the window is dropped.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

AGGREGATES = ("count", "distinct", "sum", "min", "max", "mean")
AGG_CODES = {"count": "c", "distinct": "d", "sum": "s", "min": "n", "max": "x", "mean": "a"}
MIN_WINDOW = 1.0
MAX_WINDOW = 400 * 86400.0
DEFAULT_BUCKETS = 60
DEFAULT_ALLOWED_LATENESS = 60.0
VALUE_SCALE = 10_000


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
            raise InputError(
                f"feature {self.name!r}: window {self.window}s outside [{MIN_WINDOW}, {MAX_WINDOW}]"
            )
        if not self.bucket:
            object.__setattr__(self, "bucket", max(1.0, float(self.window) / DEFAULT_BUCKETS))
        if self.bucket <= 0 or self.bucket > self.window:
            raise InputError(f"feature {self.name!r}: bucket {self.bucket}s must be in (0, window]")

    @property
    def n_buckets(self) -> int:
        """How many buckets one window spans."""
        return max(1, math.ceil(self.window / self.bucket - 1e-9))

    def bucket_of(self, ts: float) -> int:
        """Bucket index of time ``ts``: ``floor(ts / bucket)``."""
        return math.floor(ts / self.bucket)

    def empty_value(self) -> float | int | None:
        """What an empty window reads as."""
        if self.agg in ("count", "distinct"):
            return 0
        return 0.0 if self.agg == "sum" else None


class WindowOp(NamedTuple):
    """Observe ``value`` for entity ``key`` under ``spec`` (for ``count`` the value is ignored).

    A named tuple: the engine builds dozens per decision, and tuples are the cheapest immutable record.
    """

    spec: WindowSpec
    key: str
    value: Any = 1


class WindowRead(NamedTuple):
    """Read the current value of ``spec`` for entity ``key``."""

    spec: WindowSpec
    key: str


class StateBackend(ABC):
    """Where windowed features live. Three operations: update, get, expire.

    ``update_get`` (observe then read, in one round trip) has a default built from the two; backends
    override it when they can do better (the Redis backend uses one script call).
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
        """Free every bucket that has left its window at ``now``; return how many buckets were freed."""

    def update_get(self, ops: Sequence[WindowOp], ts: float) -> list[Any]:
        """Observe ``ops`` at ``ts`` and return each op's window value including the new observation."""
        self.update(ops, ts)
        return self.get([WindowRead(op.spec, op.key) for op in ops], ts)

    def update_get_read(self, ops: Sequence[WindowOp], reads: Sequence[WindowRead], ts: float,
                        ) -> tuple[list[Any], list[Any]]:
        """``update_get(ops, ts)``, then ``get(reads, ts)``: one event's observations and its read-only windows
        (backends that talk to a server override it to do both in one round trip)."""
        return (self.update_get(ops, ts) if ops else []), (self.get(reads, ts) if reads else [])

    @abstractmethod
    def clear(self) -> None:
        """Forget everything (tests, backtests)."""

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        """Release connections."""

    def stats(self) -> dict[str, Any]:
        """Backend-specific sizes for /metrics and memory reports."""
        return {}


# -- shared helpers: the canonical encodings every backend uses ---------------------------------------
def state_namespace(spec: WindowSpec) -> str:
    """Storage namespace of a spec: ``quote(name)|<agg code><n_buckets>b<bucket>``.

    Two specs share state exactly when name, aggregate, bucket width and bucket count agree, so a policy
    that changes a feature's meaning never reads state written under the old meaning.

    >>> state_namespace(WindowSpec(name="ip:fail", agg="count", window=600))
    'ip%3Afail|c60b10.0'
    """
    return f"{quote(spec.name, safe='')}|{AGG_CODES[spec.agg]}{spec.n_buckets}b{float(spec.bucket)!r}"


def config_error(kind: str, exc: Any) -> Exception:
    """An ``InputError`` naming every invalid field of a backend config (from a pydantic error)."""
    from fsbrain.core.errors import InputError

    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
    )
    return InputError(f"invalid {kind} state backend configuration: {problems}")


def _bad_value(spec: WindowSpec, value: Any) -> Exception:
    from fsbrain.core.errors import InputError

    return InputError(f"feature {spec.name!r} ({spec.agg}): value {value!r} is not a finite number")


def to_units(spec: WindowSpec, value: Any) -> int:
    """Fixed-point units (``round(value * VALUE_SCALE)``) of a sum/mean observation.

    >>> to_units(WindowSpec(name="amt", agg="sum", window=60), 12.5)
    125000
    """
    if type(value) is int:
        return value * VALUE_SCALE
    if isinstance(value, str | bytes) or value is None:
        raise _bad_value(spec, value)
    try:
        return round(float(value) * VALUE_SCALE)
    except (TypeError, ValueError, OverflowError):
        raise _bad_value(spec, value) from None


def to_float(spec: WindowSpec, value: Any) -> float:
    """A min/max observation as a finite float."""
    if isinstance(value, str | bytes) or value is None:
        raise _bad_value(spec, value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise _bad_value(spec, value) from None
    if not math.isfinite(f):
        raise _bad_value(spec, value)
    return f


def from_units(units: int) -> float:
    """A sum read back from fixed-point units (correctly rounded)."""
    return units / VALUE_SCALE


def mean_of(units: int, n: int) -> float | None:
    """A mean from fixed-point units and an observation count (``None`` when empty)."""
    return units / (n * VALUE_SCALE) if n else None
