"""Loading, validating and compiling policy files.

Validation collects every problem (with file, line and severity) before failing, so an analyst fixes a
policy in one pass. Rule expressions are compiled with GoRules ZEN (a sandboxed expression language: no
Python ``eval`` anywhere). All enabled rules of a policy are compiled into one array expression, evaluated
in a single call per event; when that call fails (a rule touching a missing field), rules are evaluated
one by one so the failing rule is reported and the others still count.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zen
from pydantic import ValidationError

from fsbrain.core.errors import PolicyError
from fsbrain.core.labels import is_label
from fsbrain.engine.spec import FeatureDef, ModelDef, PolicyDef, RuleDef
from fsbrain.engine.yamlsrc import line_for, load_yaml_with_lines
from fsbrain.state.base import WindowSpec

_FEATURE_REF = re.compile(r"\bf\.([A-Za-z_][A-Za-z0-9_]*)")
_MODEL_REF = re.compile(r"\bm\.([A-Za-z_][A-Za-z0-9_]*)")
_AUTO_REASON = re.compile(r"\bf\.([A-Za-z_][A-Za-z0-9_]*)\s*(>=|>|<=|<|==)\s*(-?\d+(?:\.\d+)?)")
_AUTO_FIELD = re.compile(
    r"(?<![.\w])([A-Za-z_][A-Za-z0-9_]*)\s*(?:\?\?\s*[^)\s]+\s*\)\s*)?(>=|>|<=|<|==|!=)\s*"
    r"(-?\d+(?:\.\d+)?|true|false|'[^']*'|\"[^\"]*\")")
RESERVED_ROOTS = ("f", "l", "m")  # features, list hits, model scores; event fields are top-level names

Getter = Callable[[dict[str, Any]], Any]
MAX_FANOUT = 16


_STRING_LIT = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_IDENT = re.compile(r"(?<![.\w#$])([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "not", "true", "false", "null", "in", "f", "l", "m"}


def referenced_names(expr: str) -> set[str]:
    """Top-level event fields an expression may read (string literals, properties, calls excluded).

    Only these are handed to the expression engine, which keeps the per-event conversion small.

    >>> sorted(referenced_names("f.x > 3 and id_age < 18 and startsWith(phone, '13') and ip_type == 'vpn'"))
    ['id_age', 'ip_type', 'phone']
    """
    return {n for n in _IDENT.findall(_STRING_LIT.sub('""', expr)) if n not in _KEYWORDS}


def make_getter(path: str) -> Getter:
    """A fast accessor for a dotted field path in a nested dict (``None`` when absent)."""
    parts = path.split(".")
    if len(parts) == 1:
        k = parts[0]
        return lambda d: d.get(k)
    if len(parts) == 2:
        a, b = parts

        def get2(d: dict[str, Any]) -> Any:
            v = d.get(a)
            return v.get(b) if isinstance(v, dict) else None

        return get2

    def get_n(d: dict[str, Any]) -> Any:
        cur: Any = d
        for p in parts:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(p)
        return cur

    return get_n


@dataclass(slots=True)
class CompiledFeature:
    """A feature ready to run: its window spec (state namespace) and accessors."""

    name: str
    spec: WindowSpec
    key_getters: list[Getter]
    value_getter: Getter | None
    when: Any | None  # compiled zen expression, evaluated on the event data
    agg: str
    when_names: tuple[str, ...] = ()
    when_native: tuple[str, bool, Any] | None = None  # (field, equal?, literal) for `field ==/!= literal`
    key_paths: tuple[str, ...] = ()
    value_path: str | None = None

    def key_of(self, data: dict[str, Any]) -> str | list[str] | None:
        """The entity key; a list of keys when a single key field holds a list (fan-out, at most
        :data:`MAX_FANOUT` distinct elements), ``None`` when a key field is missing."""
        if len(self.key_getters) == 1:
            v = self.key_getters[0](data)
            if isinstance(v, list | tuple):
                keys = list(dict.fromkeys(str(x) for x in v if x is not None and x != ""))[:MAX_FANOUT]
                return keys or None
            return None if v is None or v == "" else str(v)
        parts = []
        for g in self.key_getters:
            v = g(data)
            if v is None or v == "" or isinstance(v, list | tuple | dict):
                return None
            parts.append(str(v))
        return "|".join(parts)


@dataclass(slots=True)
class CompiledRule:
    id: str
    label: str
    weight: int
    outcome: str | None
    feature: str | None
    threshold: Any
    description: str
    expr: Any  # compiled zen expression (for the one-by-one fallback)
    source: str


@dataclass(slots=True)
class CompiledPolicy:
    """A validated, compiled policy. Immutable once built; reloading builds a new one."""

    name: str
    version: int
    event_type: str
    sha256: str
    source: str
    text: str
    definition: PolicyDef
    features: list[CompiledFeature]
    rules: list[CompiledRule]
    combined: Any  # one zen expression returning a list of booleans, one per rule
    outcomes: list[tuple[str, int]]  # (name, min_score) ascending
    models: list[ModelDef] = field(default_factory=list)
    rule_names: tuple[str, ...] = ()  # event fields the rules read

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def outcome_rank(self, name: str) -> int:
        for i, (n, _) in enumerate(self.outcomes):
            if n == name:
                return i
        return 0

    def outcome_for(self, score: int) -> str:
        chosen = self.outcomes[0][0]
        for name, lo in self.outcomes:
            if score >= lo:
                chosen = name
        return chosen


def _state_name(fd: FeatureDef, bucket: float) -> str:
    """State namespace: stable across policy versions while the feature's meaning is unchanged."""
    sig = f"{fd.agg}|{','.join(fd.key)}|{fd.value or ''}|{bucket:g}|{fd.when or ''}"
    return f"{fd.name}:{hashlib.sha1(sig.encode()).hexdigest()[:8]}"


