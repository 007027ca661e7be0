"""Access-log scanning: nginx/Apache combined (and common) logs and JSON-lines logs.

Every line becomes a :class:`LogRecord`, or is counted as bad with its line number and the problem —
a bad line never stops a scan. Each record goes through the web inspector (rules + model), the bot
detector (UA signatures and per-client behaviour; header-absence tells are off because logs do not keep
every header) and the CC detector (rates replayed at the logged times). Findings are
:class:`~fsbrain.core.model.Alert` objects: one per attack request, one per bad-bot client and one per
CC decision (per entity and action); the :class:`ScanSummary` adds top attackers, attack types per hour,
bot categories and floods.

>>> rec = parse_line('203.0.113.7 - - [10/Oct/2024:13:55:36 +0000] "GET /a?id=1 HTTP/1.1" 200 512 "-" "curl/8.0"', 1)
>>> rec.ip, rec.method, rec.uri, rec.status, rec.user_agent
('203.0.113.7', 'GET', '/a?id=1', 200, 'curl/8.0')
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import re2

from fsbrain.core.errors import InputError
from fsbrain.core.labels import get_label, is_label
from fsbrain.core.model import Alert, Reason

MAX_LINE = 65536
MAX_BAD_REPORTED = 200
_Q = r'"((?:[^"\\]|\\.)*)"'
_COMBINED = re2.compile(r'^(\S+) (\S+) (\S+) \[([^\]]{1,64})\] ' + _Q + r' (\d{3}|-) (\d+|-)'
                        r'(?: ' + _Q + r' ' + _Q + r')?(.*)$')
_REQUEST_LINE = re2.compile(r"^([A-Za-z]{1,20}) (\S+)(?: (HTTP/\d(?:\.\d)?))?$")
_JSON_KEYS = {
    "ip": ("remote_addr", "client_ip", "clientip", "ip", "src_ip", "remote_ip", "client"),
    "ts": ("time", "timestamp", "@timestamp", "time_iso8601", "time_local", "ts", "msec"),
    "method": ("method", "request_method", "verb"),
    "uri": ("uri", "request_uri", "url", "path"),
    "status": ("status", "response", "status_code"),
    "user_agent": ("user_agent", "http_user_agent", "agent", "ua"),
    "referer": ("referer", "http_referer", "referrer"),
    "body": ("body", "request_body"),
    "cookie": ("cookie", "http_cookie"),
}


@dataclass(slots=True)
class LogRecord:
    """One request from an access log."""

    line_no: int
    ip: str
    ts: float
    method: str
    uri: str
    status: int | None = None
    user_agent: str = ""
    referer: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    malformed_request: bool = False

    def request(self) -> dict[str, Any]:
        """The request dict the inspector takes.

        Access logs do not record ``Host`` and ``Accept``; neutral values are supplied when the log has none
        so that header-presence rules (e.g. "request has no Host header") do not fire on every line.
        """
        h = {"Host": "log.invalid", "Accept": "*/*", **self.headers}
        if self.user_agent and "User-Agent" not in h:
            h["User-Agent"] = self.user_agent
        if self.referer and self.referer != "-" and "Referer" not in h:
            h["Referer"] = self.referer
        return {"method": self.method, "uri": self.uri, "headers": h, "body": self.body}


def _unescape(s: str | None) -> str:
    if not s:
        return ""
    return s.replace('\\"', '"').replace("\\\\", "\\") if "\\" in s else s


def parse_time(value: Any) -> float:
    """Epoch seconds from a log time: ``10/Oct/2024:13:55:36 +0000``, ISO 8601, or epoch seconds/ms."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / (1000.0 if value > 1e11 else 1.0)
    s = str(value).strip()
    try:
        return float(s) / (1000.0 if float(s) > 1e11 else 1.0)
    except ValueError:
        pass
    for fmt in ("%d/%b/%Y:%H:%M:%S %z",):
        try:
            return datetime.strptime(s, fmt).timestamp()
        except ValueError:
            pass
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"unrecognised time {s[:40]!r}") from None
    if dt.tzinfo is None:
        raise InputError(f"time {s[:40]!r} has no time zone")
    return dt.timestamp()


def _split_request(line: str) -> tuple[str, str, bool]:
    m = _REQUEST_LINE.match(line)
    if m:
        return m.group(1).upper(), m.group(2), False
    return "-", line[:2048] or "-", True


def parse_line(line: str, line_no: int) -> LogRecord:
    """Parse one combined/common-log or JSON line.

    Raises:
        InputError: the line is neither (the message says why).
    """
    if len(line) > MAX_LINE:
        raise InputError(f"line longer than {MAX_LINE} characters")
    s = line.strip()
    if not s.isascii():
        # lone surrogates (from JSON "\ud800" or surrogateescape decoding) cannot reach RE2 as UTF-8
        s = s.encode("utf-8", "replace").decode("utf-8")
    if s.startswith("{"):
        return _parse_json(s, line_no)
    m = _COMBINED.match(s)
    if not m:
        raise InputError("not a combined/common log line or a JSON object")
    ip, _, _, t, req, status, _size, ref, ua, _rest = m.groups()
    method, uri, bad = _split_request(_unescape(req))
    return LogRecord(line_no=line_no, ip=ip, ts=parse_time(t), method=method, uri=uri,
                     status=None if status == "-" else int(status), user_agent=_unescape(ua),
                     referer=_unescape(ref), malformed_request=bad)


