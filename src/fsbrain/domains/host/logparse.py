"""Apply a compiled filter to log lines: date, prefix, failregex, ignoreregex, multi-line ids.

Processing one line (bytes; never decoded as a whole):

1. lines longer than :data:`MAX_LINE` bytes are cut there (counted as ``truncated``);
2. the date is found and cut out of the line (fail2ban semantics: failregex sees the line without it);
3. ``prefregex`` (if any) must match; failregex then runs on its ``<F-CONTENT>`` group;
4. the first failregex that matches wins, unless an ignoreregex matches the line;
5. connection ids (``<F-MLFID>``) tie lines together: a failure without a host waits for a later line
   of the same connection that names it; ``<F-NOFAIL>`` lines only remember the host and user;
   ``<F-MLFFORGET>`` closes the connection; ``<F-MLFGAINED>`` is a successful login, which is a failure
   when that connection already tried several user names. Connection ids are kept for
   :data:`MLFID_MAX_AGE` seconds of *log* time and at most :data:`MLFID_CACHE` of them.

Each line gets a :class:`LineResult` with a status: ``failure``, ``success``, ``ignored``, ``nofail``
(matched a helper regex), ``missed`` (no regex), ``nodate`` is counted on the side.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from re2 import _re2

from fsbrain.core.errors import PolicyError
from fsbrain.domains.host.dates import DateParser
from fsbrain.domains.host.fail2ban import FilterDefinition
from fsbrain.domains.host.fail2ban_literals import first_bytes, required_literals
from fsbrain.domains.host.fail2ban_regex import ByteRegex, PrefixProbe, RegexSet, compile_failregex

MAX_LINE = 16384
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
BATCH_MIN = 64  # fewer lines than this go through process() one by one
MLFID_CACHE = 10000
MLFID_MAX_AGE = 300.0  # seconds of log time a connection id is remembered (fail2ban: 5 minutes)


@dataclass(slots=True)
class LineResult:
    """What one line means.

    Args:
        status: ``failure``, ``success``, ``ignored``, ``nofail`` or ``missed``.
        host: address or name of the remote side (text), when known.
        user: account name tried, when the filter captures it.
        time: epoch seconds from the line's date (``None`` when the line has none).
        regex: index of the failregex (or successregex) that matched.
        fid: failure id when the filter uses ``<F-ID>`` instead of a host.
        attempts: failed attempts this failure stands for (multi-line connections).
    """

    status: str
    host: str | None = None
    user: str | None = None
    time: float | None = None
    regex: int | None = None
    fid: str | None = None
    attempts: int = 1


class _Conn:
    """What is known about one connection id (a plain class: made once per connection, hot)."""

    __slots__ = ("host", "users", "nofail", "pending", "pending_user", "seen")

    def __init__(self) -> None:
        self.host: str | None = None
        self.users: list[str] = []
        self.nofail = 0
        self.pending = False
        self.pending_user: str | None = None
        self.seen: float | None = None


def _text(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", "replace")


class LogFilter:
    """A filter ready to run; keeps per-connection state between lines.

    Args:
        definition: the loaded filter.
        tz: zone for dates without one (``None``: local).
        now: reference time for year inference (``None``: the clock).
        speedups: use the compiled per-line loop of batches (:mod:`._fastlog`) when it is built; ``None``
            follows ``FSBRAIN_SPEEDUPS`` (default on), ``False`` always runs the pure-Python reference.

    Attributes:
        counts: ``lines``, ``failure``, ``success``, ``ignored``, ``nofail``, ``missed``, ``nodate``,
            ``truncated`` so far.
    """

    def __init__(self, definition: FilterDefinition, *, tz: dt.tzinfo | None = None,
                 now: float | None = None, speedups: bool | None = None) -> None:
        self.definition = definition
        self.speedups = speedups  # compiled batch loop: None follows FSBRAIN_SPEEDUPS, False forces Python
        self.name = definition.name
        where = definition.source

        def comp(rx: str) -> ByteRegex:
            try:
                return compile_failregex(rx, multiline=definition.maxlines > 1)
            except PolicyError as exc:
                raise PolicyError(exc.message, source=where) from exc

        self.failregex = [comp(r) for r in definition.failregex]
        self.ignoreregex = [comp(r) for r in definition.ignoreregex]
        self.successregex = [comp(r) for r in definition.successregex]
        self.prefregex = comp(definition.prefregex) if definition.prefregex else None
        if self.prefregex is not None and "content" not in self.prefregex.groupindex:
            raise PolicyError("prefregex has no <F-CONTENT> group", source=where)
        self._fail_set = RegexSet(self.failregex)
        # cheap pre-check: a literal each regex needs (None: always try it)
        self._fail_lits = [required_literals(r.pattern) for r in self.failregex]
        # (index, single literal, literals, regex, RE2 match function or None, group names)
        self._plan = [(i, lits[0] if lits is not None and len(lits) == 1 else None, lits, rx,
                       rx._re2.Match if rx.engine == "re2" else None, rx._names)
                      for i, (lits, rx) in enumerate(zip(self._fail_lits, self.failregex, strict=True))]
        # and a first-byte index: only regexes that can start with the message's first byte are tried
        firsts = [first_bytes(r.pattern) for r in self.failregex]
        self._plan_any = [e for e, f in zip(self._plan, firsts, strict=True) if f is None]
        self._by_first = {b: [e for e, f in zip(self._plan, firsts, strict=True) if f is None or b in f]
                          for b in {b for f in firsts if f is not None for b in f}}
        self._ign_set = RegexSet(self.ignoreregex) if self.ignoreregex else None
        self._succ_set = RegexSet(self.successregex) if self.successregex else None
        self.dates = DateParser(definition.datepattern, tz=tz, now=now)
        self._find_date = self.dates.find if self.dates.has_dates else None
        self._batch_plan: Any = None  # logparse_batch.BatchPlan, made on first use
        # the prefregex's groups, reused for lines sharing its head (always the full regex's result)
        self._probe: PrefixProbe | None = None
        if self.prefregex is not None and definition.maxlines == 1:
            probe = PrefixProbe(self.prefregex)
            self._probe = probe if probe.usable else None
        self.maxlines = definition.maxlines
        self._buffer: list[bytes] = []
        self._last_ts: float | None = None
        self._conns: OrderedDict[bytes, _Conn] = OrderedDict()
        self._new_conn: Any = _Conn  # the compiled batch loop's Conn (same fields) once it runs
        self.counts = dict.fromkeys(
            ("lines", "failure", "success", "ignored", "nofail", "missed", "nodate", "truncated"), 0)
        all_rx = [*self.failregex, *self.ignoreregex, *self.successregex]
        if self.prefregex:
            all_rx.append(self.prefregex)
        self.fallback_regexes = [r.pattern for r in all_rx if r.engine != "re2"]

    @property
    def engines(self) -> dict[str, int]:
        """How many of this filter's regexes run on RE2 and on bounded Python ``re``."""
        n = len(self.failregex) + len(self.ignoreregex) + len(self.successregex) + (1 if self.prefregex else 0)
        return {"re2": n - len(self.fallback_regexes), "python_re": len(self.fallback_regexes)}

    def reset(self) -> None:
        """Forget connection state and counts (a new file)."""
        self._conns.clear()
        self._buffer.clear()
        self._last_ts = None
        for k in self.counts:
            self.counts[k] = 0

    def process(self, line: bytes) -> LineResult:
        """Classify one line (without its trailing newline)."""
        c = self.counts
        if self.maxlines > 1 or len(line) > MAX_LINE:
            res = self._decide(self.extract(line))
            c[res.status] += 1
            if self.maxlines > 1 and res.status in ("failure", "success"):
                self._buffer.clear()
            return res
        c["lines"] += 1  # the common case, as extract() does it
        ts = None
        find = self._find_date
        if find is not None:
            found = find(line)
            if found is None:
                c["nodate"] += 1
                ts = self._last_ts
            else:
                (s, e), ts = found
                self._last_ts = ts
                line = line[e:] if s == 0 else line[:s] + line[e:]
        x = self._extract(line, ts)
        if x[0] == "fail":
            mlfid = x[3].get("mlfid")
            res = self._merge(mlfid, x[3], ts, x[2]) if mlfid is not None else self._decide(x)
        else:
            res = self._decide(x)
        c[res.status] += 1
        return res

    def extract(self, line: bytes) -> tuple[Any, ...]:
        """The stateless half of :meth:`process`: date, prefix and regex matching (safe to run in parallel
        workers for single-line filters). Returns a compact tuple for :meth:`decide`."""
        c = self.counts
        c["lines"] += 1
        if len(line) > MAX_LINE:
            line = line[:MAX_LINE]
            c["truncated"] += 1
        ts = None
        find = self._find_date
        if find is not None:
            found = find(line)
            if found is None:
                c["nodate"] += 1
                ts = self._last_ts  # fail2ban: a line without a date happened at the last date seen
            else:
                (s, e), ts = found
                self._last_ts = ts
                line = line[e:] if s == 0 else line[:s] + line[e:]
        if self.maxlines > 1:
            self._buffer.append(line)
            if len(self._buffer) > self.maxlines:
                del self._buffer[0]
            text = b"\n".join(self._buffer)
        else:
            text = line
        return self._extract(text, ts)

    def _extract(self, text: bytes, ts: float | None) -> tuple[Any, ...]:
        pre: dict[str, bytes] | None = None
        body = text
        if self.prefregex is not None:
            probe = self._probe
            e = -1
            if probe is not None:
                key, pre, e = probe.lookup(text)
                if pre is not None:
                    body = text[e:]
            if pre is None:
                spans = self.prefregex.spans(text)
                if spans is None:
                    return ("missed", ts)
                pre = self.prefregex.groups_from(text, spans)
                body = pre.pop("content", b"")
                if e >= 0 and spans[probe.content_index][0] == e:  # type: ignore[union-attr]
                    probe.remember(key, pre)  # type: ignore[union-attr]
        return self._match_body(text, body, pre, ts)

    def _match_body(self, text: bytes, body: bytes, pre: dict[str, bytes] | None, ts: float | None,
                    ) -> tuple[Any, ...]:
        """failregex (first that matches), ignoreregex, successregex on the content ``body`` of ``text``."""
        plan = self._by_first.get(body[0], self._plan_any) if body else self._plan_any
        for i, one, lits, rx, match, names in plan:
            if one is not None:
                if one not in body:
                    continue
            elif lits is not None:
                for x in lits:
                    if x in body:
                        break
                else:
                    continue
            if match is not None:  # ByteRegex.spans, inlined
                spans = match(_UNANCHORED, body, 0, len(body))
                if spans[0][0] < 0:
                    continue
            else:
                spans = rx.spans(body)
                if spans is None:
                    continue
            if self._ign_set is not None and self._ign_set.first(text) is not None:
                return ("ignored", ts, i)
            # ByteRegex.groups_from, inlined
            g = {base: body[sp[0]:sp[1]] for base, idx in names if (sp := spans[idx])[0] >= 0}
            return ("fail", ts, i, {**pre, **g} if pre else g)
        if self._succ_set is not None:
            shit = self._succ_set.first(body)
            if shit is not None:
                sg = self.successregex[shit[0]].groups_from(body, shit[1])
                return ("success", ts, shit[0], {**pre, **sg} if pre else sg)
        return ("missed", ts)

    def process_batch(self, lines: list[bytes]) -> list[LineResult]:
        """``[self.process(line) for line in lines]``, faster for large batches: the regex work runs per batch
        in Arrow's RE2 kernels (:mod:`.logparse_batch`). Filters it cannot run go line by line."""
        plan = self._batch_plan
        if plan is None:
            from fsbrain.domains.host.logparse_batch import BatchPlan

            plan = self._batch_plan = BatchPlan(self)
        if not plan.ok or len(lines) < BATCH_MIN:
            return [self.process(line) for line in lines]
        from fsbrain.domains.host.logparse_batch import process_batch

        return process_batch(self, lines, plan)

    def decide(self, x: tuple[Any, ...]) -> LineResult:
        """The stateful half of :meth:`process`: connection ids, helper lines, counting."""
        res = self._decide(x)
        self.counts[res.status] += 1
        return res

    def _decide(self, x: tuple[Any, ...]) -> LineResult:
        kind, ts = x[0], x[1]
        if kind == "missed":
            return LineResult("missed", time=ts)
        if kind == "ignored":
            return LineResult("ignored", time=ts, regex=x[2])
        idx, g = x[2], x[3]
        if kind == "success":
            return LineResult("success", host=_host(g), user=_text(g.get("user")), time=ts, regex=idx)
        mlfid = g.get("mlfid")
        if mlfid is not None:
            return self._merge(mlfid, g, ts, idx)
        if "mlfgained" in g:
            return LineResult("success", host=_host(g), user=_text(g.get("user")), time=ts, regex=idx)
        if "nofail" in g:
            return LineResult("nofail", host=_host(g), user=_text(g.get("user")), time=ts, regex=idx)
        host = _host(g)
        fid = _text(g.get("fid"))
        if host is None and fid is None:
            return LineResult("nofail", time=ts, regex=idx)
        user = g.get("user")
        if user is None:
            user = g.get("alt_user")
        return LineResult("failure", host=host or fid, user=_text(user), time=ts, regex=idx, fid=fid)

    def _merge(self, mlfid: bytes, g: dict[str, bytes], ts: float | None, idx: int) -> LineResult:
        v = g.get("ip4")
        if v is None:
            v = g.get("ip6")
            if v is None:
                v = g.get("dns")
        host = v.decode("ascii", "replace") if v is not None else None
        v = g.get("user")
        user = v.decode("utf-8", "replace") if v is not None else None
        if not user:
            v = g.get("alt_user")
            user = v.decode("utf-8", "replace") if v is not None else None
        gained = "mlfgained" in g
        return self._merge_fields(mlfid, host, user, gained, gained or "nofail" in g, "mlfforget" in g, ts, idx)

    def _merge_fields(self, mlfid: bytes, host: str | None, user: str | None, gained: bool, nofail: bool,
                      forget: bool, ts: float | None, idx: int) -> LineResult:
        """:meth:`_merge` on the fields it reads: address, user (or alternative user), and whether the line
        is a successful login, a helper line (``NOFAIL`` or a login) and closes the connection."""
        conns = self._conns
        conn = conns.get(mlfid)
        if conn is None:
            conn = self._new_conn()
        elif ts is not None and conn.seen is not None and ts - conn.seen > MLFID_MAX_AGE:
            conn = self._new_conn()  # a stale connection id (process ids get reused): start afresh
        else:
            conns.move_to_end(mlfid)
        if ts is not None:
            conn.seen = ts
        if host is not None:
            conn.host = host
        users = conn.users
        if user and user not in users:
            users.append(user)
        if nofail and len(users) > 1:
            nofail = False  # several names tried on one connection: each further try is a failure
        result: LineResult
        if not nofail:
            if conn.host is None:
                conn.pending, conn.pending_user = True, user
                result = LineResult("nofail", None, user, ts, idx)
            else:
                result = LineResult("failure", conn.host, user or (users[-1] if users else None), ts, idx, None,
                                    conn.nofail + 1)
                conn.nofail = 0
        elif conn.pending and conn.host is not None:
            conn.pending = False
            result = LineResult("failure", conn.host, conn.pending_user or user, ts, idx, None, conn.nofail + 1)
            conn.nofail = 0
        elif gained:
            result = LineResult("success", conn.host, user, ts, idx)
        else:
            conn.nofail += 1
            result = LineResult("nofail", conn.host, user, ts, idx)
        if forget:
            conns.pop(mlfid, None)
        else:
            conns[mlfid] = conn
            if len(conns) > MLFID_CACHE:
                conns.popitem(last=False)
        return result


def _host(g: dict[str, bytes]) -> str | None:
    for k in ("ip4", "ip6", "dns"):
        v = g.get(k)
        if v is not None:
            return v.decode("ascii", "replace")
    return None
