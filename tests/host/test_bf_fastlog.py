"""The compiled per-line loop of batches (fsbrain.domains.host._fastlog), with RE2 called directly and on
Arrow's kernels, against the pure-Python reference loop and against line-by-line processing: same results,
counts, connection state and last date."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_bf_fastpaths import _STAMPS, _WORDS, NOW, ODD, TRICKY

from fsbrain.domains.host.fail2ban import load_filter, shipped_filters
from fsbrain.domains.host.logparse import LogFilter
from fsbrain.domains.host.logparse_batch import BatchPlan, load_fastlog

needs_ext = pytest.mark.skipif(load_fastlog(True) is None, reason="fsbrain.domains.host._fastlog is not built")


def _key(results):
    return [(r.status, r.host, r.user, r.time, r.regex, r.fid, r.attempts) for r in results]


def _conns(flt: LogFilter):
    return [(k, c.host, list(c.users), c.nofail, c.pending, c.pending_user, c.seen) for k, c in flt._conns.items()]


def _four_ways(spec: str, lines: list[bytes], dirs=None, batch: int = 4096) -> None:
    """Compiled batches calling RE2 directly (when built with RE2), compiled batches on Arrow's kernels,
    Python batches and line by line give the same everything."""
    fast = LogFilter(load_filter(spec, dirs), tz=dt.UTC, now=NOW, speedups=True)
    arrow = LogFilter(load_filter(spec, dirs), tz=dt.UTC, now=NOW, speedups=True)
    arrow._batch_plan = BatchPlan(arrow, re2=False)
    slow = LogFilter(load_filter(spec, dirs), tz=dt.UTC, now=NOW, speedups=False)
    one = LogFilter(load_filter(spec, dirs), tz=dt.UTC, now=NOW)
    got_fast, got_arrow, got_slow = [], [], []
    for i in range(0, len(lines), batch):
        got_fast += fast.process_batch(lines[i:i + batch])
        got_arrow += arrow.process_batch(lines[i:i + batch])
        got_slow += slow.process_batch(lines[i:i + batch])
    want = [one.process(line) for line in lines]
    assert _key(got_fast) == _key(got_arrow) == _key(got_slow) == _key(want), spec
    assert fast.counts == arrow.counts == slow.counts == one.counts
    assert fast._last_ts == arrow._last_ts == slow._last_ts == one._last_ts
    assert _conns(fast) == _conns(arrow) == _conns(slow) == _conns(one)
    if fast._batch_plan.ok:
        assert fast._batch_plan.fast is not None and slow._batch_plan.fast is None
        assert arrow._batch_plan.re2 is None
        if load_fastlog(True).re2_available():
            assert fast._batch_plan.re2 is not None, fast._batch_plan.re2_reason


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("FSBRAIN_SPEEDUPS", "0")
    assert load_fastlog() is None
    assert BatchPlan(LogFilter(load_filter("sshd"))).fast is None
    assert BatchPlan(LogFilter(load_filter("sshd"), speedups=False)).fast is None


def test_missing_extension_falls_back_to_python(monkeypatch):
    import sys

    import fsbrain.domains.host as host_pkg

    monkeypatch.delattr(host_pkg, "_fastlog", raising=False)
    monkeypatch.setitem(sys.modules, "fsbrain.domains.host._fastlog", None)  # import raises ImportError
    assert load_fastlog(True) is None
    lines = (TRICKY + ODD) * 8
    flt = LogFilter(load_filter("sshd"), tz=dt.UTC, now=NOW)
    one = LogFilter(load_filter("sshd"), tz=dt.UTC, now=NOW)
    got = flt.process_batch(lines)
    assert flt._batch_plan.ok and flt._batch_plan.fast is None
    assert _key(got) == _key([one.process(x) for x in lines]) and flt.counts == one.counts


def test_extension_is_built_where_a_compiler_is():
    if os.environ.get("FSBRAIN_SPEEDUPS", "1") == "0":
        pytest.skip("FSBRAIN_SPEEDUPS=0")
    assert load_fastlog(True) is not None, "_fastlog did not build: run `pip install -e .` with gcc"


@needs_ext
def test_tricky_lines_four_ways():
    lines = (TRICKY + ODD) * 8
    for spec in ("sshd", "sshd[mode=aggressive]", "sshd[mode=ddos]", "dovecot", "postfix", "pam-generic",
                 "nginx-http-auth", "mysqld-auth", "vsftpd", "postgres-auth", "redis-auth", "selinux-ssh"):
        _four_ways(spec, lines, batch=100)


@needs_ext
@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(_STAMPS, st.lists(_WORDS, max_size=10)), min_size=70, max_size=300),
       st.sampled_from(["sshd", "sshd[mode=aggressive]"]), st.sampled_from([64, 100, 1000]))
def test_random_logs_four_ways(rows, spec, batch):
    _four_ways(spec, [stamp + b"".join(words) for stamp, words in rows], batch=batch)


_PIDS = st.sampled_from([b"sshd[1]: ", b"sshd[2]: ", b"sshd[3]: "])
_MSGS = st.sampled_from([
    b"Failed password for root from 192.0.2.1 port 22 ssh2",
    b"Failed password for invalid user bob from 192.0.2.2 port 22 ssh2",
    b"Invalid user alice from 192.0.2.3 port 5",
    b"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.4  user=root",
    b"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=  user=root",
    b"Connection closed by authenticating user root 192.0.2.5 port 22 [preauth]",
    b"Disconnected from invalid user x 192.0.2.6 port 22 [preauth]",
    b"Received disconnect from 192.0.2.7 port 22:11: Bye Bye [preauth]",
    b"error: maximum authentication attempts exceeded for root from 192.0.2.8 port 22 ssh2 [preauth]",
    b"Disconnecting: Too many authentication failures [preauth]",
    b"Accepted publickey for deploy from 10.0.0.1 port 22 ssh2: ED25519 SHA256:x",
    b"Accepted password for root from 192.0.2.1 port 22 ssh2",
    b"Connection closed by 192.0.2.9 port 22 [preauth]",
    b"Failed publickey for root from 2001:db8::1 port 22 ssh2",
    b"",
])


@needs_ext
@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 900), _PIDS, _MSGS), min_size=64, max_size=300),
       st.sampled_from(["sshd", "sshd[mode=aggressive]", "sshd[mode=extra]"]))
def test_connection_ids_four_ways(rows, spec):
    """Lines of a few connections interleaved, with time jumps past the 5-minute connection-id age."""
    t = 0
    lines = []
    for step, pid, msg in rows:
        t += step
        stamp = dt.datetime.fromtimestamp(NOW - 86400 * 3 + t, dt.UTC).strftime("%b %d %H:%M:%S ").encode()
        lines.append(stamp + b"bastion " + pid + msg)
    _four_ways(spec, lines, batch=128)


@needs_ext
def test_fail2ban_samples_four_ways(shared_data):
    root = shared_data("fail2ban-logs")
    names = set(shipped_filters())
    done = 0
    for sample in sorted(os.listdir(root)):
        if sample not in names:
            continue
        with open(os.path.join(root, sample), "rb") as fh:
            lines = [x.rstrip(b"\r\n") for x in fh if not x.startswith(b"#")]
        _four_ways(sample, lines * 3, batch=256)
        done += 1
    assert done >= 20


@needs_ext
def test_bench_log_four_ways(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from bench_host_bruteforce import generate

    log = tmp_path / "auth.log"
    generate(log, 20000, seed=3)
    _four_ways("sshd", log.read_bytes().splitlines(), batch=4096)


@needs_ext
def test_line_path_then_batches_share_connections():
    """Connections opened line by line (Python _Conn) and continued in compiled batches, and the reverse."""
    t0 = NOW - 86400 * 2
    lines = []
    for k in range(400):
        stamp = dt.datetime.fromtimestamp(t0 + k * 7, dt.UTC).strftime("%b %d %H:%M:%S ").encode()
        pid = b"sshd[%d]: " % (k % 13)
        msg = (b"Invalid user bob from 192.0.2.%d port 5" % (k % 5) if k % 3 == 0 else
               b"Failed password for invalid user bob from 192.0.2.%d port 5 ssh2" % (k % 5) if k % 3 == 1 else
               b"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=  user=x")
        lines.append(stamp + b"bastion " + pid + msg)
    mixed = LogFilter(load_filter("sshd"), tz=dt.UTC, now=NOW, speedups=True)
    one = LogFilter(load_filter("sshd"), tz=dt.UTC, now=NOW)
    got = [mixed.process(x) for x in lines[:50]] + mixed.process_batch(lines[50:250])
    got += [mixed.process(x) for x in lines[250:300]] + mixed.process_batch(lines[300:])
    want = [one.process(x) for x in lines]
    assert _key(got) == _key(want)
    assert mixed.counts == one.counts and _conns(mixed) == _conns(one)
    assert {type(c).__name__ for c in mixed._conns.values()} <= {"Conn", "_Conn"}


@needs_ext
@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=30), st.integers(0, 40))
def test_odd_rows_as_arrow_finds_them(lines, max_line):
    import numpy as np
    import pyarrow.compute as pc

    from fsbrain.domains.host.logparse_batch import _ODD, _column

    want = np.asarray(pc.match_substring_regex(_column(lines), _ODD)) | np.array([len(x) > max_line for x in lines])
    got = np.frombuffer(load_fastlog(True).odd_rows(lines, max_line), np.uint8).astype(bool)
    assert got.tolist() == want.tolist()


# --- RE2 called directly (built with libre2-dev) ------------------------------------------------------------

def _fastlog_re2():
    fast = load_fastlog(True)
    if fast is None or not fast.re2_available():
        pytest.skip("_fastlog is not built with RE2 (libre2-dev)")
    return fast


_DATE_TAILS = st.sampled_from([b"", b" ", b"  ", b" 2024", b" 2024 ", b" 2024x ", b" 20245 ", b".5 ", b".50 ", b".", b".x ",
                               b"Z ", b"x", b"\t"])


@needs_ext
@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"Nov 25 10:00:01", b"Nov 25 10:00:59", b"Nov  5 10:01:00",
                                           b"Nov 25 10:00:1"]), _DATE_TAILS, _PIDS, _MSGS), min_size=64, max_size=200),
       st.sampled_from([64, 100]))
def test_date_groups_of_neighbouring_lines_four_ways(rows, batch):
    """Neighbouring lines sharing a date text with different bytes after it (a year that \\b ends or not, a
    fraction, nothing): the RE2 pass reuses the seconds/fraction groups only where the template takes the
    same way through the same text, and the compiled loop the previous line's epoch only for the same text."""
    _four_ways("sshd", [stamp + tail + b" bastion " + pid + msg for stamp, tail, pid, msg in rows], batch=batch)


