"""A prefilter that decides, with one RE2 set scan per transformation chain, which regex rules can match.

Rules whose operator is a fixed regular expression or phrase list (``@rx``, ``@pm``, ``@pmFromFile``),
not negated, not ``multiMatch``, over request variables only, are grouped by transformation chain. For
each group and request phase, the values of every variable any rule of the group inspects are
transformed once (sharing the transaction's cache with rule evaluation), joined by newlines and scanned
once by an ``re2.Set`` of the group's patterns in multi-line mode. A rule none of whose patterns hit
cannot match and is skipped; a hit only means "evaluate normally". Multi-line mode and joining make the
scan a superset of per-value matching, so the prefilter never hides a match.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import re2

from fsbrain.domains.web.seclang.model import Rule
from fsbrain.domains.web.seclang.operators import re2_options

if TYPE_CHECKING:
    from fsbrain.domains.web.seclang.transaction import Transaction

_STATIC_COLLS = frozenset({"ARGS", "ARGS_GET", "ARGS_POST", "ARGS_NAMES", "ARGS_GET_NAMES",
                           "ARGS_POST_NAMES", "REQUEST_HEADERS", "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES",
                           "REQUEST_COOKIES_NAMES", "FILES", "FILES_NAMES", "MULTIPART_PART_HEADERS", "XML"})
_STATIC_SCALARS = frozenset({"REQUEST_METHOD", "REQUEST_URI", "REQUEST_URI_RAW", "REQUEST_FILENAME",
                             "REQUEST_BASENAME", "REQUEST_LINE", "REQUEST_PROTOCOL", "QUERY_STRING",
                             "REQUEST_BODY"})


def _eligible(rule: Rule) -> bool:
    op = rule.operator
    if rule.kind != "rule" or op is None or rule.op_negated or rule.multi_match:
        return False
    if getattr(op, "regex", None) is None or rule.op_name.lower() not in ("rx", "pm", "pmfromfile", "pmf"):
        return False
    return all(not t.count and (t.collection in _STATIC_COLLS or t.collection in _STATIC_SCALARS)
               for t in rule.targets)


class _Group:
    __slots__ = ("transforms", "tfuncs", "phase", "colls", "scalars", "rules", "set")

    def __init__(self, transforms: tuple[str, ...], tfuncs: tuple, phase: int) -> None:  # type: ignore[type-arg]
        self.transforms = transforms
        self.tfuncs = tfuncs
        self.phase = phase
        self.colls: set[str] = set()
        self.scalars: set[str] = set()
        self.rules: list[Rule] = []
        self.set: re2.Set | None = None


class Prefilter:
    """Per-phase RE2 set scans; ``rule_index`` holds the ids of rules it can rule out."""

    def __init__(self, rules: list[Rule]) -> None:
        groups: dict[tuple[int, tuple[str, ...]], _Group] = {}
        for r in rules:
            if not _eligible(r):
                continue
            g = groups.get((r.phase, r.transforms))
            if g is None:
                g = groups[(r.phase, r.transforms)] = _Group(r.transforms, r.tfuncs, r.phase)
            g.rules.append(r)
            for t in r.targets:
                (g.colls if t.collection in _STATIC_COLLS else g.scalars).add(t.collection)
        self.groups: list[_Group] = []
        self.rule_index: set[int] = set()
        for g in groups.values():
            s = re2.Set.SearchSet(re2_options())
            try:
                for r in g.rules:
                    s.Add(b"(?m:" + _multiline(r.operator.regex.pattern) + b")")  # type: ignore[union-attr]
                s.Compile()
            except (re2.error, ValueError, TypeError):
                continue
            g.set = s
            self.groups.append(g)
            self.rule_index.update(id(r) for r in g.rules)

    def scan(self, tr: Transaction, phase: int) -> set[int] | None:
        """Ids (``id(rule)``) of prefiltered rules whose pattern occurs in this phase's values."""
        if not self.groups:
            return None
        hits: set[int] = set()
        cache = tr.tcache
        values_of: dict[str, list[tuple[str, bytes]]] = {}
        for g in self.groups:
            if g.phase != phase:
                continue
            parts: list[bytes] = []
            for c in g.colls:
                entries = values_of.get(c)
                if entries is None:
                    if c == "XML":
                        entries = tr.xml("/*") + tr.xml("//@*")
                    else:
                        entries = [(f"{c}:{k}", v) for k, v in tr.collection(c)]
                    values_of[c] = entries
                for name, v in entries:
                    parts.append(_transformed(cache, name, v, g))
            for c in g.scalars:
                v = tr.scalar(c)
                if v is not None:
                    parts.append(_transformed(cache, c, v, g))
            if not parts:
                continue
            idx = g.set.Match(b"\n".join(parts))  # type: ignore[union-attr]
            if idx:
                rules = g.rules
                hits.update(id(rules[i]) for i in idx)
        return hits


def _transformed(cache: dict, name: str, value: bytes, g: _Group) -> bytes:  # type: ignore[type-arg]
    if not g.transforms:
        return value
    key = (value, g.transforms)
    tv = cache.get(key)
    if tv is None:
        tv = value
        for f in g.tfuncs:
            tv = f(tv)
        cache[key] = tv
    return tv  # type: ignore[no-any-return]


def _multiline(pattern: bytes) -> bytes:
    """Make text anchors line anchors so a joined scan is a superset of per-value scans."""
    return pattern.replace(b"\\A", b"^").replace(b"\\z", b"$")
