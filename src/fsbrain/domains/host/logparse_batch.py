"""Many log lines at once: the regex work of :meth:`LogFilter.process` done per batch by Arrow's RE2 kernels.

Calling RE2 from Python costs about a microsecond per call before any matching happens, and a line
needs two or three calls (date, prefregex, failregex). Arrow's compute kernels (``pyarrow``, already a
dependency) run the *same* RE2 engine over a whole column of lines in C++: this module hands them the
regex work of a batch and keeps in Python only what is stateful (connection ids, counts, results).

The results are those of :meth:`LogFilter.process` line by line, by construction:

* one pass (``extract_regex_span``) finds, at the start of every line, the date template the
  :class:`~.dates.DateParser` would try first (the one that matched last) followed by the prefregex *head*
  (everything before its content group) without groups. The head is required to match the empty string
  anywhere (no anchors or word boundaries), so the template keeps its own first match and the head then
  ends where :class:`~.fail2ban_regex.PrefixProbe` finds it. The epoch comes from the parser's own caches
  (per date text, per date text less its seconds) or from the parser itself; the head's groups come from the
  probe's memo or from the full prefregex on that line (in Python, as in ``process``). A line whose date is
  not at its very start goes through :meth:`LogFilter.process`; if that changes the parser's preferred
  template, the rest of the batch is recomputed;
* each failregex, in order, runs on the content of the lines no earlier failregex matched (rows whose first
  byte and required literal allow it; ``extract_regex_span``: group offsets, ``None`` for groups that took no
  part), so the first that matches wins; successregexes likewise on the rest. A line whose content start
  turns out different from the head's end is matched again in Python;
* lines with bytes over 0x7F or a line break, or longer than ``MAX_LINE``, go through ``process``: Arrow
  reads binary columns as Latin-1 where fsbrain's RE2 reads UTF-8, which only agree on ASCII.

With the compiled module (:mod:`._fastlog`) built against RE2 (Debian ``libre2-dev``), the same regex work
is done by RE2 called per line from C++ instead (:func:`_segment_re2`; the same patterns as the line path's,
no Arrow columns); ``FSBRAIN_RE2=0`` or ``BatchPlan(flt, re2=False)`` keeps Arrow's kernels. Both fill the
same arrays for the same compiled per-line loop, and the pure-Python loop stays the reference.

Filters this cannot run (multi-line, ``ignoreregex``, a regex on the Python fallback, a date template with
epoch or TAI64N groups, a prefregex without a usable head, or one Arrow refuses) are processed line by line;
:class:`BatchPlan` says why. Memory: one batch is copied once into a column (callers bound the batch).
"""

from __future__ import annotations

import gc
import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsbrain.domains.host.fail2ban_literals import first_bytes
from fsbrain.domains.host.fail2ban_regex import _rewrite_for_re2, strip_groups
from fsbrain.domains.host.logparse import MAX_LINE, LineResult, LogFilter
from fsbrain.speedups import load_module

_USED = ("mlfid", "mlfgained", "mlfforget", "nofail", "ip4", "ip6", "dns", "fid", "user", "alt_user")
_FIELD = {name: k for k, name in enumerate(_USED)}  # row in the gpos/glen arrays of the compiled loop
_ODD = r"[\x80-\xff\n]"


def load_fastlog(enabled: bool | None = None) -> Any:
    """The compiled per-line loop (:mod:`fsbrain.domains.host._fastlog`), or ``None`` when it is disabled
    (``enabled=False``, or ``FSBRAIN_SPEEDUPS=0`` when ``enabled`` is ``None``) or not built. The pure-Python
    loop in :func:`_segment` is the reference and gives the same results."""
    _fastlog = load_module("fsbrain.domains.host._fastlog", enabled)
    if _fastlog is None:
        return None
    if tuple(_fastlog.FIELDS) != _USED:  # pragma: no cover - a stale build
        return None
    return _fastlog


