"""Scanning files: counts, unreadable and broken files, over-long lines, gzip, guessing the filter."""

from __future__ import annotations

import gzip

import pytest

from fsbrain.core.errors import InputError
from fsbrain.domains.host import logparse_scan
from fsbrain.domains.host.bruteforce import BruteForceDetector
from fsbrain.domains.host.logparse import MAX_LINE
from fsbrain.domains.host.logparse_scan import display_name, guess_filter, scan_files

LINE = b"Jun 21 16:47:48 h sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2\n"


def test_counts_and_problems_are_reported_never_silent(tmp_path):
    good = tmp_path / "auth.log"
    good.write_bytes(LINE * 3 + b"\x00\x01\x02 binary\n" + b"x" * (MAX_LINE * 3) + b"\n" + b"no date here\n")
    report = scan_files([good, tmp_path / "missing.log", tmp_path], filter_spec="sshd")
    f = report.files[0]
    assert (f["lines"], f["failure"], f["binary"], f["truncated"], f["nodate"]) == (6, 3, 1, 1, 2)
    assert any("no such file" in e for e in report.errors)
    assert any("is a directory" in e for e in report.errors)
    assert report.hosts["192.0.2.1"] == 3


def test_permission_denied_is_a_clear_message(tmp_path, monkeypatch):
    p = tmp_path / "secure"
    p.write_bytes(LINE)

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(logparse_scan, "open", deny, raising=False)
    report = scan_files([p], filter_spec="sshd")
    assert report.files == [] and report.errors == [f"{p}: permission denied"]


def test_broken_gzip_is_reported(tmp_path):
    p = tmp_path / "auth.log.2.gz"
    data = gzip.compress(LINE * 1000)
    p.write_bytes(data[: len(data) // 2])
    report = scan_files([p], filter_spec="sshd")
    assert report.files[0]["failure"] > 0
    assert any("read error" in e for e in report.errors)


def test_guess_filter(tmp_path):
    assert guess_filter([LINE.rstrip()] * 5) == "sshd"
    mysql = b"2015-10-07 06:09:42 5907 [Warning] Access denied for user 'root'@'127.0.0.1' (using password: YES)"
    assert guess_filter([mysql] * 5) == "mysqld-auth"
    with pytest.raises(InputError, match="could not recognise"):
        guess_filter([b"nothing to see"] * 5)


def test_detector_sees_file_and_line(tmp_path):
    p = tmp_path / "auth.log"
    p.write_bytes(b"".join(LINE.replace(b"[1]", b"[%d]" % i) for i in range(6)))
    report = scan_files([p], filter_spec="sshd", detector=BruteForceDetector())
    assert report.alerts and report.alerts[0].details["where"].endswith("auth.log:5")


def test_display_name_escapes_control_characters():
    assert display_name("a\x1b[31mb\n.log") == "a\\x1b[31mb\\n.log"
    assert display_name("普通.log") == "普通.log"
