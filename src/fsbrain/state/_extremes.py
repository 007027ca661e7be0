"""Window state for min, max and distinct in the in-process backend (see :mod:`fsbrain.state._windows`).

These aggregates cannot be reverted by subtraction: min and max keep the extreme of all kept buckets
and recompute it lazily when the bucket holding it leaves; distinct keeps, per value, how many kept
buckets hold it, so the distinct count is the size of that map and leaving buckets decrement it.
"""

from __future__ import annotations

from typing import Any

from fsbrain.state._windows import BK, MN, TOT, H, Space
from fsbrain.state.base import to_float


class MinSpace(Space):
    __slots__ = ()
    empty = None
    pick = staticmethod(min)

    def encode(self, value: Any) -> Any:
        return None if value is None else to_float(self.spec, value)

    def better(self, x: float, y: float) -> bool:
        return x < y

    def ug(self, key: Any, b: int, value: Any, hf: int | None) -> Any:
        if hf is None:
            x = value if type(value) is float and value - value == 0 else self.encode(value)
            if x is None:
                return self.read(self.data.get(key), b, hf)
            st = self.data.get(key)
            if st is None:
                self.data[key] = [b, b, x, None]
                return x
            h = st[H]
            if b == h and st[BK] is None:
                if self.better(x, st[TOT]):
                    st[TOT] = x
                return st[TOT]
            if b >= h:
                if b > h:
                    if st[BK] is None and h <= b - self.n:
                        st[H] = st[MN] = b
                        st[TOT] = x
                        return x
                    self.advance(st, b)
                self.add(st, b, x)
                return self.full(st)
        return Space.ug(self, key, b, value, hf)

    def add(self, st: list[Any], b: int, x: Any) -> None:
        bk = st[BK]
        cur = bk.get(b)
        if cur is None or self.better(x, cur):
            bk[b] = x
            tot = st[TOT]
            if tot is not None and self.better(x, tot):
                st[TOT] = x

    def drop(self, st: list[Any], lo: int) -> int:
        bk = st[BK]
        dead = [bk.pop(k) for k in [k for k in bk if k <= lo]]
        if st[TOT] in dead:
            st[TOT] = None
        return len(dead)

    def full(self, st: list[Any]) -> Any:
        tot = st[TOT]
        if tot is None and st[BK]:
            tot = st[TOT] = self.pick(st[BK].values())
        return tot

    def fold(self, st: list[Any], lo: int, hi: int) -> Any:
        live = [v for k, v in st[BK].items() if lo < k <= hi]
        return self.pick(live) if live else None


class MaxSpace(MinSpace):
    __slots__ = ()
    pick = staticmethod(max)

    def better(self, x: float, y: float) -> bool:
        return x > y


class DistinctSpace(Space):
    """Distinct values. A single-bucket state holding one value keeps that value itself in ``total`` (a
    str) instead of a one-entry map: most entities are seen once, and this halves their memory. The map
    appears with the second distinct value, or when the state grows a second bucket."""

    __slots__ = ()

    def encode(self, value: Any) -> Any:
        if value is None or type(value) is str:
            return value
        return str(value)

    def new(self, b: int, x: Any) -> list[Any]:
        return [b, b, x, None]

    def one(self, st: list[Any]) -> dict[int, Any]:
        tot = st[TOT]
        if type(tot) is str:
            st[TOT] = {tot: 1}
            return {st[H]: {tot}}
        return {st[H]: set(tot)}

    def ug(self, key: Any, b: int, value: Any, hf: int | None) -> Any:
        if hf is None:
            x = value if type(value) is str else self.encode(value)
            if x is None:
                return self.read(self.data.get(key), b, hf)
            st = self.data.get(key)
            if st is None:
                self.data[key] = [b, b, x, None]
                return 1
            h = st[H]
            if b == h and st[BK] is None:
                cnt = st[TOT]
                if type(cnt) is str:
                    if cnt == x:
                        return 1
                    st[TOT] = {cnt: 1, x: 1}
                    return 2
                if x not in cnt:
                    cnt[x] = 1
                return len(cnt)
            if b >= h:
                if b > h:
                    if st[BK] is None and h <= b - self.n:
                        st[H] = st[MN] = b
                        st[TOT] = x
                        return 1
                    self.advance(st, b)
                self.add(st, b, x)
                return len(st[TOT])
        return Space.ug(self, key, b, value, hf)

    def add(self, st: list[Any], b: int, x: Any) -> None:
        bk = st[BK]
        s = bk.get(b)
        if s is None:
            bk[b] = {x}
        elif x in s:
            return
        else:
            s.add(x)
        cnt = st[TOT]
        cnt[x] = cnt.get(x, 0) + 1

    def drop(self, st: list[Any], lo: int) -> int:
        bk, cnt = st[BK], st[TOT]
        dead = [bk.pop(k) for k in [k for k in bk if k <= lo]]
        for s in dead:
            for v in s:
                c = cnt[v] - 1
                if c:
                    cnt[v] = c
                else:
                    del cnt[v]
        return len(dead)

    def full(self, st: list[Any]) -> Any:
        tot = st[TOT]
        return 1 if type(tot) is str else len(tot)

    def fold(self, st: list[Any], lo: int, hi: int) -> Any:
        live = [s for k, s in st[BK].items() if lo < k <= hi]
        return len(set().union(*live)) if live else 0
