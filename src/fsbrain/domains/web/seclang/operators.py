"""SecLang operators (``@rx``, ``@pm``, ``@within`` ...), compiled once, matching bytes.

Every operator is a callable ``op(value: bytes, expand) -> tuple[bytes, ...] | None``: ``None`` when it
does not match, otherwise the captures (``TX.0`` .. ``TX.9``; empty for operators without captures).
``expand`` expands ``%{...}`` macros for operators whose parameter contains them.

Regular expressions run on RE2 with Latin-1 byte semantics and ``dot_nl`` (ModSecurity compiles with
PCRE_DOTALL and matches bytes), so no input can make matching super-linear. The few PCRE-only constructs
CRS could use are translated by :func:`pcre_to_re2`; a pattern RE2 still rejects is a
:class:`~fsbrain.core.errors.PolicyError` naming the file and line.

Not supported (a rule using them is loaded disabled and listed in ``WebRuleEngine.problems``):
``@rbl``, ``@geoLookup``, ``@inspectFile``, ``@fuzzyHash``, ``@validateDTD``, ``@validateSchema``,
``@verifyCC``, ``@verifyCPF``, ``@verifySSN``, ``@gsbLookup``, ``@rsub``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path

import re2

from fsbrain.domains.web.seclang import injection

Captures = tuple[bytes, ...]
Expand = Callable[[str], bytes]
Operator = Callable[[bytes, Expand], Captures | None]

UNSUPPORTED = {"rbl", "geolookup", "inspectfile", "fuzzyhash", "validatedtd", "validateschema", "verifycc",
               "verifycpf", "verifyssn", "gsblookup", "rsub"}

_NO: Captures = ()
_OPTS_CACHE: dict[bool, re2.Options] = {}


class OperatorError(ValueError):
    """An operator's parameter is invalid (the parser turns it into a PolicyError with file:line)."""


def re2_options(case_insensitive: bool = False) -> re2.Options:
    """Latin-1 (byte) semantics, ``.`` matches newline, a generous DFA memory budget."""
    opts = _OPTS_CACHE.get(case_insensitive)
    if opts is None:
        opts = re2.Options()
        opts.encoding = re2.Options.Encoding.LATIN1
        opts.dot_nl = True
        opts.max_mem = 64 << 20
        opts.case_sensitive = not case_insensitive
        opts.log_errors = False
        _OPTS_CACHE[case_insensitive] = opts
    return opts


_POSSESSIVE = re.compile(r"(?<!\\)([*+?}])\+")
_ATOMIC = re.compile(r"\(\?>")


def pcre_to_re2(pattern: str) -> str:
    """Translate PCRE-only syntax with an RE2 equivalent for matching purposes.

    Possessive quantifiers and atomic groups only change backtracking, not which strings match when the
    match result is only used as a boolean or captured as a whole, so they become their plain forms;
    ``\\Z`` becomes ``\\z`` with an optional final newline.
    """
    if "+" in pattern:
        pattern = _POSSESSIVE.sub(r"\1", pattern)
    if "(?>" in pattern:
        pattern = _ATOMIC.sub("(?:", pattern)
    if "\\Z" in pattern:
        pattern = pattern.replace("\\Z", "(?:\\n?\\z)")
    return pattern


def compile_rx(pattern: str, *, case_insensitive: bool = False) -> re2._Regexp:
    """Compile a SecLang ``@rx`` pattern on RE2.

    Raises:
        OperatorError: RE2 cannot compile it, even after translation.
    """
    opts = re2_options(case_insensitive)
    try:
        return re2.compile(pattern.encode("utf-8", "surrogateescape"), opts)
    except re2.error:
        pass
    try:
        return re2.compile(pcre_to_re2(pattern).encode("utf-8", "surrogateescape"), opts)
    except re2.error as exc:
        raise OperatorError(f"regular expression does not compile on RE2 ({exc}): {pattern[:120]!r}") from exc


def _rx(param: str) -> Operator:
    if "%{" in param:
        cache: dict[bytes, re2._Regexp] = {}

        def dyn(value: bytes, expand: Expand) -> Captures | None:
            pat = expand(param)
            rx = cache.get(pat)
            if rx is None:
                rx = cache[pat] = compile_rx(pat.decode("utf-8", "surrogateescape"))
            m = rx.search(value)
            return None if m is None else _groups(m)

        return dyn
    rx = compile_rx(param)
    op = _fast_search(rx)
    if param in MATCH_ALL_PATTERNS and getattr(op, "re2_match", None) is not None:
        # with ``.`` matching newline these match the whole value, whatever it is (CRS 920450 / 920451 run
        # ``^.*$`` on every header name): the compiled loop returns the value as capture 0 without RE2
        op.c_code, op.c_arg = C_MATCH_ALL, None  # type: ignore[attr-defined]

    op.regex = rx  # type: ignore[attr-defined]
    op.pattern = param  # type: ignore[attr-defined]
    return op