def test_re2_regex_agrees_with_the_line_path():
    """Debian's RE2 (called directly) and the line path's RE2 binding give the same spans for every regex of
    the shipped filters on their sample lines and on tricky lines."""
    import glob

    from fsbrain.domains.host.fail2ban_regex import _rewrite_for_re2

    fast = _fastlog_re2()
    texts = [x[16:] for x in TRICKY + ODD] + [b"", b"\n", b"Failed password for root from 192.0.2.1 port 22 ssh2"]
    samples = os.path.join(os.path.dirname(__file__), "../../src/fsbrain/domains/host/filters/samples/*.txt")
    for path in glob.glob(samples):
        with open(path, "rb") as fh:
            texts += [x.rstrip(b"\r\n") for x in fh if not x.startswith(b"#")][:50]
    checked = 0
    for spec in shipped_filters():
        flt = LogFilter(load_filter(spec), tz=dt.UTC, now=NOW)
        for rx in [*flt.failregex, *flt.successregex, *([flt.prefregex] if flt.prefregex else [])]:
            if rx.engine != "re2":
                continue
            mine = fast.Re2Regex(_rewrite_for_re2(rx.pattern))
            assert mine.groups == rx._re2.NumberOfCapturingGroups()
            assert all(mine.group_index(name) == idx for name, idx in rx.groupindex.items())
            for text in texts:
                want = rx.spans(text)
                got = mine.match(text, False, mine.groups + 1)
                assert (None if want is None else [tuple(s) for s in want]) == got, (spec, rx.pattern, text)
                checked += 1
    assert checked > 1000


