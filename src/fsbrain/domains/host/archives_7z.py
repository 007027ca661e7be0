"""A small, bounded 7z reader for the malware scanner (written for fsbrain from the public 7z format
description, ``7zFormat.txt``).

Supported: plain and encoded headers; folders of one packed stream through a chain of coders that
liblzma implements — copy, LZMA, LZMA2, and the branch filters 7-Zip applies to executables (BCJ x86,
ARM, ARM-Thumb, PowerPC, SPARC, IA-64) and Delta. Other coders (PPMd, BZip2, Deflate, BCJ2, AES) are
reported per file as unsupported. Declared sizes go through the same budget as every other container.
"""

from __future__ import annotations

import lzma
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fsbrain.domains.host.archives import Budget, Member, MemberRefused

SIGNATURE = b"7z\xbc\xaf\x27\x1c"
_FILTERS: dict[bytes, int] = {
    b"\x03\x03\x01\x03": lzma.FILTER_X86, b"\x03\x03\x02\x05": lzma.FILTER_POWERPC,
    b"\x03\x03\x04\x01": lzma.FILTER_IA64, b"\x03\x03\x05\x01": lzma.FILTER_ARM,
    b"\x03\x03\x07\x01": lzma.FILTER_ARMTHUMB, b"\x03\x03\x08\x05": lzma.FILTER_SPARC,
}
_MAX_ITEMS = 100_000


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise ValueError("7z: header ends early")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError("7z: header ends early")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def number(self) -> int:
        first = self.byte()
        mask, value = 0x80, 0
        for i in range(8):
            if not first & mask:
                return value | ((first & (mask - 1)) << (8 * i))
            value |= self.byte() << (8 * i)
            mask >>= 1
        return value

    def count(self) -> int:
        n = self.number()
        if n > _MAX_ITEMS:
            raise ValueError(f"7z: implausible count {n}")
        return n

    def bits(self, n: int) -> list[bool]:
        out, b, mask = [], 0, 0
        for _ in range(n):
            if mask == 0:
                b, mask = self.byte(), 0x80
            out.append(bool(b & mask))
            mask >>= 1
        return out

    def digests(self, n: int) -> None:
        defined = self.bits(n) if self.byte() == 0 else [True] * n
        self.bytes(4 * sum(defined))


@dataclass
class _Folder:
    coders: list[tuple[bytes, bytes]] = field(default_factory=list)  # (method id, properties)
    complex: bool = False
    unpack_sizes: list[int] = field(default_factory=list)


@dataclass
class _Streams:
    pack_pos: int = 0
    pack_sizes: list[int] = field(default_factory=list)
    folders: list[_Folder] = field(default_factory=list)
    substream_sizes: list[list[int]] = field(default_factory=list)


def _folder(r: _Reader) -> _Folder:
    f = _Folder()
    n_in = n_out = 0
    for _ in range(r.count()):
        flag = r.byte()
        mid = r.bytes(flag & 0x0F)
        ins = outs = 1
        if flag & 0x10:
            ins, outs = r.count(), r.count()
            f.complex = f.complex or ins != 1 or outs != 1
        props = r.bytes(r.count()) if flag & 0x20 else b""
        f.coders.append((mid, props))
        n_in, n_out = n_in + ins, n_out + outs
    for _ in range(n_out - 1):
        r.number(), r.number()  # bind pairs: a simple chain binds coder i's input to coder i+1's output
    packed = n_in - (n_out - 1)
    if packed > 1:
        f.complex = True
        for _ in range(packed):
            r.number()
    return f


def _streams(r: _Reader) -> _Streams:
    s = _Streams()
    while (pid := r.byte()) != 0:
        if pid == 0x06:
            s.pack_pos = r.number()
            n = r.count()
            while (sub := r.byte()) != 0:
                if sub == 0x09:
                    s.pack_sizes = [r.number() for _ in range(n)]
                elif sub == 0x0A:
                    r.digests(n)
        elif pid == 0x07:
            if r.byte() != 0x0B:
                raise ValueError("7z: expected folder list")
            nf = r.count()
            if r.byte() != 0:
                raise ValueError("7z: external folder data is not supported")
            s.folders = [_folder(r) for _ in range(nf)]
            if r.byte() != 0x0C:
                raise ValueError("7z: expected unpack sizes")
            for f in s.folders:
                f.unpack_sizes = [r.number() for _ in range(max(1, len(f.coders)))]
            while (sub := r.byte()) != 0:
                if sub == 0x0A:
                    r.digests(nf)
        elif pid == 0x08:
            counts = [1] * len(s.folders)
            sizes: list[list[int]] = []
            sub = r.byte()
            if sub == 0x0D:
                counts = [r.count() for _ in s.folders]
                sub = r.byte()
            if sub == 0x09:
                for f, c in zip(s.folders, counts, strict=True):
                    part = [r.number() for _ in range(c - 1)] if c else []
                    sizes.append([*part, f.unpack_sizes[0] - sum(part)] if c else [])
                sub = r.byte()
            else:
                sizes = [[f.unpack_sizes[0]] if c else [] for f, c in zip(s.folders, counts, strict=True)]
            while sub != 0:
                if sub == 0x0A:
                    r.digests(sum(1 for c in counts if c))  # approximate: skipped, not checked
                sub = r.byte()
            s.substream_sizes = sizes
        else:
            raise ValueError(f"7z: unexpected property {pid:#x} in streams info")
    if not s.substream_sizes:
        s.substream_sizes = [[f.unpack_sizes[0]] for f in s.folders]
    return s