def _unname_plain(pattern: str) -> str | None:
    """``pattern`` with unnamed capturing groups made non-capturing (Arrow wants only named groups)."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            if j >= n:
                return None
            out.append(pattern[i:j + 1])
            i = j + 1
        elif c == "(" and not pattern.startswith("(?", i):
            out.append("(?:")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


class _Rx:
    """One failregex or successregex prepared for Arrow (and for the compiled loop's row selection)."""

    def __init__(self, index: int, rx: Any, lits: tuple[bytes, ...] | None) -> None:
        self.index = index
        pat = _unname_plain(_rewrite_for_re2(rx.pattern))
        if pat is None:
            raise ValueError("unbalanced class")
        self.pattern = pat
        self.lits = [x.decode("ascii") for x in lits] if lits else []
        first = first_bytes(rx.pattern)  # the bytes a match can start with (None: any)
        self.first = np.array(sorted(first), np.int16) if first is not None else None
        self.first_flags = bytes(1 if b in first else 0 for b in range(256)) if first is not None else None
        self.lits_b = tuple(lits) if lits else ()
        # the groups the decision reads, in group order (the first that took part wins)
        self.fields = [(name.split("__", 1)[0], name) for name, _ in
                       sorted(rx.groupindex.items(), key=lambda kv: kv[1]) if name.split("__", 1)[0] in _USED]
        self.by_base: dict[str, list[str]] = {}
        for base, name in self.fields:
            self.by_base.setdefault(base, []).append(name)


class BatchPlan:
    """What a :class:`LogFilter` needs to run batches; ``reason`` says why it cannot (then ``ok`` is False)."""

    def __init__(self, flt: LogFilter, *, re2: bool | None = None) -> None:
        """``re2``: whether the compiled loop calls RE2 directly when built with it (``None``: unless
        ``FSBRAIN_RE2=0``; ``False``: Arrow's kernels, as without RE2)."""
        self.ok = False
        self.reason = ""
        self.re2_reason = ""  # why the compiled loop uses Arrow's kernels instead of RE2 directly
        self.dates: list[str | None] = []  # per date template: its regex for Arrow (groups _S, _f)
        self.fast: Any = load_fastlog(flt.speedups)  # the compiled per-line loop, or None (Python loop)
        try:
            self._prepare(flt)
        except (ValueError, UnicodeEncodeError) as exc:
            self.reason = f"pattern not usable in a batch: {exc}"
        else:
            self.ok = not self.reason
        if self.ok and self.fast is not None:
            flt._new_conn = self.fast.Conn  # connections the compiled loop reads as a C struct
        # the compiled loop's regex work with RE2 called directly (no Arrow columns), when built with RE2
        self.re2: Any = None
        if self.ok and self.fast is not None and use_re2(re2) and getattr(self.fast, "re2_available", lambda: False)():
            try:
                self.re2 = _re2_plan(flt, self, self.fast)
            except ValueError as exc:  # a pattern RE2 will not take here: Arrow's kernels instead
                self.re2_reason = str(exc)

    def _prepare(self, flt: LogFilter) -> None:
        every = [*flt.failregex, *flt.successregex, *([flt.prefregex] if flt.prefregex else [])]
        if flt.maxlines > 1:
            self.reason = "multi-line filter"
        elif flt.ignoreregex:
            self.reason = "ignoreregex"
        elif any(r.engine != "re2" for r in every):
            self.reason = "a regex runs on the bounded Python fallback"
        elif any(not r.pattern.isascii() for r in every):
            self.reason = "non-ASCII regex"
        elif flt.prefregex is not None and flt._probe is None:
            self.reason = "prefregex without a usable head"
        elif flt.dates.has_dates and flt.dates._fast is None:
            self.reason = "datepattern beyond the built-in templates"
        if self.reason:
            return
        if flt.dates.has_dates:
            for f in flt.dates._fast or []:
                body = f.pattern.decode()
                if "(?P<e>" in body or "(?P<tai>" in body:
                    self.dates.append(None)
                    continue
                # the template alone, anchored at the line start (a date after leading punctuation goes
                # through process); Python's \s also matches \v, RE2's does not: spell it out
                tpl = body[body.index("(?P<_dt>") + len("(?P<_dt>"):-1].replace("\\s", "[\\t\\n\\x0b\\x0c\\r ]")
                # keep the seconds and fraction groups (for the per-minute epoch cache), drop the others
                marked = tpl.replace("(?P<S>", "\x01").replace("(?P<f>", "\x02")
                stripped = strip_groups(marked)
                if stripped is None:
                    self.dates.append(None)
                    continue
                self.dates.append(stripped.replace("\x01", "(?P<_S>").replace("\x02", "(?P<_f>"))
        self.head = ""
        if flt.prefregex is not None and flt._probe is not None:
            head = flt.prefregex.pattern[:-len("(?P<content>.+)$")]
            stripped = strip_groups(_rewrite_for_re2(head))
            if stripped is None:
                self.reason = "prefregex head"
                return
            self.head = stripped[1:] if stripped.startswith("^") else stripped
            if not stripped.startswith("^") or not _empty_everywhere(self.head):
                self.reason = "prefregex head that is not anchored or can fail to match empty text"
                return
        # the full prefregex for Arrow (compiled loop: lines whose head text is new, in one pass)
        self.pref: str | None = None
        self.pref_names: list[tuple[str, list[str]]] = []
        if flt.prefregex is not None and flt._probe is not None:
            self.pref = _unname_plain(_rewrite_for_re2(flt.prefregex.pattern))
            by_base: dict[str, list[str]] = {}
            for name, _ in sorted(flt.prefregex.groupindex.items(), key=lambda kv: kv[1]):
                by_base.setdefault(name.split("__", 1)[0], []).append(name)
            self.pref_names = list(by_base.items())
        self.fail = [_Rx(i, rx, lits) for i, (rx, lits) in enumerate(zip(flt.failregex, flt._fail_lits, strict=True))]
        self.succ = [_Rx(i, rx, None) for i, rx in enumerate(flt.successregex)]


def use_re2(enabled: bool | None = None) -> bool:
    """Whether compiled batches call RE2 directly (when built with it): ``FSBRAIN_RE2=0`` makes them use
    Arrow's kernels instead (same results; the tests compare both)."""
    if enabled is not None:
        return enabled
    return os.environ.get("FSBRAIN_RE2", "1").strip().lower() not in ("0", "false", "no", "off")


def _re2_plan(flt: LogFilter, plan: BatchPlan, fast: Any) -> Any:
    """The compiled module's :class:`Re2Plan` for ``flt``: the same patterns as the line path's regexes (the
    failregexes, successregexes and prefregex as ``ByteRegex`` compiles them) and the batch's date
    templates and prefregex head."""
    def compiled(rx: Any) -> Any:
        return fast.Re2Regex(_rewrite_for_re2(rx.pattern))

    def one(r: _Rx, rx: Any) -> Any:
        c = compiled(rx)
        fields = {base: [c.group_index(name) for name in names] for base, names in r.by_base.items()}
        return fast.Re2Rx(r.index, c, fields, r.first_flags, r.lits_b)

    pref = headg = None
    groups: list[list[int]] = []
    content = 0
    if plan.pref is not None and flt.prefregex is not None:
        pref_rx = compiled(flt.prefregex)
        groups = [[pref_rx.group_index(name) for name in names] for _, names in plan.pref_names]
        content = pref_rx.group_index("content")
        pref = pref_rx.pattern
        # the head with its groups, for lines whose head text is new (PrefixProbe's reasoning: the full regex
        # takes the head's own way when it leaves content), if its groups keep their names and numbers
        tail = "(?P<content>.+)$"
        if flt.prefregex.pattern.endswith(tail) and content == pref_rx.groups:
            head_rx = fast.Re2Regex(_rewrite_for_re2(flt.prefregex.pattern[:-len(tail)]))
            if head_rx.groups == content - 1 and all(
                    head_rx.group_index(name) == idx for name, idx in flt.prefregex.groupindex.items()
                    if name != "content"):
                headg = head_rx.pattern
    return fast.Re2Plan(plan.dates, plan.head or None, pref, groups, content,
                        [one(r, flt.failregex[r.index]) for r in plan.fail],
                        [one(r, flt.successregex[r.index]) for r in plan.succ], headg)


def _empty_everywhere(head: str) -> bool:
    """Whether ``head`` matches the empty string at any position: it matches ``""`` and has no assertion
    (``^ $ \\b \\B \\A \\z``) that could fail elsewhere. Then the date template followed by it takes the
    template's own first match, and one regex run gives both (see :func:`_segment`)."""
    i, n = 0, len(head)
    while i < n:
        c = head[i]
        if c == "\\":
            if head[i + 1:i + 2] in ("b", "B", "A", "z", "Z"):
                return False
            i += 2
        elif c == "[":
            j = i + 1
            if j < n and head[j] == "^":
                j += 1
            if j < n and head[j] == "]":
                j += 1
            while j < n and head[j] != "]":
                j += 2 if head[j] == "\\" else 1
            i = j + 1
        elif c in "^$":
            return False
        else:
            i += 1
    import re2

    try:
        return re2.compile(head).fullmatch("") is not None
    except re2.error:
        return False


def _gather(col: pa.LargeBinaryArray, starts: np.ndarray) -> pa.LargeBinaryArray:
    """A column of ``value[start:]`` for each row (``starts`` relative to each value)."""
    _, off_buf, data_buf = col.buffers()
    offsets = np.frombuffer(off_buf, np.int64, len(col) + 1, col.offset * 8)
    data = np.frombuffer(data_buf, np.uint8)
    begin = offsets[:-1] + starts
    lens = offsets[1:] - begin
    new_off = np.zeros(len(col) + 1, np.int64)
    np.cumsum(lens, out=new_off[1:])
    idx = np.arange(new_off[-1], dtype=np.int64) + np.repeat(begin - new_off[:-1], lens)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(col),
                                            [None, pa.py_buffer(new_off), pa.py_buffer(data[idx].tobytes())])


