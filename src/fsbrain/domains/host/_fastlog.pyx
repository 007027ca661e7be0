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

cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy


cdef extern from "string.h" nogil:
    void* memmem(const void* haystack, size_t haystacklen, const void* needle, size_t needlelen)


# RE2 called directly (C++), when the build found RE2's headers and library (setup.py defines
# FSBRAIN_HAVE_RE2 and compiles this module as C++); otherwise stubs, and batches use Arrow's kernels.
cdef extern from *:
    """
    #include <stdint.h>
    #include <stddef.h>
    #ifdef FSBRAIN_HAVE_RE2
    #include <re2/re2.h>
    #include <string>
    #define FBRE_MAXSUB 64
    static int fbre_available(void) { return 1; }
    static void* fbre_compile(const char* pat, Py_ssize_t n, int64_t max_mem) {
        RE2::Options o;
        o.set_log_errors(false);
        o.set_max_mem(max_mem);
        RE2* r = new RE2(re2::StringPiece(pat, (size_t)n), o);
        if (!r->ok()) { delete r; return NULL; }
        return (void*)r;
    }
    static void fbre_free(void* r) { delete (RE2*)r; }
    static int fbre_groups(void* r) { return ((RE2*)r)->NumberOfCapturingGroups(); }
    static int fbre_group_index(void* r, const char* name) {
        const std::map<std::string, int>& m = ((RE2*)r)->NamedCapturingGroups();
        std::map<std::string, int>::const_iterator it = m.find(std::string(name));
        return it == m.end() ? -1 : it->second;
    }
    /* RE2::Match on text[0:n] (anchor 1: at its start, 2: the whole text); the spans of groups 0..nsub-1 as (start, end)
       pairs in out, -1 for a group that took no part. 1: matched, 0: no match, -1: nsub too large. */
    template <int N>
    static int fbre_match_n(void* r, const char* text, Py_ssize_t n, int anchor, int nsub, int64_t* out) {
        re2::StringPiece m[N];  /* as few as the call needs: they are initialised on every call */
        if (!((RE2*)r)->Match(re2::StringPiece(text, (size_t)n), 0, (size_t)n,
                              anchor == 2 ? RE2::ANCHOR_BOTH : anchor ? RE2::ANCHOR_START : RE2::UNANCHORED, m, nsub)) return 0;
        for (int k = 0; k < nsub; k++) {
            if (m[k].data() == NULL) { out[2 * k] = -1; out[2 * k + 1] = -1; }
            else { out[2 * k] = (int64_t)(m[k].data() - text); out[2 * k + 1] = out[2 * k] + (int64_t)m[k].size(); }
        }
        return 1;
    }
    static int fbre_match(void* r, const char* text, Py_ssize_t n, int anchor, int nsub, int64_t* out) {
        if (nsub <= 1) return fbre_match_n<1>(r, text, n, anchor, nsub, out);
        if (nsub <= 8) return fbre_match_n<8>(r, text, n, anchor, nsub, out);
        if (nsub <= 24) return fbre_match_n<24>(r, text, n, anchor, nsub, out);
        if (nsub <= FBRE_MAXSUB) return fbre_match_n<FBRE_MAXSUB>(r, text, n, anchor, nsub, out);
        return -1;
    }
    #else
    #define FBRE_MAXSUB 64
    static int fbre_available(void) { return 0; }
    static void* fbre_compile(const char* pat, Py_ssize_t n, int64_t max_mem) { (void)pat; (void)n; (void)max_mem; return NULL; }
    static void fbre_free(void* r) { (void)r; }
    static int fbre_groups(void* r) { (void)r; return -1; }
    static int fbre_group_index(void* r, const char* name) { (void)r; (void)name; return -1; }
    static int fbre_match(void* r, const char* text, Py_ssize_t n, int anchor, int nsub, int64_t* out) {
        (void)r; (void)text; (void)n; (void)anchor; (void)nsub; (void)out; return -1;
    }
    #endif
    """
    int FBRE_MAXSUB
    int fbre_available()
    void* fbre_compile(const char* pat, Py_ssize_t n, int64_t max_mem)
    void fbre_free(void* r)
    int fbre_groups(void* r)
    int fbre_group_index(void* r, const char* name)
    int fbre_match(void* r, const char* text, Py_ssize_t n, int anchor, int nsub, int64_t* out) nogil

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
cdef str _S_FAILURE = "failure", _S_NOFAIL = "nofail", _S_MISSED = "missed", _S_SUCCESS = "success"


