"""HttpRequest parsing: URI, headers, cookies, bodies, limits; raw HTTP; fuzzing."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.core.errors import InputError
from fsbrain.domains.web.request import HttpRequest, RequestLimits, parse_raw_request


def test_query_and_path():
    r = HttpRequest.from_dict({"uri": "/a%2Fb/c.php?x=1&y=%3Cs%3E&z&x=2#frag"})
    assert r.path == b"/a%2Fb/c.php"
    assert r.filename == b"/a/b/c.php"
    assert r.basename == b"c.php"
    assert r.args_get == [(b"x", b"1"), (b"y", b"<s>"), (b"z", b""), (b"x", b"2")]


def test_absolute_uri_and_invalid_percent_kept():
    r = HttpRequest.from_dict({"uri": "http://example.com/p?q=%zz%4"})
    assert r.path == b"/p"
    assert r.args_get == [(b"q", b"%zz%4")]


def test_headers_keep_order_and_duplicates_and_cookies():
    r = HttpRequest.from_dict({"headers": [["Cookie", "a=1; b=2"], ["X", "1"], ["cookie", "c=3"], ["X", "2"]]})
    assert [h for h in r.headers if h[0] == "X"] == [("X", "1"), ("X", "2")]
    assert r.cookies == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    assert r.header("COOKIE") == "a=1; b=2"


def test_urlencoded_body():
    r = HttpRequest.from_dict({"method": "POST", "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                               "body": "a=1+2&b=%41"})
    assert r.default_processor == "URLENCODED"
    assert r.args_post == [(b"a", b"1 2"), (b"b", b"A")]
    assert r.args == r.args_get + r.args_post


def test_json_body_flattened_like_modsecurity():
    body = {"user": {"name": "bob", "tags": ["x", "y"]}, "n": 3, "ok": True, "nil": None}
    r = HttpRequest.from_dict({"method": "POST", "headers": {"Content-Type": "application/json"},
                               "body": json.dumps(body)})
    assert dict(r.args_post) == {b"json.user.name": b"bob", b"json.user.tags.0": b"x",
                                 b"json.user.tags.1": b"y", b"json.n": b"3", b"json.ok": b"true",
                                 b"json.nil": b""}


def test_broken_json_sets_error_not_exception():
    r = HttpRequest.from_dict({"method": "POST", "headers": {"Content-Type": "application/json"}, "body": "{oops"})
    pb = r.parsed_body()
    assert pb.error and pb.error.startswith("json:")
    assert pb.args == []


def test_json_depth_limit_named():
    r = HttpRequest.from_dict({"method": "POST", "headers": {"Content-Type": "application/json"},
                               "body": "[" * 100 + "]" * 100}, limits=RequestLimits(max_json_depth=10))
    r.parsed_body()
    assert "max_json_depth" in r.limits_hit


def test_multipart_fields_files_and_part_headers():
    body = (b"--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n"
            b"--XX\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a b.php\"\r\n"
            b"Content-Type: text/plain\r\n\r\n<?php ?>\r\n--XX--\r\n")
    r = HttpRequest(method="POST", headers=[("Content-Type", "multipart/form-data; boundary=XX")], body=body)
    assert r.args_post == [(b"title", b"hello")]
    f = r.files[0]
    assert (f.field, f.filename, f.content_type, f.size) == (b"up", b"a b.php", b"text/plain", 8)
    heads = r.parsed_body().part_headers
    assert (b"up", b"Content-Type: text/plain") in heads
    assert r.parsed_body().error is None


def test_multipart_without_boundary_is_an_error():
    r = HttpRequest(method="POST", headers=[("Content-Type", "multipart/form-data")], body=b"--x\r\n")
    assert "boundary" in (r.parsed_body().error or "")


def test_xml_text_and_attributes_no_entities():
    r = HttpRequest(method="POST", headers=[("Content-Type", "text/xml")],
                    body=b'<a x="1"><b>hi</b><c y="z">there</c></a>')
    pb = r.parsed_body()
    assert b"".join(pb.xml_text) == b"hithere" and pb.xml_attrs == [b"1", b"z"]
    bomb = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><l>&b;</l>'
    r2 = HttpRequest(method="POST", headers=[("Content-Type", "application/xml")], body=bomb)
    assert "entity" in (r2.parsed_body().error or "")


def test_limits_are_named():
    lim = RequestLimits(max_headers=2, max_body_bytes=5, max_args=3)
    r = HttpRequest(method="POST", uri="/?a=1&b=2&c=3&d=4", headers=[("A", "1"), ("B", "2"), ("C", "3")],
                    body=b"0123456789", limits=lim)
    assert len(r.header_pairs) == 2 and len(r.args_get) == 3 and r.inspected_body == b"01234"
    assert {"max_headers", "max_args", "max_body_bytes"} <= set(r.limits_hit)


def test_from_dict_rejects_wrong_types():
    with pytest.raises(InputError, match="headers"):
        HttpRequest.from_dict({"headers": 5})
    with pytest.raises(InputError, match="JSON object"):
        HttpRequest.from_dict([1])  # type: ignore[arg-type]


def test_raw_request_chunked_and_folding():
    raw = (b"POST /x?y=1 HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n b\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Type: application/x-www-form-urlencoded\r\n\r\n3\r\na=1\r\n2\r\n&b\r\n0\r\n\r\n")
    r = parse_raw_request(raw)
    assert (r.method, r.uri, r.protocol) == ("POST", "/x?y=1", "HTTP/1.1")
    assert r.header("x-long") == "a b"
    assert r.body == b"a=1&b"
    assert r.args_post == [(b"a", b"1"), (b"b", b"")]


def test_raw_request_malformed_is_reported():
    r = parse_raw_request(b"GARBAGE\r\nno colon here\r\n\r\n")
    assert r.malformed and r.method == "GARBAGE"


def test_non_utf8_bytes_survive_round_trip():
    r = parse_raw_request(b"GET /\xff\xfe?a=\xc3 HTTP/1.1\r\n\r\n")
    assert r.path == b"/\xff\xfe" and r.args_get == [(b"a", b"\xc3")]
    assert HttpRequest.from_dict(r.to_dict()).uri_bytes == r.uri_bytes


_ct = st.sampled_from(["application/json", "multipart/form-data; boundary=b", "text/xml",
                       "application/x-www-form-urlencoded", "", "text/plain", "multipart/form-data"])


@settings(max_examples=300, deadline=None)
@given(uri=st.text(max_size=80), body=st.binary(max_size=300), ct=_ct,
       headers=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=30)), max_size=5))
def test_fuzz_request_never_crashes(uri, body, ct, headers):
    r = HttpRequest(method="POST", uri=uri, headers=headers + [("Content-Type", ct)], body=body)
    r.args_get, r.cookies, r.filename, r.files  # noqa: B018
    for proc in (None, "URLENCODED", "MULTIPART", "JSON", "XML"):
        pb = r.parsed_body(proc)
        assert isinstance(pb.args, list)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=400))
def test_fuzz_raw_parser_never_crashes(raw):
    r = parse_raw_request(raw)
    r.args_get, r.args_post, r.cookies  # noqa: B018


@pytest.mark.parametrize(("headers", "problem"), [
    ([["Host"]], "must be a [name, value] pair, got ['Host']"),
    ([["Host", "a"], "x"], "must be a [name, value] pair, got 'x'"),
    ([("a", "b", "c")], "must be a [name, value] pair"),
    ("Host: a", "'headers' must be an object or a list of [name, value] pairs"),
])
def test_from_dict_names_a_malformed_header_list(headers, problem):
    with pytest.raises(InputError, match=re.escape(problem)):
        HttpRequest.from_dict({"method": "GET", "uri": "/", "headers": headers})


def test_from_dict_header_forms():
    """Pairs as lists or tuples, a mapping, a list of values for one name, None and non-text names."""
    pairs = HttpRequest.from_dict({"headers": [["Host", "a"], ("X-A", None), (3, 4)]}).headers
    assert pairs == [("Host", "a"), ("X-A", ""), ("3", "4")]
    assert HttpRequest.from_dict({"headers": {"Accept": ["a", "b"], "Host": "h"}}).headers == [
        ("Accept", "a"), ("Accept", "b"), ("Host", "h")]


@pytest.mark.parametrize("ctype,proc", [
    (None, None), ("", None), ("text/plain", None),
    ("multipart/form-data; boundary=x", "MULTIPART"), ("Multipart/Form-Data; boundary=x", "MULTIPART"),
    ("application/json", "JSON"), ("application/vnd.api+json; charset=utf-8", "JSON"),
    ("text/plain; note=json", None),  # "json" only counts in the media type, not in a parameter
    ("text/xml", "XML"), ("application/xml; charset=utf-8", "XML"), ("application/soap+xml", "XML"),
    ("text/plain; x=+xml", None),
    ("application/x-www-form-urlencoded", "URLENCODED"), ("APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8", "URLENCODED"),
])
def test_default_processor_from_content_type(ctype, proc):
    headers = [("Host", "a"), ("X-Content-Type", "application/json")]  # a longer name that ends the same way
    if ctype is not None:
        headers.append(("content-TYPE", ctype))
    r = HttpRequest(method="POST", uri="/", headers=headers, body=b"x")
    assert r.default_processor == proc
