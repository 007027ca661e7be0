"""The compiled hot paths (``fsbrain.domains.web._fastweb``) give exactly what the Python code they port gives:
each pure function against its Python original on arbitrary input (hypothesis), and whole verdicts of the
compiled rule loop / prefilter scan against ``compiled=False`` (the Python loop) and ``optimize=False`` (the
plain reference). Skipped where the extension is not built; the Python path is what the rest of the suite
runs then."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.domains.web import HttpRequest, WebRuleEngine, ml, speedups, transforms
from fsbrain.domains.web import request as request_mod
from fsbrain.domains.web.seclang import injection
from fsbrain.domains.web.seclang import transaction as transaction_mod

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_web_rules import ATTACKS, make_mix  # noqa: E402

F = speedups.load(True)
pytestmark = [pytest.mark.skipif(F is None, reason="fsbrain.domains.web._fastweb is not built"),
              # these tests check the compiled paths as the engine and transforms pick them by default
              pytest.mark.skipif(F is not None and not speedups.active(),
                                 reason="the compiled paths are turned off (FSBRAIN_SPEEDUPS=0)")]

_byte_bits = st.sampled_from([b"%", b"u", b"U", b"+", b"0", b"4", b"f", b"F", b"g", b"&", b"=", b";", b" ", b"\t",
                              b"\\", b"/", b"*", b"\x00", b"\xe4", b"\xbf", b"\xa1", b"\xed", b"\xa0", b"\xf0",
                              b"\x90", b"\xf4", b"\x8f", b"\xc2", b"\x80", b"\xff", b"a", b"ff01", b"FF5e",
                              b"%e4%bf%a1", b"<", b"'", b'"', b"`", b"j", b"on", b"select", b"union"])
_values = st.one_of(st.binary(max_size=40), st.lists(_byte_bits, max_size=14).map(b"".join))


@settings(max_examples=600, deadline=None)
@given(v=_values)
def test_transformations_equal_python(v):
    assert F.url_decode(v) == transforms._url_decode_py(v)
    assert F.url_decode_uni(v) == transforms._url_decode_uni_py(v)
    assert F.utf8_to_unicode(v) == transforms._utf8_to_unicode_py(v)
    assert F.plain_value(v) == (v.isascii() and transaction_mod._DECODABLE.search(v) is None)


@settings(max_examples=300, deadline=None)
@given(v=_values, n=st.integers(min_value=0, max_value=5))
def test_parsing_equals_python(v, n):
    assert F.parse_urlencoded(v, n) == request_mod._parse_urlencoded_py(v, n)
    pairs = [(b"Cookie", v), (b"X", v), (b"cookie", v + b"; a=1"), (b"COOKIE", b" ;b")]
    assert F.cookies(pairs) == request_mod._cookies_py(pairs)
    keyed = [(k.decode("utf-8", "surrogateescape"), x) for k, x in pairs]
    assert F.keyed(pairs) == keyed
    idx: dict = {}
    for e in keyed:
        idx.setdefault(e[0].lower(), []).append(e)
    assert F.index(keyed) == idx


@settings(max_examples=200, deadline=None)
@given(headers=st.lists(st.tuples(st.text(max_size=12), st.text(max_size=30)), max_size=8),
       max_headers=st.integers(min_value=0, max_value=9), max_bytes=st.integers(min_value=0, max_value=200))
def test_header_pairs_equal_python(headers, max_headers, max_bytes):
    lim = request_mod.RequestLimits(max_headers=max_headers, max_header_bytes=max_bytes)
    a, b = HttpRequest(headers=list(headers), limits=lim), HttpRequest(headers=list(headers), limits=lim)
    assert a.header_pairs == b._header_pairs_py()
    assert a.limits_hit == b.limits_hit


@settings(max_examples=400, deadline=None)
@given(v=st.one_of(st.text(max_size=30), st.text(alphabet="ab_.@,:-1信 +'<", max_size=300)))
def test_is_plain_equals_python(v):
    assert F.is_plain(v) == ml._is_plain_py(v)


@settings(max_examples=300, deadline=None)
@given(v=st.one_of(st.text(max_size=40), st.text(alphabet="'\" <>=or1一ab%2_", max_size=60)))
def test_model_scores_equal_python(v):
    model = ml.WebModel.load_default()
    norm = ml.normalize(v)
    lo, hi = ml.NGRAM_RANGE
    want = sorted(w for g in ml.ngrams(norm) if (w := model._bin.get(g)) is not None)
    assert sorted(F.ngram_weights(norm, model._bin, lo, hi)) == want
    fast = model._score(v, explain=True, top=5)
    saved, ml._fast_ngram_weights = ml._fast_ngram_weights, None
    try:
        assert model._score(v, explain=True, top=5) == fast
    finally:
        ml._fast_ngram_weights = saved


def _sqli_ref(value):
    if len(value) < 2:
        return None
    if injection._PLAIN.fullmatch(value) is not None and injection._SQL_WORD.search(value) is None:
        return None
    for ctx in (b"", b"'", b'"'):
        if ctx and ctx not in value:
            continue
        toks = injection._tokens(ctx + value)
        if injection._sqli_shape(toks, bool(ctx)):
            return ("".join(t for t, _ in toks[:8]).encode(),)
    return None


def _xss_ref(value):
    if len(value) < 4:
        return None
    if b"<" in value:
        for rx in (injection._BAD_TAG_RX, injection._EVENT_RX, injection._COMMENT_RX, injection._CSS_RX):
            m = rx.search(value)
            if m:
                return (m.group(0)[:64],)
    for rx in (injection._URL_RX, injection._BREAKOUT_RX):
        m = rx.search(value)
        if m:
            return (m.group(0)[:64],)
    return None


_inj_bits = st.sampled_from([b"<", b">", b"script", b"img", b" src=", b"onerror=", b"on", b"load", b"=", b"'", b'"',
                             b"`", b" ", b"\x0b", b"\t", b"\n", b"javascript:", b"JaVa", b"vbscript", b"data:",
                             b"text/html", b"livescript", b"d", b"1", b"or", b"union", b"select", b"from", b"--",
                             b"/*", b"*/", b"(", b")", b";", b"sleep", b"a", b"\xe4\xbf\xa1", b"style=",
                             b"expression(", b"@@version", b"!"])


@settings(max_examples=600, deadline=None)
@given(v=st.one_of(st.binary(max_size=30), st.lists(_inj_bits, max_size=10).map(b"".join)))
def test_injection_detectors_equal_the_wrapper_based_ones(v):
    """The detectors' direct RE2 calls and pre-checks (which hold with or without the extension) change
    nothing: same result as the plain ``re2`` wrapper calls."""
    assert injection.detect_sqli(v) == _sqli_ref(v)
    assert injection.detect_xss(v) == _xss_ref(v)


_sql_bits = st.sampled_from([b"/*", b"*/", b"/*!", b"123", b"--", b"-- ", b"#", b"'", b'"', b"`", b"\\", b"''", b"@",
                             b"@@version", b"a.b", b"union", b"select", b"sleep", b"(", b")", b",", b";", b"&&",
                             b"||", b"=", b"<>", b"!=", b"<=>", b"+", b"or", b" ", b"\xa0", b"\x00", b"\t", b".5",
                             b"0x1f", b"_x", b"$y", b"from", b"if", b"char", b"\xe4", b"-", b"~"])


@settings(max_examples=600, deadline=None)
@given(v=st.one_of(st.binary(max_size=40), st.lists(_sql_bits, max_size=16).map(b"".join)))
def test_sql_lexer_equals_python(v):
    assert injection._tokens(v) == injection._tokens_py(v)


_macro_bits = st.sampled_from(["%{", "}", "%", "{", "tx.", "TX.", "a", "score", "matched_var", "MATCHED_VAR",
                               "rule.id", "request_headers.host", "REQUEST_METHOD", "x" * 120, ".", " ", "é", "\udcff"])


@settings(max_examples=400, deadline=None)
@given(text=st.lists(_macro_bits, max_size=12).map("".join), op=st.sampled_from(["=", "=+", "=-", "del"]),
       value=st.lists(_macro_bits, max_size=6).map("".join))
def test_macros_and_setvar_equal_python(text, op, value):
    from fsbrain.domains.web.seclang.model import SetVar
    from fsbrain.domains.web.seclang.transaction import Transaction

    eng = WebRuleEngine.default()
    req = HttpRequest(method="GET", uri="/a?b=1", headers=[("Host", "h.example")])
    a, b = Transaction(eng, req), Transaction(eng, req)
    for tr in (a, b):
        tr.tx.update({"a": b"1", "score": b"7", "x" * 120: b"long"})
        tr.matched_var = b"mv"
    assert F.expand(a, text) == b.expand(text)
    for name in (text.lower(), "score", "inbound_anomaly_score_pl1", "paranoia_level", "%{tx.a}x"):
        F.setvar(a, SetVar("tx", name, op, value))
        b.setvar("tx", name, op, value)
        assert a.tx == b.tx and a.score_added == b.score_added


def digest(v):
    return (v.blocked, v.score, v.threshold, [(m.id, m.variable, m.value, m.score, m.msg, m.logdata, m.labels)
                                              for m in v.matched], v.labels, v.limits_hit, v.interrupted_by,
            v.body_processor, v.body_error)


def _same(engines, reqs):
    for r in reqs:
        d = r.to_dict()
        got = [digest(e.inspect(HttpRequest.from_dict(d))) for e in engines]
        assert all(g == got[0] for g in got[1:]), d


def test_engine_modes():
    assert WebRuleEngine.default().compiled
    assert not WebRuleEngine.default(compiled=False).compiled
    assert not WebRuleEngine.default(optimize=False).compiled  # the plain reference stays Python
    assert WebRuleEngine.default(optimize=False, compiled=True).compiled


@pytest.mark.parametrize("paranoia", [1, 2, 4])
def test_compiled_loop_equals_python_loop_on_the_bench_mix(paranoia):
    fast = WebRuleEngine.default(paranoia=paranoia)
    py = WebRuleEngine.default(paranoia=paranoia, compiled=False)
    plain_c = WebRuleEngine.default(paranoia=paranoia, optimize=False, compiled=True)
    reqs = make_mix(300, seed=13)
    _same([fast, py, plain_c], reqs + reqs)  # the second pass runs on the cross-request caches


def test_compiled_scan_equals_python_scan_with_empty_and_full_caches():
    from fsbrain.domains.web.seclang.prefilter import CACHE_BYTES, MAX_CACHED_VALUE
    from fsbrain.domains.web.seclang.transaction import Transaction

    eng = WebRuleEngine.default(paranoia=4)
    pf = eng.prefilter
    for r in make_mix(200, seed=3):
        for ph in (1, 2):
            tr = Transaction(eng, r)
            tr.enter_phase(ph)
            pf.clear_caches()
            want = pf._scan(tr, body_only=False)
            pf.clear_caches()
            assert F.scan(pf, tr, False, MAX_CACHED_VALUE, CACHE_BYTES) == want
            assert F.scan(pf, tr, False, MAX_CACHED_VALUE, CACHE_BYTES) == want  # from the cache


_bits = st.sampled_from(["union select", "<script>", "../", "etc/passwd", "' or 1=1", "%27", "%2e%2e/", "hello",
                         "${jndi:ldap://x}", "<?php", ";id", "sleep(5)", "onerror=", " ", "é", "信用卡", "+", "&#x3c;",
                         "\\u003c", "/*", "*/", "\x00", "A", "0x41", "--", "#", "%u0027", "%ff", "\udcff"])
_FAST = WebRuleEngine.default(paranoia=2)
_PY = WebRuleEngine.default(paranoia=2, compiled=False)
_CT = st.sampled_from(["application/x-www-form-urlencoded", "application/json", "multipart/form-data; boundary=b",
                       "text/xml", "", "text/plain"])


@settings(max_examples=250, deadline=None)
@given(name=st.lists(_bits, max_size=3), value=st.lists(_bits, max_size=6), ua=st.lists(_bits, max_size=4),
       ct=_CT, body=st.binary(max_size=60), method=st.sampled_from(["GET", "POST", "PUT", "G\x00T", ""]))
def test_random_requests_compiled_equals_python(name, value, ua, ct, body, method):
    def q(x):
        return quote(x.encode("utf-8", "surrogateescape"), safe="")

    n, v = q("".join(name) or "a"), q("".join(value))
    raw = "".join(value)
    reqs = [HttpRequest(method=method, uri=f"/x?{n}={v}&{raw}", headers=[
        ("Host", "h"), ("User-Agent", "".join(ua)), ("Cookie", f"{n}={v}; {raw}"), ("Content-Type", ct),
        (raw or "X", "".join(ua))], body=body + f"&{n}={v}".encode("utf-8", "surrogateescape"))]
    _same([_FAST, _PY], reqs)


def test_crs_compiled_equals_python(shared_data):
    crs = shared_data("crs-regression")
    rng = random.Random(9)
    for pl in (1, 2):
        fast = WebRuleEngine.from_crs(crs, paranoia=pl)
        py = WebRuleEngine.from_crs(crs, paranoia=pl, compiled=False)
        reqs = make_mix(150, seed=rng.randint(0, 10**6))
        reqs += [HttpRequest(method="GET", uri="/s?q=" + quote(a, safe=""), headers=[
            ("Host", "h"), ("User-Agent", "Mozilla/5.0"), ("Accept", "*/*")]) for a in ATTACKS]
        _same([fast, py], reqs + reqs)


def test_speedups_can_be_switched_off():
    env = dict(os.environ, FSBRAIN_SPEEDUPS="0")
    code = ("from fsbrain.domains.web import WebRuleEngine, HttpRequest, speedups, transforms, ml;"
            "e = WebRuleEngine.default();"
            "assert not speedups.active() and not e.compiled and transforms._fast is None;"
            "assert ml._fast_is_plain is None;"
            "print(e.inspect(HttpRequest(uri='/?q=%27%20or%201%3D1--')).blocked)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


_CRS_ENGINES: dict = {}


@settings(max_examples=80, deadline=None)
@given(value=st.lists(_bits, max_size=6), ua=st.lists(_bits, max_size=3), ct=_CT, body=st.binary(max_size=80),
       method=st.sampled_from(["GET", "POST", "OPTIONS", "G\x00T", ""]),
       extra=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=20)), max_size=3))
def test_crs_random_requests_compiled_equals_python_and_never_raise(shared_data, value, ua, ct, body, method, extra):
    crs = shared_data("crs-regression")
    if "e" not in _CRS_ENGINES:
        _CRS_ENGINES["e"] = (WebRuleEngine.from_crs(crs, paranoia=4),
                             WebRuleEngine.from_crs(crs, paranoia=4, compiled=False))
    raw = "".join(value)
    v = quote(raw.encode("utf-8", "surrogateescape"), safe="")
    req = HttpRequest(method=method, uri=f"/x/{v}?a={v}&{raw}", headers=[
        ("Host", "h"), ("User-Agent", "".join(ua)), ("Cookie", f"c={v}; {raw}"), ("Content-Type", ct), *extra],
        body=body)
    _same(list(_CRS_ENGINES["e"]), [req])


_cmd_bits = st.sampled_from([b" ", b"\t", b"\n", b"\x0b", b"\x0c", b"\r", b"\xa0", b"/", b"(", b",", b";", b"\\",
                             b'"', b"'", b"^", b".", b"..", b"//", b"-", b"--", b"#", b"*", b"<!--", b"-->", b"&",
                             b"&lt;", b"\x00", b"0x41", b"A", b"z", b"=", b"QUJD", b"+", b"%u0041"])
_cmd_values = st.one_of(st.binary(max_size=40), st.lists(_cmd_bits, max_size=16).map(b"".join))


@settings(max_examples=1500, deadline=None)
@given(v=_cmd_values)
def test_every_compiled_transformation_equals_its_python_reference(v):
    """``TRANSFORMS`` holds compiled functions where they exist (the rule engine's chains use them); each
    gives exactly what the Python reference in ``PY_TRANSFORMS`` gives."""
    compiled = [k for k, f in transforms.TRANSFORMS.items() if f is not transforms.PY_TRANSFORMS[k]]
    assert {"cmdline", "jsdecode", "normalizepath", "base64decode", "lowercase"} <= set(compiled)
    for name in compiled:
        assert transforms.TRANSFORMS[name](v) == transforms.PY_TRANSFORMS[name](v), name


def test_compiled_transformations_take_other_types_through_python_and_survive_deepcopy():
    import copy

    t = transforms.TRANSFORMS["jsdecode"]
    assert t(bytearray(b"a\\x41")) == transforms.PY_TRANSFORMS["jsdecode"](bytearray(b"a\\x41"))
    assert copy.deepcopy(t) is t and "jsdecode" in repr(t)


@settings(max_examples=800, deadline=None)
@given(v=st.one_of(st.binary(max_size=24), st.from_regex(rb"\A[ \t]*[+-]?[0-9_]{0,22}[ \t\r\n]*[a-z]?\Z")),
       param=st.sampled_from(["0", "1", "-3", "20", "99999999999999999999", "abc", "", "ab", "5 "]),
       op=st.sampled_from(["eq", "ge", "gt", "le", "lt", "streq", "beginsWith", "endsWith", "contains", "within",
                           "strmatch"]))
def test_constant_comparisons_in_the_compiled_loop_equal_the_operators(v, param, op):
    """The compiled loop runs ``@eq``... and ``@streq``... with a constant parameter itself (``c_code``);
    its answer is the operator's."""
    from fsbrain.domains.web.seclang.operators import compile_operator

    fn = compile_operator(op, param)
    d = F.link_desc(type("L", (), {"operator": fn, "transforms": (), "tfuncs": (), "fast_tx": None,
                                   "op_negated": False, "capture": False, "setvars": [], "multi_match": False,
                                   "id": 1, "targets": [], "exclusions": [], "tags": []})())
    assert d[13] >= 0
    assert F.run_op_for_tests(d, v) == fn(v, lambda _t: b"")


_rx_patterns = [rb"(?i)union\s+select", rb"a(b)?(c)", rb"(?:^|[^\w])(\d{2,})(x)?", rb"\x00", rb"(?i)<script[^>]*>",
                rb"^.*$", rb"[\x80-\xff]+", rb"(?i)(?:on(?:error|load)\s*=)", rb"(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)"]


@pytest.mark.skipif(F is None or not F.re2_direct(), reason="_fastweb built without RE2 (libre2-dev)")
@settings(max_examples=400, deadline=None)
@given(v=st.one_of(_cmd_values, st.lists(st.sampled_from([b"union", b" ", b"select", b"<script x>", b"onerror =",
                                                          b"ab", b"c", b"12", b"\x00", b"\xe4", b"\n", b"x"]),
                                         max_size=10).map(b"".join)))
def test_direct_re2_matches_the_binding(v):
    """RE2 called from the compiled module (the system's libre2) finds what the google-re2 binding finds: the
    same captures (groups 0..9) and, for a set, the same patterns."""
    import re2

    from fsbrain.domains.web.seclang.operators import _fast_search, compile_rx, re2_options

    for pat in _rx_patterns:
        op = _fast_search(compile_rx(pat.decode("latin-1")))
        assert F.CRe(pat)(v) == op(v, lambda _t: b""), pat
    s = re2.Set.SearchSet(re2_options())
    cs = F.CSet()
    for pat in _rx_patterns:
        s.Add(pat)
        cs.add(pat)
    s.Compile()
    cs.compile()
    assert sorted(cs(v)) == sorted(s.Match(v))


@pytest.mark.skipif(F is None or not F.re2_direct(), reason="_fastweb built without RE2 (libre2-dev)")
def test_direct_re2_can_be_turned_off_with_the_same_verdicts(monkeypatch):
    reqs = make_mix(300, seed=5)
    on = WebRuleEngine.default(paranoia=2)
    monkeypatch.setenv("FSBRAIN_RE2", "0")
    off = WebRuleEngine.default(paranoia=2)
    assert on.re2_direct and not off.re2_direct
    for r in reqs:
        a, b = on.inspect(r), off.inspect(r)
        assert (a.score, a.blocked, a.rule_ids) == (b.score, b.blocked, b.rule_ids)


def test_settle_heap_freezes_and_can_be_turned_off(monkeypatch):
    import gc

    from fsbrain.speedups import settle_heap

    gc.unfreeze()
    try:
        monkeypatch.setenv("FSBRAIN_GC_FREEZE", "0")
        assert settle_heap() is False and gc.get_freeze_count() == 0
        monkeypatch.delenv("FSBRAIN_GC_FREEZE")
        assert settle_heap() is True and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_transaction_fields_live_in_the_compiled_base():
    """``Transaction`` subclasses the compiled ``TxState`` (its fields as C fields the compiled loop reads
    directly); Python reads and writes them as before, and attributes outside the base still work."""
    eng = WebRuleEngine.default(paranoia=1)
    tr = transaction_mod.Transaction(eng, HttpRequest(method="GET", uri="/a?x=1", headers=[("Host", "h")]))
    assert isinstance(tr, F.TxState)
    assert tr.tx == dict(eng.initial_tx) and tr.tx is not eng.initial_tx
    tr.score_added = 7
    tr.matched_vars = [("ARGS:x", b"1")]
    assert (tr.score_added, tr.matched_vars) == (7, [("ARGS:x", b"1")])
    tr.extra_note = "kept"  # not a field of the base: the instance dictionary holds it
    assert tr.extra_note == "kept"
    with pytest.raises(TypeError):
        tr.tx = ["not", "a", "dict"]  # typed field: the compiled loop may rely on its type
    # the compiled loop refuses anything that is not a transaction instead of misreading it
    with pytest.raises(TypeError):
        F.run_phase(eng, object(), 1, [], 0, {}, transaction_mod.reduced_chain)


_inj_bits = st.sampled_from([b"a", b"Z", b"1", b" ", b"\t", b"\x0b", b"-", b".", b"/", b"@", b"?", b"select", b"UNION",
                             b"sleep", b"@@", b"xp_", b"'", b'"', b"`", b"=", b"<", b">", b"script", b"j", b"V",
                             b"l", b"D", b"javascript:", b"onload", b"(", b")", b"#", b";", b"\x00", b"\xe4", b"\xc5"])


@settings(max_examples=1500, deadline=None)
@given(v=st.one_of(st.binary(max_size=30), st.lists(_inj_bits, max_size=12).map(b"".join)))
def test_injection_operators_equal_python(v):
    """The compiled ``@detectSQLi`` / ``@detectXSS`` give what the Python detectors give, on every value."""
    from fsbrain.domains.web.seclang import operators

    sqli, xss = operators._injection_op(1), operators._injection_op(2)
    assert type(sqli) is F.InjectionOp and type(xss) is F.InjectionOp
    assert sqli(v, None) == injection.detect_sqli(v)
    assert xss(v, None) == injection.detect_xss(v)


def test_injection_operators_reject_plain_values_and_catch_attacks():
    from fsbrain.domains.web.seclang import operators

    sqli, xss = operators._injection_op(1), operators._injection_op(2)
    for benign in (b"e82430a0b814ebd3", b"GA1.2.776597076.1700000000", b"user9052", b"  data plan"):
        assert sqli(benign, None) is None and xss(benign, None) is None
    assert sqli(b"1' union select password from users--", None) is not None
    assert xss(b"<script>alert(1)</script>", None) is not None
    assert xss(b"  JaVaScRiPt:alert(1)", None) is not None
    assert xss(b"x\" onmouseover=\"alert(1)", None) is not None


def test_injection_operators_copy_and_pickle():
    import copy
    import pickle

    from fsbrain.domains.web.seclang import operators

    op = operators._injection_op(1)
    assert copy.deepcopy(op) is op
    back = pickle.loads(pickle.dumps(op))
    assert type(back) is F.InjectionOp
    for v in (b"plain words", b"1 union select 2", b"'or 1=1--"):
        assert back(v, None) == op(v, None) == injection.detect_sqli(v)


@settings(max_examples=300, deadline=None)
@given(v=st.binary(max_size=30), pattern=st.sampled_from(["^.*$", ".*", "^.*", "(?s)^.*$", "(?s).*"]))
def test_match_all_patterns_in_the_compiled_loop_equal_the_operator(v, pattern):
    """``@rx ^.*$`` (CRS 920450 on every header name) is answered by the compiled loop without RE2: the whole
    value as capture 0, newlines and all, as RE2 itself answers with ``.`` matching newline."""
    from fsbrain.domains.web.seclang.operators import C_MATCH_ALL, compile_operator

    fn = compile_operator("rx", pattern)
    d = F.link_desc(type("L", (), {"operator": fn, "transforms": (), "tfuncs": (), "fast_tx": None,
                                   "op_negated": False, "capture": True, "setvars": [], "multi_match": False,
                                   "id": 1, "targets": [], "exclusions": [], "tags": []})())
    assert d[13] == C_MATCH_ALL
    assert F.run_op_for_tests(d, v) == fn(v, lambda _t: b"")[:1] == (v,)


@settings(max_examples=400, deadline=None)
@given(v=st.one_of(st.text(), st.binary(), st.sampled_from(["", "GET", "/a?b=c", "\udcff\udc80", "é中\U0001F600",
                                                             "\ud800"])))
def test_compiled_to_bytes_equals_python(v):
    """``request.to_bytes`` is the compiled twin when built: the same bytes as the Python function for any text
    (ASCII, non-ASCII, lone surrogates from ``text()`` of raw bytes, unpaired surrogates) and bytes."""
    if request_mod._fast is not None:  # FSBRAIN_SPEEDUPS=0 keeps the Python function in request.py
        assert request_mod.to_bytes is F.to_bytes
    assert F.to_bytes(v) == request_mod.to_bytes_py(v)
