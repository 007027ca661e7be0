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
    """RE2 set scans per (phase, transformation chain), run lazily when the first rule of a group is
    reached (groups whose rules are all skipped, e.g. above the paranoia level, are never scanned).

    Args:
        rules: every rule of the engine.
        max_paranoia: rules tagged above this paranoia level are left out (CRS skips them anyway; an
            untagged rule above it would simply be evaluated without the prefilter).
    """

    def __init__(self, rules: list[Rule], max_paranoia: int = 4) -> None:
        groups: dict[tuple[int, tuple[str, ...]], _Group] = {}
        for r in rules:
            if not _eligible(r) or r.paranoia > max_paranoia:
                continue
            g = groups.get((r.phase, r.transforms))
            if g is None:
                g = groups[(r.phase, r.transforms)] = _Group(r.transforms, r.tfuncs, r.phase)
            g.rules.append(r)
            for t in r.targets:
                (g.colls if t.collection in _STATIC_COLLS else g.scalars).add(t.collection)
        self.groups: list[_Group] = []
        self.group_of: dict[int, int] = {}
        for g in groups.values():
            s = re2.Set.SearchSet(re2_options())
            try:
                for r in g.rules:
                    s.Add(b"(?m:" + _multiline(r.operator.regex.pattern) + b")")  # type: ignore[union-attr]
                s.Compile()
            except (re2.error, ValueError, TypeError):
                continue
            g.set = s
            gi = len(self.groups)
            self.groups.append(g)
            for r in g.rules:
                self.group_of[id(r)] = gi

    def may_match(self, tr: Transaction, rule: Rule) -> bool:
        """False when the rule's pattern occurs in none of the values it could inspect."""
        gi = self.group_of.get(id(rule))
        if gi is None:
            return True
        hits = tr.prefilter_hits.get(gi)
        if hits is None:
            hits = tr.prefilter_hits[gi] = self._scan(tr, self.groups[gi])
        return id(rule) in hits

    @staticmethod
    def _scan(tr: Transaction, g: _Group) -> set[int]:
        parts = [tr.joined(c, g.transforms, g.tfuncs) for c in g.colls]
        parts += [tr.joined(c, g.transforms, g.tfuncs, scalar=True) for c in g.scalars]
        present = [p for p in parts if p is not None]
        if not present:
            return set()
        text = b"\n".join(present)
        idx = g.set.Match(text)  # type: ignore[union-attr]
        if not idx:
            return set()
        rules = g.rules
        return {id(rules[i]) for i in idx}


def _multiline(pattern: bytes) -> bytes:
    """Make text anchors line anchors so a joined scan is a superset of per-value scans."""
    return pattern.replace(b"\\A", b"^").replace(b"\\z", b"$")