cdef extern from *:
    """
    #include "structmember.h"
    /* the byte offset of a __slots__ member in its instances (-1: not a plain member descriptor) */
    static Py_ssize_t fsb_slot_offset(PyObject* descr) {
        if (Py_TYPE(descr) != &PyMemberDescr_Type) return -1;
        PyMemberDef* m = ((PyMemberDescrObject*)descr)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) return -1;
        return m->offset;
    }
    /* a new, empty instance of type tp (what object.__new__ makes): a new reference, NULL on error */
    static PyObject* fsb_alloc(PyObject* tp) { return ((PyTypeObject*)tp)->tp_alloc((PyTypeObject*)tp, 0); }
    /* whether the cyclic collector tracks instances of tp */
    static int fsb_is_gc(PyObject* tp) { return PyType_IS_GC((PyTypeObject*)tp); }
    """
    Py_ssize_t fsb_slot_offset(object descr)
    PyObject* fsb_alloc(object tp)
    int fsb_is_gc(object tp)
    void PyObject_GC_UnTrack(void* op)


# LineResult's slots, in the order _result fills them (their offsets, when it is the plain slots class
# it is; otherwise results are made through setattr)
_SLOTS = ("status", "host", "user", "time", "regex", "fid", "attempts")
cdef Py_ssize_t _off[7]
cdef bint _direct = True
for _k, _name in enumerate(_SLOTS):
    _off[_k] = fsb_slot_offset(LineResult.__dict__.get(_name))
    if _off[_k] < 0:
        _direct = False
if type(LineResult).__new__ is not type.__new__ or LineResult.__new__ is not object.__new__:
    _direct = False
if tuple(getattr(LineResult, "__slots__", ())) != _SLOTS:  # a field added or renamed: fill it the ordinary way
    _direct = False
cdef bint _untrack = _direct and fsb_is_gc(LineResult)
DIRECT_RESULTS = _direct  # whether results are made by storing their slots directly (tests)


cdef inline void _put(PyObject* o, Py_ssize_t off, object v):
    Py_INCREF(v)
    (<PyObject**>((<char*>o) + off))[0] = <PyObject*>v


cdef inline object _result(str status, object host, object user, object ts, object regex, object fid=None,
                           object attempts=1):
    """``LineResult(status, host, user, ts, regex, fid, attempts)`` without the dataclass ``__init__`` call:
    a fresh instance from the type's allocator with its seven slots stored directly (what ``object.__new__``
    and the slot descriptors do, less the attribute look-ups)."""
    cdef PyObject* o
    cdef object r
    if not _direct:  # LineResult is not the plain slots class this expects: its own constructor
        return _LineResult(status, host, user, ts, regex, fid, attempts)
    o = fsb_alloc(_LineResult)
    if o == NULL:
        raise MemoryError()
    _put(o, _off[0], status)
    _put(o, _off[1], host)
    _put(o, _off[2], user)
    _put(o, _off[3], ts)
    _put(o, _off[4], regex)
    _put(o, _off[5], fid)
    _put(o, _off[6], attempts)
    if _untrack:
        # its fields are text, numbers and None, which cannot reach it back: nothing for the cyclic collector
        # to walk (as CPython does for tuples and dicts of atomic values)
        PyObject_GC_UnTrack(o)
    r = <object>o
    Py_DECREF(r)
    return r


