# cython: language_level=3, boundscheck=False, wraparound=False, infer_types=False
"""Compiled per-line loop of the batch path (optional).

:func:`segment_loop` is a port of the per-line loop of
:func:`fsbrain.domains.host.logparse_batch._segment` (dates from the caches, the prefregex head memo, the
connection-id merge of :meth:`fsbrain.domains.host.logparse.LogFilter._merge_fields`, result objects). The
pure-Python loop stays the reference and the fallback (used when this extension is not built, or with
``FSBRAIN_SPEEDUPS=0``). Everything that is rare or stateful beyond the loop (lines that go through
``LogFilter.process``, dates not cached yet, the full prefregex on a new head, generic decisions) calls the
same Python methods as the reference, so both give the same results and counts by construction;
``tests/host/test_bf_fastlog.py`` compares them.

Captured groups arrive as two ``int64`` arrays ``gpos``/``glen`` of shape ``(len(FIELDS), n)``: the
absolute byte offset in the line and the length of each field the decision reads (``-1``: the group took
no part), so no Python object is made for a group nobody reads.
"""

from libc.stdint cimport int64_t
from libc.string cimport memcpy


cdef extern from "string.h" nogil:
    void* memmem(const void* haystack, size_t haystacklen, const void* needle, size_t needlelen)

from fsbrain.domains.host.dates import MONTHS
from fsbrain.domains.host.logparse import MLFID_CACHE, MLFID_MAX_AGE, LineResult

# row of each field in gpos / glen (logparse_batch.FIELDS)
cdef enum:
    F_MLFID = 0
    F_MLFGAINED = 1
    F_MLFFORGET = 2
    F_NOFAIL = 3
    F_IP4 = 4
    F_IP6 = 5
    F_DNS = 6
    F_FID = 7
    F_USER = 8
    F_ALT_USER = 9
    NFIELDS = 10

FIELDS = ("mlfid", "mlfgained", "mlfforget", "nofail", "ip4", "ip6", "dns", "fid", "user", "alt_user")

cdef double MAX_AGE = MLFID_MAX_AGE
cdef Py_ssize_t CACHE = MLFID_CACHE
cdef object _LineResult = LineResult
cdef object _object_new = object.__new__


cdef inline object _result(str status, object host, object user, object ts, object regex, object fid=None,
                           object attempts=1):
    """``LineResult(status, host, user, ts, regex, fid, attempts)`` without the dataclass ``__init__`` call."""
    cdef object r = _object_new(_LineResult)
    r.status = status
    r.host = host
    r.user = user
    r.time = ts
    r.regex = regex
    r.fid = fid
    r.attempts = attempts
    return r


cdef inline bytes _cut(bytes line, int64_t pos, int64_t n):
    return line[pos:pos + n]


cdef class Conn:
    """:class:`fsbrain.domains.host.logparse._Conn` with its fields in a C struct (same names, same values;
    the Python code reads and writes them as attributes). Filters running the compiled loop make these."""

    cdef public object host
    cdef public list users
    cdef public object nofail
    cdef public object pending
    cdef public object pending_user
    cdef public object seen

    def __init__(self):
        self.host = None
        self.users = []
        self.nofail = 0
        self.pending = False
        self.pending_user = None
        self.seen = None


cdef object merge_fields(object flt, object conns, bytes mlfid, object host, object user, bint gained,
                         bint nofail, bint forget, object ts, object idx):
    """LogFilter._merge_fields, line for line (a connection made by the Python code: that code itself)."""
    cdef object found = conns.get(mlfid)
    cdef Conn conn
    cdef list users
    cdef object result, chost
    if found is None:
        conn = Conn.__new__(Conn)
        conn.users = []
        conn.nofail = 0
        conn.pending = False
    elif type(found) is not Conn:
        return flt._merge_fields(mlfid, host, user, gained, nofail, forget, ts, idx)
    else:
        conn = <Conn>found
        if ts is not None and conn.seen is not None and ts - conn.seen > MAX_AGE:
            conn = Conn.__new__(Conn)  # a stale connection id: start afresh
            conn.users = []
            conn.nofail = 0
            conn.pending = False
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
        nofail = False
    if not nofail:
        chost = conn.host
        if chost is None:
            conn.pending = True
            conn.pending_user = user
            result = _result("nofail", None, user, ts, idx)
        else:
            result = _result("failure", chost, user or (users[len(users) - 1] if users else None), ts, idx, None,
                             conn.nofail + 1)
            conn.nofail = 0
    elif conn.pending and conn.host is not None:
        conn.pending = False
        result = _result("failure", conn.host, conn.pending_user or user, ts, idx, None, conn.nofail + 1)
        conn.nofail = 0
    elif gained:
        result = _result("success", conn.host, user, ts, idx)
    else:
        conn.nofail += 1
        result = _result("nofail", conn.host, user, ts, idx)
    if forget:
        conns.pop(mlfid, None)
    else:
        conns[mlfid] = conn
        if len(conns) > CACHE:
            conns.popitem(last=False)
    return result