_UNANCHORED = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)


def _fast_search(rx: re2._Regexp) -> Operator:
    """A search returning captures, calling the compiled RE2 object directly (the Python wrapper's
    generator-based ``search`` costs several microseconds per call)."""
    raw = getattr(rx, "_regexp", None)
    if raw is None or _UNANCHORED is None:
        def slow(value: bytes, _expand: Expand) -> Captures | None:
            m = rx.search(value)
            return None if m is None else _groups(m)

        return slow
    anchor = _UNANCHORED

    def op(value: bytes, _expand: Expand) -> Captures | None:
        spans = raw.Match(anchor, value, 0, len(value))
        if spans[0][0] < 0:
            return None
        return tuple(value[a:b] if a >= 0 else b"" for a, b in spans[:10])

    # what the compiled rule loop (_fastweb) calls instead of this closure, with the same result
    op.re2_match, op.re2_anchor = raw.Match, anchor  # type: ignore[attr-defined]
    return op


def _groups(m: re2._Match) -> Captures:
    g = [m.group(0)]
    for i in range(1, min(10, m.re.groups + 1)):
        g.append(m.group(i) or b"")
    return tuple(g)


def _phrases_matcher(phrases: list[bytes]) -> Operator:
    if not phrases:
        return lambda _v, _e: None
    # longest first so the capture is the longest phrase at the leftmost position
    alts = sorted(set(phrases), key=len, reverse=True)
    rx = re2.compile(b"(?i)(?:" + b"|".join(re2.escape(p) for p in alts) + b")", re2_options())
    op = _fast_search(rx)

    op.regex = rx  # type: ignore[attr-defined]
    return op


def _load_phrase_files(param: str, base_dir: Path | None) -> list[bytes]:
    out: list[bytes] = []
    for name in param.split():
        p = Path(name)
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise OperatorError(f"cannot read phrase file {name!r}: {exc.strerror}") from exc
        for line in data.splitlines():
            line = line.strip()
            if line and not line.startswith(b"#"):
                out.append(line)
    return out


def _int(v: bytes) -> int:
    v = v.strip()
    try:
        return int(v)
    except ValueError:
        m = re.match(rb"[+-]?\d+", v)
        return int(m.group(0)) if m else 0


# codes of the constant-parameter comparisons the compiled rule loop (``_fastweb._run_op``) runs itself
# (``op.c_code``, ``op.c_arg``): numeric eq ge gt le lt, then streq beginsWith endsWith contains within
C_CODES = {"eq": 0, "ge": 1, "gt": 2, "le": 3, "lt": 4, "streq": 10, "beginswith": 11, "endswith": 12,
           "contains": 13, "strmatch": 13, "within": 14}
# ``@rx`` patterns that match every whole value (``re2_options``: ``.`` matches newline); code ``C_MATCH_ALL``
MATCH_ALL_PATTERNS = frozenset({"^.*$", ".*", "^.*", "(?s)^.*$", "(?s).*"})
C_MATCH_ALL = 20


def _numeric(param: str, cmp: Callable[[int, int], bool], code: int = -1) -> Operator:
    if "%{" in param:
        return lambda v, e: _NO if cmp(_int(v), _int(e(param))) else None
    rhs = _int(param.encode())
    op = lambda v, _e: _NO if cmp(_int(v), rhs) else None  # noqa: E731
    op.c_code, op.c_arg = code, rhs  # type: ignore[attr-defined]
    return op


def _string(param: str, test: Callable[[bytes, bytes], bool], code: int = -1) -> Operator:
    if "%{" in param:
        return lambda v, e: _NO if test(v, e(param)) else None
    p = param.encode("utf-8", "surrogateescape")
    op = lambda v, _e: _NO if test(v, p) else None  # noqa: E731
    op.c_code, op.c_arg = code, p  # type: ignore[attr-defined]
    return op


_INJECTION_OPS: dict[tuple[int, bool], Operator] = {}


def _injection_op(kind: int) -> Operator:
    """``@detectSQLi`` (1) / ``@detectXSS`` (2): the compiled operator (``_fastweb.InjectionOp``, which rejects
    most values without a Python call and runs the Python detector on the rest) when the extension is built
    and enabled, else the Python detector. Shared by every rule that uses it."""
    from fsbrain.domains.web.speedups import load

    fast = load()
    key = (kind, fast is not None)
    got = _INJECTION_OPS.get(key)
    if got is None:
        py = injection.detect_sqli if kind == 1 else injection.detect_xss
        if fast is None or not hasattr(fast, "InjectionOp"):
            got = (lambda v, _e: injection.detect_sqli(v)) if kind == 1 else (lambda v, _e: injection.detect_xss(v))
        else:
            word = None
            if kind == 1 and fast.re2_direct():
                try:
                    word = fast.CRe(injection._SQL_WORD.pattern)
                except ValueError:
                    word = None
            got = fast.InjectionOp(py, kind, injection._PLAIN_BYTES, word)
        _INJECTION_OPS[key] = got
    return got


