"""A prefilter that decides, with RE2 set scans per value, which regex rules of a request can match.

Rules whose operator is a fixed regular expression or phrase list (``@rx``, ``@pm``, ``@pmFromFile``),
not negated, not ``multiMatch``, over request variables only (no counts, no TX), are *prefiltered*: each
gets one bit of an integer mask. For every request the prefilter computes, once per phase, the mask of
rules whose pattern occurs in at least one value they could inspect; a rule whose bit is clear cannot
match and is skipped, a set bit only means "evaluate normally".

How the mask is computed:

* Values come from *sources*: ARGS_GET values and names, ARGS_POST values and names, header values and
  names, cookie values and names, FILES / FILES_NAMES, MULTIPART_PART_HEADERS, XML, and the scalar
  request variables. A source's rules are those targeting a collection it feeds (``ARGS`` is fed by
  ARGS_GET and ARGS_POST; a keyed target ``ARGS:id`` counts as the whole collection: a superset).
* Each value is transformed by every transformation chain its source's rules use and scanned by one
  ``re2.Set`` per chain holding those rules' patterns unchanged, so a set hit is exactly "this rule's
  regex finds a match in this transformed value". A *plain* value (ASCII without ``% + & \\ NUL /*``)
  is transformed the way rule evaluation transforms it (decoders that are the identity on it dropped,
  :func:`~fsbrain.domains.web.seclang.transaction.reduced_chain`), and chains that reduce to the same
  steps share one set: a plain value is usually scanned two to five times whatever the rule count.
* The value's hit mask is cached per (chain set, value) across requests (values up to
  :data:`MAX_CACHED_VALUE` bytes, :data:`CACHE_BYTES` of values in all, then the cache starts over):
  header values, cookie names, form field names and common parameter values repeat from request to
  request, and a repeated value costs one dictionary lookup.
* The request's mask is the OR over its values of ``value mask & source mask``.

Soundness: rule evaluation inspects a subset of the source values (keys, exclusions and runtime target
removals only remove values), transformed exactly as here, and searches the same pattern with the same
RE2 options, so a rule that can match always has its bit set. ``RE2::Set`` in many-match mode does not
give up on slow input, and a set that fails to compile leaves its rules unfiltered.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import re2

from fsbrain.domains.web.seclang.model import Rule
from fsbrain.domains.web.seclang.operators import re2_options

if TYPE_CHECKING:
    from fsbrain.domains.web.seclang.transaction import Transaction

#: values longer than this are scanned but their hit masks are not cached
MAX_CACHED_VALUE = 2048
#: total bytes of cached values before the per-value caches start over
CACHE_BYTES = 16 << 20
#: union sets (stages sharing one text) built per pass at most
MAX_UNIONS = 64
#: stages with more patterns than this are never merged into a union set
UNION_STAGE_MAX = 32
#: compile union sets on a background thread (with RE2 called directly, which releases the GIL while it
#: compiles): a request that meets a new union uses the stages' own sets (same hits) instead of waiting for
#: a compile of up to tens of milliseconds. ``FSBRAIN_WEB_UNION_THREAD=0`` compiles them in the request.
BACKGROUND_UNIONS = os.environ.get("FSBRAIN_WEB_UNION_THREAD", "1").strip().lower() not in ("0", "false", "no", "off")


class _UnionBuilder:
    """One daemon thread per process running union-set builds in arrival order (started on first use, and
    again in a forked child, which inherits no threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._q: queue.SimpleQueue[Callable[[], object]] | None = None

    def submit(self, job: Callable[[], object]) -> None:
        with self._lock:
            if self._pid != os.getpid() or self._q is None:
                self._q = queue.SimpleQueue()
                self._pid = os.getpid()
                threading.Thread(target=self._run, args=(self._q,), name="fsbrain-union-sets", daemon=True).start()
            self._q.put(job)

    @staticmethod
    def _run(q: queue.SimpleQueue[Callable[[], object]]) -> None:
        while True:
            job = q.get()
            try:
                job()  # _Pass._build_union keeps the stages' own sets when RE2 refuses a union
            except Exception:  # noqa: BLE001 - an unexpected error must not stop the builder
                logging.getLogger(__name__).exception("union set build failed; the stages' own sets stay in use")


_BUILDER = _UnionBuilder()

# collection -> the sources feeding it
_FEEDS: dict[str, tuple[str, ...]] = {
    "ARGS": ("ARGS_GET", "ARGS_POST"), "ARGS_GET": ("ARGS_GET",), "ARGS_POST": ("ARGS_POST",),
    "ARGS_NAMES": ("ARGS_GET_NAMES", "ARGS_POST_NAMES"), "ARGS_GET_NAMES": ("ARGS_GET_NAMES",),
    "ARGS_POST_NAMES": ("ARGS_POST_NAMES",), "REQUEST_HEADERS": ("REQUEST_HEADERS",),
    "REQUEST_HEADERS_NAMES": ("REQUEST_HEADERS_NAMES",), "REQUEST_COOKIES": ("REQUEST_COOKIES",),
    "REQUEST_COOKIES_NAMES": ("REQUEST_COOKIES_NAMES",), "FILES": ("FILES",), "FILES_NAMES": ("FILES_NAMES",),
    "MULTIPART_PART_HEADERS": ("MULTIPART_PART_HEADERS",), "XML": ("XML",),
}
_STATIC_SCALARS = frozenset({"REQUEST_METHOD", "REQUEST_URI", "REQUEST_URI_RAW", "REQUEST_FILENAME",
                             "REQUEST_BASENAME", "REQUEST_LINE", "REQUEST_PROTOCOL", "QUERY_STRING",
                             "REQUEST_BODY"})
# collections whose literal-key targets get a source of their own
_KEYED = frozenset({"ARGS", "ARGS_GET", "ARGS_POST", "REQUEST_HEADERS", "REQUEST_COOKIES"})
# sources whose values exist only once the body is processed (phase 2)
_BODY_SOURCES = frozenset({"ARGS_POST", "ARGS_POST_NAMES", "FILES", "FILES_NAMES", "MULTIPART_PART_HEADERS",
                           "XML", "REQUEST_BODY"})


def _noexpand(_text: str) -> bytes:
    return b""


def _eligible(rule: Rule) -> bool:
    """A rule whose first link's result depends only on request values: no macros, no counts, no TX."""
    if rule.kind != "rule" or rule.operator is None or "%{" in rule.op_param:
        return False
    return bool(rule.targets) and all(
        not t.count and (t.collection in _FEEDS or t.collection in _STATIC_SCALARS) for t in rule.targets)


def _in_set(rule: Rule) -> bool:
    """Rules whose test is exactly "this pattern occurs": scanned with an RE2 set."""
    return (not rule.op_negated and getattr(rule.operator, "regex", None) is not None
            and rule.op_name.lower() in ("rx", "pm", "pmfromfile", "pmf"))


class _Stage:
    """One transformation chain (as applied) of a source's values and the rules it feeds: those tested by
    pattern (found by the pass's RE2 set) and the others, whose operators run one by one."""

    __slots__ = ("names", "funcs", "index", "ops")

    def __init__(self, names: tuple[str, ...], funcs: tuple, index: int,  # type: ignore[type-arg]
                 ops: tuple[tuple, ...]) -> None:  # type: ignore[type-arg]
        self.names, self.funcs, self.index, self.ops = names, funcs, index, ops


class _Pass:
    """Every stage of plain (or of other) values, each with an RE2 set of the patterns of the rules that
    read it. One set per stage keeps each set's automaton small: a single set over every CRS pattern
    builds DFA states so large that fresh text costs hundreds of milliseconds."""

    __slots__ = ("sets", "failed", "pats", "unions", "built", "cset", "pending", "background")

    def __init__(self, entries: list[tuple[int, bytes, int]], n_stages: int, cset: Any = None) -> None:
        self.failed = False
        # ``_fastweb.CSet`` (RE2 called without the binding) or None for ``re2.Set``
        self.cset = cset
        # unions handed to the background builder and not yet published -> (the process that asked, the
        # stages' own sets answering meanwhile); a forked child inherits the entries but not the thread: it
        # asks again
        self.pending: dict[tuple[int, ...], tuple[int, tuple]] = {}  # type: ignore[type-arg]
        self.background = BACKGROUND_UNIONS and cset is not None and hasattr(cset, "build")
        self.sets: list[tuple | None] = [None] * n_stages  # type: ignore[type-arg]
        # stages whose texts come out identical for a value share scans (see :meth:`union`)
        self.unions: dict[tuple[int, ...], tuple] = {}  # type: ignore[type-arg]
        self.built = 0  # union sets built (or tried)
        by_stage: dict[int, list[tuple[bytes, int]]] = {}
        for st, pattern, bit in entries:
            by_stage.setdefault(st, []).append((pattern, bit))
        self.pats = by_stage
        for st, pats in by_stage.items():
            try:
                matcher = self._build([pattern for pattern, _ in pats])
            except (re2.error, ValueError, TypeError):
                self.failed = True  # the engine then evaluates pattern rules without the prefilter
                return
            self.sets[st] = (matcher, [bit for _, bit in pats])

    def _build(self, patterns: list[bytes]) -> Any:
        """A compiled set of ``patterns``: a ``_fastweb.CSet``, or the C++ object's ``Match`` method of a
        ``re2.Set`` (the Python wrapper costs an extra call per scan)."""
        if self.cset is not None:
            cs = self.cset()
            if hasattr(cs, "build"):
                cs.build(list(patterns))  # adds and compiles with the GIL released
            else:
                for pattern in patterns:
                    cs.add(pattern)
                cs.compile()
            return cs
        s = re2.Set.SearchSet(re2_options())
        for pattern in patterns:
            s.Add(pattern)
        s.Compile()
        return s._set.Match

    def union(self, key: tuple[int, ...], text: bytes | None = None) -> tuple:  # type: ignore[type-arg]
        """The sets to scan a text that the stages ``key`` (each with a set) all produced: a stage with
        more than :data:`UNION_STAGE_MAX` patterns keeps its own set (a large union's automaton is slow
        on varied text), the others are merged into one set, so a hit is exactly a hit of one of those
        stages' sets on that text. Built on first use, at most :data:`MAX_UNIONS` per pass; past that, or
        when RE2 refuses a union, the stages' own sets.

        With :data:`BACKGROUND_UNIONS` (and RE2 called directly) the union is compiled on the builder
        thread, which then runs it once on ``text`` (the text that asked for it) so its automaton has the
        states such text needs; until it is published the stages' own sets answer, with the same hits."""
        got = self.unions.get(key)
        if got is not None:
            return got  # type: ignore[no-any-return]
        waiting = self.pending.get(key)
        if waiting is not None and waiting[0] == os.getpid():
            return waiting[1]  # being built: the stages' own sets meanwhile
        own = tuple([self.sets[st] for st in key])
        small = [st for st in key if len(self.pats[st]) <= UNION_STAGE_MAX]
        if len(small) < 2 or self.built >= MAX_UNIONS:
            if len(self.unions) < 4 * MAX_UNIONS:
                self.unions[key] = own
            return own
        if self.background:
            if waiting is None:
                self.built += 1
            self.pending[key] = (os.getpid(), own)
            _BUILDER.submit(partial(self._build_union, key, small, own, text))
            return own
        self.built += 1
        return self._build_union(key, small, own, None)

    def _build_union(self, key: tuple[int, ...], small: list[int], own: tuple,  # type: ignore[type-arg]
                     text: bytes | None) -> tuple:  # type: ignore[type-arg]
        got = own
        try:
            bits = [bit for st in small for _, bit in self.pats[st]]
            matcher = self._build([pattern for st in small for pattern, _ in self.pats[st]])
            if text is not None and hasattr(matcher, "warm"):
                matcher.warm(text)
            got = tuple([self.sets[st] for st in key if st not in small] + [(matcher, bits)])
        except (re2.error, ValueError, TypeError, MemoryError):
            pass  # the stages' own sets answer for this group
        finally:
            self.unions[key] = got
            self.pending.pop(key, None)
        return got

    def wait_unions(self, timeout: float = 30.0) -> bool:
        """Wait until the background builder has published every union asked for so far (tests and
        benchmarks); whether it did within ``timeout`` seconds."""
        import time

        end = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        return True


class _ChainSet:
    """The stages a source's values go through (plain values / others) and the per-value cache of their
    match masks."""

    __slots__ = ("plain", "full", "cache", "c_plain", "c_full")

    def __init__(self, plain: list[_Stage], full: list[_Stage]) -> None:
        self.plain, self.full = plain, full
        # emptied in place only, never replaced: the compiled scan's source tuples hold this dict
        self.cache: dict[bytes, int] = {}
        # the stages as tuples for the compiled scan: (names, funcs, set index, operators)
        self.c_plain = self._compiled_stages(plain)
        self.c_full = self._compiled_stages(full)

    @staticmethod
    def _compiled_stages(stages: list[_Stage]) -> list[tuple]:  # type: ignore[type-arg]
        """The stages as tuples for the compiled scan: ``(names, funcs, set index, operators, source)``, where
        ``source`` says where a stage's text comes from: -2 the value itself (no transformation), -1 the value
        through all of ``funcs``, k >= 0 the text of stage k through the last function (stage k's chain is this
        one without its last step; stages are ordered by chain length, so k comes first)."""
        pos = {st.names: k for k, st in enumerate(stages)}
        out = []
        for st in stages:
            if not st.names:
                src = -2
            else:
                src = pos.get(st.names[:-1], -1)
                if src >= 0 and src >= len(out):
                    src = -1  # (never: a prefix sorts first)
            out.append((st.names, st.funcs, st.index, st.ops, src))
        return out


class Prefilter:
    """Per-value tests deciding which rules of a request can match (see the module docstring).

    Args:
        rules: the rules to prefilter (the engine passes those a request can reach); the others are
            simply evaluated without the prefilter.
        fast: the compiled module (:mod:`fsbrain.domains.web._fastweb`) whose ``scan`` replaces
            :meth:`_scan`, or None for the Python scan.
    """

    def __init__(self, rules: list[Rule], fast: Any = None, direct: bool = False) -> None:
        from fsbrain.domains.web.seclang.transaction import reduced_chain

        ok: list[Rule] = []
        for r in rules:
            if not _eligible(r):
                continue
            if _in_set(r):  # a pattern RE2::Set rejects leaves its rule unfiltered
                try:
                    re2.Set.SearchSet(re2_options()).Add(r.operator.regex.pattern)  # type: ignore[union-attr]
                except (re2.error, ValueError, TypeError):
                    continue
            ok.append(r)
        self.bit_of: dict[int, int] = {id(r): bit for bit, r in enumerate(ok)}
        self.rules = ok
        bit_of = self.bit_of
        # every chain a rule's operator sees: its chain, or with multiMatch each prefix of it
        funcs_of: dict[tuple[str, ...], tuple] = {}  # type: ignore[type-arg]
        applied: dict[int, tuple[set[tuple[str, ...]], set[tuple[str, ...]]]] = {}
        for r in ok:
            full: set[tuple[str, ...]] = set()
            plain: set[tuple[str, ...]] = set()
            n = len(r.transforms)
            for k in (range(n + 1) if r.multi_match else (n,)):
                names, funcs = r.transforms[:k], r.tfuncs[:k]
                funcs_of[names] = funcs
                full.add(names)
                red = reduced_chain(names, funcs)
                funcs_of[red[0]] = red[1]
                plain.add(red[0])
            applied[id(r)] = (full, plain)
        # source -> rules reading it; a literal key (REQUEST_HEADERS:Content-Type) reads only its entries
        src_rules: dict[tuple[str, str | None], list[Rule]] = {}
        for r in ok:
            for t in r.targets:
                key = t.key if t.key_rx is None and t.collection in _KEYED else None
                for src in _FEEDS.get(t.collection, (t.collection,)):
                    lst = src_rules.setdefault((src, key), [])
                    if r not in lst:
                        lst.append(r)
        # one pass (set) for plain values over every reduced chain, one for other values over every chain
        passes: list[_Pass] = []
        stage_index: list[dict[tuple[str, ...], int]] = []
        for which in (1, 0):
            chains = sorted({c for r in ok for c in applied[id(r)][which]}, key=lambda c: (len(c), c))
            idx = {c: i for i, c in enumerate(chains)}
            entries = [(idx[c], r.operator.regex.pattern, 1 << bit_of[id(r)])  # type: ignore[union-attr]
                       for c in chains for r in ok if c in applied[id(r)][which] and _in_set(r)]
            passes.append(_Pass(entries, len(chains), fast.CSet if direct and fast is not None else None))
            stage_index.append(idx)
        self.plain_pass, self.full_pass = passes
        if any(p.failed for p in passes):  # no set: pattern rules are evaluated without the prefilter
            ok = [r for r in ok if not _in_set(r)]
            keep = {id(r) for r in ok}
            self.bit_of = {k: b for k, b in self.bit_of.items() if k in keep}
            self.rules = ok
        chain_sets: dict[tuple[int, ...], _ChainSet] = {}
        # (source, key, body source, mask, chain set)
        self.sources: list[tuple[str, str | None, bool, int, _ChainSet]] = []
        for (src, skey), rs in sorted(src_rules.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            key = tuple(sorted(bit_of[id(r)] for r in rs))
            cs = chain_sets.get(key)
            if cs is None:
                stages: list[list[_Stage]] = []
                for which in (1, 0):  # plain, full
                    chains = sorted({c for r in rs for c in applied[id(r)][which]}, key=lambda c: (len(c), c))
                    stages.append([_Stage(c, funcs_of[c], stage_index[1 - which][c],
                                          tuple((r.operator, r.op_negated, 1 << bit_of[id(r)]) for r in rs
                                                if c in applied[id(r)][which] and not _in_set(r)))
                                   for c in chains])
                cs = chain_sets[key] = _ChainSet(stages[0], stages[1])
            self.sources.append((src, skey, src in _BODY_SOURCES, sum(1 << bit_of[id(r)] for r in rs), cs))
        self.chain_sets = list(chain_sets.values())
        getters = [(_values_getter(src, skey), is_body, smask, cs) for src, skey, is_body, smask, cs in self.sources]
        self.head_sources = [(g, m, cs) for g, is_body, m, cs in getters if not is_body]
        self.body_sources = [(g, m, cs) for g, is_body, m, cs in getters if is_body]
        self.all_sources = self.head_sources + self.body_sources
        # the same for the compiled scan: (kind, getter, mask, chain set, source, key, the chain set's cache and
        # compiled stages: read from the tuple, not as attributes, for each of a request's ~40 sources); the
        # kind lets it read header, cookie and query-argument values straight from the request
        kinds = [(_source_kind(src, skey), g, m, cs, src, skey, cs.cache, cs.c_plain, cs.c_full)
                 for (src, skey, _b, _m, _cs), (g, _ib, m, cs) in zip(self.sources, getters, strict=True)]
        self.c_head_sources = [k for k, (_s, _k, is_body, _m, _c) in zip(kinds, self.sources, strict=True)
                               if not is_body]
        self.c_body_sources = [k for k, (_s, _k, is_body, _m, _c) in zip(kinds, self.sources, strict=True)
                               if is_body]
        self.c_all_sources = self.c_head_sources + self.c_body_sources
        self._fast = fast
        self._cached_bytes = 0

    def clear_caches(self) -> None:
        """Forget every cached value mask (benchmarks use it to measure values never seen before)."""
        for cs in self.chain_sets:
            cs.cache.clear()
        self._cached_bytes = 0

    @property
    def size(self) -> int:
        """Number of prefiltered rules."""
        return len(self.rules)

    def mask(self, tr: Transaction) -> int:
        """The request's candidate mask for the current phase (computed once per phase)."""
        phase = tr.phase
        if tr.pf_phase == phase:
            return tr.pf_mask
        fast = self._fast
        if phase >= 2 and tr.pf_phase == 1:
            m = tr.pf_mask | (fast.scan(self, tr, True, MAX_CACHED_VALUE, CACHE_BYTES) if fast is not None
                              else self._scan(tr, body_only=True))
        else:
            m = (fast.scan(self, tr, False, MAX_CACHED_VALUE, CACHE_BYTES) if fast is not None
                 else self._scan(tr, body_only=False))
        tr.pf_phase, tr.pf_mask = phase, m
        return m

    def _scan(self, tr: Transaction, body_only: bool) -> int:
        from fsbrain.domains.web.seclang.transaction import plain_value

        if self._cached_bytes > CACHE_BYTES:
            for cs in self.chain_sets:
                cs.cache.clear()
            self._cached_bytes = 0
        total = 0
        req = tr.req
        plain_pass, full_pass = self.plain_pass, self.full_pass
        value_mask = self._value_mask
        for values_of, smask, cs in (self.body_sources if body_only else
                                     self.all_sources if tr.phase >= 2 else self.head_sources):
            values = values_of(tr, req)
            if not values:
                continue
            cache = cs.cache
            for v in values:
                m = cache.get(v)
                if m is None:
                    if plain_value(v):
                        m = value_mask(v, cs.plain, plain_pass)
                    else:
                        m = value_mask(v, cs.full, full_pass)
                    if len(v) <= MAX_CACHED_VALUE:
                        cache[v] = m
                        self._cached_bytes += len(v) + 64
                total |= m & smask
        return total

    @staticmethod
    def _value_mask(v: bytes, stages: list[_Stage], pas: _Pass) -> int:
        """Rules (bits) that match value ``v`` through one of ``stages``: each stage's text is computed
        (from its prefix's when there is one); each distinct text is scanned once, by the union of the sets
        of the stages that produced it; the other operators run once per (rule, text)."""
        m = 0
        by_names: dict[tuple[str, ...], bytes] = {(): v}
        tested: dict[bytes, int] = {}  # text -> operator bits already run on it
        sets = pas.sets
        groups: dict[bytes, list[int]] = {}  # text -> the sets to scan it with
        pending: list[tuple[bytes, tuple]] = []  # type: ignore[type-arg]
        for st in stages:
            names = st.names
            t = by_names.get(names)
            if t is None:
                parent = by_names.get(names[:-1])
                if parent is not None:
                    t = st.funcs[-1](parent)
                else:
                    t = v
                    for f in st.funcs:
                        t = f(t)
                by_names[names] = t
            if sets[st.index] is not None:
                groups.setdefault(t, []).append(st.index)
            if st.ops:
                pending.append((t, st.ops))
        for t, g in groups.items():
            for one in (pas.union(tuple(g), t) if len(g) > 1 else (sets[g[0]],)):
                hits = one[0](t)
                if hits:
                    bits = one[1]
                    for i in hits:
                        m |= bits[i]
        for t, ops in pending:
            done = tested.get(t, 0)
            for op, negated, bit in ops:
                if m & bit or done & bit:
                    continue
                done |= bit
                if (op(t, _noexpand) is None) is negated:
                    m |= bit
            tested[t] = done
        return m


# source kinds of the compiled scan (``_fastweb.scan``), each reading what the getter of
# :func:`_values_getter` returns: 0 = call the getter; 1-6 = header / cookie / query-argument values or
# names from the request; 7 = ``tr.collection(src)`` values; 8 = ``tr.index(src)[key]`` values;
# 9 = ``tr.scalar(src)`` unless None
_KINDS = {"REQUEST_HEADERS": 1, "REQUEST_HEADERS_NAMES": 2, "REQUEST_COOKIES": 3, "REQUEST_COOKIES_NAMES": 4,
          "ARGS_GET": 5, "ARGS_GET_NAMES": 6}


def _source_kind(src: str, key: str | None) -> int:
    if key is not None:
        return 8
    if src in _KINDS:
        return _KINDS[src]
    if src == "XML":
        return 0
    return 7 if src in _FEEDS else 9


def _values_getter(src: str, key: str | None) -> Callable[[Transaction, Any], list[bytes]]:
    """A function ``(transaction, request) -> values`` of one source (the values rule evaluation sees)."""
    if key is not None:
        return lambda tr, _req: [v for _, v in tr.index(src).get(key, ())]
    if src == "REQUEST_HEADERS":
        return lambda _tr, req: [v for _, v in req.header_pairs]
    if src == "REQUEST_HEADERS_NAMES":
        return lambda _tr, req: [k for k, _ in req.header_pairs]
    if src == "REQUEST_COOKIES":
        return lambda _tr, req: [v for _, v in req.cookies]
    if src == "REQUEST_COOKIES_NAMES":
        return lambda _tr, req: [k for k, _ in req.cookies]
    if src == "ARGS_GET":
        return lambda _tr, req: [v for _, v in req.args_get]
    if src == "ARGS_GET_NAMES":
        return lambda _tr, req: [k for k, _ in req.args_get]
    if src == "XML":
        return lambda tr, _req: [v for _, v in tr.xml("/*") + tr.xml("//@*")]
    if src in _FEEDS:
        return lambda tr, _req: [v for _, v in tr.collection(src)]

    def scalar(tr: Transaction, _req: Any) -> list[bytes]:
        v = tr.scalar(src)
        return [] if v is None else [v]

    return scalar
