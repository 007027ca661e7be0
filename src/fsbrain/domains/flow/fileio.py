"""Flow files to record batches: CICFlowMeter CSV, nfdump CSV, pcap captures of NetFlow/IPFIX/sFlow.

CSV files are read with pyarrow in blocks (bounded memory whatever the file size; ``.gz`` works); only
the columns the detector needs are converted. Rows with the wrong number of fields, unparseable numbers,
addresses or times are counted in the returned :class:`~fsbrain.domains.flow.records.DecodeStats` and
skipped. Capture files (classic libpcap; Ethernet, raw IP, Linux cooked, BSD loopback) are replayed
through the same decoders the UDP collector uses.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fsbrain.core.errors import InputError
from fsbrain.domains.flow.nfdecode import NetflowDecoder
from fsbrain.domains.flow.records import DecodeStats, ips_to_ints, make_records, str_to_flags
from fsbrain.domains.flow.sflow import SflowDecoder

FORMATS = ("auto", "cicflowmeter", "nfdump", "pcap")
_PROTO_NAMES = {"tcp": 6, "udp": 17, "icmp": 1, "gre": 47, "esp": 50, "icmp6": 58, "ipv6-icmp": 58}
# canonical column -> accepted header spellings (compared lower-cased, stripped)
CIC_COLUMNS = {
    "src": ("src ip", "source ip"), "dst": ("dst ip", "destination ip"),
    "sport": ("src port", "source port"), "dport": ("dst port", "destination port"),
    "proto": ("protocol",), "ts": ("timestamp",), "duration": ("flow duration",),
    "fwd_pkts": ("total fwd packet", "total fwd packets", "tot fwd pkts"),
    "bwd_pkts": ("total bwd packets", "total backward packets", "tot bwd pkts"),
    "fwd_bytes": ("total length of fwd packet", "total length of fwd packets", "totlen fwd pkts"),
    "bwd_bytes": ("total length of bwd packet", "total length of bwd packets", "totlen bwd pkts"),
    "fin": ("fin flag count", "fin flag cnt"), "syn": ("syn flag count", "syn flag cnt"),
    "rst": ("rst flag count", "rst flag cnt"), "psh": ("psh flag count", "psh flag cnt"),
    "ack": ("ack flag count", "ack flag cnt"), "urg": ("urg flag count", "urg flag cnt"),
}
NFDUMP_COLUMNS = {
    "ts": ("ts", "firstseen", "first"), "te": ("te", "lastseen", "last"),
    "src": ("sa", "srcaddr", "src addr"), "dst": ("da", "dstaddr", "dst addr"),
    "sport": ("sp", "srcport", "src pt"), "dport": ("dp", "dstport", "dst pt"),
    "proto": ("pr", "proto"), "flags": ("flg", "flags"), "packets": ("ipkt", "packets", "in pkt"),
    "bytes": ("ibyt", "bytes", "in byt"),
}


def _map_columns(header: list[str], wanted: dict[str, tuple[str, ...]]) -> dict[str, str]:
    low = {h.strip().lower(): h for h in header}
    out = {}
    for canon, names in wanted.items():
        for n in names:
            if n in low:
                out[canon] = low[n]
                break
    return out


def _numbers(values: Any, stats: DecodeStats, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Strings to float64 with a validity mask (fast path through Arrow or numpy, slow path per value)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        try:
            arr = np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
            ok = np.isfinite(arr)
            stats.count(f"bad_{what}", int((~ok).sum()))
            return arr, ok
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = values.to_pylist()
    try:
        arr = np.array(values, dtype=np.float64)
        return arr, np.isfinite(arr)
    except (ValueError, TypeError):
        out = np.zeros(len(values), dtype=np.float64)
        ok = np.zeros(len(values), dtype=bool)
        for i, v in enumerate(values):
            try:
                out[i] = float(v)
                ok[i] = np.isfinite(out[i])
            except (ValueError, TypeError):
                pass
        stats.count(f"bad_{what}", int((~ok).sum()))
        return out, ok


def _times(values: Any, stats: DecodeStats) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (ISO ``YYYY-MM-DD hh:mm:ss[.ffffff]``, CIC ``d/m/Y h:m[:s] [AM|PM]``, epoch) as UTC seconds."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        try:  # ISO 8601 in one vector cast
            t = pc.cast(pc.utf8_trim_whitespace(values), pa.timestamp("us"))
            if not t.null_count:
                return np.asarray(t.cast(pa.int64()).to_numpy(zero_copy_only=False)) / 1e6, np.ones(len(values), dtype=bool)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        values = values.to_pylist()
    try:
        t = np.array([str(v).strip().replace("T", " ") for v in values], dtype="datetime64[us]")
        return t.astype(np.int64) / 1e6, np.ones(len(values), dtype=bool)
    except ValueError:
        pass
    out = np.zeros(len(values), dtype=np.float64)
    ok = np.zeros(len(values), dtype=bool)
    fmts = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %I:%M:%S %p", "%d/%m/%Y %H:%M:%S",
            "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M")
    for i, v in enumerate(values):
        s = str(v).strip()
        try:
            out[i] = float(s)
            ok[i] = True
            continue
        except ValueError:
            pass
        for f in fmts:
            try:
                out[i] = dt.datetime.strptime(s, f).replace(tzinfo=dt.UTC).timestamp()
                ok[i] = True
                break
            except ValueError:
                continue
    stats.count("bad_timestamp", int((~ok).sum()))
    return out, ok


def _flags(col: Any) -> np.ndarray:
    """nfdump flag strings to flag bytes, parsing each distinct spelling once."""
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(col)
    lut = np.array([str_to_flags(str(v or "")) for v in enc.dictionary.to_pylist()] or [0], dtype=np.uint8)
    idx = np.asarray(enc.indices.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return lut[idx]


def _protocols(values: Any, stats: DecodeStats) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(values, "to_pylist"):
        values = values.to_pylist()
    try:
        arr = np.array(values, dtype=np.float64)
        return arr, np.isfinite(arr)
    except (ValueError, TypeError):
        conv = [_PROTO_NAMES.get(str(v).strip().lower(), str(v).strip()) for v in values]
        return _numbers(conv, stats, "protocol")


def csv_batches(path: str | Path, kind: str, stats: DecodeStats, block_rows: int = 200_000) -> Iterator[np.ndarray]:
    """Read a CICFlowMeter (``kind="cicflowmeter"``) or nfdump CSV into record batches.

    Raises:
        InputError: the file cannot be opened or has none of the needed columns.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    wanted = CIC_COLUMNS if kind == "cicflowmeter" else NFDUMP_COLUMNS

    def bad_row(row: Any) -> str:
        stats.count("bad_row")
        return "skip"

    try:
        header = _read_header(path)
        cols = _map_columns(header, wanted)
        need = ("src", "dst", "ts") if kind == "cicflowmeter" else ("src", "dst", "ts", "packets", "bytes")
        missing = [c for c in need if c not in cols]
        if missing:
            raise InputError(f"{path}: not a {kind} CSV (no column for {', '.join(missing)}; header starts "
                             f"{', '.join(header[:6])})")
        reader = pacsv.open_csv(
            str(path),
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            parse_options=pacsv.ParseOptions(invalid_row_handler=bad_row),
            convert_options=pacsv.ConvertOptions(include_columns=list(cols.values()),
                                                 column_types={c: pa.string() for c in cols.values()}),
        )
        for batch in reader:
            yield from _split(_csv_batch(batch, cols, kind, stats), block_rows)
    except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as {kind} CSV: {exc}") from exc


