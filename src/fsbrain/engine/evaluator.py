"""The evaluator: event → features → lists → models → rules → score → outcome, with reasons.

The API, the CLI, backtests and shadow runs all call :meth:`Engine.decide`; there is one evaluator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import compress
from typing import Any

from fsbrain.core.errors import BackendError, InputError, UnknownEventTypeError
from fsbrain.core.model import Decision, Reason
from fsbrain.engine.lists import LIST_TYPES, ListHit, ListIndex
from fsbrain.engine.models import ModelSlot, load_model_slots
from fsbrain.engine.policy import MAX_FANOUT, CompiledFeature, CompiledPolicy
from fsbrain.state.base import StateBackend, WindowOp, WindowRead


@dataclass(slots=True)
class _Plan:
    """Features of the live and shadow policies of one event type, deduplicated by state namespace."""

    features: list[CompiledFeature]
    live: CompiledPolicy
    shadows: list[CompiledPolicy]
    models: dict[str, dict[str, ModelSlot]]
    # features sharing a key (or value) field read it once per event: one extractor per distinct path
    key_fns: list[Callable[[dict[str, Any]], Any]]
    value_fns: list[Callable[[dict[str, Any]], Any]]
    rows: list[tuple[CompiledFeature, int, int]]  # (feature, key index, value index or -1)
    fast_rows: list[tuple[Any, ...]]  # the same rows flattened for fsbrain._speedups.collect
    key_parts: list[tuple[tuple[str, ...], ...]]  # per key: its field paths split at dots
    value_parts: list[tuple[str, ...]]


class EngineStats:
    """Counters exported on /metrics. Decisions may run on several threads (the server does so with remote
    state), so counting goes through :meth:`add`, which holds a lock."""

    def __init__(self) -> None:
        self.rule_errors = 0
        self.state_errors = 0
        self.feature_errors = 0
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` (``rule_errors``, ``state_errors`` or ``feature_errors``)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


class Engine:
    """Holds the live (and shadow) policies per event type, the state backend and the list index.

    Policy swaps are atomic: a decision in flight finishes on the policy it started with.

    Args:
        state: where windowed features live.
        lists: black/white/grey list index (empty by default).
    """

    def __init__(self, *, state: StateBackend, lists: ListIndex | None = None,
                 speedups: bool | None = None) -> None:
        from fsbrain.speedups import load

        self._fast = load(speedups)
        self.state = state
        self.lists = lists or ListIndex()
        self.stats = EngineStats()
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Lock()
        self.on_rule_error: Callable[[str, str], None] | None = None

    # -- policy management ---------------------------------------------------------------------
    def set_policy(self, policy: CompiledPolicy, *, shadows: list[CompiledPolicy] | None = None) -> None:
        """Install ``policy`` as live for its event type (and optionally replace its shadows)."""
        with self._lock:
            old = self._plans.get(policy.event_type)
            sh = list(shadows) if shadows is not None else (old.shadows if old else [])
            self._plans[policy.event_type] = self._build_plan(policy, sh)

    def set_shadows(self, event_type: str, shadows: list[CompiledPolicy]) -> None:
        with self._lock:
            plan = self._plans.get(event_type)
            if plan is None:
                raise UnknownEventTypeError(f"no live policy for event type {event_type!r}")
            for s in shadows:
                if s.event_type != event_type:
                    raise InputError(f"shadow policy {s.ref} is for {s.event_type!r}, not {event_type!r}")
            self._plans[event_type] = self._build_plan(plan.live, shadows)

    @staticmethod
    def _build_plan(live: CompiledPolicy, shadows: list[CompiledPolicy]) -> _Plan:
        seen: dict[str, CompiledFeature] = {}
        for pol in [live, *shadows]:
            for f in pol.features:
                seen.setdefault(f.spec.name, f)
        models = {p.ref: load_model_slots(p) for p in [live, *shadows]}
        key_idx: dict[tuple[str, ...], int] = {}
        val_idx: dict[str, int] = {}
        key_fns: list[Callable[[dict[str, Any]], Any]] = []
        value_fns: list[Callable[[dict[str, Any]], Any]] = []
        key_parts: list[tuple[tuple[str, ...], ...]] = []
        value_parts: list[tuple[str, ...]] = []
        rows = []
        for f in seen.values():
            if f.key_paths not in key_idx:
                key_idx[f.key_paths] = len(key_fns)
                key_fns.append(f.key_of)
                key_parts.append(tuple(tuple(p.split(".")) for p in f.key_paths))
            vi = -1
            if f.value_getter is not None and f.value_path is not None:
                if f.value_path not in val_idx:
                    val_idx[f.value_path] = len(value_fns)
                    value_fns.append(f.value_getter)
                    value_parts.append(tuple(f.value_path.split(".")))
                vi = val_idx[f.value_path]
            rows.append((f, key_idx[f.key_paths], vi))
        fast_rows = []
        for f, ki, vi in rows:
            native = f.when_native
            kind = 0 if f.when is None else (1 if native is not None else 2)
            fast_rows.append((f, f.spec, f.spec.name, ki, vi, kind, native[0] if native else None,
                              bool(native[1]) if native else True, native[2] if native else None,
                              1 if f.agg == "distinct" else 0))
        return _Plan(features=list(seen.values()), live=live, shadows=list(shadows), models=models,
                     key_fns=key_fns, value_fns=value_fns, rows=rows, fast_rows=fast_rows,
                     key_parts=key_parts, value_parts=value_parts)

    def policy(self, event_type: str) -> CompiledPolicy:
        plan = self._plans.get(event_type)
        if plan is None:
            raise UnknownEventTypeError(
                f"unknown event type {event_type!r} (known: {sorted(self._plans) or 'none'})")
        return plan.live

    def shadows(self, event_type: str) -> list[CompiledPolicy]:
        plan = self._plans.get(event_type)
        return list(plan.shadows) if plan else []

    @property
    def event_types(self) -> list[str]:
        return sorted(self._plans)

    # -- deciding ------------------------------------------------------------------------------
    def decide(self, event_type: str, data: dict[str, Any], *, event_id: str, timestamp: float,
               ) -> tuple[Decision, list[Decision]]:
        """Decide on one event with the live policy; also run every shadow policy.

        Returns:
            The live decision and the shadow decisions (to be stored and compared, never returned).
        """
        t0 = time.perf_counter()
        plan = self._plans.get(event_type)
        if plan is None:
            raise UnknownEventTypeError(
                f"unknown event type {event_type!r} (known: {sorted(self._plans) or 'none'})")
        fvalues, ferrors = self._features(plan, data, timestamp)
        live = self._decide_policy(plan, plan.live, data, fvalues, ferrors, event_id, timestamp, t0)
        shadows = []
        for pol in plan.shadows:
            t1 = time.perf_counter()
            d = self._decide_policy(plan, pol, data, fvalues, ferrors, event_id, timestamp, t1)
            d.shadow = True
            shadows.append(d)
        return live, shadows

    def _slow_row(self, errors: list[dict[str, Any]]) -> Callable[..., Any]:
        """The rare cases of the compiled feature loop, in Python (see ``_speedups.collect``)."""

        def slow(f: CompiledFeature, data: dict[str, Any], value: Any, phase: int) -> Any:
            if phase == 0:
                try:
                    return f.when.evaluate({n: data.get(n) for n in f.when_names}) is True
                except Exception as exc:  # zen raises RuntimeError, or Exception for unconvertible values
                    errors.append({"feature": f.name, "error": _zen_msg(exc)})
                    self.stats.add("feature_errors")
                    return False
            try:
                if type(value) is bool:
                    raise TypeError
                return float(value)
            except (TypeError, ValueError):
                errors.append({"feature": f.name, "error": f"value {value!r} is not a number"})
                self.stats.add("feature_errors")
                return slow

        return slow

    def _features_fast(self, plan: _Plan, data: dict[str, Any], ts: float,
                       ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        fast = self._fast
        values: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        keys, vals = fast.extract(data, plan.key_parts, plan.value_parts, MAX_FANOUT)
        ops, op_names, r_specs, r_keys, r_names = fast.collect(
            plan.fast_rows, keys, vals, data, self._slow_row(errors), WindowOp, values)
        try:
            if r_specs:  # observations and read-only windows in one call (one round trip on Redis)
                got, read = self.state.update_get_read(
                    ops, [WindowRead(s, k) for s, k in zip(r_specs, r_keys, strict=True)], ts)
                if ops:
                    fast.merge_max(values, op_names, got)
                fast.merge_max(values, r_names, read)
            elif ops:
                fast.merge_max(values, op_names, self.state.update_get(ops, ts))
        except BackendError:
            self.stats.add("state_errors")
            raise
        except Exception as exc:  # a backend bug must surface as a clear 503, not a crash
            self.stats.add("state_errors")
            raise BackendError(f"state backend {self.state.name} failed: {exc}") from exc
        return values, errors

    def _features(self, plan: _Plan, data: dict[str, Any], ts: float,
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if self._fast is not None:
            return self._features_fast(plan, data, ts)
        ops: list[WindowOp] = []
        op_names: list[str] = []
        reads: list[WindowRead] = []
        read_names: list[str] = []
        values: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        keys = [fn(data) for fn in plan.key_fns]
        vals = [fn(data) for fn in plan.value_fns]
        for f, ki, vi in plan.rows:
            spec = f.spec
            key = keys[ki]
            if key is None:
                values[spec.name] = spec.empty_value()
                continue
            observe = True
            if f.when is not None:
                native = f.when_native
                if native is not None:
                    observe = _matches(data.get(native[0]), native[2]) is native[1]
                else:
                    try:
                        observe = f.when.evaluate({n: data.get(n) for n in f.when_names}) is True
                    except Exception as exc:  # zen raises RuntimeError, or Exception for unconvertible values
                        errors.append({"feature": f.name, "error": _zen_msg(exc)})
                        self.stats.add("feature_errors")
                        observe = False
            value: Any = 1
            if observe and vi >= 0:
                value = vals[vi]
                if value is None:
                    observe = False
                elif f.agg == "distinct":
                    if type(value) is not str:
                        value = str(value)
                elif type(value) is not float and type(value) is not int:
                    try:
                        if type(value) is bool:
                            raise TypeError
                        value = float(value)
                    except (TypeError, ValueError):
                        errors.append({"feature": f.name, "error": f"value {value!r} is not a number"})
                        self.stats.add("feature_errors")
                        observe = False
            if type(key) is str:
                if observe:
                    ops.append(WindowOp(spec, key, value))
                    op_names.append(spec.name)
                else:
                    reads.append(WindowRead(spec, key))
                    read_names.append(spec.name)
                continue
            for k in key:
                if observe:
                    ops.append(WindowOp(spec, k, value))
                    op_names.append(spec.name)
                else:
                    reads.append(WindowRead(spec, k))
                    read_names.append(spec.name)
        try:
            got, read = self.state.update_get_read(ops, reads, ts)
            if ops:
                for n, v in zip(op_names, got, strict=True):
                    old = values.get(n, _MISSING)
                    values[n] = v if old is _MISSING or old is None or (v is not None and v > old) else old
            if reads:
                for n, v in zip(read_names, read, strict=True):
                    old = values.get(n, _MISSING)
                    values[n] = v if old is _MISSING or old is None or (v is not None and v > old) else old
        except BackendError:
            self.stats.add("state_errors")
            raise
        except Exception as exc:  # a backend bug must surface as a clear 503, not a crash
            self.stats.add("state_errors")
            raise BackendError(f"state backend {self.state.name} failed: {exc}") from exc
        return values, errors

    def _list_context(self, pol: CompiledPolicy, data: dict[str, Any], ts: float,
                      ) -> tuple[dict[str, Any], list[ListHit]]:
        if not len(self.lists):
            return _NO_LISTS, []
        ctx: dict[str, Any] = {t: [] for t in LIST_TYPES}
        hits: list[ListHit] = []
        if True:
            for chk in pol.definition.lists:
                v = _get_path(data, chk.field)
                if v is None or v == "":
                    continue
                for h in self.lists.lookup(chk.entity_type, str(v), ts):
                    hits.append(h)
                    if chk.entity_type not in ctx[h.list_type]:
                        ctx[h.list_type].append(chk.entity_type)
        for t in LIST_TYPES:
            ctx[f"{t}_any"] = bool(ctx[t])
        return ctx, hits

    def _decide_policy(self, plan: _Plan, pol: CompiledPolicy, data: dict[str, Any],
                       fvalues: dict[str, Any], ferrors: list[dict[str, Any]], event_id: str,
                       ts: float, t0: float) -> Decision:
        get = fvalues.get
        _, pairs, names, ref = _policy_extras(pol)
        f = {n: get(sn) for n, sn in pairs}
        lctx, lhits = self._list_context(pol, data, ts)
        errors = list(ferrors)
        wl = pol.definition.whitelist
        if lctx["white_any"] and wl.short_circuit:
            reasons = [Reason(source="list", id=f"white:{h.entity_type}", feature=h.entity_type,
                              message=h.reason or "whitelisted") for h in lhits if h.list_type == "white"]
            return Decision(event_id=event_id, event_type=pol.event_type, outcome=wl.outcome or pol.outcomes[0][0], score=0,
                            labels=[], reasons=reasons, policy=ref, features=f, errors=errors,
                            latency_ms=(time.perf_counter() - t0) * 1000, event_time=ts)
        m: dict[str, Any] = {}
        slots = plan.models.get(ref)
        if slots:
            for name, slot in slots.items():
                try:
                    m[name] = slot.score(f, data)
                except InputError as exc:
                    errors.append({"model": name, "error": exc.message})
                    m[name] = None
        ctx = {n: data[n] for n in names if n in data}
        ctx["f"] = f
        ctx["l"] = lctx
        ctx["m"] = m
        hits = self._evaluate_rules(pol, ctx, errors)
        return self._score(pol, hits, f, m, lctx, data, errors, event_id, ts, t0)

    def _evaluate_rules(self, pol: CompiledPolicy, ctx: dict[str, Any], errors: list[dict[str, Any]]) -> list[bool]:
        try:
            return [r is True for r in pol.combined.evaluate(ctx)]
        except Exception:  # zen: RuntimeError for rule errors, Exception for values it cannot convert
            pass
        out = []
        for rule in pol.rules:
            try:
                out.append(rule.expr.evaluate(ctx) is True)
            except Exception as exc:
                msg = _zen_msg(exc)
                if "Unsupported type" in msg:
                    msg += " (a field or feature the rule reads is missing, null or of another type; use `x ?? default`)"
                errors.append({"rule": rule.id, "error": msg})
                self.stats.add("rule_errors")
                if self.on_rule_error is not None:
                    self.on_rule_error(pol.ref, rule.id)
                out.append(False)
        return out

    @staticmethod
    def _score(pol: CompiledPolicy, hits: list[bool], f: dict[str, Any], m: dict[str, Any],
               lctx: dict[str, Any], data: dict[str, Any], errors: list[dict[str, Any]], event_id: str,
               ts: float, t0: float) -> Decision:
        if len(hits) != len(pol.rules):
            raise ValueError(f"{len(hits)} rule results for {len(pol.rules)} rules")
        total = 0
        forced = 0
        label_weight: dict[str, int] = {}
        reasons: list[Reason] = []
        for rule in compress(pol.rules, hits):
            total += rule.weight
            label_weight[rule.label] = label_weight.get(rule.label, 0) + rule.weight
            if rule.outcome is not None:
                forced = max(forced, pol.outcome_rank(rule.outcome))
            value: Any = None
            if rule.feature is not None:
                if rule.feature in f:
                    value = f[rule.feature]
                elif rule.feature in m:
                    value = m[rule.feature]
                else:
                    value = _get_path(data, rule.feature)
            elif "l." in rule.source:
                value = {t: lctx[t] for t in LIST_TYPES if lctx[t]}
            reasons.append(Reason(source="rule", id=rule.id, label=rule.label, feature=rule.feature,
                                  value=value, threshold=rule.threshold, weight=rule.weight,
                                  message=rule.description or None))
        score = max(0, min(1000, total))
        outcome = pol.outcome_for(score)
        if forced and forced > pol.outcome_rank(outcome):
            outcome = pol.outcomes[forced][0]
        labels = []
        if label_weight:
            labels = [lab for lab, w in sorted(label_weight.items(), key=lambda kv: -kv[1]) if w > 0]
            reasons.sort(key=lambda r: -r.weight)
        return Decision(event_id=event_id, event_type=pol.event_type, outcome=outcome, score=score,
                        labels=labels, reasons=reasons, policy=_policy_extras(pol)[3], features=f, errors=errors,
                        latency_ms=(time.perf_counter() - t0) * 1000, event_time=ts)


_Extras = tuple[CompiledPolicy, tuple[tuple[str, str], ...], tuple[str, ...], str]
_POLICY_CACHE: dict[int, _Extras] = {}


def _policy_extras(pol: CompiledPolicy) -> _Extras:
    """Per policy object, cached: the policy itself (to tell a recycled id apart), its ``(feature name,
    state name)`` pairs, the event fields its rules read (sorted, distinct) and its ``name@version``."""
    hit = _POLICY_CACHE.get(id(pol))
    if hit is None or hit[0] is not pol:
        if len(_POLICY_CACHE) > 256:
            _POLICY_CACHE.clear()
        hit = _POLICY_CACHE[id(pol)] = (
            pol, tuple((cf.name, cf.spec.name) for cf in pol.features), tuple(sorted(set(pol.rule_names))),
            pol.ref)
    return hit


def _feature_pairs(pol: CompiledPolicy) -> tuple[tuple[str, str], ...]:
    """``(feature name, state name)`` of each of the policy's features (cached per policy object)."""
    return _policy_extras(pol)[1]


def _matches(fv: Any, lit: Any) -> bool:
    """ZEN's ``==`` for a literal: booleans and null by identity, numbers only against numbers."""
    if lit is None or type(lit) is bool:
        return fv is lit
    if type(lit) is float:
        return type(fv) in (int, float) and fv == lit
    return type(fv) is str and fv == lit


_MISSING = object()
_NO_LISTS: dict[str, Any] = {"black": [], "white": [], "grey": [], "black_any": False, "white_any": False,
                             "grey_any": False}


def _get_path(data: dict[str, Any], path: str) -> Any:
    cur: Any = data
    for p in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _zen_msg(exc: Exception) -> str:
    import re

    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    m = re.search(r'"source":"([^"]*)"', msg)
    return m.group(1) if m else msg[:300]
