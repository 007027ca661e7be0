"""Turn fail2ban regex text into compiled byte regexes, on RE2 where possible.

fail2ban failregex lines use tags on top of Python regex syntax:

* ``<HOST>`` (an IPv4 or IPv6 address, optionally in brackets, or a DNS name), ``<ADDR>`` (address
  only), ``<IP4>``, ``<IP6>``, ``<DNS>``, ``<CIDR>``, ``<SUBNET>``;
* field tags ``<F-NAME>...</F-NAME>`` which become named groups (``<F-USER>`` → ``user``, ``<F-ID>`` →
  ``fid``, ``<F-MLFID>`` → ``mlfid``, ``<F-NOFAIL>`` → ``nofail``, ``<F-CONTENT>`` → ``content``...).

The result is compiled with RE2 (linear time, no catastrophic backtracking) through the low-level binding
on bytes, which avoids the per-call cost of the ``re``-compatible wrapper. The few PCRE constructs RE2
lacks are first rewritten where an equivalent exists (``\\Z`` → ``\\z``, possessive-free atomic groups,
``(?P=name)`` is not rewritable). Patterns that still need backtracking (look-around, back-references,
conditionals) fall back to Python ``re`` with input bounded to :data:`FALLBACK_MAX_LINE` bytes; each
fallback is counted in :data:`STATS` and reported by the loader.

>>> rx = compile_bytes(translate_tags(r"^Failed password for <F-USER>\\S+</F-USER> from <HOST>"))
>>> rx.engine
're2'
>>> g = rx.groupdict(b"Failed password for root from 192.0.2.1 port 22")
>>> g["user"], g["ip4"]
(b'root', b'192.0.2.1')
"""

from __future__ import annotations

import re
from typing import Any

import re2
from re2 import _re2

from fsbrain.core.errors import PolicyError

FALLBACK_MAX_LINE = 4096
STATS = {"re2": 0, "python_re": 0}

_IP4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_H16 = r"[0-9a-fA-F]{1,4}"
# IPv6: full, compressed (with ::) and IPv4-suffixed forms; zone ids (%eth0) allowed
_IP6 = (rf"(?:(?:{_H16}:){{7}}{_H16}"
        rf"|(?:{_H16}:){{1,4}}:{_IP4}"
        rf"|::(?:ffff(?::0{{1,4}})?:)?{_IP4}"
        rf"|(?:{_H16}:){{1,6}}(?::{_H16}){{1,6}}"
        rf"|:(?::{_H16}){{1,7}}"
        rf"|(?:{_H16}:){{1,7}}:"
        rf"|::)(?:%[0-9a-zA-Z]+)?")
_DNS = r"[\w\-.^_]*\w"

# RE2's submatch engines slow down with program size, and the exact IPv6 grammar is large; the tags use
# this compact shape (hex groups and colons, optional dotted IPv4 tail, zone id) and the engine checks
# the captured text with ipaddress afterwards (see logparse._host).
_IP6_SHAPE = r"(?:[0-9a-fA-F]{1,4})?(?::[0-9a-fA-F]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?:%[0-9a-zA-Z]+)?"

HOST_TAGS = {
    "IP4": rf"(?:::f{{4,6}}:)?(?P<ip4>{_IP4})",
    "IP6": rf"(?P<ip6>{_IP6_SHAPE})",
    "DNS": rf"(?P<dns>{_DNS})",
    "CIDR": r"(?P<cidr>\d+)",
}
HOST_TAGS["ADDR"] = rf"\[?(?:{HOST_TAGS['IP4']}|{HOST_TAGS['IP6']})\]?"
HOST_TAGS["HOST"] = rf"(?:{HOST_TAGS['ADDR']}|{HOST_TAGS['DNS']})"
HOST_TAGS["SUBNET"] = rf"\[?(?:{HOST_TAGS['IP4']}|{HOST_TAGS['IP6']})(?:/{HOST_TAGS['CIDR']})?\]?"

FIELD_ALIASES = {"ID": "fid", "USER": "user", "ALT_USER": "alt_user", "MLFID": "mlfid",
                 "NOFAIL": "nofail", "MLFFORGET": "mlfforget", "MLFGAINED": "mlfgained",
                 "CONTENT": "content"}

