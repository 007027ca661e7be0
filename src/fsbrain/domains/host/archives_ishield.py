"""InstallShield setup launchers that carry their files in an obfuscated stream (MSI-based setups).

Written for fsbrain (no code taken from elsewhere). The layout below was learned by reading ClamAV's
``libclamav/ishield.c`` (GPL-2.0; format knowledge only) and checked byte by byte on the InstallShield
samples of ClamAV's test corpus:

* after the PE image, the ASCII marker ``InstallShield`` and a NUL, a 32-byte header: the number of files
  (little-endian 32 bits), then 24 bytes that are zero;
* per file, a 312-byte block: the file name (NUL-terminated, in a 260-byte field), two 32-bit words, the
  stored size (64 bits), nine more 32-bit words; then that many stored bytes;
* the stored bytes are a zlib stream, obfuscated byte by byte: the two halves of each byte are swapped and
  the result is XORed with a key made of the file name, each of its bytes XORed with ``EC CA 79 F8``
  (repeating); byte ``i`` uses key byte ``(i mod 1024) mod len(key)``.

Each file becomes a member (its stored name, escaped by the scanner) inflated under the scan's limits; a
typical setup holds the ``.msi`` package, which 7-Zip then opens (:mod:`.archives_7zz`).

Older (non-MSI) InstallShield setups append their disk files after the PE image instead: per file four
NUL-terminated strings (name, path, version, size in decimal) and then the file's bytes. Their
``data<N>.cab`` files (magic ``ISc(``, not Microsoft cabinets) hold the installed files, described by
``data1.hdr``: a header whose 32-bit word at offset 12 locates an object table; in it, the directory table
offset (+12), the number of files (+40) and the directory table size (+44) locate the file table, 87-byte
records (flags: 4 = stored in a cabinet; size, stored size and offset in the cabinet as 64-bit words at 2,
10 and 18; name offset at 58 relative to the directory table; cabinet number at 85). A stored file is a
sequence of chunks: a 16-bit length, then that many bytes of raw deflate. The other disk files are members
as they are.
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


def _overlay(data: bytes) -> int | None:
    """Where the data appended to a PE image starts (end of its last section), or None."""
    try:
        pe = struct.unpack("<I", data[0x3C:0x40])[0]
        if data[pe:pe + 4] != b"PE\0\0":
            return None
        count, opt = struct.unpack("<H", data[pe + 6:pe + 8])[0], struct.unpack("<H", data[pe + 20:pe + 22])[0]
        table = pe + 24 + opt
        end = 0
        for i in range(min(count, 96)):
            raw_size, raw_ptr = struct.unpack("<II", data[table + 40 * i + 16:table + 40 * i + 24])
            end = max(end, raw_ptr + raw_size)
    except struct.error:
        return None
    return end if 0 < end < len(data) else None


def _disk_files(data: bytes) -> list[tuple[str, int, int]]:
    """``(name, offset, size)`` of the disk files appended to an older InstallShield setup (may be empty)."""
    pos = _overlay(data)
    out: list[tuple[str, int, int]] = []
    while pos is not None and pos < len(data) and len(out) < _MAX_FILES:
        fields = []
        for _ in range(4):
            end = data.find(b"\0", pos, pos + 2048)
            if end < 0:
                return out
            fields.append(data[pos:end])
            pos = end + 1
        name, _path, _version, size = fields
        if not name or not size.isdigit() or not all(0x20 <= c < 0x7F for c in name) or int(size) > len(data) - pos:
            return out
        out.append((name.decode("ascii"), pos, int(size)))
        pos += int(size)
    return out


_WIZARD = "InstallShield Wizard".encode("utf-16-le")  # a string resource of InstallShield setup launchers


def _old_disk_files(data: bytes) -> list[tuple[str, int, int]]:
    """The appended disk files, only for PEs that are InstallShield setup launchers (so that other PEs with
    appended data keep going to the other decoders: UPX, cabinets, carving)."""
    return _disk_files(data) if _WIZARD in data else []


def has_stream(data: bytes) -> bool:
    """Whether ``data`` is an InstallShield setup whose files this module can list."""
    return data[:2] == b"MZ" and (_find(data) is not None or len(_old_disk_files(data)) > 0)


def installshield_streams(data: bytes, budget: Budget) -> Iterator[Member] | None:
    """The files of an InstallShield setup's obfuscated stream, or None when ``data`` has none."""
    if data[:2] != b"MZ":
        return None
    found = _find(data)
    if found is None:
        disk = _old_disk_files(data)
        return _old_setup(data, disk, budget) if disk else None
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