def _column(lines: list[bytes]) -> pa.LargeBinaryArray:
    n = len(lines)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, lines), np.int64, n), out=offsets[1:])
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets),
                                                                    pa.py_buffer(b"".join(lines))])


def _first_bytes(col: pa.LargeBinaryArray) -> np.ndarray:
    """The first byte of every value (-1 for empty values)."""
    _, off_buf, data_buf = col.buffers()
    offsets = np.frombuffer(off_buf, np.int64, len(col) + 1, col.offset * 8)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None and data_buf.size else np.zeros(1, np.uint8)
    starts = offsets[:-1]
    out = np.full(len(col), -1, np.int16)
    nonempty = offsets[1:] > starts
    out[nonempty] = data[starts[nonempty]]
    return out


def _match_column(col: pa.LargeBinaryArray, todo: np.ndarray, regexes: list[_Rx],
                  positions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, dict[int, _Found]]:
    """For the rows in ``todo``, the first regex (in order) that matches: ``(which, k, fields)``.

    Each regex runs only on the rows still unmatched whose first byte it can start with and that contain
    its required literal (the same pre-checks as the line loop; they never change the outcome).
    With ``positions = (cstart, gpos, glen)`` the captured fields are written as line offsets into
    ``gpos``/``glen`` (for the compiled loop) instead of being returned as Python values."""
    n = len(col)
    which = np.full(n, -1, np.int64)
    where = np.full(n, -1, np.int64)
    found: dict[int, _Found] = {}
    remaining = todo.copy()
    first = _first_bytes(col) if any(rx.first is not None for rx in regexes) else None
    for rx in regexes:
        mask = remaining
        if rx.first is not None and first is not None:
            mask = mask & np.isin(first, rx.first)
        idx = np.flatnonzero(mask)
        if not len(idx):
            continue
        sub = col.take(pa.array(idx))
        if rx.lits:
            keep = np.zeros(len(idx), bool)
            for x in rx.lits:
                keep |= np.asarray(pc.match_substring(sub, x).fill_null(False))
            idx = idx[keep]
            if not len(idx):
                continue
            sub = sub.filter(pa.array(keep))
        spans = pc.extract_regex_span(sub, rx.pattern)
        valid = np.asarray(spans.is_valid())
        rows = idx[valid]
        if not len(rows):
            continue
        hit = spans.filter(pa.array(valid))
        texts = sub.filter(pa.array(valid))
        which[rows] = rx.index
        where[rows] = np.arange(len(rows))
        remaining[rows] = False
        if positions is not None:
            _positions(rx, hit, rows, *positions)
        else:
            found[rx.index] = _Found(_values(rx, hit, texts), len(rows))
    return which, where, found


