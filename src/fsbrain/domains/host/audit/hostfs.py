"""Read a Linux file tree as if it were mounted at ``/``, without ever leaving it.

The audit runs against the real root or a prepared directory (a container image export, a disk mount,
a test fixture). Absolute symbolic links inside the tree are resolved relative to the tree root, ``..``
never climbs above it, loops are cut after 40 hops, and files are read with a size cap.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> os.makedirs(f"{d}/etc"); _ = open(f"{d}/etc/hostname", "w").write("web01\\n")
>>> HostFS(d).read_text("/etc/hostname")
'web01\\n'
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from fsbrain.core.errors import InputError

MAX_CONFIG_BYTES = 8 * 1024 * 1024
_MAX_HOPS = 40


def printable(text: str | None) -> str | None:
    """A single-line, encodable form of a path or value from the tree: undecodable bytes (surrogate
    escapes) as ``\\xNN``, control characters escaped, so hostile file names cannot break reports."""
    if text is None:
        return None
    out = []
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch == "\n":
            out.append("\\n")
        elif o < 0x20 or o == 0x7F or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


class HostFS:
    """A file tree treated as a host's root file system.

    Args:
        root: directory holding the tree (``/`` for the running host).
        max_bytes: largest configuration file read; bigger files are reported, not read.
    """

    def __init__(self, root: str | Path, *, max_bytes: int = MAX_CONFIG_BYTES) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.max_bytes = max_bytes
        self.notes: list[str] = []
        if not os.path.isdir(self.root):
            raise InputError(f"audit root {self.root!r} is not a directory")

    def resolve(self, host_path: str) -> str | None:
        """Map a host path (``/etc/passwd``) to a real path under the root, following links inside it.

        Returns None when the path does not exist, loops, or is not reachable.
        """
        parts = [p for p in host_path.split("/") if p not in ("", ".")]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            real = os.path.join(self.root, *done, part)
            try:
                st = os.lstat(real)
            except OSError:
                return None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_HOPS:
                    self.notes.append(f"symlink loop at {'/' + '/'.join(done + [part])}")
                    return None
                try:
                    target = os.readlink(real)
                except OSError:
                    return None
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            done.append(part)
        return os.path.join(self.root, *done)

    def host_path(self, real: str) -> str:
        """The host path (``/etc/x``) of a real path under the root."""
        rel = os.path.relpath(real, self.root)
        return "/" if rel == "." else "/" + rel.replace(os.sep, "/")

    def exists(self, host_path: str) -> bool:
        return self.resolve(host_path) is not None

    def isdir(self, host_path: str) -> bool:
        real = self.resolve(host_path)
        return real is not None and os.path.isdir(real)

    def stat(self, host_path: str) -> os.stat_result | None:
        """``stat`` of the resolved path, or None when absent."""
        real = self.resolve(host_path)
        if real is None:
            return None
        try:
            return os.stat(real)
        except OSError:
            return None

    def read_text(self, host_path: str) -> str | None:
        """Content of a regular file as text (undecodable bytes replaced), or None when absent.

        Files larger than ``max_bytes``, unreadable files and non-regular files are noted and skipped.
        """
        real = self.resolve(host_path)
        if real is None:
            return None
        try:
            st = os.stat(real)
            if not stat.S_ISREG(st.st_mode):
                self.notes.append(f"{host_path}: not a regular file, skipped")
                return None
            if st.st_size > self.max_bytes:
                self.notes.append(f"{host_path}: {st.st_size} bytes is over the {self.max_bytes} byte limit, "
                                  "skipped")
                return None
            with open(real, "rb") as fh:
                return fh.read(self.max_bytes).decode("utf-8", errors="replace")
        except OSError as exc:
            self.notes.append(f"{host_path}: cannot read ({exc.strerror})")
            return None

    def lines(self, host_path: str) -> Iterator[tuple[int, str]]:
        """``(line_number, line)`` pairs of a text file; nothing when it is absent."""
        text = self.read_text(host_path)
        if text is None:
            return
        yield from enumerate(text.splitlines(), 1)

    def listdir(self, host_path: str) -> list[str]:
        """Sorted entry names of a directory (host paths), empty when absent."""
        real = self.resolve(host_path)
        if real is None or not os.path.isdir(real):
            return []
        try:
            names = sorted(os.listdir(real))
        except OSError as exc:
            self.notes.append(f"{host_path}: cannot list ({exc.strerror})")
            return []
        base = host_path.rstrip("/")
        return [f"{base}/{n}" for n in names]

    def walk(self, host_dir: str, *, max_entries: int,
             visited: set[tuple[int, int]] | None = None) -> Iterator[tuple[str, os.stat_result]]:
        """Every entry under a directory (no symlinks followed) as ``(host_path, lstat)``.

        Stops after ``max_entries`` entries and records a note, so a huge tree cannot stall the audit.
        Directories in ``visited`` (device, inode) are not walked again (``/bin`` -> ``/usr/bin`` on
        merged-/usr systems); the set is updated.
        """
        real = self.resolve(host_dir)
        if real is None or not os.path.isdir(real):
            return
        count = 0
        stack = [real]
        seen = visited if visited is not None else set()
        while stack:
            cur = stack.pop()
            try:
                dst = os.stat(cur)
            except OSError:
                continue
            if (dst.st_dev, dst.st_ino) in seen:
                continue
            seen.add((dst.st_dev, dst.st_ino))
            try:
                with os.scandir(cur) as it:
                    entries = list(it)
            except OSError as exc:
                self.notes.append(f"{self.host_path(cur)}: cannot list ({exc.strerror})")
                continue
            for entry in entries:
                count += 1
                if count > max_entries:
                    self.notes.append(f"{host_dir}: stopped after {max_entries} entries")
                    return
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                yield self.host_path(entry.path), st
