"""The model reuses the JSON document the request parser decoded (no second ``json.loads``), with the same
parameters as when it parses the body itself."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from fsbrain.domains.web import ml
from fsbrain.domains.web.request import HttpRequest, RequestLimits

REQS = [
    {"method": "POST", "uri": "/api/v1/transfer?x=1", "headers": {"Content-Type": "application/json"},
     "body": json.dumps({"to": "6222 0000", "memo": "1' or '1'='1", "items": [{"a": "<script>"}, 3, None],
                         "nested": {"k.dot": {"0": "x"}}, "empty": {}, "t": True})},
    {"method": "POST", "uri": "/api", "headers": {"Content-Type": "application/vnd.api+json; charset=utf-8"},
     "body": '["../../etc/passwd", {"名字": "张三"}]'},
    {"method": "POST", "uri": "/api", "headers": {"Content-Type": "application/json"}, "body": "{not json"},
    {"method": "POST", "uri": "/api", "headers": {}, "body": '{"no": "content type"}'},
    {"method": "POST", "uri": "/api", "headers": {"Content-Type": "application/json"}, "body": "null"},
]


@dataclass
class _DocBody:
    """A ParsedBody as a parser that keeps the decoded document would return it."""

    processor: str | None
    args: list = field(default_factory=list)
    error: str | None = None
    limits_hit: list = field(default_factory=list)
    doc: Any = None


def _with_doc(raw: dict, doc: Any = None, *, error: str | None = None, limits: RequestLimits | None = None
              ) -> HttpRequest:
    h = HttpRequest.from_dict(raw, limits=limits or RequestLimits())
    h.__dict__["_bodies"] = {"JSON": _DocBody("JSON", doc=doc, error=error)}
    return h


@pytest.mark.parametrize("raw", REQS)
def test_same_params_with_and_without_the_request(raw):
    own = ml.request_params(raw, headers=True)
    assert ml.request_params(raw, headers=True, http=HttpRequest.from_dict(raw)) == own


def test_reused_document_is_not_decoded_again(monkeypatch):
    raw = REQS[0]
    expected = ml.request_params(raw)
    http = _with_doc(raw, json.loads(raw["body"]))

    def boom(*_a, **_k):
        raise AssertionError("the body was decoded a second time")

    monkeypatch.setattr(ml.json, "loads", boom)
    assert ml.request_params(raw, http=http) == expected
    assert ("json.memo", "1' or '1'='1") in expected and ("json.items[0].a", "<script>") in expected


@pytest.mark.parametrize("case", ["other_body", "parse_error", "truncated", "no_doc", "not_json_ctype"])
def test_not_reused_when_it_would_differ(case, monkeypatch):
    raw = dict(REQS[0])
    doc: Any = {"decoy": "value"}
    http = _with_doc(raw, doc)
    if case == "other_body":
        http = _with_doc({**raw, "body": '{"decoy": "value"}'}, doc)
    elif case == "parse_error":
        http = _with_doc(raw, doc, error="json: bad")
    elif case == "truncated":
        http = _with_doc(raw, doc, limits=RequestLimits(max_body_bytes=10))
    elif case == "no_doc":
        http = _with_doc(raw, None)
    else:
        raw = {**raw, "headers": {}}
        http = _with_doc(raw, doc)
    calls = []
    real = json.loads
    monkeypatch.setattr(ml.json, "loads", lambda s, *a, **k: calls.append(1) or real(s, *a, **k))
    params = ml.request_params(raw, http=http)
    assert ("json.decoy", "value") not in params
    assert ("json.memo", "1' or '1'='1") in params
    assert calls == [1]


def test_the_inspector_does_not_decode_a_json_body_twice(monkeypatch):
    """The request parser keeps the decoded document (``ParsedBody.doc``) and the inspector hands the
    request to the model, which then reads that document instead of calling ``json.loads`` again."""
    from fsbrain.domains.web.inspector import WebInspector

    body = '{"account": "6222020200112233", "memo": "转账 rent", "items": [1, {"q": "x\' or 1=1--"}]}'
    req = {"method": "POST", "uri": "/api/v1/transfer", "headers": {"Content-Type": "application/json"},
           "body": body}
    assert HttpRequest.from_dict(req).parsed_body().doc == json.loads(body)
    insp = WebInspector(paranoia=1)
    want = insp.inspect(dict(req))
    calls = []
    real = ml.json.loads
    import sys

    def loads(*a, **k):  # the json module is shared: count the model's calls only
        if sys._getframe(1).f_globals.get("__name__") == ml.__name__:
            calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(ml.json, "loads", loads)
    got = insp.inspect(dict(req))
    assert calls == []
    assert {k: v for k, v in got.items() if k != "latency_ms"} == {k: v for k, v in want.items() if k != "latency_ms"}