def _positions(rx: _Rx, hit: pa.StructArray, rows: np.ndarray, cstart: np.ndarray, gpos: np.ndarray,
               glen: np.ndarray) -> None:
    """The fields the decision reads, as offsets in the line (``cstart``: where the matched text starts in
    each line) and lengths; of repeated names the first in group order that took part wins."""
    for base, names in rx.by_base.items():
        _first_span(hit, names, rows, cstart, gpos[_FIELD[base]], glen[_FIELD[base]])


def _span_pairs(col: pa.FixedSizeListArray) -> tuple[np.ndarray, np.ndarray]:
    """``(valid, pairs)`` of one group of ``extract_regex_span``: whether it took part, and ``(start, length)``
    per row (meaningless where not valid), read from the buffers."""
    vals = col.values  # the child, not sliced by the list's offset
    data = np.frombuffer(vals.buffers()[1], np.int64, len(vals), vals.offset * 8)
    pairs = data[2 * col.offset:2 * (col.offset + len(col))].reshape(-1, 2)
    return np.asarray(col.is_valid()), pairs


def _first_span(hit: pa.StructArray, names: list[str], rows: np.ndarray, cstart: np.ndarray, pos: np.ndarray,
                length: np.ndarray) -> None:
    """Of the groups ``names`` (one base name), the first in group order that took part, per matched row:
    ``pos[row] = cstart[row] + start``, ``length[row]``."""
    have = np.zeros(len(rows), bool)
    for name in names:
        valid, pairs = _span_pairs(hit.field(name))
        ok = valid & ~have
        if not ok.any():
            continue
        sel = rows[ok]
        pos[sel] = cstart[sel] + pairs[ok, 0]
        length[sel] = pairs[ok, 1]
        have |= ok


def _values(rx: _Rx, hit: pa.StructArray, texts: pa.LargeBinaryArray) -> list[tuple[str, list[bytes | None]]]:
    """Per group name the decision reads: the captured bytes of every matched row (``None``: the group took
    no part). Of repeated names (``ip4``, ``ip4__1``) the first in group order that took part wins."""
    _, off_buf, data_buf = texts.buffers()
    row_start = np.frombuffer(off_buf, np.int64, len(texts) + 1, texts.offset * 8)[:-1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None and data_buf.size else np.zeros(1, np.uint8)
    out: list[tuple[str, list[bytes | None]]] = []
    by_base: dict[str, list[str]] = {}
    for base, name in rx.fields:
        by_base.setdefault(base, []).append(name)
    for base, names in by_base.items():
        have = np.zeros(len(texts), bool)
        start = np.zeros(len(texts), np.int64)
        length = np.zeros(len(texts), np.int64)
        for name in names:
            col = hit.field(name)
            ok = np.asarray(col.is_valid()) & ~have
            if not ok.any():
                continue
            start[ok] = np.asarray(pc.list_element(col, 0).fill_null(0), np.int64)[ok]
            length[ok] = np.asarray(pc.list_element(col, 1).fill_null(0), np.int64)[ok]
            have |= ok
        if not have.any():
            continue
        begin = row_start + start
        offsets = np.zeros(len(texts) + 1, np.int64)
        np.cumsum(np.where(have, length, 0), out=offsets[1:])
        lens = offsets[1:] - offsets[:-1]
        idx = np.arange(offsets[-1], dtype=np.int64) + np.repeat(begin - offsets[:-1], lens)
        values = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), len(texts), [pa.py_buffer(np.packbits(have, bitorder="little")),
                                             pa.py_buffer(offsets), pa.py_buffer(data[idx].tobytes())])
        out.append((base, values.to_pylist()))
    return out


