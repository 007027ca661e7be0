"""CC (HTTP flood) detection: leaky buckets, windowed rates and learned per-URL baselines.

Per request the detector updates, in one backend round trip, windowed counts keyed by client IP, IP+URL,
session, /24 subnet and URL (plus distinct clients per URL and cookie-less requests per URL), and leaky
buckets per IP, per session and per subnet. A per-URL, per-hour-of-day EWMA of the URL's request count per
window is the learned baseline.

Flood or flash crowd? When a URL runs far above its baseline, the detector looks at who is asking:

* **flood** — few sources carry the load (the top client's share of the URL's requests is high, or there
  are fewer distinct clients than ``flood_max_sources``), or most requests carry no cookie (no session
  kept), or single clients overflow their buckets on one repeated URL;
* **flash crowd** — many distinct clients, each at a normal rate, with cookies: nobody is blocked;
  the verdict says ``flash_crowd`` so dashboards can show it.

Decisions are ``rate_limit`` (bucket overflow), ``challenge`` (cookie-less clients on a flooded URL, or a
hot /24 subnet) and ``block`` (a client far beyond its bucket on a repeated URL), each with an expiry kept
in a :class:`CCStore` (memory or Redis) and honoured on later requests until it passes.

>>> det = CCDetector()
>>> acts = [det.observe(ip="203.0.113.9", path="/login", ts=1000 + i * 0.01).action for i in range(300)]
>>> acts[0], acts[-1]
(None, 'block')
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from fsbrain.core.errors import BackendError
from fsbrain.core.model import Reason
from fsbrain.state import MemoryStateBackend, StateBackend, WindowOp, WindowSpec

ACTION_RANK = {None: 0, "rate_limit": 1, "challenge": 2, "block": 3}


def subnet24(ip: str) -> str:
    """The /24 of an IPv4 address (``a.b.c.0/24``) or the /48 of an IPv6 address; other strings unchanged."""
    if "." in ip and ip.count(".") == 3:
        return ip.rsplit(".", 1)[0] + ".0/24"
    if ":" in ip:
        return ":".join(ip.split(":")[:3]) + "::/48"
    return ip


@dataclass(frozen=True, slots=True, kw_only=True)
class CCConfig:
    """Thresholds of the CC detector (rates are per ``window`` seconds unless named per second).

    Args:
        window: window of the rate features, seconds.
        ip_rate: leaky-bucket drain rate per IP (requests/second sustained).
        ip_burst: bucket capacity per IP (burst allowed).
        session_rate, session_burst: the same per session cookie.
        subnet_rate, subnet_burst: the same per /24 subnet.
        block_factor: a bucket level above ``block_factor * burst`` on a repeated URL blocks.
        repeat_share: share of an IP's window requests on one URL that counts as "repeated URL".
        url_min_rate: a URL is never "flooded" below this many requests per window.
        url_factor: a URL is flooded above ``url_factor *`` its baseline.
        flood_max_sources: fewer distinct clients than this on a flooded URL means a flood.
        flood_top_share: one client's share above this on a flooded URL means a flood.
        flood_no_cookie_ratio: cookie-less share above this on a flooded URL means a flood.
        alpha: EWMA smoothing of the per-URL baseline.
        warmup: windows a URL's baseline needs before it is trusted (static thresholds before that).
        ttl_rate_limit, ttl_challenge, ttl_block: decision lifetimes, seconds.
    """

    window: float = 10.0
    ip_rate: float = 10.0
    ip_burst: float = 100.0
    session_rate: float = 10.0
    session_burst: float = 100.0
    subnet_rate: float = 100.0
    subnet_burst: float = 1000.0
    block_factor: float = 2.0
    repeat_share: float = 0.8
    url_min_rate: int = 200
    url_factor: float = 5.0
    flood_max_sources: int = 20
    flood_top_share: float = 0.2
    flood_no_cookie_ratio: float = 0.7
    alpha: float = 0.05
    warmup: int = 30
    ttl_rate_limit: float = 60.0
    ttl_challenge: float = 300.0
    ttl_block: float = 600.0


class CCStore:
    """Leaky buckets, URL baselines and decisions with expiry (in-process)."""

    name = "memory"

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._base: dict[str, dict[str, float]] = {}
        self._decisions: dict[str, tuple[dict[str, Any], float]] = {}

    def bucket(self, key: str, ts: float, rate: float) -> float:
        """Add one drop to bucket ``key`` draining at ``rate``/s and return its level."""
        level, last = self._buckets.get(key, (0.0, ts))
        level = max(0.0, level - rate * max(0.0, ts - last)) + 1.0
        self._buckets[key] = (level, max(ts, last))
        return level

    def baseline(self, url: str, bucket: int, hour: int, alpha: float) -> tuple[float, int]:
        """Count one request of ``url`` in window ``bucket``; fold finished windows into the EWMA of their
        hour. Return ``(ewma for hour, windows learned for hour)``."""
        st = self._base.setdefault(url, {"b": float(bucket), "n": 0.0})
        if st["b"] != bucket:
            h = int(st.get("h", hour))
            e, k = st.get(f"e{h}", st["n"]), st.get(f"k{h}", 0.0)
            st[f"e{h}"], st[f"k{h}"] = (1 - alpha) * e + alpha * st["n"], k + 1
            st["b"], st["n"] = float(bucket), 0.0
        st["n"] += 1
        st["h"] = float(hour)
        return st.get(f"e{hour}", 0.0), int(st.get(f"k{hour}", 0))

    def decide(self, key: str, decision: dict[str, Any], ttl: float) -> None:
        """Record ``decision`` for entity ``key`` until ``decision['expires_at']`` (``ttl`` for cleanup)."""
        self._decisions[key] = (decision, decision["expires_at"])

    def active(self, keys: list[str], ts: float) -> list[dict[str, Any]]:
        """Decisions still in force at ``ts`` for any of ``keys``."""
        out = []
        for k in keys:
            d = self._decisions.get(k)
            if d is not None:
                if d[1] > ts:
                    out.append(d[0])
                else:
                    del self._decisions[k]
        return out

    def step(self, buckets: list[tuple[str, float]], url: str, bucket: int, hour: int, alpha: float,
             decision_keys: list[str], ts: float) -> tuple[list[float], float, int, list[dict[str, Any]]]:
        """Everything one request needs, in one call: bucket levels for ``(key, rate)`` pairs, the URL
        baseline ``(ewma, windows)`` and the decisions in force for ``decision_keys``."""
        levels = [self.bucket(k, ts, r) for k, r in buckets]
        ewma, learned = self.baseline(url, bucket, hour, alpha)
        return levels, ewma, learned, self.active(decision_keys, ts)

    def clear(self) -> None:
        self._buckets.clear()
        self._base.clear()
        self._decisions.clear()


_BUCKET_LUA = """
local v = redis.call('HMGET', KEYS[1], 'l', 't')
local ts, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local level, last = tonumber(v[1]) or 0, tonumber(v[2]) or ts
level = math.max(0, level - rate * math.max(0, ts - last)) + 1
redis.call('HSET', KEYS[1], 'l', tostring(level), 't', tostring(math.max(ts, last)))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return tostring(level)
"""
_BASELINE_LUA = """
local b, hour, alpha = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local cur = tonumber(redis.call('HGET', KEYS[1], 'b'))
if cur == nil then redis.call('HSET', KEYS[1], 'b', b, 'n', 0, 'h', hour) cur = b end
if cur ~= b then
  local h = redis.call('HGET', KEYS[1], 'h') or hour
  local n = tonumber(redis.call('HGET', KEYS[1], 'n')) or 0
  local e = tonumber(redis.call('HGET', KEYS[1], 'e' .. h)) or n
  local k = tonumber(redis.call('HGET', KEYS[1], 'k' .. h)) or 0
  redis.call('HSET', KEYS[1], 'e' .. h, tostring((1 - alpha) * e + alpha * n), 'k' .. h, k + 1, 'b', b, 'n', 0)
