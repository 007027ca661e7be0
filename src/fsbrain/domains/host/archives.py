"""Safe, bounded unpacking of archives and compressed streams for the malware scanner.

Containers recognised by content (never by name): zip (stored, deflate, deflate64 when zlib can inflate
it, bzip2, lzma), tar, gzip, bzip2, xz/lzma; encoded forms (MIME mail, uuencode, BinHex, SZDD) live in
:mod:`.archives_encoded`. Nothing is written to disk: members are read into memory under hard limits.

Limits (:class:`ScanLimits`) apply to one top-level file and everything inside it: nesting depth,
member count, bytes unpacked in total and per member, and the compression ratio of each member
(declared sizes are checked before any byte is inflated; actual output is checked while inflating, so
lying headers cannot get past). A member over a limit is refused with its reason; a container that
cannot be parsed is reported, never silently skipped.
"""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from fsbrain.domains.host.archives_implode import explode

MiB = 1024 * 1024
_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanLimits:
    """Hard limits for scanning one top-level file.

    Args:
        max_depth: deepest archive nesting unpacked (the file itself is depth 0).
        max_file_size: largest file on disk read for scanning.
        max_member_size: largest single unpacked member.
        max_total_bytes: bytes unpacked from one top-level file, all levels together.
        max_members: members visited in one top-level file, all levels together.
        max_ratio: largest compression ratio (unpacked / packed) accepted for a member.
        timeout_s: wall time for one top-level file, unpacking and matching together.
    """

    max_depth: int = 16
    max_file_size: int = 64 * MiB
    max_member_size: int = 64 * MiB
    max_total_bytes: int = 256 * MiB
    max_members: int = 10_000
    max_ratio: float = 200.0
    timeout_s: float = 60.0


class LimitExceeded(Exception):
    """A limit for the whole top-level file was hit (time, total bytes, member count); stops its scan.

    ``str(exc)`` is the reason shown to the user.
    """


class MemberRefused(LimitExceeded):
    """One member crossed the per-member size or ratio limit while unpacking; the scan goes on."""


