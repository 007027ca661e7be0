# cython: language_level=3, boundscheck=False, wraparound=False, infer_types=False
"""Compiled hot paths of the web rule engine and the web model (optional).

Every function here is a port of pure-Python code that stays in the package as the reference and the
fallback (used when this extension is not built, with ``FSBRAIN_SPEEDUPS=0``, or with
``WebRuleEngine(compiled=False)``); verdicts are the same either way:

* :func:`run_phase` — :meth:`WebRuleEngine._run_phase` with ``_match_chain`` / ``_match_link`` /
  ``_fire``'s actions / ``Transaction.values`` / ``transformed`` / ``expand`` / ``setvar`` inlined: the
  per-phase rule loop. It reads per-link descriptor tuples built once per engine (:func:`plan_entry`,
  :func:`link_desc`) instead of the rule objects' attributes, tests prefilter bits on a byte copy of the
  request's candidate mask instead of Python big-int ``&``, builds a variable's name (``ARGS:id``) only
  when its value matches, and runs a plain ``@rx`` / ``@pm`` search with RE2 directly (captures only for
  rules that capture). Log entries (``MatchedRule``) are still built by ``WebRuleEngine._log_match``.
* :func:`scan` — :meth:`Prefilter._scan` and ``_value_mask``: the per-value cache lookups and RE2 set scans,
  with header / cookie / query-argument / collection / scalar sources read straight from the request and
  the transaction (no per-source lists).
* Request parsing: :func:`header_pairs`, :func:`cookies`, :func:`parse_urlencoded`, :func:`keyed`,
  :func:`index` (``HttpRequest`` / ``Transaction`` helpers).
* Transformations: :func:`url_decode`, :func:`url_decode_uni`, :func:`utf8_to_unicode`, and
  :func:`plain_value` (``transaction.plain_value``).
* :func:`sql_tokens` — the SQL lexer of ``@detectSQLi`` (``injection._tokens``).
* The model: :func:`is_plain` (``ml.is_plain``) and :func:`ngram_weights` (the binary head's weight lookup).

``tests/web/test_fastweb.py`` compares each one with its Python original (hypothesis for the pure
functions, whole verdicts for the engine), and ``bench/bench_web_verdicts.py --check`` compares ~120k
verdicts with those saved from the code before.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItemWithError
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_GET_LENGTH, PyUnicode_READ_CHAR

cdef extern from "Python.h":
    bint Py_UNICODE_ISALNUM(Py_UCS4 ch)
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    char* PyByteArray_AS_STRING(object)

cdef object _DISRUPT = ("deny", "drop", "redirect")
# a plan entry's disruptive action (see :func:`plan_entry`)
DEF _D_STOP = 1
DEF _D_ALLOW = 2


cdef class TxState:
    """The fields of a ``Transaction`` (``seclang.transaction``), as C fields: ``Transaction`` subclasses
    this class whenever the extension is built, and the compiled loop reads and writes them directly
    instead of through instance-dictionary lookups (a tenth of a CRS request's instructions went to
    attribute lookups on the transaction). The Python code reads them as ordinary attributes."""
    cdef public object engine, req, pinned, phase, score_added, body_processor, force_body_var, rule_engine
    cdef public object removed_ids, removed_targets, removed_tag_targets, removed_tags
    cdef public object matched_var, matched_var_name, matched_vars, rule, pf_phase, pf_mask, unique_id
    cdef public object _body, _body_proc
    cdef public dict tx, tcache, plain, _coll, _idx, scal
    # while run_phase evaluates a memoisable chain (``plan_entry``'s ``memo``): the TX writes, in order, as
    # ``(key, value)``, and None for a write it cannot replay; None the rest of the time
    cdef public object rec

# RE2 called directly (C++), when the build found RE2's headers and library (setup.py defines
# FSBRAIN_HAVE_RE2 and compiles this module as C++); otherwise stubs, and the engine calls RE2 through the
# google-re2 binding as before. Same options as ``operators.re2_options()``: Latin-1, ``.`` matches newline,
# 64 MiB per automaton, case-sensitive unless the pattern says otherwise.
cdef extern from *:
    """
    #include <stdint.h>
    #include <stddef.h>
    #ifdef FSBRAIN_HAVE_RE2
    #include <re2/re2.h>
    #include <re2/set.h>
    #include <vector>
    static RE2::Options fbw_options(void) {
        RE2::Options o;
        o.set_encoding(RE2::Options::EncodingLatin1);
        o.set_dot_nl(true);
        o.set_max_mem((int64_t)64 << 20);
        o.set_log_errors(false);
        return o;
    }
    static int fbw_available(void) { return 1; }
    static void* fbw_re_new(const char* p, Py_ssize_t n) {
        RE2* r = new RE2(re2::StringPiece(p, (size_t)n), fbw_options());
        if (!r->ok()) { delete r; return NULL; }
        return (void*)r;
    }
    static void fbw_re_free(void* r) { delete (RE2*)r; }
    static int fbw_re_groups(void* r) { return ((RE2*)r)->NumberOfCapturingGroups(); }
    /* unanchored search of t[0:n]: 0 no match, 1 match; with nsub > 0 (at most 10) the spans of groups
       0..nsub-1 in out as (start, end), -1 for a group that took no part */
    static int fbw_re_search(void* r, const char* t, Py_ssize_t n, int nsub, Py_ssize_t* out) {
        re2::StringPiece m[10];
        if (nsub > 10) nsub = 10;
        if (!((RE2*)r)->Match(re2::StringPiece(t, (size_t)n), 0, (size_t)n, RE2::UNANCHORED, m, nsub)) return 0;
        for (int k = 0; k < nsub; k++) {
            if (m[k].data() == NULL) { out[2 * k] = -1; out[2 * k + 1] = -1; }
            else { out[2 * k] = (Py_ssize_t)(m[k].data() - t); out[2 * k + 1] = out[2 * k] + (Py_ssize_t)m[k].size(); }
        }
        return 1;
    }
    static void* fbw_set_new(void) { return (void*)new RE2::Set(fbw_options(), RE2::UNANCHORED); }
    static void fbw_set_free(void* s) { delete (RE2::Set*)s; }
    static int fbw_set_add(void* s, const char* p, Py_ssize_t n) {
        return ((RE2::Set*)s)->Add(re2::StringPiece(p, (size_t)n), NULL);
    }
    static int fbw_set_compile(void* s) { return ((RE2::Set*)s)->Compile() ? 1 : 0; }
    /* add the k patterns and compile (called without the GIL): 1, 0 (compile failed), -1 (a pattern refused) */
    static int fbw_set_build(void* s, const char* const* p, const Py_ssize_t* n, Py_ssize_t k) {
        for (Py_ssize_t i = 0; i < k; i++) {
            if (((RE2::Set*)s)->Add(re2::StringPiece(p[i], (size_t)n[i]), NULL) < 0) return -1;
        }
        return ((RE2::Set*)s)->Compile() ? 1 : 0;
    }
    /* one match whose result is dropped: builds the automaton's states for such text (no GIL needed) */
    static void fbw_set_warm(void* s, const char* t, Py_ssize_t n) {
        std::vector<int> v;
        ((RE2::Set*)s)->Match(re2::StringPiece(t, (size_t)n), &v, NULL);
    }
    /* the indexes of the patterns found in t[0:n], at most cap of them in out; their number (-1: error) */
    static Py_ssize_t fbw_set_match(void* s, const char* t, Py_ssize_t n, int* out, Py_ssize_t cap) {
        std::vector<int> v;
        RE2::Set::ErrorInfo e;
        if (!((RE2::Set*)s)->Match(re2::StringPiece(t, (size_t)n), &v, &e)) {
            return e.kind == RE2::Set::kNoError ? 0 : -1;
        }
        Py_ssize_t k = 0;
        for (size_t i = 0; i < v.size() && k < cap; i++) out[k++] = v[i];
        return (Py_ssize_t)v.size() <= cap ? (Py_ssize_t)v.size() : cap;
    }
    #else
    static int fbw_available(void) { return 0; }
    static void* fbw_re_new(const char* p, Py_ssize_t n) { (void)p; (void)n; return NULL; }
    static void fbw_re_free(void* r) { (void)r; }
    static int fbw_re_groups(void* r) { (void)r; return 0; }
    static int fbw_re_search(void* r, const char* t, Py_ssize_t n, int nsub, Py_ssize_t* out) {
        (void)r; (void)t; (void)n; (void)nsub; (void)out; return 0;
    }
    static void* fbw_set_new(void) { return NULL; }
    static void fbw_set_free(void* s) { (void)s; }
    static int fbw_set_add(void* s, const char* p, Py_ssize_t n) { (void)s; (void)p; (void)n; return -1; }
    static int fbw_set_compile(void* s) { (void)s; return 0; }
    static int fbw_set_build(void* s, const char* const* p, const Py_ssize_t* n, Py_ssize_t k) {
        (void)s; (void)p; (void)n; (void)k; return -1;
    }
    static void fbw_set_warm(void* s, const char* t, Py_ssize_t n) { (void)s; (void)t; (void)n; }
    static Py_ssize_t fbw_set_match(void* s, const char* t, Py_ssize_t n, int* out, Py_ssize_t cap) {
        (void)s; (void)t; (void)n; (void)out; (void)cap; return -1;
    }
    #endif
    """
    int fbw_available()
    void* fbw_re_new(const char* p, Py_ssize_t n)
    void fbw_re_free(void* r)
    int fbw_re_groups(void* r)
    int fbw_re_search(void* r, const char* t, Py_ssize_t n, int nsub, Py_ssize_t* out)
    void* fbw_set_new()
    void fbw_set_free(void* s)
    int fbw_set_add(void* s, const char* p, Py_ssize_t n)
    int fbw_set_compile(void* s)
    int fbw_set_build(void* s, const char* const* p, const Py_ssize_t* n, Py_ssize_t k) nogil
    void fbw_set_warm(void* s, const char* t, Py_ssize_t n) nogil
    Py_ssize_t fbw_set_match(void* s, const char* t, Py_ssize_t n, int* out, Py_ssize_t cap)


def re2_direct():
    """Whether this build calls RE2 directly (built with RE2's headers and library, ``libre2-dev``)."""
    return fbw_available() == 1


cdef object _RE_MATCHED = (b"",)


cdef class CRe:
    """One ``@rx`` / ``@pm`` pattern compiled by RE2 and searched without the binding."""
    cdef void* r
    cdef int nsub
    cdef readonly bytes pattern

    def __cinit__(self, bytes pattern not None):
        self.r = fbw_re_new(pattern, len(pattern))
        if self.r == NULL:
            raise ValueError("RE2 cannot compile the pattern")
        self.nsub = min(10, 1 + fbw_re_groups(self.r))
        self.pattern = pattern

    def __dealloc__(self):
        if self.r != NULL:
            fbw_re_free(self.r)

    cdef object search(self, bytes v, bint want_captures):
        """None, or the captures (groups 0..9, ``b""`` for a group that took no part; ``_MATCHED`` when
        ``want_captures`` is false)."""
        cdef Py_ssize_t sp[20]
        cdef Py_ssize_t k
        cdef const char* t = PyBytes_AS_STRING(v)
        if not want_captures:
            return _RE_MATCHED if fbw_re_search(self.r, t, PyBytes_GET_SIZE(v), 0, sp) else None
        if not fbw_re_search(self.r, t, PyBytes_GET_SIZE(v), self.nsub, sp):
            return None
        out = []
        for k in range(self.nsub):
            out.append(v[sp[2 * k]:sp[2 * k + 1]] if sp[2 * k] >= 0 else b"")
        return tuple(out)

    def __call__(self, bytes v not None):
        """The captures of the first match (as ``operators._fast_search`` returns them), or None."""
        return self.search(v, True)


cdef class CSet:
    """An RE2 set (unanchored) searched without the binding: ``hits(text)`` gives the indexes of the patterns
    found, as ``re2.Set.Match`` does."""
    cdef void* s
    cdef Py_ssize_t n
    cdef bint compiled

    def __cinit__(self):
        self.s = fbw_set_new()
        if self.s == NULL:
            raise ValueError("built without RE2")
        self.n = 0
        self.compiled = False

    def __dealloc__(self):
        if self.s != NULL:
            fbw_set_free(self.s)

    def add(self, bytes pattern not None):
        if fbw_set_add(self.s, pattern, len(pattern)) < 0:
            raise ValueError("RE2 cannot add the pattern to a set")
        self.n += 1

    def compile(self):
        if not fbw_set_compile(self.s):
            raise ValueError("RE2 cannot compile the set")
        self.compiled = True

    def build(self, list patterns not None):
        """Add every pattern and compile, with the GIL released: a union set can take tens of milliseconds
        to compile, which a background thread then spends without holding up the requests."""
        cdef Py_ssize_t k = len(patterns), i
        cdef int rc
        if self.n or self.compiled:
            raise ValueError("build() takes a new set")
        cdef const char** ps = <const char**>PyMem_Malloc(sizeof(const char*) * (k if k else 1))
        cdef Py_ssize_t* ns = <Py_ssize_t*>PyMem_Malloc(sizeof(Py_ssize_t) * (k if k else 1))
        if ps == NULL or ns == NULL:
            PyMem_Free(ps)
            PyMem_Free(ns)
            raise MemoryError()
        try:
            for i in range(k):
                b = <bytes?>patterns[i]  # the list keeps each pattern alive while RE2 reads it
                ps[i] = PyBytes_AS_STRING(b)
                ns[i] = PyBytes_GET_SIZE(b)
            with nogil:
                rc = fbw_set_build(self.s, ps, ns, k)
        finally:
            PyMem_Free(ps)
            PyMem_Free(ns)
        if rc < 0:
            raise ValueError("RE2 cannot add a pattern to the set")
        if rc == 0:
            raise ValueError("RE2 cannot compile the set")
        self.n = k
        self.compiled = True

    def warm(self, bytes t not None):
        """Match ``t`` once, dropping the result, with the GIL released: RE2 builds the automaton states such
        text needs (the first texts through a new set cost most)."""
        if not self.compiled:
            return
        cdef const char* p = PyBytes_AS_STRING(t)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(t)
        with nogil:
            fbw_set_warm(self.s, p, n)

    cdef list hits(self, bytes t):
        cdef int buf[512]
        cdef int* out = buf
        cdef Py_ssize_t k, got
        cdef list res
        if self.n > 512:
            heap = bytearray(4 * self.n)
            out = <int*>PyByteArray_AS_STRING(heap)
        got = fbw_set_match(self.s, PyBytes_AS_STRING(t), PyBytes_GET_SIZE(t), out, self.n if self.n > 0 else 1)
        if got < 0:  # RE2 gave up (memory): every pattern counts as found, so the rules run normally
            return list(range(self.n))
        res = []
        for k in range(got):
            res.append(out[k])
        return res

    def __call__(self, bytes t not None):
        return self.hits(t)

# ---- pure functions ---------------------------------------------------------------------------------

cdef inline int _hexval(unsigned char c) nogil:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


def url_decode(bytes v not None):
    """``transforms.url_decode``: ``+`` -> space and valid ``%XX`` decoded; invalid escapes kept."""
    return _url_decode(v)


cdef bytes _url_decode(bytes v):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(v), i = 0, j = 0
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(v)
    cdef unsigned char c
    cdef int hi, lo
    cdef bint special = False
    for i in range(n):
        c = s[i]
        if c == 43 or c == 37:
            special = True
            break
    if not special:
        return v
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    i = 0
    while i < n:
        c = s[i]
        if c == 43:
            o[j] = 32
        elif c == 37 and i + 2 < n:
            hi = _hexval(s[i + 1])
            lo = _hexval(s[i + 2])
            if hi >= 0 and lo >= 0:
                o[j] = <unsigned char>(hi * 16 + lo)
                i += 2
            else:
                o[j] = c
        else:
            o[j] = c
        j += 1
        i += 1
    return out[:j]


def plain_value(bytes v not None):
    """``transaction.plain_value``: ASCII without ``% + & \\ NUL`` and without ``/*``."""
    return _plain_value(v)


cdef bint _plain_value(bytes v):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(v), i
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(v)
    cdef unsigned char c
    for i in range(n):
        c = s[i]
        if c >= 128 or c == 37 or c == 43 or c == 38 or c == 92 or c == 0:
            return False
        if c == 47 and i + 1 < n and s[i + 1] == 42:
            return False
    return True


def parse_urlencoded(bytes data not None, Py_ssize_t max_args):
    """``request.parse_urlencoded``: ``(args, limit exceeded)``."""
    cdef list out = []
    cdef bytes part, name, value
    if not data:
        return out, False
    for part in data.split(b"&"):
        if not part:
            continue
        if len(out) >= max_args:
            return out, True
        name, _, value = part.partition(b"=")
        out.append((_url_decode(name), _url_decode(value)))
    return out, False


def cookies(list header_pairs):
    """``HttpRequest.cookies`` from the header pairs."""
    cdef list out = []
    cdef bytes k, v, part
    for k, v in header_pairs:
        if len(k) != 6 or k.lower() != b"cookie":
            continue
        for part in v.split(b";"):
            part = part.strip(b" \t")
            if not part:
                continue
            name, _, value = part.partition(b"=")
            out.append((name, value))
    return out


def keyed(list pairs):
    """``transaction._keyed``: keys as lossless text."""
    cdef list out = []
    cdef bytes k
    for k, v in pairs:
        out.append((k.decode("utf-8", "surrogateescape"), v))
    return out


def is_plain(str value not None):
    """``ml.is_plain``: at most 256 characters, only letters/digits (Unicode) and ``_.@,:-``."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(value), i
    cdef Py_UCS4 ch
    if n > 256:
        return False
    for i in range(n):
        ch = PyUnicode_READ_CHAR(value, i)
        if ch == 95 or ch == 46 or ch == 64 or ch == 44 or ch == 58 or ch == 45:
            continue
        if not Py_UNICODE_ISALNUM(ch):
            return False
    return True


# ---- prefilter --------------------------------------------------------------------------------------

def _noexpand(object _text):
    return b""


cdef object _set_or(CSet s, bytes t, object bits, object m):
    """``m`` with ``bits[i]`` OR'd in for every pattern ``i`` of ``s`` found in ``t``: the loop of
    ``Prefilter._value_mask`` over ``CSet.hits(t)``, without the list of hits."""
    cdef int buf[512]
    cdef int* out = buf
    cdef Py_ssize_t k, got
    if s.n > 512:
        heap = bytearray(4 * s.n)
        out = <int*>PyByteArray_AS_STRING(heap)
    got = fbw_set_match(s.s, PyBytes_AS_STRING(t), PyBytes_GET_SIZE(t), out, s.n if s.n > 0 else 1)
    if got < 0:  # RE2 gave up (memory): every pattern counts as found, so the rules run normally
        for k in range(s.n):
            m |= bits[k]
        return m
    for k in range(got):
        m |= bits[out[k]]
    return m


cdef object _scan_or(tuple got, object t, object m):
    """``m`` with the bits of the patterns of ``got`` (a pass's ``(matcher, bits)``) found in ``t``."""
    one = got[0]
    if type(one) is CSet:
        return _set_or(<CSet>one, <bytes?>t, got[1], m)
    hits = one(t)
    if hits:
        bits = got[1]
        for i in hits:
            m |= bits[i]
    return m


DEF _STAGES_ON_STACK = 32


cdef object _value_mask(bytes v, list stages, object pas):
    """``Prefilter._value_mask``: the stages that produce the same text share scans (``_Pass.union``). Each
    stage's text comes from the value or from its prefix stage's text (``_ChainSet._compiled_stages``).
    Stages are grouped by text in C arrays (the first stage of each distinct text, in order) instead of the
    Python original's dict of lists."""
    m = 0
    cdef dict tested = None
    cdef dict unions = pas.unions
    cdef list sets = pas.sets
    cdef Py_ssize_t n = len(stages), k, j, src, ng = 0, gi, cnt
    cdef list texts = [None] * n
    cdef tuple funcs, st, ops, key
    cdef object t, f, op, negated, bit, done, idx, u, one
    cdef PyObject* hit
    cdef Py_ssize_t gbuf[2 * _STAGES_ON_STACK]
    cdef Py_ssize_t* grp = gbuf  # per stage: its group (-1: no set)
    cdef Py_ssize_t* first = gbuf + _STAGES_ON_STACK  # per group: its first stage
    cdef bint any_ops = False
    heap = None
    if n > _STAGES_ON_STACK:
        heap = bytearray(2 * n * sizeof(Py_ssize_t))
        grp = <Py_ssize_t*>PyByteArray_AS_STRING(heap)
        first = grp + n
    for k in range(n):
        st = <tuple>stages[k]
        src = st[4]
        if src == -2:
            t = v
        elif src >= 0:
            funcs = st[1]
            t = _tcall(funcs[len(funcs) - 1], texts[src])
        else:
            t = v
            for f in <tuple>st[1]:
                t = _tcall(f, t)
        texts[k] = t
        grp[k] = -1
        if sets[<Py_ssize_t>st[2]] is not None:
            for gi in range(ng):
                one = texts[first[gi]]
                if one is t or one == t:
                    grp[k] = gi
                    break
            else:
                grp[k] = ng
                first[ng] = k
                ng += 1
        if st[3]:
            any_ops = True
    for gi in range(ng):
        t = texts[first[gi]]
        cnt = 0
        for k in range(first[gi], n):
            if grp[k] == gi:
                cnt += 1
        if cnt == 1:
            m = _scan_or(<tuple>sets[<Py_ssize_t>(<tuple>stages[first[gi]])[2]], t, m)
            continue
        key = PyTuple_New(cnt)
        j = 0
        for k in range(first[gi], n):
            if grp[k] == gi:
                idx = (<tuple>stages[k])[2]
                Py_INCREF(idx)
                PyTuple_SET_ITEM(key, j, idx)
                j += 1
        hit = PyDict_GetItemWithError(unions, key)
        u = <object>hit if hit is not NULL else pas.union(key, t)
        for one in <tuple>u:
            m = _scan_or(<tuple>one, t, m)
    if not any_ops:
        return m
    tested = {}
    for k in range(n):
        ops = (<tuple>stages[k])[3]
        if not ops:
            continue
        t = texts[k]
        done = tested.get(t, 0)
        for op, negated, bit in ops:
            if m & bit or done & bit:
                continue
            done |= bit
            if (op(t, _noexpand) is None) is negated:
                m |= bit
        tested[t] = done
    return m


cdef object _mask_of(object pf, tuple src, bytes v, object plain_pass, object full_pass, Py_ssize_t max_cached):
    """A value's mask through a source's chain set (``src``: a ``Prefilter.c_*_sources`` tuple), cached."""
    m = _value_mask(v, <list>src[7], plain_pass) if _plain_value(v) else _value_mask(v, <list>src[8], full_pass)
    if PyBytes_GET_SIZE(v) <= max_cached:
        (<dict>src[6])[v] = m
        pf._cached_bytes = pf._cached_bytes + PyBytes_GET_SIZE(v) + 64
    return m


# source kinds (Prefilter._source_kind)
DEF S_GENERIC = 0
DEF S_HDR_VALUES = 1
DEF S_HDR_NAMES = 2
DEF S_COOKIE_VALUES = 3
DEF S_COOKIE_NAMES = 4
DEF S_ARGS_GET_VALUES = 5
DEF S_ARGS_GET_NAMES = 6
DEF S_COLLECTION = 7
DEF S_KEYED = 8
DEF S_SCALAR = 9


cdef list EMPTY = []
cdef object _REQ_SCALARS = None


cdef object _collection(TxState tr, str name):
    """``tr.collection(name)``: the phase's cached entries, the common collections built here
    (``Transaction._build``), the others by the transaction."""
    cdef dict coll = tr._coll
    cdef PyObject* hit = PyDict_GetItemWithError(coll, name)
    if hit is not NULL:
        return <object>hit
    if name == "TX" or name == "MATCHED_VARS" or name == "MATCHED_VARS_NAMES":
        return tr.collection(name)
    got = _build(tr, name)
    coll[name] = got
    return got


cdef object _py_keyed = None


cdef inline object _lossless(object b):
    """``request.text_lossless``."""
    return (<bytes>b).decode("utf-8", "surrogateescape") if type(b) is bytes else b.decode("utf-8", "surrogateescape")


cdef object _keyed_any(object pairs):
    """``transaction._keyed``."""
    global _py_keyed
    if type(pairs) is list:
        return keyed(<list>pairs)
    if _py_keyed is None:
        from fsbrain.domains.web.seclang.transaction import _keyed
        _py_keyed = _keyed
    return _py_keyed(pairs)


cdef object _build(TxState tr, str name):
    """``Transaction._build`` for the collections rules read on every request; the others in Python."""
    cdef bint in_body
    if name == "ARGS_GET":
        return _keyed_any(tr.req.args_get)
    if name == "REQUEST_HEADERS":
        return _keyed_any(tr.req.header_pairs)
    if name == "REQUEST_COOKIES":
        return _keyed_any(tr.req.cookies)
    in_body = tr.phase >= 2
    if name == "ARGS_POST":
        return _keyed_any(tr.body.args) if in_body else []
    if name == "ARGS":
        return _collection(tr, "ARGS_GET") + _collection(tr, "ARGS_POST")
    if name == "MULTIPART_PART_HEADERS":
        return _keyed_any(tr.body.part_headers) if in_body else []
    if name == "FILES" or name == "FILES_NAMES":
        if not in_body:
            return []
        if name == "FILES":
            return [(_lossless(f.field), f.filename) for f in tr.body.files]
        return [(_lossless(f.field), f.field) for f in tr.body.files]
    if (name == "ARGS_NAMES" or name == "ARGS_GET_NAMES" or name == "ARGS_POST_NAMES"
            or name == "REQUEST_HEADERS_NAMES" or name == "REQUEST_COOKIES_NAMES"):
        base = _collection(tr, name[:len(name) - 6])
        return names(base) if type(base) is list else tr._build(name)
    return tr._build(name)


cdef dict _index(TxState tr, str name):
    """``tr.index(name)``: the phase's cached index, built here from :func:`_collection`."""
    cdef dict idxs = tr._idx
    cdef PyObject* hit = PyDict_GetItemWithError(idxs, name)
    if hit is not NULL:
        return <dict>hit
    if name == "MATCHED_VARS" or name == "MATCHED_VARS_NAMES":
        return tr.index(name)
    ents = _collection(tr, name)
    if type(ents) is not list:
        return tr.index(name)
    got = index(<list>ents)
    idxs[name] = got
    return got


cdef object _scalar(TxState tr, str name):
    """``tr.scalar(name)``, read once per request for the scalars of ``transaction.REQUEST_SCALARS``."""
    global _REQ_SCALARS
    cdef dict cache = tr.scal
    cdef PyObject* hit = PyDict_GetItemWithError(cache, name)
    if hit is not NULL:
        return <object>hit
    if name == "REQBODY_PROCESSOR":  # (changes with ctl:requestBodyProcessor: never cached)
        return _to_bytes(tr.body_processor or "")
    req = tr.req
    if name == "REQUEST_METHOD":
        v = _to_bytes(req.method)
    elif name == "REQUEST_URI" or name == "REQUEST_URI_RAW":
        v = req.uri_bytes
    elif name == "REQUEST_FILENAME":
        v = req.filename
    elif name == "REQUEST_BASENAME":
        v = req.basename
    elif name == "REQUEST_LINE":
        v = req.request_line
    elif name == "REQUEST_PROTOCOL":
        v = _to_bytes(req.protocol)
    elif name == "QUERY_STRING":
        v = req.query_string
    elif name == "REMOTE_ADDR" or name == "REMOTE_HOST":
        v = _to_bytes(req.remote_addr)
    elif name == "REQUEST_BODY_LENGTH":
        v = b"%d" % len(req.body)
    else:
        v = tr.scalar(name)
    if _REQ_SCALARS is None:
        from fsbrain.domains.web.seclang.transaction import REQUEST_SCALARS
        _REQ_SCALARS = REQUEST_SCALARS
    if name in _REQ_SCALARS:
        cache[name] = v
    return v


def scan(object pf, TxState tr, bint body_only, Py_ssize_t max_cached, object cache_bytes):
    """``Prefilter._scan``: the OR of the (cached) rule masks of the values of the phase's sources."""
    cdef object cs, smask, values_of, req, plain_pass, full_pass
    cdef dict cache
    cdef PyObject* hit
    cdef list sources, values
    cdef tuple src, pair
    cdef int kind, idx
    cdef bytes v
    cdef object sv
    if pf._cached_bytes > cache_bytes:
        for cs in pf.chain_sets:
            cs.cache.clear()
        pf._cached_bytes = 0
    total = 0
    req = tr.req
    plain_pass, full_pass = pf.plain_pass, pf.full_pass
    if body_only:
        sources = pf.c_body_sources
    elif tr.phase >= 2:
        sources = pf.c_all_sources
    else:
        sources = pf.c_head_sources
    for src in sources:
        kind = src[0]
        values_of = src[1]
        smask = src[2]
        cache = <dict>src[6]
        acc = 0
        if kind >= S_COLLECTION:
            if kind == S_SCALAR:
                sv = _scalar(tr, src[4])
                if sv is not None:  # (one value: no list of one pair)
                    v = <bytes?>sv
                    hit = PyDict_GetItemWithError(cache, v)
                    acc = _mask_of(pf, src, v, plain_pass, full_pass, max_cached) if hit is NULL else <object>hit
                values = EMPTY
            elif kind == S_KEYED:
                values = _index(tr, src[4]).get(src[5], EMPTY)
            else:
                values = _collection(tr, src[4])
            for pair in values:
                v = <bytes?>pair[1]
                hit = PyDict_GetItemWithError(cache, v)
                if hit is NULL:
                    m = _mask_of(pf, src, v, plain_pass, full_pass, max_cached)
                else:
                    m = <object>hit
                if m:
                    acc |= m
        elif kind == S_GENERIC:
            values = values_of(tr, req)
            for v in values:
                hit = PyDict_GetItemWithError(cache, v)
                if hit is NULL:
                    m = _mask_of(pf, src, v, plain_pass, full_pass, max_cached)
                else:
                    m = <object>hit
                if m:
                    acc |= m
        else:
            if kind == S_HDR_VALUES or kind == S_HDR_NAMES:
                values = req.header_pairs
            elif kind == S_COOKIE_VALUES or kind == S_COOKIE_NAMES:
                values = req.cookies
            else:
                values = req.args_get
            idx = 1 if kind == S_HDR_VALUES or kind == S_COOKIE_VALUES or kind == S_ARGS_GET_VALUES else 0
            for pair in values:
                v = <bytes?>pair[idx]
                hit = PyDict_GetItemWithError(cache, v)
                if hit is NULL:
                    m = _mask_of(pf, src, v, plain_pass, full_pass, max_cached)
                else:
                    m = <object>hit
                if m:
                    acc |= m
        if acc:
            total |= acc & smask
    return total


# ---- rule loop --------------------------------------------------------------------------------------

cdef object _transformed(TxState tr, bytes value, tuple names, tuple funcs, dict reduced, object reduce_fn):
    """``Transaction.transformed``."""
    cdef dict cache = tr.tcache
    cdef dict plain_of
    cdef tuple full = (value, names)
    cdef PyObject* hit = PyDict_GetItemWithError(cache, full)
    cdef Py_ssize_t i, n
    cdef object v, nv, got, plain
    if hit is not NULL:
        return <object>hit
    plain_of = tr.plain
    hit = PyDict_GetItemWithError(plain_of, value)
    if hit is NULL:
        plain = _plain_value(value)
        plain_of[value] = plain
    else:
        plain = <object>hit
    if plain:
        hit = PyDict_GetItemWithError(reduced, names)
        if hit is NULL:
            got = reduce_fn(names, funcs)
        else:
            got = <object>hit
        names, funcs = got
    n = len(names)
    if n != len(funcs):
        raise ValueError("transformation names and functions differ in length")
    v = value
    for i in range(n):
        key = (v, names[i])
        hit = PyDict_GetItemWithError(cache, key)
        if hit is NULL:
            nv = _tcall(funcs[i], v)
            cache[key] = nv
        else:
            nv = <object>hit
        v = nv
    cache[full] = v
    return v


cdef bint _selects(object t, object key) except -1:
    """``Target.selects`` with its memo read here (regex selectors) or the literal key compared here."""
    cdef PyObject* hit
    if t.key_rx is not None:
        hit = PyDict_GetItemWithError(t.selected, key)
        if hit is not NULL:
            return (<object>hit) is True
        return t.selects(key)
    k = t.key
    return k is None or k == key.lower()


cdef bint _excluded(object coll, object key, object excl, object extra) except -1:
    """``Transaction._excluded``."""
    for group in (excl, extra or ()):
        for x in group:
            if x.collection != coll:
                continue
            if key is None or _selects(x, key):
                return True
    return False


cdef object _expand(TxState tr, object text):
    """``Transaction.expand``: ``%{...}`` macros (``%\\{([^}]{1,200})\\}``, leftmost first) expanded; the text is
    split by :func:`_template` and filled by :func:`_fill` (the transaction's own method where it cannot be)."""
    if type(text) is not str:
        return tr.expand(text)
    if (<str>text).find("%{") < 0:
        return _to_bytes(text)
    tpl = _template(text)
    if tpl is None:
        return tr.expand(text)
    return _fill(tr, <tuple>tpl)


def expand(object tr, object text):
    """``Transaction.expand`` (for tests)."""
    return _expand(tr, text)


cdef object _to_int(object v):
    try:
        return int(v.strip() or b"0")
    except ValueError:
        return 0


cdef object _template(object text):
    """``text`` (a setvar value) split as :func:`_expand` reads it: a tuple of parts, each a bytes literal or
    a ``str`` macro name (``tx.x``, ``MATCHED_VAR``...); None when it is not a ``str`` or a literal part does
    not encode (``_expand`` then runs)."""
    cdef Py_ssize_t i, j, pos, L
    cdef list parts = []
    if type(text) is not str:
        return None
    try:
        i = (<str>text).find("%{")
        pos = 0
        while i >= 0:
            j = (<str>text).find("}", i + 2)
            if j < 0:
                break
            L = j - i - 2
            if 1 <= L <= 200:
                if i > pos:
                    parts.append((<str>text[pos:i]).encode("utf-8", "surrogateescape"))
                parts.append(_macro_part(text[i + 2:j]))
                pos = j + 1
                i = (<str>text).find("%{", pos)
            else:
                i = (<str>text).find("%{", i + 1)
        if pos < len(text):
            parts.append((<str>text[pos:]).encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return None
    return tuple(parts)


cdef object _macro_part(str name):
    """A macro of a template: ``(key,)`` for ``tx.key`` (read from TX), else the name (``tr._macro``)."""
    coll, dot, key = name.partition(".")
    if dot and coll.upper() == "TX":
        return (key.lower(),)
    return name


cdef object _name_template(object name):
    """:func:`_template` of a setvar name with macros; None for a plain name (used as it is)."""
    if type(name) is not str or "%{" not in name:
        return None
    return _template(name)


cdef object _fill(TxState tr, tuple parts):
    """The bytes :func:`_expand` gives for the text :func:`_template` split into ``parts`` (macro values are
    bytes; decoding and encoding them with surrogateescape, as ``_expand`` does, gives them back unchanged)."""
    cdef object part
    cdef list out
    cdef dict tx
    cdef Py_ssize_t n = len(parts)
    if n == 0:
        return b""
    tx = tr.tx
    if n == 1:
        part = parts[0]
        if type(part) is bytes:
            return part
        if type(part) is tuple:
            return tx.get((<tuple>part)[0], b"")
        return tr._macro(part)
    out = []
    for part in parts:
        if type(part) is bytes:
            out.append(part)
        elif type(part) is tuple:
            out.append(tx.get((<tuple>part)[0], b""))
        else:
            out.append(tr._macro(part))
    return b"".join(out)


def fill_for_tests(object tr, object text):
    """:func:`_fill` of :func:`_template` (tests compare it with :func:`expand`)."""
    tpl = _template(text)
    return None if tpl is None else _fill(tr, tpl)


cdef object _setvar(TxState tr, str coll, object name, str op, object value, object tpl=None,
                    object ntpl=None):
    """``Transaction.setvar(coll, name, op, value)``; ``tpl`` / ``ntpl``: ``value`` / ``name`` split by
    :func:`_template` (``ntpl`` only for a name with macros)."""
    cdef dict tx
    if coll != "tx":
        return None
    if type(name) is not str:
        if tr.rec is not None:
            (<list>tr.rec).append(None)
        return tr.setvar(coll, name, op, value)
    if ntpl is not None:
        key = _fill(tr, <tuple>ntpl).decode("utf-8", "surrogateescape").lower()
    else:
        key = _expand(tr, name).decode("utf-8", "surrogateescape").lower() if "%{" in name else name
    if key in tr.pinned:
        return None
    tx = tr.tx
    if op == "del":
        if tr.rec is not None:
            (<list>tr.rec).append(None)
        tx.pop(key, None)
        return None
    val = _fill(tr, <tuple>tpl) if tpl is not None else _expand(tr, value)
    if op == "=":
        tx[key] = val
        if tr.rec is not None:
            (<list>tr.rec).append((key, val))
        return None
    if tr.rec is not None:
        (<list>tr.rec).append(None)
    cur = _to_int(tx.get(key, b"0"))
    delta = _to_int(val) if op == "=+" else -_to_int(val)
    tx[key] = b"%d" % (cur + delta)
    if key.startswith("inbound_anomaly_score_pl"):
        tr.score_added = tr.score_added + delta
    return None


def setvar(object tr, object sv):
    """``Transaction.setvar`` for a :class:`SetVar` (for tests)."""
    _setvar(tr, sv.collection, sv.name, sv.op, sv.value)


# A rule link as the compiled loop reads it (built once per engine by :func:`link_desc`; rules do not
# change after the engine is built): attribute lookups on the rule objects were a tenth of the loop.
DEF L_OP = 0
DEF L_NAMES = 1
DEF L_TFUNCS = 2
DEF L_FAST = 3
DEF L_NEGATED = 4
DEF L_CAPTURE = 5
DEF L_SETVARS = 6
DEF L_MULTI = 7
DEF L_ID = 8
DEF L_TARGETS = 9
DEF L_EXCL = 10
DEF L_TAGS = 11
DEF L_RXMATCH = 12
DEF L_CODE = 13
DEF L_CARG = 14
DEF L_CRE = 15

cdef object _ANCHOR = None


def link_desc(object r, dict cres=None):
    """The tuple :func:`run_phase` reads for one rule link ``r``. ``op.re2_match`` (set by
    ``operators._fast_search``) lets a plain ``@rx`` / ``@pm`` search run without the operator's closure."""
    global _ANCHOR
    rx_match = getattr(r.operator, "re2_match", None)
    if rx_match is not None:
        _ANCHOR = r.operator.re2_anchor
    return (r.operator, r.transforms, r.tfuncs, r.fast_tx, bool(r.op_negated), bool(r.capture),
            tuple((sv.collection, sv.name, sv.op, sv.value, _template(sv.value), _name_template(sv.name))
                  for sv in r.setvars),
            bool(r.multi_match), r.id,
            tuple((t.collection, t.key, t.key_rx, bool(t.count), t) for t in r.targets), r.exclusions, r.tags,
            rx_match, getattr(r.operator, "c_code", -1), getattr(r.operator, "c_arg", None),
            None if cres is None else cres.get(id(r.operator)))


cdef inline object _captures(bytes value, list spans):
    """What ``operators._fast_search``'s operator returns for a match."""
    cdef list out = []
    cdef Py_ssize_t k = 0
    for span in spans:
        if k >= 10:
            break
        a, b = span
        out.append(value[a:b] if a >= 0 else b"")
        k += 1
    return tuple(out)


cdef object _MATCHED = (b"",)
cdef tuple _CAP_KEYS = tuple([str(i) for i in range(10)])  # TX keys of captures 0-9


cdef object _py_int = None
cdef tuple _NO = ()


cdef object _num(bytes v):
    """``operators._int``: ``[+-]digits`` (ASCII whitespace around) read here, anything else in Python."""
    global _py_int
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(v)
    cdef Py_ssize_t a = 0, b = PyBytes_GET_SIZE(v), i
    cdef long long x = 0
    cdef bint neg = False
    while a < b and (s[a] == 32 or 9 <= s[a] <= 13):
        a += 1
    while b > a and (s[b - 1] == 32 or 9 <= s[b - 1] <= 13):
        b -= 1
    if a < b and (s[a] == 43 or s[a] == 45):
        neg = s[a] == 45
        a += 1
    if a < b and b - a <= 18:
        for i in range(a, b):
            if not 48 <= s[i] <= 57:
                break
            x = x * 10 + (s[i] - 48)
        else:
            return -x if neg else x
    if _py_int is None:
        from fsbrain.domains.web.seclang.operators import _int
        _py_int = _int
    return _py_int(v)


cdef object _const_op(int code, object arg, bytes v):
    """The constant-parameter comparisons of ``operators._numeric`` / ``_string`` (``C_CODES``)."""
    cdef object x
    cdef bint ok
    if code < 10:
        x = _num(v)
        if code == 0:
            ok = x == arg
        elif code == 1:
            ok = x >= arg
        elif code == 2:
            ok = x > arg
        elif code == 3:
            ok = x <= arg
        else:
            ok = x < arg
    elif code == 10:
        ok = v == arg
    elif code == 11:
        ok = v.startswith(arg)
    elif code == 12:
        ok = v.endswith(arg)
    elif code == 13:
        ok = v.find(arg) >= 0
    else:
        ok = (<bytes>arg).find(v) >= 0
    return _NO if ok else None


cdef object _run_op(tuple d, object cand, object tr, bint want_captures):
    """The link's operator on one value (negation not applied): None or the captures tuple; with
    ``want_captures`` false a plain regex match returns a placeholder tuple instead of its captures."""
    cdef int code = d[L_CODE]
    if code >= 0 and type(cand) is bytes:
        if code == 20:  # operators.C_MATCH_ALL: the whole value, as capture 0
            return (cand,) if want_captures else _MATCHED
        return _const_op(code, d[L_CARG], <bytes>cand)
    cre = d[L_CRE]
    if cre is not None and type(cand) is bytes:
        return (<CRe>cre).search(<bytes>cand, want_captures)
    rxm = d[L_RXMATCH]
    if rxm is not None and type(cand) is bytes:
        spans = rxm(_ANCHOR, cand, 0, len(<bytes>cand))
        if (<tuple>(<list>spans)[0])[0] < 0:
            return None
        return _captures(cand, spans) if want_captures else _MATCHED
    return d[L_OP](cand, None if tr is None else tr.expand)


cdef list _entries(TxState tr, tuple d, object collections):
    """``Transaction.values`` without building the variable names or a tuple per value: a list of segments,
    ``(coll, entries)`` for a collection's ``(key, value)`` entries (the transaction's own lists, not copied:
    nothing changes them while the link runs) and ``(name, None, value)`` for a value without a key (a
    scalar, or ``&coll``; the name is ``coll:key`` for an entry, ``name`` for such a value)."""
    cdef list out = []
    cdef list entries
    cdef object excl = d[L_EXCL]
    cdef object removed_targets = tr.removed_targets
    cdef object extra = removed_targets.get(d[L_ID]) if removed_targets else None
    cdef object rtt = tr.removed_tag_targets
    cdef object t, tv, v, e, key, key_rx
    cdef str coll
    cdef tuple td
    cdef bint filt
    if rtt:
        tags = d[L_TAGS]
        for tag, t in rtt:
            if tag in tags:
                extra = (extra or []) + [t]
    filt = bool(excl) or bool(extra)
    for td in d[L_TARGETS]:
        coll = td[0]
        key = td[1]
        key_rx = td[2]
        t = td[4]
        if coll in collections:
            if coll == "TX":
                if key is not None:
                    tv = tr.tx.get(key)
                    entries = [] if tv is None else [(key, tv)]
                else:
                    entries = _tx_selected(tr.tx, t, key_rx)
            elif coll == "XML":
                entries = tr.xml(key)
            elif key is not None:
                entries = _index(tr, coll).get(key, EMPTY)
            else:
                entries = _collection(tr, coll)
                if key_rx is not None:
                    entries = [e for e in entries if _selects(t, e[0])]
            if filt and entries:
                entries = [e for e in entries if not _excluded(coll, e[0], excl, extra)]
            if td[3]:
                out.append(("&" + coll, None, b"%d" % len(entries)))
                continue
            if entries:
                out.append((coll, entries))
        else:
            if filt and _excluded(coll, None, excl, extra):
                continue
            v = _scalar(tr, coll)
            if v is None:
                if td[3]:
                    out.append(("&" + coll, None, b"0"))
                continue
            out.append((coll, None, b"1" if td[3] else v))
    return out


cdef list _tx_selected(dict tx, object t, object key_rx):
    """``[e for e in tx.items() if key_rx is None or t.selects(e[0])]`` with the selector's memo read here."""
    cdef list out = []
    cdef dict memo
    cdef PyObject* hit
    if key_rx is None:
        return list(tx.items())
    memo = t.selected
    for k, v in tx.items():
        hit = PyDict_GetItemWithError(memo, k)
        if hit is NULL:
            if t.selects(k):
                out.append((k, v))
        elif (<object>hit) is True:
            out.append((k, v))
    return out


cdef int _set_captures(TxState tr, object res) except -1:
    """A match's captures into ``TX:0``..``TX:n`` (recorded when a memoised chain is being evaluated)."""
    cdef Py_ssize_t gi = 0
    cdef object ck
    for g in res:
        ck = _CAP_KEYS[gi] if gi < 10 else str(gi)
        tr.tx[ck] = g
        if tr.rec is not None:
            (<list>tr.rec).append((ck, g))
        gi += 1
    return 0


cdef bint _match_value(TxState tr, tuple d, object value, str coll, object key, list found, dict reduced,
                       object reduce_fn) except -1:
    """The body of ``WebRuleEngine._match_link``'s loop for one value (``coll:key``, or ``coll`` when ``key`` is
    None): its candidates through the operator; on a match the captures, the matched variables and the
    link's setvars. Whether it matched."""
    cdef tuple names = d[L_NAMES], tfuncs = d[L_TFUNCS], sv
    cdef bint negated = d[L_NEGATED], capture = d[L_CAPTURE]
    cdef object res, cand, last, nv, name
    cdef list cands
    cdef Py_ssize_t gi, ci, nc
    if d[L_MULTI]:
        cands = [value]
        last = value
        for f in tfuncs:
            nv = _tcall(f, last)
            if nv != last:
                cands.append(nv)
                last = nv
        nc = len(cands)
    else:
        cands = None
        nc = 1
        cand = value if not names else _transformed(tr, value, names, tfuncs, reduced, reduce_fn)
    for ci in range(nc):
        if cands is not None:
            cand = cands[ci]
        res = _run_op(d, cand, tr, capture)
        if negated:
            res = () if res is None else None
        if res is not None:
            if capture and res:
                _set_captures(tr, res)
            name = coll if key is None else coll + ":" + key
            found.append((name, cand))
            tr.matched_var = cand
            tr.matched_var_name = name
            tr.matched_vars = found
            for sv in d[L_SETVARS]:
                _setvar(tr, sv[0], sv[1], sv[2], sv[3], sv[4], sv[5])
            return True
    return False


cdef bint _match_link(TxState tr, tuple d, object collections, dict reduced, object reduce_fn) except -1:
    """``WebRuleEngine._match_link`` on a link descriptor."""
    cdef tuple names, fast, sv, seg
    cdef object tv, res, value, key, vname, removed, k, v
    cdef list found
    cdef str coll
    cdef bint negated, capture
    cdef Py_ssize_t gi
    if d[L_OP] is None:
        return False
    names = d[L_NAMES]
    fast = d[L_FAST]
    negated = d[L_NEGATED]
    capture = d[L_CAPTURE]
    if fast is not None:
        removed = tr.removed_targets
        if not removed or d[L_ID] not in removed:
            key, count, vname = fast
            tv = tr.tx.get(key)
            if count:
                res = _run_op(d, b"0" if tv is None else b"1", tr, capture)
            elif tv is None:
                return False
            else:
                if names:
                    tv = _transformed(tr, tv, names, d[L_TFUNCS], reduced, reduce_fn)
                res = _run_op(d, tv, tr, capture)
            if negated:
                res = () if res is None else None
            if res is None:
                return False
            if capture and res:
                _set_captures(tr, res)
            value = tv if tv is not None and not count else (b"0" if tv is None else b"1")
            tr.matched_var = value
            tr.matched_var_name = vname
            tr.matched_vars = [(vname, value)]
            for sv in d[L_SETVARS]:
                _setvar(tr, sv[0], sv[1], sv[2], sv[3], sv[4], sv[5])
            return True
    found = []
    for seg in _entries(tr, d, collections):
        if PyTuple_GET_SIZE(seg) == 3:
            _match_value(tr, d, seg[2], seg[0], None, found, reduced, reduce_fn)
            continue
        coll = seg[0]
        for k, v in seg[1]:
            _match_value(tr, d, v, coll, k, found, reduced, reduce_fn)
    if found:
        tr.matched_vars = found
        return True
    return False


def match_chain(object tr, object rule, object collections, dict reduced, object reduce_fn):
    """``WebRuleEngine._match_chain`` (for tests; descriptors built on the fly)."""
    r = rule
    tr.rule = rule
    while r is not None:
        if not _match_link(tr, link_desc(r), collections, reduced, reduce_fn):
            return False
        r = r.chain
    return True


cdef bint _target_removed(object rule, object removed_targets, object removed_tag_targets) except -1:
    """``WebRuleEngine._target_removed``."""
    if rule.id in removed_targets:
        return True
    tags = rule.tags
    for tag, _t in removed_tag_targets:
        if tag in tags:
            return True
    return False


def plan_entry(object rule, Py_ssize_t bit, object const, dict cres=None, bint memo=False):
    """One entry of the compiled plan: ``(rule or None, prefilter bit or -1, constant outcome, link
    descriptors, id, tags, skipAfter, skip, is a SecRule, disruptive action as a code (:data:`_D_STOP` for
    deny / drop / redirect, :data:`_D_ALLOW` for allow, 0 for the others), the setvars a SecAction runs when it
    fires, the ctl actions of the whole chain, logged, memo)``. ``memo``: the chain's no-match outcomes are
    memoised per entries of its first link's collection (``WebRuleEngine._memo_specs`` says which chains
    qualify): the entry's last field is then ``(outcomes, collection)``, else None."""
    if rule is None:
        return (None, bit, const, (), 0, (), None, 0, False, 0, (), (), False, None)
    is_rule = rule.kind == "rule"
    links = tuple(link_desc(r, cres) for r in rule.links()) if is_rule else ()
    setvars = () if is_rule else tuple((sv.collection, sv.name, sv.op, sv.value, _template(sv.value),
                                        _name_template(sv.name)) for sv in rule.setvars)
    ctls = tuple((c[0], c[1]) for link in rule.links() for c in link.ctls)
    return (rule, bit, const, links, rule.id, rule.tags, rule.skip_after, rule.skip, is_rule,
            _D_STOP if rule.disruptive in _DISRUPT else _D_ALLOW if rule.disruptive == "allow" else 0, setvars, ctls,
            bool(rule.log), ({}, rule.targets[0].collection) if memo and is_rule else None)


# outcomes kept per memoised chain (then forgotten all at once), and the largest collection memoised: clients
# send a few dozen header-name lists; these bounds keep a client that invents long ones to a few MB per chain
DEF MEMO_MAX = 512
DEF MEMO_MAX_ENTRIES = 32
DEF MEMO_MAX_BYTES = 1024


cdef bint _chain_memo(TxState tr, tuple memo, tuple links, object collections, dict reduced,
                      object reduce_fn) except -1:
    """Evaluate a memoisable two-link chain (``plan_entry``'s ``memo``); whether it matched.

    Its first link reads one request collection of phase 1 and only assigns TX from literals and captures;
    its second reads TX variables only the first link writes (``WebRuleEngine._memo_specs``). So when the
    chain does not match, what it leaves behind (the first link's TX writes and the matched variables) is a
    function of that collection's entries: recorded on the first request with those entries, replayed on
    the next ones instead of evaluating the chain. A match is never memoised (it is evaluated every time)."""
    cdef dict outcomes = <dict>memo[0]
    cdef object ents = _collection(tr, <str>memo[1])
    cdef object key, got, rec
    cdef PyObject* hit
    cdef dict tx
    cdef bint ok, first
    cdef tuple d, w
    cdef Py_ssize_t size = 0
    key = None
    if type(ents) is list and len(<list>ents) <= MEMO_MAX_ENTRIES:
        for w in <list>ents:
            size += len(w[1]) if type(w[1]) is bytes else MEMO_MAX_BYTES + 1
        if size > MEMO_MAX_BYTES:
            ents = None
    else:
        ents = None
    if ents is not None:
        key = tuple(<list>ents)
        hit = PyDict_GetItemWithError(outcomes, key)
        if hit is not NULL:
            got = <object>hit
            tx = tr.tx
            for w in <tuple>(<tuple>got)[0]:
                tx[w[0]] = w[1]
            if (<tuple>got)[1]:
                tr.matched_var = (<tuple>got)[2]
                tr.matched_var_name = (<tuple>got)[3]
                tr.matched_vars = list(<tuple>(<tuple>got)[4])
            return False
    rec = tr.rec = [] if key is not None else None  # (nothing to record for a collection not memoised)
    try:
        ok = True
        first = False
        for d in links:
            if not _match_link(tr, d, collections, reduced, reduce_fn):
                ok = False
                break
            first = True
    finally:
        tr.rec = None
    if not ok and key is not None and None not in <list>rec:
        if len(outcomes) >= MEMO_MAX:
            outcomes.clear()
        outcomes[key] = (tuple(<list>rec), first, tr.matched_var, tr.matched_var_name,
                         tuple(tr.matched_vars) if first else ())
    return ok


cdef object _fire(object engine, TxState tr, object rule, tuple ent, list matched, object before):
    """``WebRuleEngine._fire``: the actions of a rule that matched, and its log entry."""
    cdef tuple sv
    tr.rule = rule
    for sv in ent[10]:
        _setvar(tr, sv[0], sv[1], sv[2], sv[3], sv[4], sv[5])
    if ent[11]:
        ctl = tr.ctl
        for cname, cval in ent[11]:
            ctl(cname, cval)
    if not ent[12] or not ent[8]:
        return None
    engine._log_match(tr, rule, matched, tr.score_added - before)
    return None


def run_phase(object engine, TxState tr, int ph, list matched, Py_ssize_t start, dict reduced, object reduce_fn):
    """``WebRuleEngine._run_phase`` (same order, same skips, same side effects)."""
    cdef list plan = engine._cplans[ph]
    cdef dict markers = engine.markers[ph]
    cdef object pf_mask = engine.prefilter.mask
    cdef object collections = engine.collections
    cdef Py_ssize_t i = start, n = len(plan), nbytes = engine._mask_bytes, bit
    cdef tuple ent, d
    cdef object rule, const, mask = 0, buf_of = None, before, skip_after, tags, rid
    cdef long disruptive
    cdef bytes buf = b""
    cdef const unsigned char* bp = NULL
    cdef object removed_ids = tr.removed_ids
    cdef object removed_tags = tr.removed_tags
    cdef object removed_targets = tr.removed_targets
    cdef object removed_tag_targets = tr.removed_tag_targets
    cdef bint ok, mask_ok = False
    while i < n:
        ent = <tuple>plan[i]
        bit = <Py_ssize_t>ent[1]
        i += 1
        if bit >= 0:
            if not mask_ok:  # the mask changes only by a ctl (which resets tr.pf_phase): read once until then
                if tr.pf_phase != ph:
                    mask = pf_mask(tr)
                else:
                    mask = tr.pf_mask
                mask_ok = True
                if mask is not buf_of:
                    buf = (<object>mask).to_bytes(nbytes, "little")
                    bp = <const unsigned char*>PyBytes_AS_STRING(buf)
                    buf_of = mask
            if not (bp[bit >> 3] >> (bit & 7)) & 1:
                continue  # (the entry's other fields read only past this test)
        elif ent[0] is None:
            continue  # a marker
        rule = ent[0]
        const = ent[2]
        rid = ent[4]
        if removed_ids and rid in removed_ids:
            continue
        if removed_tags:
            tags = ent[5]
            if any(t in tags for t in removed_tags):
                continue
        if const is not None and not (const and (removed_targets or removed_tag_targets)
                                      and _target_removed(rule, removed_targets, removed_tag_targets)):
            if const:
                skip_after = ent[6]
                if skip_after:
                    i = markers.get(skip_after, n - 1) + 1
                elif ent[7]:
                    i += ent[7]
            continue
        before = tr.score_added
        if ent[8]:
            tr.rule = rule
            if ent[13] is not None and not (removed_ids or removed_tags or removed_targets or removed_tag_targets):
                if not _chain_memo(tr, <tuple>ent[13], <tuple>ent[3], collections, reduced, reduce_fn):
                    continue
            else:
                ok = True
                for d in ent[3]:
                    if not _match_link(tr, d, collections, reduced, reduce_fn):
                        ok = False
                        break
                if not ok:
                    continue
        _fire(engine, tr, rule, ent, matched, before)
        if ent[11]:
            mask_ok = False  # a ctl may have changed what the prefilter sees
        removed_ids = tr.removed_ids
        removed_tags = tr.removed_tags
        removed_targets = tr.removed_targets
        removed_tag_targets = tr.removed_tag_targets
        disruptive = ent[9]
        if disruptive == _D_STOP and tr.rule_engine == "On":
            return rid
        if disruptive == _D_ALLOW:
            return None
        skip_after = ent[6]
        if skip_after:
            i = markers.get(skip_after, n - 1) + 1
        elif ent[7]:
            i += ent[7]
    return None


# ---- request parsing --------------------------------------------------------------------------------

cdef object _to_bytes(object value):
    """``request.to_bytes`` (an ASCII ``str`` is copied as it is: no codec lookup)."""
    if isinstance(value, bytes):
        return value
    if type(value) is str and PyUnicode_IS_ASCII(value):
        return PyBytes_FromStringAndSize(<const char*>PyUnicode_DATA(value), PyUnicode_GET_LENGTH(value))
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


def to_bytes(object value):
    """``request.to_bytes`` compiled: the same bytes, an ASCII ``str`` copied without a codec lookup."""
    return _to_bytes(value)


def header_pairs(list headers, Py_ssize_t max_headers, Py_ssize_t max_header_bytes):
    """``HttpRequest.header_pairs``: ``(pairs, limit hit or None)``."""
    cdef list out = []
    cdef Py_ssize_t i = 0, total = 0
    cdef object kb, vb
    for k, v in headers:
        if i >= max_headers:
            return out, "max_headers"
        kb = _to_bytes(k)
        vb = _to_bytes(v)
        total += len(kb) + len(vb)
        if total > max_header_bytes:
            return out, "max_header_bytes"
        out.append((kb, vb))
        i += 1
    return out, None


def index(list entries):
    """``Transaction.index``: entries by lower-cased key."""
    cdef dict idx = {}
    cdef object lst
    cdef PyObject* hit
    for e in entries:
        k = e[0].lower()
        hit = PyDict_GetItemWithError(idx, k)
        if hit is NULL:
            idx[k] = [e]
        else:
            (<list>hit).append(e)
    return idx


# ---- transformations --------------------------------------------------------------------------------

cdef inline int _cont(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, unsigned char lo, unsigned char hi) nogil:
    return i < n and lo <= s[i] <= hi


def utf8_to_unicode(bytes v not None):
    """``transforms.utf8_to_unicode``: valid UTF-8 multi-byte sequences become ``%uHHHH``."""
    return _utf8_to_unicode(v)


def utf8_to_unicode_any(v):
    """:func:`utf8_to_unicode` of bytes, the Python function of anything else."""
    if type(v) is not bytes:
        return _PY["utf8tounicode"](v)
    return _utf8_to_unicode(<bytes>v)


cdef object _utf8_to_unicode(bytes v):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(v), i = 0, size
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(v)
    cdef unsigned char c
    cdef bint ok, ascii = True
    cdef unsigned int code
    for i in range(n):
        if s[i] >= 128:
            ascii = False
            break
    if ascii:
        return v
    out = bytearray()
    i = 0
    while i < n:
        c = s[i]
        if c < 0x80:
            size = 1
        elif 0xC2 <= c <= 0xDF:
            size = 2
        elif 0xE0 <= c <= 0xEF:
            size = 3
        elif 0xF0 <= c <= 0xF4:
            size = 4
        else:
            size = 0
        if size <= 1:
            out.append(c)
            i += 1
            continue
        # strict UTF-8 (as bytes.decode): no overlong forms, no surrogates, nothing above U+10FFFF
        if size == 2:
            ok = _cont(s, i + 1, n, 0x80, 0xBF)
            code = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F) if ok else 0
        elif size == 3:
            if c == 0xE0:
                ok = _cont(s, i + 1, n, 0xA0, 0xBF)
            elif c == 0xED:
                ok = _cont(s, i + 1, n, 0x80, 0x9F)
            else:
                ok = _cont(s, i + 1, n, 0x80, 0xBF)
            ok = ok and _cont(s, i + 2, n, 0x80, 0xBF)
            code = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F) if ok else 0
        else:
            if c == 0xF0:
                ok = _cont(s, i + 1, n, 0x90, 0xBF)
            elif c == 0xF4:
                ok = _cont(s, i + 1, n, 0x80, 0x8F)
            else:
                ok = _cont(s, i + 1, n, 0x80, 0xBF)
            ok = ok and _cont(s, i + 2, n, 0x80, 0xBF) and _cont(s, i + 3, n, 0x80, 0xBF)
            code = (((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6)
                    | (s[i + 3] & 0x3F)) if ok else 0
        if not ok:
            out.append(c)
            i += 1
            continue
        out += b"%%u%04x" % code
        i += size
    return bytes(out)


def url_decode_uni(bytes v not None):
    """``transforms.url_decode_uni``: ``%uHHHH`` (full-width forms to ASCII, others to the low byte), then
    :func:`url_decode`."""
    return _url_decode_uni(v)


def url_decode_uni_any(v):
    """:func:`url_decode_uni` of bytes, the Python function of anything else."""
    if type(v) is not bytes:
        return _PY["urldecodeuni"](v)
    return _url_decode_uni(<bytes>v)


def url_decode_any(v):
    """:func:`url_decode` of bytes, the Python function of anything else."""
    if type(v) is not bytes:
        return _PY["urldecode"](v)
    return _url_decode(<bytes>v)


cdef object _url_decode_uni(bytes v):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(v), i = 0, j = 0
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(v)
    cdef unsigned char* o
    cdef int h0, h1, h2, h3
    cdef unsigned int code
    cdef bint has_u = False
    for i in range(n - 1):
        if s[i] == 37 and (s[i + 1] == 117 or s[i + 1] == 85):
            has_u = True
            break
    if not has_u:
        return _url_decode(v)
    out = PyBytes_FromStringAndSize(NULL, n)
    o = <unsigned char*>PyBytes_AS_STRING(out)
    i = 0
    while i < n:
        if s[i] == 37 and i + 5 < n and (s[i + 1] == 117 or s[i + 1] == 85):
            h0 = _hexval(s[i + 2])
            h1 = _hexval(s[i + 3])
            h2 = _hexval(s[i + 4])
            h3 = _hexval(s[i + 5])
            if h0 >= 0 and h1 >= 0 and h2 >= 0 and h3 >= 0:
                code = (h0 << 12) | (h1 << 8) | (h2 << 4) | h3
                if 0xFF01 <= code <= 0xFF5E:
                    o[j] = <unsigned char>(code - 0xFEE0)
                else:
                    o[j] = <unsigned char>(code & 0xFF)
                j += 1
                i += 6
                continue
        o[j] = s[i]
        j += 1
        i += 1
    return _url_decode(out[:j])


# ---- SQL lexer of @detectSQLi -----------------------------------------------------------------------

cdef inline bint _alnum(unsigned char c) nogil:
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122)


cdef inline bint _single(unsigned char c) nogil:
    # b"=<>!+-*/%^|&~:"
    return (c == 61 or c == 60 or c == 62 or c == 33 or c == 43 or c == 45 or c == 42 or c == 47 or c == 37
            or c == 94 or c == 124 or c == 38 or c == 126 or c == 58)


def sql_tokens(bytes s not None, object logic, object opwords, object statements, object danger_funcs,
               object keywords):
    """``injection._tokens``: SQL-ish tokens ``(type, text)`` (the word sets are passed in)."""
    cdef list out = []
    cdef Py_ssize_t i = 0, n = PyBytes_GET_SIZE(s), j, k, end
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(s)
    cdef unsigned char c, q
    cdef object w, two
    while i < n and len(out) < 64:
        c = p[i]
        if c == 32 or c == 9 or c == 13 or c == 10 or c == 11 or c == 12 or c == 0xA0 or c == 0:
            i += 1
            continue
        if c == 47 and i + 1 < n and p[i + 1] == 42:  # /*
            if i + 2 < n and p[i + 2] == 33:  # /*! MySQL executable comment: the content is code
                i += 3
                while i < n and 48 <= p[i] <= 57:
                    i += 1
                continue
            end = s.find(b"*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(("c", b"/*"))
            continue
        if c == 42 and i + 1 < n and p[i + 1] == 47:  # */
            i += 2
            continue
        if (c == 45 and i + 1 < n and p[i + 1] == 45 and (i + 2 >= n or p[i + 2] == 32 or p[i + 2] == 9
                                                          or p[i + 2] == 13 or p[i + 2] == 10 or p[i + 2] == 45
                                                          or p[i + 2] == 0)) or c == 35:
            out.append(("c", s[i:i + 2]))
            break
        if c == 39 or c == 34 or c == 96:  # ' " `
            q = c
            j = i + 1
            while j < n:
                if p[j] == q:
                    if j + 1 < n and p[j + 1] == q:
                        j += 2
                        continue
                    break
                if p[j] == 92:
                    j += 1
                j += 1
            out.append(("n" if q == 96 else "s", s[i:j + 1]))
            i = j + 1
            continue
        if (48 <= c <= 57) or (c == 46 and i + 1 < n and 48 <= p[i + 1] <= 57):
            j = i + 1
            while j < n and (_alnum(p[j]) or p[j] == 46):
                j += 1
            out.append(("1", s[i:j]))
            i = j
            continue
        if c == 64:  # @var, @@var
            j = i + 1
            while j < n and (_alnum(p[j]) or p[j] == 64 or p[j] == 95 or p[j] == 46 or p[j] == 36):
                j += 1
            out.append(("v", s[i:j].lower()))
            i = j
            continue
        if (65 <= c <= 90) or (97 <= c <= 122) or c == 95 or c == 36 or c == 92:
            j = i + 1
            while j < n and (_alnum(p[j]) or p[j] == 95 or p[j] == 36 or p[j] == 46):
                j += 1
            w = s[i:j].lower()
            i = j
            k = i
            while k < n and (p[k] == 32 or p[k] == 9 or p[k] == 13 or p[k] == 10):
                k += 1
            if w in logic:
                out.append(("&", w))
            elif w in opwords:
                out.append(("o", w))
            elif w == b"union":
                out.append(("U", w))
            elif w in statements:
                out.append(("E", w))
            elif k < n and p[k] == 40 and (w in danger_funcs or w not in keywords):
                out.append(("f", w))
            elif w in keywords:
                out.append(("k", w))
            else:
                out.append(("n", w))
            continue
        if (c == 38 and i + 1 < n and p[i + 1] == 38) or (c == 124 and i + 1 < n and p[i + 1] == 124):
            out.append(("&", s[i:i + 2]))
            i += 2
            continue
        if _single(c):
            j = i + 1
            while j < n and _single(p[j]) and j - i < 3:
                j += 1
            out.append(("o", s[i:j]))
            i = j
            continue
        if c == 40:
            out.append(("(", b"("))
        elif c == 41:
            out.append((")", b")"))
        elif c == 44:
            out.append((",", b","))
        elif c == 59:
            out.append((";", b";"))
        i += 1
    return out


# ---- web model --------------------------------------------------------------------------------------

def ngram_weights(str norm not None, dict weights not None, Py_ssize_t lo, Py_ssize_t hi):
    """The weights (in ``weights``) of the distinct character n-grams, ``lo``..``hi`` long, of
    ``"\\x02" + norm + "\\x03"``: what ``[weights[g] for g in ml.ngrams(norm) if g in weights]`` holds, in
    another order (the model sums them with ``math.fsum``, which does not depend on the order)."""
    cdef str s = "\x02" + norm + "\x03"
    cdef Py_ssize_t n_s = len(s), n, i
    cdef set seen = set()
    cdef list ws = []
    cdef PyObject* hit
    for n in range(lo, hi + 1):
        for i in range(n_s - n + 1):
            g = s[i:i + n]
            hit = PyDict_GetItemWithError(weights, g)
            if hit is NULL or g in seen:
                continue
            seen.add(g)
            ws.append(<object>hit)
    return ws


# ---- more transformations (``transforms.py`` stays the reference) -------------------------------------
# Each takes any object: bytes run here, anything else goes to the Python function (registered by
# ``transforms.py`` with :func:`set_python`). The common case — nothing to decode — returns the value itself
# without running Python code.

cdef dict _PY = {}


def set_python(dict funcs not None):
    """Register the Python reference functions (by ``TRANSFORMS`` name) the compiled ones fall back to."""
    _PY.update(funcs)


cdef class _Guarded:
    """A transformation that returns the value unchanged unless it holds one of ``marks``, in which case
    the Python function runs (``jsDecode``: a backslash, ``htmlEntityDecode``: ``&``...)."""
    cdef object py
    cdef unsigned char m[8]
    cdef int nm
    cdef public str name

    def __init__(self, py, bytes marks not None, str name):
        cdef Py_ssize_t i
        if not 1 <= len(marks) <= 8:
            raise ValueError("1 to 8 marks")
        self.py = py
        self.nm = len(marks)
        for i in range(self.nm):
            self.m[i] = marks[i]
        self.name = name

    def __call__(self, v):
        return self.apply(v)

    cdef object apply(self, object v):
        """``self(v)``, called from the compiled code without a Python call (:func:`_tcall`)."""
        if type(v) is not bytes:
            return self.py(v)
        cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(<bytes>v)
        cdef Py_ssize_t i, n = PyBytes_GET_SIZE(<bytes>v)
        cdef int k
        cdef unsigned char c
        for i in range(n):
            c = s[i]
            for k in range(self.nm):
                if c == self.m[k]:
                    return self.py(v)
        return v

    def __repr__(self):
        return f"<compiled transformation {self.name}>"

    def __reduce__(self):
        return (guarded, (self.py, bytes([self.m[i] for i in range(self.nm)]), self.name))

    def __copy__(self):
        return self  # immutable

    def __deepcopy__(self, memo):
        return self


cdef class InjectionOp:
    """``@detectSQLi`` / ``@detectXSS`` (``injection.detect_sqli`` / ``detect_xss``) with their cheap
    rejections done here and the Python detector run on the rest; same results. SQLi: shorter than 2 bytes,
    or only the bytes of ``injection._PLAIN_BYTES`` (ASCII) and no SQL word (``word``, the compiled
    ``injection._SQL_WORD``; None: the detector decides). XSS: shorter than 4 bytes, or no ``<`` and
    neither a ``j``/``v``/``l``/``d`` first after ASCII whitespace nor ``=`` with a quote
    (``injection._may_url_or_breakout``). Most parameter values are rejected without a Python call."""
    cdef object py
    cdef int kind
    cdef object word
    cdef unsigned char plain[256]
    cdef public str name

    def __init__(self, py, int kind, bytes plain_bytes not None, word=None):
        cdef Py_ssize_t i
        if kind != 1 and kind != 2:
            raise ValueError("kind: 1 (SQLi) or 2 (XSS)")
        if word is not None and type(word) is not CRe:
            raise TypeError("word: a CRe or None")
        self.py = py
        self.kind = kind
        self.word = word
        for i in range(256):
            self.plain[i] = 0
        for i in range(len(plain_bytes)):
            self.plain[<unsigned char>plain_bytes[i]] = 1
        self.name = "detectSQLi" if kind == 1 else "detectXSS"

    def __call__(self, v, _expand=None):
        if type(v) is not bytes:
            return self.py(v)
        cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(<bytes>v)
        cdef Py_ssize_t i, n = PyBytes_GET_SIZE(<bytes>v)
        cdef unsigned char c
        cdef bint eq = False, quote = False
        if self.kind == 1:
            if n < 2:
                return None
            if self.word is None:
                return self.py(v)
            for i in range(n):
                if not self.plain[s[i]]:
                    return self.py(v)
            if (<CRe>self.word).search(<bytes>v, False) is None:
                return None
            return self.py(v)
        if n < 4:
            return None
        i = 0
        while i < n and (s[i] == 32 or 9 <= s[i] <= 13):  # bytes.lstrip(): space \t \n \v \f \r
            i += 1
        if i < n:
            c = s[i] | 32 if 65 <= s[i] <= 90 else s[i]
            if c == 106 or c == 118 or c == 108 or c == 100:  # j v l d
                return self.py(v)
        for i in range(n):
            c = s[i]
            if c == 60:  # "<"
                return self.py(v)
            if c == 61:
                eq = True
            elif c == 34 or c == 39 or c == 96:
                quote = True
        if eq and quote:
            return self.py(v)
        return None

    def __repr__(self):
        return f"<compiled operator @{self.name}>"

    def __reduce__(self):
        plain = bytes([i for i in range(256) if self.plain[i]])
        return (_injection_op, (self.py, self.kind, plain, None if self.word is None else (<CRe>self.word).pattern))

    def __copy__(self):
        return self  # immutable

    def __deepcopy__(self, memo):
        return self


def _injection_op(py, int kind, bytes plain_bytes, word_pattern):
    """:class:`InjectionOp` rebuilt from its parts (unpickling)."""
    return InjectionOp(py, kind, plain_bytes, None if word_pattern is None else CRe(word_pattern))


def guarded(py, bytes marks not None, str name):
    """A :class:`_Guarded` transformation: ``py(v)`` when ``v`` holds a byte of ``marks``, else ``v``."""
    return _Guarded(py, marks, name)


def lowercase(v):
    """``transforms.lowercase``."""
    if type(v) is not bytes:
        return _PY["lowercase"](v)
    return (<bytes>v).lower()


cdef inline bint _cmd_ws(unsigned char c):
    return c == 32 or c == 9 or c == 10 or c == 13 or c == 11 or c == 12


cpdef object cmd_line(v):
    """``transforms.cmd_line``: drop ``\\ " ' ^``, ``,;`` to space, runs of whitespace to one space, no
    space before ``/`` or ``(``, ASCII lower case."""
    if type(v) is not bytes:
        return _PY["cmdline"](v)
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(<bytes>v)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(<bytes>v), j = 0
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef unsigned char c
    cdef bint pending = False
    for i in range(n):
        c = s[i]
        if c == 92 or c == 34 or c == 39 or c == 94:  # \ " ' ^
            continue
        if c == 44 or c == 59:  # , ;
            c = 32
        if _cmd_ws(c):
            pending = True
            continue
        if pending:
            if c != 47 and c != 40:  # / (
                o[j] = 32
                j += 1
            pending = False
        if 65 <= c <= 90:
            c += 32
        o[j] = c
        j += 1
    if pending:
        o[j] = 32
        j += 1
    if j == n:
        return out
    return out[:j]


cpdef object compress_whitespace(v):
    """``transforms.compress_whitespace``: every run of whitespace (0xA0 included) becomes one space."""
    if type(v) is not bytes:
        return _PY["compresswhitespace"](v)
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(<bytes>v)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(<bytes>v), j = 0
    cdef unsigned char c
    cdef bint ws, changed = False, prev = False
    for i in range(n):  # unchanged unless a whitespace other than a lone space occurs
        c = s[i]
        ws = _cmd_ws(c) or c == 0xA0
        if ws and (c != 32 or prev):
            changed = True
            break
        prev = ws
    if not changed:
        return v
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    prev = False
    for i in range(n):
        c = s[i]
        if _cmd_ws(c) or c == 0xA0:
            if not prev:
                o[j] = 32
                j += 1
            prev = True
        else:
            o[j] = c
            j += 1
            prev = False
    return out[:j]


cpdef object normalize_path(v):
    """``transforms.normalize_path``: the value itself when that is the result (no empty inner segment,
    no ``.`` or ``..`` segment), otherwise the Python function."""
    if type(v) is not bytes:
        return _PY["normalizepath"](v)
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(<bytes>v)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(<bytes>v), start = 0, L
    for i in range(n + 1):
        if i == n or s[i] == 47:
            L = i - start
            if L == 0:
                if not (start == 0 or i == n):  # an empty segment inside: "//"
                    return _PY["normalizepath"](v)
            elif L == 1 and s[start] == 46:
                return _PY["normalizepath"](v)
            elif L == 2 and s[start] == 46 and s[start + 1] == 46:
                return _PY["normalizepath"](v)
            start = i + 1
    return v


cdef object _a2b = None


def base64_decode(v):
    """``transforms.base64_decode``: the leading run of base64 characters decoded (a lone last character
    dropped, ``=`` padding added)."""
    global _a2b
    if type(v) is not bytes:
        return _PY["base64decode"](v)
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(<bytes>v)
    cdef Py_ssize_t i = 0, n = PyBytes_GET_SIZE(<bytes>v)
    cdef unsigned char c
    while i < n:
        c = s[i]
        if not ((65 <= c <= 90) or (97 <= c <= 122) or (48 <= c <= 57) or c == 43 or c == 47):
            break
        i += 1
    if i % 4 == 1:
        i -= 1
    if i == 0:
        return b""
    if _a2b is None:
        import binascii
        _a2b = binascii.a2b_base64
    data = (<bytes>v)[:i]
    if i % 4:
        data += b"=" * (4 - i % 4)
    try:
        return _a2b(data)
    except ValueError:  # binascii.Error
        return b""


def run_op_for_tests(tuple d, object value):
    """``_run_op`` on one value (tests compare it with the operator itself)."""
    return _run_op(d, value, None, True)


def names(list entries):
    """``transaction._names``: ``(key, key as bytes)`` of each entry."""
    cdef list out = []
    cdef tuple e
    for e in entries:
        k = e[0]
        out.append((k, _to_bytes(k)))
    return out


cpdef object remove_whitespace(v):
    """``transforms.remove_whitespace``: every whitespace byte (0xA0 included) removed."""
    if type(v) is not bytes:
        return _PY["removewhitespace"](v)
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(<bytes>v)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(<bytes>v), j = 0
    cdef unsigned char c
    for i in range(n):
        c = s[i]
        if _cmd_ws(c) or c == 0xA0:
            break
    else:
        return v
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    for i in range(n):
        c = s[i]
        if not (_cmd_ws(c) or c == 0xA0):
            o[j] = c
            j += 1
    return out[:j]


cpdef object normalize_path_win(v):
    """``transforms.normalize_path_win``: without a backslash, :func:`normalize_path`."""
    if type(v) is not bytes or 92 in <bytes>v:
        return _PY["normalizepathwin"](v)
    return normalize_path(v)


cdef class cached_property:
    """``request.cached_property`` (a lock-free ``functools.cached_property``) with its ``__get__`` compiled:
    the first access of each lazy request attribute runs no extra Python frame."""
    cdef object func
    cdef public str attrname

    def __init__(self, func):
        self.func = func
        self.attrname = func.__name__

    def __set_name__(self, owner, name):
        self.attrname = name

    @property
    def __wrapped__(self):
        return self.func

    def __get__(self, instance, owner):
        if instance is None:
            return self
        value = self.func(instance)
        instance.__dict__[self.attrname] = value
        return value


# ---- transformations called from the compiled code ------------------------------------------------------
# the module's own transformation functions (as ``transforms.TRANSFORMS`` holds them), to recognise them
cdef object _F_LOWER = lowercase, _F_URLDEC = url_decode_any, _F_URLUNI = url_decode_uni_any
cdef object _F_UTF8 = utf8_to_unicode_any, _F_CMD = globals()["cmd_line"]
cdef object _F_CWS = globals()["compress_whitespace"], _F_NPATH = globals()["normalize_path"]
cdef object _F_RWS = globals()["remove_whitespace"], _F_NPATHWIN = globals()["normalize_path_win"]


cdef object _tcall(object f, object v):
    """``f(v)`` for a transformation function ``f``: this module's own (a :class:`_Guarded` or one of the
    functions above) run without a Python call, any other called."""
    if type(f) is _Guarded:
        return (<_Guarded>f).apply(v)
    if type(v) is bytes:
        if f is _F_LOWER:
            return (<bytes>v).lower()
        if f is _F_URLUNI:
            return _url_decode_uni(<bytes>v)
        if f is _F_URLDEC:
            return _url_decode(<bytes>v)
        if f is _F_UTF8:
            return _utf8_to_unicode(<bytes>v)
        if f is _F_CMD:
            return cmd_line(v)
        if f is _F_CWS:
            return compress_whitespace(v)
        if f is _F_RWS:
            return remove_whitespace(v)
        if f is _F_NPATH:
            return normalize_path(v)
        if f is _F_NPATHWIN:
            return normalize_path_win(v)
    return f(v)