def _byte_range(param: str) -> Operator:
    allowed = bytearray()
    for part in param.replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError as exc:
            raise OperatorError(f"@validateByteRange: bad range {part!r}") from exc
        if not (0 <= a <= b <= 255):
            raise OperatorError(f"@validateByteRange: range {part!r} outside 0-255")
        allowed.extend(range(a, b + 1))
    keep = bytes(allowed)

    def op(value: bytes, _e: Expand) -> Captures | None:
        bad = value.translate(None, keep)
        return (bad[:1],) if bad else None

    return op


_BAD_PCT = re.compile(rb"%(?![0-9a-fA-F]{2})")


def _validate_url_encoding(value: bytes, _e: Expand) -> Captures | None:
    if 37 not in value:  # "%"
        return None
    m = _BAD_PCT.search(value)
    return None if m is None else (value[m.start(): m.start() + 3],)


def _validate_utf8(value: bytes, _e: Expand) -> Captures | None:
    if value.isascii():
        return None
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (value[exc.start: exc.end],)
    return None


def _ip_match(param: str) -> Operator:
    nets = []
    for part in param.replace(" ", ",").split(","):
        if part:
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise OperatorError(f"@ipMatch: {exc}") from exc

    seen: dict[bytes, bool] = {}  # client addresses repeat: parsing one costs microseconds

    def op(value: bytes, _e: Expand) -> Captures | None:
        hit = seen.get(value)
        if hit is None:
            try:
                ip = ipaddress.ip_address(value.decode("ascii").strip())
            except (ValueError, UnicodeDecodeError):
                hit = False
            else:
                hit = any(ip.version == n.version and ip in n for n in nets)
            if len(seen) >= 4096:
                seen.clear()
            if len(value) <= 64:
                seen[value] = hit
        return _NO if hit else None

    return op


def _contains_word(v: bytes, p: bytes) -> bool:
    start = 0
    while True:
        i = v.find(p, start)
        if i < 0:
            return False
        before = v[i - 1: i] if i else b""
        after = v[i + len(p): i + len(p) + 1]
        if not (before.isalnum() or before == b"_") and not (after.isalnum() or after == b"_"):
            return True
        start = i + 1


def compile_operator(name: str, param: str, *, base_dir: Path | None = None) -> Operator:
    """Compile one operator.

    Args:
        name: operator name without ``@`` (case-insensitive).
        param: its parameter, as written (macros expanded at match time).
        base_dir: directory for relative ``@pmFromFile`` / ``@ipMatchFromFile`` paths.

    Raises:
        OperatorError: unknown operator, unsupported one, or an invalid parameter.
    """
    n = name.lower()
    if n == "rx":
        return _rx(param)
    if n == "pm":
        return _phrases_matcher([p.encode("utf-8", "surrogateescape") for p in param.split()])
    if n in ("pmfromfile", "pmf"):
        return _phrases_matcher(_load_phrase_files(param, base_dir))
    if n in ("streq",):
        return _string(param, lambda v, p: v == p, 10)
    if n == "beginswith":
        return _string(param, lambda v, p: v.startswith(p), 11)
    if n == "endswith":
        return _string(param, lambda v, p: v.endswith(p), 12)
    if n in ("contains", "strmatch"):
        return _string(param, lambda v, p: v.find(p) >= 0, 13)  # (faster than `in`)
    if n == "containsword":
        return _string(param, _contains_word)
    if n == "within":
        return _string(param, lambda v, p: p.find(v) >= 0, 14)
    if n == "eq":
        return _numeric(param, lambda a, b: a == b, 0)
    if n == "ge":
        return _numeric(param, lambda a, b: a >= b, 1)
    if n == "gt":
        return _numeric(param, lambda a, b: a > b, 2)
    if n == "le":
        return _numeric(param, lambda a, b: a <= b, 3)
    if n == "lt":
        return _numeric(param, lambda a, b: a < b, 4)
    if n == "validatebyterange":
        return _byte_range(param)
    if n == "validateurlencoding":
        return _validate_url_encoding
    if n == "validateutf8encoding":
        return _validate_utf8
    if n == "ipmatch":
        return _ip_match(param)
    if n in ("ipmatchfromfile", "ipmatchf"):
        return _ip_match(",".join(p.decode() for p in _load_phrase_files(param, base_dir)))
    if n == "detectsqli":
        return _injection_op(1)
    if n == "detectxss":
        return _injection_op(2)
    if n == "unconditionalmatch":
        return lambda _v, _e: _NO
    if n == "nomatch":
        return lambda _v, _e: None
    if n in UNSUPPORTED:
        raise OperatorError(f"operator @{name} is not supported by fsbrain")
    raise OperatorError(f"unknown operator @{name}")
