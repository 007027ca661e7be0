"""Columnar windowed features: every event's feature values over a whole time-ordered history at once.

The streaming path (:meth:`Engine._features` on a :class:`~fsbrain.state.memory.MemoryStateBackend`) is
the reference; this module computes the same values with numpy, feature by feature, for a backtest.

Why it is exact (docs/state.md has the window contract). When events arrive in time order (each
timestamp at least the one before), no event is late: the clock is the event's own time, the watermark
lies behind it, and an entity's newest bucket ``H`` is never ahead of the event's bucket ``b``. So every
observation is kept, and the window read for event ``i`` (after its own observation, if it observes) is
exactly the observations ``j <= i`` (in file order) with the same entity key and ``b(ts_j) > b(ts_i) - n``.
Sweeps and expiry never change a value. Per feature, the events are sorted by (entity, order); the window
of each event is then a contiguous run ``[s(i), i]`` of its entity's run, found with ``searchsorted``, and

* count, sum, mean: differences of prefix sums (sum and mean in the same fixed-point integer units as
  the state, so the floats are the same correctly rounded quotients);
* distinct: an observation ``p`` of value ``v`` counts for the reads ``e`` with ``p <= e < next(p)`` (the
  next observation of ``v`` on that entity) and ``s(e) <= p``, an interval of ``e``: a difference array;
* min, max: a sparse table (range minimum query) over the run.

A list key fans out to one row per element (as the engine does), and an event takes the largest value
over its keys (``merge_max``); an event whose key is missing reads the empty value.

Anything outside this (events out of order, a value the state would refuse, sums beyond 2^53 units) makes
:class:`Unsupported` carry the reason, and the caller falls back to the streaming path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, compress, repeat
from operator import is_, is_not
from typing import Any

import numpy as np

from fsbrain.engine.policy import MAX_FANOUT, CompiledFeature
from fsbrain.state.base import VALUE_SCALE

EXACT = 2**53  # integers up to here convert to float64 exactly


class Unsupported(Exception):  # noqa: N818 - a reason, not an error
    """The columnar path cannot reproduce the streaming result here; the message says why."""


@dataclass
class KeyColumn:
    """The entity keys of one key index over a run of events: one row per (event, key) (a list key fans
    out to several rows), ``ev`` the event's index, ``code`` the key's index in the run's ``strings``."""

    ev: np.ndarray
    code: np.ndarray
    fan: bool


@dataclass
class FeatureInputs:
    """What the features need of a run of events, extracted per event by the engine's own rules.

    ``keys[ki]``: the entity keys of key index ``ki`` (:class:`KeyColumn`). Per feature row ``r`` (the
    plan's rows, in order): ``obs[r]`` one byte per event (1: the event observes), ``nums[r]`` the
    observed numbers (fixed-point units for sum and mean, floats for min and max; ``None`` for count and
    distinct). ``dvals[vi]``: for a value index read by a distinct feature, each event's value as a code
    into ``strings`` (where the event has none: any code, it does not observe). ``strings``: the distinct
    keys and values of the run (one code space for all columns). ``errors``: event index → the feature errors the engine reports.
    """

    n: int
    ts: np.ndarray
    keys: list[KeyColumn]
    obs: list[bytes]
    nums: list[np.ndarray | None]
    dvals: dict[int, np.ndarray]
    strings: list[str]
    errors: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    n_codes: int = -1  # distinct strings (-1: len(strings))

    def codes_used(self) -> int:
        return len(self.strings) if self.n_codes < 0 else self.n_codes


def _present(items: list[Any]) -> bytes:
    """One byte per item: 1 where it is not None (a C-level pass)."""
    return bytes(map(is_not, items, repeat(None)))


def _key_rows(keys: list[Any], present: bytes) -> tuple[np.ndarray, list[str], bool]:
    """One row per (event, key): the event indexes, the keys, and whether any event fanned out."""
    if list not in set(map(type, keys)):
        ev = np.flatnonzero(np.frombuffer(present, dtype=np.uint8))
        return ev, (list(compress(keys, present)) if len(ev) < len(keys) else keys), False
    evl: list[int] = []
    flat: list[str] = []
    for i, k in enumerate(keys):
        if k is None:
            continue
        if type(k) is str:
            evl.append(i)
            flat.append(k)
        else:
            for x in k:
                evl.append(i)
                flat.append(x)
    return np.asarray(evl, dtype=np.int64), flat, True


