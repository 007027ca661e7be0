"""CRS transformations: ModSecurity semantics on known inputs, and fuzzing every one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.domains.web import transforms as T


@pytest.mark.parametrize(("name", "inp", "out"), [
    ("lowercase", b"AbC\xc9", b"abc\xc9"),
    ("urlDecode", b"a%20b+c%zz%4", b"a b c%zz%4"),
    ("urlDecodeUni", b"%u003cscript%uff1e", b"<script>"),
    ("htmlEntityDecode", b"&lt;a&#x3e;&#62&quot;&amp;", b"<a>>\"&"),
    ("jsDecode", b"\\x3cs\\u003e\\101\\n\\q", b"<s>A\nq"),
    ("cssDecode", b"\\6a avascript\\:", b"javascript:"),
    ("cmdLine", b"C^at  /E'tc/pa\\sswd ; ls,x", b"cat/etc/passwd ls x"),
    ("compressWhitespace", b"a \t\n\xa0b", b"a b"),
    ("removeWhitespace", b" a b\tc\n", b"abc"),
    ("removeNulls", b"a\x00b", b"ab"),
    ("replaceNulls", b"a\x00b", b"a b"),
    ("replaceComments", b"sel/**/ect /* x", b"sel ect  "),
    ("removeCommentsChar", b"a/*b*/c--d#e", b"abcde"),
    ("removeComments", b"a/*x*/b<!--y-->c--z", b"abc"),
    ("normalizePath", b"/a/./b/../../../c//d/", b"/c/d/"),
    ("normalizePathWin", b"\\a\\..\\b\\.\\c", b"/b/c"),
    ("base64Decode", b"aGVsbG8=!!", b"hello"),
    ("base64DecodeExt", b"aGV sbG8", b"hello"),
    ("hexDecode", b"414243", b"ABC"),
    ("hexEncode", b"AB", b"4142"),
    ("sqlHexDecode", b"x 0x414243 y", b"x ABC y"),
    ("utf8toUnicode", "é中".encode(), b"%u00e9%u4e2d"),
    ("escapeSeqDecode", b"\\x41\\t", b"A\t"),
    ("length", b"abcd", b"4"),
    ("trim", b"  a b \n", b"a b"),
    ("trimLeft", b"  a ", b"a "),
    ("trimRight", b"  a ", b"  a"),
])
def test_known_values(name, inp, out):
    assert T.get_transform(name)(inp) == out


def test_sha1_and_md5_are_raw_digests():
    assert len(T.TRANSFORMS["sha1"](b"x")) == 20 and len(T.TRANSFORMS["md5"](b"x")) == 16


def test_unknown_transform_is_keyerror():
    with pytest.raises(KeyError):
        T.get_transform("nope")


def test_apply_chain():
    assert T.apply_chain(b"%2E%2E%2F..%2Fetc", ["urlDecodeUni", "normalizePath"]) == b"../../etc"


@settings(max_examples=200, deadline=None)
@given(value=st.binary(max_size=200), name=st.sampled_from(sorted(T.TRANSFORMS)))
def test_fuzz_every_transform_returns_bytes(value, name):
    out = T.TRANSFORMS[name](value)
    assert isinstance(out, bytes)


@settings(max_examples=100, deadline=None)
@given(value=st.text(alphabet="%u0123456789abcdefABCDEF&#;x\\<>/.", max_size=60))
def test_fuzz_escape_heavy_input(value):
    for name in ("urldecodeuni", "htmlentitydecode", "jsdecode", "cssdecode", "normalizepath"):
        assert isinstance(T.TRANSFORMS[name](value.encode()), bytes)
