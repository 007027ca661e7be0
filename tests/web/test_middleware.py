"""The ASGI WAF middleware: detect and block modes, block page / JSON, request ids, limits, CC."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from fsbrain.core.errors import InputError
from fsbrain.domains.web.cc import CCConfig, CCDetector
from fsbrain.domains.web.inspector import WebInspector
from fsbrain.domains.web.middleware import FsbrainWAFMiddleware

ATTACK = "/item?id=1%27%20union%20select%20password%20from%20users--"


async def echo_app(scope, receive, send):
    body = b""
    more = True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    rid = dict(scope["headers"]).get(b"x-request-id", b"")
    out = b"app saw %d bytes, id %s" % (len(body), rid)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": out})


@pytest.fixture(scope="module")
def inspector():
    return WebInspector(paranoia=1)


def call(app, method: str, url: str, **kw) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("192.0.2.10", 1234)),
                                     base_url="http://bank.test") as c:
            return await c.request(method, url, **kw)

    return asyncio.run(go())


def test_detect_mode_passes_attacks_and_reports_them(inspector):
    seen = []
    app = FsbrainWAFMiddleware(echo_app, mode="detect", inspector=inspector, on_verdict=lambda r, v: seen.append((r, v)))
    r = call(app, "GET", ATTACK)
    assert r.status_code == 200 and r.text.startswith("app saw 0 bytes")
    rid = r.headers["x-request-id"]
    assert r.text.endswith(rid) and seen[0][0] == rid and seen[0][1]["attack"]


def test_block_mode_blocks_attacks_html_and_json(inspector):
    app = FsbrainWAFMiddleware(echo_app, mode="block", inspector=inspector)
    r = call(app, "GET", ATTACK, headers={"Accept": "text/html"})
    assert r.status_code == 403 and "Request blocked" in r.text and r.headers["x-request-id"] in r.text
    r = call(app, "GET", ATTACK, headers={"Accept": "application/json", "X-Request-Id": "client-req-00001"})
    assert r.status_code == 403 and r.json()["request_id"] == "client-req-00001"
    assert r.json()["error"] == "request_blocked" and "web_sqli" in r.json()["labels"]
    assert r.headers["x-request-id"] == "client-req-00001"


def test_block_mode_passes_benign_with_body(inspector):
    app = FsbrainWAFMiddleware(echo_app, mode="block", inspector=inspector)
    r = call(app, "POST", "/transfer", content="payee=%E5%BC%A0%E4%B8%89&amount=100.00&memo=rent+May",
             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.text.startswith("app saw 52 bytes")
    r = call(app, "GET", "/search?q=x", headers={"X-Request-Id": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"


def test_body_and_header_limits_are_named(inspector):
    seen = []
    app = FsbrainWAFMiddleware(echo_app, mode="block", inspector=inspector, max_body_bytes=1000, max_header_bytes=2000)
    r = call(app, "POST", "/upload", content=b"x" * 5000, headers={"Accept": "application/json"})
    assert r.status_code == 413 and r.json()["limit"] == "max_body_bytes=1000"
    r = call(app, "GET", "/", headers={"X-Big": "y" * 3000, "Accept": "application/json"})
    assert r.status_code == 431 and r.json()["limit"] == "max_header_bytes=2000"
    detect = FsbrainWAFMiddleware(echo_app, mode="detect", inspector=inspector, max_body_bytes=1000,
                                  on_verdict=lambda rid, v: seen.append(v))
    r = call(detect, "POST", "/upload", content=b"x" * 5000)
    assert r.status_code == 200 and r.text.startswith("app saw 5000 bytes")
    assert "max_body_bytes" in seen[-1]["limits_hit"]


def test_cc_rate_limit_and_challenge(inspector):
    cc = CCDetector(config=CCConfig(ip_rate=1, ip_burst=5))
    app = FsbrainWAFMiddleware(echo_app, mode="block", inspector=inspector, cc=cc)
    codes = [call(app, "GET", f"/p/{i}").status_code for i in range(12)]
    assert codes[0] == 200 and 429 in codes
    cc2 = CCDetector(config=CCConfig(url_min_rate=5, flood_max_sources=50, flood_top_share=1.5, subnet_burst=10**6,
                                     ip_burst=10**6))
    app2 = FsbrainWAFMiddleware(echo_app, mode="block", inspector=inspector, cc=cc2)
    rs = [call(app2, "GET", "/hot") for _ in range(10)]
    chal = next(r for r in rs if r.status_code == 200 and "fsbrain_chk" in r.headers.get("set-cookie", ""))
    assert "Checking your browser" in chal.text
    cookie = chal.headers["set-cookie"].split(";")[0]
    r = call(app2, "GET", "/hot", headers={"Cookie": cookie})
    assert r.text.startswith("app saw")


def test_bad_mode_refused():
    with pytest.raises(InputError, match="mode"):
        FsbrainWAFMiddleware(echo_app, mode="prevent")


# -- the verdict cache ------------------------------------------------------------------------------------

def _same(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k != "latency_ms"} == {k: v for k, v in b.items() if k != "latency_ms"}


def test_verdict_cache_gives_exactly_the_inspectors_verdicts(inspector):
    import gzip
    import json

    from fsbrain.domains.web import ml
    from fsbrain.domains.web.inspector import VerdictCache

    with gzip.open(ml.DATA_DIR / "benign_eval.jsonl.gz", "rt", encoding="utf-8") as f:
        reqs = [json.loads(line) for _, line in zip(range(300), f, strict=False)]
    reqs += [{"method": "GET", "uri": ATTACK, "headers": [("user-agent", "Mozilla/5.0")], "body": b""},
             {"method": "POST", "uri": "/login", "headers": [("content-type", "application/x-www-form-urlencoded")],
              "body": b"user=admin'--&password=x<script>alert(1)</script>"}]
    cache = VerdictCache(inspector, max_entries=10_000, max_key_bytes=1 << 20)
    for r in reqs:
        first = cache.inspect(r)
        cache.inspect(r)  # seen twice: stored (when the key covers the request)
        second = cache.inspect(r)  # from the cache
        fresh = inspector.inspect(r)
        assert _same(first, fresh) and _same(second, fresh), r
        second["labels"].append("mutated")  # a caller changing its copy does not change the cache
        second.setdefault("reasons", []).append({"x": 1})
        assert _same(cache.inspect(r), fresh)
    assert cache.hits >= len(reqs) and any(v["attack"] for v in map(inspector.inspect, reqs))


def test_verdict_cache_is_bounded_and_keys_only_what_it_covers(inspector):
    from fsbrain.domains.web.inspector import VerdictCache

    cache = VerdictCache(inspector, max_entries=3, max_key_bytes=200)
    for i in range(10):
        cache.inspect({"method": "GET", "uri": f"/p{i}", "headers": [("accept", "*/*")], "body": b""})
    assert len(cache) == 0 and cache.misses == 10  # each seen once: nothing stored
    for i in range(10):
        cache.inspect({"method": "GET", "uri": f"/p{i}", "headers": [("accept", "*/*")], "body": b""})
    assert 0 < len(cache) <= 3 and cache.misses == 20
    cache.inspect({"method": "GET", "uri": "/p9", "headers": [("accept", "*/*")], "body": b""})
    assert cache.hits == 1
    big = {"method": "POST", "uri": "/x", "headers": [], "body": b"a=" + b"b" * 300}
    other = [big, {"method": "GET", "uri": "/p9", "headers": {"accept": 1}},  # not a str: never keyed
             {"method": "GET", "uri": "/p9", "headers": [("accept", "*/*")], "body": b"", "remote_addr": "1.2.3.4"},
             {"method": "GET", "uri": "/p9", "headers": [["accept", "*/*"]], "body": b""}]
    for r in other:
        cache.inspect(r)
    assert cache.uncached == len(other) and len(cache) == 3
    # str and bytes bodies, dict and list headers never share an entry with something that differs
    assert cache._key({"method": "GET", "uri": "/", "body": "x"}) != cache._key({"method": "GET", "uri": "/",
                                                                                 "body": b"x"})


def test_nondeterministic_rules_turn_the_cache_off():
    from fsbrain.domains.web.inspector import deterministic_rules
    from fsbrain.domains.web.seclang.engine import WebRuleEngine

    setup = 'SecAction "id:1,phase:1,pass,nolog,setvar:tx.critical_anomaly_score=5"\n'
    plain = WebRuleEngine.from_text(setup + 'SecRule ARGS "@rx evil" "id:10,phase:2,block,'
                                    'setvar:tx.anomaly_score_pl1=+5"\n')
    uid = WebRuleEngine.from_text(setup + 'SecRule UNIQUE_ID "@rx ^a" "id:11,phase:1,block,'
                                  'setvar:tx.anomaly_score_pl1=+5"\n')
    macro = WebRuleEngine.from_text(setup + 'SecRule ARGS "@rx evil" "id:12,phase:2,pass,'
                                    'msg:\'seen in %{UNIQUE_ID}\',chain"\n  SecRule ARGS "@rx x" "t:none"\n')
    assert deterministic_rules(plain) and not deterministic_rules(uid) and not deterministic_rules(macro)
    insp = WebInspector(paranoia=1, rules=uid, model=False)
    assert insp.cacheable is False
    assert FsbrainWAFMiddleware(echo_app, inspector=insp).verdicts is None
    assert FsbrainWAFMiddleware(echo_app, inspector=WebInspector(paranoia=1, rules=plain)).verdicts is not None

    class Custom:  # an inspector that does not declare itself cacheable is never cached
        def inspect(self, req):
            return {"attack": False, "score": 0, "labels": [], "rules": [], "reasons": []}

    assert FsbrainWAFMiddleware(echo_app, inspector=Custom()).verdicts is None
    assert FsbrainWAFMiddleware(echo_app, inspector=WebInspector(paranoia=1), verdict_cache=0).verdicts is None


def test_crs_v4_verdicts_are_cacheable():
    from pathlib import Path

    from fsbrain.domains.web.inspector import deterministic_rules
    from fsbrain.domains.web.seclang.engine import WebRuleEngine

    crs = Path(__file__).resolve().parents[3] / "shared" / "data" / "crs-regression"
    if not crs.is_dir():
        pytest.skip("no CRS checkout")
    assert deterministic_rules(WebRuleEngine.from_crs(crs, paranoia=1))


def test_cached_verdicts_still_update_bots_and_cc_every_request(inspector):
    from fsbrain.domains.web.bots import BotDetector

    cc = CCDetector(config=CCConfig(ip_rate=1, ip_burst=5))
    seen: list[dict] = []
    app = FsbrainWAFMiddleware(echo_app, mode="block", inspector=inspector, cc=cc, bots=BotDetector(),
                               on_verdict=lambda rid, v: seen.append(v))
    codes = [call(app, "GET", "/same/page").status_code for _ in range(12)]
    assert codes[0] == 200 and 429 in codes  # the same request each time: CC still counts every one
    assert app.verdicts is not None and app.verdicts.hits >= 9
    assert all("bot" in v for v in seen) and any("cc" in v for v in seen)
    blocked = [call(app, "GET", ATTACK).status_code for _ in range(2)]
    assert set(blocked) <= {403, 429}


def test_crs_with_sampling_is_not_cacheable(tmp_path):
    import shutil
    from pathlib import Path

    from fsbrain.domains.web.inspector import deterministic_rules
    from fsbrain.domains.web.seclang.engine import WebRuleEngine

    crs = Path(__file__).resolve().parents[3] / "shared" / "data" / "crs-regression"
    if not crs.is_dir():
        pytest.skip("no CRS checkout")
    shutil.copytree(crs / "rules", tmp_path / "rules")
    init = tmp_path / "rules" / "REQUEST-901-INITIALIZATION.conf"
    init.write_text('SecAction "id:900400,phase:1,pass,nolog,setvar:tx.sampling_percentage=50"\n'
                    + init.read_text(encoding="utf-8"), encoding="utf-8")
    assert not deterministic_rules(WebRuleEngine.from_crs(tmp_path, paranoia=1))


def test_verdict_cache_copies_exactly_or_not_at_all():
    from fsbrain.domains.web.inspector import VerdictCache

    class Odd:
        pass

    class Fixed:
        def __init__(self, verdict):
            self.verdict, self.calls = verdict, 0

        def inspect(self, req):
            self.calls += 1
            return self.verdict

    r = {"method": "GET", "uri": "/", "headers": [], "body": b""}
    typed = Fixed({"attack": True, "score": 1, "labels": ("a",), "x": 1.5, "y": None, "z": [{"k": [True]}]})
    cache = VerdictCache(typed)
    cache.inspect(r)
    cache.inspect(r)
    got = cache.inspect(r)
    assert typed.calls == 2 and got["labels"] == ("a",) and got["z"][0]["k"][0] is True
    assert got["z"] is not typed.verdict["z"] and {k: v for k, v in got.items() if k != "latency_ms"} == typed.verdict
    odd = Fixed({"attack": False, "thing": Odd()})
    cache = VerdictCache(odd)
    for _ in range(3):
        cache.inspect(r)
    assert odd.calls == 3 and len(cache) == 0