def _and(a: bytes, b: bytes) -> bytearray:
    return bytearray((np.frombuffer(a, dtype=np.uint8) & np.frombuffer(b, dtype=np.uint8)).tobytes())


def extract_inputs(plan: Any, datas: Sequence[dict[str, Any]], ts: Sequence[float], fast: Any = None,
                   ) -> FeatureInputs:
    """Per event and feature: its key(s), whether it observes and what, exactly as ``Engine._features``.

    ``plan`` is the engine's ``_Plan``; ``fast`` the compiled module (``fsbrain._speedups``) or None.
    Raises :class:`Unsupported` for a value the state backend would refuse (the streaming run fails
    there, with its own error) or one too large for exact integer arithmetic here.
    """
    from fsbrain.engine.evaluator import _matches, _zen_msg

    n = len(datas)
    if fast is not None:
        kp, vp = plan.key_parts, plan.value_parts
        ext = fast.extract
        pairs = [ext(d, kp, vp, MAX_FANOUT) for d in datas]
        kcols = [list(c) for c in zip(*[p[0] for p in pairs], strict=True)] if n else [[] for _ in kp]
        vcols = [list(c) for c in zip(*[p[1] for p in pairs], strict=True)] if n else [[] for _ in vp]
    else:
        kcols = [[fn(d) for d in datas] for fn in plan.key_fns]
        vcols = [[fn(d) for d in datas] for fn in plan.value_fns]
    errors: dict[int, list[dict[str, Any]]] = {}
    kpresent = [_present(k) for k in kcols]
    rows = [_key_rows(k, pr) for k, pr in zip(kcols, kpresent, strict=True)]
    dv: dict[int, list[str]] = {}
    for f, _ki, vi in plan.rows:
        if f.agg == "distinct" and vi >= 0 and vi not in dv:  # None never observes: any string will do
            dv[vi] = [v if type(v) is str else ("" if v is None else str(v)) for v in vcols[vi]]
    # one code space for every key and value column of the run (dict operations in C)
    strings = list(dict.fromkeys(chain(*(r[1] for r in rows), *dv.values())))
    index = dict(zip(strings, range(len(strings)), strict=True))
    code_of = index.__getitem__

    def codes(items: list[str]) -> np.ndarray:
        return np.fromiter(map(code_of, items), dtype=np.int64, count=len(items))

    out = FeatureInputs(n=n, ts=np.asarray(ts, dtype=np.float64),
                        keys=[KeyColumn(ev=ev, code=codes(flat), fan=fan) for ev, flat, fan in rows],
                        obs=[], nums=[], dvals={vi: codes(v) for vi, v in dv.items()}, strings=strings,
                        errors=errors)
    del index, dv
    vpresent: dict[int, bytes] = {}
    matched: dict[tuple[str, bool, Any], bytes] = {}
    for f, ki, vi in plan.rows:
        obs = bytearray(kpresent[ki])
        if f.when is not None:
            native = f.when_native
            if native is not None:
                hit = matched.get(native)
                if hit is None:
                    hit = matched[native] = _native_matches(datas, native, _matches)
                obs = _and(obs, hit)
            else:
                for i, d in enumerate(datas):
                    if not obs[i]:
                        continue
                    try:
                        obs[i] = f.when.evaluate({nm: d.get(nm) for nm in f.when_names}) is True
                    except Exception as exc:  # zen raises RuntimeError or Exception, as in the engine
                        errors.setdefault(i, []).append({"feature": f.name, "error": _zen_msg(exc)})
                        obs[i] = 0
        nums: np.ndarray | None = None
        if vi >= 0:
            raw = vcols[vi]
            if f.agg == "distinct":
                if vi not in vpresent:
                    vpresent[vi] = _present(raw)
                obs = _and(obs, vpresent[vi])
            else:
                nums = _numbers(f, raw, obs, errors)
        out.obs.append(bytes(obs))
        out.nums.append(nums)
    return out


def _native_matches(datas: Sequence[dict[str, Any]], native: tuple[str, bool, Any], matches: Any) -> bytes:
    """One byte per event: whether ``field ==/!= literal`` holds (the engine's ``_matches``)."""
    fld, sense, lit = native
    fv = [d.get(fld) for d in datas]
    if lit is None or type(lit) is bool:  # matched by identity: a C-level pass
        return bytes(map(is_ if sense else is_not, fv, repeat(lit)))
    return bytes((matches(v, lit) is sense) for v in fv)