cdef inline long _digits(bytes line, object span) except -2:
    """The decimal number in ``line[span]`` (only ASCII digits; -1 when the span is empty or not digits)."""
    cdef Py_ssize_t a = span[0], b = span[1], k
    cdef const unsigned char* p = line
    cdef long v = 0
    if a < 0 or b <= a or b - a > 9:
        return -1
    for k in range(a, b):
        if p[k] < 48 or p[k] > 57:
            return -1
        v = v * 10 + (p[k] - 48)
    return v


cdef object _date_miss(object dates, object template, bytes line, int64_t dl, dict seen, dict minutes):
    """``DateParser.find(line)[1]`` for its fast path's common case (built-in template ``template`` matching at
    the line start over ``dl`` bytes, neither text cached, no fraction, 12-hour clock or epoch, the hour's
    start already cached), with the same cache updates; ``None`` (and nothing changed) otherwise, and the
    caller runs ``find`` itself."""
    cdef object m, gi, sp, zone_text, base, ts, mkey, sec
    cdef long day, hour, minute, second, month, year
    cdef bytes text, mon
    m = dates._fast[template].match(line)
    if m is None:
        return None
    sp = m.span(1)
    if sp[0] != 0 or sp[1] != dl or dates._fast_e[template]:
        return None
    gi = m.re.groupindex
    sec = dates._fast_sec[template]
    if sec is None or (sec[1] and m.start(sec[1]) >= 0) or ("p" in gi and m.start("p") >= 0):
        return None
    if "d" not in gi or "H" not in gi or "S" not in gi or "M" not in gi:
        return None
    ss, se = m.span(sec[0])
    mkey = line[:ss] + b"\x00" + line[se:dl]
    if minutes.get(mkey) is not None:  # find's per-minute cache answers (or refuses): let it
        return None
    day = _digits(line, m.span("d"))
    hour = _digits(line, m.span("H"))
    minute = _digits(line, m.span("M"))
    second = _digits(line, m.span("S"))
    if day < 0 or hour < 0 or minute < 0 or second < 0 or minute >= 60 or second > 60:
        return None
    if "m" in gi and m.start("m") >= 0:
        month = _digits(line, m.span("m"))
        if month < 0:
            return None
    elif "b" in gi and m.start("b") >= 0:
        mon = m.group("b")
        month = MONTHS.get(mon[:3].lower().decode(), -1)
        if month < 0:
            return None
    else:
        return None
    year = 0
    if "Y" in gi and m.start("Y") >= 0:
        year = _digits(line, m.span("Y"))
    elif "y" in gi and m.start("y") >= 0:
        year = _digits(line, m.span("y"))
        year = 2000 + year if year >= 0 else -1
    if year < 0:
        return None
    zone_text = m.group("z") if "z" in gi else None
    base = dates._hours.get((year, month, day, hour, zone_text))
    if base is None:
        return None
    # DateParser._to_epoch: base + minute * 60 + min(sec, 59) + frac (no fraction here)
    ts = base + minute * 60 + (second if second < 59 else 59) + 0.0
    text = line[:dl]
    if len(seen) >= 4096:  # DateParser._remember
        seen.clear()
    seen[text] = ts
    if len(minutes) >= 4096:
        minutes.clear()
    minutes[mkey] = ts - (second if second < 59 else 59)
    return ts


