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
        self._names = sorted(((name.split("__", 1)[0], idx) for name, idx in self.groupindex.items()),
                             key=lambda x: -x[1])

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
        # names in reverse group order: of repeated names (``ip4``, ``ip4__1``) the first that took part wins
        return {base: text[sp[0]:sp[1]] for base, idx in self._names if (sp := spans[idx])[0] >= 0}


def strip_groups(pattern: str) -> str | None:
    """``pattern`` with every capturing group made non-capturing (``None`` when unsure how to).

    A regex without groups lets RE2 answer with its DFA alone (no submatch engine), several times faster.

    >>> strip_groups(r"^(?P<a>x)(y|[(]\\()z")
    '^(?:x)(?:y|[(]\\\\()z'
    """
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            if j >= n:
                return None
            out.append(pattern[i:j + 1])
            i = j + 1
            continue
        if c == "(":
            if pattern.startswith("(?P<", i):
                j = pattern.find(">", i)
                if j < 0:
                    return None
                out.append("(?:")
                i = j + 1
                continue
            if pattern.startswith("(?", i):
                out.append("(?")
                i += 2
                continue
            out.append("(?:")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


class PrefixProbe:
    """Reuse the groups of a ``prefregex`` ending in ``(?P<content>.+)$`` for lines sharing its head.

    fail2ban filters split every line with a ``prefregex`` like
    ``^(?P<mlfid>PREFIX)LEVEL(?P<content>.+)$`` before the failregexes run on the content. Its submatch
    run is the most expensive regex call per line. This probe runs the *head* (everything before the
    content group) without groups, which RE2 answers with its DFA alone, and looks the result up:

    * the head's leftmost-first match ``[0, e)`` is the highest-priority way through the head; when it
      leaves a non-empty rest without a line break, the full regex takes exactly that way too (it is
      the first way that lets ``.+$`` match), so the content starts at ``e``;
    * two lines with the same first ``e`` bytes (``e + 1`` when the head has ``\\b``, ``\\B`` or ``$``,
      whose outcome depends on the next byte) whose head both end at ``e`` take the same way through it,
      so they have the same prefix groups (``mlfid`` ...). Those are remembered per head text.

    A line whose head text was not seen before runs the full regex once (and is remembered when its
    content starts where the head ends). The result is always what the full regex gives.
    """

    __slots__ = ("_head", "_memo", "_extra", "_anchor", "content_index")
    MAX_MEMO = 8192

    def __init__(self, prefregex: ByteRegex) -> None:
        self._head: Any = None
        self._memo: dict[bytes, dict[str, bytes]] = {}
        tail = "(?P<content>.+)$"
        pat = prefregex.pattern
        self.content_index = prefregex.groupindex.get("content", -1)
        if prefregex.engine != "re2" or not pat.endswith(tail):
            return
        head = pat[:-len(tail)]
        if (len(head) - len(head.rstrip("\\"))) % 2 == 1 or "(?P<content>" in head:
            return
        stripped = strip_groups(_rewrite_for_re2(head))
        if stripped is None:
            return
        opts = re2.Options()
        opts.log_errors = False
        opts.max_mem = 32 << 20
        rx = _re2.RE2(stripped.encode("utf-8"), opts)
        if not rx.ok() or rx.NumberOfCapturingGroups() != 0:
            return
        self._head = rx
        self._extra = 1 if ("\\b" in head or "\\B" in head or "$" in head) else 0
        self._anchor = _re2.RE2.Anchor.UNANCHORED

    @property
    def usable(self) -> bool:
        return self._head is not None

    def lookup(self, text: bytes) -> tuple[bytes, dict[str, bytes] | None, int]:
        """``(key, groups, e)``: the remembered prefix groups for ``text`` (``None`` if unknown) and
        where the content starts (``-1``: this line cannot use the shortcut)."""
        sp = self._head.Match(self._anchor, text, 0, len(text))[0]
        e = sp[1]
        if sp[0] != 0 or e >= len(text) or 10 in text:
            return b"", None, -1
        key = text[:e + self._extra]
        return key, self._memo.get(key), e

    def remember(self, key: bytes, groups: dict[str, bytes]) -> None:
        if len(self._memo) >= self.MAX_MEMO:
            self._memo.clear()
        self._memo[key] = groups


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
