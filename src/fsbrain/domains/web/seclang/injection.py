"""fsbrain's own SQL-injection and XSS detectors behind ``@detectSQLi`` / ``@detectXSS``.

libinjection is not vendored. This is an independent, documented approximation of the same idea:

* SQLi: tokenize the input the way a SQL lexer would (strings, numbers, keywords, functions, operators,
  comments), three times — as is, and as if it continued a single- or a double-quoted string (the input
  ``1' or '1'='1`` is dangerous because it closes a quote) — then look for token shapes that only make
  sense as SQL: ``UNION [ALL] SELECT``, ``SELECT ... FROM``, stacked statements after ``;``, a logical
  operator followed by a comparison (``or 1=1``), a closed quote followed by a logical operator, comment
  or statement, dangerous functions (``sleep(``, ``benchmark(``...) after an operator, ``ORDER BY n``...
* XSS: an HTML tag scanner: dangerous tags (``script``, ``iframe``, ``svg``...), any ``on*=`` event
  attribute, ``javascript:`` / ``vbscript:`` / ``data:`` URLs in URL attributes or at the start of the
  value, CSS ``expression(``, and attribute break-outs (``" onmouseover=``).

Both return the capture tuple for ``TX.0`` (the SQL token fingerprint, or the offending fragment) or None.
Measured detection and false-positive rates are in docs/web-crs.md.

>>> detect_sqli(b"1' or '1'='1") is not None, detect_sqli(b"2 OR 4 METAL BUTTONS")
(True, None)
>>> detect_xss(b'<img src=x onerror=alert(1)>') is not None, detect_xss(b"I <3 cats")
(True, None)
"""

from __future__ import annotations

import re2

_LOGIC = {b"and", b"or", b"xor", b"&&", b"||"}
_OPWORDS = {b"like", b"rlike", b"regexp", b"div", b"mod", b"is", b"in", b"between", b"not", b"sounds",
            b"collate", b"escape"}
_STATEMENTS = {b"select", b"insert", b"update", b"delete", b"drop", b"create", b"alter", b"exec", b"execute",
               b"declare", b"truncate", b"shutdown", b"replace", b"grant", b"revoke", b"handler", b"load",
               b"rename", b"call", b"merge", b"waitfor", b"begin", b"commit", b"rollback", b"set", b"use"}
_KEYWORDS = {b"from", b"where", b"having", b"group", b"order", b"by", b"limit", b"into", b"outfile",
             b"dumpfile", b"values", b"table", b"database", b"procedure", b"delay", b"offset", b"all",
             b"distinct", b"top", b"as", b"case", b"when", b"then", b"else", b"end", b"null", b"join",
             b"on", b"exists", b"true", b"false", b"asc", b"desc", b"if", b"time", b"infile", b"local",
             b"xml", b"data", b"within", b"dual", b"sysdate", b"current_user"}
_DANGER_FUNCS = {b"sleep", b"benchmark", b"pg_sleep", b"load_file", b"extractvalue", b"updatexml",
                 b"char", b"chr", b"concat", b"concat_ws", b"group_concat", b"ascii", b"substring", b"substr",
                 b"mid", b"version", b"database", b"user", b"schema", b"if", b"ifnull", b"iif", b"cast",
                 b"convert", b"hex", b"unhex", b"md5", b"sha1", b"count", b"length", b"ord", b"exp",
                 b"floor", b"rand", b"name_const", b"row", b"elt", b"make_set", b"dbms_pipe.receive_message",
                 b"utl_inaddr.get_host_address", b"utl_http.request", b"xp_cmdshell", b"current_user",
                 b"system_user", b"session_user", b"instr", b"locate", b"position", b"waitfor", b"json_keys",
                 b"char_length", b"nchar", b"randomblob", b"sqlite_version", b"gtid_subset", b"polygon",
                 b"multipoint", b"linestring", b"geometrycollection", b"st_latfromgeohash", b"exists"}
