"""Find and parse the timestamp of a log line.

Log lines carry dates in a handful of shapes. :class:`DateParser` looks for the leftmost one in the
line, returns its span (so the filter can cut it out, as fail2ban does before applying failregex) and
the time as epoch seconds.

Shapes understood without configuration (the *built-in templates*):

* ISO 8601 / RFC 3339: ``2015-04-16T18:02:50.321974+00:00``, ``2005-06-21 16:47:48,123``
* syslog (RFC 3164) and ctime: ``Jun 21 16:47:48``, ``Sat Jun 21 16:47:48 2005``
* Apache / nginx access logs: ``21/Jun/2005:16:47:48 +0200``
* slashed: ``2005/06/21 16:47:48`` (nginx error log), ``21-Jun-2005 16:47:48`` (BIND)
* MySQL 5.x: ``050621 16:47:48``; ``21.06.2005 16:47:48``, ``21-06-2005 16:47:48 +0200``,
  ``2005.06.21 16:47:48``, ``Jun 21 2005 16:47:48``
* epoch seconds at the line start or in brackets: ``1119365268.123``; TAI64N labels (``@4000...``)

A year missing from the line is inferred: the reference time's year, or the year before when the date
would otherwise lie more than a day in the future. Times without a zone are read in ``tz`` (default: the
machine's local zone). A line without a recognisable date returns ``None`` (the caller counts it).

Filters can restrict the search with fail2ban ``datepattern`` values: ``{^LN-BEG}`` (date at the line
start), ``{DATE}`` inside a larger pattern, ``{NONE}`` (no date), ``{EPOCH}``/``{LEPOCH}``, or
strftime-like patterns such as ``%Y-%m-%d %H:%M:%S``.

>>> import datetime as dt
>>> p = DateParser(tz=dt.timezone.utc, now=dt.datetime(2005, 8, 14, tzinfo=dt.timezone.utc).timestamp())
>>> span, ts = p.find(b"Jun 21 16:47:48 host sshd[1]: x")
>>> span, dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat()
((0, 15), '2005-06-21T16:47:48+00:00')
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any

from fsbrain.core.errors import PolicyError
from fsbrain.domains.host.fail2ban_regex import compile_bytes

MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_MON = r"(?:[Jj]an|[Ff]eb|[Mm]ar|[Aa]pr|[Mm]ay|[Jj]un|[Jj]ul|[Aa]ug|[Ss]ep|[Oo]ct|[Nn]ov|[Dd]ec)[a-z]*"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_TZ = r"(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT)"

# name -> regex body; groups: Y y m b d H M S f z e
TEMPLATES: list[tuple[str, str]] = [
    ("iso", rf"(?P<Y>\d{{4}})-(?P<m>\d{{2}})-(?P<d>\d{{2}})(?:T|\s{{1,2}})(?P<H>\d{{1,2}}):(?P<M>\d{{2}}):(?P<S>\d{{2}})"
            rf"(?:[.,](?P<f>\d{{1,9}}))?(?:\s?(?P<z>{_TZ}))?"),
    ("mdy_year", rf"(?P<b>{_MON})\s+(?P<d>\d{{1,2}}),?\s+(?P<Y>\d{{4}})\s+(?P<H>\d{{1,2}}):(?P<M>\d{{2}}):(?P<S>\d{{2}})"),
    ("syslog", rf"(?:{_DAY},?\s+)?(?P<b>{_MON})\s+(?P<d>\d{{1,2}}),?\s+(?P<H>\d{{1,2}}):(?P<M>\d{{2}}):(?P<S>\d{{2}})"
               rf"(?:\.(?P<f>\d{{1,9}}))?(?:\s+(?P<Y>\d{{4}})\b)?"),
    ("apache", rf"(?P<d>\d{{1,2}})/(?P<b>{_MON})/(?P<Y>\d{{4}}):(?P<H>\d{{2}}):(?P<M>\d{{2}}):(?P<S>\d{{2}})"
               rf"(?:\s+(?P<z>[+-]\d{{4}}))?"),
    ("slashed", r"(?P<Y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})[ T-](?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})"
                r"(?:[.,](?P<f>\d{1,9}))?"),
    ("dmy_named", rf"(?P<d>\d{{1,2}})[-/ ](?P<b>{_MON})[-/ ](?P<Y>\d{{4}})[ :T](?P<H>\d{{2}}):(?P<M>\d{{2}})"
                  rf":(?P<S>\d{{2}})(?:[.,](?P<f>\d{{1,9}}))?(?:\s(?P<z>[+-]\d{{4}}))?"),
    ("dmy_dotted", r"(?P<d>\d{2})\.(?P<m>\d{2})\.(?P<Y>\d{4})[ ,]\s*(?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})"),
    ("dmy_dashed", r"(?P<d>\d{2})-(?P<m>\d{2})-(?P<Y>\d{4})[ T](?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})"),
    ("ymd_dotted", r"(?P<Y>\d{4})\.(?P<m>\d{2})\.(?P<d>\d{2})[ T-](?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})"),
    ("mysql", r"(?P<y>\d{2})(?P<m>[01]\d)(?P<d>[0-3]\d)\s+(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})"),
    ("tai64n", r"@(?P<tai>4000000[0-9a-f]{9})[0-9a-f]{8}"),
    ("epoch", r"(?:^|[\[(@])(?P<e>1\d{9})(?:\.(?P<f>\d{1,6}))?\b"),
]

_BUILTIN_BODIES = {b for _, b in TEMPLATES}

_STRFTIME = {
    "%Y": r"(?P<Y>\d{4})", "%y": r"(?P<y>\d{2})", "%m": r"(?P<m>\d{1,2})", "%d": r"(?P<d>\d{1,2})",
    "%e": r"\s?(?P<d>\d{1,2})", "%H": r"(?P<H>\d{1,2})", "%k": r"\s?(?P<H>\d{1,2})", "%M": r"(?P<M>\d{2})",
    "%S": r"(?P<S>\d{2})", "%f": r"(?P<f>\d{1,9})", "%b": rf"(?P<b>{_MON})", "%B": rf"(?P<b>{_MON})",
    "%a": _DAY, "%A": _DAY, "%z": r"(?P<z>[+-]\d{2}:?\d{2}|Z)", "%Z": r"(?:[A-Z]{2,5})", "%p": r"(?P<p>[AaPp][Mm])",
    "%I": r"(?P<H>\d{1,2})", "%s": r"(?P<e>\d{9,11})", "%%": "%",
}


def _mark_date_group(pattern: str) -> str:
    """Name the first plain capturing group ``(...)`` of a datepattern ``span``: as in fail2ban, when a
    pattern has one, only that group is the date (the rest only locates it)."""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            j = i + 1
            while j < len(pattern) and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i = j + 1
            continue
        if c == "(" and not pattern.startswith("(?", i):
            return pattern[:i] + "(?P<span>" + pattern[i + 1:]
        i += 1
    return pattern


def _strftime_to_regex(pattern: str) -> str:
    pattern = re.sub(r"%Ex([a-zA-Z])", r"%\1", pattern)  # fail2ban's exact-range variants
    out, i = [], 0
    while i < len(pattern):
        tok = pattern[i:i + 2]
        if tok in _STRFTIME:
            out.append(_STRFTIME[tok])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


class DateParser:
    """Find the date in a line; return its byte span and epoch seconds.

    Args:
        datepattern: a fail2ban ``datepattern`` (one per line) or ``None`` for the built-in templates.
        tz: zone for times written without one (``None``: the machine's local zone).
        now: reference epoch time for inferring missing years (``None``: the clock at each call).
    """

    def __init__(self, datepattern: str | None = None, *, tz: dt.tzinfo | None = None,
                 now: float | None = None) -> None:
        self.datepattern = datepattern
        self.tz = tz
        self.now = now
        self.enabled = True
        self.problems: list[str] = []
        self._anchor_start = False
        bodies = [b for _, b in TEMPLATES]
        if datepattern and datepattern.strip():
            pats = [p.strip() for p in datepattern.strip().splitlines() if p.strip()]
            if any(p == "{NONE}" for p in pats):
                self.enabled = False
                bodies = []
            else:
                bodies = [b for p in pats for b in self._convert(p)]
                good = []
                for b in bodies:  # keep the lines that compile; report the others
                    try:
                        compile_bytes(b)
                        good.append(b)
                    except PolicyError as exc:
                        self.problems.append(f"datepattern line ignored: {exc.message}")
                if not good:
                    raise PolicyError(f"no usable line in datepattern {datepattern!r}: {'; '.join(self.problems)}")
                bodies = good
        self._groups: list[dict[str, int]] = []
        alts = []
        for i, body in enumerate(bodies):
            # give each alternative its own group names: t<i>_<name>
            renamed = body
            for g in ("Y", "y", "m", "b", "d", "H", "M", "S", "f", "z", "e", "tai", "span", "p"):
                renamed = renamed.replace(f"(?P<{g}>", f"(?P<t{i}_{g}>")
            alts.append(f"(?P<t{i}>{renamed})")
        self._regex = None
        if alts:
            prefix = r"^\W{0,3}?" if self._anchor_start else ""
            try:
                self._regex = compile_bytes(prefix + "(?:" + "|".join(alts) + ")")
            except PolicyError as exc:
                raise PolicyError(f"datepattern {datepattern!r}: {exc.message}") from exc
            names = self._regex.groupindex
            for i in range(len(alts)):
                self._groups.append({k.split("_", 1)[1]: v for k, v in names.items()
                                     if k.startswith(f"t{i}_")})
            self._alt_index = [names[f"t{i}"] for i in range(len(alts))]
        self._hours: dict[tuple[int, int, int, int, bytes | None], float] = {}
        self._seen: dict[bytes, float] = {}  # date text -> epoch (log lines share their seconds)
        # Fast path for the built-in templates (fsbrain's own, bounded, backtracking-safe patterns): try
        # the template that matched last, alone, with Python's re; fall back to the combined RE2 search.
        self._fast: list[re.Pattern[bytes]] | None = None
        self._last = 0
        if bodies and all(b in _BUILTIN_BODIES for b in bodies):
            pre = r"^\W{0,3}?" if self._anchor_start else r"^"
            self._fast = [re.compile((pre + f"(?P<_dt>{b})").encode()) for b in bodies]
            # which templates have an epoch group (its start may differ from the date's start)
            self._fast_e = [("(?P<e>" in b) for b in bodies]
            # dates that differ only in their seconds share everything else: remember the rest per minute
            self._fast_sec = [(f.groupindex["S"], f.groupindex.get("f", 0))
                              if "S" in f.groupindex and "d" in f.groupindex and "e" not in f.groupindex
                              and "tai" not in f.groupindex else None for f in self._fast]
        self._minutes: dict[bytes, float] = {}

    def _convert(self, pattern: str) -> list[str]:
        if pattern.startswith("{^LN-BEG}"):
            self._anchor_start = True
            pattern = pattern[len("{^LN-BEG}"):] or "{DATE}"
        if pattern.startswith("^"):
            self._anchor_start = True
            pattern = pattern[1:]
        named = {"EPOCH": "{EPOCH}", "LEPOCH": "{LEPOCH}", "TAI64N": "{TAI64N}", "ISO8601": "{ISO8601}"}
        pattern = named.get(pattern, pattern)  # fail2ban's named templates
        pattern = pattern.replace("{TAI64N}", dict(TEMPLATES)["tai64n"]).replace("{ISO8601}", dict(TEMPLATES)["iso"])
        pattern = pattern.replace("{LEPOCH}", r"(?P<e>1\d{9})(?P<f>\d{3})")
        pattern = pattern.replace("{EPOCH}", r"(?P<e>1\d{9})(?:\.(?P<f>\d{1,6}))?")
        pattern = _mark_date_group(pattern)
        if "{DATE}" in pattern:
            return [pattern.replace("{DATE}", body) for _, body in TEMPLATES]
        converted = _strftime_to_regex(pattern)
        for name in ("Y", "y", "m", "b", "d", "H", "M", "S", "f", "z", "e", "p"):
            # a name can appear once per alternative; keep the first, make later ones anonymous
            first = converted.find(f"(?P<{name}>")
            if first >= 0:
                head, tail = converted[:first + 1], converted[first + 1:]
                converted = head + tail.replace(f"(?P<{name}>", "(?:")
        return [converted]

    @property
    def has_dates(self) -> bool:
        return self.enabled and self._regex is not None

    def find(self, line: bytes) -> tuple[tuple[int, int], float] | None:
        """Return ``((start, end), epoch)`` of the leftmost date in ``line``, or ``None``."""
        if self._regex is None:
            return None
        if self._fast is not None:
            m = self._fast[self._last].match(line)
            if m is not None:
                span = m.span(1)  # group 1 is _dt
                if self._fast_e[self._last] and m.start("e") >= 0:  # the epoch may follow a bracket kept
                    span = (m.start("e"), span[1])
                hit = self._seen.get(line[span[0]:span[1]])
                if hit is not None:
                    return span, hit
                text = line[span[0]:span[1]]
                sec = self._fast_sec[self._last]
                mkey = b""
                if sec is not None and (not sec[1] or m.start(sec[1]) < 0):
                    ss, se = m.span(sec[0])
                    mkey = line[span[0]:ss] + b"\x00" + line[se:span[1]]
                    base = self._minutes.get(mkey)
                    if base is not None:
                        sv = int(line[ss:se])
                        if sv <= 60:
                            ts = base + min(sv, 59)
                            self._remember(text, ts)
                            return span, ts
                fields = {k: v for k, v in m.groupdict().items() if v is not None and k != "_dt"}
                ts = self._to_epoch(fields)
                if ts is not None:
                    self._remember(text, ts)
                    if mkey:
                        if len(self._minutes) >= 4096:
                            self._minutes.clear()
                        self._minutes[mkey] = ts - min(int(fields["S"]), 59)
                    return span, ts
        spans = self._regex.spans(line)
        if spans is None:
            return None
        for i, gi in enumerate(self._alt_index):
            span = spans[gi]
            if span[0] >= 0:
                groups = self._groups[i]
                self._last = i
                break
        else:  # pragma: no cover - a match always has one alternative
            return None
        if "span" in groups and spans[groups["span"]][0] >= 0:  # fail2ban: group 1 is the date itself
            span = spans[groups["span"]]
        if "e" in groups and spans[groups["e"]][0] >= 0:  # the epoch may follow a bracket kept in the line
            span = (spans[groups["e"]][0], span[1])
        text = line[span[0]:span[1]]
        hit = self._seen.get(text)
        if hit is not None:
            return span, hit
        fields = {k: line[spans[v][0]:spans[v][1]] for k, v in groups.items() if spans[v][0] >= 0 and k != "span"}
        ts = self._to_epoch(fields)
        if ts is None:
            return None
        self._remember(text, ts)
        return span, ts

    def _remember(self, text: bytes, ts: float) -> None:
        if len(self._seen) >= 4096:
            self._seen.clear()
        self._seen[text] = ts

    def _to_epoch(self, f: dict[str, bytes]) -> float | None:
        try:
            frac = float(b"0." + f["f"]) if "f" in f else 0.0
            if "e" in f:
                return int(f["e"]) + frac
            if "tai" in f:
                return float(int(f["tai"], 16) - (1 << 62))
            if "d" not in f:  # a time of day only: the reference day, or the day before if still to come
                now = self.now if self.now is not None else time.time()
                ref = dt.datetime.fromtimestamp(now, self.tz or dt.UTC)
                hh, mm, ss = int(f["H"]), int(f.get("M", b"0")), int(f.get("S", b"0"))
                if (hh, mm, ss) > (ref.hour, ref.minute, ref.second):
                    ref -= dt.timedelta(days=1)
                f = {**f, "Y": str(ref.year).encode(), "m": str(ref.month).encode(), "d": str(ref.day).encode()}
            month = int(f["m"]) if "m" in f else MONTHS[f["b"][:3].lower().decode()]
            day, hour = int(f["d"]), int(f["H"])
            if "p" in f:  # 12-hour clock
                hour = hour % 12 + (12 if f["p"][:1] in (b"P", b"p") else 0)
            minute, sec = int(f.get("M", b"0")), int(f.get("S", b"0"))
            zone_text = f.get("z")
            year = int(f["Y"]) if "Y" in f else (2000 + int(f["y"]) if "y" in f else 0)
            if not (0 <= minute < 60 and 0 <= sec <= 60):
                return None
            # the start of the hour, cached: zone offsets change on whole hours at most
            key = (year, month, day, hour, zone_text)
            base = self._hours.get(key)
            if base is None:
                tz = _parse_tz(zone_text) if zone_text is not None else self.tz
                base = self._infer_year(month, day, hour, tz) if not year else _mk(year, month, day, hour, 0, 0, tz)
                if len(self._hours) > 4096:
                    self._hours.clear()
                self._hours[key] = base
            return base + minute * 60 + min(sec, 59) + frac
        except (ValueError, KeyError, OverflowError):
            return None

    def _infer_year(self, month: int, day: int, hour: int, tz: dt.tzinfo | None) -> float:
        now = self.now if self.now is not None else time.time()
        year = dt.datetime.fromtimestamp(now, tz or dt.UTC).year
        ts = _mk(year, month, day, hour, 0, 0, tz)
        if ts > now + 86400:
            ts = _mk(year - 1, month, day, hour, 0, 0, tz)
        return ts


def _mk(year: int, month: int, day: int, hour: int, minute: int, sec: int, tz: dt.tzinfo | None) -> float:
    if sec == 60:
        sec = 59  # leap second
    return dt.datetime(year, month, day, hour, minute, sec, tzinfo=tz).timestamp()


def _parse_tz(raw: bytes) -> dt.tzinfo:
    s = raw.decode()
    if s in ("Z", "UTC", "GMT"):
        return dt.UTC
    sign = -1 if s[0] == "-" else 1
    digits = s[1:].replace(":", "")
    return dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))


def zone(name: str | None) -> dt.tzinfo | None:
    """A tzinfo from an IANA name (``"UTC"``, ``"Asia/Shanghai"``); ``None`` or ``"local"`` → local."""
    if not name or name == "local":
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PolicyError(f"unknown time zone {name!r}") from exc


DateFinder = Callable[[bytes], Any]