cdef inline bytes _cut(bytes line, int64_t pos, int64_t n):
    """``line[pos:pos + n]`` (0 <= pos, pos + n <= len(line)) without a slice object."""
    return PyBytes_FromStringAndSize((<const char*>line) + pos, n)


cdef inline bytes _minute_key(bytes line, int64_t so, int64_t dl):
    """``line[:so] + b"\\x00" + line[so + 2:dl]`` (the per-minute cache key of a date text) in one allocation."""
    cdef bytes k = PyBytes_FromStringAndSize(NULL, dl - 1)
    cdef char* d = PyBytes_AS_STRING(k)
    cdef const char* p = line
    memcpy(d, p, so)
    d[so] = 0
    memcpy(d + so + 1, p + so + 2, dl - so - 2)
    return k


@cython.no_gc
cdef class Conn:
    """:class:`fsbrain.domains.host.logparse._Conn` with its fields in a C struct (same names, same values;
    the Python code reads and writes them as attributes). Filters running the compiled loop make these.

    Its fields hold text, numbers, booleans and a list of text, which cannot lead back to it: the cyclic
    collector need not walk the (up to ``MLFID_CACHE``) live connections."""

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


cdef class _ConnOps:
    """The connection table's bound methods, looked up once per batch instead of once per line."""

    cdef object get, move_to_end, pop

    def __init__(self, conns):
        self.get = conns.get
        self.move_to_end = conns.move_to_end
        self.pop = conns.pop


cdef object merge_fields(object flt, object conns, _ConnOps ops, bytes mlfid, object host, object user, bint gained,
                         bint nofail, bint forget, object ts, object idx):
    """LogFilter._merge_fields, line for line (a connection made by the Python code: that code itself)."""
    cdef object found = ops.get(mlfid)
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
            ops.move_to_end(mlfid)
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
        ops.pop(mlfid, None)
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
                 const int64_t[:, :] ppos, const int64_t[:, :] plen, const int64_t[:] pcontent, list pnames,
                 list hkeys=None):
    """The per-line loop of ``logparse_batch._segment`` (see there); returns where the next segment starts.
    ``hkeys``: per line its prefregex head text, where :func:`re2_batch` made it (else ``None``)."""
    cdef Py_ssize_t tally[4]  # failure, nofail, missed, success: results counted here, added to counts at the end
    tally[0] = tally[1] = tally[2] = tally[3] = 0
    try:
        return _segment_loop(flt, seg, start, total, odd, dlens, secs, fracs, heads, which, gpos, glen, swhich,
                             swhere, sfound, plain_pre, has_succ, out, groups_of, pstate, ppos, plen, pcontent,
                             pnames, hkeys, tally)
    finally:
        c = flt.counts
        if tally[0]:
            c["failure"] += tally[0]
        if tally[1]:
            c["nofail"] += tally[1]
        if tally[2]:
            c["missed"] += tally[2]
        if tally[3]:
            c["success"] += tally[3]


cdef inline void _count(dict c, object res, Py_ssize_t* tally) except *:
    """One more result of ``res.status`` in ``c``; the common statuses in ``tally`` (added to ``c`` when the loop
    ends)."""
    cdef object st = res.status
    if st is _S_FAILURE:
        tally[0] += 1
    elif st is _S_NOFAIL:
        tally[1] += 1
    elif st is _S_MISSED:
        tally[2] += 1
    elif st is _S_SUCCESS:
        tally[3] += 1
    else:
        c[st] += 1


cdef inline object _ascii(bytes line, int64_t pos, int64_t n):
    """``line[pos:pos + n].decode("ascii", "replace")`` without the intermediate bytes."""
    return PyUnicode_DecodeASCII((<const char*>line) + pos, n, "replace")


cdef inline object _utf8(bytes line, int64_t pos, int64_t n):
    """``line[pos:pos + n].decode("utf-8", "replace")`` without the intermediate bytes."""
    return PyUnicode_DecodeUTF8((<const char*>line) + pos, n, "replace")