def _filter_chain(f: _Folder) -> list[dict[str, Any]] | str:
    if f.complex:
        return "complex coder graph (e.g. BCJ2) not supported"
    chain: list[dict[str, Any]] = []
    for mid, props in f.coders:
        if mid == b"\x00":
            continue
        if mid == b"\x03\x01\x01" and len(props) == 5:
            d = props[0]
            chain.append({"id": lzma.FILTER_LZMA1, "lc": d % 9, "lp": (d // 9) % 5, "pb": d // 45,
                          "dict_size": struct.unpack("<I", props[1:5])[0]})
        elif mid == b"\x21" and len(props) == 1:
            p = props[0]
            size = 0xFFFFFFFF if p >= 40 else (2 | (p & 1)) << (p // 2 + 11)
            chain.append({"id": lzma.FILTER_LZMA2, "dict_size": size})
        elif mid in _FILTERS:
            chain.append({"id": _FILTERS[mid]})
        elif mid == b"\x03" and len(props) == 1:
            chain.append({"id": lzma.FILTER_DELTA, "dist": props[0] + 1})
        else:
            return f"coder {mid.hex()} not supported (PPMd, BZip2, Deflate or AES)"
    return chain


def _unpack(data: bytes, start: int, packed: int, f: _Folder, budget: Budget) -> bytes:
    size = f.unpack_sizes[0]
    refuse = budget.admit(size, packed)
    if refuse:
        raise MemberRefused(refuse)
    chain = _filter_chain(f)
    if isinstance(chain, str):
        raise MemberRefused(chain)
    src = data[start:start + packed]
    if not chain:
        return src
    out = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=chain).decompress(src, size)
    if len(out) != size:
        raise ValueError(f"7z: folder unpacked to {len(out)} bytes, expected {size}")
    budget.charge(len(out), packed)
    return out


def _names(r: _Reader) -> tuple[list[str], list[bool]]:
    n = r.count()
    names, empty = [f"file{i}" for i in range(n)], [False] * n
    while (pid := r.byte()) != 0:
        size = r.number()
        body = _Reader(r.bytes(size))
        if pid == 0x11 and body.byte() == 0:
            raw = body.buf[body.pos:].decode("utf-16-le", "replace").split("\0")
            names = [raw[i] if i < len(raw) else names[i] for i in range(n)]
        elif pid == 0x0E:
            empty = body.bits(n)
    return names, empty


def sevenzip(data: bytes, budget: Budget) -> Iterator[Member] | None:
    """Files of a 7z archive, or None when ``data`` is not one."""
    if data[:6] != SIGNATURE or len(data) < 32:
        return None
    off, size = struct.unpack_from("<QQ", data, 12)
    if 32 + off + size > len(data):
        raise ValueError("7z: truncated archive (header beyond end of file)")
    r = _Reader(data[32 + off:32 + off + size])
    kind = r.byte()
    if kind == 0x17:  # encoded header: one folder holding the real header
        s = _streams(r)
        r = _Reader(_unpack(data, 32 + s.pack_pos, s.pack_sizes[0], s.folders[0], budget))
        kind = r.byte()
    if kind != 0x01:
        raise ValueError(f"7z: unknown header type {kind:#x}")
    streams = _Streams()
    names: list[str] = []
    empty: list[bool] = []
    while (pid := r.byte()) != 0:
        if pid == 0x04:
            streams = _streams(r)
        elif pid == 0x05:
            names, empty = _names(r)
        elif pid in (0x02, 0x03):
            raise ValueError("7z: archive properties / additional streams are not supported")
    files = iter([n for n, e in zip(names, empty, strict=False) if not e] or names)
    return _members(data, streams, files, budget)


def _members(data: bytes, s: _Streams, names: Iterator[str], budget: Budget) -> Iterator[Member]:
    pos = 32 + s.pack_pos
    for fi, f in enumerate(s.folders):
        packed = s.pack_sizes[fi] if fi < len(s.pack_sizes) else 0
        sizes = s.substream_sizes[fi] if fi < len(s.substream_sizes) else []
        try:
            out = _unpack(data, pos, packed, f, budget)
        except MemberRefused as exc:
            for _ in sizes:
                budget.count_member()
                yield Member(next(names, "?"), skip=str(exc))
            pos += packed
            continue
        pos += packed
        at = 0
        for sz in sizes:
            budget.count_member()
            budget.total += sz
            yield Member(next(names, f"stream{fi}"), out[at:at + sz])
            at += sz
