"""The CRS / ModSecurity transformation functions (``t:...``), on bytes.

Every value the rule engine inspects is ``bytes`` (ModSecurity works on bytes: a UTF-8 character is
several bytes, and CRS patterns are written for that). Each transformation is a pure function
``bytes -> bytes`` that never raises on any input; :data:`TRANSFORMS` maps the lower-cased SecLang name
to the function. Only linear-time Python ``re`` patterns (no nested quantifiers, no backreferences) are
used here; rule patterns themselves run on RE2.

>>> apply_chain(b"%3Cscript%3E", ["urlDecodeUni", "lowercase"])
b'<script>'
>>> TRANSFORMS["cmdline"](b"c^at  /e'tc/pa\\\\sswd")
b'cat/etc/passwd'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote_from_bytes, unquote_to_bytes

Transform = Callable[[bytes], bytes]

def _compiled():  # type: ignore[no-untyped-def]
    from fsbrain.domains.web.speedups import load

    return load()


# the compiled module (same results as the Python functions here, which stay the reference), or None
_fast = _compiled()
_fast_url_decode = None if _fast is None else _fast.url_decode

_WS = b" \t\n\r\v\f"
_WS_A0 = _WS + b"\xa0"
_HEX = b"0123456789abcdefABCDEF"


def t_none(v: bytes) -> bytes:
    """Identity (``t:none`` resets the chain; the parser handles the reset)."""
    return v


def lowercase(v: bytes) -> bytes:
    """ASCII lower case (bytes >= 0x80 are left alone, as in ModSecurity)."""
    return v.lower()


def uppercase(v: bytes) -> bytes:
    """ASCII upper case."""
    return v.upper()


def url_decode(v: bytes) -> bytes:
    """``%XX`` and ``+`` decoding; invalid escapes are kept as they are."""
    if _fast_url_decode is not None and type(v) is bytes:
        return _fast_url_decode(v)  # type: ignore[no-any-return]
    return _url_decode_py(v)


def _url_decode_py(v: bytes) -> bytes:
    """:func:`url_decode` in Python (the reference of the compiled one)."""
    if 43 in v:  # "+"
        v = v.replace(b"+", b" ")
    if 37 not in v:  # "%"
        return v
    return unquote_to_bytes(v)


_UNI_RE = re.compile(rb"%[uU]([0-9a-fA-F]{4})")


def _uni_byte(code: int) -> bytes:
    if 0xFF01 <= code <= 0xFF5E:  # full-width ASCII -> ASCII, as ModSecurity's default unicode map
        return bytes([code - 0xFEE0])
    return bytes([code & 0xFF])


def url_decode_uni(v: bytes) -> bytes:
    """Like :func:`url_decode` and also ``%uHHHH`` (full-width forms map to ASCII, others to the low byte)."""
    if _fast is not None and type(v) is bytes:
        return _fast.url_decode_uni(v)  # type: ignore[no-any-return]
    return _url_decode_uni_py(v)


def _url_decode_uni_py(v: bytes) -> bytes:
    """:func:`url_decode_uni` in Python (the reference of the compiled one)."""
    if v.find(b"%u") >= 0 or v.find(b"%U") >= 0:
        v = _UNI_RE.sub(lambda m: _uni_byte(int(m.group(1), 16)), v)
    return url_decode(v)


_ENTITY_RE = re.compile(rb"&(?:#[xX]([0-9a-fA-F]+);?|#([0-9]+);?|(quot|amp|lt|gt|nbsp|apos|colon|lpar|rpar|tab|newline|sol|bsol);?)",
                        re.IGNORECASE)
_NAMED = {b"quot": b'"', b"amp": b"&", b"lt": b"<", b"gt": b">", b"nbsp": b"\xa0", b"apos": b"'",
          b"colon": b":", b"lpar": b"(", b"rpar": b")", b"tab": b"\t", b"newline": b"\n", b"sol": b"/",
          b"bsol": b"\\"}


def _entity(m: re.Match[bytes]) -> bytes:
    if m.group(1) is not None:
        return bytes([int(m.group(1)[-2:], 16)])
    if m.group(2) is not None:
        r = 0
        for d in m.group(2).lstrip(b"0"):  # value mod 256 without building a huge int
            r = (r * 10 + d - 48) & 0xFF
        return bytes([r])
    return _NAMED[m.group(3).lower()]


def html_entity_decode(v: bytes) -> bytes:
    """Decode ``&#xHH;``, ``&#DDD;`` and common named entities (semicolon optional, low byte kept)."""
    if 38 not in v:  # "&"
        return v
    return _ENTITY_RE.sub(_entity, v)