cdef object _segment_loop(object flt, list seg, Py_ssize_t start, Py_ssize_t total, unsigned char[:] odd,
                          const int64_t[:] dlens, const int64_t[:] secs, const unsigned char[:] fracs,
                          const int64_t[:] heads, const int64_t[:] which, const int64_t[:, :] gpos,
                          const int64_t[:, :] glen, const int64_t[:] swhich, const int64_t[:] swhere,
                          object sfound, bint plain_pre, bint has_succ, list out, object groups_of,
                          const unsigned char[:] pstate, const int64_t[:, :] ppos, const int64_t[:, :] plen,
                          const int64_t[:] pcontent, list pnames, list hkeys, Py_ssize_t* tally):
    cdef Py_ssize_t n = len(seg), r
    cdef Py_ssize_t counted = 0
    cdef int64_t dl, e, so, mp, hp, L, hend
    cdef int sv, extra = 0, ci = -1
    cdef Py_ssize_t max_memo = 0
    cdef long i, j
    cdef bint has_dates, vectorised, gained, nofail, forget
    cdef bytes line, hkey = b"", text, body, mlfid
    cdef const unsigned char* p
    cdef object ts = None, base, found_date, x, pre, res, spans, host, user, v, g, hk
    cdef dict c = flt.counts
    cdef dict seen, minutes, memo
    cdef object dates = flt.dates
    cdef object template = dates._last
    cdef object pref = flt.prefregex
    cdef object probe = flt._probe
    cdef object conns = flt._conns
    cdef _ConnOps ops = _ConnOps(conns)
    cdef object remember = dates._remember
    cdef object merge = flt._merge, decide = flt._decide, process = flt.process, match_body = flt._match_body
    cdef object last_ts = flt._last_ts
    # the previous line's date text (its first pdl bytes) and epoch: seen[text] holds that epoch until a
    # Python call that may change the date caches (invalidated there)
    cdef bytes pline = None
    cdef int64_t pdl = -1
    cdef object pts = None
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
            if dl == pdl and memcmp(<const char*>line, <const char*>pline, dl) == 0:
                ts = pts  # seen.get(line[:dl]): the same text as the line before
            else:
                ts = seen.get(_cut(line, 0, dl))
            if ts is None:
                so = secs[r]
                if so >= 0 and not fracs[r]:
                    base = minutes.get(_minute_key(line, so, dl))
                    if base is not None:
                        p = line
                        sv = (p[so] - 48) * 10 + (p[so + 1] - 48)  # \d{2}
                        if sv <= 60:
                            ts = base + (sv if sv < 59 else 59)
                            if len(seen) >= 4096:  # DateParser._remember
                                seen.clear()
                            seen[_cut(line, 0, dl)] = ts
                if ts is None:
                    ts = _date_miss(dates, template, line, dl, seen, minutes)
                if ts is None:
                    pdl = -1
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
            pdl = -1
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
            if pdl != dlens[r] or pts is not ts:
                pline, pdl, pts = line, dlens[r], ts
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
                hk = hkeys[r] if hkeys is not None else None
                hkey = <bytes>hk if hk is not None else _cut(line, dl, hend - dl)
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
                        host = _ascii(line, hp, glen[F_IP4, r])
                    else:
                        hp = gpos[F_IP6, r]
                        if hp >= 0:
                            host = _ascii(line, hp, glen[F_IP6, r])
                        else:
                            hp = gpos[F_DNS, r]
                            if hp >= 0:
                                host = _ascii(line, hp, glen[F_DNS, r])
                    user = None
                    hp = gpos[F_USER, r]
                    if hp >= 0:
                        user = _utf8(line, hp, glen[F_USER, r])
                    if not user:
                        hp = gpos[F_ALT_USER, r]
                        user = _utf8(line, hp, glen[F_ALT_USER, r]) if hp >= 0 else None
                    gained = gpos[F_MLFGAINED, r] >= 0
                    nofail = gained or gpos[F_NOFAIL, r] >= 0
                    forget = gpos[F_MLFFORGET, r] >= 0
                    res = merge_fields(flt, conns, ops, mlfid, host, user, gained, nofail, forget, ts, i)
                else:
                    g = dict(pre) if pre else {}
                    for j in range(NFIELDS):
                        hp = gpos[j, r]
                        if hp >= 0:
                            g[FIELDS[j]] = _cut(line, hp, glen[j, r])
                    v = g.get("mlfid")
                    res = merge(v, g, ts, i) if v is not None else decide(("fail", ts, i, g))
                _count(c, res, tally)
                out.append(res)
                continue
            j = swhich[r] if has_succ else -1
            if j >= 0:
                g = groups_of(sfound[j].pairs, swhere[r])
                x = ("success", ts, j, {**pre, **g} if pre else g)
            else:
                res = _result("missed", None, None, ts, None)  # LogFilter._decide of ("missed", ts)
                tally[2] += 1
                out.append(res)
                continue
        res = decide(x)
        _count(c, res, tally)
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
            key = _cut(line, dl, hend - dl)
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
    cdef uint64_t w
    out = bytearray(n)
    cdef unsigned char[:] o = out
    for r in range(n):
        line = <bytes>seg[r]
        L = len(line)
        if L > max_line:
            o[r] = 1
            continue
        p = line
        if memchr(p, 10, L) != NULL:
            o[r] = 1
            continue
        k = 0
        while k + 8 <= L:  # eight bytes at a time: any high bit set?
            memcpy(&w, p + k, 8)
            if w & 0x8080808080808080ULL:
                break
            k += 8
        while k < L:
            if p[k] >= 0x80:
                o[r] = 1
                break
            k += 1
    return out