_TAG_RE = re.compile(r"<(HOST|ADDR|IP4|IP6|DNS|CIDR|SUBNET)>")
_FIELD_OPEN = re.compile(r"<F-([A-Za-z][\w]*)>")
_FIELD_CLOSE = re.compile(r"</F-([A-Za-z][\w]*)>")
_GROUP_NAME = re.compile(r"\(\?P<([A-Za-z_]\w*)>")


def translate_tags(regex: str) -> str:
    """Replace fail2ban tags by named groups; repeated names get a ``__N`` suffix (merged on read)."""
    out = _TAG_RE.sub(lambda m: HOST_TAGS[m.group(1)], regex).replace("<SKIPLINES>", r"(?:[^\n]*\n)*?")
    out = _FIELD_OPEN.sub(lambda m: f"(?P<{FIELD_ALIASES.get(m.group(1).upper(), m.group(1).lower())}>", out)
    out = _FIELD_CLOSE.sub(")", out)
    seen: dict[str, int] = {}

    def rename(m: re.Match[str]) -> str:
        name = m.group(1)
        n = seen.get(name, 0)
        seen[name] = n + 1
        return m.group(0) if n == 0 else f"(?P<{name}__{n}>"

    return _GROUP_NAME.sub(rename, out)


_INLINE_FLAGS = re.compile(r"(?<!\\)\(\?([aiLmsux]+)\)")


def _hoist_flags(regex: str) -> str:
    """Move inline global flags (``(?i)``) to the front, as Python 3.11 requires (fail2ban does the same)."""
    flags = set("".join(_INLINE_FLAGS.findall(regex)))
    if not flags:
        return regex
    return f"(?{''.join(sorted(flags))})" + _INLINE_FLAGS.sub("", regex)


_OPEN_MIN = re.compile(r"(?<!\\)\{,(\d+)\}")


def _rewrite_for_re2(regex: str) -> str:
    r"""Python-only spellings RE2 would misread: ``\Z`` (end) and ``{,n}`` (RE2 reads it literally)."""
    return _OPEN_MIN.sub(r"{0,\1}", regex.replace(r"\Z", r"\z"))


