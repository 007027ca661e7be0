"""Parse the SecLang subset OWASP CRS v4 uses into :class:`~fsbrain.domains.web.seclang.model.Rule` s.

Directives: ``SecRule``, ``SecAction``, ``SecMarker``, ``SecDefaultAction``, ``SecRuleUpdateTargetById``,
``SecRuleUpdateActionById``, ``SecRuleRemoveById``, ``SecRuleRemoveByTag``, ``SecRuleRemoveByMsg``,
``SecRuleEngine``, ``SecComponentSignature``; web-server and audit-log settings (``SecRequestBodyAccess``,
``SecAuditLog`` ...) are accepted and ignored. Every problem is collected with its ``file:line`` and the
whole set raised as one :class:`~fsbrain.core.errors.PolicyError`.

>>> rs = parse_text('SecRule ARGS "@rx a" "id:1,phase:2,t:none,t:lowercase,block,tag:attack-sqli"')
>>> rs.rules[0].id, rs.rules[0].transforms, rs.rules[0].tags
(1, ('lowercase',), ['attack-sqli'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re2

from fsbrain.core.errors import PolicyError
from fsbrain.domains.web.seclang.model import COLLECTIONS, SCALARS, SEVERITY_NAMES, Rule, SetVar, Target
from fsbrain.domains.web.seclang.operators import OperatorError, compile_operator, re2_options
from fsbrain.domains.web.transforms import TRANSFORMS

IGNORED_DIRECTIVES = frozenset(d.lower() for d in (
    "SecComponentSignature", "SecRequestBodyAccess", "SecRequestBodyLimit", "SecRequestBodyNoFilesLimit",
    "SecRequestBodyLimitAction", "SecRequestBodyJsonDepthLimit", "SecResponseBodyAccess",
    "SecResponseBodyMimeType", "SecResponseBodyLimit", "SecResponseBodyLimitAction", "SecTmpDir",
    "SecDataDir", "SecAuditEngine", "SecAuditLog", "SecAuditLogParts", "SecAuditLogType",
    "SecAuditLogStorageDir", "SecAuditLogRelevantStatus", "SecAuditLogFormat", "SecArgumentSeparator",
    "SecCookieFormat", "SecUnicodeMapFile", "SecStatusEngine", "SecDebugLog", "SecDebugLogLevel",
    "SecPcreMatchLimit", "SecPcreMatchLimitRecursion", "SecCollectionTimeout", "SecArgumentsLimit",
    "SecUploadDir", "SecUploadKeepFiles", "SecUploadFileMode", "SecTmpSaveUploadedFiles", "SecServerSignature",
    "SecWebAppId", "SecHttpBlKey", "SecGeoLookupDb", "SecHashEngine", "SecHashKey", "SecHashParam",
    "SecHashMethodRx", "SecHashMethodPm", "Include", "SecXmlExternalEntity",
))
KNOWN_ACTIONS = frozenset({
    "id", "phase", "msg", "logdata", "tag", "severity", "ver", "rev", "maturity", "accuracy", "t", "chain",
    "capture", "multimatch", "setvar", "ctl", "skipafter", "skip", "block", "deny", "pass", "allow", "drop",
    "redirect", "proxy", "log", "nolog", "auditlog", "noauditlog", "status", "initcol", "setenv", "expirevar",
    "setuid", "setsid", "sanitisematched", "sanitizematched", "sanitisearg", "sanitizearg",
    "sanitiserequestheader", "sanitiseresponseheader", "exec", "xmlns", "deprecatevar", "append",
    "prepend", "pause",
})
DISRUPTIVE = frozenset({"block", "deny", "pass", "allow", "drop", "redirect", "proxy"})
_PHASES = {"request": 2, "response": 4, "logging": 5}


@dataclass
class RuleSet:
    """Parsed rules in file order, plus what was removed, defaulted and found unsupported."""

    rules: list[Rule] = field(default_factory=list)
    removed_ids: set[int] = field(default_factory=set)
    rule_engine: str = "On"
    default_actions: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    disabled: list[dict[str, Any]] = field(default_factory=list)

    def by_id(self) -> dict[int, Rule]:
        return {r.id: r for r in self.rules if r.id}


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash-continued lines; drop comments and blanks. Returns (first line number, text)."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not buf:
            stripped = line.lstrip()
            if not stripped or stripped.startswith("#"):
                continue
            start = n
        if line.endswith("\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        out.append((start, "".join(buf).strip()))
        buf = []
    if buf:
        out.append((start, "".join(buf).strip()))
    return out


def _split_args(line: str) -> list[str]:
    """Split a directive line into words; double-quoted words keep inner backslashes except ``\\"``."""
    args: list[str] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        if line[i] == '"':
            i += 1
            buf: list[str] = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n and line[i + 1] == '"':
                    buf.append('"')
                    i += 2
                    continue
                buf.append(line[i])
                i += 1
            if i >= n:
                raise ValueError("unterminated double quote")
            args.append("".join(buf))
            i += 1
            continue
        j = i
        while j < n and not line[j].isspace():
            j += 1
        args.append(line[i:j])
        i = j
    return args


