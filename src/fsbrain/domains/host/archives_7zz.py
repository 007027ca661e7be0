"""7-Zip (``7zz``) as a bounded extractor for container formats fsbrain does not decode itself.

Formats handed to 7-Zip, recognised by content (never by name):

* ARJ (``60 EA``), Microsoft Compiled HTML Help / CHM (``ITSF``, LZX inside);
* Microsoft Cabinets whose folders use LZX or Quantum (stored and MSZIP cabinets are read by fsbrain's own
  parser; cabinets embedded in installers are carved there and come back here);
* NSIS installers (a PE with NSIS's ``0xDEADBEEF NullsoftInst`` first header);
* Windows Installer packages (an OLE compound file whose root storage has the MSI class id).

7-Zip runs as a separate program, on a copy of the container in a private temporary directory (mode
0700, removed afterwards), never through a shell, with stdin closed and a dummy password (encrypted
members fail instead of prompting). Limits are those of the scan (:class:`~.archives.Budget`):

* the listing (``7zz l -slt``) is read first: every member is counted against the member limit and
  admitted on its declared size (per-member size, total size, compression ratio) before anything is
  unpacked; when one member is refused nothing of the container is unpacked beyond what fits;
* extraction runs with ``RLIMIT_FSIZE`` at the per-member limit (a member whose header lies about its
  size is cut by the kernel) and ``RLIMIT_CPU`` and a wall-clock timeout from the scan's remaining time;
* extracted files are read back only as regular files (``lstat``; links are reported, not followed),
  each charged to the budget with the ratio check on actual sizes.

Where no 7-Zip program is installed these formats are reported as skipped with the reason, never
silently passed.
"""

from __future__ import annotations

import os
import resource
import shutil
import stat
import struct
import subprocess
import tempfile
from collections.abc import Iterator

from fsbrain.domains.host.archives import Budget, LimitExceeded, Member

PROGRAMS = ("7zz", "7z")
_NSIS_SIG = b"\xef\xbe\xad\xdeNullsoftInst"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MSI_CLSID = bytes.fromhex("84100c0000000000c000000000000046")


def find_program() -> str | None:
    """Path of the 7-Zip command-line program (``7zz`` from Debian's 7zip, else ``7z``), or None."""
    for name in PROGRAMS:
        path = shutil.which(name)
        if path:
            return path
    return None


def cab_needs_7zz(data: bytes, at: int = 0) -> bool:
    """Whether the cabinet at ``at`` has a folder compressed with LZX or Quantum (or an unknown method)."""
    try:
        hdr = data[at:at + 36]
        if len(hdr) < 36 or hdr[:4] != b"MSCF":
            return False
        n_folders, _n_files, flags = struct.unpack("<HHH", hdr[26:32])
        p = at + 36
        folder_reserve = 0
        if flags & 4:
            header_res, folder_reserve, _ = struct.unpack("<HBB", data[p:p + 4])
            p += 4 + header_res
        for _ in range(2 if flags & 3 == 3 else (1 if flags & 3 else 0)):
            for _ in range(2):
                p = data.index(b"\0", p) + 1
        for _ in range(min(n_folders, 4096)):
            ctype = struct.unpack("<H", data[p + 6:p + 8])[0]
            p += 8 + folder_reserve
            if ctype & 0x0F not in (0, 1):
                return True
    except (ValueError, struct.error):
        return False
    return False


def _is_msi(data: bytes) -> bool:
    """An OLE compound file whose root directory entry carries the Windows Installer class id."""
    if data[:8] != _OLE or len(data) < 512:
        return False
    try:
        shift = struct.unpack("<H", data[30:32])[0]
        first_dir = struct.unpack("<I", data[48:52])[0]
        if not 7 <= shift <= 16:
            return False
        entry = (first_dir + 1) << shift
        return data[entry + 80:entry + 96] == _MSI_CLSID
    except struct.error:
        return False


def kind(data: bytes) -> str | None:
    """The format 7-Zip should unpack, or None (fsbrain reads it itself, or it is no container)."""
    if data[:2] == b"\x60\xea" and len(data) > 40:
        return "ARJ"
    if data[:4] == b"ITSF":
        return "CHM"
    if data[:4] == b"MSCF" and cab_needs_7zz(data):
        return "CAB (LZX/Quantum)"
    if data[:2] == b"MZ" and _NSIS_SIG in data:
        return "NSIS"
    if _is_msi(data):
        return "MSI"
    return None


