"""Encoded and embedded content for the malware scanner: MIME mail, uuencode, BinHex 4.0, SZDD
(MS ``compress``), Microsoft Cabinet (stored and MSZIP, also embedded in installers) and zlib streams
embedded in other files (Symbian SIS, Office documents).

Each decoder returns an iterator of :class:`~fsbrain.domains.host.archives.Member` or None when the data
is not in its format. All output is charged to the same :class:`~fsbrain.domains.host.archives.Budget` as
archives, so encoded bombs are refused like zip bombs.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import re
import struct
import zlib
from collections.abc import Iterator

from fsbrain.domains.host.archives import Budget, Member, MemberRefused
from fsbrain.domains.host.archives_7zz import cab_needs_7zz, find_program

_MIME_HINT = re.compile(rb"^(?:From |[A-Za-z-]+: )", re.M)
_UU_BEGIN = re.compile(rb"^begin [0-7]{3,4} ([^\r\n]+)\r?\n", re.M)
_BINHEX = b"(This file must be converted with BinHex"
_BINHEX_ALPHABET = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
_BINHEX_MAP = {c: i for i, c in enumerate(_BINHEX_ALPHABET)}
_MAX_CARVE = 64


def _take(budget: Budget, name: str, content: bytes, packed: int) -> Member:
    budget.count_member()
    budget.charge(len(content), packed)
    budget.total += len(content)
    return Member(name, content)


def mime_parts(data: bytes, budget: Budget) -> Iterator[Member] | None:
    """Decoded attachments of a mail message or mbox entry (base64, quoted-printable, x-uuencode)."""
    head = data[:4096]
    if not (_MIME_HINT.match(head) and re.search(rb"(?im)^content-transfer-encoding:", data[:65536])):
        return None

    def gen() -> Iterator[Member]:
        msg = email.message_from_bytes(data, policy=email.policy.compat32)
        for i, part in enumerate(msg.walk()):
            if part.is_multipart():
                continue
            cte = (part.get("Content-Transfer-Encoding") or "").strip().lower()
            if cte not in ("base64", "quoted-printable", "x-uuencode", "uuencode", "x-uue"):
                continue
            raw = part.get_payload(decode=False)
            if isinstance(raw, str) and len(raw) > budget.limits.max_member_size * 2:
                yield Member(f"part-{i}", skip="refused: encoded mail part over the size limit")
                continue
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                yield _take(budget, part.get_filename() or f"part-{i}", payload, len(raw or ""))
    return gen()


def uudecode(data: bytes, budget: Budget) -> Iterator[Member] | None:
    """Every ``begin MODE NAME`` ... ``end`` block of uuencoded data."""
    if data.find(b"begin ", 0, 65536) < 0 or not _UU_BEGIN.search(data[:65536]):  # cheap test first
        return None

    def gen() -> Iterator[Member]:
        for m in _UU_BEGIN.finditer(data):
            out = bytearray()
            for line in data[m.end():].splitlines():
                if line.strip() in (b"end", b"`", b""):
                    if line.strip() == b"end":
                        break
                    continue
                try:
                    out += binascii.a2b_uu(line)
                except binascii.Error:
                    n = ((line[0] - 32) & 63) * 4 // 3 + 1  # tolerate writers that pad lines wrongly
                    try:
                        out += binascii.a2b_uu(line[:n + 1])
                    except binascii.Error:
                        break
                if len(out) > budget.limits.max_member_size:
                    raise MemberRefused("refused: uuencoded member over the size limit")
            yield _take(budget, m.group(1).decode("utf-8", "replace").strip(), bytes(out), len(out) * 4 // 3)
    return gen()


def binhex(data: bytes, budget: Budget) -> Iterator[Member] | None:
    """Data and resource forks of a BinHex 4.0 file."""
    start = data.find(_BINHEX)
    if start < 0:
        return None
    colon = data.find(b":", data.find(b"\n", start))
    end = data.find(b":", colon + 1)
    if colon < 0 or end < 0:
        raise ValueError("BinHex: missing ':' delimiters")
    bits = nbits = 0
    six = bytearray()
    for c in data[colon + 1:end]:
        if c in b"\r\n\t ":
            continue
        if c not in _BINHEX_MAP:
            raise ValueError(f"BinHex: invalid character {chr(c)!r}")
        bits = (bits << 6) | _BINHEX_MAP[c]
        nbits += 6
        if nbits >= 8:
            nbits -= 8
            six.append((bits >> nbits) & 0xFF)
    out = bytearray()
    i = 0
    while i < len(six):  # run-length decoding: 0x90 n repeats the previous byte n-1 more times
        c = six[i]
        if c == 0x90 and i + 1 < len(six):
            n = six[i + 1]
            i += 2
            if n == 0:
                out.append(0x90)
            elif out:
                out += bytes([out[-1]]) * (n - 1)
            if len(out) > budget.limits.max_member_size:
                raise MemberRefused("refused: BinHex content over the size limit")
            continue
        out.append(c)
        i += 1
    n = out[0] if out else 0
    if len(out) < n + 22:
        raise ValueError("BinHex: truncated header")
    name = out[1:1 + n].decode("mac_roman", "replace")
    dlen, rlen = struct.unpack(">II", out[n + 12:n + 20])
    d0 = n + 22
    forks = [(name, out[d0:d0 + dlen])]
    if rlen:
        forks.append((f"{name}/rsrc", out[d0 + dlen + 2:d0 + dlen + 2 + rlen]))
    return iter([_take(budget, nm, bytes(content), len(data)) for nm, content in forks])


def szdd(data: bytes, budget: Budget) -> Iterator[Member] | None:
    """Expand an SZDD file (MS-DOS/Windows ``COMPRESS.EXE``, LZSS with a 4 KiB window)."""
    if data[:8] != b"SZDD\x88\xf0\x27\x33" or len(data) < 14:
        return None
    size = struct.unpack("<I", data[10:14])[0]
    refuse = budget.admit(size, len(data))
    if refuse:
        return iter([Member("szdd", skip=refuse)])
    window = bytearray(b" " * 4096)
    pos = 4096 - 16
    out = bytearray()
    i = 14
    while i < len(data) and len(out) < size:
        ctrl = data[i]
        i += 1
        for bit in range(8):
            if i >= len(data) or len(out) >= size:
                break
            if ctrl & (1 << bit):
                c = data[i]
                i += 1
                out.append(c)
                window[pos] = c
                pos = (pos + 1) & 4095
            else:
                if i + 1 >= len(data):
                    break
                off = data[i] | ((data[i + 1] & 0xF0) << 4)
                ln = (data[i + 1] & 0x0F) + 3
                i += 2
                for k in range(ln):
                    c = window[(off + k) & 4095]
                    out.append(c)
                    window[pos] = c
                    pos = (pos + 1) & 4095
    return iter([_take(budget, "szdd-expanded", bytes(out[:size]), len(data))])


def _cab(data: bytes, at: int, budget: Budget) -> list[Member]:
    """Files of the cabinet starting at ``at`` (stored and MSZIP folders; others are reported)."""
    hdr = data[at:at + 36]
    if len(hdr) < 36:
        raise ValueError("CAB: truncated header")
    cb_cab, coff_files = struct.unpack("<I", hdr[8:12])[0], struct.unpack("<I", hdr[16:20])[0]
    n_folders, n_files, flags = struct.unpack("<HHH", hdr[26:32])
    p = at + 36
    folder_reserve = data_reserve = 0
    if flags & 4:
        header_res, folder_reserve, data_reserve = struct.unpack("<HBB", data[p:p + 4])
        p += 4 + header_res
    for _ in range(2 if flags & 3 == 3 else (1 if flags & 3 else 0)):
        for _ in range(2):  # previous/next cabinet and disk names
            p = data.index(b"\0", p) + 1
    folders: list[bytes | str] = []
    for _ in range(n_folders):
        coff, n_data, ctype = struct.unpack("<IHH", data[p:p + 8])
        p += 8 + folder_reserve
        kind = ctype & 0x0F
        if kind not in (0, 1):
            name = {2: "Quantum", 3: "LZX"}.get(kind, "unknown")
            folders.append(f"unsupported CAB compression type {kind} ({name})")
            continue
        out = bytearray()
        q = at + coff
        for _ in range(n_data):
            cb_data, cb_unc = struct.unpack("<HH", data[q + 4:q + 8])
            q += 8 + data_reserve
            block = data[q:q + cb_data]
            q += cb_data
            if kind == 0:
                out += block
            else:
                if block[:2] != b"CK":
                    raise ValueError("CAB: MSZIP block without 'CK' signature")
                d = zlib.decompressobj(-15, zdict=bytes(out[-32768:])) if out else zlib.decompressobj(-15)
                out += d.decompress(block[2:], cb_unc + 1)
            budget.charge(len(out), q - at)
        folders.append(bytes(out))
    members: list[Member] = []
    p = at + coff_files
    for _ in range(n_files):
        cb_file, off, ifold = struct.unpack("<IIH", data[p:p + 10])
        end = data.index(b"\0", p + 16)
        name = data[p + 16:end].decode("utf-8", "replace")
        p = end + 1
        budget.count_member()
        folder = folders[ifold] if ifold < len(folders) else "file continued from another cabinet"
        if isinstance(folder, str):
            members.append(Member(name, skip=folder))
        else:
            budget.total += cb_file
            members.append(Member(name, folder[off:off + cb_file]))
    if cb_cab > len(data) - at:
        members.append(Member("<cab>", skip="CAB is truncated; later files may be missing"))
    return members


def cabinets(data: bytes, budget: Budget) -> Iterator[Member] | None:
    """Microsoft Cabinet files at the start of ``data`` or embedded in it (installers)."""
    offsets = [m.start() for m in re.finditer(rb"MSCF\0\0\0\0", data)][:_MAX_CARVE]
    if not offsets:
        return None

    def gen() -> Iterator[Member]:
        for at in offsets:
            if at > 0 and cab_needs_7zz(data, at) and find_program() is not None:
                # an embedded LZX/Quantum cabinet: carve it; 7-Zip unpacks it one level down
                size = struct.unpack("<I", data[at + 8:at + 12])[0]
                budget.count_member()
                if size > len(data) - at:
                    yield Member(f"cab@{at}", skip="corrupt or partial cabinet: size runs past the end")
                    continue
                budget.total += size
                yield Member(f"cab@{at}", data[at:at + size])
                continue
            try:
                found = _cab(data, at, budget)
            except (ValueError, struct.error, zlib.error, IndexError) as exc:
                yield Member(f"cab@{at}", skip=f"corrupt or partial cabinet: {exc}")
                continue
            for m in found:
                m.name = m.name if at == 0 else f"cab@{at}/{m.name}"
                yield m
    return gen()


def zlib_streams(data: bytes, budget: Budget) -> Iterator[Member] | None:
    """Complete zlib streams embedded anywhere in ``data`` (at most 64 per file, 64+ bytes each)."""
    cands = [m.start() for m in re.finditer(rb"\x78[\x01\x5e\x9c\xda]", data)]
    if not cands:
        return None

    def gen() -> Iterator[Member]:
        found = 0
        view = memoryview(data)  # zero-copy slices: a copy per candidate would make carving quadratic
        for at in cands:
            budget.check_time()
            try:  # cheap probe first: random bytes after a plausible header fail within a few KB
                zlib.decompressobj().decompress(view[at:at + 2048], 8192)
                d = zlib.decompressobj()
                out = d.decompress(view[at:at + budget.limits.max_member_size], budget.limits.max_member_size)
            except zlib.error:
                continue
            if not d.eof or len(out) < 64:
                continue
            found += 1
            if found > _MAX_CARVE:
                yield Member(f"zlib@{at}", skip=f"more than {_MAX_CARVE} embedded zlib streams; rest not scanned")
                return
            yield _take(budget, f"zlib@{at}", out, len(data) - len(d.unused_data) - at)
    return gen()


DECODERS = (mime_parts, uudecode, binhex, szdd, cabinets)