_DANGER_WORDS = {b"information_schema", b"xp_cmdshell", b"sp_executesql", b"sysobjects", b"syscolumns",
                 b"pg_catalog", b"sqlite_master", b"mysql.user", b"sys.tables", b"all_tables",
                 b"sp_password", b"sp_oacreate", b"msysobjects", b"@@version"}

_SINGLE = set(b"=<>!+-*/%^|&~:")
_COMPARE = {b"=", b"==", b"<", b">", b"<>", b"!=", b"<=", b">=", b"<=>", b":=", b"like", b"rlike", b"regexp",
            b"is", b"in", b"between", b"sounds"}
_STACKED = {b"select", b"insert", b"update", b"delete", b"drop", b"create", b"alter", b"exec", b"execute",
            b"declare", b"truncate", b"shutdown", b"waitfor", b"grant", b"revoke"}


def _tokens(s: bytes) -> list[tuple[str, bytes]]:
    """Lex SQL-ish text into (type, text) tokens (types: s 1 v n k E U f & o ( ) , ; c): the lexer (compiled
    when built, else :func:`_lex_py`), then :func:`_backslash_literals`."""
    if _fast_tokens is not None and type(s) is bytes:
        toks = _fast_tokens(s, _LOGIC, _OPWORDS, _STATEMENTS, _DANGER_FUNCS, _KEYWORDS)
    else:
        toks = _lex_py(s)
    return _backslash_literals(toks, s)


def _compiled_tokens():  # type: ignore[no-untyped-def]
    from fsbrain.domains.web.speedups import load

    fast = load()
    return None if fast is None else fast.sql_tokens


_fast_tokens = _compiled_tokens()


def _tokens_py(s: bytes) -> list[tuple[str, bytes]]:
    """:func:`_tokens` in Python only."""
    return _backslash_literals(_lex_py(s), s)


_MAX_TOKENS = 64
_BACKSLASH_NUMBER = re2.compile(rb"\\[0-9][0-9.]*")


def _backslash_literals(toks: list[tuple[str, bytes]], s: bytes) -> list[tuple[str, bytes]]:
    """Read backslash literals as libinjection does: ``\\N`` (capital N: MySQL's NULL) and ``\\<digits>``
    (T-SQL reads ``\\1`` as ``1``) are numbers, and the word glued after them is a word of its own
    (``\\1AND\\1`` is ``1 AND 1``, ``\\NUNION`` is ``NULL UNION``).

    The lexer reads a backslash as the start of a word, so these arrive as one ``n`` (or ``f``, before ``(``)
    token, lower-cased: ``\\1and``. ``\\n`` is NULL only when the input holds ``\\N``: a lower-case ``\\n``
    is the usual escaped newline of text, and is left alone (when the input holds both, both are read as
    NULL). Any other backslash word (``\\windows``, ``\\x41``) is unchanged. The rest of a split word is
    lexed again on its own, with a ``(`` after it when the whole word came before one, which gives the types
    it would have had in place."""
    for t, w in toks:
        if w[:1] == b"\\" and t in ("n", "f"):
            break
    else:
        return toks  # nearly always: no backslash word
    null = b"\\N" in s
    out: list[tuple[str, bytes]] = []
    for t, w in toks:
        if w[:1] != b"\\" or t not in ("n", "f") or len(w) < 2:
            out.append((t, w))
            continue
        c = w[1]
        if 48 <= c <= 57:
            m = _BACKSLASH_NUMBER.match(w)
            k = len(m.group(0)) if m is not None else 2
        elif c == 110 and null:  # n
            k = 2
        else:
            out.append((t, w))
            continue
        out.append(("1", w[:k]))
        rest = w[k:]
        if rest:
            if t == "f":
                out.extend(_lex_py(rest + b"(")[:-1])
            else:
                out.extend(_lex_py(rest))
    return out[:_MAX_TOKENS]


