"""Windows logon events (4625 failed, 4624 succeeded) exported as JSON lines or CSV.

Windows security events are structured records, not text lines, so they get a small structured reader
instead of regexes. It accepts:

* JSON, one event per line: flat (``Get-WinEvent ... | ConvertTo-Json -Compress``, NXLog ``to_json``:
  ``EventID``/``Id``, ``TimeCreated``/``EventTime``, ``TargetUserName``, ``IpAddress``) or nested
  (Winlogbeat: ``winlog.event_id``, ``winlog.event_data.TargetUserName``, ``@timestamp``);
* CSV with a header line naming the same fields (any order, extra columns ignored).

:class:`WindowsEventFilter` has the same ``process(line) -> LineResult`` interface and ``counts`` as
:class:`~fsbrain.domains.host.logparse.LogFilter`, so scanning, following and the detector treat it like
any filter (name ``windows-4625``). Lines that are neither are ``missed``; 4624 is ``success``; logons
without a network address (``-``, local console) carry no host and are ``nofail``.
"""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import json
from typing import Any

from fsbrain.domains.host.logparse import LineResult

NAME = "windows-4625"
ID_KEYS = ("EventID", "EventId", "Id", "event_id", "eventId", "EventCode")
TIME_KEYS = ("TimeCreated", "EventTime", "TimeGenerated", "@timestamp", "timestamp", "SystemTime", "Date and Time")
USER_KEYS = ("TargetUserName", "AccountName", "TargetUser", "user")
HOST_KEYS = ("IpAddress", "SourceNetworkAddress", "SourceAddress", "ClientAddress", "src_ip")


def _flatten(obj: Any, out: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    if isinstance(obj, dict) and depth < 6:
        for k, v in obj.items():
            if isinstance(v, dict):
                _flatten(v, out, depth + 1)
            elif k not in out:
                out[str(k)] = v
    return out


def _first(rec: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = rec.get(k)
        if v not in (None, ""):
            return v
    return None


def _epoch(value: Any, tz: dt.tzinfo | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value) / (1000.0 if value > 1e11 else 1.0)
    s = str(value).strip()
    if s.startswith("/Date(") and s.endswith(")/"):  # PowerShell 5 JSON dates
        digits = s[6:-2].split("+")[0].split("-")[0]
        return int(digits) / 1000.0 if digits.isdigit() else None
    try:
        d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        for fmt in ("%m/%d/%Y %I:%M:%S %p", "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S"):
            try:
                d = dt.datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
        else:
            return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=tz) if tz is not None else d.astimezone()
    return d.timestamp()


class WindowsEventFilter:
    """Reads 4625/4624 records; see the module docstring.

    Args:
        tz: zone for times written without one (``None``: local).
    """

    name = NAME
    engines = {"re2": 0, "python_re": 0}
    fallback_regexes: list[str] = []

    def __init__(self, *, tz: dt.tzinfo | None = None, now: float | None = None) -> None:
        self.tz = tz
        self._header: list[str] | None = None
        self.counts = dict.fromkeys(
            ("lines", "failure", "success", "ignored", "nofail", "missed", "nodate", "truncated"), 0)

    def reset(self) -> None:
        self._header = None
        for k in self.counts:
            self.counts[k] = 0

    def process(self, line: bytes) -> LineResult:
        self.counts["lines"] += 1
        res = self._classify(line)
        self.counts[res.status] += 1
        return res

    def _record(self, line: bytes) -> dict[str, Any] | None:
        text = line.decode("utf-8", "replace").strip().lstrip("\ufeff")
        if not text:
            return None
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError:
                return None
            return _flatten(obj, {}) if isinstance(obj, dict) else None
        try:
            row = next(csv.reader([text]))
        except (csv.Error, StopIteration):
            return None
        if any(c.strip() in ID_KEYS for c in row) and any(c.strip() in HOST_KEYS + USER_KEYS for c in row):
            self._header = [c.strip() for c in row]
            return None
        if self._header is None or len(row) != len(self._header):
            return None
        return dict(zip(self._header, row, strict=True))

    def _classify(self, line: bytes) -> LineResult:
        rec = self._record(line)
        if rec is None:
            return LineResult("missed")
        eid = str(_first(rec, ID_KEYS) or "").strip()
        if eid not in ("4625", "4624"):
            return LineResult("missed")
        ts = _epoch(_first(rec, TIME_KEYS), self.tz)
        if ts is None:
            self.counts["nodate"] += 1
        user = _first(rec, USER_KEYS)
        host = _first(rec, HOST_KEYS)
        host = str(host).strip() if host is not None else None
        if host:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                host = None  # "-", "LOCAL", workstation names: no network source
        if not host:
            return LineResult("nofail", user=None if user is None else str(user), time=ts)
        status = "failure" if eid == "4625" else "success"
        return LineResult(status, host=host, user=None if user is None else str(user), time=ts)
