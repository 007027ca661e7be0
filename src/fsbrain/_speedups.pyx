# cython: language_level=3, boundscheck=False, wraparound=False, infer_types=False
"""Compiled hot paths of the in-process engine (optional).

Every function here is a line-by-line port of pure-Python code that stays in the package as the
reference and the fallback (used when this extension is not built, or with ``FSBRAIN_SPEEDUPS=0``):

* :func:`apply_hot` — :meth:`fsbrain.state.memory.MemoryStateBackend._apply` for an event that is not
  late, i.e. the fast paths of the ``ug`` methods of :mod:`fsbrain.state._windows` and
  :mod:`fsbrain.state._extremes`. Anything off the fast path (a bucket older than the entity's newest,
  a value that needs encoding or is invalid) calls the Python ``ug`` itself, so errors and rare cases
  behave exactly as in Python.
* :func:`collect` — the per-feature loop of :meth:`fsbrain.engine.evaluator.Engine._features` that turns
  one event into window ops and reads.

``tests/engine/test_speedups.py`` runs both implementations on the same streams and requires identical
results.
"""

from libc.math cimport floor, isfinite

cdef object VALUE_SCALE = 10000
cdef double LL_LIMIT = 9.0e18

# aggregate kinds (see fsbrain.state.memory.KIND_FOR_AGG)
DEF K_COUNT = 0
DEF K_SUM = 1
DEF K_MEAN = 2
DEF K_MIN = 3
DEF K_MAX = 4
DEF K_DISTINCT = 5


cdef inline void _advance(object sp, list st, int kind, long long b, object pb, long long n):
    """``Space.advance``: materialise the bucket dict, prune what leaves the window, move ``h`` to ``b``."""
    cdef object lo
    if st[3] is None:
        if kind == K_MEAN:
            st[3] = {st[0]: [st[2], st[4]]}
        elif kind == K_DISTINCT:
            if type(st[2]) is str:  # one value kept bare (see DistinctSpace)
                st[3] = {st[0]: {st[2]}}
                st[2] = {st[2]: 1}
            else:
                st[3] = {st[0]: set(st[2])}
        else:
            st[3] = {st[0]: st[2]}
    lo = b - n
    if st[1] <= lo:
        sp.prune(st, lo)
    st[0] = pb
    if st[1] > pb:
        st[1] = pb


cdef inline object _count(object sp, dict data, object key, long long b, object pb, long long n, object value):
    cdef list st = data.get(key)
    cdef long long h
    cdef object bk
    if st is None:
        data[key] = [pb, pb, 1, None]
        return 1
    h = st[0]
    if b == h:
        bk = st[3]
        if bk is not None:
            bk[pb] += 1
        st[2] += 1
        return st[2]
    if b > h:
        if st[3] is None and h <= b - n:
            st[0] = pb
            st[1] = pb
            st[2] = 1
            return 1
        _advance(sp, st, K_COUNT, b, pb, n)
        st[3][pb] = 1
        st[2] += 1
        return st[2]
    return sp.ug(key, pb, value, None)


cdef inline object _units(object value):
    """Fixed-point units of a plain int or finite float, else None (the caller falls back to Python)."""
    cdef type tp = type(value)
    cdef double d
    if tp is int:
        return value * VALUE_SCALE
    if tp is float:
        d = value
        if isfinite(d * 10000.0):
            return round(value * VALUE_SCALE)
    return None


cdef inline object _sum(object sp, dict data, object key, long long b, object pb, long long n, object value):
    cdef object x = _units(value)
    cdef list st
    cdef long long h
    cdef object bk
    if x is None:
        return sp.ug(key, pb, value, None)
    st = data.get(key)
    if st is None:
        data[key] = [pb, pb, x, None]
        return x / VALUE_SCALE
    h = st[0]
    if b == h:
        bk = st[3]
        if bk is not None:
            bk[pb] += x
        st[2] += x
        return st[2] / VALUE_SCALE
    if b > h:
        if st[3] is None and h <= b - n:
            st[0] = pb
            st[1] = pb
            st[2] = x
            return x / VALUE_SCALE
        _advance(sp, st, K_SUM, b, pb, n)
        st[3][pb] = x
        st[2] += x
        return st[2] / VALUE_SCALE
    return sp.ug(key, pb, value, None)


