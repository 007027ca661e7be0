"""Per-aggregate window state for the in-process backend (private: use :class:`MemoryStateBackend`).

Each feature namespace is a :class:`Space` holding ``entity -> state``, where a state is a small list::

    [h, mn, total, buckets, (count for mean)]

``h`` is the newest bucket that took an observation (the ``H`` of :mod:`fsbrain.state.base`), ``mn`` the
oldest bucket kept, ``buckets`` maps bucket index to that bucket's aggregate, and ``total`` is the
aggregate of *all* kept buckets, maintained incrementally (river's update/revert idea). Most entities
only ever touch one bucket: their ``buckets`` is ``None`` (the one bucket ``h`` holds ``total``) until a
second bucket appears, which saves a dict per entity and per feature.

* count, sum: an int (sum in fixed-point units); reverted by subtraction when a bucket leaves.
* mean: units in ``total`` and the observation count in slot 4.
* min, max: the extreme of all kept buckets, or ``None`` when a leaving bucket held it (recomputed lazily).
* distinct: ``value -> number of kept buckets holding it``; ``len()`` is the distinct count.

In the common case (event in the entity's newest bucket) the window value is ``total``, O(1); a read in
the past of the entity (late event, ``get`` at an earlier ``as_of``) folds the buckets in range instead.
"""

from __future__ import annotations

from typing import Any

from fsbrain.state.base import VALUE_SCALE, WindowSpec, from_units, mean_of, to_units

H, MN, TOT, BK, CNT = 0, 1, 2, 3, 4
INF = float("inf")


class Space:
    """All entities of one feature namespace (see :func:`fsbrain.state.base.state_namespace`)."""

    __slots__ = ("spec", "bucket", "n", "data")
    empty: Any = 0

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.bucket = float(spec.bucket)
        self.n = spec.n_buckets
        self.data: dict[Any, list[Any]] = {}

    # -- per-aggregate hooks ---------------------------------------------------------------------
    def encode(self, value: Any) -> Any:
        return value

    def new(self, b: int, x: Any) -> list[Any]:
        return [b, b, x, None]

    def one(self, st: list[Any]) -> dict[int, Any]:
        """The bucket dict of a single-bucket state."""
        return {st[H]: st[TOT]}

    def mat(self, st: list[Any]) -> dict[int, Any]:
        """The state's bucket dict, materialised from a single-bucket state when needed."""
        bk = st[BK]
        if bk is None:
            bk = st[BK] = self.one(st)
        return bk

    def add(self, st: list[Any], b: int, x: Any) -> None:
        bk = st[BK]
        bk[b] = bk.get(b, 0) + x
        st[TOT] += x

    def drop(self, st: list[Any], lo: int) -> int:
        bk = st[BK]
        dead = [k for k in bk if k <= lo]
        st[TOT] -= sum([bk.pop(k) for k in dead])
        return len(dead)

    def full(self, st: list[Any]) -> Any:
        return st[TOT]

    def fold(self, st: list[Any], lo: int, hi: int) -> Any:
        return sum([v for k, v in st[BK].items() if lo < k <= hi])

    # -- shared logic ----------------------------------------------------------------------------
    def prune(self, st: list[Any], lo: int) -> int:
        """Drop buckets ``<= lo``; return how many went."""
        if st[MN] > lo:
            return 0
        self.mat(st)
        gone = self.drop(st, lo)
        bk = st[BK]
        st[MN] = min(bk) if bk else INF
        return gone

    def observe(self, key: Any, b: int, x: Any, hf: int | None) -> list[Any] | None:
        """Add encoded ``x`` at bucket ``b``; ``hf`` is ``b(W)`` when the call is late, else ``None``."""
        data = self.data
        st = data.get(key)
        if st is None:
            if hf is not None and b <= hf - self.n:
                return None
            st = data[key] = self.new(b, x)
            return st
        self.mat(st)
        h = st[H]
        heff = h if hf is None or hf <= h else hf
        if b == h and heff == h:
            self.add(st, b, x)
            return st
        lo = (b if b > heff else heff) - self.n
        self.prune(st, lo)
        if b > lo:
            self.add(st, b, x)
            if b > h:
                st[H] = b
            if b < st[MN]:
                st[MN] = b
        elif not st[BK]:
            del data[key]
            return None
        return st

    def read(self, st: list[Any] | None, bt: int, hf: int | None) -> Any:
        """Window value of ``st`` read at bucket ``bt`` (``hf`` as in :meth:`observe`)."""
        if st is None:
            return self.empty
        h = st[H]
        heff = h if hf is None or hf <= h else hf
        lo = (bt if bt > heff else heff) - self.n
        if h <= bt and st[MN] > lo:
            return self.full(st)
        if lo >= bt or not self.mat(st):
            return self.empty
        return self.fold(st, lo, bt)

    def ug(self, key: Any, b: int, value: Any, hf: int | None) -> Any:
        """Observe raw ``value`` at bucket ``b`` and read at ``b`` (subclasses inline the common case)."""
        x = self.encode(value)
        st = self.data.get(key) if x is None else self.observe(key, b, x, hf)
        return self.read(st, b, hf)

    def advance(self, st: list[Any], b: int) -> None:
        """Move an entity's newest bucket forward to ``b`` (not late), dropping what leaves the window."""
        self.mat(st)
        lo = b - self.n
        if st[MN] <= lo:
            self.prune(st, lo)
        st[H] = b
        if st[MN] > b:
            st[MN] = b

    def sweep(self, keys: list[Any], bw: int) -> int:
        """Delete the entities among ``keys`` whose every bucket is at or below ``bw - n``."""
        data, lim, gone = self.data, bw - self.n, 0
        for key in keys:
            st = data.get(key)
            if st is not None and st[H] <= lim:
                del data[key]
                gone += 1
        return gone

    def expire(self, keys: list[Any], bw: int) -> int:
        """Prune ``keys`` against watermark bucket ``bw``; return the buckets freed."""
        data, n, freed = self.data, self.n, 0
        for key in keys:
            st = data.get(key)
            if st is None:
                continue
            h = st[H]
            freed += self.prune(st, (h if h > bw else bw) - n)
            if st[BK] == {}:
                del data[key]
        return freed