def _read_header(path: str | Path) -> list[str]:
    import csv
    import gzip
    import io

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        first = fh.readline(1 << 16)
    text = first.decode("utf-8", "replace").lstrip("\ufeff")
    return next(csv.reader(io.StringIO(text)), [])


def _split(recs: np.ndarray, n: int) -> Iterator[np.ndarray]:
    for i in range(0, len(recs), n):
        yield recs[i : i + n]


def _csv_batch(batch: Any, cols: dict[str, str], kind: str, stats: DecodeStats) -> np.ndarray:
    get: dict[str, Any] = {c: batch.column(name) for c, name in cols.items()}
    n = batch.num_rows
    stats.packets += n
    ok = np.ones(n, dtype=bool)
    out = make_records(n)
    src, m1 = ips_to_ints(get["src"])
    dst, m2 = ips_to_ints(get["dst"])
    stats.count("bad_address", int((~(m1 & m2)).sum()))
    ok &= m1 & m2
    out["src"], out["dst"] = src, dst
    ts, m = _times(get["ts"], stats)
    ok &= m
    out["ts"] = ts
    for c in ("sport", "dport"):
        if c in get:
            v, m = _numbers(get[c], stats, c)
            ok &= m & (v >= 0) & (v < 65536)
            out[c] = np.where(m, v, 0)
    if "proto" in get:
        v, m = _protocols(get["proto"], stats)
        ok &= m & (v >= 0) & (v < 256)
        out["proto"] = np.where(m, v, 0)
    if kind == "cicflowmeter":
        num = {c: _numbers(get[c], stats, c)[0] if c in get else np.zeros(n) for c in
               ("duration", "fwd_pkts", "bwd_pkts", "fwd_bytes", "bwd_bytes")}
        out["te"] = ts + np.clip(num["duration"], 0, None) / 1e6
        # the flow's packets towards the destination; CICFlowMeter's "forward" is the initiator's direction
        out["packets"] = np.clip(num["fwd_pkts"], 0, 2**40)
        out["bytes"] = np.clip(num["fwd_bytes"], 0, 2**50)
        flags = np.zeros(n, dtype=np.uint8)
        for c, bit in (("fin", 1), ("syn", 2), ("rst", 4), ("psh", 8), ("ack", 16), ("urg", 32)):
            if c in get:
                flags |= np.where(_numbers(get[c], stats, c)[0] > 0, bit, 0).astype(np.uint8)
        out["flags"] = flags
    else:
        te, m = _times(get["te"], stats) if "te" in get else (ts, np.ones(n, dtype=bool))
        out["te"] = np.where(m, np.maximum(te, ts), ts)
        for c in ("packets", "bytes"):
            v, m = _numbers(get[c], stats, c)
            ok &= m & (v >= 0)
            out[c] = np.where(m & (v >= 0), v, 0)
        if "flags" in get:
            out["flags"] = _flags(get["flags"])
    res = out[ok]
    stats.records += len(res)
    return res