def segment_loop(object flt, list seg, Py_ssize_t start, Py_ssize_t total, unsigned char[:] odd,
                 const int64_t[:] dlens, const int64_t[:] secs, const unsigned char[:] fracs,
                 const int64_t[:] heads, const int64_t[:] which, const int64_t[:, :] gpos,
                 const int64_t[:, :] glen, const int64_t[:] swhich, const int64_t[:] swhere, object sfound,
                 bint plain_pre, bint has_succ, list out, object groups_of, const unsigned char[:] pstate,
                 const int64_t[:, :] ppos, const int64_t[:, :] plen, const int64_t[:] pcontent, list pnames):
    """The per-line loop of ``logparse_batch._segment`` (see there); returns where the next segment starts."""
    cdef Py_ssize_t n = len(seg), r
    cdef Py_ssize_t counted = 0
    cdef int64_t dl, e, so, mp, hp, L, hend
    cdef int sv, extra = 0, ci = -1
    cdef Py_ssize_t max_memo = 0
    cdef long i, j
    cdef bint has_dates, vectorised, gained, nofail, forget
    cdef bytes line, hkey = b"", text, body, mlfid
    cdef const unsigned char* p
    cdef object ts = None, base, found_date, x, pre, res, spans, host, user, v, g
    cdef dict c = flt.counts
    cdef dict seen, minutes, memo
    cdef object dates = flt.dates
    cdef object template = dates._last
    cdef object pref = flt.prefregex
    cdef object probe = flt._probe
    cdef object conns = flt._conns
    cdef object remember = dates._remember
    cdef object merge = flt._merge, decide = flt._decide, process = flt.process, match_body = flt._match_body
    cdef object last_ts = flt._last_ts
    has_dates = dates.has_dates
    seen = dates._seen
    minutes = dates._minutes
    memo = probe._memo if probe is not None else {}
    if probe is not None:
        extra = probe._extra
        ci = probe.content_index
        max_memo = probe.MAX_MEMO
    for r in range(n):
        line = <bytes>seg[r]
        L = len(line)
        if not odd[r] and has_dates:
            dl = dlens[r]
            ts = seen.get(line[:dl])
            if ts is None:
                so = secs[r]
                if so >= 0 and not fracs[r]:
                    base = minutes.get(line[:so] + b"\x00" + line[so + 2:dl])
                    if base is not None:
                        p = line
                        sv = (p[so] - 48) * 10 + (p[so + 1] - 48)  # \d{2}
                        if sv <= 60:
                            ts = base + (sv if sv < 59 else 59)
                            if len(seen) >= 4096:  # DateParser._remember
                                seen.clear()
                            seen[line[:dl]] = ts
                if ts is None:
                    ts = _date_miss(dates, template, line, dl, seen, minutes)
                if ts is None:
                    found_date = dates.find(line)
                    if dates._last != template:  # cannot happen when both engines agree; be safe
                        c["lines"] += counted
                        flt._last_ts = last_ts
                        out.append(process(line))
                        return start + r + 1
                    if found_date is not None and found_date[0] == (0, dl):
                        ts = found_date[1]
                    else:
                        odd[r] = 1
        if odd[r]:
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
        dl = dlens[r]
        pre = None
        x = None
        vectorised = True
        if pref is not None:
            e = heads[r]
            if e < L - dl:
                hend = dl + e + extra
                if hend > L:
                    hend = L
                hkey = line[dl:hend]
                pre = memo.get(hkey)
            else:
                e = -1
            if pre is None and pstate[r] != 0:  # the full prefregex, from the Arrow pass
                if pstate[r] == 2:
                    x = ("missed", ts)
                else:
                    pre = {}
                    for j in range(len(pnames)):
                        hp = ppos[j, r]
                        if hp >= 0:
                            pre[pnames[j]] = _cut(line, hp, plen[j, r])
                    body = pre.pop("content", b"")
                    if e >= 0 and pcontent[r] - dl == e:
                        if len(memo) >= max_memo:  # PrefixProbe.remember
                            memo.clear()
                        memo[hkey] = pre
                    else:
                        vectorised = False  # content starts elsewhere: match it here
                        x = match_body(line[dl:], body, pre, ts)
            elif pre is None:
                text = line[dl:]
                spans = pref.spans(text)
                if spans is None:
                    x = ("missed", ts)
                else:
                    pre = pref.groups_from(text, spans)
                    body = pre.pop("content", b"")
                    if e >= 0 and spans[ci][0] == e:
                        probe.remember(hkey, pre)
                    else:
                        vectorised = False  # content starts elsewhere: match it here
                        x = match_body(text, body, pre, ts)
        if x is None:
            i = which[r]
            if i >= 0:
                mp = gpos[F_MLFID, r]
                if mp >= 0:
                    mlfid = _cut(line, mp, glen[F_MLFID, r])
                elif pre:
                    mlfid = pre.get("mlfid")
                else:
                    mlfid = None
                if mlfid is not None and plain_pre:  # the merge's fields, from the columns
                    host = None
                    hp = gpos[F_IP4, r]
                    if hp >= 0:
                        host = _cut(line, hp, glen[F_IP4, r]).decode("ascii", "replace")
                    else:
                        hp = gpos[F_IP6, r]
                        if hp >= 0:
                            host = _cut(line, hp, glen[F_IP6, r]).decode("ascii", "replace")
                        else:
                            hp = gpos[F_DNS, r]
                            if hp >= 0:
                                host = _cut(line, hp, glen[F_DNS, r]).decode("ascii", "replace")
                    user = None
                    hp = gpos[F_USER, r]
                    if hp >= 0:
                        user = _cut(line, hp, glen[F_USER, r]).decode("utf-8", "replace")
                    if not user:
                        hp = gpos[F_ALT_USER, r]
                        user = _cut(line, hp, glen[F_ALT_USER, r]).decode("utf-8", "replace") if hp >= 0 else None
                    gained = gpos[F_MLFGAINED, r] >= 0
                    nofail = gained or gpos[F_NOFAIL, r] >= 0
                    forget = gpos[F_MLFFORGET, r] >= 0
                    res = merge_fields(flt, conns, mlfid, host, user, gained, nofail, forget, ts, i)
                else:
                    g = dict(pre) if pre else {}
                    for j in range(NFIELDS):
                        hp = gpos[j, r]
                        if hp >= 0:
                            g[FIELDS[j]] = _cut(line, hp, glen[j, r])
                    v = g.get("mlfid")
                    res = merge(v, g, ts, i) if v is not None else decide(("fail", ts, i, g))
                c[res.status] += 1
                out.append(res)
                continue
            j = swhich[r] if has_succ else -1
            if j >= 0:
                g = groups_of(sfound[j].pairs, swhere[r])
                x = ("success", ts, j, {**pre, **g} if pre else g)
            else:
                res = _result("missed", None, None, ts, None)  # LogFilter._decide of ("missed", ts)
                c["missed"] += 1
                out.append(res)
                continue
        res = decide(x)
        c[res.status] += 1
        out.append(res)
    c["lines"] += counted
    flt._last_ts = last_ts
    return total


