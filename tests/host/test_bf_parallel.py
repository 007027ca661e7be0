"""Chunked matching on worker processes gives exactly the single-process results."""

from __future__ import annotations

import datetime as dt

from fsbrain.domains.host.fail2ban import load_filter
from fsbrain.domains.host.logparse import LogFilter
from fsbrain.domains.host.logparse_parallel import parallel_failures, parallel_results

NOW = dt.datetime(2005, 8, 14, tzinfo=dt.UTC).timestamp()


def test_parallel_equals_single_process(tmp_path):
    lines = []
    for i in range(400):
        pid = 1000 + i // 3  # three lines per connection: state crosses chunk borders
        lines.append(f"Jun 21 16:{i // 60 % 60:02d}:{i % 60:02d} h sshd[{pid}]: Connection from 198.51.100.{i % 7} port 1")
        lines.append(f"Jun 21 16:{i // 60 % 60:02d}:{i % 60:02d} h sshd[{pid}]: "
                     "Disconnecting: Too many authentication failures [preauth]")
        lines.append(f"Jun 21 16:{i // 60 % 60:02d}:{i % 60:02d} h cron[1]: unrelated")
    p = tmp_path / "auth.log"
    p.write_text("\n".join(lines) + "\n")
    single = LogFilter(load_filter("sshd"), tz=dt.UTC, now=NOW)
    expected = [(n, r.status, r.host) for n, line in enumerate(p.read_bytes().splitlines(), 1)
                if (r := single.process(line)).status != "missed"]
    got = [(n, r.status, r.host) for n, r in parallel_results(p, "sshd", jobs=2, tz=dt.UTC, now=NOW)]
    assert got == expected
    assert sum(1 for _, s, _ in got if s == "failure") == 400
    assert len(parallel_failures(p, "sshd", jobs=2)) == 400