class _Found:
    """The matched rows of one regex: captured groups per name, and the fields the connection-id merge
    reads, per row (as :meth:`LogFilter._merge` derives them from the groups)."""

    __slots__ = ("pairs", "mlfid", "host", "user", "gained", "nofail", "forget")

    def __init__(self, pairs: list[tuple[str, list[bytes | None]]], n: int) -> None:
        self.pairs = pairs
        cols = dict(pairs)
        none: list[Any] = [None] * n
        self.mlfid = cols.get("mlfid")
        hosts = [cols.get(b) for b in ("ip4", "ip6", "dns")]
        hosts = [h for h in hosts if h is not None]
        if not hosts:
            self.host: list[str | None] = none
        else:
            self.host = [next((v for v in vs if v is not None), None) for vs in zip(*hosts, strict=True)]
            self.host = [v.decode("ascii", "replace") if v is not None else None for v in self.host]
        user, alt = cols.get("user", none), cols.get("alt_user", none)
        users = [u.decode("utf-8", "replace") if u is not None else None for u in user]
        self.user = [u if u else (a.decode("utf-8", "replace") if a is not None else None)
                     for u, a in zip(users, alt, strict=True)]
        flag = [False] * n

        def present(name: str) -> list[bool]:
            vals = cols.get(name)
            return flag if vals is None else [v is not None for v in vals]

        self.gained = present("mlfgained")
        self.nofail = [g or x for g, x in zip(self.gained, present("nofail"), strict=True)]
        self.forget = present("mlfforget")


def _groups(found: list[tuple[str, list[bytes | None]]], k: int) -> dict[str, bytes]:
    return {base: v for base, vals in found if (v := vals[k]) is not None}


def process_batch(flt: LogFilter, lines: list[bytes], plan: BatchPlan) -> list[LineResult]:
    """``[flt.process(line) for line in lines]``, with the regex work done per batch (see the module)."""
    out: list[LineResult] = []
    start = 0
    # the compiled loop makes a result per line and few other objects: the cyclic collector, which would walk
    # them (and everything else alive) every few hundred results, has nothing to find there; paused meanwhile
    collecting = plan.fast is not None and gc.isenabled()
    if collecting:
        gc.disable()
    try:
        while start < len(lines):
            try:
                start = _segment(flt, plan, lines, start, out)
            except pa.ArrowException as exc:
                # raised by the column work, before any line of the segment was applied: finish line by line
                # and stop batching for this filter (a pattern Arrow's RE2 will not take, its memory limit...)
                plan.ok = False
                plan.reason = f"Arrow: {exc}"
                out.extend(flt.process(line) for line in lines[start:])
                break
    finally:
        if collecting:
            gc.enable()
    return out


