"""Bot detection: known bots and scanners by User-Agent, headless-browser tells, and per-client behaviour.

Three kinds of evidence add up to a bot score 0..100:

* **Signature** — the User-Agent against a table of 1,578 patterns (crawler-user-agents + CRS scanner list,
  built by ``scripts/build_web_bots.py``; pass ``table=`` to use your own file). Search-engine crawlers are
  category ``good``: they get ``category="good_bot"`` and never alert. A UA can claim to be Googlebot;
  real verification needs a reverse-DNS lookup of the client IP (``*.googlebot.com`` /
  ``*.search.msn.com`` / ``*.baidu.com`` …) and a forward lookup back to the same IP — fsbrain does not do
  DNS inline; :attr:`BotVerdict.needs_rdns` marks the verdicts a deployment should verify.
* **Headless tells** — ``HeadlessChrome``/PhantomJS/Selenium in the UA, webdriver hint headers, a browser
  UA without ``Accept-Language`` or ``Accept``, a browser UA sent with an HTTP-library header set.
* **Behaviour** per client IP, on windowed features (any :class:`~fsbrain.state.StateBackend`): request rate,
  path diversity, static-asset ratio, error ratio (when the status is known, e.g. from logs) and requests
  without cookies.

>>> d = BotDetector()
>>> d.inspect({"User-Agent": "sqlmap/1.7"}, ip="10.0.0.1", path="/", ts=0.0).category
'scanner'
>>> d.inspect({"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
...           ip="10.0.0.2", path="/", ts=0.0).category
'good_bot'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import re2

from fsbrain.core.errors import InputError
from fsbrain.core.model import Reason
from fsbrain.state import MemoryStateBackend, StateBackend, WindowOp, WindowSpec

DEFAULT_TABLE = Path(__file__).with_name("data") / "bot_agents.json"
STATIC_EXT = (".js", ".css", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".woff", ".woff2", ".ttf",
              ".webp", ".map", ".mp4")
CATEGORY_SCORE = {"scanner": 90, "automation": 70, "library": 50, "crawler": 40, "good": 0}
_BROWSER = re2.compile(r"(?i)mozilla/5\.0.*(chrome|firefox|safari|edg)/")
_HEADLESS = re2.compile(r"(?i)(headlesschrome|phantomjs|slimerjs|selenium|webdriver|puppeteer|playwright)")
_LIBRARY_HEADER_SET = ({"host", "user-agent", "accept-encoding", "accept", "connection"},
                       {"host", "user-agent", "accept"})


class UserAgentTable:
    """Compiled bot UA patterns (one RE2 set; per-UA results cached).

    Args:
        entries: ``{"pattern", "category", "tags"?}`` dicts; ``category`` one of :data:`CATEGORY_SCORE`.
        source: where the entries came from (named in errors).
    """

    def __init__(self, entries: list[dict[str, Any]], *, source: str = "<table>") -> None:
        self.entries = entries
        self._set = re2.Set.SearchSet(re2.Options())
        for n, e in enumerate(entries):
            cat = e.get("category")
            if cat not in CATEGORY_SCORE:
                raise InputError(f"{source}: entry {n}: unknown category {cat!r} (one of {sorted(CATEGORY_SCORE)})")
            try:
                self._set.Add(str(e["pattern"]))
            except (KeyError, re2.error) as exc:
                raise InputError(f"{source}: entry {n}: bad pattern: {exc}") from exc
        self._set.Compile()
        self.match = lru_cache(maxsize=8192)(self._match)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_TABLE) -> UserAgentTable:
        """Load a table file ``{"entries": [...]}`` (or a plain list of entries)."""
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read bot table {p}: {exc}") from exc
        entries = doc["entries"] if isinstance(doc, dict) and "entries" in doc else doc
        if not isinstance(entries, list):
            raise InputError(f"{p}: bot table must be a list of entries or {{'entries': [...]}}")
        return cls(entries, source=str(p))

    def _match(self, ua: str) -> tuple[str, str] | None:
        hits = self._set.Match(ua[:1024])
        if not hits:
            return None
        best = max(hits, key=lambda i: CATEGORY_SCORE[self.entries[i]["category"]])
        return self.entries[best]["category"], str(self.entries[best]["pattern"])


@lru_cache(maxsize=1)
def default_table() -> UserAgentTable:
    return UserAgentTable.load(DEFAULT_TABLE)


@dataclass(slots=True)
class BotVerdict:
    """Bot evidence for one request.

    Args:
        score: 0..100, higher is more bot-like (``good_bot`` verdicts score 0).
        category: ``human``, ``good_bot``, ``crawler``, ``library``, ``automation``, ``scanner`` or
            ``suspicious`` (behaviour or headless tells only).
        signature: the UA pattern that matched, if any.
        needs_rdns: a good-bot claim that only reverse DNS can confirm.
        reasons: the evidence, as :class:`~fsbrain.core.model.Reason` objects.
        features: the behaviour values seen.
    """

    score: int
    category: str
    signature: str | None = None
    needs_rdns: bool = False
    reasons: list[Reason] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def is_bad(self) -> bool:
        return self.category not in ("human", "good_bot") and self.score >= 50

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "category": self.category, "signature": self.signature,
                "needs_rdns": self.needs_rdns, "reasons": [r.to_dict() for r in self.reasons],
                "features": dict(self.features)}


# (User-Agent, header names) -> the tells: they depend on nothing else, and both repeat from request to
# request (two RE2 searches through the binding's Python wrapper cost ~10 µs a request otherwise). Bounded:
# only short keys are kept, and the cache starts over when full. The Reasons are frozen and shared.
_TELLS: dict[tuple[str, frozenset[str]], tuple[Reason, ...]] = {}
_TELLS_MAX = 4096
_TELLS_MAX_UA = 512
_TELLS_MAX_NAMES = 64


def headless_tells(headers: dict[str, str]) -> list[Reason]:
    """Headless-browser and spoofed-browser tells in a header dict (names compared case-insensitively)."""
    h = {k.lower(): v for k, v in headers.items()}
    ua = h.get("user-agent", "")
    if len(ua) > _TELLS_MAX_UA or len(h) > _TELLS_MAX_NAMES:
        return _headless_tells(h, ua)
    key = (ua, frozenset(h))
    got = _TELLS.get(key)
    if got is None:
        got = tuple(_headless_tells(h, ua))
        if len(_TELLS) >= _TELLS_MAX:
            _TELLS.clear()
        _TELLS[key] = got
    return list(got)


def _headless_tells(h: dict[str, str], ua: str) -> list[Reason]:
    """:func:`headless_tells` of a header dict with lower-case names and its User-Agent."""
    out: list[Reason] = []
    if _HEADLESS.search(ua):
        out.append(Reason(source="detector", id="BOT-HEADLESS-UA", label="bot", feature="user_agent",
                          value=ua[:120], weight=60, message="headless browser or automation framework in UA"))
    for name in ("x-selenium", "x-webdriver", "x-puppeteer", "webdriver"):
        if name in h:
            out.append(Reason(source="detector", id="BOT-WEBDRIVER-HINT", label="bot", feature=name, weight=60,
                              message=f"automation hint header {name!r}"))
    if ua and _BROWSER.search(ua):
        if "accept-language" not in h:
            out.append(Reason(source="detector", id="BOT-NO-ACCEPT-LANGUAGE", label="bot",
                              feature="accept_language", value=None, weight=25,
                              message="browser UA without Accept-Language (real browsers always send it)"))
        if "accept" not in h:
            out.append(Reason(source="detector", id="BOT-NO-ACCEPT", label="bot", feature="accept", weight=15,
                              message="browser UA without Accept"))
        if set(h) in _LIBRARY_HEADER_SET:
            out.append(Reason(source="detector", id="BOT-LIBRARY-HEADERS", label="bot", feature="header_set",
                              value=sorted(h), weight=30,
                              message="browser UA with an HTTP library's minimal header set"))
    elif not ua:
        out.append(Reason(source="detector", id="BOT-NO-UA", label="bot", feature="user_agent", weight=40,
                          message="no User-Agent header"))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class BotBehaviourConfig:
    """Per-client behaviour thresholds (window ``window`` seconds).

    Args:
        window: window length for every behaviour feature.
        min_requests: behaviour ratios are judged only after this many requests in the window.
        max_rate: requests per window above which the client is bot-like.
        max_path_diversity: distinct paths / requests above which the client looks like a crawler.
        min_static_ratio: static assets / requests below which the client looks like a bot (browsers load assets).
        max_error_ratio: 4xx+5xx / requests above which the client looks like a scanner.
        max_no_cookie_ratio: requests without cookies / requests above which sessions are not kept.
    """

    window: float = 60.0
    min_requests: int = 20
    max_rate: int = 120
    max_path_diversity: float = 0.8
    min_static_ratio: float = 0.02
    max_error_ratio: float = 0.3
    max_no_cookie_ratio: float = 0.95


class BotDetector:
    """Score requests for bot-ness (see the module docstring).

    Args:
        backend: state backend for behaviour windows (default: a new in-memory backend).
        table: a :class:`UserAgentTable`, or a path to a table file; default the shipped table.
        config: behaviour thresholds.
        prefix: namespace of this detector's windowed features.
    """

    def __init__(self, backend: StateBackend | None = None, *, table: UserAgentTable | str | Path | None = None,
                 config: BotBehaviourConfig | None = None, prefix: str = "web_bot") -> None:
        self.backend = backend or MemoryStateBackend()
        self.table = table if isinstance(table, UserAgentTable) else \
            default_table() if table is None else UserAgentTable.load(table)
        self.config = config or BotBehaviourConfig()
        self.prefix = prefix
        w = self.config.window
        self._req = WindowSpec(name=f"{prefix}_req", agg="count", window=w)
        self._paths = WindowSpec(name=f"{prefix}_paths", agg="distinct", window=w)
        self._static = WindowSpec(name=f"{prefix}_static", agg="sum", window=w)
        self._errors = WindowSpec(name=f"{prefix}_errors", agg="sum", window=w)
        self._nocookie = WindowSpec(name=f"{prefix}_nocookie", agg="sum", window=w)

    def inspect(self, headers: dict[str, str], *, ip: str, path: str, ts: float,
                status: int | None = None, complete_headers: bool = True) -> BotVerdict:
        """Observe one request from ``ip`` at ``ts`` and return its bot verdict.

        Args:
            headers: request headers (any case).
            ip: client address (the behaviour key).
            path: request path.
            ts: event time, epoch seconds.
            status: response status when known (access logs), for the error ratio.
            complete_headers: ``False`` when only some headers are known (access logs keep UA and Referer):
                header-absence tells and the cookie ratio are then skipped.
        """
        h = {k.lower(): v for k, v in headers.items()}
        ua = h.get("user-agent", "")
        reasons: list[Reason] = []
        score = 0
        category = "human"
        signature = None
        hit = self.table.match(ua) if ua else None
        if hit is not None:
            cat, signature = hit
            category = "good_bot" if cat == "good" else cat
            if cat != "good":
                score = CATEGORY_SCORE[cat]
                label = "web_scanner" if cat == "scanner" else "bot"
                reasons.append(Reason(source="list", id=f"BOT-UA-{cat.upper()}", label=label, feature="user_agent",
                                      value=ua[:120], weight=score, message=f"known {cat} UA pattern {signature!r}"))
        for r in headless_tells(h):
            if category == "good_bot":
                break
            if not complete_headers and r.id != "BOT-HEADLESS-UA":
                continue
            reasons.append(r)
            score += r.weight
        feats = self._behaviour(h, ip, path, ts, status)
        if not complete_headers:
            feats.pop("no_cookie_ratio")
        for r in self._judge(feats):
            reasons.append(r)
            if category != "good_bot":
                score += r.weight
        if category == "human" and score >= 50:
            category = "suspicious"
        if category == "good_bot":
            score = 0
        return BotVerdict(score=min(100, score), category=category, signature=signature,
                          needs_rdns=category == "good_bot", reasons=reasons, features=feats)

    def _behaviour(self, h: dict[str, str], ip: str, path: str, ts: float, status: int | None) -> dict[str, Any]:
        is_static = path.lower().split("?", 1)[0].endswith(STATIC_EXT)
        ops = [WindowOp(self._req, ip), WindowOp(self._paths, ip, path.split("?", 1)[0][:256]),
               WindowOp(self._static, ip, 1 if is_static else 0),
               WindowOp(self._nocookie, ip, 0 if "cookie" in h else 1)]
        if status is not None:
            ops.append(WindowOp(self._errors, ip, 1 if status >= 400 else 0))
        vals = self.backend.update_get(ops, ts)
        n = max(1, int(vals[0]))
        feats = {"requests": int(vals[0]), "path_diversity": round(vals[1] / n, 3),
                 "static_ratio": round(vals[2] / n, 3), "no_cookie_ratio": round(vals[3] / n, 3)}
        if status is not None:
            feats["error_ratio"] = round(vals[4] / n, 3)
        return feats

    def _judge(self, f: dict[str, Any]) -> list[Reason]:
        c = self.config
        out = []

        def add(rid: str, feature: str, threshold: float, weight: int, msg: str) -> None:
            out.append(Reason(source="feature", id=rid, label="bot", feature=feature, value=f[feature],
                              threshold=threshold, weight=weight, message=msg))

        if f["requests"] > c.max_rate:
            add("BOT-RATE", "requests", c.max_rate, 40, f"more than {c.max_rate} requests in {c.window:g}s")
        if f["requests"] < c.min_requests:
            return out
        if f["path_diversity"] > c.max_path_diversity:
            add("BOT-PATH-DIVERSITY", "path_diversity", c.max_path_diversity, 25, "almost every request a new path")
        if f["static_ratio"] < c.min_static_ratio:
            add("BOT-NO-STATIC", "static_ratio", c.min_static_ratio, 15, "pages without their assets")
        if f.get("error_ratio", 0.0) > c.max_error_ratio:
            add("BOT-ERRORS", "error_ratio", c.max_error_ratio, 35, "many 4xx/5xx answers (probing)")
        if f.get("no_cookie_ratio", 0.0) > c.max_no_cookie_ratio:
            add("BOT-NO-COOKIES", "no_cookie_ratio", c.max_no_cookie_ratio, 15, "never returns a session cookie")
        return out