def _lex_py(s: bytes) -> list[tuple[str, bytes]]:
    """The lexer of :func:`_tokens` in Python (the reference of the compiled one, ``_fastweb.sql_tokens``)."""
    out: list[tuple[str, bytes]] = []
    i, n = 0, len(s)
    while i < n and len(out) < 64:
        c = s[i]
        if c in b" \t\r\n\x0b\x0c\xa0\x00":
            i += 1
            continue
        two = s[i:i + 2]
        if two == b"/*":
            if s[i + 2:i + 3] == b"!":  # MySQL executable comment: the content is code
                i += 3
                while i < n and 48 <= s[i] <= 57:
                    i += 1
                continue
            end = s.find(b"*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(("c", b"/*"))
            continue
        if two == b"*/":
            i += 2
            continue
        if two == b"--" and (i + 2 >= n or s[i + 2] in b" \t\r\n-\x00") or c == 35:  # '--' / '#'
            out.append(("c", two))
            break
        if c in (39, 34, 96):  # ' " `
            j = i + 1
            while j < n:
                if s[j] == c:
                    if j + 1 < n and s[j + 1] == c:
                        j += 2
                        continue
                    break
                if s[j] == 92:
                    j += 1
                j += 1
            out.append(("n" if c == 96 else "s", s[i:j + 1]))
            i = j + 1
            continue
        if 48 <= c <= 57 or (c == 46 and i + 1 < n and 48 <= s[i + 1] <= 57):
            j = i + 1
            while j < n and (s[j:j + 1].isalnum() or s[j] == 46):
                j += 1
            out.append(("1", s[i:j]))
            i = j
            continue
        if c == 64:  # @var, @@var
            j = i + 1
            while j < n and (s[j:j + 1].isalnum() or s[j] in b"@_.$"):
                j += 1
            out.append(("v", s[i:j].lower()))
            i = j
            continue
        if s[i:i + 1].isalpha() or c in b"_$\\":
            j = i + 1
            while j < n and (s[j:j + 1].isalnum() or s[j] in b"_$."):
                j += 1
            w = s[i:j].lower()
            i = j
            k = i
            while k < n and s[k] in b" \t\r\n":
                k += 1
            if w in _LOGIC:
                out.append(("&", w))
            elif w in _OPWORDS:
                out.append(("o", w))
            elif w == b"union":
                out.append(("U", w))
            elif w in _STATEMENTS:
                out.append(("E", w))
            elif k < n and s[k] == 40 and (w in _DANGER_FUNCS or w not in _KEYWORDS):
                out.append(("f", w))
            elif w in _KEYWORDS:
                out.append(("k", w))
            else:
                out.append(("n", w))
            continue
        if two in (b"&&", b"||"):
            out.append(("&", two))
            i += 2
            continue
        if c in _SINGLE:
            j = i + 1
            while j < n and s[j] in _SINGLE and j - i < 3:
                j += 1
            out.append(("o", s[i:j]))
            i = j
            continue
        if c in b"(),;":
            out.append((chr(c), bytes([c])))
        i += 1
    return out


_OPERAND = set("s1vnf")


def _sqli_shape(toks: list[tuple[str, bytes]], quoted: bool) -> bool:
    types = "".join(t for t, _ in toks)
    words = [w for _, w in toks]
    if any(w in _DANGER_WORDS for w in words):
        return True
    for i, t in enumerate(types):
        nxt = types[i + 1:i + 4].replace("(", "").replace("k", "")
        if t == "U" and nxt[:1] == "E":
            return True
        if t == "E" and words[i] == b"select" and ("k" in types[i + 1:] and b"from" in words[i + 1:]
                                                  or types[i + 1:i + 2] in ("f", "v")):
            return True
        if t == ";" and types[i + 1:i + 2] == "E" and words[i + 1] in _STACKED:
            return True
        if t == "E" and i + 1 < len(words) and (words[i], words[i + 1]) in (
                (b"drop", b"table"), (b"drop", b"database"), (b"insert", b"into"), (b"delete", b"from"),
                (b"waitfor", b"delay"), (b"waitfor", b"time"), (b"load", b"data"), (b"load", b"xml")):
            return True
        if t == "&":
            rest = types[i + 1:].lstrip("(")
            j = i + 1 + (len(types[i + 1:]) - len(rest))
            if (rest[:1] in _OPERAND and rest[1:2] == "o" and words[j + 1] in _COMPARE
                    and rest[2:3] in _OPERAND | {"(", "k"}):
                return True
            if rest[:1] == "f" and toks[i + 1 + types[i + 1:].index("f")][1] in _DANGER_FUNCS:
                return True
            if rest[:1] in ("E", "U"):
                return True
        if t == "k" and words[i] in (b"order", b"group") and types[i + 1:i + 3] == "k1":
            if i + 3 >= len(types) or types[i + 3] in "c,;)":
                return True
        if t == "k" and words[i] == b"into" and types[i + 1:i + 2] == "k" and words[i + 1] in (b"outfile",
                                                                                            b"dumpfile"):
            return True
        if t == "f" and words[i] in (b"sleep", b"benchmark", b"pg_sleep") and types[i + 1:i + 3] in ("(1", "(v", "(f"):
            return True
    if quoted and types[:1] == "s":
        second = types[1:2]
        if second in (";", "c", "U") or second == "E" and words[1] in _STACKED:
            return True
        if second == "&" and (types[2:3] in ("f", "(", "E", "U") or types[2:3] in _OPERAND
                              and types[3:4] in ("o", "c", "")):
            return True
        if second == ")" and types[2:3] in ("&", ";", "c", "U"):
            return True
        if second == "o" and words[1] in _COMPARE and types[2:3] in ("s", "1", "f", "v", "(") and (
                len(types) == 3 or types[3:4] in ("&", "c", ";", "o")):
            return True
    if not quoted and types[:1] in ("1", "n") and types[1:2] == ")" and types[2:3] in ("&", ";", "c", "U"):
        return True
    return False


_PLAIN = re2.compile(rb"[A-Za-z0-9 _.,:/@?!-]*")
_SQL_WORD = re2.compile(rb"(?i)union|select|insert|update|delete|drop|create|alter|exec|declare|truncate|shutdown|"
                        rb"waitfor|sleep|benchmark|having|order|group|information_schema|xp_|sp_|load|outfile|"
                        rb"dumpfile|into|from|where|sysobjects|pg_|sqlite|dbms|utl_|@@")


# the bytes _PLAIN accepts: ``value.translate(None, _PLAIN_BYTES)`` is empty exactly when it fullmatches
_PLAIN_BYTES = bytes(c for c in range(256) if _PLAIN.fullmatch(bytes([c])) is not None)
_ANCHOR = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)