def _segment(flt: LogFilter, plan: BatchPlan, lines: list[bytes], start: int, out: list[LineResult]) -> int:
    seg = lines[start:]
    n = len(seg)
    fast = plan.fast
    col = _column(seg) if fast is None or plan.re2 is None else None  # the RE2 path reads the lines themselves
    if fast is not None:  # the same rows, found by the compiled module
        odd = np.frombuffer(fast.odd_rows(seg, MAX_LINE), np.uint8).astype(bool)
    else:
        odd = np.asarray(pc.match_substring_regex(col, _ODD))
        odd |= np.fromiter(map(len, seg), np.int64, n) > MAX_LINE
    dates = flt.dates
    template = dates._last
    pref = flt.prefregex
    dlens: list[Any] = [0] * n
    secs: list[Any] = [None] * n
    fracs: list[Any] = [None] * n
    heads: list[Any] = [0] * n
    regex = ""
    if dates.has_dates:
        tpl = plan.dates[template]
        if tpl is None:  # epoch / TAI64N dates: line by line
            for line in seg:
                out.append(flt.process(line))
            return len(lines)
        regex = f"^(?P<_dt>{tpl})"
    if pref is not None:
        regex = (regex or "^") + f"(?P<_h>{plan.head})"
    if fast is not None:
        if plan.re2 is not None:
            return _segment_re2(flt, plan, fast, lines, start, out, seg, odd)
        return _segment_fast(flt, plan, fast, lines, start, out, seg, col, odd, regex)
    if regex:
        spans = pc.extract_regex_span(col, regex)
        odd |= ~np.asarray(spans.is_valid())
        starts = np.zeros(n, np.int64)
        if dates.has_dates:
            dl = pc.list_element(pc.struct_field(spans, "_dt"), 1)
            dlens = dl.fill_null(0).to_pylist()
            starts += np.asarray(dl.fill_null(0), np.int64)
            if "(?P<_S>" in regex and dates._fast_sec[template] is not None:  # as DateParser's own cache
                secs = pc.list_element(pc.struct_field(spans, "_S"), 0).to_pylist()
            if "(?P<_f>" in regex:
                fracs = pc.list_element(pc.struct_field(spans, "_f"), 0).to_pylist()
        if pref is not None:
            hl = pc.list_element(pc.struct_field(spans, "_h"), 1).fill_null(0)
            heads = hl.to_pylist()
            starts += np.asarray(hl, np.int64)
        starts = np.minimum(starts, np.fromiter(map(len, seg), np.int64, n))
        content = _gather(col, starts)
    else:
        content = col
    todo = ~odd
    which, where, found = _match_column(content, todo, plan.fail)
    swhich, swhere, sfound = (_match_column(content, todo & (which < 0), plan.succ) if plan.succ
                              else (which, where, {}))
    which_l, where_l = which.tolist(), where.tolist()
    swhich_l, swhere_l = swhich.tolist(), swhere.tolist()
    odd_l = odd.tolist()
    probe = flt._probe
    memo = probe._memo if probe is not None else {}
    extra = probe._extra if probe is not None else 0
    ci = probe.content_index if probe is not None else -1
    c = flt.counts
    has_dates = dates.has_dates
    seen, minutes, remember = dates._seen, dates._minutes, dates._remember
    merge, decide, process, match_body = flt._merge, flt._decide, flt.process, flt._match_body
    merge_fields = flt._merge_fields
    # the prefregex gives no group the merge reads besides mlfid: then the merge's fields come from the
    # failregex's columns alone
    plain_pre = pref is None or not (set(n.split("__", 1)[0] for n in pref.groupindex) & (set(_USED) - {"mlfid"}))
    has_succ = bool(plan.succ)
    last_ts = flt._last_ts
    counted = 0
    ts: float | None = None
    for r in range(n):
        line = seg[r]
        if not odd_l[r] and has_dates:
            # DateParser.find's fast path, with the span Arrow found (the same template, the same engine
            # semantics): the epoch per date text, or per date text less its seconds, else find() itself
            dlen = dlens[r]
            ts = seen.get(line[:dlen])
            if ts is None:
                so = secs[r]
                if so is not None and fracs[r] is None:
                    base = minutes.get(line[:so] + b"\x00" + line[so + 2:dlen])
                    if base is not None:
                        sv = int(line[so:so + 2])
                        if sv <= 60:
                            ts = base + min(sv, 59)
                            remember(line[:dlen], ts)
                if ts is None:
                    found_date = dates.find(line)
                    if dates._last != template:  # cannot happen when both engines agree; be safe
                        c["lines"] += counted
                        flt._last_ts = last_ts
                        out.append(process(line))
                        return start + r + 1
                    if found_date is not None and found_date[0] == (0, dlen):
                        ts = found_date[1]
                    else:
                        odd_l[r] = True
        if odd_l[r]:
            c["lines"] += counted
            counted = 0
            flt._last_ts = last_ts
            out.append(process(line))
            last_ts = flt._last_ts
            if dates._last != template:  # the parser now tries another template first
                return start + r + 1
            continue
        counted += 1
        if has_dates:
            last_ts = ts
        text = line[dlens[r]:]
        pre: dict[str, bytes] | None = None
        body = text
        x: tuple[Any, ...] | None = None
        vectorised = True
        if pref is not None:
            e = heads[r]
            if e < len(text):
                hkey = text[:e + extra]
                pre = memo.get(hkey)
                if pre is not None:
                    body = text[e:]
            else:
                e = -1
            if pre is None:
                spans = pref.spans(text)
                if spans is None:
                    x = ("missed", ts)
                else:
                    pre = pref.groups_from(text, spans)
                    body = pre.pop("content", b"")
                    if e >= 0 and spans[ci][0] == e:
                        probe.remember(hkey, pre)  # type: ignore[union-attr]
                    else:
                        vectorised = False  # content starts elsewhere: match it here
        if x is None:
            if not vectorised:
                x = match_body(text, body, pre, ts)
            else:
                i = which_l[r]
                if i >= 0:
                    f, k = found[i], where_l[r]
                    mlfid = f.mlfid[k] if f.mlfid is not None else None
                    if mlfid is None and pre:
                        mlfid = pre.get("mlfid")
                    if mlfid is not None and plain_pre:  # the merge's fields, taken from the columns
                        res = merge_fields(mlfid, f.host[k], f.user[k], f.gained[k], f.nofail[k], f.forget[k], ts, i)
                    else:
                        g = dict(pre) if pre else {}
                        for base_name, vals in f.pairs:
                            v = vals[k]
                            if v is not None:
                                g[base_name] = v
                        mlfid = g.get("mlfid")
                        res = merge(mlfid, g, ts, i) if mlfid is not None else decide(("fail", ts, i, g))
                    c[res.status] += 1
                    out.append(res)
                    continue
                j = swhich_l[r] if has_succ else -1
                if j >= 0:
                    g = _groups(sfound[j].pairs, swhere_l[r])
                    x = ("success", ts, j, {**pre, **g} if pre else g)
                else:
                    x = ("missed", ts)
        res = decide(x)
        c[res.status] += 1
        out.append(res)
    c["lines"] += counted
    flt._last_ts = last_ts
    return len(lines)


