"""CC flood detection: floods vs flash crowds, decisions with expiry, baselines; memory and Redis."""

from __future__ import annotations

import pytest

from fsbrain.domains.web.cc import CCConfig, CCDetector, CCStore, RedisCCStore, subnet24
from fsbrain.state import MemoryStateBackend, make_backend

T0 = 1_700_000_000.0


def flood(det: CCDetector, *, n: int = 3000, sources: int = 10, path: str = "/login", t0: float = T0,
          rate: float = 300.0, cookie: bool = False) -> dict:
    acts: dict = {}
    last = None
    for i in range(n):
        last = det.observe(ip=f"198.51.100.{i % sources}", path=path, ts=t0 + i / rate,
                           session=f"s{i % sources}" if cookie else None)
        acts[last.action] = acts.get(last.action, 0) + 1
    return {"acts": acts, "last": last}


def flash_crowd(det: CCDetector, *, n: int = 3000, t0: float = T0, rate: float = 300.0) -> dict:
    acts: dict = {}
    flash = 0
    for i in range(n):
        v = det.observe(ip=f"10.{i % 250}.{(i // 250) % 250}.{i % 7 + 1}", path="/promo/618", ts=t0 + i / rate,
                        session=f"sess-{i}")
        acts[v.action] = acts.get(v.action, 0) + 1
        flash += v.flash_crowd
    return {"acts": acts, "flash": flash}


def test_subnet():
    assert subnet24("192.0.2.77") == "192.0.2.0/24"
    assert subnet24("2001:db8:1:2::1") == "2001:db8:1::/48"


def test_single_source_flood_is_blocked_with_expiry():
    det = CCDetector()
    r = flood(det, n=400, sources=1, rate=100.0)
    last = r["last"]
    assert last.action == "block" and last.entity_type == "ip" and last.entity == "198.51.100.0"
    assert last.expires_at == pytest.approx(last.expires_at) and last.expires_at > T0
    assert any(x.label == "cc_flood" for x in last.reasons)
    # the decision holds for a quiet request inside its lifetime, and lapses after it
    later = det.observe(ip="198.51.100.0", path="/", ts=T0 + 100)
    assert later.action == "block"
    after = det.observe(ip="198.51.100.0", path="/", ts=last.expires_at + 1)
    assert after.action is None


def test_few_sources_flood_vs_flash_crowd():
    f = flood(CCDetector(), n=3000, sources=10)
    assert f["acts"].get("challenge", 0) + f["acts"].get("block", 0) > 1500
    c = flash_crowd(CCDetector())
    assert set(c["acts"]) == {None}
    assert c["flash"] > 1000


def test_rate_limit_when_a_client_exceeds_its_bucket_on_varied_urls():
    det = CCDetector(config=CCConfig(ip_rate=5, ip_burst=50))
    for i in range(200):
        v = det.observe(ip="203.0.113.5", path=f"/p/{i % 50}", ts=T0 + i * 0.05, session="abc")
    assert v.action == "rate_limit" and v.reasons[0].id in ("CC-IP-RATE", "CC-SESSION-RATE")


def test_learned_baseline_raises_the_url_threshold():
    def run(warmup: int):
        det = CCDetector(config=CCConfig(window=10, url_min_rate=50, url_factor=3.0, warmup=warmup, alpha=0.5))
        # a busy URL: 400 requests per 10 s from many cookie-carrying clients, for 10 windows
        for i in range(4000):
            v = det.observe(ip=f"10.1.{i % 200}.{i % 3 + 1}", path="/quotes", ts=T0 + i * 0.025,
                            session=f"s{i % 600}")
        return v

    learned = run(warmup=5)
    assert learned.features["baseline_windows"] >= 5 and learned.features["url_baseline"] > 300
    assert "url_threshold" not in learned.features  # 400/window is normal for this URL now
    static = run(warmup=10_000)  # never trusts the baseline: 400 > url_min_rate is "hot"
    assert static.features["url_threshold"] == 50.0 and static.flash_crowd


def test_store_bucket_leaks():
    s = CCStore()
    levels = [s.bucket("k", T0, rate=1.0) for _ in range(5)]
    assert levels == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert s.bucket("k", T0 + 3, rate=1.0) == pytest.approx(3.0)
    assert s.bucket("k", T0 + 1000, rate=1.0) == pytest.approx(1.0)


@pytest.mark.redis
def test_redis_store_matches_memory_store(redis_url):
    mem, red = CCStore(), RedisCCStore(redis_url, prefix="t:cc:")
    for i in range(50):
        ts = T0 + i * 0.3
        assert red.bucket("ip:1", ts, 2.0) == pytest.approx(mem.bucket("ip:1", ts, 2.0))
        assert red.baseline("/u", int(ts // 10), 3, 0.2) == pytest.approx(mem.baseline("/u", int(ts // 10), 3, 0.2))
    d = {"action": "block", "entity_type": "ip", "entity": "1", "expires_at": T0 + 60, "reasons": []}
    red.decide("ip:1", d, 60)
    assert red.active(["ip:1", "ip:2"], T0) == [d]
    assert red.active(["ip:1"], T0 + 61) == []
    red.clear()
    assert red.active(["ip:1"], T0) == []


def _redis_detector(url: str) -> CCDetector:
    return CCDetector(make_backend("redis", url=url), RedisCCStore(url))


@pytest.mark.redis
def test_redis_flood_and_flash_crowd(redis_url):
    f = flood(_redis_detector(redis_url), n=700, sources=3)
    assert f["acts"].get("challenge", 0) + f["acts"].get("block", 0) > 300
    c = flash_crowd(_redis_detector(redis_url), n=700, t0=T0 + 10_000)
    assert set(c["acts"]) == {None} and c["flash"] > 300


@pytest.mark.redis
def test_redis_state_is_shared_by_workers(redis_url):
    """Two detectors (two API workers) on one Redis see one client's requests together."""
    w1, w2 = _redis_detector(redis_url), _redis_detector(redis_url)
    for i in range(300):
        v = (w1 if i % 2 else w2).observe(ip="192.0.2.50", path="/login", ts=T0 + i * 0.01)
    assert v.features["ip_rate"] == 300
    assert v.action == "block"
    assert w1.observe(ip="192.0.2.50", path="/", ts=T0 + 30).action == "block"
    solo = CCDetector(MemoryStateBackend())
    for i in range(150):
        solo_v = solo.observe(ip="192.0.2.50", path="/login", ts=T0 + i * 0.02)
    assert solo_v.features["ip_rate"] == 150