end
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 'h', hour)
redis.call('EXPIRE', KEYS[1], 172800)
return {redis.call('HGET', KEYS[1], 'e' .. hour) or '0', redis.call('HGET', KEYS[1], 'k' .. hour) or '0'}
"""


_STEP_LUA = """
local nb, nd = tonumber(ARGV[1]), tonumber(ARGV[2])
local ts = tonumber(ARGV[3])
local out = {}
for i = 1, nb do
  local v = redis.call('HMGET', KEYS[i], 'l', 't')
  local rate = tonumber(ARGV[3 + i])
  local level, last = tonumber(v[1]) or 0, tonumber(v[2]) or ts
  level = math.max(0, level - rate * math.max(0, ts - last)) + 1
  redis.call('HSET', KEYS[i], 'l', tostring(level), 't', tostring(math.max(ts, last)))
  redis.call('EXPIRE', KEYS[i], 3600)
  out[#out + 1] = tostring(level)
end
local uk = KEYS[nb + 1]
local b, hour, alpha = tonumber(ARGV[4 + nb]), ARGV[5 + nb], tonumber(ARGV[6 + nb])
local cur = tonumber(redis.call('HGET', uk, 'b'))
if cur == nil then redis.call('HSET', uk, 'b', b, 'n', 0, 'h', hour) cur = b end
if cur ~= b then
  local h = redis.call('HGET', uk, 'h') or hour
  local n = tonumber(redis.call('HGET', uk, 'n')) or 0
  local e = tonumber(redis.call('HGET', uk, 'e' .. h)) or n
  local k = tonumber(redis.call('HGET', uk, 'k' .. h)) or 0
  redis.call('HSET', uk, 'e' .. h, tostring((1 - alpha) * e + alpha * n), 'k' .. h, k + 1, 'b', b, 'n', 0)
end
redis.call('HINCRBY', uk, 'n', 1)
redis.call('HSET', uk, 'h', hour)
redis.call('EXPIRE', uk, 172800)
out[#out + 1] = redis.call('HGET', uk, 'e' .. hour) or '0'
out[#out + 1] = redis.call('HGET', uk, 'k' .. hour) or '0'
for i = 1, nd do
  out[#out + 1] = redis.call('GET', KEYS[nb + 1 + i]) or ''
end
return out
"""


class RedisCCStore(CCStore):
    """The same store on Redis, shared by every worker (atomic Lua scripts; decisions as keys with TTL).

    Keys: ``{prefix}b:{entity}`` bucket hash, ``{prefix}u:{url}`` baseline hash, ``{prefix}d:{entity}``
    decision JSON.

    Args:
        url: Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
        prefix: key prefix.
    """

    name = "redis"

    def __init__(self, url: str, *, prefix: str = "fsbrain:cc:") -> None:
        import redis

        self.url, self.prefix = url, prefix
        self._r = redis.Redis.from_url(url)
        self._bucket = self._r.register_script(_BUCKET_LUA)
        self._baseline = self._r.register_script(_BASELINE_LUA)
        self._step = self._r.register_script(_STEP_LUA)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise BackendError(f"CC store: Redis at {self.url} failed: {exc}") from exc

    def bucket(self, key: str, ts: float, rate: float) -> float:
        ttl = 3600
        return float(self._call(self._bucket, keys=[self.prefix + "b:" + key], args=[ts, rate, ttl]))

    def baseline(self, url: str, bucket: int, hour: int, alpha: float) -> tuple[float, int]:
        e, k = self._call(self._baseline, keys=[self.prefix + "u:" + url], args=[bucket, hour, alpha])
        return float(e), int(k)

    def step(self, buckets: list[tuple[str, float]], url: str, bucket: int, hour: int, alpha: float,
             decision_keys: list[str], ts: float) -> tuple[list[float], float, int, list[dict[str, Any]]]:
        """One Lua call (one round trip) for the buckets, the baseline and the decisions in force."""
        keys = ([self.prefix + "b:" + k for k, _ in buckets] + [self.prefix + "u:" + url]
                + [self.prefix + "d:" + k for k in decision_keys])
        args = [len(buckets), len(decision_keys), ts, *[r for _, r in buckets], bucket, hour, alpha]
        res = self._call(self._step, keys=keys, args=args)
        nb = len(buckets)
        levels = [float(x) for x in res[:nb]]
        decisions = [d for d in (json.loads(v) for v in res[nb + 2:] if v) if d["expires_at"] > ts]
        return levels, float(res[nb]), int(res[nb + 1]), decisions

    def decide(self, key: str, decision: dict[str, Any], ttl: float) -> None:
        self._call(self._r.set, self.prefix + "d:" + key, json.dumps(decision), ex=max(1, math.ceil(ttl)))

    def active(self, keys: list[str], ts: float) -> list[dict[str, Any]]:
        raw = self._call(self._r.mget, [self.prefix + "d:" + k for k in keys])
        return [d for d in (json.loads(v) for v in raw if v) if d["expires_at"] > ts]

    def clear(self) -> None:
        for k in self._call(self._r.scan_iter, match=self.prefix + "*"):
            self._r.delete(k)


@dataclass(slots=True)
class CCVerdict:
    """The CC view of one request.

    Args:
        action: ``None``, ``rate_limit``, ``challenge`` or ``block``.
        entity_type: what the action applies to: ``ip``, ``session`` or ``subnet``.
        entity: its value.
        expires_at: when the action lapses (event time, epoch seconds).
        flash_crowd: the URL is far above its baseline, but the load looks like real users.
        reasons: evidence, as :class:`Reason` objects (label ``cc_flood``).
        features: rates, bucket levels and baseline seen.
    """

    action: str | None = None
    entity_type: str | None = None
    entity: str | None = None
    expires_at: float | None = None
    flash_crowd: bool = False
    reasons: list[Reason] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "entity_type": self.entity_type, "entity": self.entity,
                "expires_at": self.expires_at, "flash_crowd": self.flash_crowd,
                "reasons": [r.to_dict() for r in self.reasons], "features": dict(self.features)}


class CCDetector:
    """Per-request CC flood decisions (see the module docstring).

    Args:
        backend: state backend for the windowed rates (memory or Redis).
        store: buckets, baselines and decisions (:class:`CCStore` or :class:`RedisCCStore`).
        config: thresholds.
        prefix: namespace of this detector's windowed features.
    """

    def __init__(self, backend: StateBackend | None = None, store: CCStore | None = None, *,
                 config: CCConfig | None = None, prefix: str = "web_cc") -> None:
        self.backend = backend or MemoryStateBackend()
        self.store = store or CCStore()
        self.config = config or CCConfig()
        self.prefix = prefix
        w = self.config.window
        self._specs = {n: WindowSpec(name=f"{prefix}_{n}", agg=a, window=w, bucket=max(1.0, w / 10))
                       for n, a in (("ip", "count"), ("ip_url", "count"), ("url", "count"), ("url_ips", "distinct"),
                                    ("url_nocookie", "sum"), ("subnet", "count"), ("subnet_ips", "distinct"),
                                    ("session", "count"))}

    @classmethod
    def from_redis(cls, url: str, *, config: CCConfig | None = None) -> CCDetector:
        """A detector whose windows and decisions live in Redis (shared by every worker)."""
        from fsbrain.state import make_backend

        return cls(make_backend("redis", url=url), RedisCCStore(url), config=config)

    def observe(self, *, ip: str, path: str, ts: float, session: str | None = None,
                has_cookie: bool | None = None) -> CCVerdict:
        """Count one request and return the CC decision for it.

        Args:
            ip: client address.
            path: request path (query string ignored).
            ts: event time, epoch seconds.
            session: session identifier (e.g. the session cookie value), if any.
            has_cookie: whether the request carried any cookie (default: ``session is not None``).
        """
        c, s = self.config, self._specs
        url = path.split("?", 1)[0][:512] or "/"
        sn = subnet24(ip)
        cookie = has_cookie if has_cookie is not None else session is not None
        ops = [WindowOp(s["ip"], ip), WindowOp(s["ip_url"], f"{ip} {url}"), WindowOp(s["url"], url),
               WindowOp(s["url_ips"], url, ip), WindowOp(s["url_nocookie"], url, 0 if cookie else 1),
               WindowOp(s["subnet"], sn), WindowOp(s["subnet_ips"], sn, ip)]
        if session:
            ops.append(WindowOp(s["session"], session))
        v = self.backend.update_get(ops, ts)
        ip_n, ip_url_n, url_n, url_ips, url_nc, sub_n, sub_ips = (int(x) for x in v[:7])
        buckets = [("ip:" + ip, c.ip_rate), ("subnet:" + sn, c.subnet_rate)]
        if session:
            buckets.append(("session:" + session, c.session_rate))
        keys = ["ip:" + ip, "subnet:" + sn] + (["session:" + session] if session else [])
        levels, ewma, learned, active = self.store.step(buckets, url, math.floor(ts / c.window),
                                                        int(ts // 3600 % 24), c.alpha, keys, ts)
        ip_level, sub_level = levels[0], levels[1]
        sess_level = levels[2] if session else 0.0
        feats: dict[str, Any] = {"ip_rate": ip_n, "ip_url_rate": ip_url_n, "url_rate": url_n, "url_sources": url_ips,
                                 "url_no_cookie_ratio": round(url_nc / max(1, url_n), 3), "subnet_rate": sub_n,
                                 "subnet_sources": sub_ips, "ip_bucket": round(ip_level, 1),
                                 "subnet_bucket": round(sub_level, 1), "url_baseline": round(ewma, 2),
                                 "baseline_windows": learned}
        if session:
            feats.update(session_rate=int(v[7]), session_bucket=round(sess_level, 1))
        out = CCVerdict(features=feats)
        for d in active:
            if ACTION_RANK[d["action"]] > ACTION_RANK[out.action]:
                out.action, out.entity_type, out.entity, out.expires_at = (
                    d["action"], d["entity_type"], d["entity"], d["expires_at"])
                out.reasons = [Reason.from_dict(r) for r in d.get("reasons", [])]

        def reason(rid: str, feature: str, value: Any, threshold: Any, weight: int, msg: str) -> Reason:
            return Reason(source="detector", id=rid, label="cc_flood", feature=feature, value=value,
                          threshold=threshold, weight=weight, message=msg)

        cands: list[tuple[str, str, str, Reason]] = []
        repeated = ip_n >= 20 and ip_url_n / ip_n >= c.repeat_share
        if ip_level > c.ip_burst:
            if repeated and ip_level > c.block_factor * c.ip_burst:
                cands.append(("block", "ip", ip, reason("CC-IP-BLOCK", "ip_bucket", round(ip_level, 1),
                                                        c.block_factor * c.ip_burst, 400,
                                                        f"{ip_url_n} of {ip_n} requests on {url} far beyond the bucket")))
            else:
                cands.append(("rate_limit", "ip", ip, reason("CC-IP-RATE", "ip_bucket", round(ip_level, 1), c.ip_burst,
                                                             250, f"sustained rate above {c.ip_rate:g}/s")))
        if session and sess_level > c.session_burst:
            cands.append(("rate_limit", "session", session, reason("CC-SESSION-RATE", "session_bucket",
                                                                   round(sess_level, 1), c.session_burst, 250,
                                                                   "one session far above a human rate")))
        if sub_level > c.subnet_burst and sub_ips >= 5:
            cands.append(("challenge", "subnet", sn, reason("CC-SUBNET", "subnet_bucket", round(sub_level, 1),
                                                            c.subnet_burst, 300, f"/24 {sn}: {sub_ips} clients flooding")))
        threshold = max(float(c.url_min_rate), c.url_factor * ewma) if learned >= c.warmup else float(c.url_min_rate)
        if url_n > threshold:
            share = ip_url_n / max(1, url_n)
            nc_ratio = url_nc / max(1, url_n)
            flood = url_ips < c.flood_max_sources or nc_ratio > c.flood_no_cookie_ratio or share > c.flood_top_share
            feats.update(url_threshold=round(threshold, 1), client_share=round(share, 3))
            if not flood:
                out.flash_crowd = True
            elif share > c.flood_top_share:
                cands.append(("block", "ip", ip, reason("CC-URL-FLOOD-SOURCE", "client_share", round(share, 3),
                                                        c.flood_top_share, 400,
                                                        f"{url} at {url_n}/{c.window:g}s (baseline {ewma:.1f}); "
                                                        "this client carries a large share")))
            elif not cookie:
                cands.append(("challenge", "ip", ip, reason("CC-URL-FLOOD-NOCOOKIE", "url_rate", url_n,
                                                            round(threshold, 1), 300,
                                                            f"{url} flooded by {url_ips} sources; cookie-less client")))
        if not cands:
            return out
        action, etype, entity, _ = max(cands, key=lambda t: ACTION_RANK[t[0]])
        if ACTION_RANK[action] <= ACTION_RANK[out.action]:
            return out  # a decision at least as strong is already in force
        ttl = {"rate_limit": c.ttl_rate_limit, "challenge": c.ttl_challenge, "block": c.ttl_block}[action]
        out.action, out.entity_type, out.entity, out.expires_at = action, etype, entity, ts + ttl
        out.reasons = [t[3] for t in cands]
        self.store.decide(f"{etype}:{entity}", {"action": action, "entity_type": etype, "entity": entity,
                                                "expires_at": ts + ttl,
                                                "reasons": [r.to_dict() for r in out.reasons]}, ttl)
        return out