cdef inline object _mean(object sp, dict data, object key, long long b, object pb, long long n, object value):
    cdef object x = _units(value)
    cdef list st
    cdef long long h
    if x is None:
        return sp.ug(key, pb, value, None)
    st = data.get(key)
    if st is None:
        data[key] = [pb, pb, x, None, 1]
        return x / VALUE_SCALE
    h = st[0]
    if b == h and st[3] is None:
        st[2] += x
        st[4] += 1
        return st[2] / (st[4] * VALUE_SCALE)
    if b >= h:
        if b > h:
            if st[3] is None and h <= b - n:
                st[0] = pb
                st[1] = pb
                st[2] = x
                st[4] = 1
                return x / VALUE_SCALE
            _advance(sp, st, K_MEAN, b, pb, n)
        sp.add(st, pb, x)
        return st[2] / (st[4] * VALUE_SCALE)
    return sp.ug(key, pb, value, None)


cdef inline bint _better(bint is_min, object x, object y):
    return (x < y) if is_min else (x > y)


cdef inline object _extreme(object sp, dict data, object key, long long b, object pb, long long n, object value,
                            bint is_min):
    cdef list st
    cdef long long h
    cdef dict bk
    cdef object cur, tot
    if type(value) is not float or not isfinite(<double>value):
        return sp.ug(key, pb, value, None)
    st = data.get(key)
    if st is None:
        data[key] = [pb, pb, value, None]
        return value
    h = st[0]
    if b == h and st[3] is None and st[2] is not None:
        if _better(is_min, value, st[2]):
            st[2] = value
        return st[2]
    if b >= h:
        if b > h:
            if st[3] is None and h <= b - n:
                st[0] = pb
                st[1] = pb
                st[2] = value
                return value
            _advance(sp, st, K_MIN, b, pb, n)
        bk = st[3]
        if bk is None:
            return sp.ug(key, pb, value, None)
        cur = bk.get(pb)
        if cur is None or _better(is_min, value, cur):
            bk[pb] = value
            tot = st[2]
            if tot is not None and _better(is_min, value, tot):
                st[2] = value
        tot = st[2]
        if tot is None and bk:
            tot = st[2] = (min(bk.values()) if is_min else max(bk.values()))
        return tot
    return sp.ug(key, pb, value, None)


cdef inline object _distinct(object sp, dict data, object key, long long b, object pb, long long n, object value):
    cdef list st
    cdef long long h
    cdef dict cnt, bk
    cdef object s, tot
    if type(value) is not str:
        return sp.ug(key, pb, value, None)
    st = data.get(key)
    if st is None:
        data[key] = [pb, pb, value, None]
        return 1
    h = st[0]
    if b == h and st[3] is None:
        tot = st[2]
        if type(tot) is str:
            if tot == value:
                return 1
            st[2] = {tot: 1, value: 1}
            return 2
        cnt = tot
        if value not in cnt:
            cnt[value] = 1
        return len(cnt)
    if b >= h:
        if b > h:
            if st[3] is None and h <= b - n:
                st[0] = pb
                st[1] = pb
                st[2] = value
                return 1
            _advance(sp, st, K_DISTINCT, b, pb, n)
        bk = st[3]
        cnt = st[2]
        s = bk.get(pb)
        if s is None:
            bk[pb] = {value}
        elif value in s:
            return len(cnt)
        else:
            s.add(value)
        cnt[value] = cnt.get(value, 0) + 1
        return len(cnt)
    return sp.ug(key, pb, value, None)


