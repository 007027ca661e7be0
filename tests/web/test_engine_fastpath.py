"""The optimised rule engine (per-value prefilter, hit masks cached across requests, folded TX constants)
gives exactly the verdicts of the plain evaluation (``optimize=False``) — on the speed benchmark's request
mix, on attack payloads, on values built at random, and with OWASP CRS when the corpus is present."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.domains.web import HttpRequest, WebRuleEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_web_rules import ATTACKS, make_mix  # noqa: E402


def digest(v):
    return (v.blocked, v.score, v.threshold, [(m.id, m.variable, m.value, m.score, m.msg, m.logdata)
                                              for m in v.matched], v.labels, v.limits_hit, v.interrupted_by)


def same_verdicts(fast: WebRuleEngine, ref: WebRuleEngine, reqs: list[HttpRequest]) -> None:
    for r in reqs:
        d = r.to_dict()
        assert digest(fast.inspect(HttpRequest.from_dict(d))) == digest(ref.inspect(HttpRequest.from_dict(d))), d


@pytest.mark.parametrize("paranoia", [1, 2, 4])
def test_default_rules_fast_equals_plain_on_the_bench_mix(paranoia):
    fast = WebRuleEngine.default(paranoia=paranoia)
    ref = WebRuleEngine.default(paranoia=paranoia, optimize=False)
    reqs = make_mix(300, seed=11)
    same_verdicts(fast, ref, reqs + reqs)  # the second pass runs on the cross-request caches


def test_attacks_in_every_place_fast_equals_plain():
    fast, ref = WebRuleEngine.default(paranoia=2), WebRuleEngine.default(paranoia=2, optimize=False)
    reqs = []
    for a in ATTACKS + ["%u0027 or 1=1", "..%c0%af..%c0%afetc/passwd", "/ *x* /", "<svg/onload=alert(1)>"]:
        q = quote(a, safe="")
        reqs += [HttpRequest(method="GET", uri=f"/p?{q}={q}", headers=[("Host", "h"), ("Cookie", f"{q}={q}")]),
                 HttpRequest(method="POST", uri="/f", headers=[("Host", "h"), ("User-Agent", a), ("Referer", a),
                             ("Content-Type", "application/x-www-form-urlencoded")], body=f"a={q}".encode()),
                 HttpRequest(method="POST", uri="/j", headers=[("Host", "h"), ("Content-Type", "application/json")],
                             body=b'{"k": "' + a.replace('"', '\\"').encode() + b'"}')]
    same_verdicts(fast, ref, reqs)


_FAST = WebRuleEngine.default(paranoia=2)
_REF = WebRuleEngine.default(paranoia=2, optimize=False)
_bits = st.sampled_from(["union select", "<script>", "../", "etc/passwd", "' or 1=1", "%27", "%2e%2e/", "hello",
                         "${jndi:ldap://x}", "<?php", ";id", "sleep(5)", "onerror=", " ", "é", "信用卡", "+", "&#x3c;",
                         "\\u003c", "/*", "*/", "\x00", "A", "Z", "0x41", "--", "#"])


@settings(max_examples=200, deadline=None)
@given(name=st.lists(_bits, max_size=3), value=st.lists(_bits, max_size=6), ua=st.lists(_bits, max_size=4))
def test_random_values_fast_equals_plain(name, value, ua):
    n, v = quote("".join(name) or "a", safe=""), quote("".join(value), safe="")
    req = HttpRequest(method="POST", uri=f"/x?{n}={v}", headers=[
        ("Host", "h"), ("User-Agent", "".join(ua)), ("Cookie", f"{n}={v}"),
        ("Content-Type", "application/x-www-form-urlencoded")], body=f"{n}={v}".encode())
    same_verdicts(_FAST, _REF, [req])


def test_crs_fast_equals_plain(shared_data):
    crs = shared_data("crs-regression")
    rng = random.Random(5)
    for pl in (1, 2):
        fast = WebRuleEngine.from_crs(crs, paranoia=pl)
        ref = WebRuleEngine.from_crs(crs, paranoia=pl, optimize=False)
        reqs = make_mix(150, seed=rng.randint(0, 10**6))
        reqs += [HttpRequest(method="GET", uri="/s?q=" + quote(a, safe=""), headers=[("Host", "h"),
                             ("User-Agent", "Mozilla/5.0"), ("Accept", "*/*")]) for a in ATTACKS]
        same_verdicts(fast, ref, reqs + reqs)


def test_a_rule_set_compiled_twice_is_not_shared():
    from fsbrain.domains.web.seclang.engine import RULES_DIR
    from fsbrain.domains.web.seclang.parser import parse_files

    rs = parse_files(sorted(RULES_DIR.glob("*.conf")))
    e1, e2 = WebRuleEngine(rs, paranoia=1), WebRuleEngine(rs, paranoia=4)
    assert e1.ruleset is not e2.ruleset
    req = HttpRequest(method="GET", uri="/wp-admin/install.php?a=1", headers=[("Host", "h")])
    assert digest(e1.inspect(req)) == digest(WebRuleEngine.default(paranoia=1).inspect(req))


_MEMO_RULES = """
SecAction "id:1,phase:1,pass,nolog,setvar:tx.restricted=/proxy/ /if/"
SecRule REQUEST_HEADERS_NAMES "@rx ^.*$" "id:10,phase:1,block,capture,t:none,t:lowercase,\\
    msg:'restricted header %{MATCHED_VAR}',logdata:'%{MATCHED_VAR}',setvar:'tx.hn_%{tx.0}=/%{tx.0}/',chain"
    SecRule TX:/^hn_/ "@within %{tx.restricted}" "setvar:'tx.inbound_anomaly_score_pl1=+5'"
