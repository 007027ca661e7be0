"""The normalised flow record: one numpy structured array row per flow, whatever the export format.

Every decoder (NetFlow v5/v9, IPFIX, sFlow, CSV) produces arrays of :data:`FLOW_DTYPE`; the detector and
the classifier read nothing else. Packet and byte counts are already multiplied by the sampling rate
(``sampling`` keeps the rate that was applied), so rates computed from records are estimates of the real
traffic. Addresses are IPv4 as unsigned 32-bit integers; IPv6 flows are counted by decoders and skipped.

>>> recs = make_records(3)
>>> recs["proto"][:] = 17
>>> ip_to_int("10.0.0.1"), int_to_ip(167772161)
(167772161, '10.0.0.1')
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLOW_DTYPE = np.dtype(
    [
        ("ts", "f8"),  # flow start, epoch seconds
        ("te", "f8"),  # flow end, epoch seconds
        ("src", "u4"),
        ("dst", "u4"),
        ("sport", "u2"),
        ("dport", "u2"),
        ("proto", "u1"),
        ("flags", "u1"),  # cumulative OR of TCP flags
        ("packets", "u8"),  # after sampling
        ("bytes", "u8"),  # after sampling
        ("sampling", "u4"),  # sampling rate applied (1 = unsampled)
        ("exporter", "u4"),  # IPv4 of the exporting device, 0 when unknown (files)
    ]
)

TCP, UDP, ICMP = 6, 17, 1
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

_FLAG_LETTERS = (("U", URG), ("A", ACK), ("P", PSH), ("R", RST), ("S", SYN), ("F", FIN))


_EMPTY = np.zeros(0, dtype=FLOW_DTYPE)


def make_records(n: int) -> np.ndarray:
    """An all-zero record array of length ``n`` with ``sampling`` set to 1 (length 0: a shared empty
    array, which decoders return for every datagram that carried no records)."""
    if n == 0:
        return _EMPTY
    out = np.zeros(n, dtype=FLOW_DTYPE)
    out["sampling"] = 1
    return out


def concat(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate record arrays (an empty list gives an empty array)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return make_records(0)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


def ip_to_int(ip: str) -> int:
    """Dotted IPv4 to integer.

    Raises:
        ValueError: when ``ip`` is not an IPv4 address.
    """
    return int(ipaddress.IPv4Address(ip))


def int_to_ip(value: int) -> str:
    """Integer to dotted IPv4."""
    return str(ipaddress.IPv4Address(int(value) & 0xFFFFFFFF))


def ips_to_ints(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised dotted-quad parsing (a pyarrow string array, or any sequence of strings).

    Args:
        values: the addresses.

    Returns:
        ``(ints, ok)``: uint32 addresses and a boolean mask of the values that were valid IPv4.
    """
    fast = _ips_arrow(values)
    if fast is not None:
        return fast
    if hasattr(values, "to_pylist"):
        values = values.to_pylist()
    arr = np.asarray(values, dtype=object)
    out = np.zeros(len(arr), dtype=np.uint32)
    ok = np.zeros(len(arr), dtype=bool)
    cache: dict[Any, int | None] = {}
    for i, v in enumerate(arr):
        got = cache.get(v, -1)
        if got == -1:
            try:
                got = int(ipaddress.IPv4Address(str(v).strip()))
            except ValueError:
                got = None
            if len(cache) < 1_000_000:
                cache[v] = got
        if got is not None:
            out[i] = got
            ok[i] = True
    return out, ok


def _ips_arrow(values: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Fast path: every value a well-formed dotted quad (else None, and the caller checks one by one)."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        col = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=pa.string())
        if col.null_count:
            return None
        parts = pc.split_pattern(pc.utf8_trim_whitespace(col), ".")
        if len(col) and not pc.all(pc.equal(pc.list_value_length(parts), 4)).as_py():
            return None
        octets = np.asarray(pc.cast(pc.list_flatten(parts), pa.int64()).to_numpy(zero_copy_only=False))
    except (ImportError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None
    octets = octets.reshape(-1, 4)
    if ((octets < 0) | (octets > 255)).any():
        return None
    ints = (octets[:, 0] << 24) | (octets[:, 1] << 16) | (octets[:, 2] << 8) | octets[:, 3]
    return ints.astype(np.uint32), np.ones(len(ints), dtype=bool)


def flags_to_str(flags: int) -> str:
    """TCP flags as nfdump-style letters, e.g. ``.A..S.``."""
    return "".join(ch if flags & bit else "." for ch, bit in _FLAG_LETTERS)


def str_to_flags(text: str) -> int:
    """nfdump flag letters (``.AP.SF``), or a decimal/hex number, to a flags byte."""
    text = text.strip()
    if not text:
        return 0
    if text.isdigit():
        return int(text) & 0xFF
    if text.lower().startswith("0x"):
        try:
            return int(text, 16) & 0xFF
        except ValueError:
            return 0
    value = 0
    for ch, bit in _FLAG_LETTERS:
        if ch in text.upper():
            value |= bit
    return value


@dataclass(slots=True)
class DecodeStats:
    """Counters every decoder keeps: what was read, what was refused and why.

    Args:
        packets: export packets (or files, lines) offered.
        records: flow records produced.
        errors: problem name -> count (``truncated``, ``bad_version``, ``unknown_template`` …).
    """

    packets: int = 0
    records: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def count(self, problem: str, n: int = 1) -> None:
        """Add ``n`` to the counter of ``problem`` (zero is ignored)."""
        if n <= 0:
            return
        self.errors[problem] = self.errors.get(problem, 0) + n

    def merge(self, other: DecodeStats) -> None:
        """Add another decoder's counters into this one."""
        self.packets += other.packets
        self.records += other.records
        for k, v in other.errors.items():
            self.count(k, v)

    def to_dict(self) -> dict[str, Any]:
        return {"packets": self.packets, "records": self.records, "errors": dict(sorted(self.errors.items()))}


def records_to_dicts(recs: np.ndarray, limit: int | None = None) -> list[dict[str, Any]]:
    """Records as JSON-friendly dicts (addresses dotted, flags as letters)."""
    out = []
    for r in recs[:limit] if limit is not None else recs:
        out.append(
            {
                "ts": float(r["ts"]),
                "te": float(r["te"]),
                "src": int_to_ip(r["src"]),
                "dst": int_to_ip(r["dst"]),
                "sport": int(r["sport"]),
                "dport": int(r["dport"]),
                "proto": int(r["proto"]),
                "flags": flags_to_str(int(r["flags"])),
                "packets": int(r["packets"]),
                "bytes": int(r["bytes"]),
                "sampling": int(r["sampling"]),
            }
        )
    return out