def apply_hot(dict by_id, object entry, object ops, double ts):
    """Observe and read every op at ``ts`` (not late): the memory backend's hot path.

    ``by_id`` maps ``id(spec)`` to ``(spec, space, space.ug, bucket width, kind, n_buckets)`` and
    ``entry(spec)`` fills it.
    """
    cdef list out = []
    cdef tuple op, hit
    cdef object spec, sp, pb, key, value
    cdef double q
    cdef long long b, n
    cdef int kind
    for o in ops:
        if not isinstance(o, tuple) or len(<tuple>o) < 3:
            raise TypeError(f"window op must be a WindowOp, got {type(o).__name__}")
        op = <tuple>o
        spec = op[0]
        hit = by_id.get(id(spec))
        if hit is None or hit[0] is not spec:
            hit = entry(spec)
        sp = hit[1]
        q = floor(ts / <double>hit[3])
        key = op[1]
        value = op[2]
        if not (-LL_LIMIT < q < LL_LIMIT):
            out.append(hit[2](key, int(q), value, None))
            continue
        b = <long long>q
        pb = b
        kind = hit[4]
        n = hit[5]
        if kind == K_COUNT:
            out.append(_count(sp, sp.data, key, b, pb, n, value))
        elif kind == K_DISTINCT:
            out.append(_distinct(sp, sp.data, key, b, pb, n, value))
        elif kind == K_SUM:
            out.append(_sum(sp, sp.data, key, b, pb, n, value))
        elif kind == K_MEAN:
            out.append(_mean(sp, sp.data, key, b, pb, n, value))
        elif kind == K_MIN:
            out.append(_extreme(sp, sp.data, key, b, pb, n, value, True))
        elif kind == K_MAX:
            out.append(_extreme(sp, sp.data, key, b, pb, n, value, False))
        else:
            out.append(hit[2](key, pb, value, None))
    return out


cdef inline bint _matches(object fv, object lit):
    """ZEN's ``==`` for a literal (see fsbrain.engine.evaluator._matches)."""
    cdef type t
    if lit is None or type(lit) is bool:
        return fv is lit
    if type(lit) is float:
        t = type(fv)
        return (t is int or t is float) and fv == lit
    return type(fv) is str and fv == lit


def collect(list rows, list keys, list vals, dict data, object slow, object op_type, dict values):
    """Turn one event into window ops and reads (the loop of ``Engine._features``).

    ``rows`` holds one tuple per feature::

        (feature, spec, name, key index, value index or -1, when kind, native field, native sense,
         native literal, aggregate kind)

    where when kind is 0 (no filter), 1 (native ``field ==/!= literal``) or 2 (a ZEN filter: ``slow``
    decides), and aggregate kind is 1 for distinct, 0 otherwise. ``slow(feature, data, value, phase)``
    handles the rare cases in Python (phase 0: evaluate the ZEN filter and return whether to observe;
    phase 1: coerce a non-numeric value and return it, or the sentinel ``slow`` itself to skip).
    Features whose key is missing get their empty value in ``values``.

    Returns ``(ops, op_names, read_specs, read_keys, read_names)``.
    """
    cdef list ops = []
    cdef list op_names = []
    cdef list r_specs = []
    cdef list r_keys = []
    cdef list r_names = []
    cdef tuple row
    cdef object f, spec, name, key, value, k
    cdef Py_ssize_t ki, vi
    cdef int when_kind, agg_kind
    cdef bint observe
    cdef type tp
    new = tuple.__new__
    for row in rows:
        f = row[0]
        spec = row[1]
        name = row[2]
        ki = row[3]
        key = keys[ki]
        if key is None:
            values[name] = spec.empty_value()
            continue
        vi = row[4]
        when_kind = row[5]
        observe = True
        if when_kind == 1:
            observe = _matches(data.get(row[6]), row[8]) == <bint>row[7]
        elif when_kind == 2:
            observe = slow(f, data, None, 0)
        value = 1
        if observe and vi >= 0:
            value = vals[vi]
            agg_kind = row[9]
            if value is None:
                observe = False
            elif agg_kind == 1:
                if type(value) is not str:
                    value = str(value)
            else:
                tp = type(value)
                if tp is not float and tp is not int:
                    value = slow(f, data, value, 1)
                    if value is slow:
                        observe = False
                        value = 1
        if type(key) is str:
            if observe:
                ops.append(new(op_type, (spec, key, value)))
                op_names.append(name)
            else:
                r_specs.append(spec)
                r_keys.append(key)
                r_names.append(name)
            continue
        for k in key:
            if observe:
                ops.append(new(op_type, (spec, k, value)))
                op_names.append(name)
            else:
                r_specs.append(spec)
                r_keys.append(k)
                r_names.append(name)
    return ops, op_names, r_specs, r_keys, r_names


