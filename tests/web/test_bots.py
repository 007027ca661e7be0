"""Bot detection: UA signatures, headless tells, behaviour windows, good crawlers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.core.errors import InputError
from fsbrain.domains.web.bots import BotBehaviourConfig, BotDetector, UserAgentTable, headless_tells
from fsbrain.state import MemoryStateBackend

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
BROWSER = {"User-Agent": CHROME, "Accept": "text/html", "Accept-Language": "zh-CN,zh;q=0.9", "Cookie": "s=1",
           "Accept-Encoding": "gzip"}


@pytest.fixture(scope="module")
def table():
    return UserAgentTable.load()


@pytest.mark.parametrize("ua,category", [
    ("sqlmap/1.7.2#stable (https://sqlmap.org)", "scanner"),
    ("Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)", "scanner"),
    ("python-requests/2.31.0", "library"),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "crawler"),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "good_bot"),
    ("Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", "good_bot"),
    (CHROME, "human"),
])
def test_signatures(ua, category):
    v = BotDetector().inspect({**BROWSER, "User-Agent": ua}, ip="192.0.2.1", path="/", ts=0.0)
    assert v.category == category
    if category == "good_bot":
        assert v.score == 0 and v.needs_rdns and not v.is_bad
    if category == "scanner":
        assert v.is_bad and v.reasons[0].label == "web_scanner"


@settings(max_examples=200, deadline=None)
@given(ua=st.sampled_from(["", CHROME, CHROME.replace("Chrome/", "HeadlessChrome/"), "curl/8.5.0",
                           "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0 Playwright", "x" * 600]),
       names=st.lists(st.sampled_from(["Host", "host", "Accept", "accept-language", "Cookie", "x-webdriver",
                                       "Webdriver", "Accept-Encoding", "Connection"]), max_size=6),
       twice=st.booleans())
def test_headless_tells_cache_gives_what_the_headers_give(ua, names, twice):
    from fsbrain.domains.web import bots as bots_mod

    headers = {n: "v" for n in names}
    if ua:
        headers["User-Agent"] = ua
    h = {k.lower(): v for k, v in headers.items()}
    want = bots_mod._headless_tells(h, h.get("user-agent", ""))
    assert headless_tells(headers) == want
    if twice:  # from the cache, with the names in another order and case
        assert headless_tells({k.upper(): v for k, v in reversed(list(headers.items()))}) == want


def test_headless_tells_cache_is_bounded(monkeypatch):
    from fsbrain.domains.web import bots as bots_mod

    monkeypatch.setattr(bots_mod, "_TELLS", {})
    monkeypatch.setattr(bots_mod, "_TELLS_MAX", 8)
    for i in range(50):
        headless_tells({"User-Agent": f"agent/{i}"})
    assert 0 < len(bots_mod._TELLS) <= 8
    headless_tells({"User-Agent": "y" * 2000})  # too long to cache
    assert all(len(k[0]) <= bots_mod._TELLS_MAX_UA for k in bots_mod._TELLS)


def test_headless_tells():
    ids = {r.id for r in headless_tells({"User-Agent": CHROME.replace("Chrome/", "HeadlessChrome/")})}
    assert {"BOT-HEADLESS-UA", "BOT-NO-ACCEPT-LANGUAGE", "BOT-NO-ACCEPT"} <= ids
    ids = {r.id for r in headless_tells({"host": "x", "user-agent": CHROME, "accept": "*/*"})}
    assert "BOT-LIBRARY-HEADERS" in ids
    assert headless_tells(BROWSER) == []
    assert [r.id for r in headless_tells({})] == ["BOT-NO-UA"]
    v = BotDetector().inspect({"User-Agent": CHROME, "webdriver": "true"}, ip="192.0.2.9", path="/", ts=0.0)
    assert v.category == "suspicious" and v.is_bad


def test_crawler_behaviour_from_a_browser_ua():
    det = BotDetector(MemoryStateBackend())
    for i in range(40):
        v = det.inspect({k: x for k, x in BROWSER.items() if k != "Cookie"},
                        ip="198.51.100.7", path=f"/product/{i}", ts=1000.0 + i, status=404 if i % 2 else 200)
    ids = {r.id for r in v.reasons}
    assert {"BOT-PATH-DIVERSITY", "BOT-NO-STATIC", "BOT-ERRORS", "BOT-NO-COOKIES"} <= ids
    assert v.features["requests"] == 40 and v.features["path_diversity"] == 1.0
    assert v.category == "suspicious" and v.is_bad


def test_human_browsing_stays_human():
    det = BotDetector(MemoryStateBackend())
    for i in range(60):
        path = ["/", "/static/app.js", "/static/site.css", "/account"][i % 4]
        v = det.inspect(BROWSER, ip="198.51.100.8", path=path, ts=1000.0 + i * 2, status=200)
    assert v.category == "human" and v.score < 50


def test_rate_reason_and_window_expiry():
    det = BotDetector(config=BotBehaviourConfig(window=60, max_rate=50))
    for i in range(60):
        v = det.inspect(BROWSER, ip="203.0.113.3", path="/static/a.js", ts=500.0 + i * 0.1)
    assert any(r.id == "BOT-RATE" for r in v.reasons)
    later = det.inspect(BROWSER, ip="203.0.113.3", path="/", ts=500.0 + 3600)
    assert later.features["requests"] == 1 and not later.reasons


def test_log_mode_skips_header_absence_tells():
    v = BotDetector().inspect({"User-Agent": CHROME}, ip="192.0.2.3", path="/", ts=0.0, complete_headers=False)
    assert v.reasons == [] and "no_cookie_ratio" not in v.features


def test_custom_table_and_bad_tables(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps([{"pattern": "(?i)evilbot", "category": "scanner"}]), encoding="utf-8")
    det = BotDetector(table=p)
    assert det.inspect({**BROWSER, "User-Agent": "EvilBot/1"}, ip="1.2.3.4", path="/", ts=0).category == "scanner"
    assert det.inspect({**BROWSER, "User-Agent": "sqlmap/1"}, ip="1.2.3.5", path="/", ts=0).category == "human"
    p.write_text(json.dumps([{"pattern": "x", "category": "weird"}]), encoding="utf-8")
    with pytest.raises(InputError, match="unknown category 'weird'"):
        UserAgentTable.load(p)
    p.write_text(json.dumps([{"pattern": "(unclosed", "category": "crawler"}]), encoding="utf-8")
    with pytest.raises(InputError, match="bad pattern"):
        UserAgentTable.load(p)
    with pytest.raises(InputError, match="cannot read bot table"):
        UserAgentTable.load(tmp_path / "missing.json")


@pytest.mark.conformance
def test_crawler_user_agents_instances_are_recognised(shared_data, table):
    """Every real UA instance in crawler-user-agents is recognised as some kind of bot (not human)."""
    data = json.loads((shared_data("crawler-user-agents") / "crawler-user-agents.json").read_text(encoding="utf-8"))
    total = hits = 0
    for e in data:
        for ua in e.get("instances", []):
            total += 1
            hits += table.match(ua) is not None
    assert total > 2000
    assert hits / total >= 0.99
