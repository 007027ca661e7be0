"""Encode flow records as NetFlow v5, v9 and IPFIX export packets (and a pcap of them).

Used by the simulator (``fsbrain flow simulate --format v9``), the benchmark's sender and the tests; the
packets follow RFC 3954 / RFC 7011 and the Cisco v5 layout, so any collector can read them.

>>> from fsbrain.domains.flow.records import make_records
>>> pkts = encode_v5(make_records(31), boot=0.0)
>>> [len(p) for p in pkts]
[1464, 72]
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

from fsbrain.domains.flow.nfdecode import V5_HEADER, V5_RECORD

V9_TEMPLATE_ID = 256
# (field id, length): addresses, ports, proto, flags, packets, bytes, first, last (uptime ms)
_V9_FIELDS = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 4), (1, 4), (22, 4), (21, 4))
_V9_REC = np.dtype([("src", ">u4"), ("dst", ">u4"), ("sport", ">u2"), ("dport", ">u2"), ("proto", "u1"),
                    ("flags", "u1"), ("packets", ">u4"), ("bytes", ">u4"), ("first", ">u4"), ("last", ">u4")])
# IPFIX: same, with absolute flowStart/EndMilliseconds (152/153) and 64-bit counters
_IPFIX_FIELDS = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 8), (1, 8), (152, 8), (153, 8))
_IPFIX_REC = np.dtype([("src", ">u4"), ("dst", ">u4"), ("sport", ">u2"), ("dport", ">u2"), ("proto", "u1"),
                       ("flags", "u1"), ("packets", ">u8"), ("bytes", ">u8"), ("start", ">u8"), ("end", ">u8")])


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for i in range(0, n, size):
        yield i, min(n, i + size)


def _unsampled(recs: np.ndarray, field: str, rate: int) -> np.ndarray:
    return (recs[field] // np.uint64(max(1, rate))).astype(np.uint64)


def encode_v5(recs: np.ndarray, *, boot: float, sampling: int = 0, seq: int = 0) -> list[bytes]:
    """NetFlow v5 packets (30 records each). Counters are divided by ``sampling`` when it is set.

    Args:
        recs: flow records.
        boot: the exporter's boot time (epoch seconds); flow times become uptime milliseconds.
        sampling: sampling interval announced in the header (0 = none).
        seq: first flow sequence number.
    """
    out = []
    for lo, hi in _chunks(len(recs), 30):
        part = recs[lo:hi]
        now = float(part["te"].max()) if len(part) else boot
        raw = np.zeros(len(part), dtype=V5_RECORD)
        for name in ("src", "dst", "sport", "dport", "proto", "flags"):
            raw[name] = part[name]
        raw["packets"] = np.minimum(_unsampled(part, "packets", sampling), 0xFFFFFFFF)
        raw["bytes"] = np.minimum(_unsampled(part, "bytes", sampling), 0xFFFFFFFF)
        raw["first"] = ((part["ts"] - boot) * 1000).astype(np.uint64) & 0xFFFFFFFF
        raw["last"] = ((part["te"] - boot) * 1000).astype(np.uint64) & 0xFFFFFFFF
        uptime = int((now - boot) * 1000) & 0xFFFFFFFF
        hdr = V5_HEADER.pack(5, len(part), uptime, int(now), int((now % 1) * 1e9), seq + lo, 0, 0,
                             (1 << 14 | sampling) if sampling else 0)
        out.append(hdr + raw.tobytes())
    return out


def encode_v9(recs: np.ndarray, *, boot: float, source_id: int = 1, per_packet: int = 24,
              template_every: int = 20, sampling: int = 0) -> list[bytes]:
    """NetFlow v9 packets: a template flowset in the first packet and every ``template_every`` packets.

    When ``sampling`` is set, an options template and an options data record announce it (field 34).
    """
    out = []
    tpl_body = struct.pack("!HH", V9_TEMPLATE_ID, len(_V9_FIELDS)) + b"".join(
        struct.pack("!HH", f, ln) for f, ln in _V9_FIELDS)
    tpl_set = struct.pack("!HH", 0, 4 + len(tpl_body)) + tpl_body
    opt_set = b""
    if sampling:
        # options template 257: scope System (1, len 4); option SAMPLING_INTERVAL (34, len 4)
        body = struct.pack("!HHH", 257, 4, 4) + struct.pack("!HHHH", 1, 4, 34, 4)
        body += b"\x00" * (-(len(body) + 4) % 4)
        opt_set = struct.pack("!HH", 1, 4 + len(body)) + body
        data = struct.pack("!II", 0, sampling)
        opt_set += struct.pack("!HH", 257, 4 + len(data)) + data
    for k, (lo, hi) in enumerate(_chunks(len(recs), per_packet)):
        part = recs[lo:hi]
        now = float(part["te"].max())
        raw = np.zeros(len(part), dtype=_V9_REC)
        for name in ("src", "dst", "sport", "dport", "proto", "flags"):
            raw[name] = part[name]
        raw["packets"] = np.minimum(_unsampled(part, "packets", sampling), 0xFFFFFFFF)
        raw["bytes"] = np.minimum(_unsampled(part, "bytes", sampling), 0xFFFFFFFF)
        raw["first"] = ((part["ts"] - boot) * 1000).astype(np.uint64) & 0xFFFFFFFF
        raw["last"] = ((part["te"] - boot) * 1000).astype(np.uint64) & 0xFFFFFFFF
        body = raw.tobytes()
        body += b"\x00" * (-(len(body) + 4) % 4)
        sets = struct.pack("!HH", V9_TEMPLATE_ID, 4 + len(body)) + body
        count = len(part)
        if k % template_every == 0:
            sets = tpl_set + opt_set + sets
            count += 1 + (2 if sampling else 0)
        hdr = struct.pack("!HHIIII", 9, count, int((now - boot) * 1000) & 0xFFFFFFFF, int(now), k, source_id)
        out.append(hdr + sets)
    return out


def encode_ipfix(recs: np.ndarray, *, domain: int = 1, per_packet: int = 24, template_every: int = 20) -> list[bytes]:
    """IPFIX messages with absolute millisecond timestamps (fields 152/153)."""
    out = []
    tpl_body = struct.pack("!HH", V9_TEMPLATE_ID, len(_IPFIX_FIELDS)) + b"".join(
        struct.pack("!HH", f, ln) for f, ln in _IPFIX_FIELDS)
    tpl_set = struct.pack("!HH", 2, 4 + len(tpl_body)) + tpl_body
    for k, (lo, hi) in enumerate(_chunks(len(recs), per_packet)):
        part = recs[lo:hi]
        raw = np.zeros(len(part), dtype=_IPFIX_REC)
        for name in ("src", "dst", "sport", "dport", "proto", "flags", "packets", "bytes"):
            raw[name] = part[name]
        raw["start"] = (part["ts"] * 1000).astype(np.uint64)
        raw["end"] = (part["te"] * 1000).astype(np.uint64)
        body = raw.tobytes()
        sets = struct.pack("!HH", V9_TEMPLATE_ID, 4 + len(body)) + body
        if k % template_every == 0:
            sets = tpl_set + sets
        now = int(part["te"].max())
        out.append(struct.pack("!HHIII", 10, 16 + len(sets), now, k, domain) + sets)
    return out


def write_pcap(path: str, payloads: list[bytes], *, src: str = "192.0.2.1", dst: str = "127.0.0.1",
               dport: int = 2055, ts: float = 0.0) -> None:
    """Write UDP payloads as a classic libpcap file (Ethernet/IPv4/UDP), e.g. for tcpreplay."""
    import ipaddress

    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, p in enumerate(payloads):
            udp = struct.pack("!HHHH", 40000, dport, 8 + len(p), 0) + p
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, s, d) + udp
            frame = b"\x00" * 12 + b"\x08\x00" + ip
            t = ts + i * 1e-4
            fh.write(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(frame), len(frame)) + frame)
