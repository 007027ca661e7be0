"""Stages of a value that produce the same text are scanned together (``_Pass.union``): the value masks are
exactly those of scanning every stage with its own set, for plain and other values."""

from __future__ import annotations

import sys
from pathlib import Path

from fsbrain.domains.web import WebRuleEngine
from fsbrain.domains.web.seclang import prefilter as P
from fsbrain.domains.web.seclang.transaction import plain_value

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_web_rules import ATTACKS  # noqa: E402

VALUES = [b"269e0d37f2a74de4", b"GA1.2.423938500.1700000000", b"1828.44", b"user7054", b"on", b"72",
          b"/products/72", b"zh-CN", b"Mozilla/5.0 (X11; Linux)", b"a b  c", b"SELECT", b"PHNjcmlwdD4=",
          b"%3Cscript%3E", b"/etc/passwd", b"..\\..\\win.ini", b"x' OR 1=1 --", b""] + [a.encode() for a in ATTACKS]


def per_stage_mask(v: bytes, stages, pas) -> int:
    m = 0
    for st in stages:
        t = v
        for f in st.funcs:
            t = f(t)
        got = pas.sets[st.index]
        if got is not None:
            for i in got[0](t):
                m |= got[1][i]
        for op, negated, bit in st.ops:
            if (op(t, P._noexpand) is None) is negated:
                m |= bit
    return m


def check(pf) -> None:
    """Twice: first while unions may still be compiling on the background builder (the stages' own sets
    answer), then once every union asked for is published (the unions answer)."""
    for _ in range(2):
        for cs in pf.chain_sets:
            for v in VALUES:
                stages, pas = (cs.plain, pf.plain_pass) if plain_value(v) else (cs.full, pf.full_pass)
                assert P.Prefilter._value_mask(v, stages, pas) == per_stage_mask(v, stages, pas), v
        assert pf.plain_pass.wait_unions() and pf.full_pass.wait_unions()


def test_union_scans_equal_per_stage_scans():
    pf = WebRuleEngine.default(paranoia=4).prefilter
    check(pf)
    assert pf.plain_pass.built + pf.full_pass.built > 0  # unions were built and used


def test_union_scans_equal_per_stage_scans_crs(shared_data):
    pf = WebRuleEngine.from_crs(shared_data("crs-regression"), paranoia=2).prefilter
    check(pf)
    assert pf.plain_pass.built + pf.full_pass.built > 0


def test_union_falls_back_to_own_sets_past_the_limit(monkeypatch):
    monkeypatch.setattr(P, "MAX_UNIONS", 0)
    pf = WebRuleEngine.default(paranoia=4).prefilter
    for cs in pf.chain_sets:
        for v in VALUES:
            stages, pas = (cs.plain, pf.plain_pass) if plain_value(v) else (cs.full, pf.full_pass)
            assert P.Prefilter._value_mask(v, stages, pas) == per_stage_mask(v, stages, pas), v


def _built_unions(pas) -> int:
    return sum(1 for u in pas.unions.values() for one in u if one not in pas.sets)


def test_unions_compile_in_the_background_and_then_answer(monkeypatch):
    """With RE2 called directly, a request meeting a new union never waits for its compile: the union is
    handed to the builder thread and the stages' own sets answer meanwhile; once published it is used."""
    eng = WebRuleEngine.default(paranoia=4)
    pf = eng.prefilter
    if not pf.plain_pass.background:
        import pytest

        pytest.skip("unions compile in the request here (RE2 not called directly, or FSBRAIN_WEB_UNION_THREAD=0)")
    check(pf)
    assert not pf.plain_pass.pending and not pf.full_pass.pending
    assert _built_unions(pf.plain_pass) + _built_unions(pf.full_pass) > 0


def test_unions_compile_in_the_request_when_the_thread_is_off(monkeypatch):
    monkeypatch.setattr(P, "BACKGROUND_UNIONS", False)
    pf = WebRuleEngine.default(paranoia=4).prefilter
    assert not pf.plain_pass.background and not pf.full_pass.background
    check(pf)
    assert not pf.plain_pass.pending and not pf.full_pass.pending
    assert _built_unions(pf.plain_pass) + _built_unions(pf.full_pass) > 0


def test_a_union_pending_in_another_process_is_asked_for_again():
    """A forked child inherits the parent's pending entries but not its builder thread: it submits the union
    again instead of waiting for a build that will never reach it."""
    pf = WebRuleEngine.default(paranoia=4).prefilter
    pas = pf.plain_pass
    if not pas.background:
        import pytest

        pytest.skip("unions compile in the request here")
    small = sorted(st for st, pats in pas.pats.items() if len(pats) <= P.UNION_STAGE_MAX)
    assert len(small) >= 2
    key = (small[0], small[1])
    pas.unions.pop(key, None)
    pas.pending[key] = (-1, ())  # as if the parent (another pid) had asked for it
    got = pas.union(key, b"some text")
    assert got == tuple(pas.sets[st] for st in key)  # the stages' own sets answer meanwhile
    assert pas.wait_unions(30)
    assert pas.unions[key] != got  # built in this process after all


def test_a_failing_union_build_leaves_the_own_sets_and_the_builder_running(monkeypatch):
    pf = WebRuleEngine.default(paranoia=4).prefilter
    pas = pf.plain_pass
    if not pas.background:
        import pytest

        pytest.skip("unions compile in the request here")
    small = sorted(st for st, pats in pas.pats.items() if len(pats) <= P.UNION_STAGE_MAX)
    key = (small[0], small[1])
    pas.unions.pop(key, None)
    calls = []

    def broken(patterns):
        calls.append(len(patterns))
        raise KeyError("not an RE2 error")  # an unexpected error inside the builder thread

    monkeypatch.setattr(P._Pass, "_build", lambda self, patterns: broken(patterns))
    own = pas.union(key, b"x")
    assert own == tuple(pas.sets[st] for st in key)
    assert pas.wait_unions(30)  # not left pending
    assert calls and pas.unions[key] == own
    monkeypatch.undo()
    key2 = (small[0], small[2]) if len(small) > 2 else None
    if key2 is not None:  # the builder thread survived and builds the next union
        pas.unions.pop(key2, None)
        pas.union(key2, b"y")
        assert pas.wait_unions(30) and pas.unions[key2] != tuple(pas.sets[st] for st in key2)
