"""Follow a growing log file like ``tail -F``: survives rotation and truncation.

:class:`FileFollower` polls the file: new complete lines are returned as bytes; a partial last line waits
for its newline (bounded: past ``MAX_LINE`` bytes it is cut and counted). When the path starts naming a
different file (``logrotate`` moved it away and created a new one) the rest of the old file is read
first, then the new one from its start. When the file shrinks (``copytruncate``, ``> file``) reading
restarts at its beginning. A missing file is waited for, not an error.

>>> import tempfile, os
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "auth.log")
>>> open(p, "wb").write(b"old line\\n") and None
>>> f = FileFollower(p, from_start=False)
>>> open(p, "ab").write(b"new line\\n") and None
>>> f.poll()
[b'new line']
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from fsbrain.domains.host.logparse import MAX_LINE

READ_CHUNK = 1 << 16


class FileFollower:
    """Incremental reader of one path.

    Args:
        path: the log file.
        from_start: read what is already there first (default: start at the end, like ``tail -F``).

    Attributes:
        counts: ``lines``, ``truncated`` (over-long lines cut), ``rotations``, ``truncations``,
            ``reopen_errors``.
    """

    def __init__(self, path: str | Path, *, from_start: bool = False) -> None:
        self.path = Path(path)
        self._fh: IO[bytes] | None = None
        self._ino: tuple[int, int] | None = None
        self._pos = 0
        self._partial = b""
        self._skipping = False
        self.counts = {"lines": 0, "truncated": 0, "rotations": 0, "truncations": 0, "reopen_errors": 0}
        self._open(at_end=not from_start)

    def _open(self, *, at_end: bool) -> bool:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - kept open between polls
        except FileNotFoundError:
            return False
        except OSError:
            self.counts["reopen_errors"] += 1
            return False
        st = os.fstat(fh.fileno())
        self._fh, self._ino = fh, (st.st_dev, st.st_ino)
        self._pos = st.st_size if at_end else 0
        fh.seek(self._pos)
        return True

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _read_available(self) -> list[bytes]:
        assert self._fh is not None
        out: list[bytes] = []
        while True:
            chunk = self._fh.read(READ_CHUNK)
            if not chunk:
                break
            self._pos += len(chunk)
            data = self._partial + chunk
            parts = data.split(b"\n")
            self._partial = parts.pop()
            for line in parts:
                if self._skipping:  # tail of an over-long line already emitted
                    self._skipping = False
                    continue
                out.append(line[:MAX_LINE].rstrip(b"\r"))
                if len(line) > MAX_LINE:
                    self.counts["truncated"] += 1
            if len(self._partial) > MAX_LINE:
                if not self._skipping:
                    out.append(self._partial[:MAX_LINE])
                    self.counts["truncated"] += 1
                self._skipping = True
                self._partial = b""
        self.counts["lines"] += len(out)
        return out

    def poll(self) -> list[bytes]:
        """Complete new lines since the last call (possibly none)."""
        if self._fh is None:
            if not self._open(at_end=False):
                return []
        lines = self._read_available()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return lines  # rotated away, new file not there yet: keep the old one until it appears
        except OSError:
            self.counts["reopen_errors"] += 1
            return lines
        if (st.st_dev, st.st_ino) != self._ino:
            self.counts["rotations"] += 1
            lines += self._read_available()  # the old file may have grown just before rotation
            if self._partial and not self._skipping:
                lines.append(self._partial)
            self._partial, self._skipping = b"", False
            self.close()
            if self._open(at_end=False):
                lines += self._read_available()
        elif st.st_size < self._pos:
            self.counts["truncations"] += 1
            assert self._fh is not None
            self._fh.seek(0)
            self._pos, self._partial, self._skipping = 0, b"", False
            lines += self._read_available()
        return lines

    def follow(self, *, interval: float = 0.5, stop: Callable[[], bool] | None = None) -> Iterator[bytes]:
        """Yield lines as they arrive until ``stop()`` returns true."""
        while stop is None or not stop():
            got = self.poll()
            yield from got
            if not got:
                time.sleep(interval)
