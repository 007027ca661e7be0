"""InstallShield setup launchers that carry their files in an obfuscated stream (MSI-based setups).

Written for fsbrain from the format as it appears in such files (ClamAV's test corpus has two):

* after the PE image, the ASCII marker ``InstallShield`` and a NUL, a 32-byte header: the number of files
  (little-endian 32 bits), then 24 bytes that are zero;
* per file, a 312-byte block: the file name (NUL-terminated, in a 260-byte field), two 32-bit words, the
  stored size (64 bits), nine more 32-bit words; then that many stored bytes;
* the stored bytes are a zlib stream, obfuscated byte by byte: the two halves of each byte are swapped and
  the result is XORed with a key made of the file name, each of its bytes XORed with ``EC CA 79 F8``
  (repeating); byte ``i`` uses key byte ``(i mod 1024) mod len(key)``.

Each file becomes a member (its stored name, escaped by the scanner) inflated under the scan's limits; a
typical setup holds the ``.msi`` package, which 7-Zip then opens (:mod:`.archives_7zz`).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import numpy as np

from fsbrain.domains.host.archives import Budget, Member, MemberRefused, _stream

_MARK = b"InstallShield\x00"
_MASK = np.frombuffer(bytes([0xEC, 0xCA, 0x79, 0xF8]), np.uint8)
_BLOCK = 0x138
_MAX_FILES = 4096
_MAX_MARKS = 16


def _header_at(data: bytes, at: int) -> int | None:
    """The file count of a stream header at ``at`` (None when the bytes there are not one)."""
    hdr = data[at:at + 0x20]
    if len(hdr) < 0x20 or any(hdr[8:0x20]):
        return None
    count = struct.unpack("<I", hdr[:4])[0]
    if not 0 < count <= _MAX_FILES:
        return None
    first = data[at + 0x20:at + 0x20 + _BLOCK]
    if len(first) < _BLOCK:
        return None
    name = first[:0x104].split(b"\0", 1)[0]
    if not name or not all(0x20 <= c < 0x7F for c in name):
        return None
    return count


def _find(data: bytes) -> tuple[int, int] | None:
    pos = 0
    for _ in range(_MAX_MARKS):
        at = data.find(_MARK, pos)
        if at < 0:
            return None
        count = _header_at(data, at + len(_MARK))
        if count is not None:
            return at + len(_MARK) + 0x20, count
        pos = at + 1
    return None


def _clear(stored: bytes, name: bytes) -> bytes:
    """Undo the obfuscation of one stored file."""
    raw = np.frombuffer(stored, np.uint8)
    key = np.frombuffer(name, np.uint8) ^ np.resize(_MASK, len(name))
    period = np.resize(key, 1024)  # byte i uses key[(i mod 1024) mod len(key)]
    swapped = ((raw >> 4) | (raw << 4)).astype(np.uint8)
    return (swapped ^ np.resize(period, len(raw))).tobytes()


def has_stream(data: bytes) -> bool:
    """Whether ``data`` is a PE carrying such a stream."""
    return data[:2] == b"MZ" and _find(data) is not None


def installshield_streams(data: bytes, budget: Budget) -> Iterator[Member] | None:
    """The files of an InstallShield setup's obfuscated stream, or None when ``data`` has none."""
    if data[:2] != b"MZ":
        return None
    found = _find(data)
    if found is None:
        return None
    start, count = found

    def gen() -> Iterator[Member]:
        pos = start
        for _ in range(count):
            block = data[pos:pos + _BLOCK]
            if len(block) < _BLOCK:
                yield Member("<InstallShield>", skip="InstallShield stream is truncated; later files are missing")
                return
            budget.count_member()
            name_raw = block[:0x104].split(b"\0", 1)[0]
            name = name_raw.decode("latin-1") or "<unnamed>"
            size = struct.unpack("<Q", block[0x10C:0x114])[0]
            pos += _BLOCK
            if size > len(data) - pos:
                yield Member(name, skip="InstallShield stream is truncated; this file runs past the end")
                return
            stored = data[pos:pos + size]
            pos += size
            if not name_raw:
                yield Member(name, skip="InstallShield file without a name: cannot be decoded")
                continue
            if size > budget.limits.max_member_size:
                yield Member(name, skip=f"too big: {size} bytes is over the {budget.limits.max_member_size} limit")
                continue
            budget.check_time()
            d = zlib.decompressobj()
            try:
                content = _stream(lambda b, n, d=d: d.decompress(b or d.unconsumed_tail, n), _clear(stored, name_raw),
                                  budget)
            except MemberRefused as exc:
                yield Member(name, skip=str(exc))
                continue
            except zlib.error as exc:
                yield Member(name, skip=f"corrupt InstallShield file: {exc}")
                continue
            budget.total += len(content)
            yield Member(name, content)
    return gen()
