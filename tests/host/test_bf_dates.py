"""Date finding: templates, zones, year inference, datepatterns, unknown dates; fuzzed."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.core.errors import PolicyError
from fsbrain.domains.host.dates import DateParser, zone

UTC = dt.UTC
NOW = dt.datetime(2005, 8, 14, 12, tzinfo=UTC).timestamp()


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, UTC).isoformat()


@pytest.mark.parametrize("line,expected", [
    (b"Jun 21 16:47:48 host sshd[1]: x", "2005-06-21T16:47:48+00:00"),
    (b"Jun  1 06:07:08 host x", "2005-06-01T06:07:08+00:00"),
    (b"Sat Jun 21 16:47:48 2003 [pid 2] x", "2003-06-21T16:47:48+00:00"),
    (b"2015-04-16T18:02:50.321974+02:00 host sshd[2]: x", "2015-04-16T16:02:50.321974+00:00"),
    (b"2015-10-07  8:25:38 139845 [Warning] x", "2015-10-07T08:25:38+00:00"),
    (b'1.2.3.4 - - [21/Jun/2005:16:47:48 +0200] "GET /"', "2005-06-21T14:47:48+00:00"),
    (b"2012/04/09 11:53:29 [error] 2865#0: x", "2012-04-09T11:53:29+00:00"),
    (b"130324  0:04:00 [Warning] Access denied", "2013-03-24T00:04:00+00:00"),
    (b"21-Jun-2005 16:47:48.123 client x", "2005-06-21T16:47:48.123000+00:00"),
    (b"1119372468.5 something", "2005-06-21T16:47:48.500000+00:00"),
    (b"@400000004c91b044077a9e94 imap-login: x", "2010-09-16T05:51:00+00:00"),
])
def test_templates(line, expected):
    found = DateParser(tz=UTC, now=NOW).find(line)
    assert found is not None
    assert iso(found[1]) == expected


def test_year_inference_looks_back_over_new_year():
    p = DateParser(tz=UTC, now=dt.datetime(2006, 1, 1, 0, 5, tzinfo=UTC).timestamp())
    assert iso(p.find(b"Dec 31 23:59:00 h x")[1]).startswith("2005-12-31")
    assert iso(p.find(b"Jan  1 00:01:00 h x")[1]).startswith("2006-01-01")


def test_local_zone_applies_to_dates_without_one():
    p = DateParser(tz=zone("Asia/Shanghai"), now=NOW)
    assert iso(p.find(b"Jun 21 16:47:48 h x")[1]) == "2005-06-21T08:47:48+00:00"


def test_span_is_cut_from_the_line():
    (s, e), _ = DateParser(tz=UTC, now=NOW).find(b"[Sat Jun 21 16:47:48 2003] [error] x")
    assert (s, e) == (1, 25)


@pytest.mark.parametrize("line", [b"no date here", b"99/99/9999 99:99:99 x", b"Feb 30 10:00:00 h x", b""])
def test_unknown_dates_return_none(line):
    assert DateParser(tz=UTC, now=NOW).find(line) is None


def test_datepatterns():
    p = DateParser("^%Y%m%d %H%M%S", tz=UTC, now=NOW)
    assert p.find(b"20050621 164748 x") is None or iso(p.find(b"20050621 164748 x")[1]).startswith("2005")
    p2 = DateParser("%d.%m.%Y %H:%M:%S", tz=UTC, now=NOW)
    assert iso(p2.find(b"x 21.06.2005 16:47:48 y")[1]) == "2005-06-21T16:47:48+00:00"
    assert not DateParser("{NONE}").has_dates
    p3 = DateParser("{^LN-BEG}", tz=UTC, now=NOW)
    assert p3.find(b"x Jun 21 16:47:48") is None
    assert p3.find(b"Jun 21 16:47:48 x") is not None
    assert iso(DateParser("{^LN-BEG}EPOCH", tz=UTC).find(b"1119372468 x")[1]).startswith("2005-06-21")


def test_bad_zone_is_a_clear_error():
    with pytest.raises(PolicyError, match="unknown time zone"):
        zone("Mars/Olympus")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_find_never_raises(raw):
    out = DateParser(tz=UTC, now=NOW).find(raw)
    assert out is None or (0 <= out[0][0] <= out[0][1] <= len(raw))