def _numbers(f: CompiledFeature, raw: list[Any], obs: bytearray, errors: dict[int, list[dict[str, Any]]],
             ) -> np.ndarray:
    """The observed numbers of a sum/mean (fixed-point units) or min/max (floats) feature; clears ``obs``
    where the engine would not observe (``None``, a value that is not a number: an error, as there)."""
    units = f.agg in ("sum", "mean")
    out = np.zeros(len(raw), dtype=np.int64 if units else np.float64)
    lim = EXACT // VALUE_SCALE
    for i, o in enumerate(obs):
        if not o:
            continue
        v = raw[i]
        tp = type(v)
        if tp is not float and tp is not int:
            if v is None:
                obs[i] = 0
                continue
            try:
                if tp is bool:
                    raise TypeError
                v = float(v)
            except (TypeError, ValueError):
                errors.setdefault(i, []).append({"feature": f.name, "error": f"value {v!r} is not a number"})
                obs[i] = 0
                continue
            tp = float
        if tp is float:
            if v - v != 0:  # NaN or infinity: the state refuses it and the streaming run stops there
                raise Unsupported(f"feature {f.name}: value {v!r} is not a finite number")
            if not -lim < v < lim:
                raise Unsupported(f"feature {f.name}: value {v!r} too large for exact columnar arithmetic")
            out[i] = round(v * VALUE_SCALE) if units else v  # SumSpace: round half to even, as Python does
        else:
            if not -lim < v < lim:
                raise Unsupported(f"feature {f.name}: value {v!r} too large for exact columnar arithmetic")
            out[i] = v * VALUE_SCALE if units else float(v)
    return out


class InputMerger:
    """Concatenates consecutive runs of events as they arrive (their string codes made global)."""

    def __init__(self) -> None:
        self.n = 0
        self.counts: list[int] = []  # events per part
        self._gmap: dict[str, int] = {}
        self._k: list[tuple[list[np.ndarray], list[np.ndarray], list[bool]]] = []
        self._d: dict[int, list[np.ndarray]] = {}
        self._obs: list[list[bytes]] = []
        self._nums: list[list[np.ndarray]] = []
        self._ts: list[np.ndarray] = []
        self.errors: dict[int, list[dict[str, Any]]] = {}

    def add(self, p: FeatureInputs) -> None:
        if not self._ts:
            self._k = [([], [], [False]) for _ in p.keys]
            self._d = {vi: [] for vi in p.dvals}
            self._obs = [[] for _ in p.obs]
            self._nums = [[] for _ in p.nums]
        base = self.n
        g = _global(self._gmap, p.strings)
        for (evs, codes, fan), kc in zip(self._k, p.keys, strict=True):
            evs.append(kc.ev + base)
            codes.append(g[kc.code])
            fan[0] = fan[0] or kc.fan
        for vi, c in p.dvals.items():
            self._d[vi].append(g[c])
        for acc, o in zip(self._obs, p.obs, strict=True):
            acc.append(o)
        for acc, x in zip(self._nums, p.nums, strict=True):
            if x is not None:
                acc.append(x)
        for i, e in p.errors.items():
            self.errors[base + i] = e
        self._ts.append(p.ts)
        self.n += p.n
        self.counts.append(p.n)

    def result(self) -> FeatureInputs:
        """The merged run; its ``strings`` are left empty (only codes are needed from here on)."""
        if not self._ts:
            return FeatureInputs(n=0, ts=np.zeros(0), keys=[], obs=[], nums=[], dvals={}, strings=[])
        out = FeatureInputs(
            n=self.n, ts=np.concatenate(self._ts),
            keys=[KeyColumn(ev=np.concatenate(evs), code=np.concatenate(codes), fan=fan[0])
                  for evs, codes, fan in self._k],
            obs=[b"".join(o) for o in self._obs],
            nums=[np.concatenate(x) if x else None for x in self._nums],
            dvals={vi: np.concatenate(codes) for vi, codes in self._d.items()}, strings=[],
            errors=self.errors)
        out.n_codes = len(self._gmap)
        self._gmap = {}
        return out