def _first(d: dict[str, Any], field_name: str) -> Any:
    for k in _JSON_KEYS[field_name]:
        if d.get(k) not in (None, ""):
            return d[k]
    return None


def _parse_json(s: str, line_no: int) -> LogRecord:
    try:
        d = json.loads(s)
    except ValueError as exc:
        raise InputError(f"invalid JSON: {exc}") from None
    if not isinstance(d, dict):
        raise InputError("a JSON log line must be an object")
    ip, ts = _first(d, "ip"), _first(d, "ts")
    if ip is None or ts is None:
        raise InputError("JSON log line needs a client address (remote_addr/client_ip/ip) and a time "
                         "(time/timestamp/@timestamp)")
    method, uri = _first(d, "method"), _first(d, "uri")
    bad = False
    if (method is None or uri is None) and isinstance(d.get("request"), str):
        method, uri, bad = _split_request(d["request"])
    if uri is None:
        raise InputError("JSON log line needs uri/request_uri/url or request")
    uri = str(uri)
    if d.get("query") or d.get("args") or d.get("query_string"):
        uri += "?" + str(d.get("query") or d.get("args") or d.get("query_string"))
    headers = d.get("headers") if isinstance(d.get("headers"), dict) else {}
    headers = {str(k): str(v) for k, v in headers.items()}
    if _first(d, "cookie"):
        headers.setdefault("Cookie", str(_first(d, "cookie")))
    status = _first(d, "status")
    try:
        status_i = None if status is None else int(status)
    except (TypeError, ValueError):
        raise InputError(f"status {status!r} is not a number") from None
    return LogRecord(line_no=line_no, ip=str(ip), ts=parse_time(ts), method=str(method or "GET").upper(), uri=uri,
                     status=status_i, user_agent=str(_first(d, "user_agent") or headers.get("User-Agent", "")),
                     referer=str(_first(d, "referer") or ""), headers=headers, body=str(_first(d, "body") or ""),
                     malformed_request=bad)


def iter_records(lines: Iterable[str], bad: list[dict[str, Any]], counts: Counter[str]) -> Iterator[LogRecord]:
    """Parse lines lazily; append ``{"line", "error"}`` for each bad one (the first ``MAX_BAD_REPORTED``)."""
    for n, line in enumerate(lines, 1):
        counts["lines"] += 1
        if not line.strip():
            continue
        try:
            yield parse_line(line, n)
            counts["parsed"] += 1
        except InputError as exc:
            counts["bad"] += 1
            if len(bad) < MAX_BAD_REPORTED:
                bad.append({"line": n, "error": exc.message})


class Inspector(Protocol):
    def inspect(self, req: dict[str, Any]) -> dict[str, Any]: ...


def _severity(labels: list[str]) -> int:
    sev = [get_label(lab).severity for lab in labels if is_label(lab)]
    return max(sev) if sev else 3


@dataclass(slots=True)
class ScanResult:
    """Alerts and summary of one log scan."""

    alerts: list[Alert]
    summary: dict[str, Any]