@needs_ext
@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=60), st.sampled_from(["sshd", "dovecot", "pam-generic", "vsftpd", "nginx-http-auth"]))
def test_re2_regex_agrees_on_random_bytes(text, spec):
    from fsbrain.domains.host.fail2ban_regex import _rewrite_for_re2

    fast = _fastlog_re2()
    flt = LogFilter(load_filter(spec), tz=dt.UTC, now=NOW)
    for rx in flt.failregex[:6]:
        mine = fast.Re2Regex(_rewrite_for_re2(rx.pattern))
        want = rx.spans(text)
        got = mine.match(text, False, mine.groups + 1)
        assert (None if want is None else [tuple(s) for s in want]) == got


def test_re2_regex_refuses_what_re2_cannot_run():
    fast = _fastlog_re2()
    with pytest.raises(ValueError):
        fast.Re2Regex(r"(?<=a)b")
    with pytest.raises(ValueError):
        fast.Re2Regex(r"(a)\1")
    rx = fast.Re2Regex(r"^(?P<a>x+)(?P<b>y)?")
    assert rx.group_index("b") == 2 and rx.group_index("nope") == -1
    assert rx.match(b"xxz", True, 3) == [(0, 2), (0, 2), (-1, -1)]
    assert rx.match(b"zxx", True, 1) is None
    with pytest.raises(ValueError):
        rx.match(b"x", False, 65)


