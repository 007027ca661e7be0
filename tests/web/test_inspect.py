"""The web inspector: rules and model combined, the verdict contract, explanations, the inspect CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fsbrain.core.errors import InputError
from fsbrain.domains.web.inspector import VERDICT_KEYS, WebInspector
from fsbrain.domains.web.seclang.engine import WebRuleEngine

H = {"Host": "bank.example.com", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0", "Accept": "*/*",
     "Accept-Language": "en"}

# One deliberately naive rule: the word "select" in any argument scores a critical hit (5 points).
NAIVE = """
SecAction "id:1,phase:1,pass,nolog,setvar:tx.inbound_anomaly_score_threshold=5,setvar:tx.inbound_anomaly_score_pl1=0"
SecRule ARGS "@rx (?i)\\bselect\\b" "id:100,phase:2,block,msg:'select keyword',tag:'attack-sqli',\
    tag:'paranoia-level/1',setvar:'tx.inbound_anomaly_score_pl1=+5'"
SecRule ARGS "@rx \\{\\{" "id:101,phase:2,block,msg:'template braces',tag:'attack-rce',\
    tag:'paranoia-level/1',setvar:'tx.inbound_anomaly_score_pl1=+3'"
"""


@pytest.fixture(scope="module")
def default_inspector():
    return WebInspector(paranoia=1)


@pytest.fixture(scope="module")
def naive():
    return WebInspector(paranoia=1, rules=WebRuleEngine.from_text(NAIVE))


def get(uri: str) -> dict:
    return {"method": "GET", "uri": uri, "headers": H, "body": ""}


def test_verdict_contract_keys(default_inspector):
    v = default_inspector.inspect(get("/search?q=hello"))
    assert list(v)[:5] == list(VERDICT_KEYS)
    assert isinstance(v["attack"], bool) and isinstance(v["score"], int)
    assert {"rule_score", "model_score", "model", "limits_hit", "errors", "suppressed_rules"} <= set(v)


@pytest.mark.parametrize("uri,label", [
    ("/item?id=1%27%20union%20select%20password%20from%20users--", "web_sqli"),
    ("/c?msg=%3Cscript%3Ealert(document.cookie)%3C/script%3E", "web_xss"),
    ("/f?file=../../../../etc/passwd", "web_lfi"),
])
def test_default_rules_and_model_flag_attacks(default_inspector, uri, label):
    v = default_inspector.inspect(get(uri))
    assert v["attack"] and label in v["labels"]
    assert v["reasons"] and all({"source", "id"} <= set(r) for r in v["reasons"])


@pytest.mark.parametrize("q", ["信用卡 还款", "how do I update my address?", "O'Brien & Sons (Ltd.)"])
def test_benign_search_passes(default_inspector, q):
    from urllib.parse import quote

    v = default_inspector.inspect(get("/search?q=" + quote(q)))
    assert not v["attack"] and v["labels"] == []


def test_model_clears_a_weak_rule_hit_on_natural_language(naive):
    v = naive.inspect(get("/feedback?msg=Please+select+the+basic+plan+for+my+account"))
    assert 100 in v["rules"] and v["rule_score"] == 5
    assert v["suppressed_rules"] == [100]
    assert not v["attack"] and v["score"] < 5
    assert any(r["id"] == "web-ngram-clear" for r in v["reasons"])


def test_model_does_not_clear_a_real_attack(naive):
    v = naive.inspect(get("/item?id=1%27%20union%20select%20password%20from%20users--"))
    assert v["attack"] and v["suppressed_rules"] == []
    model_reason = next(r for r in v["reasons"] if r["source"] == "model")
    assert model_reason["feature"] == "ARGS_GET:id" and "n-grams" in model_reason["message"]


def test_model_catches_what_the_rules_miss(naive):
    # no "select" keyword: the naive rules see nothing, the model sees an injection
    v = naive.inspect(get("/item?id=1%27%20or%20%271%27%3D%271%27%20--%20"))
    assert v["rule_score"] == 0 and v["model_score"] >= 5
    assert v["attack"] and v["labels"] == ["web_sqli"]
    assert v["model"][0]["param"] == "ARGS_GET:id" and v["model"][0]["top_ngrams"]


def test_model_tips_a_borderline_rule_hit(naive):
    v = naive.inspect(get("/t?x=%7B%7B7*7%7D%7D"))  # {{7*7}}: rule 101 gives 3 points, the model adds the rest
    assert v["rule_score"] == 3 and v["model_score"] >= 2 and v["attack"]


def test_rules_only_mode(naive):
    rules_only = WebInspector(paranoia=1, rules=WebRuleEngine.from_text(NAIVE), model=False)
    v = rules_only.inspect(get("/feedback?msg=Please+select+the+basic+plan"))
    assert v["attack"] and v["model"] == [] and v["suppressed_rules"] == []


def test_bad_request_and_paranoia_are_refused(default_inspector):
    with pytest.raises(InputError, match="must be a JSON object"):
        default_inspector.inspect(["GET", "/"])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="headers"):
        default_inspector.inspect({"uri": "/", "headers": 5})
    with pytest.raises(InputError, match="paranoia"):
        WebInspector(paranoia=5)


def test_rule_engine_failure_fails_open_and_is_reported():
    class Broken:
        def inspect(self, req):
            raise RuntimeError("boom")

    v = WebInspector(paranoia=1, rules=Broken()).inspect(get("/search?q=hello+world"))
    assert not v["attack"] and v["errors"] and "boom" in v["errors"][0]
    strict = WebInspector(paranoia=1, rules=Broken(), strict=True).inspect(get("/search?q=hello+world"))
    assert strict["attack"]


def test_huge_body_names_the_limit(default_inspector):
    from fsbrain.domains.web.request import RequestLimits

    small = WebInspector(paranoia=1, limits=RequestLimits(max_body_bytes=1000))
    v = small.inspect({"method": "POST", "uri": "/p", "headers": {**H, "Content-Type": "text/plain"},
                       "body": "a" * 5000})
    assert "max_body_bytes" in v["limits_hit"]


def test_cli_inspect_lines_and_errors(tmp_path):
    from fsbrain.cli import _register, app

    _register()
    f = tmp_path / "reqs.jsonl"
    f.write_text("\n".join([json.dumps(get("/search?q=%E4%BF%A1%E7%94%A8%E5%8D%A1")),
                            json.dumps(get("/item?id=1%27%20union%20select%20password%20from%20users--")),
                            "{not json", "[1, 2]", ""]) + "\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["web", "inspect", str(f)])
    assert res.exit_code == 1
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert len(lines) == 4
    assert set(lines[0]) == set(VERDICT_KEYS) and not lines[0]["attack"]
    assert lines[1]["attack"] and "web_sqli" in lines[1]["labels"]
    assert lines[2]["error"].startswith("line 3: invalid JSON")
    assert lines[3]["error"] == "line 4: a request must be a JSON object, got list"
    ok = tmp_path / "ok.jsonl"
    ok.write_text(json.dumps(get("/")) + "\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["web", "inspect", str(ok), "--explain", "--paranoia", "2"])
    assert res.exit_code == 0 and json.loads(res.stdout)["paranoia"] == 2


def test_password_fields_are_opaque_to_the_model(default_inspector):
    body = "username=alice&password=%2FO6%28%21%5Da%3D%27"  # /O6(!]a=' : random, SQL-looking punctuation
    req = {"method": "POST", "uri": "/login", "body": body,
           "headers": {**H, "Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(body))}}
    v = default_inspector.inspect(req)
    assert not any(m["param"].endswith("password") for m in v["model"]) and v["model_score"] == 0
    scored = WebInspector(paranoia=1, opaque_params=()).inspect(req)
    assert any(m["param"] == "ARGS_POST:password" for m in scored["model"])


@pytest.mark.conformance
def test_libinjection_heldout_requests(shared_data, default_inspector):
    """Request level, default rules + model: held-out libinjection payloads as a search query are detected,
    and the held-out half of its false_positives.txt mostly passes (numbers in docs/benchmarks/web_peer.md)."""
    from urllib.parse import quote

    from fsbrain.domains.web import ml

    vals = [(c, v) for c, v in ml.libinjection_values(shared_data("libinjection").parent) if ml.heldout(v)]
    attacks = [v for c, v in vals if c != "benign"][::20]
    benign = [v for c, v in vals if c == "benign"]
    assert len(attacks) > 250 and len(benign) > 100
    tp = sum(default_inspector.inspect(get("/search?q=" + quote(v, safe="")))["attack"] for v in attacks)
    fp = sum(default_inspector.inspect(get("/search?q=" + quote(v, safe="")))["attack"] for v in benign)
    assert tp / len(attacks) >= 0.97
    assert 1 - fp / len(benign) >= 0.85


def test_cli_inspect_names_a_limit_without_explain(tmp_path):
    """A request over an inspection limit is only partly inspected: ``attack: false`` must not read as clean, so
    the default output names the limit (the proxy and middleware refuse such requests with 431/413)."""
    from fsbrain.cli import _register, app

    _register()
    many = {"method": "GET", "uri": "/", "headers": [[f"X-H{i}", "v"] for i in range(300)]}
    f = tmp_path / "reqs.jsonl"
    f.write_text(json.dumps(many) + "\n" + json.dumps(get("/")) + "\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["web", "inspect", str(f)])
    assert res.exit_code == 0, res.output
    over, ok = (json.loads(x) for x in res.stdout.strip().splitlines())
    assert over["limits_hit"] == ["max_headers"]
    assert set(ok) == set(VERDICT_KEYS)  # no limit: exactly the contract keys


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("limit,kw,req", [
    ("max_uri_bytes", {"max_uri_bytes": 100}, {"uri": "/p?q=" + "a" * 200}),
    ("max_header_bytes", {"max_header_bytes": 100}, {"uri": "/", "headers": {"X-A": "b" * 200}}),
    ("max_headers", {"max_headers": 5}, {"uri": "/", "headers": [[f"X-{i}", "v"] for i in range(10)]}),
    ("max_body_bytes", {"max_body_bytes": 100}, {"method": "POST", "uri": "/", "headers": _FORM, "body": "a=" + "b" * 300}),
    ("max_args", {"max_args": 5}, {"uri": "/?" + "&".join(f"a{i}=1" for i in range(10))}),
    ("max_args", {"max_args": 5}, {"method": "POST", "uri": "/", "headers": _FORM,
                                   "body": "&".join(f"a{i}=1" for i in range(10))}),
    ("max_json_depth", {"max_json_depth": 3}, {"method": "POST", "uri": "/",
                                               "headers": {"Content-Type": "application/json"}, "body": "[[[[[[1]]]]]]"}),
    ("max_parts", {"max_parts": 2}, {"method": "POST", "uri": "/",
                                     "headers": {"Content-Type": "multipart/form-data; boundary=b"},
                                     "body": "".join(f'--b\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nv\r\n'
                                                     for i in range(5)) + "--b--\r\n"}),
])
def test_every_limit_is_named_in_the_verdict(limit, kw, req):
    from fsbrain.domains.web.inspector import public_verdict
    from fsbrain.domains.web.request import RequestLimits

    v = WebInspector(paranoia=1, limits=RequestLimits(**kw)).inspect(req)
    assert v["limits_hit"] == [limit]
    assert public_verdict(v)["limits_hit"] == [limit]
    under = WebInspector(paranoia=1).inspect(req)  # the default limits are far above these requests
    assert under["limits_hit"] == [] and "limits_hit" not in public_verdict(under)


def test_request_line_is_cut_at_max_uri_bytes_like_the_uri():
    """REQUEST_LINE carried the whole URI past ``max_uri_bytes`` while REQUEST_URI and the arguments were cut: a
    rule reading REQUEST_LINE matched what lies past the limit."""
    from fsbrain.domains.web import HttpRequest, WebRuleEngine
    from fsbrain.domains.web.request import RequestLimits

    rule = ('SecRule REQUEST_LINE "@contains evil" "id:9001,phase:1,pass,t:none,'
            'setvar:tx.inbound_anomaly_score_pl1=+5,msg:\'line\'"')
    eng = WebRuleEngine.from_text(rule)
    uri = "/p?q=" + "a" * 200 + "evil"
    req = HttpRequest(uri=uri, limits=RequestLimits(max_uri_bytes=100))
    assert req.request_line == b"GET " + uri.encode()[:100] + b" HTTP/1.1"
    assert 9001 not in eng.inspect(req).rule_ids
    assert 9001 in eng.inspect(HttpRequest(uri=uri)).rule_ids  # under the default limits the rule sees it