# ---------------------------------------------------------------------------------------------------------
# RE2 called directly: the regex work of a batch without Arrow columns (see logparse_batch._segment_re2)

def re2_available():
    """Whether this build calls RE2 directly (built with RE2's headers and library)."""
    return fbre_available() == 1


cdef class Re2Regex:
    """One pattern compiled by RE2 (UTF-8, 32 MiB, as ``fail2ban_regex.ByteRegex``)."""

    cdef void* rx
    cdef readonly int groups
    cdef readonly str pattern

    def __cinit__(self, str pattern):
        cdef bytes b = pattern.encode("utf-8")
        self.rx = NULL
        self.pattern = pattern
        if not fbre_available():
            raise ValueError("built without RE2")
        self.rx = fbre_compile(b, len(b), 32 << 20)
        if self.rx == NULL:
            raise ValueError(f"RE2 cannot compile {pattern!r}")
        self.groups = fbre_groups(self.rx)

    def __dealloc__(self):
        if self.rx != NULL:
            fbre_free(self.rx)
            self.rx = NULL

    def group_index(self, str name):
        """The index of the named group (``-1``: none)."""
        return fbre_group_index(self.rx, name.encode("utf-8"))

    def match(self, bytes text, bint anchor=False, int nsub=1):
        """The spans of groups ``0 .. nsub-1`` (``(-1, -1)`` unset) of the match in ``text``, or ``None``."""
        cdef int64_t sp[2 * 64]
        cdef int k, m
        if nsub < 0 or nsub > FBRE_MAXSUB:
            raise ValueError("nsub")
        m = fbre_match(self.rx, text, len(text), anchor, nsub, sp)
        if m != 1:
            return None
        return [(sp[2 * k], sp[2 * k + 1]) for k in range(nsub)]


cdef enum:
    MAXG = 8  # groups per field of one regex (repeated names: ip4, ip4__1, ...)