_SIMPLE_FILTER = re.compile(
    r"""^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(==|!=)\s*(true|false|null|-?\d+(?:\.\d+)?|'[^'\\]*'|"[^"\\]*")\s*$""")


def _native_filter(expr: str) -> tuple[str, bool, Any] | None:
    """``field == literal`` filters run as a dict lookup instead of an expression call (same result)."""
    m = _SIMPLE_FILTER.match(expr)
    if not m:
        return None
    lit = m.group(3)
    value: Any
    if lit in ("true", "false"):
        value = lit == "true"
    elif lit == "null":
        value = None
    elif lit[0] in "'\"":
        value = lit[1:-1]
    else:
        value = float(lit)
    return m.group(1), m.group(2) == "==", value


def _compile_expr(expr: str) -> tuple[Any, str | None]:
    try:
        return zen.compile_expression(expr), None
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0]
        m = re.search(r'"source":"([^"]*)"', msg)
        return None, (m.group(1) if m else msg)


def compile_policy(text: str, source: str = "<string>") -> CompiledPolicy:
    """Validate and compile policy text.

    Raises:
        PolicyError: listing every problem found (``problems``), the first one in the message.
    """
    data, lines = load_yaml_with_lines(text, source)
    if not isinstance(data, dict):
        raise PolicyError("a policy must be a YAML mapping (policy:, version:, rules: …)", source=source, line=1)
    problems: list[dict[str, Any]] = []

    def problem(loc: tuple[Any, ...], msg: str, severity: str = "error") -> None:
        problems.append({"line": line_for(lines, loc), "path": ".".join(str(p) for p in loc),
                         "message": msg, "severity": severity})

    try:
        pdef = PolicyDef.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = f"unknown key {loc[-1]!r}"
            elif err["type"] == "missing":
                msg = f"missing required key {loc[-1]!r}"
            where = ".".join(str(x) for x in loc)
            problem(loc, f"{where}: {msg}" if where else msg)
        _raise(problems, source)
        raise AssertionError("unreachable") from exc

    outcome_names = [o.name for o in pdef.outcomes]
    features: list[CompiledFeature] = []
    seen_f: set[str] = set()
    for i, fd in enumerate(pdef.features):
        if fd.name in seen_f:
            problem(("features", i, "name"), f"duplicate feature name {fd.name!r}")
        seen_f.add(fd.name)
        when = None
        if fd.when:
            when, err = _compile_expr(fd.when)
            if err:
                problem(("features", i, "when"), f"feature {fd.name}: invalid expression: {err}")
        spec = WindowSpec(name="", agg=fd.agg, window=fd.window, bucket=fd.bucket or 0.0)
        spec = WindowSpec(name=_state_name(fd, spec.bucket), agg=fd.agg, window=fd.window, bucket=spec.bucket)
        features.append(CompiledFeature(
            name=fd.name, spec=spec, key_getters=[make_getter(k) for k in fd.key], key_paths=tuple(fd.key),
            value_path=fd.value,
            value_getter=make_getter(fd.value) if fd.value else None, when=when, agg=fd.agg,
            when_names=tuple(sorted(referenced_names(fd.when))) if fd.when else (),
            when_native=_native_filter(fd.when) if fd.when else None))

    model_names = {m.name for m in pdef.models}
    for i, md in enumerate(pdef.models):
        for j, inp in enumerate(md.inputs):
            root, _, name = inp.partition(".")
            if root not in ("f", "e") or not name:
                problem(("models", i, "inputs", j), f"model input {inp!r} must be f.FEATURE or e.FIELD")
            elif root == "f" and name not in seen_f:
                problem(("models", i, "inputs", j), f"model input {inp!r}: no feature named {name!r}")

    rules: list[CompiledRule] = []
    seen_r: set[str] = set()
    for i, rd in enumerate(pdef.rules):
        loc = ("rules", i)
        if rd.id in seen_r:
            problem(loc + ("id",), f"duplicate rule id {rd.id!r}")
        seen_r.add(rd.id)
        if not is_label(rd.label):
            problem(loc + ("label",), f"rule {rd.id}: unknown risk label {rd.label!r}")
        if rd.outcome is not None and rd.outcome not in outcome_names:
            problem(loc + ("outcome",), f"rule {rd.id}: outcome {rd.outcome!r} is not one of {outcome_names}")
        for ref in _FEATURE_REF.findall(rd.when):
            if ref not in seen_f:
                problem(loc + ("when",), f"rule {rd.id}: refers to f.{ref}, but no feature has that name")
        for ref in _MODEL_REF.findall(rd.when):
            if ref not in model_names:
                problem(loc + ("when",), f"rule {rd.id}: refers to m.{ref}, but no model slot has that name")
        expr, err = _compile_expr(rd.when)
        if err:
            problem(loc + ("when",), f"rule {rd.id}: invalid expression: {err}")
            continue
        if not rd.enabled:
            continue
        rules.append(_compiled_rule(rd, expr))

    combined = None
    if rules and not any(p["severity"] == "error" for p in problems):
        combined, err = _compile_expr("[" + ", ".join(f"({r.source})" for r in rules) + "]")
        if err:
            problem(("rules",), f"rules do not combine into one expression: {err}")
    if not rules:
        problem(("rules",), "no enabled rules")
    _raise(problems, source)
    return CompiledPolicy(
        name=pdef.policy, version=pdef.version, event_type=pdef.event_type,
        sha256=hashlib.sha256(text.encode()).hexdigest(), source=source, text=text, definition=pdef,
        features=features, rules=rules, combined=combined,
        outcomes=[(o.name, o.min_score) for o in pdef.outcomes], models=list(pdef.models),
        rule_names=tuple(sorted(set().union(*(referenced_names(r.source) for r in rules)))))


