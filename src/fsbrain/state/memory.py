"""In-process state backend (the embedded default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fsbrain.state.base import StateBackend, WindowOp, WindowRead, WindowSpec


class MemoryStateBackend(StateBackend):
    """Windowed features in a dict: ``(feature, key) -> {bucket: state}``.

    Per-bucket state: a number for count/sum/min/max, ``[sum, n]`` for mean, a set for distinct.
    Buckets outside the window are dropped on every touch and by :meth:`expire`.

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

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], dict[int, Any]] = {}
        self._specs: dict[str, WindowSpec] = {}

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _add(agg: str, buckets: dict[int, Any], b: int, value: Any) -> None:
        cur = buckets.get(b)
        if agg == "count":
            buckets[b] = (cur or 0) + 1
        elif agg == "sum":
            buckets[b] = (cur or 0) + value
        elif agg == "distinct":
            if cur is None:
                buckets[b] = {value}
            else:
                cur.add(value)
        elif agg == "min":
            buckets[b] = value if cur is None or value < cur else cur
        elif agg == "max":
            buckets[b] = value if cur is None or value > cur else cur
        elif agg == "mean":
            if cur is None:
                buckets[b] = [value, 1]
            else:
                cur[0] += value
                cur[1] += 1

    @staticmethod
    def _value(spec: WindowSpec, buckets: dict[int, Any] | None, now_b: int) -> Any:
        if not buckets:
            return spec.empty_value()
        lo = now_b - spec.n_buckets
        agg = spec.agg
        if agg == "count" or agg == "sum":
            return sum(v for b, v in buckets.items() if lo < b <= now_b)
        if agg == "distinct":
            sets = [v for b, v in buckets.items() if lo < b <= now_b]
            if len(sets) == 1:
                return len(sets[0])
            return len(set().union(*sets))
        states = [v for b, v in buckets.items() if lo < b <= now_b]
        if not states:
            return None
        if agg == "min":
            return min(states)
        if agg == "max":
            return max(states)
        n = sum(s[1] for s in states)
        return sum(s[0] for s in states) / n

    @staticmethod
    def _prune(spec: WindowSpec, buckets: dict[int, Any], now_b: int) -> None:
        lo = now_b - spec.n_buckets
        if len(buckets) > 1 or (buckets and next(iter(buckets)) <= lo):
            for b in [b for b in buckets if b <= lo]:
                del buckets[b]

    # -- interface -------------------------------------------------------------------------------
    def update(self, ops: Sequence[WindowOp], ts: float) -> None:
        for op in ops:
            self._observe(op, ts)

    def _observe(self, op: WindowOp, ts: float) -> dict[int, Any]:
        spec = op.spec
        self._specs[spec.name] = spec
        k = (spec.name, op.key)
        buckets = self._data.get(k)
        if buckets is None:
            buckets = self._data[k] = {}
        b = spec.bucket_of(ts)
        self._add(spec.agg, buckets, b, op.value)
        return buckets

    def get(self, reads: Sequence[WindowRead], as_of: float) -> list[Any]:
        out = []
        for r in reads:
            buckets = self._data.get((r.spec.name, r.key))
            out.append(self._value(r.spec, buckets, r.spec.bucket_of(as_of)))
        return out

    def update_get(self, ops: Sequence[WindowOp], ts: float) -> list[Any]:
        out = []
        for op in ops:
            buckets = self._observe(op, ts)
            now_b = op.spec.bucket_of(ts)
            if len(buckets) > op.spec.n_buckets:
                self._prune(op.spec, buckets, now_b)
            out.append(self._value(op.spec, buckets, now_b))
        return out

    def expire(self, now: float) -> int:
        freed = 0
        for k in list(self._data):
            spec = self._specs.get(k[0])
            if spec is None:
                continue
            buckets = self._data[k]
            before = len(buckets)
            self._prune(spec, buckets, spec.bucket_of(now))
            freed += before - len(buckets)
            if not buckets:
                del self._data[k]
        return freed

    def clear(self) -> None:
        self._data.clear()

    def stats(self) -> dict[str, Any]:
        return {"backend": self.name, "entities": len(self._data),
                "buckets": sum(len(b) for b in self._data.values())}
