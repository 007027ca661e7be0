"""Following a live file: appends, partial lines, rotation (rename + create), truncation, long lines."""

from __future__ import annotations

import os
import threading
import time

from fsbrain.domains.host.follow import FileFollower
from fsbrain.domains.host.logparse import MAX_LINE


def test_append_partial_rotation_truncation(tmp_path):
    p = tmp_path / "auth.log"
    p.write_bytes(b"before\n")
    f = FileFollower(p)  # starts at the end
    assert f.poll() == []
    with open(p, "ab") as fh:
        fh.write(b"one\ntw")
    assert f.poll() == [b"one"]
    with open(p, "ab") as fh:
        fh.write(b"o\n")
    assert f.poll() == [b"two"]
    # logrotate: rename, the writer adds a last line to the old file, a new file appears
    os.rename(p, tmp_path / "auth.log.1")
    with open(tmp_path / "auth.log.1", "ab") as fh:
        fh.write(b"late\n")
    assert f.poll() == [b"late"]  # new file not there yet: keep reading the old one
    p.write_bytes(b"fresh\n")
    assert f.poll() == [b"fresh"]
    assert f.counts["rotations"] == 1
    # copytruncate
    with open(p, "wb") as fh:
        fh.write(b"x\n")
    assert f.poll() == [b"x"]
    assert f.counts["truncations"] == 1
    f.close()


def test_over_long_line_is_cut_once(tmp_path):
    p = tmp_path / "big.log"
    p.write_bytes(b"")
    f = FileFollower(p, from_start=True)
    with open(p, "ab") as fh:
        fh.write(b"A" * (MAX_LINE * 3) + b"\nnext\n")
    got = f.poll()
    assert got[0] == b"A" * MAX_LINE and got[1] == b"next" and len(got) == 2
    assert f.counts["truncated"] == 1


def test_missing_file_is_waited_for(tmp_path):
    p = tmp_path / "later.log"
    f = FileFollower(p)
    assert f.poll() == []
    p.write_bytes(b"hello\n")
    assert f.poll() == [b"hello"]


def test_follow_while_a_writer_rotates(tmp_path):
    """A real writer thread appends and rotates; every line written is read exactly once."""
    p = tmp_path / "live.log"
    p.write_bytes(b"")
    f = FileFollower(p, from_start=True)
    written = [f"line {i}".encode() for i in range(300)]
    done = threading.Event()

    def writer():
        fh = open(p, "ab")
        for i, line in enumerate(written):
            fh.write(line + b"\n")
            fh.flush()
            if i in (100, 200):
                fh.close()
                os.rename(p, tmp_path / f"live.log.{i}")
                fh = open(p, "ab")
            time.sleep(0.001)
        fh.close()
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not done.is_set() or len(got) < len(written)):
        got += f.poll()
        time.sleep(0.005)
        if done.is_set() and len(got) >= len(written):
            break
    got += f.poll()
    t.join()
    assert got == written
    assert f.counts["rotations"] == 2
