"""sFlow version 5 datagrams (sflow.org/sflow_version_5.txt) to flow records and interface counters.

Supported: flow samples and expanded flow samples (enterprise 0, formats 1 and 3) carrying raw packet
headers (Ethernet with 802.1Q tags, or bare IPv4) or sampled-IPv4 records; counter samples and expanded
counter samples (formats 2 and 4) with generic interface counters. Each packet sample becomes one flow
record scaled by its sampling rate: ``packets = rate``, ``bytes = frame length × rate``.

Every length is checked against the datagram; anything malformed is counted, never raised.

>>> dec = SflowDecoder()
>>> hdr = ipv4_header(0x0A000001, 0x0A000002, 17, 53, 4444)
>>> recs = dec.decode(encode_sflow([packet_sample(hdr, 512, 100), counter_sample(3, 10**6, 900)]), now=1.0)
>>> int(recs["sport"][0]), int(recs["packets"][0]), int(recs["bytes"][0]), len(dec.counters)
(53, 100, 51200, 1)
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from fsbrain.domains.flow.records import DecodeStats, make_records

MAX_COUNTERS = 10_000
_U32 = struct.Struct("!I")
_IFCOUNTERS = struct.Struct("!IIQIIQIIIIIIQIIIIII")


def _parse_ip_header(hdr: bytes, off: int) -> tuple[int, int, int, int, int, int] | None:
    """(src, dst, proto, sport, dport, flags) from an IPv4 header at ``off``; None when not IPv4/too short."""
    if len(hdr) < off + 20 or hdr[off] >> 4 != 4:
        return None
    ihl = (hdr[off] & 0x0F) * 4
    if ihl < 20:
        return None
    proto = hdr[off + 9]
    src, dst = struct.unpack_from("!II", hdr, off + 12)
    sport = dport = flags = 0
    l4 = off + ihl
    frag = struct.unpack_from("!H", hdr, off + 6)[0] & 0x1FFF
    if frag == 0:
        if proto in (6, 17) and len(hdr) >= l4 + 4:
            sport, dport = struct.unpack_from("!HH", hdr, l4)
            if proto == 6 and len(hdr) >= l4 + 14:
                flags = hdr[l4 + 13]
        elif proto == 1 and len(hdr) >= l4 + 1:
            dport = hdr[l4]  # ICMP type, as NetFlow does
    return src, dst, proto, sport, dport, flags


class SflowDecoder:
    """Stateless-per-datagram sFlow v5 decoder with counters.

    Attributes:
        stats: datagrams, records and problems.
        counters: latest generic interface counters per ``(agent, ifIndex)``.
    """

    def __init__(self) -> None:
        self.stats = DecodeStats()
        self.counters: dict[tuple[int, int], dict[str, int]] = {}

    def decode(self, data: bytes, now: float) -> np.ndarray:
        """Decode one datagram received at ``now`` (epoch seconds)."""
        self.stats.packets += 1
        rows: list[tuple[int, ...]] = []
        try:
            self._datagram(memoryview(data).tobytes(), rows)
        except (struct.error, ValueError, IndexError):
            self.stats.count("truncated")
        out = make_records(len(rows))
        if rows:
            arr = np.array(rows, dtype=np.uint64)
            for i, name in enumerate(("src", "dst", "proto", "sport", "dport", "flags", "packets", "bytes",
                                      "sampling", "exporter")):
                out[name] = arr[:, i]
            out["ts"] = now
            out["te"] = now
        self.stats.records += len(out)
        return out

    def _datagram(self, d: bytes, rows: list[tuple[int, ...]]) -> None:
        version, addr_type = struct.unpack_from("!II", d, 0)
        if version != 5:
            self.stats.count("bad_version")
            return
        if addr_type == 1:
            agent = _U32.unpack_from(d, 8)[0]
            off = 12
        elif addr_type == 2:
            agent, off = 0, 24
        else:
            self.stats.count("bad_agent_address")
            return
        _sub, _seq, _uptime, n_samples = struct.unpack_from("!IIII", d, off)
        off += 16
        for _ in range(n_samples):
            fmt, length = struct.unpack_from("!II", d, off)
            off += 8
            if off + length > len(d):
                self.stats.count("truncated")
                return
            body = d[off : off + length]
            off += length
            ent, kind = fmt >> 12, fmt & 0xFFF
            if ent != 0:
                self.stats.count("unknown_sample")
            elif kind in (1, 3):
                self._flow_sample(body, kind == 3, agent, rows)
            elif kind in (2, 4):
                self._counter_sample(body, kind == 4, agent)
            else:
                self.stats.count("unknown_sample")

    def _flow_sample(self, b: bytes, expanded: bool, agent: int, rows: list[tuple[int, ...]]) -> None:
        off = 12 if expanded else 8  # sequence, source id (expanded: type + index)
        rate, _pool, _drops = struct.unpack_from("!III", b, off)
        off += 12 + (16 if expanded else 8)  # input/output interfaces
        (n_rec,) = _U32.unpack_from(b, off)
        off += 4
        rate = max(1, rate)
        for _ in range(n_rec):
            fmt, length = struct.unpack_from("!II", b, off)
            off += 8
            if off + length > len(b):
                self.stats.count("truncated")
                return
            rec = b[off : off + length]
            off += length
            if fmt == 1:  # raw packet header
                proto, frame_len, _stripped, hlen = struct.unpack_from("!IIII", rec, 0)
                hdr = rec[16 : 16 + min(hlen, len(rec) - 16)]
                ip_off = self._ip_offset(proto, hdr)
                parsed = _parse_ip_header(hdr, ip_off) if ip_off is not None else None
                if parsed is None:
                    self.stats.count("truncated_header" if ip_off is not None else "non_ipv4")
                    continue
                rows.append((*parsed, rate, frame_len * rate, rate, agent))
            elif fmt == 3:  # sampled IPv4
                length_, proto, src, dst, sport, dport, flags, _tos = struct.unpack_from("!IIIIIIII", rec, 0)
                rows.append((src, dst, proto & 0xFF, sport & 0xFFFF, dport & 0xFFFF, flags & 0xFF, rate,
                             length_ * rate, rate, agent))

    def _ip_offset(self, proto: int, hdr: bytes) -> int | None:
        if proto == 11:  # IPv4
            return 0
        if proto != 1:  # not Ethernet
            return None
        off = 12
        while len(hdr) >= off + 2:
            etype = struct.unpack_from("!H", hdr, off)[0]
            if etype in (0x8100, 0x88A8):  # VLAN tags
                off += 4
                continue
            return off + 2 if etype == 0x0800 else None
        return len(hdr)

    def _counter_sample(self, b: bytes, expanded: bool, agent: int) -> None:
        off = 12 if expanded else 8
        (n_rec,) = _U32.unpack_from(b, off)
        off += 4
        for _ in range(n_rec):
            fmt, length = struct.unpack_from("!II", b, off)
            off += 8
            rec = b[off : off + length]
            off += length
            if fmt == 1 and len(rec) >= _IFCOUNTERS.size:
                v = _IFCOUNTERS.unpack_from(rec, 0)
                key = (agent, v[0])
                if key not in self.counters and len(self.counters) >= MAX_COUNTERS:
                    self.counters.pop(next(iter(self.counters)))
                self.counters[key] = {"if_index": v[0], "if_speed": v[2], "in_octets": v[5],
                                      "in_ucast_pkts": v[6], "in_discards": v[9], "in_errors": v[10],
                                      "out_octets": v[12], "out_ucast_pkts": v[13], "out_discards": v[16]}
                self.stats.count("counter_records")


# -- encoding (tests, simulator, benchmark) ---------------------------------------------------------
def _xdr_opaque(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def packet_sample(header: bytes, frame_len: int, rate: int, *, ethernet: bool = False, seq: int = 0) -> bytes:
    """One flow sample (format 1) with a raw packet header record; ``header`` starts at IPv4 unless
    ``ethernet``."""
    rec = struct.pack("!IIII", 1 if ethernet else 11, frame_len, 4, len(header)) + _xdr_opaque(header)
    recs = struct.pack("!II", 1, len(rec)) + rec
    body = struct.pack("!IIIIIIII", seq, 3, rate, rate * (seq + 1), 0, 3, 4, 1) + recs
    return struct.pack("!II", 1, len(body)) + body


def counter_sample(if_index: int, in_octets: int, in_pkts: int) -> bytes:
    """One counter sample (format 2) with generic interface counters."""
    c = _IFCOUNTERS.pack(if_index, 6, 10**10, 1, 3, in_octets, in_pkts, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    recs = struct.pack("!II", 1, len(c)) + c
    body = struct.pack("!III", 0, if_index, 1) + recs
    return struct.pack("!II", 2, len(body)) + body


def encode_sflow(samples: list[bytes], *, agent: str = "192.0.2.1", seq: int = 0) -> bytes:
    """An sFlow v5 datagram holding ``samples``."""
    import ipaddress

    return (struct.pack("!II", 5, 1) + ipaddress.IPv4Address(agent).packed
            + struct.pack("!IIII", 0, seq, 1000, len(samples)) + b"".join(samples))


def ipv4_header(src: int, dst: int, proto: int, sport: int = 0, dport: int = 0, flags: int = 0) -> bytes:
    """A minimal IPv4 + L4 header for :func:`packet_sample`."""
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 60, 0, 0, 64, proto, 0, src, dst)
    if proto == 6:
        return ip + struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, flags, 0, 0, 0)
    if proto == 17:
        return ip + struct.pack("!HHHH", sport, dport, 8, 0)
    return ip + struct.pack("!BBH", dport, 0, 0)


def summary(dec: SflowDecoder) -> dict[str, Any]:
    """Decoder counters plus the number of interfaces with counters."""
    return {**dec.stats.to_dict(), "interfaces": len(dec.counters)}
