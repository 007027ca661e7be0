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

from fsbrain.domains.host.logparse import MLFID_CACHE, MLFID_MAX_AGE, LineResult, _Conn

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
cdef object _NewConn = _Conn


cdef inline bytes _cut(bytes line, int64_t pos, int64_t n):
    return line[pos:pos + n]


cdef object merge_fields(object conns, bytes mlfid, object host, object user, bint gained, bint nofail,
                         bint forget, object ts, object idx):
    """LogFilter._merge_fields, line for line."""
    cdef object conn = conns.get(mlfid)
    cdef list users
    cdef object result, chost
    if conn is None:
        conn = _NewConn()
    elif ts is not None and conn.seen is not None and ts - conn.seen > MAX_AGE:
        conn = _NewConn()  # a stale connection id: start afresh
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
            result = _LineResult("nofail", None, user, ts, idx)
        else:
            result = _LineResult("failure", chost, user or (users[len(users) - 1] if users else None), ts, idx, None,
                                 conn.nofail + 1)
            conn.nofail = 0
    elif conn.pending and conn.host is not None:
        conn.pending = False
        result = _LineResult("failure", conn.host, conn.pending_user or user, ts, idx, None, conn.nofail + 1)
        conn.nofail = 0
    elif gained:
        result = _LineResult("success", conn.host, user, ts, idx)
    else:
        conn.nofail += 1
        result = _LineResult("nofail", conn.host, user, ts, idx)
    if forget:
        conns.pop(mlfid, None)
    else:
        conns[mlfid] = conn
        if len(conns) > CACHE:
            conns.popitem(last=False)
    return result


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
                            remember(line[:dl], ts)
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
                        probe.remember(hkey, pre)
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
                    res = merge_fields(conns, mlfid, host, user, gained, nofail, forget, ts, i)
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
                x = ("missed", ts)
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