def merge_inputs(parts: Sequence[FeatureInputs]) -> FeatureInputs:
    """Concatenate consecutive runs of events (string codes made global)."""
    m = InputMerger()
    for p in parts:
        m.add(p)
    return m.result()


def _global(gmap: dict[str, int], strings: list[str]) -> np.ndarray:
    """Global codes of a run's distinct strings, adding the new ones to ``gmap`` (C-level passes)."""
    codes = list(map(gmap.get, strings))
    new = np.fromiter(map(is_, codes, repeat(None)), dtype=bool, count=len(codes))
    out = np.empty(len(codes), dtype=np.int64)
    k = int(new.sum())
    if k:
        fresh = list(compress(strings, new.tolist()))
        n0 = len(gmap)
        gmap.update(zip(fresh, range(n0, n0 + k), strict=True))
        out[new] = np.arange(n0, n0 + k, dtype=np.int64)
    if k < len(codes):
        out[~new] = np.fromiter(filter(partial(is_not, None), codes), dtype=np.int64, count=len(codes) - k)
    return out


# -- the columnar pass ----------------------------------------------------------------------------
def check_order(ts: np.ndarray) -> None:
    if len(ts) > 1 and bool(np.any(ts[1:] < ts[:-1])):
        i = int(np.argmax(ts[1:] < ts[:-1])) + 1
        raise Unsupported(f"event {i + 1} is older than the one before it (the columnar pass needs time order; "
                          "the streaming path decides whether that is within its tolerance)")
    if len(ts) and not bool(np.all(np.isfinite(ts))):
        raise Unsupported("a timestamp is not finite")


def feature_values(plan: Any, inputs: FeatureInputs) -> dict[str, np.ndarray]:
    """Every event's value of every feature of ``plan``: state name → array (int64 for count and
    distinct, float64 otherwise, NaN standing for ``None``)."""
    ts = inputs.ts
    check_order(ts)
    out: dict[str, np.ndarray] = {}
    sorted_keys: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for r, (f, ki, vi) in enumerate(plan.rows):
        kc = inputs.keys[ki]
        if ki not in sorted_keys:  # rows by entity, then file order (ev is ascending: a stable sort keeps it)
            order = np.argsort(kc.code, kind="stable")
            sorted_keys[ki] = (kc.ev[order], kc.code[order])
        evs, cs = sorted_keys[ki]
        out[f.spec.name] = _one_feature(f, kc, evs, cs, ts, inputs.obs[r], inputs.nums[r], inputs.dvals.get(vi),
                                        inputs.n, inputs.codes_used())
    return out


def _one_feature(f: CompiledFeature, kc: KeyColumn, evs: np.ndarray, cs: np.ndarray, ts: np.ndarray,
                 obs_all: bytes, nums: np.ndarray | None, dv: np.ndarray | None, n_events: int, n_codes: int,
                 ) -> np.ndarray:
    spec, agg = f.spec, f.agg
    nb = spec.n_buckets
    m = len(evs)
    integer = agg in ("count", "distinct")
    empty = 0 if integer else (0.0 if agg == "sum" else np.nan)
    res = np.full(n_events, empty, dtype=np.int64 if integer else np.float64)
    if m == 0:
        return res
    b = np.floor(ts[evs] / float(spec.bucket)).astype(np.int64)  # the state's floor(ts / bucket)
    bmin = int(b.min())
    span = int(b.max()) - bmin + nb + 1
    if span * (n_codes + 1) >= 2**62:
        raise Unsupported(f"feature {f.name}: time span too long for the columnar index")
    comb = cs * span + (b - bmin)  # ascending: by entity, then time
    o = np.frombuffer(obs_all, dtype=np.uint8)[evs].astype(bool)
    start = np.searchsorted(comb, comb - nb, side="right")  # first row of each row's window
    idx = np.arange(m)
    if agg == "count":
        pre = np.concatenate(([0], np.cumsum(o, dtype=np.int64)))
        val: np.ndarray = pre[idx + 1] - pre[start]
    elif agg in ("sum", "mean"):
        assert nums is not None
        units = np.where(o, nums[evs], 0)
        tot = float(np.abs(units).sum(dtype=np.float64))
        if tot >= 2**62:
            raise Unsupported(f"feature {f.name}: sums too large for exact columnar arithmetic")
        pre = np.concatenate(([0], np.cumsum(units)))
        u = pre[idx + 1] - pre[start]
        if tot >= EXACT and bool(np.any(np.abs(u) >= EXACT)):
            raise Unsupported(f"feature {f.name}: a window sum beyond 2^53 units")
        if agg == "sum":
            val = u.astype(np.float64) / float(VALUE_SCALE)
        else:
            cpre = np.concatenate(([0], np.cumsum(o, dtype=np.int64)))
            cnt = cpre[idx + 1] - cpre[start]
            with np.errstate(invalid="ignore", divide="ignore"):
                val = np.where(cnt > 0, u.astype(np.float64) / (cnt * VALUE_SCALE).astype(np.float64), np.nan)
    elif agg == "distinct":
        assert dv is not None
        val = _distinct(dv[evs], n_codes, o, comb, nb, cs)
    else:  # min, max
        assert nums is not None
        x = np.where(o, nums[evs], np.inf if agg == "min" else -np.inf)
        val = _range_extreme(x, start, idx, agg)
        cpre = np.concatenate(([0], np.cumsum(o, dtype=np.int64)))
        val[(cpre[idx + 1] - cpre[start]) == 0] = np.nan
    if not kc.fan:
        res[evs] = val
        return res
    if integer:
        np.maximum.at(res, evs, val)
    else:
        if agg == "sum":
            res[:] = np.nan  # take the max over an event's keys; events without a key read 0.0
        np.fmax.at(res, evs, val)
        if agg == "sum":
            res[np.isnan(res)] = 0.0
    return res


