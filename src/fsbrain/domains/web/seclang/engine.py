"""The request inspection rule engine: compiled SecLang rules run against :class:`HttpRequest` s.

>>> eng = WebRuleEngine.default()
>>> v = eng.inspect(HttpRequest.from_dict({"uri": "/item?id=1%27%20OR%20%271%27%3D%271"}))
>>> v.blocked, "web_sqli" in v.labels
(True, True)
"""

from __future__ import annotations

import copy
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsbrain.core.errors import PolicyError
from fsbrain.core.model import Reason
from fsbrain.domains.web.request import HttpRequest, text, text_lossless
from fsbrain.domains.web.seclang.labels import LabelMap
from fsbrain.domains.web.seclang.model import COLLECTIONS, Rule
from fsbrain.domains.web.seclang.operators import OperatorError, compile_operator
from fsbrain.domains.web.seclang.parser import RuleSet, parse_files, parse_text
from fsbrain.domains.web.seclang.prefilter import Prefilter
from fsbrain.domains.web.seclang.transaction import _REDUCED, Transaction, reduced_chain
from fsbrain.domains.web.speedups import load as load_speedups

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
REQUEST_PHASES = (1, 2)
_MACRO = re.compile(r"%\{([^}]{1,200})\}")
# operators whose parameter is text (no file to read relative to the rule file)
# operators that expand macros in their parameter at match time (and whose parameter is text)
_FOLDABLE_OPS = frozenset({"rx", "streq", "beginswith", "endswith", "contains", "strmatch", "containsword",
                           "within", "eq", "ge", "gt", "le", "lt"})


@dataclass(slots=True, kw_only=True)
class MatchedRule:
    """One rule (with its whole chain) that matched.

    Args:
        id: rule id.
        msg: the rule's message (macros expanded).
        tags: its tags.
        severity: 0 (emergency) .. 7 (debug), as SecLang.
        paranoia: paranoia level from the ``paranoia-level/N`` tag (0 when untagged).
        variable: the matched variable, e.g. ``ARGS:id``.
        value: an excerpt of the matched value (at most 120 characters).
        logdata: expanded ``logdata``.
        score: inbound anomaly points the rule added.
        labels: fsbrain labels from its tags.
        source: ``file:line`` of the rule.
    """

    id: int
    msg: str
    tags: list[str]
    severity: int | None
    paranoia: int
    variable: str
    value: str
    logdata: str = ""
    score: int = 0
    labels: list[str] = field(default_factory=list)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "msg": self.msg, "tags": list(self.tags), "severity": self.severity,
                "paranoia": self.paranoia, "variable": self.variable, "value": self.value,
                "logdata": self.logdata, "score": self.score, "labels": list(self.labels),
                "source": self.source}


@dataclass(slots=True, kw_only=True)
class RuleVerdict:
    """What the rules concluded about one request.

    Args:
        score: inbound anomaly score (CRS ``blocking_inbound_anomaly_score``).
        threshold: inbound anomaly threshold in force.
        blocked: the score reached the threshold, or a ``deny`` rule fired with the rule engine On.
        matched: every logged rule that matched, in evaluation order.
        labels: fsbrain labels, most points first.
        reasons: one :class:`~fsbrain.core.model.Reason` per scoring rule.
        limits_hit: request limits exceeded (named after :class:`RequestLimits` fields).
        interrupted_by: id of the disruptive rule that stopped processing, if any.
        body_processor: the body processor used, if any.
        body_error: the body processor's error, if any.
        paranoia: detection paranoia level in force.
        latency_ms: inspection time.
    """

    score: int
    threshold: int
    blocked: bool
    matched: list[MatchedRule] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)
    limits_hit: list[str] = field(default_factory=list)
    interrupted_by: int | None = None
    body_processor: str | None = None
    body_error: str | None = None
    paranoia: int = 1
    latency_ms: float = 0.0

    @property
    def attack(self) -> bool:
        return self.blocked

    @property
    def rule_ids(self) -> list[int]:
        return [m.id for m in self.matched]

    def to_dict(self) -> dict[str, Any]:
        return {"attack": self.blocked, "blocked": self.blocked, "score": self.score, "threshold": self.threshold,
                "labels": list(self.labels), "rules": [m.to_dict() for m in self.matched],
                "reasons": [r.to_dict() for r in self.reasons], "limits_hit": list(self.limits_hit),
                "interrupted_by": self.interrupted_by, "body_processor": self.body_processor,
                "body_error": self.body_error, "paranoia": self.paranoia,
                "latency_ms": round(self.latency_ms, 3)}