def merge_max(dict values, list names, list results):
    """``values[name] = max(old, new)`` with ``None`` losing (list-key fan-out keeps the largest)."""
    cdef Py_ssize_t i
    cdef object n, v, old
    for i in range(len(names)):
        n = names[i]
        v = results[i]
        old = values.get(n, merge_max)
        if old is merge_max or old is None or (v is not None and v > old):
            values[n] = v


cdef inline object _walk(dict data, tuple parts):
    """``make_getter(path)(data)`` (see fsbrain.engine.policy.make_getter)."""
    cdef object cur = data
    cdef object p
    for p in parts:
        if not isinstance(cur, dict):
            return None
        cur = (<dict>cur).get(p)
    return cur


def extract(dict data, list key_paths, list value_paths, Py_ssize_t max_fanout):
    """Entity keys and values of one event (``CompiledFeature.key_of`` and the value getters).

    ``key_paths`` holds, per key, a tuple of field paths (each a tuple of parts); ``value_paths`` one path
    per value. Returns ``(keys, values)``.
    """
    cdef list keys = []
    cdef list vals = []
    cdef tuple paths, parts
    cdef object v, x
    cdef list ks, pieces
    cdef dict seen
    cdef bint bad
    for paths in key_paths:
        if len(paths) == 1:
            v = _walk(data, <tuple>paths[0])
            if isinstance(v, (list, tuple)):
                seen = {}
                for x in v:
                    if x is not None and x != "":
                        seen[str(x)] = None
                ks = list(seen)[:max_fanout]
                keys.append(ks if ks else None)
            elif v is None or v == "":
                keys.append(None)
            else:
                keys.append(v if type(v) is str else str(v))
            continue
        pieces = []
        bad = False
        for parts in paths:
            v = _walk(data, parts)
            if v is None or v == "" or isinstance(v, (list, tuple, dict)):
                bad = True
                break
            pieces.append(v if type(v) is str else str(v))
        keys.append(None if bad else "|".join(pieces))
    for parts in value_paths:
        vals.append(_walk(data, parts))
    return keys, vals


cdef inline object _full(object sp, list st, int kind):
    """``Space.full`` per aggregate (min/max recompute lazily in Python)."""
    cdef object tot
    if kind == K_COUNT:
        return st[2]
    if kind == K_DISTINCT:
        tot = st[2]
        return 1 if type(tot) is str else len(<dict>tot)
    if kind == K_SUM:
        return st[2] / VALUE_SCALE
    if kind == K_MEAN:
        return st[2] / (st[4] * VALUE_SCALE) if st[4] else None
    if kind == K_MIN or kind == K_MAX:
        tot = st[2]
        if tot is not None:
            return tot
    return sp.full(st)


def get_hot(dict by_id, object entry, object reads, double as_of, object w):
    """``MemoryStateBackend.get``: the window value of each read as of ``as_of`` (watermark ``w``)."""
    cdef list out = []
    cdef tuple r, hit
    cdef object sp, key, st_o, hf, lo_o, bt_o
    cdef list st
    cdef double bw, q
    cdef long long bt, h, heff, lo, hfv
    cdef int kind
    for o in reads:
        if not isinstance(o, tuple) or len(<tuple>o) < 2:
            raise TypeError(f"window read must be a WindowRead, got {type(o).__name__}")
        r = <tuple>o
        spec = r[0]
        hit = by_id.get(id(spec))
        if hit is None or hit[0] is not spec:
            hit = entry(spec)
        sp = hit[1]
        bw = hit[3]
        kind = hit[4]
        q = floor(as_of / bw)
        hf = None
        if w is not None:
            hf = int(floor(<double>w / bw))
        if kind < 0 or not (-LL_LIMIT < q < LL_LIMIT) or (hf is not None and not (-LL_LIMIT < <double>hf < LL_LIMIT)):
            out.append(sp.read(sp.data.get(r[1]), int(q), hf))
            continue
        bt = <long long>q
        st_o = sp.data.get(r[1])
        if st_o is None:
            out.append(sp.empty)
            continue
        st = <list>st_o
        h = st[0]
        heff = h
        if hf is not None:
            hfv = hf
            if hfv > h:
                heff = hfv
        lo = (bt if bt > heff else heff) - <long long>hit[5]
        if h <= bt and st[1] > lo:
            out.append(_full(sp, st, kind))
        else:
            out.append(sp.read(st, bt, hf))
    return out