def scan_records(records: Iterable[LogRecord], *, inspector: Inspector, bots: Any = None, cc: Any = None,
                 top: int = 10) -> tuple[list[Alert], dict[str, Any]]:
    """Run records through the inspector, the bot detector and the CC detector.

    Args:
        records: parsed log records, in time order for meaningful rates.
        inspector: anything with ``inspect(request_dict) -> verdict dict`` (a :class:`WebInspector`).
        bots: a :class:`~fsbrain.domains.web.bots.BotDetector` or ``None`` to skip bots.
        cc: a :class:`~fsbrain.domains.web.cc.CCDetector` or ``None`` to skip CC.
        top: how many entries the "top" lists keep.

    Returns:
        ``(alerts, summary)``.
    """
    alerts: list[Alert] = []
    attackers: Counter[str] = Counter()
    attacker_labels: dict[str, Counter[str]] = defaultdict(Counter)
    per_hour: dict[str, Counter[str]] = defaultdict(Counter)
    bot_cats: Counter[str] = Counter()
    bot_clients: dict[str, dict[str, Any]] = {}
    good_bots: Counter[str] = Counter()
    floods: dict[tuple[str, str, str], dict[str, Any]] = {}
    limits: Counter[str] = Counter()  # requests that exceeded an inspection limit, per limit
    n = n_attacks = n_flash = 0
    for rec in records:
        n += 1
        req = rec.request()
        v = inspector.inspect(req)
        for lim in v.get("limits_hit") or ():
            limits[lim] += 1
        if rec.malformed_request and not v["attack"]:
            v = dict(v, attack=True, labels=["web_protocol"], reasons=[
                {"source": "detector", "id": "LOG-BAD-REQUEST-LINE", "label": "web_protocol",
                 "message": "request line is not 'METHOD URI HTTP/x'", "value": rec.uri[:120]}])
        if v["attack"]:
            n_attacks += 1
            attackers[rec.ip] += 1
            hour = datetime.fromtimestamp(rec.ts, UTC).strftime("%Y-%m-%dT%H:00Z")
            for lab in v["labels"]:
                attacker_labels[rec.ip][lab] += 1
                per_hour[hour][lab] += 1
            alerts.append(Alert(source="web.inspector", labels=list(v["labels"]) or ["web_protocol"],
                                severity=_severity(v["labels"]), score=min(1000, int(v["score"]) * 20),
                                title=f"{'/'.join(v['labels']) or 'attack'} from {rec.ip}: {rec.method} {rec.uri[:80]}",
                                entity_type="ip", entity=rec.ip, start=rec.ts, end=rec.ts, action="block",
                                reasons=[Reason.from_dict(r) for r in v["reasons"]],
                                details={"line": rec.line_no, "method": rec.method, "uri": rec.uri[:2048],
                                         "status": rec.status, "rules": v["rules"], "score": v["score"],
                                         "model": v.get("model"), "limits_hit": list(v.get("limits_hit") or [])}))
        path = rec.uri.split("?", 1)[0]
        cookie = rec.headers.get("Cookie")
        if bots is not None:
            b = bots.inspect(req["headers"], ip=rec.ip, path=path, ts=rec.ts, status=rec.status,
                             complete_headers=False)
            if b.category == "good_bot":
                good_bots[b.signature or "?"] += 1
            elif b.is_bad:
                key = rec.ip
                if key not in bot_clients:
                    bot_cats[b.category] += 1
                    bot_clients[key] = {"alert": Alert(
                        source="web.bots", labels=["web_scanner" if b.category == "scanner" else "bot"],
                        severity=2, score=b.score * 10, title=f"{b.category} bot at {rec.ip}", entity_type="ip",
                        entity=rec.ip, start=rec.ts, end=rec.ts, action="challenge", reasons=list(b.reasons),
                        details={"category": b.category, "signature": b.signature, "first_line": rec.line_no,
                                 "user_agent": rec.user_agent[:200], "features": b.features, "requests": 0})}
                    alerts.append(bot_clients[key]["alert"])
                a = bot_clients[key]["alert"]
                a.end = rec.ts
                a.details["requests"] += 1
        if cc is not None:
            sess = None
            if cookie:
                sess = cookie.split(";", 1)[0].partition("=")[2] or None
            c = cc.observe(ip=rec.ip, path=path, ts=rec.ts, session=sess,
                           has_cookie=None if "Cookie" in rec.headers else True)
            n_flash += c.flash_crowd
            if c.action:
                k = (c.entity_type, c.entity, c.action)
                if k not in floods:
                    floods[k] = {"alert": Alert(
                        source="web.cc", labels=["cc_flood"], severity=4 if c.action == "block" else 3,
                        score={"block": 900, "challenge": 700, "rate_limit": 500}[c.action],
                        title=f"CC flood: {c.action} {c.entity_type} {c.entity}", entity_type=c.entity_type,
                        entity=c.entity, action=c.action, start=rec.ts, end=rec.ts, reasons=list(c.reasons),
                        details={"expires_at": c.expires_at, "first_line": rec.line_no, "requests": 0,
                                 "features": c.features})}
                    alerts.append(floods[k]["alert"])
                fa = floods[k]["alert"]
                fa.end = rec.ts
                fa.details["requests"] += 1
    summary = {
        "requests": n, "attack_requests": n_attacks,
        "top_attackers": [{"ip": ip, "attacks": cnt, "labels": dict(attacker_labels[ip].most_common())}
                          for ip, cnt in attackers.most_common(top)],
        "attack_types_per_hour": {h: dict(c) for h, c in sorted(per_hour.items())},
        "bots": {"bad_clients": len(bot_clients), "by_category": dict(bot_cats),
                 "good_bot_requests": dict(good_bots.most_common(top))},
        "floods": [{"entity_type": k[0], "entity": k[1], "action": k[2], "requests": f["alert"].details["requests"],
                    "start": f["alert"].start, "end": f["alert"].end} for k, f in floods.items()][:100],
        "flash_crowd_requests": n_flash,
        "limits_hit": dict(limits.most_common()),
    }
    return alerts, summary


def scan_lines(lines: Iterable[str], *, inspector: Inspector, bots: Any = None, cc: Any = None) -> ScanResult:
    """Parse and scan log lines; the summary also counts lines and lists bad ones with their numbers."""
    bad: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    alerts, summary = scan_records(iter_records(lines, bad, counts), inspector=inspector, bots=bots, cc=cc)
    summary = {"lines": counts["lines"], "parsed": counts["parsed"], "bad_lines": counts["bad"],
               "bad_line_samples": bad, **summary}
    return ScanResult(alerts=alerts, summary=summary)