def _finder(rx: re2._Regexp):  # type: ignore[no-untyped-def]
    """``rx.search(value)`` as ``(start, end)`` or None, calling the compiled RE2 object directly (the
    Python wrapper's generator costs several microseconds per call)."""
    raw = getattr(rx, "_regexp", None)
    if raw is None or _ANCHOR is None:
        def slow(value: bytes) -> tuple[int, int] | None:
            m = rx.search(value)
            return None if m is None else m.span()

        return slow
    match, anchor = raw.Match, _ANCHOR

    def find(value: bytes) -> tuple[int, int] | None:
        span = match(anchor, value, 0, len(value))[0]
        return None if span[0] < 0 else span

    return find


_sql_word = _finder(_SQL_WORD)


def detect_sqli(value: bytes) -> tuple[bytes, ...] | None:
    """Return ``(fingerprint,)`` when ``value`` looks like SQL injection, else None."""
    if len(value) < 2:
        return None
    if not value.translate(None, _PLAIN_BYTES) and _sql_word(value) is None:
        return None  # letters, digits, spaces and harmless punctuation, no SQL keyword: nothing to lex
    for ctx in (b"", b"'", b'"'):
        if ctx and ctx not in value:
            continue
        toks = _tokens(ctx + value)
        if _sqli_shape(toks, bool(ctx)):
            return ("".join(t for t, _ in toks[:8]).encode(),)
    return None