def _find_crs(path: Path) -> tuple[list[Path], list[Path]]:
    """(setup files, rule files) of a CRS release folder, its rules/ folder or Debian's layout."""
    path = path.expanduser()
    rules_dir = path / "rules" if (path / "rules").is_dir() else path
    rule_files = sorted(p for p in rules_dir.glob("*.conf") if p.name.startswith(("REQUEST-", "RESPONSE-")))
    if not rule_files:
        raise PolicyError("no CRS rule files (REQUEST-*.conf) found", source=str(path))
    setup: list[Path] = []
    for cand in (path / "crs-setup.conf", rules_dir.parent / "crs-setup.conf",
                 Path("/etc/modsecurity/crs/crs-setup.conf"), path / "crs-setup.conf.example",
                 rules_dir.parent / "crs-setup.conf.example"):
        if cand.is_file():
            setup = [cand]
            break
    for extra in ("REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf",):
        if (rules_dir / extra).is_file():
            setup.append(rules_dir / extra)
    return setup, rule_files


class WebRuleEngine:
    """Compiled SecLang rules (OWASP CRS or fsbrain's own) with anomaly scoring.

    Args:
        ruleset: parsed rules.
        paranoia: detection and blocking paranoia level 1..4 (pinned: rule files cannot change it).
        threshold: inbound anomaly threshold (None: the rules' ``tx.inbound_anomaly_score_threshold``, else 5).
        tx: extra TX variables set before any rule runs (e.g. ``{"crs_validate_utf8_encoding": 1}``).
        label_map: tag -> label mapping (default: ``rules/tag_labels.yaml``).
        name: a name for reports.
        rule_engine: ``On`` (deny rules stop processing), ``DetectionOnly`` or ``Off``; default: the
            rules' ``SecRuleEngine`` (On).
        optimize: the per-value prefilter and the folding of configuration-constant TX variables (on by
            default); ``False`` evaluates every rule the plain way, as a reference for tests.
        compiled: run the rule loop and the prefilter scan in the compiled extension
            (:mod:`fsbrain.domains.web._fastweb`): ``None`` (default) when it is built, enabled
            (``FSBRAIN_SPEEDUPS``) and ``optimize`` is on; ``False`` for the Python code it ports; ``True``
            to use it when built even with ``optimize=False``. Verdicts are the same either way.
    """

    def __init__(self, ruleset: RuleSet, *, paranoia: int = 1, threshold: int | None = None,
                 tx: dict[str, Any] | None = None, label_map: LabelMap | None = None, name: str = "rules",
                 rule_engine: str | None = None, optimize: bool = True, compiled: bool | None = None) -> None:
        if not 1 <= paranoia <= 4:
            raise PolicyError(f"paranoia must be 1..4, got {paranoia}")
        if getattr(ruleset, "_compiled_by_engine", False):
            ruleset = copy.deepcopy(ruleset)  # compiling specialises rules to this engine's settings
        ruleset._compiled_by_engine = True  # type: ignore[attr-defined]
        self.ruleset = ruleset
        self.paranoia = paranoia
        self.threshold = threshold
        self.name = name
        self.label_map = label_map or LabelMap.load()
        self.rule_engine = rule_engine or ruleset.rule_engine
        if self.rule_engine not in ("On", "Off", "DetectionOnly"):
            raise PolicyError(f"rule_engine must be On, Off or DetectionOnly, got {self.rule_engine!r}")
        self.collections = COLLECTIONS
        self.initial_tx: dict[str, bytes] = {"blocking_paranoia_level": b"%d" % paranoia,
                                             "detection_paranoia_level": b"%d" % paranoia,
                                             "paranoia_level": b"%d" % paranoia}
        for k, v in (tx or {}).items():
            self.initial_tx[k.lower()] = str(v).encode()
        if threshold is not None:
            self.initial_tx["inbound_anomaly_score_threshold"] = b"%d" % threshold
        self.pinned_tx = frozenset(self.initial_tx)
        self.rules = [r for r in ruleset.rules if r.disabled is None or r.kind == "marker"]
        self.phases: dict[int, list[Rule]] = {}
        self.markers: dict[int, dict[str, int]] = {}
        for ph in REQUEST_PHASES:
            lst = [r for r in self.rules if r.kind == "marker" or r.phase == ph]
            self.phases[ph] = lst
            self.markers[ph] = {r.marker: i for i, r in enumerate(lst) if r.kind == "marker" and r.marker}
        for r in self.rules:
            for link in r.links():
                t = link.targets[0] if len(link.targets) == 1 else None
                if (t is not None and t.collection == "TX" and t.key is not None and not link.exclusions
                        and not link.multi_match):
                    link.fast_tx = (t.key, t.count, ("&TX:" if t.count else "TX:") + t.key)
        self._fold_constants()
        self._snapshot_tx: dict[str, bytes] = {}
        self._start1 = 0
        self._precompute_config()
        if optimize:
            self._fold_stable_tx()
        self.labels_by_rule = {r.id: self.label_map.labels_for(r.id, r.tags) for r in self.rules if r.id}
        self._fast = load_speedups(False if compiled is None and not optimize else compiled)
        # RE2 called from the compiled module without the binding, for every pattern or for none
        cres = self._direct_patterns()
        reachable = self._reachable_rules() if optimize else []
        self.prefilter = Prefilter(reachable, fast=self._fast, direct=cres is not None)
        if cres is not None and (self.prefilter.plain_pass.failed or self.prefilter.full_pass.failed):
            cres = None
            self.prefilter = Prefilter(reachable, fast=self._fast)
        self.re2_direct = cres is not None
        # per phase: (rule or None for a marker, prefilter bit or 0, constant outcome) in evaluation order
        bit_of = self.prefilter.bit_of
        self._plans: dict[int, list[tuple[Rule | None, int, bool | None]]] = {
            ph: [(None if r.kind == "marker" else r,
                  1 << bit_of[id(r)] if id(r) in bit_of else 0, r.const) for r in self.phases[ph]]
            for ph in REQUEST_PHASES}
        # the same for the compiled loop, with the bit's index (-1: not prefiltered)
        self._cplans: dict[int, list[tuple[Any, ...]]] = {}
        if self._fast is not None:  # (rules do not change once the engine is built)
            memo = self._memo_specs() if optimize and os.environ.get("FSBRAIN_WEB_CHAIN_MEMO", "1").strip().lower() \
                not in ("0", "false", "no", "off") else {}
            self._cplans = {ph: [self._fast.plan_entry(r, pfb.bit_length() - 1, c, cres, id(r) in memo)
                                 for r, pfb, c in plan]
                            for ph, plan in self._plans.items()}
        self._mask_bytes = self.prefilter.size // 8 + 1

    def _direct_patterns(self) -> dict[int, Any] | None:
        """``id(operator) -> _fastweb.CRe`` for every plain ``@rx`` / ``@pm`` operator, when the compiled
        module was built with RE2 (``libre2-dev``) and RE2 takes every pattern; else None (the binding is
        used for all of them, so a rule and the prefilter set holding its pattern always agree).
        ``FSBRAIN_RE2=0`` turns it off."""
        fast = self._fast
        if fast is None or not getattr(fast, "re2_direct", lambda: False)():
            return None
        if os.environ.get("FSBRAIN_RE2", "1").strip().lower() in ("0", "false", "no", "off"):
            return None
        out: dict[int, Any] = {}
        by_pattern: dict[bytes, Any] = {}
        for r in self.rules:
            for link in r.links():
                op = link.operator
                if op is None or getattr(op, "re2_match", None) is None or id(op) in out:
                    continue
                rx = getattr(op, "regex", None)
                pattern = getattr(rx, "pattern", None)
                if type(pattern) is not bytes or not getattr(getattr(rx, "options", None), "case_sensitive", False):
                    return None
                cre = by_pattern.get(pattern)
                if cre is None:
                    try:
                        cre = by_pattern[pattern] = fast.CRe(pattern)
                    except ValueError:
                        return None
                out[id(op)] = cre
        return out

    @property
    def compiled(self) -> bool:
        """Whether the compiled rule loop and prefilter scan are in use."""
        return self._fast is not None

    def _fold_constants(self) -> None:
        """Decide once the rules whose outcome cannot vary between requests: unchained rules testing only a
        pinned TX variable (paranoia levels; rule files cannot change them). Those that never match are
        skipped; those that always match and only skip (CRS's per-file paranoia skips) just jump."""
        for r in self.rules:
            ft = r.fast_tx
            if (ft is None or r.chain is not None or r.capture or "%{" in r.op_param
                    or r.operator is None or r.tfuncs or ft[0] not in self.pinned_tx):
                continue
            res = _first_link_on_constant(r, self.initial_tx.get(ft[0]))
            if res is None:
                r.const = False  # never matches: skipped whatever its actions
            elif not (r.setvars or r.ctls or r.log or r.disruptive in ("deny", "drop", "redirect", "allow")):
                r.const = True  # always matches and only skips

    def _stable_tx(self) -> tuple[dict[str, bytes], Any]:
        """TX at the start of every request, and a predicate telling whether a TX variable keeps that value
        for the whole request: no rule run per request sets or deletes it (literal names, names built
        with macros by their literal prefix, captures ``TX:0``..``TX:9``)."""
        start_tx = dict(self.initial_tx)
        if self._start1:
            start_tx.update(self._snapshot_tx)
        written: set[str] = set()
        prefixes: list[str] = []
        for ph in REQUEST_PHASES:
            for r in self.phases[ph][self._start1 if ph == 1 else 0:]:
                for link in r.links():
                    if link.capture:
                        written.update(str(d) for d in range(10))
                    for sv in link.setvars:
                        if sv.collection != "tx":
                            continue
                        if "%{" in sv.name:
                            prefixes.append(sv.name[: sv.name.index("%{")].lower())
                        else:
                            written.add(sv.name.lower())
        pinned = self.pinned_tx

        def stable(name: str) -> bool:
            name = name.lower()
            return name in pinned or (name not in written and not any(name.startswith(p) for p in prefixes))

        return start_tx, stable

    def _fold_stable_tx(self) -> None:
        """Specialise the rules to the TX values that never change during a request (CRS's configuration:
        allowed methods, enforced body processors, limits...): operator parameters made only of such
        ``%{tx.x}`` macros are expanded and recompiled once, and unchained-side-effect-free tests of such
        a variable become constants (as :meth:`_fold_constants` does for the pinned paranoia levels)."""
        start_tx, stable = self._stable_tx()
        for r in self.rules:
            for link in r.links():
                if link.operator is None or "%{" not in link.op_param or link.op_name.lower() not in _FOLDABLE_OPS:
                    continue
                names = _MACRO.findall(link.op_param)
                if not all(n.partition(".")[0].upper() == "TX" and n.partition(".")[1] and stable(n.partition(".")[2])
                           for n in names):
                    continue
                param = _MACRO.sub(lambda m: text_lossless(start_tx.get(m.group(1).partition(".")[2].lower(), b"")),
                                   link.op_param)
                try:
                    op = compile_operator(link.op_name, param)
                except (OperatorError, ValueError):
                    continue
                link.operator, link.op_param = op, param
        for r in self.rules:
            ft = r.fast_tx
            if (r.const is not None or ft is None or "%{" in r.op_param or r.operator is None or r.tfuncs
                    or not stable(ft[0])):
                continue
            res = _first_link_on_constant(r, start_tx.get(ft[0]))
            if res is None:
                r.const = False  # the first link never matches: the rule (and its chain) never does
            elif r.chain is None and not (r.capture or r.setvars or r.ctls or r.log
                                          or r.disruptive in ("deny", "drop", "redirect", "allow")):
                r.const = True  # always matches and only skips

    def _memo_specs(self) -> dict[int, bool]:
        """``id(rule) -> True`` for the chains whose *no-match* outcome the compiled loop may memoise per
        request-header values: CRS's restricted-header rules 920450 / 920451 are the pattern
        (``REQUEST_HEADERS_NAMES "@rx ^.*$" capture, setvar:tx.header_name_920450_%{tx.0}=/%{tx.0}/, chain`` +
        ``TX:/^header_name_920450_/ "@within %{tx.restricted_headers_basic}"``): they store and scan one TX
        variable per header on every request (a fifth of a CRS PL2 request's instructions), and for a given
        list of header names their outcome and the TX they leave are always the same. A chain qualifies when:

        * it has two links; the first reads one header/cookie/query collection of phase 1 (whole, no
          exclusions, no ``multiMatch``), with an operator without macros, and its setvars only assign
          (``=``) TX variables from literals and captures ``%{tx.0}``..``%{tx.9}``, without ctl actions;
        * the second reads only ``TX:/^literal/`` selectors that no other rule's setvar can write and no
          TX variable holds at the start of a request, with an operator without macros.

        On a no-match the chain's only effects are then the first link's TX writes and the matched-variable
        state it leaves, both functions of the collection's entries; the compiled loop records them on the
        first request with those entries and replays them after (``_fastweb.run_phase``)."""
        heads = {"REQUEST_HEADERS_NAMES", "REQUEST_HEADERS", "REQUEST_COOKIES_NAMES", "REQUEST_COOKIES",
                 "ARGS_GET", "ARGS_GET_NAMES"}
        macro = re.compile(r"%\{([^}]*)\}")
        captures = {f"tx.{i}" for i in range(10)}
        # every TX name a setvar can write: literal, or the literal part before its first macro (a prefix)
        written: list[tuple[int, str, bool]] = []
        for r in self.rules:
            for link in r.links():
                for sv in link.setvars:
                    if sv.collection == "tx":
                        lit = sv.name.split("%{", 1)[0].lower()
                        written.append((id(r), lit, "%{" in sv.name))
        start = set(self._start_tx) | set(self.initial_tx)
        out: dict[int, bool] = {}
        for r in self.rules:
            c = r.chain
            if (r.kind != "rule" or r.phase != 1 or c is None or c.chain is not None or r.ctls or c.ctls
                    or r.multi_match or c.multi_match or r.exclusions or c.exclusions or r.operator is None
                    or c.operator is None or "%{" in r.op_param or "%{" in c.op_param or len(r.targets) != 1
                    or r.fast_tx is not None or c.fast_tx is not None):
                continue
            t = r.targets[0]
            if t.collection not in heads or t.key is not None or t.key_rx is not None or t.count:
                continue
            if not all(sv.collection == "tx" and sv.op == "="
                       and all(m.lower() in captures for m in macro.findall(sv.name + sv.value))
                       for sv in r.setvars):
                continue
            prefixes = []
            for ct in c.targets:
                pat = getattr(ct.key_rx, "pattern", None)
                if isinstance(pat, bytes):
                    pat = pat.decode("latin-1")
                if (ct.collection != "TX" or ct.count or ct.key is not None or not isinstance(pat, str)
                        or not re.fullmatch(r"\^[a-z0-9_]+", pat)):
                    break
                prefixes.append(pat[1:])
            else:
                if prefixes and not any(_tx_prefix_clash(p, id(r), start, written) for p in prefixes):
                    out[id(r)] = True
        return out

    def reachable_rules(self) -> list[Rule]:
        """The rules a request can reach (see :meth:`_reachable_rules`); the inspector's verdict cache checks
        these for values that change between identical requests."""
        return self._reachable_rules()

    def _reachable_rules(self) -> list[Rule]:
        """Rules a request can reach: not inside the range an always-taken skip jumps over (CRS's rules
        above the paranoia level) when no marker in that range could be jumped to."""
        out: list[Rule] = []
        for ph in REQUEST_PHASES:
            rules, markers = self.phases[ph], self.markers[ph]
            i, n = self._start1 if ph == 1 else 0, len(rules)
            while i < n:
                r = rules[i]
                i += 1
                out.append(r)
                if r.const and r.skip_after:
                    target = markers.get(r.skip_after, n - 1)
                    if not any(x.kind == "marker" for x in rules[i:target]):
                        i = target
        return out

    @staticmethod
    def _config_only(r: Rule) -> bool:
        """A rule that reads and writes only TX, with macros only from TX: same result every request."""
        if r.kind == "marker":
            return True
        if r.ctls or r.capture or r.multi_match or r.chain is not None or r.disabled:
            return False
        if r.kind == "rule" and (r.fast_tx is None or "%{" in r.op_param):
            return False
        for sv in r.setvars:
            if sv.collection != "tx":
                return False
            for text_ in (sv.name, sv.value):
                for m in re.findall(r"%\{([^}]*)\}", text_):
                    if not m.lower().startswith("tx."):
                        return False
        return True

    def _precompute_config(self) -> None:
        """Run the leading phase-1 rules that depend on TX only (CRS's initialisation) once, at load; each
        request then starts from the resulting TX snapshot after them. Stops at the first rule that reads
        the request, or that matches and logs or interrupts."""
        rules = self.phases[1]
        markers = self.markers[1]
        tr = Transaction(self, HttpRequest())
        matched: list[MatchedRule] = []
        i, n = 0, len(rules)
        while i < n:
            rule = rules[i]
            if not self._config_only(rule):
                break
            i += 1
            if rule.kind == "marker" or rule.const is False:
                continue
            if rule.kind == "rule" and not self._match_chain(tr, rule):
                continue
            if rule.log or rule.disruptive in ("deny", "drop", "redirect", "allow"):
                i -= 1  # a config rule that logs or interrupts is left to run per request
                break
            self._fire(tr, rule, matched, tr.score_added)
            if rule.skip_after:
                i = markers.get(rule.skip_after, n - 1) + 1
            elif rule.skip:
                i += rule.skip
        if i > 0 and not matched and tr.score_added == 0:
            self._start1 = i
            self._snapshot_tx = {k: v for k, v in tr.tx.items() if k not in self.initial_tx or v != self.initial_tx[k]}
        self._start_tx = {**self.initial_tx, **self._snapshot_tx}

    # ---- constructors -------------------------------------------------------------------------------
    @classmethod
    def from_files(cls, paths: list[Path], **kw: Any) -> WebRuleEngine:
        """Compile rule files in order."""
        return cls(parse_files([Path(p) for p in paths]), **kw)

    @classmethod
    def from_text(cls, text_: str, **kw: Any) -> WebRuleEngine:
        """Compile rules from a string."""
        return cls(parse_text(text_), **kw)

    @classmethod
    def from_crs(cls, path: str | Path, paranoia: int = 1, *, include_response: bool = False,
                 **kw: Any) -> WebRuleEngine:
        """Load OWASP CRS from a release folder (``crs-setup.conf[.example]`` + ``rules/``), a ``rules``
        folder, or Debian's ``/usr/share/modsecurity-crs`` (setup from ``/etc/modsecurity/crs``).

        Raises:
            PolicyError: no rule files, or a rule file is invalid (file:line).
        """
        setup, rule_files = _find_crs(Path(path))
        if not include_response:
            rule_files = [p for p in rule_files if not p.name.startswith("RESPONSE-")]
        kw.setdefault("name", f"crs-pl{paranoia}")
        return cls(parse_files(setup + rule_files), paranoia=paranoia, **kw)

    @classmethod
    def default(cls, paranoia: int = 1, **kw: Any) -> WebRuleEngine:
        """fsbrain's own rule files (``fsbrain/domains/web/rules/*.conf``)."""
        kw.setdefault("name", f"fsbrain-pl{paranoia}")
        return cls(parse_files(sorted(RULES_DIR.glob("*.conf"))), paranoia=paranoia, **kw)

    @property
    def problems(self) -> list[dict[str, Any]]:
        """Rules loaded disabled (unsupported operators), with file:line."""
        return list(self.ruleset.disabled)

    # ---- inspection ---------------------------------------------------------------------------------
    def inspect(self, req: HttpRequest) -> RuleVerdict:
        """Run the request phases (1: headers, 2: body) and score the request. Never raises on input."""
        t0 = time.perf_counter()
        # TX after the configuration rules (run once, at load) unless the rule engine is off
        tr = Transaction(self, req, self._start_tx if self.rule_engine != "Off" else None)
        matched: list[MatchedRule] = []
        interrupted: int | None = None
        fast = self._fast
        for ph in REQUEST_PHASES:
            tr.enter_phase(ph)
            if tr.rule_engine == "Off":
                break
            if fast is not None:
                interrupted = fast.run_phase(self, tr, ph, matched, self._start1 if ph == 1 else 0, _REDUCED,
                                             reduced_chain)
            else:
                interrupted = self._run_phase(tr, ph, matched, self._start1 if ph == 1 else 0)
            if interrupted is not None:
                break
        return self._verdict(tr, matched, interrupted, t0)

    def _run_phase(self, tr: Transaction, ph: int, matched: list[MatchedRule], start: int = 0) -> int | None:
        plan = self._plans[ph]
        markers = self.markers[ph]
        pf_mask = self.prefilter.mask
        match_chain = self._match_chain
        mask = 0
        i, n = start, len(plan)
        while i < n:
            rule, pfb, const = plan[i]
            i += 1
            if pfb:
                # the mask is computed once per phase (again if a ctl changed what the body exposes)
                if tr.pf_phase != ph:
                    mask = pf_mask(tr)
                elif not mask:
                    mask = tr.pf_mask
                if not mask & pfb:
                    continue
            elif rule is None:
                continue  # a marker
            if tr.removed_ids and rule.id in tr.removed_ids:
                continue
            if tr.removed_tags and any(t in rule.tags for t in tr.removed_tags):
                continue
            if const is not None and not (const and (tr.removed_targets or tr.removed_tag_targets)
                                          and self._target_removed(tr, rule)):
                if const:
                    if rule.skip_after:
                        i = markers.get(rule.skip_after, n - 1) + 1
                    elif rule.skip:
                        i += rule.skip
                continue
            before = tr.score_added
            if rule.kind == "rule" and not match_chain(tr, rule):
                continue
            self._fire(tr, rule, matched, before)
            if rule.disruptive in ("deny", "drop", "redirect") and tr.rule_engine == "On":
                return rule.id
            if rule.disruptive == "allow":
                return None
            if rule.skip_after:
                i = markers.get(rule.skip_after, n - 1) + 1
            elif rule.skip:
                i += rule.skip
        return None

    @staticmethod
    def _target_removed(tr: Transaction, rule: Rule) -> bool:
        """A ctl removed targets of this rule (a constant-outcome rule must then be evaluated)."""
        return rule.id in tr.removed_targets or any(tag in rule.tags for tag, _ in tr.removed_tag_targets)

    def _match_chain(self, tr: Transaction, rule: Rule) -> bool:
        """Evaluate a rule and its chain. As in ModSecurity, a link's setvars run once per matched variable,
        as soon as it matches, so later links can test what earlier ones set."""
        r: Rule | None = rule
        tr.rule = rule
        while r is not None:
            if not self._match_link(tr, r):
                return False
            r = r.chain
        return True

    @staticmethod
    def _match_link(tr: Transaction, r: Rule) -> bool:
        op = r.operator
        if op is None:
            return False
        names = r.transforms
        expand = tr.expand
        fast = r.fast_tx
        if fast is not None and (not tr.removed_targets or r.id not in tr.removed_targets):
            key, count, vname = fast
            tv = tr.tx.get(key)
            if count:
                res = op(b"0" if tv is None else b"1", expand)
            elif tv is None:
                return False
            else:
                if names:
                    tv = tr.transformed(tv, names, r.tfuncs)
                res = op(tv, expand)
            if r.op_negated:
                res = () if res is None else None
            if res is None:
                return False
            if r.capture and res:
                for gi, g in enumerate(res):
                    tr.tx[str(gi)] = g
            value = tv if tv is not None and not count else (b"0" if tv is None else b"1")
            tr.matched_var, tr.matched_var_name = value, vname
            tr.matched_vars = [(vname, value)]
            for sv in r.setvars:
                tr.setvar(sv.collection, sv.name, sv.op, sv.value)
            return True
        found: list[tuple[str, bytes]] = []
        for name, value, _cacheable in tr.values(r):
            if r.multi_match:
                cands = [value]
                for f in r.tfuncs:
                    nv = f(cands[-1])
                    if nv != cands[-1]:
                        cands.append(nv)
            elif not names:
                cands = [value]
            else:
                cands = [tr.transformed(value, names, r.tfuncs)]
            for cand in cands:
                res = op(cand, expand)
                if r.op_negated:
                    res = () if res is None else None
                if res is not None:
                    if r.capture and res:
                        for gi, g in enumerate(res):
                            tr.tx[str(gi)] = g
                    found.append((name, cand))
                    tr.matched_var, tr.matched_var_name = cand, name
                    tr.matched_vars = found
                    for sv in r.setvars:
                        tr.setvar(sv.collection, sv.name, sv.op, sv.value)
                    break
        if found:
            tr.matched_vars = found
            return True
        return False

    def _fire(self, tr: Transaction, rule: Rule, matched: list[MatchedRule], before: int) -> None:
        tr.rule = rule
        if rule.kind != "rule":
            for sv in rule.setvars:
                tr.setvar(sv.collection, sv.name, sv.op, sv.value)
        for link in rule.links():
            for cname, cval in link.ctls:
                tr.ctl(cname, cval)
        if not rule.log or rule.kind != "rule":
            return
        self._log_match(tr, rule, matched, tr.score_added - before)

    def _log_match(self, tr: Transaction, rule: Rule, matched: list[MatchedRule], delta: int) -> None:
        """Record a logged rule that matched (the compiled loop calls this too)."""
        value = text(tr.matched_var)
        matched.append(MatchedRule(
            id=rule.id, msg=text(tr.expand(rule.msg)) if rule.msg else "", tags=list(rule.tags),
            severity=rule.severity, paranoia=rule.paranoia, variable=tr.matched_var_name,
            value=value if len(value) <= 120 else value[:117] + "...",
            logdata=text(tr.expand(rule.logdata))[:200] if rule.logdata else "", score=max(0, delta),
            labels=self.labels_by_rule.get(rule.id, []), source=rule.where))

    def _verdict(self, tr: Transaction, matched: list[MatchedRule], interrupted: int | None,
                 t0: float) -> RuleVerdict:
        tx = tr.tx
        try:
            threshold = int(tx.get("inbound_anomaly_score_threshold", b"5"))
        except ValueError:
            threshold = 5
        if "blocking_inbound_anomaly_score" in tx:
            score = int(tx["blocking_inbound_anomaly_score"] or b"0")
        else:
            score = sum(int(tx.get(f"inbound_anomaly_score_pl{i}", b"0") or b"0")
                        for i in range(1, self.paranoia + 1))
        blocked = score >= threshold or (interrupted is not None)
        weights: dict[str, int] = {}
        reasons: list[Reason] = []
        for m in matched:
            if m.score <= 0:
                continue
            for lab in m.labels or [""]:
                if lab:
                    weights[lab] = weights.get(lab, 0) + m.score
            reasons.append(Reason(source="rule", id=str(m.id), label=m.labels[0] if m.labels else None,
                                  feature=m.variable, value=m.value, threshold=threshold, weight=m.score,
                                  message=m.msg))
        labels = sorted(weights, key=lambda k: -weights[k])
        body = tr.req.parsed_body(tr.body_processor) if tr.phase >= 2 else None
        return RuleVerdict(score=score, threshold=threshold, blocked=blocked, matched=matched, labels=labels,
                           reasons=reasons, limits_hit=list(tr.req.limits_hit), interrupted_by=interrupted,
                           body_processor=tr.body_processor, body_error=body.error if body else None,
                           paranoia=self.paranoia, latency_ms=(time.perf_counter() - t0) * 1000)


def _tx_prefix_clash(prefix: str, rule_id: int, start: set[str], written: list[tuple[int, str, bool]]) -> bool:
    """Whether a TX variable named ``prefix...`` can exist apart from what rule ``rule_id`` (an ``id()``)
    writes: one at the start of a request, or a setvar of another rule (``written``: (rule, literal name
    or literal part before the first macro, whether it has a macro))."""
    if any(k.startswith(prefix) for k in start):
        return True
    return any(rid != rule_id and (lit.startswith(prefix) or (has_macro and prefix.startswith(lit)))
               for rid, lit, has_macro in written)


def _first_link_on_constant(r: Rule, tv: bytes | None) -> Any:
    """The match result of ``r``'s first link when its one TX target holds the constant ``tv`` (``None``:
    unset; ``r.fast_tx[1]`` means the target is the variable's count), negation applied."""
    if r.fast_tx is not None and r.fast_tx[1]:
        res = r.operator(b"1" if tv is not None else b"0", lambda _t: b"")
    elif tv is None:
        res = None
    else:
        res = r.operator(tv, lambda _t: b"")
    if r.op_negated:
        res = () if res is None else None
    return res
