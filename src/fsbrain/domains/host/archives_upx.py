"""Unpacking UPX-packed executables (Windows PE and Linux ELF) so rules see the original program.

UPX is the packer most often wrapped around Linux coin miners and bots as well as Windows samples. The
packed file keeps a ``UPX!`` header that names the compression method and the unpacked/packed sizes;
this module implements UCL's NRV2B, NRV2D and NRV2E decompressors (32-bit little-endian and 8-bit bit
readers), written for fsbrain from the published algorithm. LZMA-packed files (``upx --lzma``) are
reported as unsupported rather than skipped silently. The unpacked image is returned as one member
(``upx-unpacked``); section layout and import tables are not rebuilt — matching only needs the bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from fsbrain.domains.host.archives import Budget, Member, MemberRefused

_METHODS = {2: ("2b", 32), 3: ("2b", 8), 5: ("2d", 32), 6: ("2d", 8), 8: ("2e", 32), 9: ("2e", 8)}
_U32 = 0xFFFFFFFF


class _Bits:
    """UCL bit reader: MSB first out of 32-bit little-endian words or single bytes."""

    __slots__ = ("src", "ip", "bb", "bc", "width")

    def __init__(self, src: bytes, width: int) -> None:
        self.src, self.ip, self.bb, self.bc, self.width = src, 0, 0, 0, width

    def bit(self) -> int:
        if self.bc == 0:
            if self.width == 32:
                self.bb = int.from_bytes(self.src[self.ip:self.ip + 4], "little")
                self.ip += 4
                self.bc = 32
            else:
                self.bb = self.src[self.ip]
                self.ip += 1
                self.bc = 8
            if self.ip > len(self.src):
                raise ValueError("UPX: compressed data ends early")
        self.bc -= 1
        return (self.bb >> self.bc) & 1

    def byte(self) -> int:
        if self.ip >= len(self.src):
            raise ValueError("UPX: compressed data ends early")
        b = self.src[self.ip]
        self.ip += 1
        return b


def nrv_decompress(src: bytes, variant: str, width: int, out_len: int, budget: Budget | None = None) -> bytes:
    """Decompress an NRV2B/2D/2E stream (``variant`` "2b", "2d", "2e") of known unpacked length.

    Pure Python (about 0.3 MB/s unpacked); with a ``budget`` the scan timeout is checked as it goes.
    """
    r = _Bits(src, width)
    bit, byte = r.bit, r.byte
    dst = bytearray()
    last_m_off = 1
    rounds = 0
    while True:
        rounds += 1
        if budget is not None and rounds & 0x3FFF == 0:
            budget.check_time()
        while bit():
            dst.append(byte())
            if len(dst) > out_len:
                raise ValueError("UPX: output longer than declared")
        m_off = 1
        if variant == "2b":
            while True:
                m_off = m_off * 2 + bit()
                if bit():
                    break
        else:
            while True:
                m_off = m_off * 2 + bit()
                if bit():
                    break
                m_off = (m_off - 1) * 2 + bit()
        m_len = 0
        if m_off == 2:
            m_off = last_m_off
            if variant != "2b":
                m_len = bit()
        else:
            m_off = (m_off - 3) * 256 + byte()
            if m_off & _U32 == _U32:
                break
            if variant != "2b":
                m_len = (m_off ^ _U32) & 1
                m_off >>= 1
            m_off += 1
            last_m_off = m_off
        if variant == "2e":
            if m_len:
                m_len = 1 + bit()
            elif bit():
                m_len = 3 + bit()
            else:
                m_len = 1
                while True:
                    m_len = m_len * 2 + bit()
                    if bit():
                        break
                m_len += 3
            m_len += m_off > 0x500
        else:
            m_len = m_len * 2 + bit() if variant == "2d" else bit() * 2 + bit()
            if m_len == 0:
                m_len = 1
                while True:
                    m_len = m_len * 2 + bit()
                    if bit():
                        break
                m_len += 2
            m_len += m_off > (0xD00 if variant == "2b" else 0x500)
        if m_off > len(dst) or len(dst) + m_len + 1 > out_len:
            raise ValueError("UPX: invalid back-reference")
        start = len(dst) - m_off
        for k in range(m_len + 1):
            dst.append(dst[start + k])
    if len(dst) != out_len:
        raise ValueError(f"UPX: unpacked {len(dst)} bytes, header says {out_len}")
    return bytes(dst)


def _pe_section_offsets(data: bytes) -> list[int]:
    try:
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        n = struct.unpack_from("<H", data, pe + 6)[0]
        opt = struct.unpack_from("<H", data, pe + 20)[0]
        table = pe + 24 + opt
        return [struct.unpack_from("<I", data, table + 40 * i + 20)[0] for i in range(min(n, 96))]
    except struct.error:
        return []


def _unpack_block(data: bytes, at: int, method: int, u_len: int, c_len: int, budget: Budget) -> bytes:
    refuse = budget.admit(u_len, c_len)
    if refuse:
        raise MemberRefused(refuse)
    if c_len == u_len:
        return data[at:at + c_len]
    variant, width = _METHODS[method]
    return nrv_decompress(data[at:at + c_len], variant, width, u_len, budget)


def upx(data: bytes, budget: Budget) -> Iterator[Member] | None:
    """The unpacked image of a UPX-packed PE or ELF file, or None when ``data`` is not UPX-packed."""
    is_pe, is_elf = data[:2] == b"MZ", data[:4] == b"\x7fELF"
    head = data.find(b"UPX!", 0, 0x1000) if is_pe else data.find(b"UPX!")
    if not (is_pe or is_elf) or head < 0 or len(data) < head + 32:
        return None
    out: list[Member] = []
    if is_pe:
        method = data[head + 6]
        u_len, c_len = struct.unpack_from("<II", data, head + 16)
        if method not in _METHODS:
            return iter([Member("upx-unpacked", skip=f"UPX compression method {method} not supported "
                                                      "(LZMA or unknown)")])
        errors: list[str] = []
        for off in _pe_section_offsets(data):
            try:
                content = _unpack_block(data, off, method, u_len, c_len, budget)
            except (ValueError, IndexError) as exc:
                errors.append(str(exc))
                continue
            out.append(_charged(budget, content, c_len))
            break
        else:
            out.append(Member("upx-unpacked", skip=f"UPX header found but no section unpacks: {errors[:1]}"))
        return iter(out)
    return _elf_blocks(data, head, budget)


def _charged(budget: Budget, content: bytes, packed: int) -> Member:
    budget.count_member()
    budget.charge(len(content), packed)
    budget.total += len(content)
    return Member("upx-unpacked", content)


def _elf_blocks(data: bytes, head: int, budget: Budget) -> Iterator[Member]:
    """ELF layout: l_info (magic at +4) and p_info, then b_info headers each followed by a block."""
    pos = head - 4 + 12 + 12
    parts: list[bytes] = []
    packed = 0
    errors: Callable[[str], Member] = lambda why: Member("upx-unpacked", skip=f"UPX ELF: {why}")  # noqa: E731
    while pos + 12 <= len(data) and len(parts) < 4096:
        sz_unc, sz_cpr = struct.unpack_from("<II", data, pos)
        method = data[pos + 8]
        if sz_unc == 0:
            break
        if sz_cpr > sz_unc or pos + 12 + sz_cpr > len(data):
            return iter([errors("invalid block header")])
        if sz_cpr < sz_unc and method not in _METHODS:
            return iter([errors(f"compression method {method} not supported (LZMA or unknown)")])
        try:
            parts.append(_unpack_block(data, pos + 12, method, sz_unc, sz_cpr, budget))
        except (ValueError, IndexError) as exc:
            return iter([errors(str(exc))])
        packed += sz_cpr
        pos += 12 + sz_cpr
    if not parts:
        return iter([errors("no compressed blocks found")])
    return iter([_charged(budget, b"".join(parts), packed)])