cdef class Re2Rx:
    """A failregex or successregex for :func:`re2_batch`: the regex, its pre-checks (first byte, required
    literals), and per field of ``FIELDS`` the indices of its groups in group order."""

    cdef Re2Regex re
    cdef readonly long index
    cdef int nsub
    cdef int ng[NFIELDS]
    cdef int grp[NFIELDS][MAXG]
    cdef bytes first  # 256 flags, or None
    cdef tuple lits

    def __init__(self, long index, Re2Regex re, dict fields, object first, tuple lits):
        """``fields``: field name -> group indices in group order."""
        cdef int f, k
        self.index = index
        self.re = re
        self.first = first
        self.lits = lits
        self.nsub = 1
        for f in range(NFIELDS):
            self.ng[f] = 0
            idx = fields.get(FIELDS[f], ())
            if len(idx) > MAXG:
                raise ValueError("too many groups of one name")
            for k in range(len(idx)):
                self.grp[f][k] = idx[k]
                self.ng[f] += 1
                if idx[k] + 1 > self.nsub:
                    self.nsub = idx[k] + 1
        if self.nsub > FBRE_MAXSUB:
            raise ValueError("too many groups")


cdef class Re2Plan:
    """What :func:`re2_batch` runs for one filter: the date templates (anchored, with the seconds and
    fraction groups), the prefregex head (anchored, no groups), the full prefregex and its groups, the
    failregexes and successregexes."""

    cdef list dates  # per template: Re2Regex or None
    cdef list dsec  # per template: group index of the seconds (-1)
    cdef list dfrac  # per template: group index of the fraction (-1)
    cdef Re2Regex head
    cdef Re2Regex pref
    cdef readonly Re2Regex headg  # the prefregex without its content group (its groups keep their numbers), or None
    cdef int pcontent_idx
    cdef int npref
    cdef int pref_ng[16]
    cdef int pref_grp[16][MAXG]
    cdef int pref_nsub
    cdef list fail
    cdef list succ
    # per first byte of the content (256: empty content), the regexes in order whose first-byte check
    # lets that byte through
    cdef list fail_by_first
    cdef list succ_by_first

    def __init__(self, list dates, object head, object pref, list pref_groups, int content_idx, list fail,
                 list succ, object headg=None):
        """``pref_groups``: per prefregex field (``plan.pref_names`` order) its group indices in order;
        ``headg``: the prefregex less its final ``(?P<content>.+)$``, groups kept (``None``: not used)."""
        cdef int j, k
        self.dates = []
        self.dsec = []
        self.dfrac = []
        for d in dates:
            if d is None:
                self.dates.append(None)
                self.dsec.append(-1)
                self.dfrac.append(-1)
            else:
                rx = Re2Regex(d)
                self.dates.append(rx)
                self.dsec.append(rx.group_index("_S"))
                self.dfrac.append(rx.group_index("_f"))
        self.head = Re2Regex(head) if head is not None else None
        self.pref = Re2Regex(pref) if pref is not None else None
        self.pcontent_idx = content_idx
        self.headg = Re2Regex(headg) if headg is not None else None
        if self.headg is not None and self.headg.groups != content_idx - 1:
            raise ValueError("the prefregex's content group is not its last")
        if len(pref_groups) > 16:
            raise ValueError("too many prefregex fields")
        self.npref = len(pref_groups)
        self.pref_nsub = content_idx + 1
        for j in range(self.npref):
            idx = pref_groups[j]
            if len(idx) > MAXG:
                raise ValueError("too many groups of one name")
            self.pref_ng[j] = len(idx)
            for k in range(len(idx)):
                self.pref_grp[j][k] = idx[k]
                if idx[k] + 1 > self.pref_nsub:
                    self.pref_nsub = idx[k] + 1
        if self.pref_nsub > FBRE_MAXSUB:
            raise ValueError("too many groups")
        self.fail = fail
        self.succ = succ
        self.fail_by_first = _by_first(fail)
        self.succ_by_first = _by_first(succ)


cdef list _by_first(list regexes):
    """For content starting with byte ``b`` (``256``: empty content), the regexes of ``regexes`` in order
    whose first-byte pre-check does not rule it out (the literal pre-check stays per line)."""
    cdef list out = []
    cdef Re2Rx rx
    cdef int b
    for b in range(257):
        keep = []
        for rx in regexes:
            if rx.first is None or (b < 256 and rx.first[b]):
                keep.append(rx)
        out.append(tuple(keep))
    return out