_ITEM = 87


def _inflate_chunks(stored: bytes, size: int, budget: Budget) -> bytes:
    """A file stored in an ``ISc(`` cabinet: 16-bit length + raw deflate chunks, bounded by the budget."""
    out = bytearray()
    pos = 0
    limit = budget.limits.max_member_size
    while pos + 2 <= len(stored):
        n = stored[pos] | stored[pos + 1] << 8
        pos += 2
        if n == 0:
            continue
        if n > len(stored) - pos:
            raise ValueError("chunk runs past the stored size")
        d = zlib.decompressobj(-15)
        out += d.decompress(stored[pos:pos + n], limit + 1 - len(out))
        pos += n
        budget.charge(len(out), pos)
        if len(out) > limit:
            raise MemberRefused(f"refused: member grew past the {limit} byte limit while unpacking")
    if len(out) != size:
        raise ValueError(f"unpacked {len(out)} bytes, the header says {size}")
    return bytes(out)


def _cab_files(hdr: bytes, cabs: dict[int, bytes], budget: Budget) -> Iterator[Member]:
    """The files ``data1.hdr`` describes, taken from the ``data<N>.cab`` disk files."""
    if hdr[:4] != b"ISc(" or len(hdr) < 20:
        yield Member("data1.hdr", skip="InstallShield data1.hdr without its ISc( magic; cabinets not unpacked")
        return
    base = struct.unpack("<I", hdr[12:16])[0]
    try:
        dirs_off, files, dirs_size = (struct.unpack("<I", hdr[base + k:base + k + 4])[0] for k in (12, 40, 44))
    except struct.error:
        yield Member("data1.hdr", skip="InstallShield data1.hdr is truncated; cabinets not unpacked")
        return
    table = base + dirs_off
    pos = table + dirs_size
    for _ in range(min(files, _MAX_FILES)):
        item = hdr[pos:pos + _ITEM]
        pos += _ITEM
        if len(item) < _ITEM:
            yield Member("data1.hdr", skip="InstallShield data1.hdr is truncated; later files are missing")
            return
        flags = struct.unpack("<H", item[:2])[0]
        size, stored_size, offset = struct.unpack("<QQQ", item[2:26])
        name_at = table + struct.unpack("<I", item[58:62])[0]
        end = hdr.find(b"\0", name_at, name_at + 1024)
        name = hdr[name_at:end].decode("latin-1") if 0 <= name_at < end else "<unnamed>"
        if flags != 4 or not size or item[84] & 1:  # external, empty, or a duplicate of an earlier file
            continue
        budget.count_member()
        cab = cabs.get(struct.unpack("<H", item[85:87])[0])
        if cab is None:
            yield Member(name, skip="InstallShield file in a data<N>.cab that is not in this setup")
            continue
        if offset + stored_size > len(cab):
            yield Member(name, skip="InstallShield file runs past the end of its cabinet")
            continue
        why = budget.admit(size, stored_size)
        if why:
            yield Member(name, skip=why)
            continue
        budget.check_time()
        try:
            content = _inflate_chunks(cab[offset:offset + stored_size], size, budget)
        except MemberRefused as exc:
            yield Member(name, skip=str(exc))
            continue
        except (ValueError, zlib.error) as exc:
            yield Member(name, skip=f"corrupt InstallShield file: {exc}")
            continue
        budget.total += len(content)
        yield Member(name, content)


def _old_setup(data: bytes, disk: list[tuple[str, int, int]], budget: Budget) -> Iterator[Member]:
    def gen() -> Iterator[Member]:
        cabs: dict[int, bytes] = {}
        hdr: bytes | None = None
        for name, at, size in disk:
            low = name.lower()
            if low == "data1.hdr":
                hdr = data[at:at + size]
            elif low.startswith("data") and low.endswith(".cab") and low[4:-4].isdigit():
                cabs[int(low[4:-4])] = data[at:at + size]
            else:
                budget.count_member()
                yield Member(name, data[at:at + size])
        if hdr is not None:
            yield from _cab_files(hdr, cabs, budget)
        elif cabs:
            yield Member("data1.hdr", skip="InstallShield cabinets without data1.hdr: not unpacked")
    return gen()