def _compiled_rule(rd: RuleDef, expr: Any) -> CompiledRule:
    feature, threshold = rd.feature, rd.threshold
    if feature is None:
        m = _AUTO_REASON.search(rd.when)
        if m:
            feature = m.group(1)
            if threshold is None:
                t = m.group(3)
                threshold = float(t) if "." in t else int(t)
        else:
            m = _AUTO_FIELD.search(rd.when)
            if m and m.group(1) not in ("f", "l", "m", "true", "false", "null", "and", "or", "not"):
                feature = m.group(1)
                t = m.group(3)
                if threshold is None and t not in ("true", "false"):
                    if t[0] in "'\"":
                        threshold = t[1:-1]
                    else:
                        threshold = float(t) if "." in t else int(t)
    return CompiledRule(id=rd.id, label=rd.label, weight=rd.weight, outcome=rd.outcome, feature=feature,
                        threshold=threshold, description=rd.description, expr=expr, source=rd.when)


def _raise(problems: list[dict[str, Any]], source: str) -> None:
    errors = [p for p in problems if p["severity"] == "error"]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise PolicyError(first["message"] + more, source=source, line=first["line"], problems=problems)


def load_policy(path: str | os.PathLike[str]) -> CompiledPolicy:
    """Read and compile a policy file.

    Raises:
        PolicyError: unreadable file or invalid policy (file:line: problem).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError("file not found", source=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read: {exc}", source=str(p)) from exc
    return compile_policy(text, source=str(p))


POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"


def default_policy_path(event_type: str = "loan_application") -> Path:
    """The policy shipped for an event type (``src/fsbrain/policies/<event_type>.yaml``)."""
    return POLICY_DIR / f"{event_type}.yaml"