def _segment_fast(flt: LogFilter, plan: BatchPlan, fast: Any, lines: list[bytes], start: int,
                  out: list[LineResult], seg: list[bytes], col: pa.LargeBinaryArray, odd: np.ndarray,
                  regex: str) -> int:
    """:func:`_segment` with the per-line loop compiled (:mod:`._fastlog`): the same column work, the
    captured fields as line offsets instead of Python values. The Python loop is the reference."""
    n = len(seg)
    dates = flt.dates
    pref = flt.prefregex
    dlens = np.zeros(n, np.int64)
    secs = np.full(n, -1, np.int64)
    fracs = np.zeros(n, np.uint8)
    heads = np.zeros(n, np.int64)
    starts = np.zeros(n, np.int64)
    if regex:
        spans = pc.extract_regex_span(col, regex)
        odd |= ~np.asarray(spans.is_valid())
        if dates.has_dates:
            dlens = np.asarray(pc.list_element(pc.struct_field(spans, "_dt"), 1).fill_null(0), np.int64)
            starts += dlens
            if "(?P<_S>" in regex and dates._fast_sec[dates._last] is not None:  # as DateParser's own cache
                secs = np.asarray(pc.list_element(pc.struct_field(spans, "_S"), 0).fill_null(-1), np.int64)
            if "(?P<_f>" in regex:
                fracs = np.asarray(pc.list_element(pc.struct_field(spans, "_f"), 0).is_valid(), np.uint8)
        if pref is not None:
            heads = np.asarray(pc.list_element(pc.struct_field(spans, "_h"), 1).fill_null(0), np.int64)
            starts += heads
        starts = np.minimum(starts, np.diff(np.frombuffer(col.buffers()[1], np.int64, n + 1)))
    todo = ~odd
    gpos = np.full((len(_USED), n), -1, np.int64)
    glen = np.zeros((len(_USED), n), np.int64)
    which, _, _ = _match_rows(fast, seg, starts, todo, plan.fail, (gpos, glen))
    if plan.succ:
        swhich, swhere, sfound = _match_rows(fast, seg, starts, todo & (which < 0), plan.succ)
    else:
        swhich, swhere, sfound = which, which, {}
    plain_pre = pref is None or not ({k.split("__", 1)[0] for k in pref.groupindex} & (set(_USED) - {"mlfid"}))
    odd_u8 = odd.astype(np.uint8)
    # the full prefregex, in one Arrow pass, on the lines whose head text is not remembered yet (the loop
    # would run it on each of them in Python); the loop still runs it itself for any other miss
    pstate = np.zeros(n, np.uint8)  # 0: not computed, 1: matched, 2: no match
    ppos = np.full((len(plan.pref_names), n), -1, np.int64)
    plen = np.zeros((len(plan.pref_names), n), np.int64)
    pcontent = np.full(n, -1, np.int64)  # where the group named "content" starts in the line
    if pref is not None and plan.pref is not None:
        probe = flt._probe
        idx = np.flatnonzero(fast.head_misses(seg, odd_u8, dlens, heads, probe._memo, probe._extra))
        if len(idx):
            sub = _gather(col.take(pa.array(idx)), dlens[idx])
            spans = pc.extract_regex_span(sub, plan.pref)
            valid = np.asarray(spans.is_valid())
            pstate[idx] = np.where(valid, 1, 2)
            rows = idx[valid]
            hit = spans.filter(pa.array(valid))
            for k, (_, names) in enumerate(plan.pref_names):
                _first_span(hit, names, rows, dlens, ppos[k], plen[k])
            cvalid, cpairs = _span_pairs(hit.field("content"))
            pcontent[rows[cvalid]] = dlens[rows[cvalid]] + cpairs[cvalid, 0]
    return fast.segment_loop(flt, seg, start, len(lines), odd_u8, dlens, secs, fracs, heads,
                             which, gpos, glen, swhich, swhere, sfound, plain_pre, bool(plan.succ), out, _groups,
                             pstate, ppos, plen, pcontent, [b for b, _ in plan.pref_names])


