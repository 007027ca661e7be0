"""PKWARE "implode" (zip compression method 6), written for fsbrain from PKWARE's APPNOTE.TXT.

Old (PKZIP 1.x) archives and some malware droppers still use it; Python's ``zipfile`` does not. Imploded
data is a sliding dictionary (4 KiB or 8 KiB, general-purpose flag bit 1) coded with two or three
Shannon-Fano trees (flag bit 2 adds a literal tree), stored at the start of the member. Output is bounded
by the member's declared size, and the caller checks the CRC.

>>> explode(bytes.fromhex("00"), flags=0, size=0)
b''
"""

from __future__ import annotations

from collections.abc import Callable


class _Bits:
    """LSB-first bit reader."""

    __slots__ = ("data", "pos", "bit")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos, self.bit = data, pos, 0

    def read(self, n: int) -> int:
        v = 0
        for k in range(n):
            if self.pos >= len(self.data):
                raise ValueError("implode: compressed data ends early")
            v |= ((self.data[self.pos] >> self.bit) & 1) << k
            self.bit += 1
            if self.bit == 8:
                self.bit = 0
                self.pos += 1
        return v


def _tree(data: bytes, pos: int, n_values: int) -> tuple[dict[tuple[int, int], int], int]:
    """Read one stored Shannon-Fano tree; returns {(bit length, LSB-first code): value} and the new offset."""
    if pos >= len(data):
        raise ValueError("implode: missing code tree")
    count = data[pos] + 1
    lengths: list[int] = []
    for b in data[pos + 1:pos + 1 + count]:
        lengths += [(b & 0x0F) + 1] * ((b >> 4) + 1)
    if len(lengths) != n_values or pos + 1 + count > len(data):
        raise ValueError(f"implode: code tree describes {len(lengths)} values, expected {n_values}")
    order = sorted(range(n_values), key=lambda v: (lengths[v], v))  # ascending length, stable by value
    codes: dict[tuple[int, int], int] = {}
    code = increment = last = 0
    for v in reversed(order):
        code = (code + increment) & 0xFFFF
        if lengths[v] != last:
            last = lengths[v]
            increment = 1 << (16 - last)
        rev = int(f"{code:016b}"[::-1], 2)  # MSB-first 16-bit code -> LSB-first in the low bits
        codes[(lengths[v], rev & ((1 << lengths[v]) - 1))] = v
    return codes, pos + 1 + count


def _decode(bits: _Bits, codes: dict[tuple[int, int], int]) -> int:
    v = 0
    for n in range(1, 17):
        v |= bits.read(1) << (n - 1)
        hit = codes.get((n, v))
        if hit is not None:
            return hit
    raise ValueError("implode: invalid code")


def explode(data: bytes, *, flags: int, size: int, tick: Callable[[], None] | None = None) -> bytes:
    """Decompress an imploded zip member of ``size`` bytes (``flags``: the general-purpose bit flag).

    Pure Python (roughly 0.1-0.3 MB/s); ``tick`` is called every 64 KiB of output (the scanner passes its
    timeout check).
    """
    if size == 0:
        return b""
    big_dict = bool(flags & 0x02)
    has_literals = bool(flags & 0x04)
    pos = 0
    lit_tree = None
    if has_literals:
        lit_tree, pos = _tree(data, pos, 256)
    len_tree, pos = _tree(data, pos, 64)
    dist_tree, pos = _tree(data, pos, 64)
    bits = _Bits(data, pos)
    low_bits = 7 if big_dict else 6
    min_len = 3 if has_literals else 2
    out = bytearray()
    next_tick = 65536
    while len(out) < size:
        if tick is not None and len(out) >= next_tick:
            tick()
            next_tick += 65536
        if bits.read(1):
            out.append(_decode(bits, lit_tree) if lit_tree is not None else bits.read(8))
            continue
        low = bits.read(low_bits)
        dist = ((_decode(bits, dist_tree) << low_bits) | low) + 1
        length = _decode(bits, len_tree)
        if length == 63:
            length += bits.read(8)
        length += min_len
        for _ in range(min(length, size - len(out))):
            out.append(out[-dist] if dist <= len(out) else 0)
    return bytes(out)