class Budget:
    """What is left of the limits while one top-level file is being scanned."""

    def __init__(self, limits: ScanLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout_s
        self.total = 0
        self.members = 0

    def remaining_time(self) -> float:
        return self.deadline - time.monotonic()

    def check_time(self) -> None:
        if time.monotonic() >= self.deadline:
            raise LimitExceeded(f"scan timeout of {self.limits.timeout_s:g}s reached")

    def count_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise LimitExceeded(f"more than {self.limits.max_members} archive members")

    def admit(self, declared_size: int, packed_size: int) -> str | None:
        """Reason to refuse a member before unpacking it, from its declared sizes; None to go ahead."""
        lim = self.limits
        if declared_size > lim.max_member_size:
            return f"refused: member of {declared_size} bytes is over the {lim.max_member_size} byte limit"
        if declared_size > lim.max_total_bytes - self.total:
            return f"refused: unpacking it would exceed the {lim.max_total_bytes} byte total limit"
        if declared_size > 4096 and declared_size > lim.max_ratio * max(packed_size, 1):
            return (f"refused: compression ratio {declared_size / max(packed_size, 1):.0f}:1 is over the "
                    f"{lim.max_ratio:g}:1 limit (zip bomb?)")
        return None

    def charge(self, unpacked: int, packed: int) -> None:
        """Account for bytes actually produced; raises when a limit is crossed mid-stream."""
        lim = self.limits
        if unpacked > lim.max_member_size:
            raise MemberRefused(f"refused: member grew past the {lim.max_member_size} byte limit while unpacking")
        if self.total + unpacked > lim.max_total_bytes:
            raise LimitExceeded(f"refused: unpacked data exceeds the {lim.max_total_bytes} byte total limit")
        if unpacked > 4096 and unpacked > lim.max_ratio * max(packed, 1):
            raise MemberRefused(f"refused: compression ratio over {lim.max_ratio:g}:1 while unpacking (bomb?)")
        self.check_time()


@dataclass(slots=True)
class Member:
    """One member of a container: its data, or the reason it was not unpacked."""

    name: str
    data: bytes | None = None
    skip: str | None = None


def _stream(decompress_chunk, data: bytes, budget: Budget, packed: int | None = None) -> bytes:  # type: ignore[no-untyped-def]
    """Run a bounded decompressor: ``decompress_chunk(buf, max_length)`` style objects.

    ``packed`` is the compressed size used for the ratio check (``len(data)`` when not given).
    """
    out = bytearray()
    limit = budget.limits.max_member_size + 1
    packed = len(data) if packed is None else packed
    piece = decompress_chunk(data, _CHUNK)
    while True:
        out += piece
        budget.charge(len(out), packed)
        if len(out) >= limit:
            raise MemberRefused("refused: member grew past the size limit while unpacking")
        if not piece:
            break
        piece = decompress_chunk(b"", _CHUNK)
    return bytes(out)


def gunzip(data: bytes, budget: Budget) -> bytes:
    """Inflate a gzip file (all members), bounded."""
    out = bytearray()
    rest = data
    while rest[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += _stream(lambda b, n, d=d: d.decompress(b or d.unconsumed_tail, n), rest, budget)
        if not d.eof:
            raise ValueError("truncated gzip stream")
        rest = d.unused_data
        budget.charge(len(out), len(data))
    return bytes(out)


def _bounded(decomp, data: bytes, budget: Budget) -> bytes:  # type: ignore[no-untyped-def]
    """bz2/lzma decompressor objects take ``max_length`` and keep unconsumed input internally."""
    out = _stream(lambda b, n: decomp.decompress(b, n) if not decomp.eof else b"", data, budget)
    if not decomp.eof:
        raise ValueError("truncated compressed stream")
    return out


def _zip_members(data: bytes, budget: Budget) -> Iterator[Member]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            budget.count_member()
            if info.is_dir():
                continue
            name = info.filename
            if info.flag_bits & 0x1:
                yield Member(name, skip="encrypted zip member, not scanned")
                continue
            refuse = budget.admit(info.file_size, info.compress_size)
            if refuse:
                yield Member(name, skip=refuse)
                continue
            try:
                if info.compress_type in (6, 9):
                    raw = data[info.header_offset:]
                    n, m = struct.unpack("<HH", raw[26:30])
                    body = raw[30 + n + m:30 + n + m + info.compress_size]
                    if info.compress_type == 6:  # PKWARE implode
                        content = explode(body, flags=info.flag_bits, size=info.file_size, tick=budget.check_time)
                        budget.charge(len(content), info.compress_size)
                    else:  # deflate64: zlib inflates streams that use no deflate64-only codes
                        d = zlib.decompressobj(-15)
                        content = _stream(lambda b, k, d=d: d.decompress(b or d.unconsumed_tail, k), body, budget)
                    if zlib.crc32(content) != info.CRC:
                        yield Member(name, skip="corrupt zip member: CRC mismatch after unpacking")
                        continue
                else:
                    with zf.open(info) as fh:
                        content = _stream(lambda b, k, fh=fh: fh.read(k), b"", budget, info.compress_size)
            except MemberRefused as exc:
                yield Member(name, skip=str(exc))
                continue
            except NotImplementedError as exc:
                yield Member(name, skip=f"unsupported zip compression: {exc}")
                continue
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error) as exc:
                yield Member(name, skip=f"corrupt zip member: {exc}")
                continue
            budget.total += len(content)
            yield Member(name, content)


def _tar_members(data: bytes, budget: Budget) -> Iterator[Member]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for info in tf:
            budget.count_member()
            budget.check_time()
            if info.isdir():
                continue
            if not info.isreg():
                yield Member(info.name, skip="link or special file in tar, not scanned")
                continue
            refuse = budget.admit(info.size, info.size)
            if refuse:
                yield Member(info.name, skip=refuse)
                continue
            fh = tf.extractfile(info)
            content = fh.read(info.size) if fh is not None else b""
            budget.total += len(content)
            yield Member(info.name, content)


def _is_tar(data: bytes) -> bool:
    if len(data) < 512:
        return False
    if data[257:262] == b"ustar":
        return True
    try:
        tarfile.TarInfo.frombuf(data[:512], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def _single(name: str, inner: str, fn, data: bytes, budget: Budget) -> Iterator[Member]:  # type: ignore[no-untyped-def]
    budget.count_member()
    content = fn(data, budget)
    budget.total += len(content)
    yield Member(inner or name, content)


def _strip(name: str, *suffixes: str) -> str:
    base = name.rsplit("/", 1)[-1]
    for s in suffixes:
        if base.lower().endswith(s):
            return base[: -len(s)] + (".tar" if s in (".tgz", ".tbz2", ".txz") else "")
    return base + ".out"


def container_kind(data: bytes) -> str | None:
    """The container format of ``data`` by magic bytes, or None."""
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06") or (data[:2] == b"MZ" and b"PK\x05\x06" in data[-70000:]
                                                        and zipfile.is_zipfile(io.BytesIO(data))):
        return "zip"
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if data[:3] == b"BZh" and data[3:4].isdigit():
        return "bzip2"
    if data[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if data[:3] == b"\x5d\x00\x00" and len(data) > 13:
        return "lzma"
    if _is_tar(data):
        return "tar"
    return None


def members(data: bytes, name: str, budget: Budget) -> Iterator[Member] | None:
    """Members of ``data`` if it is a container this module handles, else None.

    The iterator may raise :class:`LimitExceeded` (stop scanning this file) or ``ValueError`` and the
    format libraries' errors for a broken container; the scanner turns them into skip reasons.
    """
    kind = container_kind(data)
    if kind == "zip":
        return _zip_members(data, budget)
    if kind == "tar":
        return _tar_members(data, budget)
    if kind == "gzip":
        return _single(name, _strip(name, ".tgz", ".gz"), gunzip, data, budget)
    if kind == "bzip2":
        return _single(name, _strip(name, ".tbz2", ".bz2"), lambda d, b: _bounded(bz2.BZ2Decompressor(), d, b),
                       data, budget)
    if kind in ("xz", "lzma"):
        fmt = lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE
        return _single(name, _strip(name, ".txz", ".xz", ".lzma"),
                       lambda d, b: _bounded(lzma.LZMADecompressor(format=fmt), d, b), data, budget)
    return None