def head_misses(list seg, const unsigned char[:] odd, const int64_t[:] dlens, const int64_t[:] heads,
                dict memo, int extra):
    """Per line (uint8): 1 where the loop will need the full prefregex as the batch starts: the head text
    is not remembered (nor seen earlier in the batch), or the head leaves no content."""
    cdef Py_ssize_t n = len(seg), r
    cdef int64_t dl, e, L, hend
    cdef bytes line, key
    cdef set seen = set()
    out = bytearray(n)
    cdef unsigned char[:] o = out
    for r in range(n):
        if odd[r]:
            continue
        line = <bytes>seg[r]
        L = len(line)
        dl = dlens[r]
        e = heads[r]
        if e < L - dl:
            hend = dl + e + extra
            if hend > L:
                hend = L
            key = line[dl:hend]
            if key in memo or key in seen:
                continue
            seen.add(key)
        o[r] = 1
    return out


def candidates(list seg, const int64_t[:] starts, const unsigned char[:] remaining, object first,
               tuple lits):
    """The rows a regex must run on (as ``logparse_batch._match_column`` chooses them): still unmatched,
    content (``line[starts[r]:]``) starting with a byte in ``first`` (256 flags, or ``None``: any) and
    containing one of ``lits`` (empty: no literal needed). Returns ``(rows, offsets, data)``: the rows and
    their contents as a large-binary column's buffers."""
    cdef Py_ssize_t n = len(seg), r, k = 0, nl = len(lits), q, total = 0
    cdef int64_t st, L
    cdef bytes line, lit
    cdef const unsigned char* p
    cdef const unsigned char* fl = NULL
    cdef bytes firsts
    cdef bint ok
    if first is not None:
        firsts = first
        fl = firsts
    rows_b = bytearray(n * 8)
    cdef int64_t[:] rows = memoryview(rows_b).cast("q")
    for r in range(n):
        if not remaining[r]:
            continue
        line = <bytes>seg[r]
        L = len(line)
        st = starts[r]
        p = line
        if fl != NULL and (st >= L or not fl[p[st]]):
            continue
        if nl:
            ok = False
            for q in range(nl):
                lit = <bytes>lits[q]
                if L - st >= len(lit) and memmem(p + st, L - st, <const char*>lit, len(lit)) != NULL:
                    ok = True
                    break
            if not ok:
                continue
        rows[k] = r
        k += 1
        total += L - st
    offs_b = bytearray((k + 1) * 8)
    cdef int64_t[:] offs = memoryview(offs_b).cast("q")
    data = bytearray(total)
    cdef unsigned char* d = data
    cdef int64_t pos = 0
    offs[0] = 0
    for q in range(k):
        line = <bytes>seg[rows[q]]
        st = starts[rows[q]]
        L = len(line)
        p = line
        memcpy(d + pos, p + st, L - st)
        pos += L - st
        offs[q + 1] = pos
    return rows_b[:k * 8], offs_b, data


def odd_rows(list seg, Py_ssize_t max_line):
    """Per line (uint8): 1 where it is longer than ``max_line`` or has a byte over 0x7F or a line break
    (``logparse_batch._ODD``): those lines go through ``LogFilter.process``."""
    cdef Py_ssize_t n = len(seg), r, k, L
    cdef bytes line
    cdef const unsigned char* p
    out = bytearray(n)
    cdef unsigned char[:] o = out
    for r in range(n):
        line = <bytes>seg[r]
        L = len(line)
        if L > max_line:
            o[r] = 1
            continue
        p = line
        for k in range(L):
            if p[k] >= 0x80 or p[k] == 10:
                o[r] = 1
                break
    return out
