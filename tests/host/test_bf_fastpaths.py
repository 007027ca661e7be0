"""The line loop's shortcuts give exactly what the plain path gives: the prefregex probe (head groups reused
per head text), the per-minute date cache, inlined matching. Compared line by line, including lines built
to trip them (odd spacing, ``error:`` levels, empty content, line breaks, sub-second and year dates)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.domains.host.dates import DateParser
from fsbrain.domains.host.fail2ban import load_filter
from fsbrain.domains.host.fail2ban_regex import PrefixProbe, compile_bytes, strip_groups
from fsbrain.domains.host.logparse import LogFilter

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC).timestamp()


def _pair(spec: str) -> tuple[LogFilter, LogFilter]:
    fast = LogFilter(load_filter(spec), tz=dt.UTC, now=NOW)
    plain = LogFilter(load_filter(spec), tz=dt.UTC, now=NOW)
    plain._probe = None  # the full prefregex on every line
    plain.dates._fast = None  # the combined date regex on every line, no per-minute cache
    return fast, plain


def _same(fast: LogFilter, plain: LogFilter, lines: list[bytes]) -> None:
    for line in lines:
        a, b = fast.process(line), plain.process(line)
        assert (a.status, a.host, a.user, a.time, a.regex, a.fid, a.attempts) == \
               (b.status, b.host, b.user, b.time, b.regex, b.fid, b.attempts), line
    assert fast.counts == plain.counts


TRICKY = [
    b"Nov 25 10:00:01 bastion sshd[11]: Failed password for root from 192.0.2.1 port 22 ssh2",
    b"Nov 25 10:00:01 bastion sshd[11]: Failed password for root from 192.0.2.1 port 22 ssh2",
    b"Nov 25 10:00:02 bastion sshd[11]: error: PAM: Authentication failure for root from 192.0.2.1",
    b"Nov 25 10:00:02 bastion sshd[11]:  Failed password for bob from 192.0.2.2 port 22 ssh2",
    b"Nov 25 10:00:02 bastion sshd[11]: ",
    b"Nov 25 10:00:02 bastion sshd[11]:",
    b"Nov 25 10:00:03 bastion sshd[11]: Failed password for x from 192.0.2.3 port 1\nssh2",
    b"Nov 25 10:00:03.250 bastion sshd[12]: Invalid user a from 192.0.2.4 port 5",
    b"Nov 25 10:00:04 2025 bastion sshd[12]: Invalid user a from 192.0.2.4 port 5",
    b"Nov 25 10:00:61 bastion sshd[12]: Invalid user a from 192.0.2.4 port 5",
    b"Nov 25 10:01:04 bastion sshd[12]: Connection closed by 192.0.2.4 port 5 [preauth]",
    b"Nov 25 10:01:05 sshd[13]: Failed password for root from 192.0.2.5 port 22 ssh2",
    b"Nov 25 10:01:05 bastion sshd[13]: Failed password for root from 192.0.2.5 port 22 ssh2",
    b"[Nov 25 10:01:06] bastion sshd[13]: Failed password for root from 192.0.2.5 port 22 ssh2",
    b"garbage without a date",
    b"",
]


def test_tricky_lines_same_as_plain_path():
    for spec in ("sshd", "sshd[mode=aggressive]", "dovecot", "postfix", "pam-generic"):
        fast, plain = _pair(spec)
        _same(fast, plain, TRICKY * 3)


_WORDS = st.sampled_from([b"Failed password for ", b"invalid user ", b"root", b" from ", b"192.0.2.7", b" port 22",
                          b" ssh2", b"error: ", b"PAM: ", b"Connection closed by ", b"Accepted password for ",
                          b" ", b"  ", b"\t", b"[preauth]", b"x", b"sshd[1]: ", b"sshd[2]: ", b"host "])
_STAMPS = st.sampled_from([b"Nov 25 10:00:01 ", b"Nov 25 10:00:59 ", b"Nov 25 10:01:00 ", b"Nov 25 10:00:01.5 ",
                           b"Nov 25 10:00:01 2024 ", b"2026-11-25T10:00:01Z ", b""])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_STAMPS, st.lists(_WORDS, max_size=10)), max_size=25))
def test_random_lines_same_as_plain_path(rows):
    fast, plain = _pair("sshd")
    _same(fast, plain, [stamp + b"".join(words) for stamp, words in rows])


def test_strip_groups_keeps_the_language():
    pat = r"^(?P<a>x+)(y|[(])\((?:z)?(?P<b>\d)$"
    stripped = strip_groups(pat)
    assert stripped is not None and "(?P<" not in stripped
    full, bare = compile_bytes(pat), compile_bytes(stripped)
    for text in (b"xxy(3", b"x((z1", b"xy(", b"y(1", b"xx((z9"):
        a, b = full.spans(text), bare.spans(text)
        assert (a is None) == (b is None) and (a is None or a[0] == b[0])
    assert bare.groupindex == {}


def test_probe_declines_what_it_cannot_prove():
    assert not PrefixProbe(compile_bytes(r"^(?P<mlfid>\S+) (?P<content>.+)x$")).usable  # content not last
    assert PrefixProbe(compile_bytes(r"^(?P<mlfid>\S+) (?P<content>.+)$")).usable
    probe = PrefixProbe(compile_bytes(r"^(?P<mlfid>\S+)\b\s*(?P<content>.+)$"))
    key, groups, e = probe.lookup(b"host:  rest")  # \b only holds before ':', so the head ends there
    assert groups is None and e == 4 and key == b"host:"  # \b: the next byte is part of the key
    assert probe.lookup(b"host  ")[2] == -1  # nothing left for the content


def test_minute_cache_matches_a_fresh_parse():
    cached = DateParser(tz=dt.UTC, now=NOW)
    for sec in (0, 1, 59, 60, 61):
        line = f"Nov 25 10:00:{sec:02d} host x".encode()
        fresh = DateParser(tz=dt.UTC, now=NOW)
        assert cached.find(line) == fresh.find(line), line


# --- batches (logparse_batch): Arrow's RE2 kernels do the regex work, results must not change ---------------

def _batch_same(spec: str, lines: list[bytes], dirs=None) -> None:
    one = LogFilter(load_filter(spec, dirs), tz=dt.UTC, now=NOW)
    many = LogFilter(load_filter(spec, dirs), tz=dt.UTC, now=NOW)
    want = [one.process(line) for line in lines]
    got = many.process_batch(lines)
    assert [(r.status, r.host, r.user, r.time, r.regex, r.fid, r.attempts) for r in got] == \
           [(r.status, r.host, r.user, r.time, r.regex, r.fid, r.attempts) for r in want]
    assert many.counts == one.counts
    assert many._last_ts == one._last_ts


ODD = [
    "Nov 25 10:02:01 bastion sshd[14]: Failed password for 用户 from 192.0.2.9 port 22 ssh2".encode(),
    b"Nov 25 10:02:01 bastion sshd[14]: Failed password for \xff\xfe from 192.0.2.9 port 22 ssh2",
    b"Nov 25 10:02:02 bastion sshd[14]: Failed password for " + b"a" * 17000 + b" from 192.0.2.9 port 22",
    b"Nov\x0b25 10:02:03 bastion sshd[14]: Failed password for root from 192.0.2.9 port 22 ssh2",
    b"2026-11-25T10:02:04Z bastion sshd[15]: Failed password for root from 192.0.2.10 port 22 ssh2",
    b"2026-11-25T10:02:05Z bastion sshd[15]: Invalid user x from 192.0.2.10 port 22",
    b"Nov 25 10:02:06 bastion sshd[15]: Invalid user x from 192.0.2.10 port 22",
    b"bastion sshd[16]: Failed password for root from 192.0.2.11 port 22 ssh2",
    b"  Nov 25 10:02:07 bastion sshd[16]: Failed password for root from 192.0.2.11 port 22 ssh2",
]


def test_batch_equals_line_by_line_on_tricky_lines():
    lines = (TRICKY + ODD) * 8
    for spec in ("sshd", "sshd[mode=aggressive]", "dovecot", "postfix", "pam-generic", "nginx-http-auth",
                 "mysqld-auth", "vsftpd", "recidive"):
        _batch_same(spec, lines)


def test_batch_plan_says_why_it_cannot_run():
    from fsbrain.domains.host.logparse_batch import BatchPlan

    assert BatchPlan(LogFilter(load_filter("sshd"))).ok
    plans = {name: BatchPlan(LogFilter(load_filter(name))) for name in ("selinux-ssh", "recidive", "apache-auth")}
    for plan in plans.values():
        assert plan.ok or plan.reason


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_STAMPS, st.lists(_WORDS, max_size=10)), min_size=70, max_size=160))
def test_random_batches_equal_line_by_line(rows):
    _batch_same("sshd", [stamp + b"".join(words) for stamp, words in rows])


def test_fail2ban_samples_in_batches(shared_data):
    import os

    from fsbrain.domains.host.fail2ban import shipped_filters

    root = shared_data("fail2ban-logs")
    names = set(shipped_filters())
    for sample in sorted(os.listdir(root)):
        if sample not in names:
            continue
        with open(os.path.join(root, sample), "rb") as fh:
            lines = [x.rstrip(b"\r\n") for x in fh if not x.startswith(b"#")]
        _batch_same(sample, lines * 3)


def test_batch_falls_back_when_arrow_refuses(monkeypatch):
    import pyarrow as pa
    import pyarrow.compute as pc

    monkeypatch.setenv("FSBRAIN_RE2", "0")  # compiled batches built with RE2 call it directly, not Arrow
    lines = TRICKY * 10
    one = LogFilter(load_filter("sshd"), tz=dt.UTC, now=NOW)
    want = [(r.status, r.host, r.time) for r in (one.process(x) for x in lines)]
    many = LogFilter(load_filter("sshd"), tz=dt.UTC, now=NOW)

    def refuse(*_a, **_k):
        raise pa.ArrowInvalid("pattern too large")

    monkeypatch.setattr(pc, "extract_regex_span", refuse)
    got = [(r.status, r.host, r.time) for r in many.process_batch(lines)]
    assert got == want and many.counts == one.counts
    assert not many._batch_plan.ok and "Arrow" in many._batch_plan.reason
