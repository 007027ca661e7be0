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