_XSS_TAGS = (b"script|iframe|frame|frameset|object|embed|applet|svg|math|base|link|meta|style|xml|import|"
             b"isindex|template|marquee|xss|vmlframe|bgsound|layer|ilayer|animate|set|handler|listener|"
             b"portal|noscript|xmp|plaintext|form|image|video|audio|source|body|img|input|button|details|"
             b"select|textarea|keygen|a|div|span|p|table|td|html|title|object|param|iframe2")
_TAG_RX = re2.compile(rb"(?i)<\s*/?\s*(" + _XSS_TAGS + rb")(?:[\s/>=\"'`]|$)")
_BAD_TAG_RX = re2.compile(rb"(?i)<\s*/?\s*(?:[a-z0-9]+:)?(?:script|iframe|frame|frameset|object|embed|applet|svg|math|"
                          rb"base|link|meta|style|xml|import|isindex|template|xss|vmlframe|bgsound|layer|"
                          rb"ilayer|handler|listener|portal|xmp|plaintext)(?:[\s/>\"'`]|$)")
_EVENT_RX = re2.compile(rb"(?i)<[a-z!][^>]*?[\s/\"'`]on[a-z]{3,}\s*=")
_BREAKOUT_RX = re2.compile(rb"(?i)[\"'`][^<>]*?[\s/\"'`]on[a-z]{3,}\s*=")
_URL_RX = re2.compile(rb"(?i)(?:^\s*|<[^>]*?(?:href|src|action|formaction|data|background|dynsrc|lowsrc|poster|"
                      rb"code|codebase|values|to|from|by|xlink:href|content)\s*=\s*[\"'`]?\s*)"
                      rb"(?:j\s*a\s*v\s*a\s*s\s*c\s*r\s*i\s*p\s*t|v\s*b\s*s\s*c\s*r\s*i\s*p\s*t|livescript|"
                      rb"data\s*:\s*text/html)\s*:?")
_CSS_RX = re2.compile(rb"(?i)(?:<[^>]*style\s*=[^>]*(?:expression\s*\(|url\s*\(\s*[\"']?\s*javascript)|"
                      rb"-moz-binding|behavior\s*:\s*url)")
_COMMENT_RX = re2.compile(rb"(?i)<!--[\s\S]*?(?:\[if|<[a-z])|<!\[cdata\[[\s\S]*<|<\?(?:xml|import)")


def detect_xss(value: bytes) -> tuple[bytes, ...] | None:
    """Return ``(fragment,)`` when ``value`` looks like cross-site scripting, else None."""
    if len(value) < 4:
        return None
    has_lt = 60 in value  # "<"
    if has_lt:
        for find in _LT_FINDERS:
            span = find(value)
            if span is not None:
                return (value[span[0]:span[1]][:64],)
    elif not _may_url_or_breakout(value):
        return None  # without "<", _URL_RX needs j/v/l/d first (after spaces), _BREAKOUT_RX a quote and "="
    for find in _OTHER_FINDERS:
        span = find(value)
        if span is not None:
            return (value[span[0]:span[1]][:64],)
    return None


_LT_FINDERS = tuple(_finder(rx) for rx in (_BAD_TAG_RX, _EVENT_RX, _COMMENT_RX, _CSS_RX))
_OTHER_FINDERS = tuple(_finder(rx) for rx in (_URL_RX, _BREAKOUT_RX))


def _may_url_or_breakout(value: bytes) -> bool:
    """A necessary condition for ``_URL_RX`` or ``_BREAKOUT_RX`` to match a value without ``<``: the URL form
    is then anchored at the start (after RE2 ``\\s``, a subset of what ``bytes.lstrip`` strips) and begins
    with ``j``/``v``/``l``/``d``; the break-out needs a quote and ``=``."""
    if value.lstrip()[:1].lower() in (b"j", b"v", b"l", b"d"):
        return True
    return 61 in value and (34 in value or 39 in value or 96 in value)  # = " ' `