cdef inline bint _contains(const unsigned char* h, Py_ssize_t hl, const unsigned char* n, Py_ssize_t nl):
    """Whether ``n[:nl]`` occurs in ``h[:hl]`` (memchr for its first byte, then memcmp: faster than memmem's
    set-up for the short literals and lines here)."""
    cdef const unsigned char* q = h
    cdef const unsigned char* end
    if nl == 0:
        return True
    if hl < nl:
        return False
    end = h + (hl - nl + 1)
    while q < end:
        q = <const unsigned char*>memchr(q, n[0], end - q)
        if q == NULL:
            return False
        if memcmp(q, n, nl) == 0:
            return True
        q += 1
    return False


cdef inline bint _prechecks(Re2Rx rx, const unsigned char* p, int64_t st, int64_t L):
    """The first byte and required-literal pre-checks of ``candidates`` on ``p[st:L]``."""
    cdef const unsigned char* fl
    cdef Py_ssize_t q, nl
    cdef bytes lit
    if rx.first is not None:
        fl = rx.first
        if st >= L or not fl[p[st]]:
            return False
    nl = len(rx.lits)
    if nl:
        for q in range(nl):
            lit = <bytes>rx.lits[q]
            if _contains(p + st, L - st, lit, len(lit)):
                return True
        return False
    return True