class CountSpace(Space):
    __slots__ = ()

    def encode(self, value: Any) -> Any:
        return 1

    def ug(self, key: Any, b: int, value: Any, hf: int | None) -> Any:
        if hf is None:
            st = self.data.get(key)
            if st is None:
                self.data[key] = [b, b, 1, None]
                return 1
            h = st[H]
            if b == h:
                bk = st[BK]
                if bk is not None:
                    bk[b] += 1
                st[TOT] += 1
                return st[TOT]
            if b > h:
                if st[BK] is None and h <= b - self.n:  # the one old bucket leaves: start afresh
                    st[H] = st[MN] = b
                    st[TOT] = 1
                    return 1
                self.advance(st, b)
                st[BK][b] = 1
                st[TOT] += 1
                return st[TOT]
        return Space.ug(self, key, b, value, hf)


class SumSpace(Space):
    __slots__ = ()
    empty = 0.0

    def encode(self, value: Any) -> Any:
        return None if value is None else to_units(self.spec, value)

    def ug(self, key: Any, b: int, value: Any, hf: int | None) -> Any:
        if hf is None:
            tp = type(value)
            if tp is int:
                x = value * VALUE_SCALE
            else:
                x = value * VALUE_SCALE if tp is float else None
                x = round(x) if x is not None and x - x == 0 else self.encode(value)
            if x is None:
                return self.read(self.data.get(key), b, hf)
            st = self.data.get(key)
            if st is None:
                self.data[key] = [b, b, x, None]
                return x / VALUE_SCALE
            h = st[H]
            if b == h:
                bk = st[BK]
                if bk is not None:
                    bk[b] += x
                st[TOT] += x
                return st[TOT] / VALUE_SCALE
            if b > h:
                if st[BK] is None and h <= b - self.n:
                    st[H] = st[MN] = b
                    st[TOT] = x
                    return x / VALUE_SCALE
                self.advance(st, b)
                st[BK][b] = x
                st[TOT] += x
                return st[TOT] / VALUE_SCALE
        return Space.ug(self, key, b, value, hf)

    def full(self, st: list[Any]) -> Any:
        return from_units(st[TOT])

    def fold(self, st: list[Any], lo: int, hi: int) -> Any:
        return from_units(sum([v for k, v in st[BK].items() if lo < k <= hi]))


class MeanSpace(SumSpace):
    __slots__ = ()
    empty = None

    def ug(self, key: Any, b: int, value: Any, hf: int | None) -> Any:
        if hf is None:
            tp = type(value)
            if tp is int:
                x = value * VALUE_SCALE
            else:
                x = value * VALUE_SCALE if tp is float else None
                x = round(x) if x is not None and x - x == 0 else self.encode(value)
            if x is None:
                return self.read(self.data.get(key), b, hf)
            st = self.data.get(key)
            if st is None:
                self.data[key] = [b, b, x, None, 1]
                return x / VALUE_SCALE
            h = st[H]
            if b == h and st[BK] is None:
                st[TOT] += x
                st[CNT] += 1
                return st[TOT] / (st[CNT] * VALUE_SCALE)
            if b >= h:
                if b > h:
                    if st[BK] is None and h <= b - self.n:
                        st[H] = st[MN] = b
                        st[TOT] = x
                        st[CNT] = 1
                        return x / VALUE_SCALE
                    self.advance(st, b)
                self.add(st, b, x)
                return st[TOT] / (st[CNT] * VALUE_SCALE)
        return Space.ug(self, key, b, value, hf)

    def new(self, b: int, x: Any) -> list[Any]:
        return [b, b, x, None, 1]

    def one(self, st: list[Any]) -> dict[int, Any]:
        return {st[H]: [st[TOT], st[CNT]]}

    def add(self, st: list[Any], b: int, x: Any) -> None:
        cur = st[BK].get(b)
        if cur is None:
            st[BK][b] = [x, 1]
        else:
            cur[0] += x
            cur[1] += 1
        st[TOT] += x
        st[CNT] += 1

    def drop(self, st: list[Any], lo: int) -> int:
        bk = st[BK]
        dead = [bk.pop(k) for k in [k for k in bk if k <= lo]]
        st[TOT] -= sum([u for u, _ in dead])
        st[CNT] -= sum([c for _, c in dead])
        return len(dead)

    def full(self, st: list[Any]) -> Any:
        return mean_of(st[TOT], st[CNT])

    def fold(self, st: list[Any], lo: int, hi: int) -> Any:
        live = [v for k, v in st[BK].items() if lo < k <= hi]
        return mean_of(sum([u for u, _ in live]), sum([c for _, c in live]))