def _match_rows(fast: Any, seg: list[bytes], starts: np.ndarray, todo: np.ndarray, regexes: list[_Rx],
                positions: tuple[np.ndarray, np.ndarray] | None = None,
                ) -> tuple[np.ndarray, np.ndarray, dict[int, _Found]]:
    """:func:`_match_column` on the contents ``line[starts[r]:]``, with the rows each regex runs on chosen
    (first byte, literal) and copied into a column by the compiled module instead of Arrow's take/filter.
    With ``positions = (gpos, glen)`` the fields are written there as line offsets."""
    n = len(seg)
    which = np.full(n, -1, np.int64)
    where = np.full(n, -1, np.int64)
    found: dict[int, _Found] = {}
    remaining = todo.astype(np.uint8)
    for rx in regexes:
        rows_b, offs_b, data = fast.candidates(seg, starts, remaining, rx.first_flags, rx.lits_b)
        idx = np.frombuffer(rows_b, np.int64)
        if not len(idx):
            continue
        sub = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(idx),
                                               [None, pa.py_buffer(offs_b), pa.py_buffer(data)])
        spans = pc.extract_regex_span(sub, rx.pattern)
        valid = np.asarray(spans.is_valid())
        rows = idx[valid]
        if not len(rows):
            continue
        which[rows] = rx.index
        remaining[rows] = 0
        keep = pa.array(valid)
        hit = spans.filter(keep)
        if positions is not None:
            for base, names in rx.by_base.items():
                _first_span(hit, names, rows, starts, positions[0][_FIELD[base]], positions[1][_FIELD[base]])
        else:
            where[rows] = np.arange(len(rows))
            found[rx.index] = _Found(_values(rx, hit, sub.filter(keep)), len(rows))
    return which, where, found


class _SuccessRows:
    """The successregex matches of a batch on the RE2 path, read on demand: ``pairs`` for :func:`_success_groups`."""

    __slots__ = ("pairs",)

    def __init__(self, rx: Any, seg: list[bytes], starts: np.ndarray) -> None:
        self.pairs = (rx, seg, starts)


_USED_SET = frozenset(_USED)


def _success_groups(pairs: tuple[Any, list[bytes], np.ndarray], r: int) -> dict[str, bytes]:
    """The groups the decision reads of successregex ``rx`` on line ``r``'s content (as ``_groups`` of the
    Arrow path: of repeated names the first in group order that took part)."""
    rx, seg, starts = pairs
    body = seg[r][int(starts[r]):]
    spans = rx.spans(body)
    if spans is None:  # pragma: no cover - the same regex matched this text
        return {}
    return {base: body[sp[0]:sp[1]] for base, idx in rx._names if base in _USED_SET and (sp := spans[idx])[0] >= 0}


def _segment_re2(flt: LogFilter, plan: BatchPlan, fast: Any, lines: list[bytes], start: int,
                 out: list[LineResult], seg: list[bytes], odd: np.ndarray) -> int:
    """:func:`_segment_fast` with the regex work done by RE2 called per line from the compiled module
    (:func:`._fastlog.re2_batch`) instead of Arrow's kernels over columns: the same patterns, the same
    arrays for the same compiled loop."""
    n = len(seg)
    dates = flt.dates
    pref = flt.prefregex
    template = dates._last if dates.has_dates else -1
    want_secs = dates.has_dates and dates._fast_sec[template] is not None
    dlens = np.zeros(n, np.int64)
    secs = np.full(n, -1, np.int64)
    fracs = np.zeros(n, np.uint8)
    heads = np.zeros(n, np.int64)
    starts = np.zeros(n, np.int64)
    which = np.full(n, -1, np.int64)
    gpos = np.full((len(_USED), n), -1, np.int64)
    glen = np.zeros((len(_USED), n), np.int64)
    swhich = np.full(n, -1, np.int64)
    npn = len(plan.pref_names)
    pstate = np.zeros(n, np.uint8)
    ppos = np.full((npn, n), -1, np.int64)
    plen = np.zeros((npn, n), np.int64)
    pcontent = np.full(n, -1, np.int64)
    probe = flt._probe
    memo, extra = (probe._memo, probe._extra) if probe is not None else ({}, 0)
    odd_u8 = odd.astype(np.uint8)
    hkeys: list[bytes | None] = [None] * n
    fast.re2_batch(plan.re2, seg, template, want_secs, odd_u8, dlens, secs, fracs, heads, starts, which, gpos,
                   glen, swhich, memo, extra, pstate, ppos, plen, pcontent, hkeys)
    sfound = {r.index: _SuccessRows(flt.successregex[r.index], seg, starts) for r in plan.succ}
    plain_pre = pref is None or not ({k.split("__", 1)[0] for k in pref.groupindex} & (set(_USED) - {"mlfid"}))
    return fast.segment_loop(flt, seg, start, len(lines), odd_u8, dlens, secs, fracs, heads,
                             which, gpos, glen, swhich, np.arange(n, dtype=np.int64), sfound, plain_pre,
                             bool(plan.succ), out, _success_groups, pstate, ppos, plen, pcontent,
                             [b for b, _ in plan.pref_names], hkeys)