class ByteRegex:
    """A compiled regex over bytes with one fast call: :meth:`spans`.

    Args:
        pattern: Python/RE2 regex text (already tag-translated).
        multiline: make ``^``/``$`` match at line breaks (multi-line buffers).
    """

    __slots__ = ("pattern", "engine", "groupindex", "_re2", "_py", "_anchor", "_names")
    _names: list[tuple[str, int]]

    def __init__(self, pattern: str, *, multiline: bool = False) -> None:
        self.pattern = pattern
        self._re2: Any = None
        self._py: re.Pattern[bytes] | None = None
        rewritten = _rewrite_for_re2(pattern)
        # RE2 rejects what it cannot run (look-around, back-references, conditionals): fall back then
        opts = re2.Options()
        opts.log_errors = False
        opts.max_mem = 32 << 20
        body = ("(?m)" if multiline else "") + rewritten
        compiled = _re2.RE2(body.encode("utf-8"), opts)
        if compiled.ok():
            self._re2 = compiled
            self.engine = "re2"
            self.groupindex = {k.decode(): v for k, v in compiled.NamedCapturingGroups()}
            STATS["re2"] += 1
        if self._re2 is None:
            try:
                self._py = re.compile(_hoist_flags(pattern).encode("utf-8"), re.MULTILINE if multiline else 0)
            except re.error as exc:
                raise PolicyError(f"invalid regex {pattern!r}: {exc}") from exc
            self.engine = "python_re"
            self.groupindex = dict(self._py.groupindex)
            STATS["python_re"] += 1
        self._anchor = _re2.RE2.Anchor.UNANCHORED
        self._names = [(name.split("__", 1)[0], idx) for name, idx in self.groupindex.items()]

    def spans(self, text: bytes) -> list[tuple[int, int]] | None:
        """Byte spans of the whole match and every group (``(-1, -1)`` when unset), or ``None``."""
        if self._re2 is not None:
            spans = self._re2.Match(self._anchor, text, 0, len(text))
            return None if spans[0][0] < 0 else spans
        assert self._py is not None
        m = self._py.search(text[:FALLBACK_MAX_LINE])
        if m is None:
            return None
        return [m.span(i) for i in range(m.re.groups + 1)]

    def groupdict(self, text: bytes) -> dict[str, bytes] | None:
        """Named groups that took part in the match (merged ``name__N`` variants), or ``None``."""
        spans = self.spans(text)
        if spans is None:
            return None
        return self.groups_from(text, spans)

    def groups_from(self, text: bytes, spans: list[tuple[int, int]]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for base, idx in self._names:
            s, e = spans[idx]
            if s >= 0 and base not in out:
                out[base] = text[s:e]
        return out


def compile_bytes(pattern: str, *, multiline: bool = False) -> ByteRegex:
    """Compile ``pattern`` (no fail2ban tags) for byte input; see :class:`ByteRegex`."""
    return ByteRegex(pattern, multiline=multiline)


def compile_failregex(regex: str, *, multiline: bool = False) -> ByteRegex:
    """Translate fail2ban tags in one failregex line and compile it."""
    return ByteRegex(translate_tags(regex), multiline=multiline)


class RegexSet:
    """Which of several regexes match a line, in one RE2 pass (RE2::Set); fallbacks tried one by one.

    Args:
        regexes: compiled regexes in priority order.
    """

    def __init__(self, regexes: list[ByteRegex]) -> None:
        self.regexes = regexes
        self._set: Any = None
        self._set_index: list[int] = []
        self._fallback = [i for i, r in enumerate(regexes) if r.engine != "re2"]
        re2_idx = [i for i, r in enumerate(regexes) if r.engine == "re2"]
        if len(re2_idx) > 1:
            opts = re2.Options()
            opts.log_errors = False
            opts.max_mem = 64 << 20
            s = _re2.Set(_re2.RE2.Anchor.UNANCHORED, opts)
            ok = True
            for i in re2_idx:
                if s.Add(_rewrite_for_re2(regexes[i].pattern).encode("utf-8")) < 0:
                    ok = False
                    break
            if ok and s.Compile():
                self._set, self._set_index = s, re2_idx
        if self._set is None:
            self._fallback = list(range(len(regexes)))

    def first(self, text: bytes) -> tuple[int, list[tuple[int, int]]] | None:
        """Index and spans of the first regex (in priority order) matching ``text``."""
        candidates: list[int] = []
        if self._set is not None:
            hits = self._set.Match(text)
            if hits:
                candidates = sorted(self._set_index[h] for h in hits)
        if self._fallback:
            candidates = sorted(set(candidates) | set(self._fallback))
        for i in candidates:
            spans = self.regexes[i].spans(text)
            if spans is not None:
                return i, spans
        return None


def _skip_group(p: str, i: int) -> int:
    """Index just past the group opening at ``p[i] == '('``."""
    depth, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = _skip_class(p, i)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _skip_class(p: str, i: int) -> int:
    """Index just past the character class opening at ``p[i] == '['``."""
    j = i + 1
    if j < len(p) and p[j] == "^":
        j += 1
    if j < len(p) and p[j] == "]":
        j += 1
    while j < len(p) and p[j] != "]":
        j += 2 if p[j] == "\\" else 1
    return j + 1


def _split_alternatives(p: str) -> list[str]:
    """Split ``p`` at its top-level ``|``."""
    parts, depth, i, last = [], 0, 0, 0
    while i < len(p):
        c = p[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = _skip_class(p, i)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(p[last:i])
            last = i + 1
        i += 1
    parts.append(p[last:])
    return parts


def _group_body(group: str) -> str:
    """The inside of ``(...)`` without its ``?:`` / ``?P<name>`` / flag prefix."""
    inner = group[1:-1]
    if inner.startswith("?P<"):
        return inner[inner.index(">") + 1:]
    if inner.startswith("?:"):
        return inner[2:]
    if inner.startswith("?"):
        return "\x00"  # look-around, flags, conditionals: nothing usable
    return inner


def _score(req: tuple[str, ...]) -> tuple[int, int]:
    return (min(len(x.encode()) for x in req), -len(req))


def _requirements(p: str, depth: int = 0) -> list[tuple[str, ...]]:
    """Requirements of a sequence: each a tuple of literals, one of which every match contains."""
    if depth > 20:
        return []
    alts = _split_alternatives(p)
    if len(alts) > 1:
        best = [_best(_requirements(a, depth + 1)) for a in alts]
        if all(b is not None for b in best):
            return [tuple(sorted({x for b in best for x in b}))]  # type: ignore[union-attr]
        return []
    reqs: list[tuple[str, ...]] = []
    cur: list[str] = []
    i, n = 0, len(p)

    def flush() -> None:
        if cur:
            reqs.append(("".join(cur),))
            cur.clear()

    while i < n:
        c = p[i]
        lit: str | None = None
        if c == "\\" and i + 1 < n:
            nxt = p[i + 1]
            i += 2
            if nxt.isalnum():
                lit = {"n": "\n", "t": "\t", "r": "\r"}.get(nxt)
                if lit is None:
                    flush()
                    continue
            else:
                lit = nxt
        elif c == "(":
            flush()
            j = _skip_group(p, i)
            optional = j < n and p[j] in "*?{"
            if not optional:
                reqs.extend(_requirements(_group_body(p[i:j]), depth + 1))
            i = j
            continue
        elif c == "[":
            flush()
            i = _skip_class(p, i)
            continue
        elif c in "^$.":
            flush()
            i += 1
            continue
        elif c in "*+?{}":
            flush()
            i += 1
            if c == "{":
                while i < n and p[i] != "}":
                    i += 1
                i += 1
            continue
        else:
            lit = c
            i += 1
        if lit is not None:
            q = p[i] if i < n else ""
            if q in ("*", "?", "{"):
                flush()  # the char before an optional quantifier is not required
                continue
            cur.append(lit)
            if q == "+":
                flush()
    flush()
    return reqs


def _best(reqs: list[tuple[str, ...]]) -> tuple[str, ...] | None:
    return max(reqs, key=_score, default=None)


def required_literals(pattern: str, min_len: int = 3) -> tuple[bytes, ...] | None:
    """Literals of which every match contains at least one (``None``: no cheap pre-check possible).

    Used to skip a regex quickly (``any(lit in line for lit in lits)``) before running it.

    >>> required_literals(r"^Failed \\S+ for (?P<user>.*?) from x$")
    (b'Failed ',)
    >>> required_literals(r"^(?:Connection (?:closed|reset)|Disconnected) by")
    (b'Connection ', b'Disconnected')
    >>> required_literals(r"^(?i)root") is None, required_literals(r"a|\\d") is None
    (True, True)
    """
    if "(?i" in pattern:
        return None
    best = _best(_requirements(pattern))
    if best is None or _score(best)[0] < min_len:
        return None
    return tuple(x.encode("utf-8") for x in best)


def first_bytes(pattern: str, depth: int = 0) -> frozenset[int] | None:
    """The bytes a match of an anchored ``^...`` pattern can start with, or ``None`` when unknown.

    Used to try only the failregexes that can match a message starting with a given byte.

    >>> sorted(first_bytes(r"^(?:Connection (?:closed|reset)|Disconnected) by"))
    [67, 68]
    >>> sorted(first_bytes(r"^[iI]nvalid user")), first_bytes(r"^\\s*x"), first_bytes(r"x")
    ([73, 105], None, None)
    """
    if depth > 10 or not pattern.startswith("^"):
        return None
    q = pattern[1:]
    while q.startswith("(?P<") or q.startswith("(?:"):
        end = _skip_group(q, 0)
        if end < len(q) and q[end] in "*?{":
            return None  # an optional group: the match may start after it
        inner = _group_body(q[:end])
        alts = _split_alternatives(inner)
        if len(alts) > 1:
            sets = [first_bytes("^" + a, depth + 1) for a in alts]
            if any(s is None for s in sets):
                return None
            return frozenset().union(*sets)  # type: ignore[arg-type]
        if not inner:
            q = q[end:]
            continue
        q = inner + q[end:]  # the group's content comes first
    if not q:
        return None
    c = q[0]
    if c == "\\":
        if len(q) < 2 or q[1].isalnum():
            return None
        lit, rest = q[1], q[2:]
    elif c == "[":
        end = _skip_class(q, 0)
        body = q[1:end - 1]
        if not body or body.startswith("^") or "\\" in body or "-" in body[1:-1]:
            return None
        if end < len(q) and q[end] in "*?{":
            return None
        return frozenset(body.encode("utf-8")[:1] if len(body.encode("utf-8")) != len(body) else body.encode())
    elif c.isalnum() or c in " :_/<>=\"'@!#%,;&~`":
        lit, rest = c, q[1:]
    else:
        return None
    if rest[:1] in ("*", "?", "{"):
        return None
    b = lit.encode("utf-8")
    return frozenset(b[:1])