def _limits(fsize: int, cpu: int) -> None:  # pragma: no cover - runs in the child process
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _run(args: list[str], budget: Budget, fsize: int) -> subprocess.CompletedProcess[bytes]:
    left = budget.remaining_time()
    if left <= 0:
        raise LimitExceeded(f"scan timeout of {budget.limits.timeout_s:g}s reached")
    try:
        return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=left, check=False,
                              preexec_fn=lambda: _limits(fsize, int(left) + 1))  # noqa: PLW1509
    except subprocess.TimeoutExpired as exc:
        raise LimitExceeded(f"scan timeout of {budget.limits.timeout_s:g}s reached (7-Zip)") from exc


def _listing(out: bytes) -> list[dict[str, str]]:
    """Entries of ``7zz l -slt`` (after the ``----------`` line), as key/value dicts."""
    text = out.decode("utf-8", "replace")
    _, sep, body = text.partition("\n----------\n")
    if not sep:
        return []
    entries, cur = [], {}
    for line in body.splitlines():
        if not line.strip():
            if cur:
                entries.append(cur)
                cur = {}
            continue
        key, eq, value = line.partition(" = ")
        if eq:
            cur[key.strip()] = value
    if cur:
        entries.append(cur)
    return [e for e in entries if "Path" in e]


def _first_error(proc: subprocess.CompletedProcess[bytes]) -> str:
    for line in (proc.stderr + proc.stdout).decode("utf-8", "replace").splitlines():
        if "ERROR" in line.upper() or "Can not open" in line or "Cannot open" in line:
            return line.strip()[:200]
    return f"exit status {proc.returncode}"


def members(data: bytes, budget: Budget, *, program: str | None = None) -> Iterator[Member] | None:
    """Members of ``data`` unpacked by 7-Zip when it is one of the formats above, else None."""
    what = kind(data)
    if what is None:
        return None
    exe = program or find_program()
    if exe is None:
        return iter([Member(f"<{what}>", skip=f"{what} container: needs 7-Zip (7zz, Debian package 7zip), "
                                              "which is not installed; not unpacked")])
    return _extract(exe, what, data, budget)


def _extract(exe: str, what: str, data: bytes, budget: Budget) -> Iterator[Member]:
    lim = budget.limits
    with tempfile.TemporaryDirectory(prefix="fsbrain-7z-") as tmp:
        src = os.path.join(tmp, "container")
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        listed = _run([exe, "l", "-slt", "-pfsbrain", "--", src], budget, lim.max_member_size + 1)
        entries = [e for e in _listing(listed.stdout) if e.get("Folder") != "+" and e.get("Path") != src]
        if listed.returncode != 0 and not entries:
            yield Member(f"<{what}>", skip=f"broken container: 7-Zip cannot list this {what}: "
                                           f"{_first_error(listed)}")
            return
        refused: dict[str, str] = {}
        declared_total = 0
        for e in entries:
            budget.count_member()
            size = int(e.get("Size") or 0)
            packed = int(e.get("Packed Size") or 0) or len(data)
            if e.get("Encrypted") == "+":
                refused[e["Path"]] = "encrypted member, not scanned"
                continue
            why = budget.admit(size, packed)
            if why is None and declared_total + size > lim.max_total_bytes - budget.total:
                why = f"refused: unpacking it would exceed the {lim.max_total_bytes} byte total limit"
            if why:
                refused[e["Path"]] = why
            else:
                declared_total += size
        for name, why in refused.items():
            yield Member(name, skip=why)
        if len(refused) == len(entries):
            return
        out_dir = os.path.join(tmp, "out")
        os.mkdir(out_dir, 0o700)
        args = [exe, "x", "-y", "-bd", "-pfsbrain", f"-o{out_dir}"]
        args += [f"-x!{n}" for n in refused if not any(c in n for c in "*?!@")]
        proc = _run([*args, "--", src], budget, lim.max_member_size + 1)
        if proc.returncode < 0:
            yield Member(f"<{what}>", skip=f"refused: 7-Zip stopped by a limit (signal {-proc.returncode}); "
                                           "a member may have grown past the size limit while unpacking")
        elif proc.returncode != 0:
            yield Member(f"<{what}>", skip=f"7-Zip reported errors ({_first_error(proc)}); "
                                           "members it did unpack are scanned")
        for root, dirs, files in os.walk(out_dir):
            dirs.sort()
            for f in sorted(files):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, out_dir)
                if rel in refused:
                    continue
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode):
                    yield Member(rel, skip="link or special file in archive, not scanned")
                    continue
                if st.st_size > lim.max_member_size:
                    yield Member(rel, skip=f"too big: {st.st_size} bytes is over the {lim.max_member_size} limit")
                    continue
                with open(path, "rb") as fh:
                    content = fh.read(lim.max_member_size + 1)
                budget.charge(len(content), len(data))
                budget.total += len(content)
                yield Member(rel, content)