_JS_RE = re.compile(rb"\\(?:[uU]([0-9a-fA-F]{4})|[xX]([0-9a-fA-F]{2})|([0-7]{1,3})|(.))", re.DOTALL)
_C_ESC = {b"a": b"\a", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


def _js(m: re.Match[bytes]) -> bytes:
    if m.group(1) is not None:
        return _uni_byte(int(m.group(1), 16))
    if m.group(2) is not None:
        return bytes([int(m.group(2), 16)])
    if m.group(3) is not None:
        return bytes([int(m.group(3), 8) & 0xFF])
    c = m.group(4)
    return _C_ESC.get(c, c)


def js_decode(v: bytes) -> bytes:
    """JavaScript escapes: ``\\uHHHH``, ``\\xHH``, octal, C escapes, ``\\c`` -> ``c``."""
    if 92 not in v:  # backslash
        return v
    return _JS_RE.sub(_js, v)


escape_seq_decode = js_decode  # ANSI C escapes are the same set of forms for our purposes

_CSS_RE = re.compile(rb"\\(?:([0-9a-fA-F]{1,6})[ \t\n\r\f]?|\n|(.))", re.DOTALL)


def _css(m: re.Match[bytes]) -> bytes:
    if m.group(1) is not None:
        return bytes([int(m.group(1), 16) & 0xFF])
    if m.group(2) is not None:
        return m.group(2)
    return b""


def css_decode(v: bytes) -> bytes:
    """CSS 2 escapes: ``\\H..H`` (1-6 hex digits, one optional trailing space), ``\\c`` and escaped newlines."""
    if 92 not in v:  # backslash
        return v
    return _CSS_RE.sub(_css, v)


_CMD_DEL = bytes.maketrans(b"", b"")
_CMD_SPACE_BEFORE = re.compile(rb" +(?=[/(])")
_WS_RUN = re.compile(rb"[ \t\n\r\v\f]+")
_WS_RUN_A0 = re.compile(rb"[ \t\n\r\v\f\xa0]+")


def cmd_line(v: bytes) -> bytes:
    """ModSecurity ``cmdLine``: drop ``\\ " ' ^``, ``,;`` to space, squeeze spaces, no space before ``/(``, lower."""
    v = v.translate(_CMD_DEL, b"\\\"'^").replace(b",", b" ").replace(b";", b" ")
    v = _WS_RUN.sub(b" ", v)
    if v.find(b" /") >= 0 or v.find(b" (") >= 0:
        v = _CMD_SPACE_BEFORE.sub(b"", v)
    return v.lower()


def compress_whitespace(v: bytes) -> bytes:
    """Every run of whitespace (including 0xA0) becomes one space."""
    return _WS_RUN_A0.sub(b" ", v)


def remove_whitespace(v: bytes) -> bytes:
    """Remove all whitespace (including 0xA0)."""
    return v.translate(_CMD_DEL, _WS_A0)


def remove_nulls(v: bytes) -> bytes:
    """Remove NUL bytes."""
    return v.replace(b"\x00", b"") if 0 in v else v


def replace_nulls(v: bytes) -> bytes:
    """NUL bytes become spaces."""
    return v.replace(b"\x00", b" ") if 0 in v else v


_C_COMMENT = re.compile(rb"/\*(?:[^*]|\*(?!/))*(?:\*/|$)")
_HTML_COMMENT = re.compile(rb"<!--(?:[^-]|-(?!->))*(?:-->|$)")
_LINE_COMMENT = re.compile(rb"(?:--|#)[^\n]*")


def remove_comments(v: bytes) -> bytes:
    """Remove ``/* */`` and ``<!-- -->`` comments (unterminated ones to the end) and ``--``/``#`` line comments."""
    if v.find(b"/*") >= 0:
        v = _C_COMMENT.sub(b"", v)
    if v.find(b"<!--") >= 0:
        v = _HTML_COMMENT.sub(b"", v)
    if v.find(b"--") >= 0 or 35 in v:  # "#"
        v = _LINE_COMMENT.sub(b"", v)
    return v


def replace_comments(v: bytes) -> bytes:
    """Each ``/* ... */`` comment (unterminated included) becomes one space."""
    if v.find(b"/*") < 0:
        return v
    return _C_COMMENT.sub(b" ", v)


def remove_comments_char(v: bytes) -> bytes:
    """Remove the comment markers ``/*``, ``*/``, ``--``, ``#``, ``<!--`` and ``-->``."""
    for mark in (b"<!--", b"-->", b"/*", b"*/", b"--", b"#"):
        if v.find(mark) >= 0:
            v = v.replace(mark, b"")
    return v


def normalize_path(v: bytes) -> bytes:
    """Collapse ``//``, drop ``./`` segments and resolve ``../`` (never above the start)."""
    if 47 not in v and 46 not in v:  # "/" "."
        return v
    absolute = v.startswith(b"/")
    trailing = v.endswith(b"/") or v.endswith(b"/.") or v.endswith(b"/..")
    out: list[bytes] = []
    for seg in v.split(b"/"):
        if seg in (b"", b"."):
            continue
        if seg == b"..":
            if out and out[-1] != b"..":
                out.pop()
            elif not absolute:
                out.append(seg)
            continue
        out.append(seg)
    res = b"/".join(out)
    if absolute:
        res = b"/" + res
    if trailing and res and not res.endswith(b"/"):
        res += b"/"
    return res


def normalize_path_win(v: bytes) -> bytes:
    """Backslashes become slashes, then :func:`normalize_path`."""
    return normalize_path(v.replace(b"\\", b"/"))


_B64_CLEAN = re.compile(rb"[^A-Za-z0-9+/]")
_B64_PREFIX = re.compile(rb"[A-Za-z0-9+/]*")


def base64_decode(v: bytes) -> bytes:
    """Decode base64 up to the first invalid character (ModSecurity keeps what decoded)."""
    m = _B64_PREFIX.match(v)
    data = m.group(0) if m else b""
    if len(data) % 4 == 1:
        data = data[:-1]
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""


def base64_decode_ext(v: bytes) -> bytes:
    """Decode base64 ignoring every invalid character."""
    data = _B64_CLEAN.sub(b"", v)
    if len(data) % 4 == 1:
        data = data[:-1]
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""


def base64_encode(v: bytes) -> bytes:
    """Standard base64."""
    return base64.b64encode(v)


def hex_decode(v: bytes) -> bytes:
    """Decode hex pairs; non-hex pairs are skipped."""
    v = bytes(c for c in v if c in _HEX)
    try:
        return binascii.unhexlify(v[: len(v) - len(v) % 2])
    except (binascii.Error, ValueError):
        return b""


def hex_encode(v: bytes) -> bytes:
    """Lower-case hex of every byte."""
    return binascii.hexlify(v)


_SQL_HEX = re.compile(rb"0x((?:[0-9a-fA-F]{2})+)")


def sql_hex_decode(v: bytes) -> bytes:
    """Decode SQL hex literals ``0xHHHH``."""
    if v.find(b"0x") < 0:
        return v
    return _SQL_HEX.sub(lambda m: binascii.unhexlify(m.group(1)), v)


def utf8_to_unicode(v: bytes) -> bytes:
    """Valid UTF-8 multi-byte sequences become ``%uHHHH`` (as ModSecurity's utf8toUnicode)."""
    if _fast is not None and type(v) is bytes:
        return _fast.utf8_to_unicode(v)  # type: ignore[no-any-return]
    return _utf8_to_unicode_py(v)


def _utf8_to_unicode_py(v: bytes) -> bytes:
    """:func:`utf8_to_unicode` in Python (the reference of the compiled one)."""
    if v.isascii():
        return v
    out = bytearray()
    i, n = 0, len(v)
    while i < n:
        c = v[i]
        size = 1 if c < 0x80 else 2 if 0xC2 <= c <= 0xDF else 3 if 0xE0 <= c <= 0xEF else 4 if 0xF0 <= c <= 0xF4 else 0
        if size <= 1:
            out.append(c)
            i += 1
            continue
        chunk = v[i:i + size]
        try:
            code = ord(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(c)
            i += 1
            continue
        out += b"%%u%04x" % code
        i += size
    return bytes(out)


def url_encode(v: bytes) -> bytes:
    """Percent-encode everything but unreserved characters."""
    return quote_from_bytes(v, safe=b"").encode("ascii")


def length(v: bytes) -> bytes:
    """The byte length, as decimal digits."""
    return str(len(v)).encode("ascii")


def sha1(v: bytes) -> bytes:
    """Raw SHA-1 digest (20 bytes)."""
    return hashlib.sha1(v, usedforsecurity=False).digest()


def md5(v: bytes) -> bytes:
    """Raw MD5 digest (16 bytes)."""
    return hashlib.md5(v, usedforsecurity=False).digest()


def trim(v: bytes) -> bytes:
    """Strip whitespace at both ends."""
    return v.strip(_WS)


def trim_left(v: bytes) -> bytes:
    """Strip leading whitespace."""
    return v.lstrip(_WS)


def trim_right(v: bytes) -> bytes:
    """Strip trailing whitespace."""
    return v.rstrip(_WS)


TRANSFORMS: dict[str, Transform] = {
    "none": t_none,
    "lowercase": lowercase,
    "uppercase": uppercase,
    "urldecode": url_decode,
    "urldecodeuni": url_decode_uni,
    "htmlentitydecode": html_entity_decode,
    "jsdecode": js_decode,
    "cssdecode": css_decode,
    "cmdline": cmd_line,
    "compresswhitespace": compress_whitespace,
    "removewhitespace": remove_whitespace,
    "removenulls": remove_nulls,
    "replacenulls": replace_nulls,
    "removecomments": remove_comments,
    "replacecomments": replace_comments,
    "removecommentschar": remove_comments_char,
    "normalizepath": normalize_path,
    "normalisepath": normalize_path,
    "normalizepathwin": normalize_path_win,
    "normalisepathwin": normalize_path_win,
    "base64decode": base64_decode,
    "base64decodeext": base64_decode_ext,
    "base64encode": base64_encode,
    "hexdecode": hex_decode,
    "hexencode": hex_encode,
    "sqlhexdecode": sql_hex_decode,
    "utf8tounicode": utf8_to_unicode,
    "urlencode": url_encode,
    "escapeseqdecode": escape_seq_decode,
    "length": length,
    "sha1": sha1,
    "md5": md5,
    "trim": trim,
    "trimleft": trim_left,
    "trimright": trim_right,
}

#: the Python functions (the reference; :data:`TRANSFORMS` holds compiled ones where they are built)
PY_TRANSFORMS: dict[str, Transform] = dict(TRANSFORMS)


def _compiled_transforms(fast) -> dict[str, Transform]:  # type: ignore[no-untyped-def]
    """The compiled equivalents of the Python functions (same results; values other than ``bytes`` go
    to the Python ones). Those with a guard return the value itself, without running Python code, when
    it holds none of the bytes that the transformation changes."""
    py = PY_TRANSFORMS
    fast.set_python(py)
    out: dict[str, Transform] = {
        "lowercase": fast.lowercase, "urldecode": fast.url_decode_any,
        "urldecodeuni": fast.url_decode_uni_any, "utf8tounicode": fast.utf8_to_unicode_any,
        "cmdline": fast.cmd_line, "compresswhitespace": fast.compress_whitespace,
        "normalizepath": fast.normalize_path, "normalisepath": fast.normalize_path,
        "base64decode": fast.base64_decode, "removewhitespace": fast.remove_whitespace,
        "normalizepathwin": fast.normalize_path_win, "normalisepathwin": fast.normalize_path_win,
    }
    for name, marks in (("htmlentitydecode", b"&"), ("jsdecode", b"\\"), ("escapeseqdecode", b"\\"),
                        ("cssdecode", b"\\"), ("removenulls", b"\x00"), ("replacenulls", b"\x00"),
                        ("removecomments", b"/<-#"), ("replacecomments", b"/"), ("removecommentschar", b"-/*#"),
                        ("sqlhexdecode", b"0")):
        out[name] = fast.guarded(py[name], marks, name)
    return out


if _fast is not None and hasattr(_fast, "set_python"):
    TRANSFORMS.update(_compiled_transforms(_fast))


def get_transform(name: str) -> Transform:
    """Look up a transformation by its SecLang name (case-insensitive).

    Raises:
        KeyError: the name is not a known transformation.
    """
    return TRANSFORMS[name.lower()]


def apply_chain(value: bytes, names: Iterable[str]) -> bytes:
    """Apply transformations in order; ``none`` is the identity here."""
    for n in names:
        value = TRANSFORMS[n.lower()](value)
    return value
