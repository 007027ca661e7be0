"""The line engine: statuses, connection ids, bounds and bad input; fuzzed."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.domains.host.fail2ban import load_filter, shipped_filters
from fsbrain.domains.host.logparse import MAX_LINE, LogFilter

NOW = dt.datetime(2005, 8, 14, tzinfo=dt.UTC).timestamp()


def sshd(**opts):
    return LogFilter(load_filter("sshd", options=opts), tz=dt.UTC, now=NOW)


def test_failure_success_and_missed():
    f = sshd()
    r = f.process(b"Jun 21 16:47:48 h sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2")
    assert (r.status, r.host, r.user) == ("failure", "192.0.2.1", "root")
    assert r.time == dt.datetime(2005, 6, 21, 16, 47, 48, tzinfo=dt.UTC).timestamp()
    ok = f.process(b"Jun 21 16:47:49 h sshd[2]: Accepted password for bob from 192.0.2.2 port 22 ssh2")
    assert (ok.status, ok.host, ok.user) == ("success", "192.0.2.2", "bob")
    assert f.process(b"Jun 21 16:47:50 h cron[3]: something else").status == "missed"
    assert f.counts["failure"] == 1 and f.counts["success"] == 1 and f.counts["missed"] == 1


def test_connection_id_carries_the_address_to_a_later_failure():
    f = sshd()
    assert f.process(b"Jun 21 16:00:00 h sshd[7]: Connection from 198.51.100.9 port 5 on 10.0.0.1 port 22").status == "nofail"
    r = f.process(b"Jun 21 16:00:01 h sshd[7]: Disconnecting: Too many authentication failures [preauth]")
    assert (r.status, r.host) == ("failure", "198.51.100.9")
    other = f.process(b"Jun 21 16:00:01 h sshd[8]: Disconnecting: Too many authentication failures [preauth]")
    assert other.status == "nofail"  # pid 8 never said where it came from: waits


def test_success_after_several_user_names_is_a_failure():
    f = sshd()
    pre = b"Mar  7 18:53:22 bar sshd[1558]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
    assert f.process(pre + b"ruser=root rhost=192.0.2.114").status == "nofail"
    assert f.process(pre + b"ruser=admin rhost=192.0.2.114").status == "failure"
    r = f.process(b"Mar  7 18:53:24 bar sshd[1558]: Accepted password for known from 192.0.2.114 port 5 ssh2")
    assert r.status == "failure"


def test_over_long_lines_are_cut_and_counted():
    f = sshd()
    line = b"Jun 21 16:47:48 h sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2 " + b"A" * (MAX_LINE * 2)
    r = f.process(line)
    assert f.counts["truncated"] == 1
    assert r.status in ("failure", "missed")


def test_lines_without_dates_are_counted_not_dropped():
    f = sshd()
    r = f.process(b"h sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2")
    assert r.status == "failure" and r.time is None
    assert f.counts["nodate"] == 1


@pytest.mark.parametrize("name", shipped_filters())
@settings(max_examples=30, deadline=None)
@given(raw=st.binary(max_size=400))
def test_fuzz_every_filter_on_garbage(name, raw):
    f = LogFilter(load_filter(name), tz=dt.UTC, now=NOW)
    r = f.process(raw)
    assert r.status in ("failure", "success", "ignored", "nofail", "missed")
    assert f.counts["lines"] == 1


@settings(max_examples=200, deadline=None)
@given(user=st.text(min_size=0, max_size=60), port=st.integers(0, 65535))
def test_fuzz_user_names_cannot_move_the_address(user, port):
    f = sshd()
    line = (f"Jun 21 16:47:48 h sshd[1]: Failed password for invalid user {user} from 192.0.2.77 "
            f"port {port} ssh2").encode("utf-8", "replace")
    r = f.process(line)
    if r.status == "failure":
        assert r.host == "192.0.2.77"