def _distinct(vcode: np.ndarray, n_values: int, o: np.ndarray, comb: np.ndarray, nb: int, code: np.ndarray,
              ) -> np.ndarray:
    """Distinct values in each row's window: observation ``p`` counts for rows ``p .. end(p)``."""
    m = len(vcode)
    pos = np.flatnonzero(o)
    diff = np.zeros(m + 1, dtype=np.int64)
    if len(pos):
        vc, cc = vcode[pos], code[pos]
        # the next observation of the same value on the same entity (pos ascending: stable sorts keep it)
        if (int(cc.max()) + 1) * (n_values + 1) < 2**62:
            k = np.argsort(cc * (n_values + 1) + vc, kind="stable")
        else:
            k = np.lexsort((pos, vc, cc))
        sp = pos[k]
        nxt_sorted = np.full(len(pos), m, dtype=np.int64)
        same = (vc[k][1:] == vc[k][:-1]) & (cc[k][1:] == cc[k][:-1])
        nxt_sorted[:-1][same] = sp[1:][same]
        nxt = np.empty(len(pos), dtype=np.int64)
        nxt[k] = nxt_sorted
        last = np.searchsorted(comb, comb[pos] + nb, side="left") - 1  # the last row whose window holds p
        end = np.minimum(nxt - 1, last)
        diff[pos] += 1  # positions are distinct
        np.add.at(diff, end + 1, -1)
    return np.cumsum(diff[:m])


def _range_extreme(x: np.ndarray, start: np.ndarray, end: np.ndarray, agg: str) -> np.ndarray:
    """min (or max) of ``x[start[i] : end[i] + 1]`` for every ``i`` (a sparse table)."""
    op = np.minimum if agg == "min" else np.maximum
    length = end - start + 1
    levels = [x]
    span = 1
    while span * 2 <= int(length.max()):
        prev = levels[-1]
        levels.append(op(prev[:-span], prev[span:]))
        span *= 2
    lg = np.floor(np.log2(length)).astype(np.int64)
    out = np.empty(len(x), dtype=np.float64)
    for j, tab in enumerate(levels):
        sel = np.flatnonzero(lg == j)
        if len(sel):
            w = 1 << j
            out[sel] = op(tab[start[sel]], tab[end[sel] - w + 1])
    return out


def values_as_python(plan: Any, cols: dict[str, np.ndarray]) -> list[tuple[str, list[Any]]]:
    """The arrays as Python lists of the types the state returns (int, float or None)."""
    out = []
    for f, _ki, _vi in plan.rows:
        a = cols[f.spec.name]
        lst = a.tolist()
        if f.agg in ("min", "max", "mean"):
            lst = [None if v != v else v for v in lst]
        out.append((f.spec.name, lst))
    return out