@needs_ext
def test_compiled_results_are_ordinary_line_results():
    """Results the compiled loop makes by storing their slots compare, copy, print and change like
    ``LineResult(...)`` made the ordinary way."""
    import dataclasses
    import gc

    from fsbrain.domains.host.logparse import LineResult

    lines = (TRICKY + ODD) * 8
    flt = LogFilter(load_filter("sshd"), tz=dt.UTC, now=NOW, speedups=True)
    got = flt.process_batch(lines)
    assert flt._batch_plan.fast is not None
    for r in got:
        assert type(r) is LineResult
        same = LineResult(r.status, r.host, r.user, r.time, r.regex, r.fid, r.attempts)
        assert r == same and repr(r) == repr(same) and dataclasses.asdict(r) == dataclasses.asdict(same)
        assert dataclasses.replace(r, host="x").host == "x"
    r = got[0]
    r.user = "changed"
    assert r.user == "changed"
    gc.collect()  # untracked results are still freed by reference counting; the collector does not crash on them
    assert sum(1 for x in got if x.status == "failure") > 0


@needs_ext
def test_arrow_path_when_built_with_re2_but_disabled(monkeypatch):
    monkeypatch.setenv("FSBRAIN_RE2", "0")
    flt = LogFilter(load_filter("sshd"), tz=dt.UTC, now=NOW, speedups=True)
    one = LogFilter(load_filter("sshd"), tz=dt.UTC, now=NOW)
    lines = (TRICKY + ODD) * 8
    got = flt.process_batch(lines)
    assert flt._batch_plan.fast is not None and flt._batch_plan.re2 is None
    assert _key(got) == _key([one.process(x) for x in lines]) and flt.counts == one.counts


_HEAD_PARTS = st.sampled_from([b"bastion ", b"h-1 ", b"", b" ", b"  ", b"[] ", b"<auth.info> ", b"<a.b>  ", b"sshd[7]: ",
                               b"sshd[8]: ", b"sshd: ", b"[sshd]: ", b"(sshd) ", b"sshd(pam_unix)[9]: ", b"[ID 800 auth.info] ",
                               b"kernel: [ 12.5]: ", b"@vserver_x ", b"error: ", b"fatal: ", b"error: PAM: ", b"x: ", b":"])


@needs_ext
@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.lists(_HEAD_PARTS, max_size=4), _MSGS), min_size=64, max_size=200))
def test_new_prefregex_heads_four_ways(rows):
    """Lines whose prefregex head is new (the compiled RE2 pass takes the head's groups from the head alone
    when it leaves content, else the full prefregex), with heads that leave nothing, end in spaces or repeat."""
    stamp = b"Nov 25 10:00:01 "
    lines = [stamp + b"".join(parts) + msg for parts, msg in rows]
    _four_ways("sshd", lines, batch=64)
    _four_ways("sshd[mode=aggressive]", lines, batch=100)


def _setup_fastlog_options():
    """``setup.py``'s ``_fastlog_options`` on its own (the file itself calls ``setup()`` when run)."""
    import ast
    from pathlib import Path

    src = (Path(__file__).resolve().parents[2] / "setup.py").read_text()
    fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == "_fastlog_options")
    ns: dict = {}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "setup.py", "exec"), ns)
    return ns["_fastlog_options"]


def test_build_falls_back_to_plain_c_without_re2(monkeypatch):
    """Without RE2 (disabled, or no C++ compiler/library that links a program using it) the extension is
    built as plain C, as before; the batches then use Arrow's kernels."""
    options = _setup_fastlog_options()
    monkeypatch.setenv("FSBRAIN_RE2", "0")
    assert options() == {"extra_compile_args": ["-O2"]}
    monkeypatch.setenv("FSBRAIN_RE2", "1")
    monkeypatch.setenv("CXX", "false")  # a compiler that always fails
    assert options() == {"extra_compile_args": ["-O2"]}


def test_build_uses_re2_where_it_links(monkeypatch):
    import os
    import shutil

    if not os.path.isfile("/usr/include/re2/re2.h") or shutil.which("c++") is None:
        pytest.skip("RE2's headers (libre2-dev) or a C++ compiler missing")
    monkeypatch.delenv("FSBRAIN_RE2", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    got = _setup_fastlog_options()()
    assert got["language"] == "c++" and ("FSBRAIN_HAVE_RE2", "1") in got["define_macros"]
    assert any("re2" in x for x in got["extra_link_args"])