# -- capture files ----------------------------------------------------------------------------------
def pcap_payloads(path: str | Path, stats: DecodeStats) -> Iterator[tuple[float, int, int, bytes]]:
    """UDP datagrams in a classic pcap file as ``(time, source IPv4, destination port, payload)``.

    Raises:
        InputError: not a classic pcap file (pcapng is not supported: convert with ``editcap -F pcap``).
    """
    with open(path, "rb") as fh:
        head = fh.read(24)
        if len(head) < 24:
            raise InputError(f"{path}: too short for a pcap file")
        magic = head[:4]
        endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<",
                  b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
        if endian is None:
            hint = " (pcapng: convert with editcap -F pcap)" if magic == b"\x0a\x0d\x0d\x0a" else ""
            raise InputError(f"{path}: not a classic pcap file{hint}")
        scale = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
        linktype = struct.unpack(endian + "I", head[20:24])[0] & 0xFFFF
        rec = struct.Struct(endian + "IIII")
        while True:
            h = fh.read(16)
            if len(h) < 16:
                if h:
                    stats.count("truncated_capture")
                return
            sec, frac, incl, _orig = rec.unpack(h)
            if incl > 262144:
                stats.count("bad_capture_record")
                return
            frame = fh.read(incl)
            if len(frame) < incl:
                stats.count("truncated_capture")
                return
            got = _udp_of(frame, linktype)
            if got is None:
                stats.count("not_udp_ipv4")
                continue
            yield (sec + frac * scale, *got)


def _udp_of(frame: bytes, linktype: int) -> tuple[int, int, bytes] | None:
    off = {1: 14, 101: 0, 228: 0, 12: 0, 113: 16, 0: 4, 276: 20}.get(linktype)
    if off is None:
        return None
    if linktype == 1:
        while len(frame) >= off and frame[off - 2 : off] in (b"\x81\x00", b"\x88\xa8"):
            off += 4
        if frame[off - 2 : off] != b"\x08\x00":
            return None
    if len(frame) < off + 28 or frame[off] >> 4 != 4 or frame[off + 9] != 17:
        return None
    ihl = (frame[off] & 0x0F) * 4
    src = struct.unpack_from("!I", frame, off + 12)[0]
    u = off + ihl
    if len(frame) < u + 8:
        return None
    dport, ulen = struct.unpack_from("!HH", frame, u + 2)
    return src, dport, frame[u + 8 : u + max(8, ulen)]


def pcap_batches(path: str | Path, stats: DecodeStats, batch_packets: int = 2000) -> Iterator[np.ndarray]:
    """Decode every NetFlow/IPFIX/sFlow datagram in a capture file into record batches."""
    nf, sf = NetflowDecoder(), SflowDecoder()
    parts: list[np.ndarray] = []
    for t, src, _dport, payload in pcap_payloads(path, stats):
        if payload[:4] == b"\x00\x00\x00\x05":
            parts.append(sf.decode(payload, now=t))
        else:
            parts.append(nf.decode(payload, exporter=src))
        if len(parts) >= batch_packets:
            yield np.concatenate(parts)
            parts = []
    if parts:
        yield np.concatenate(parts)
    stats.merge(nf.stats)
    stats.merge(sf.stats)


def detect_format(path: str | Path) -> str:
    """Guess a file's format from its first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                b"\x0a\x0d\x0d\x0a"):
        return "pcap"
    header = [h.strip().lower() for h in _read_header(path)]
    if _map_columns(header, {"x": CIC_COLUMNS["src"]}) and "flow duration" in header:
        return "cicflowmeter"
    if _map_columns(header, {"x": NFDUMP_COLUMNS["src"]}):
        return "nfdump"
    raise InputError(f"{path}: unrecognised flow file (expected CICFlowMeter CSV, nfdump CSV or pcap)")


def read_flows(path: str | Path, fmt: str = "auto", stats: DecodeStats | None = None) -> Iterator[np.ndarray]:
    """Record batches from one file of any supported format.

    Raises:
        InputError: missing file, unknown format or unreadable content.
    """
    stats = stats if stats is not None else DecodeStats()
    if fmt not in FORMATS:
        raise InputError(f"unknown flow file format {fmt!r} (one of {', '.join(FORMATS)})")
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    kind = detect_format(path) if fmt == "auto" else fmt
    if kind == "pcap":
        yield from pcap_batches(path, stats)
    else:
        yield from csv_batches(path, kind, stats)
