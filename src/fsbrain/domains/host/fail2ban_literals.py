"""Cheap pre-checks for regexes: the literals every match must contain, and the bytes it can start with.

Running a regex through the RE2 binding costs a few microseconds per line; a substring search costs tens of
nanoseconds. :func:`required_literals` and :func:`first_bytes` read a regex's text (a small parser over
groups, classes, escapes and quantifiers, no evaluation) so that :class:`~fsbrain.domains.host.logparse.LogFilter`
runs a failregex only on lines that can match it. Both are conservative: when unsure they return ``None``
(always run the regex).
"""

from __future__ import annotations


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