def re2_batch(Re2Plan P, list seg, Py_ssize_t template, bint want_secs, unsigned char[:] odd,
              int64_t[:] dlens, int64_t[:] secs, unsigned char[:] fracs, int64_t[:] heads, int64_t[:] starts,
              int64_t[:] which, int64_t[:, :] gpos, int64_t[:, :] glen, int64_t[:] swhich, dict memo, int extra,
              unsigned char[:] pstate, int64_t[:, :] ppos, int64_t[:, :] plen, int64_t[:] pcontent,
              list hkeys=None):
    """The column work of ``logparse_batch._segment_fast`` with RE2 called per line: date template and
    prefregex head extents (rows where the template does not match become odd), the full prefregex on
    lines whose head text is new, the first failregex (then successregex) that matches each line's content
    with the fields' offsets. ``template < 0``: the filter has no dates. ``hkeys`` (one entry per line) gets
    the head texts it makes, for :func:`segment_loop`."""
    cdef Py_ssize_t n = len(seg), r, k, nf = len(P.fail), ns = len(P.succ)
    cdef int64_t sp[2 * 64]
    cdef int64_t L, dl, e, st, hend, a
    cdef int f, q, m, nsd = 1, sidx = -1, fidx = -1
    cdef bytes line, key
    cdef const unsigned char* p
    cdef Re2Regex dre = None
    cdef Re2Rx rx
    cdef tuple cands
    cdef set seen = set()
    cdef void* hrx = P.head.rx if P.head is not None else NULL
    cdef void* prx = P.pref.rx if P.pref is not None else NULL
    cdef bint found
    # the last line whose date groups RE2 found: its start, date length, whether more followed, groups
    cdef const unsigned char* pp = NULL
    cdef int64_t pdl = -1, psec = -1, w
    cdef bint pmore = False
    cdef unsigned char pfrac = 0
    cdef bytes pkeep = None
    if template >= 0:
        dre = P.dates[template]
        sidx = P.dsec[template]
        fidx = P.dfrac[template]
        if not want_secs:
            sidx = -1
        if sidx + 1 > nsd:
            nsd = sidx + 1
        if fidx + 1 > nsd:
            nsd = fidx + 1
    for r in range(n):
        if odd[r]:
            continue
        line = <bytes>seg[r]
        p = line
        L = len(line)
        dl = 0
        if dre is not None:
            m = fbre_match(dre.rx, <const char*>p, L, 1, 1, sp)  # the extent alone: RE2's DFA
            if m != 1:
                odd[r] = 1
                continue
            dl = sp[1]
            dlens[r] = dl
            if nsd > 1:
                # the seconds and fraction groups: as the line before when it starts with the same dl bytes
                # and the same next byte (or end) and its template match also ends at dl (then both take
                # the same way through the template), else RE2's submatch engine
                w = dl + 1 if dl < L else dl
                if not (dl == pdl and (dl < L) == pmore and memcmp(p, pp, w) == 0):
                    m = fbre_match(dre.rx, <const char*>p, L, 1, nsd, sp)
                    psec = sp[2 * sidx] if sidx >= 0 else -1
                    pfrac = sp[2 * fidx] >= 0 if fidx >= 0 else 0
                    pp, pdl, pmore, pkeep = p, dl, dl < L, line
                if sidx >= 0:
                    secs[r] = psec
                if fidx >= 0:
                    fracs[r] = pfrac
        e = 0
        if hrx != NULL:
            m = fbre_match(hrx, <const char*>(p + dl), L - dl, 1, 1, sp)
            if m != 1:  # the head matches empty text: cannot happen
                odd[r] = 1
                continue
            e = sp[1]
            heads[r] = e
        st = dl + e
        if st > L:
            st = L
        starts[r] = st
        if prx != NULL:  # head_misses, then the full prefregex on those lines
            found = False
            if e < L - dl:
                hend = dl + e + extra
                if hend > L:
                    hend = L
                key = _cut(line, dl, hend - dl)
                if hkeys is not None:
                    hkeys[r] = key
                if key in memo or key in seen:
                    found = True
                else:
                    seen.add(key)
            if not found:
                m = 0
                if P.headg is not None and e < L - dl:
                    # the head leaves a non-empty rest without a line break: the full prefregex takes the
                    # head's own (leftmost-first) way through [dl, dl + e) and its content is the rest
                    # (PrefixProbe); that way's groups are those of the head matched over exactly that text
                    m = fbre_match(P.headg.rx, <const char*>(p + dl), e, 2, P.pcontent_idx, sp)
                    if m == 1:
                        sp[2 * P.pcontent_idx] = e
                        sp[2 * P.pcontent_idx + 1] = L - dl
                if m != 1:
                    m = fbre_match(prx, <const char*>(p + dl), L - dl, 0, P.pref_nsub, sp)
                if m != 1:
                    pstate[r] = 2
                else:
                    pstate[r] = 1
                    for k in range(P.npref):
                        for q in range(P.pref_ng[k]):
                            a = sp[2 * P.pref_grp[k][q]]
                            if a >= 0:
                                ppos[k, r] = dl + a
                                plen[k, r] = sp[2 * P.pref_grp[k][q] + 1] - a
                                break
                    a = sp[2 * P.pcontent_idx]
                    if a >= 0:
                        pcontent[r] = dl + a
        cands = <tuple>P.fail_by_first[p[st] if st < L else 256]
        for k in range(len(cands)):
            rx = <Re2Rx>cands[k]
            if not _prechecks(rx, p, st, L):
                continue
            m = fbre_match(rx.re.rx, <const char*>(p + st), L - st, 0, rx.nsub, sp)
            if m != 1:
                continue
            which[r] = rx.index
            for f in range(NFIELDS):
                for q in range(rx.ng[f]):
                    a = sp[2 * rx.grp[f][q]]
                    if a >= 0:
                        gpos[f, r] = st + a
                        glen[f, r] = sp[2 * rx.grp[f][q] + 1] - a
                        break
            break
        if ns and which[r] < 0:
            cands = <tuple>P.succ_by_first[p[st] if st < L else 256]
            for k in range(len(cands)):
                rx = <Re2Rx>cands[k]
                if not _prechecks(rx, p, st, L):
                    continue
                if fbre_match(rx.re.rx, <const char*>(p + st), L - st, 0, 0, sp) == 1:
                    swhich[r] = rx.index
                    break