SecRule MATCHED_VARS "@rx ^x-probe$" "id:15,phase:1,pass,log,msg:'what 10 left in MATCHED_VARS',logdata:'%{MATCHED_VAR}'"
SecRule MATCHED_VAR "@rx ^x-tag$" "id:16,phase:1,pass,log,msg:'what 10 left in MATCHED_VAR'"
SecRule TX:/^hn_/ "@rx /x-probe/" "id:20,phase:1,block,msg:'a later rule reads what 10 wrote',\\
    logdata:'%{MATCHED_VAR} %{TX.0}',setvar:'tx.inbound_anomaly_score_pl1=+5'"
SecRule REQUEST_HEADERS:X-Tag "@rx ^memo" "id:30,phase:1,block,msg:'after: %{MATCHED_VAR_NAME}',\\
    logdata:'%{TX.0}',setvar:'tx.inbound_anomaly_score_pl1=+5'"
"""


def test_a_chain_no_match_memo_replays_what_the_chain_leaves():
    """CRS's restricted-header chains (920450/920451) are memoised per header-name list when they do not match
    (``WebRuleEngine._memo_specs``): a request with the same names replays the chain's TX writes and matched
    variables. Verdicts, logged values included, must equal the plain evaluation's, also for later rules that
    read what the chain wrote (the TX variables, capture ``TX.0``)."""
    fast = WebRuleEngine.from_text(_MEMO_RULES)
    ref = WebRuleEngine.from_text(_MEMO_RULES, optimize=False)
    assert [r.id for r in fast.rules if id(r) in fast._memo_specs()] == [10]
    if not fast.compiled:
        pytest.skip("the memo is the compiled loop's (extension not built or FSBRAIN_SPEEDUPS=0)")
    base = [("Host", "h"), ("User-Agent", "ua"), ("Accept", "*/*")]
    reqs = [HttpRequest(uri="/", headers=base + extra) for extra in
            ([], [("X-Probe", "1")], [("Proxy", "p")], [("X-Tag", "memo-1")], [("X-Probe", "2"), ("X-Tag", "memo-2")])]
    same_verdicts(fast, ref, reqs + reqs + reqs[::-1])
    outcomes = next(e for e in fast._cplans[1] if e[4] == 10)[13][0]
    assert len(outcomes) == 4  # every header-name list but the one with Proxy (a match is never memoised)
    v = fast.inspect(HttpRequest(uri="/", headers=base + [("Proxy", "p")]))
    assert [m.id for m in v.matched] == [10] and v.score == 5


def test_the_chain_memo_is_off_with_ctl_removals_and_for_other_shapes():
    rules = _MEMO_RULES + """
SecRule REQUEST_HEADERS:X-Off "@streq 1" "id:5,phase:1,pass,nolog,ctl:ruleRemoveTargetById=10;REQUEST_HEADERS_NAMES:proxy"
"""
    # rule 5 runs after 10 here, so 10 still sees Proxy; the point is that verdicts stay equal with ctl in play
    fast, ref = WebRuleEngine.from_text(rules), WebRuleEngine.from_text(rules, optimize=False)
    reqs = [HttpRequest(uri="/", headers=[("Host", "h"), ("X-Off", "1"), ("Proxy", "p")]),
            HttpRequest(uri="/", headers=[("Host", "h"), ("X-Off", "1")])]
    same_verdicts(fast, ref, reqs + reqs)
    # a second link that reads a TX prefix some other rule writes is not memoised
    other = _MEMO_RULES + 'SecAction "id:40,phase:1,pass,nolog,setvar:tx.hn_extra=/proxy/"\n'
    assert not WebRuleEngine.from_text(other)._memo_specs()


def test_the_chain_memo_keeps_only_small_header_name_lists():
    """A client inventing long header-name lists must not fill the memo: lists over 32 names or 1 KiB of
    names are evaluated every time (with the same verdicts), never stored."""
    fast, ref = WebRuleEngine.from_text(_MEMO_RULES), WebRuleEngine.from_text(_MEMO_RULES, optimize=False)
    if not fast.compiled:
        pytest.skip("the memo is the compiled loop's (extension not built or FSBRAIN_SPEEDUPS=0)")
    many = HttpRequest(uri="/", headers=[("Host", "h")] + [(f"X-{i}", "v") for i in range(40)])
    long = HttpRequest(uri="/", headers=[("Host", "h"), ("X-" + "a" * 1100, "v"), ("X-Probe", "1")])
    same_verdicts(fast, ref, [many, long, many, long])
    assert not next(e for e in fast._cplans[1] if e[4] == 10)[13][0]