def split_actions(text: str) -> list[tuple[str, str]]:
    """``"id:1,msg:'a, b',t:none"`` -> ``[("id","1"), ("msg","a, b"), ("t","none")]``."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and (text[i].isspace() or text[i] == ","):
            i += 1
        if i >= n:
            break
        j = i
        while j < n and text[j] not in ":,":
            j += 1
        name = text[i:j].strip()
        value = ""
        if j < n and text[j] == ":":
            j += 1
            while j < n and text[j] == " ":
                j += 1
            if j < n and text[j] == "'":
                j += 1
                buf: list[str] = []
                while j < n and text[j] != "'":
                    if text[j] == "\\" and j + 1 < n and text[j + 1] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    buf.append(text[j])
                    j += 1
                if j >= n:
                    raise ValueError(f"unterminated single quote in action {name!r}")
                value = "".join(buf)
                j += 1
            else:
                k = j
                while k < n and text[k] != ",":
                    k += 1
                value = text[j:k].strip()
                j = k
        out.append((name, value))
        i = j
    return out


def _split_targets(text: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == ":" and i + 1 < n and text[i + 1] in "/'" and not "".join(buf).upper().lstrip("!&").startswith("XML"):
            quote = text[i + 1]
            buf.append(c + quote)
            i += 2
            while i < n and text[i] != quote:
                if text[i] == "\\" and i + 1 < n:
                    buf.append(text[i:i + 2])
                    i += 2
                    continue
                buf.append(text[i])
                i += 1
            buf.append(quote)
            i += 1
            continue
        if c == "|":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def parse_target(spec: str) -> Target:
    """Parse one variable like ``!REQUEST_COOKIES:/^__utm/`` or ``&TX:x``.

    Raises:
        ValueError: unknown variable or bad selector.
    """
    raw = spec
    exclude = spec.startswith("!")
    spec = spec.lstrip("!")
    count = spec.startswith("&")
    spec = spec.lstrip("&")
    name, colon, key = spec.partition(":")
    name = name.strip().upper()
    if name not in COLLECTIONS and name not in SCALARS:
        raise ValueError(f"unknown variable {name!r}")
    if not colon:
        return Target(name, count=count, exclude=exclude, raw=raw)
    if name == "XML":
        return Target(name, key=key, count=count, exclude=exclude, raw=raw)
    if len(key) >= 2 and key[0] == key[-1] == "'":
        key = key[1:-1]
    if len(key) >= 2 and key[0] == key[-1] == "/":
        try:
            rx = re2.compile(key[1:-1].encode("utf-8", "surrogateescape"), re2_options(True))
        except re2.error as exc:
            raise ValueError(f"selector regex {key!r} does not compile on RE2: {exc}") from exc
        return Target(name, key_rx=rx, count=count, exclude=exclude, raw=raw)
    return Target(name, key=key.lower(), count=count, exclude=exclude, raw=raw)


def _parse_setvar(value: str) -> SetVar:
    if value.startswith("!"):
        coll, _, name = value[1:].partition(".")
        return SetVar(coll.lower(), name.lower(), "del")
    lhs, eq, rhs = value.partition("=")
    coll, dot, name = lhs.partition(".")
    if not dot or not name:
        raise ValueError(f"setvar needs collection.name, got {value!r}")
    if not eq:
        return SetVar(coll.lower(), name.lower(), "=", "1")
    if rhs.startswith("+"):
        return SetVar(coll.lower(), name.lower(), "=+", rhs[1:])
    if rhs.startswith("-"):
        return SetVar(coll.lower(), name.lower(), "=-", rhs[1:])
    return SetVar(coll.lower(), name.lower(), "=", rhs)


class Parser:
    """Accumulates rules from several files into one :class:`RuleSet`."""

    def __init__(self) -> None:
        self.rs = RuleSet()
        self._pending_chain: Rule | None = None
        self._ids: dict[int, str] = {}

    def problem(self, source: str, line: int, message: str, severity: str = "error") -> None:
        self.rs.problems.append({"path": source, "line": line, "message": message, "severity": severity})

    def parse_file(self, path: Path) -> None:
        try:
            text = path.read_bytes().decode("utf-8", "surrogateescape")
        except OSError as exc:
            self.problem(str(path), 0, f"cannot read rule file: {exc.strerror}")
            return
        self.parse_text(text, str(path), path.parent)

    def parse_text(self, text: str, source: str = "<string>", base_dir: Path | None = None) -> None:
        for line_no, line in _logical_lines(text):
            try:
                self._directive(line, source, line_no, base_dir)
            except (ValueError, OperatorError, re2.error) as exc:
                self.problem(source, line_no, str(exc))
            except IndexError:
                self.problem(source, line_no, f"directive is missing an argument: {line[:80]!r}")

    def finish(self) -> RuleSet:
        if self._pending_chain is not None:
            r = self._pending_chain
            self.problem(r.source, r.line, "rule ends with 'chain' but no rule follows")
        if any(p["severity"] == "error" for p in self.rs.problems):
            first = next(p for p in self.rs.problems if p["severity"] == "error")
            more = len([p for p in self.rs.problems if p["severity"] == "error"]) - 1
            suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
            raise PolicyError(first["message"] + suffix, source=first["path"], line=first["line"] or None,
                              problems=self.rs.problems)
        return self.rs

    # ---- directives ---------------------------------------------------------------------------------
    def _directive(self, line: str, source: str, line_no: int, base_dir: Path | None) -> None:
        args = _split_args(line)
        if not args:
            return
        name = args[0].lower()
        if name == "secrule":
            if len(args) not in (3, 4):
                raise ValueError(f"SecRule needs VARIABLES OPERATOR [ACTIONS], got {len(args) - 1} argument(s)")
            self._rule(args[1], args[2], args[3] if len(args) == 4 else "", source, line_no, base_dir)
        elif name == "secaction":
            if len(args) != 2:
                raise ValueError("SecAction needs one quoted action list")
            self._rule(None, None, args[1], source, line_no, base_dir)
        elif name == "secmarker":
            if len(args) != 2:
                raise ValueError("SecMarker needs one name")
            self.rs.rules.append(Rule(kind="marker", source=source, line=line_no, marker=args[1], phase=0))
        elif name == "secdefaultaction":
            acts = split_actions(args[1] if len(args) > 1 else "")
            phase = next((self._phase(v) for k, v in acts if k.lower() == "phase"), 2)
            self.rs.default_actions[phase] = [(k.lower(), v) for k, v in acts if k.lower() != "phase"]
        elif name == "secruleengine":
            val = args[1] if len(args) > 1 else ""
            if val.lower() not in ("on", "off", "detectiononly"):
                raise ValueError(f"SecRuleEngine must be On, Off or DetectionOnly, got {val!r}")
            self.rs.rule_engine = val
        elif name == "secruleremovebyid":
            for a in args[1:]:
                self.rs.removed_ids.update(self._id_range(a))
            self.rs.rules = [r for r in self.rs.rules if r.id not in self.rs.removed_ids]
        elif name in ("secruleremovebytag", "secruleremovebymsg"):
            rx = re2.compile(args[1].encode("utf-8", "surrogateescape"), re2_options(True))
            attr = "tags" if name.endswith("tag") else "msg"

            def hit(r: Rule) -> bool:
                vals = r.tags if attr == "tags" else [r.msg or ""]
                return any(rx.search(v.encode("utf-8", "surrogateescape")) for v in vals)

            self.rs.rules = [r for r in self.rs.rules if not hit(r)]
        elif name == "secruleupdatetargetbyid":
            if len(args) < 3:
                raise ValueError("SecRuleUpdateTargetById needs an id and targets")
            self._update_targets(args[1], args[2])
        elif name == "secruleupdateactionbyid":
            if len(args) < 3:
                raise ValueError("SecRuleUpdateActionById needs an id and actions")
            for rid in self._id_range(args[1]):
                rule = self.rs.by_id().get(rid)
                if rule is None:
                    raise ValueError(f"SecRuleUpdateActionById: no rule with id {rid}")
                self._apply_actions(rule, split_actions(args[2]), update=True)
        elif name in IGNORED_DIRECTIVES:
            return
        else:
            raise ValueError(f"unknown directive {args[0]!r}")

    @staticmethod
    def _id_range(text: str) -> list[int]:
        lo, _, hi = text.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError as exc:
            raise ValueError(f"rule id {text!r} is not a number or range") from exc
        if b - a > 1_000_000:
            raise ValueError(f"rule id range {text!r} is too wide")
        return list(range(a, b + 1))

    def _update_targets(self, ids: str, targets: str) -> None:
        by_id = self.rs.by_id()
        for rid in self._id_range(ids):
            rule = by_id.get(rid)
            if rule is None:
                if rid in self.rs.removed_ids:
                    continue
                raise ValueError(f"SecRuleUpdateTargetById: no rule with id {rid} (it must be defined before)")
            for spec in _split_targets(targets):
                t = parse_target(spec)
                (rule.exclusions if t.exclude else rule.targets).append(t)

    @staticmethod
    def _phase(v: str) -> int:
        v = v.strip().lower()
        if v in _PHASES:
            return _PHASES[v]
        if v in ("1", "2", "3", "4", "5"):
            return int(v)
        raise ValueError(f"phase must be 1-5, request, response or logging, got {v!r}")

    def _rule(self, variables: str | None, operator: str | None, actions: str, source: str, line_no: int,
              base_dir: Path | None) -> None:
        parent = self._pending_chain
        rule = Rule(kind="rule" if variables is not None else "action", source=source, line=line_no,
                    chained=parent is not None)
        if variables is not None and operator is not None:
            for spec in _split_targets(variables):
                t = parse_target(spec)
                (rule.exclusions if t.exclude else rule.targets).append(t)
            if not rule.targets:
                raise ValueError("SecRule has no variables")
            op = operator
            if op.startswith("!"):
                rule.op_negated = True
                op = op[1:]
            if op.startswith("@"):
                name, _, param = op[1:].partition(" ")
                param = param.lstrip(" ")
            else:
                name, param = "rx", op
            rule.op_name, rule.op_param = name, param
            try:
                rule.operator = compile_operator(name, param, base_dir=base_dir)
            except OperatorError as exc:
                if "not supported" in str(exc):
                    rule.disabled = str(exc)
                    self.rs.disabled.append({"path": source, "line": line_no, "message": str(exc)})
                else:
                    raise
        acts = split_actions(actions)
        if parent is None:
            phase = next((self._phase(v) for k, v in acts if k.lower() == "phase"), 2)
            acts = self.rs.default_actions.get(phase, []) + acts
        self._apply_actions(rule, acts, update=False)
        if parent is not None:
            parent.chain = rule
            rule.phase = parent.phase
            rule.id = parent.id
        else:
            if not rule.id:
                raise ValueError("rule has no 'id' action")
            if rule.id in self._ids:
                raise ValueError(f"duplicate rule id {rule.id} (first defined at {self._ids[rule.id]})")
            self._ids[rule.id] = f"{source}:{line_no}"
            if rule.id in self.rs.removed_ids:
                rule.disabled = "removed by SecRuleRemoveById"
            self.rs.rules.append(rule)
        self._pending_chain = rule if rule.kind == "rule" and self._chains(acts) else None
        if self._pending_chain is None and rule.kind == "action" and self._chains(acts):
            raise ValueError("SecAction cannot start a chain")

    @staticmethod
    def _chains(acts: list[tuple[str, str]]) -> bool:
        return any(k.lower() == "chain" for k, _ in acts)

    def _apply_actions(self, rule: Rule, acts: list[tuple[str, str]], *, update: bool) -> None:
        tnames = list(rule.transforms) if update else []
        for key, value in acts:
            k = key.lower()
            if k not in KNOWN_ACTIONS:
                raise ValueError(f"unknown action {key!r}")
            if k == "id":
                try:
                    rule.id = int(value)
                except ValueError as exc:
                    raise ValueError(f"rule id {value!r} is not a number") from exc
            elif k == "phase":
                rule.phase = self._phase(value)
            elif k == "t":
                if value.lower() == "none":
                    tnames = []
                elif value.lower() not in TRANSFORMS:
                    raise ValueError(f"unknown transformation t:{value}")
                else:
                    tnames.append(value)
            elif k == "msg":
                rule.msg = value
            elif k == "logdata":
                rule.logdata = value
            elif k == "tag":
                rule.tags.append(value)
                m = re.fullmatch(r"paranoia-level/(\d)", value)
                if m:
                    rule.paranoia = int(m.group(1))
            elif k == "severity":
                sev = SEVERITY_NAMES.get(value.upper())
                if sev is None:
                    if not value.isdigit():
                        raise ValueError(f"unknown severity {value!r}")
                    sev = int(value)
                rule.severity = sev
            elif k == "ver":
                rule.ver = value
            elif k == "multimatch":
                rule.multi_match = True
            elif k == "capture":
                rule.capture = True
            elif k == "setvar":
                rule.setvars.append(_parse_setvar(value))
            elif k == "ctl":
                cname, eq, cval = value.partition("=")
                if not eq:
                    raise ValueError(f"ctl needs name=value, got {value!r}")
                rule.ctls.append((cname.strip().lower(), cval.strip()))
            elif k == "skipafter":
                rule.skip_after = value
            elif k == "skip":
                rule.skip = int(value) if value.isdigit() else 0
            elif k in DISRUPTIVE:
                rule.disruptive = k
            elif k == "log":
                rule.log = True
            elif k == "nolog":
                rule.log = False
        rule.transforms = tuple(tnames)
        rule.tfuncs = tuple(TRANSFORMS[t.lower()] for t in tnames)


def parse_text(text: str, source: str = "<string>", base_dir: Path | None = None) -> RuleSet:
    """Parse rules from a string.

    Raises:
        PolicyError: every problem with its line.
    """
    p = Parser()
    p.parse_text(text, source, base_dir)
    return p.finish()


def parse_files(paths: list[Path]) -> RuleSet:
    """Parse rule files in order (``@pmFromFile`` data resolves next to each file).

    Raises:
        PolicyError: every problem with its file:line.
    """
    p = Parser()
    for path in paths:
        p.parse_file(path)
    return p.finish()
