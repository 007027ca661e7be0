"""NetFlow v5, v9 and IPFIX export packets to flow records.

v5 has a fixed layout and decodes with one ``numpy.frombuffer``. v9 and IPFIX templates are parsed with
the ``netflow`` package and cached per exporter and source id / observation domain
(:mod:`fsbrain.domains.flow.templates`); data flowsets then decode vectorised. A data flowset whose
template has not arrived yet is held (at most :data:`MAX_PENDING` per exporter for
:data:`MAX_HOLD_SECONDS`; older or surplus ones are dropped and counted) and decoded as soon as the
template comes.

Nothing here raises on bad input: every problem is counted in :attr:`NetflowDecoder.stats`.

>>> dec = NetflowDecoder()
>>> len(dec.decode(b"\\x00\\x05garbage")), dec.stats.errors
(0, {'truncated': 1})
"""

from __future__ import annotations

import struct
import time
from collections import deque
from typing import Any

import numpy as np

from fsbrain.domains.flow import templates as T
from fsbrain.domains.flow.records import ICMP, DecodeStats, concat, make_records

V5_HEADER = struct.Struct("!HHIIIIBBH")
V5_RECORD = np.dtype(
    [("src", ">u4"), ("dst", ">u4"), ("nexthop", ">u4"), ("input", ">u2"), ("output", ">u2"),
     ("packets", ">u4"), ("bytes", ">u4"), ("first", ">u4"), ("last", ">u4"), ("sport", ">u2"),
     ("dport", ">u2"), ("pad1", "u1"), ("flags", "u1"), ("proto", "u1"), ("tos", "u1"),
     ("src_as", ">u2"), ("dst_as", ">u2"), ("src_mask", "u1"), ("dst_mask", "u1"), ("pad2", ">u2")]
)
V9_HEADER = struct.Struct("!HHIIII")
IPFIX_HEADER = struct.Struct("!HHIII")
MAX_PENDING = 64
MAX_HOLD_SECONDS = 60.0
MAX_EXPORTERS = 4096


def _uptime_to_epoch(uptime_ms: np.ndarray, sys_uptime: Any, unix_secs: Any) -> np.ndarray:
    """Router uptime (ms) of a flow event to epoch seconds, with 32-bit uptime wrap-around."""
    delta = (np.asarray(sys_uptime).astype(np.int64) - uptime_ms.astype(np.int64)) % (1 << 32)
    delta = np.where(delta > (1 << 31), delta - (1 << 32), delta)
    return unix_secs - delta / 1000.0


class NetflowDecoder:
    """Stateful decoder for NetFlow v5/v9 and IPFIX packets from any number of exporters.

    Args:
        default_sampling: rate applied when an exporter announces none (1 = unsampled).

    IPv6 flows are counted as ``ipv6_skipped`` (the detector works on IPv4).
    """

    def __init__(self, *, default_sampling: int = 1) -> None:
        self.default_sampling = max(1, int(default_sampling))
        self.stats = DecodeStats()
        self.last_error = ""
        self._sink: list[tuple[Any, ...]] | None = None
        self._exporters: dict[tuple[int, int, int], T.ExporterState] = {}
        self._pending: dict[tuple[int, int, int], deque[tuple[int, bytes, tuple[Any, ...], float]]] = {}

    # -- public ----------------------------------------------------------------------------------
    def decode(self, data: bytes, exporter: int = 0) -> np.ndarray:
        """Decode one export packet (UDP payload) sent by ``exporter`` (IPv4 as int).

        Returns:
            The flow records it carried, plus any held records its templates unlocked.
        """
        self.stats.packets += 1
        if len(data) < 4:
            self.stats.count("truncated")
            return make_records(0)
        version = (data[0] << 8) | data[1]
        try:
            if version == 5:
                out = self._v5(data, exporter)
            elif version == 9:
                out = self._v9(data, exporter)
            elif version == 10:
                out = self._ipfix(data, exporter)
            else:
                self.stats.count("bad_version")
                return make_records(0)
        except (ValueError, struct.error, IndexError, OverflowError) as exc:  # defensive: counted
            self.stats.count("malformed")
            self.last_error = repr(exc)
            return make_records(0)
        self.stats.records += len(out)
        return out

    @property
    def pending(self) -> int:
        """Data flowsets held waiting for their template."""
        return sum(len(q) for q in self._pending.values())

    def template_count(self) -> int:
        return sum(len(s.templates) for s in self._exporters.values())

    # -- v5 --------------------------------------------------------------------------------------
    def _v5_header(self, data: bytes) -> tuple[int, int, float, int] | None:
        """(records present, sys_uptime, export time, sampling rate) of a v5 packet, or None."""
        if len(data) < V5_HEADER.size:
            self.stats.count("truncated")
            return None
        _, count, sys_uptime, secs, nsecs, _seq, _et, _eid, sampling = V5_HEADER.unpack_from(data)
        if count == 0 or count > 30:
            self.stats.count("bad_count")
            if count == 0:
                return None
        avail = (len(data) - V5_HEADER.size) // V5_RECORD.itemsize
        if avail < count:
            self.stats.count("truncated")
        rate = sampling & 0x3FFF
        return min(count, avail), sys_uptime, secs + nsecs / 1e9, rate if rate > 0 else self.default_sampling

    def _v5(self, data: bytes, exporter: int) -> np.ndarray:
        head = self._v5_header(data)
        if head is None:
            return make_records(0)
        n, sys_uptime, now, rate = head
        raw = np.frombuffer(data, dtype=V5_RECORD, count=n, offset=V5_HEADER.size)
        return self._v5_records(raw, sys_uptime, now, rate, exporter)

    @staticmethod
    def _v5_records(raw: np.ndarray, sys_uptime: Any, now: Any, rate: Any, exporter: Any) -> np.ndarray:
        out = make_records(len(raw))
        out["ts"] = _uptime_to_epoch(raw["first"], sys_uptime, now)
        out["te"] = _uptime_to_epoch(raw["last"], sys_uptime, now)
        for name in ("src", "dst", "sport", "dport", "proto", "flags"):
            out[name] = raw[name]
        r = np.asarray(rate).astype(np.uint64)
        out["packets"] = raw["packets"].astype(np.uint64) * r
        out["bytes"] = raw["bytes"].astype(np.uint64) * r
        out["sampling"] = rate
        out["exporter"] = exporter
        return out

    def decode_many(self, items: list[tuple[bytes, int]]) -> np.ndarray:
        """Decode many packets at once (the collector's and batch path): v5 records of every packet and v9 /
        IPFIX data flowsets sharing a template are decoded in one vector pass each.

        Args:
            items: ``(packet, exporter)`` pairs in arrival order.
        """
        bodies, meta = [], []
        sink: list[tuple[Any, ...]] = []
        parts: list[np.ndarray] = []
        for data, exporter in items:
            if len(data) >= 2 and data[0] == 0 and data[1] == 5:
                self.stats.packets += 1
                head = self._v5_header(data)
                if head is not None and head[0] > 0:
                    bodies.append(data[V5_HEADER.size : V5_HEADER.size + head[0] * V5_RECORD.itemsize])
                    meta.append((*head, exporter))
            else:
                self._sink = sink
                try:
                    parts.append(self.decode(data, exporter))
                finally:
                    self._sink = None
        if bodies:
            raw = np.frombuffer(b"".join(bodies), dtype=V5_RECORD)
            m = np.array(meta, dtype=np.float64)
            cnt = m[:, 0].astype(np.int64)
            recs = self._v5_records(raw, np.repeat(m[:, 1], cnt), np.repeat(m[:, 2], cnt),
                                    np.repeat(m[:, 3], cnt), np.repeat(m[:, 4], cnt))
            self.stats.records += len(recs)
            parts.append(recs)
        if sink:
            parts.append(self._drain_sink(sink))
        return concat(parts)

    def _drain_sink(self, sink: list[tuple[Any, ...]]) -> np.ndarray:
        groups: dict[int, list[tuple[Any, ...]]] = {}
        for item in sink:
            groups.setdefault(id(item[1]), []).append(item)
        parts = []
        for items in groups.values():
            st, tpl = items[0][0], items[0][1]
            body = b"".join(x[2] for x in items)
            cnt = np.array([len(x[2]) // tpl.record_len for x in items], dtype=np.int64)
            hdr = (np.repeat([x[3][0] for x in items], cnt), np.repeat([float(x[3][1]) for x in items], cnt))
            recs = self._to_records(st, T.decode_fixed(tpl, body), hdr, np.repeat([x[4] for x in items], cnt))
            self.stats.records += len(recs)
            parts.append(recs)
        return concat(parts)

    # -- v9 and IPFIX ----------------------------------------------------------------------------
    def _state(self, key: tuple[int, int, int]) -> T.ExporterState:
        st = self._exporters.get(key)
        if st is None:
            if len(self._exporters) >= MAX_EXPORTERS:
                old = next(iter(self._exporters))
                self._exporters.pop(old)
                self._pending.pop(old, None)
                self.stats.count("exporters_evicted")
            st = self._exporters[key] = T.ExporterState()
        return st

    def _v9(self, data: bytes, exporter: int) -> np.ndarray:
        if len(data) < V9_HEADER.size:
            self.stats.count("truncated")
            return make_records(0)
        _, _count, sys_uptime, secs, _seq, source_id = V9_HEADER.unpack_from(data)
        return self._sets(data, V9_HEADER.size, len(data), (exporter, 9, source_id), (sys_uptime, secs), 9)

    def _ipfix(self, data: bytes, exporter: int) -> np.ndarray:
        if len(data) < IPFIX_HEADER.size:
            self.stats.count("truncated")
            return make_records(0)
        _, length, export_time, _seq, domain = IPFIX_HEADER.unpack_from(data)
        if length > len(data) or length < IPFIX_HEADER.size:
            self.stats.count("truncated" if length > len(data) else "malformed")
            length = len(data) if length > len(data) else IPFIX_HEADER.size
        return self._sets(data, IPFIX_HEADER.size, length, (exporter, 10, domain), (0, export_time), 10)

    def _sets(self, data: bytes, offset: int, end: int, key: tuple[int, int, int], hdr: tuple[Any, ...],
              version: int) -> np.ndarray:
        st = self._state(key)
        parts: list[np.ndarray] = []
        new_templates = False
        tpl_ids = (0, 1) if version == 9 else (2, 3)
        while end - offset >= 4:
            set_id, length = struct.unpack_from("!HH", data, offset)
            if length < 4 or offset + length > end:
                self.stats.count("truncated" if length >= 4 else "malformed")
                break
            body = data[offset : offset + length]
            offset += length
            if set_id in tpl_ids:
                try:
                    tpls = (T.parse_v9_templates(body, set_id == 1) if version == 9
                            else T.parse_ipfix_templates(body, set_id == 3))
                except ValueError:
                    self.stats.count("bad_template")
                    continue
                for tpl in tpls:
                    new_templates |= st.add(tpl)
            elif set_id >= 256:
                tpl = st.templates.get(set_id)
                if tpl is None:
                    self._hold(key, set_id, body[4:], hdr)
                    continue
                parts.append(self._data_set(st, tpl, body[4:], hdr, key[0]))
            else:
                self.stats.count("bad_set_id")
        if new_templates and key in self._pending:
            parts.append(self._release(key, st))
        return concat(parts)

    def _hold(self, key: tuple[int, int, int], set_id: int, body: bytes, hdr: tuple[Any, ...]) -> None:
        self.stats.count("unknown_template")
        q = self._pending.setdefault(key, deque())
        now = time.monotonic()
        while q and (len(q) >= MAX_PENDING or now - q[0][3] > MAX_HOLD_SECONDS):
            q.popleft()
            self.stats.count("dropped_unknown_template")
        q.append((set_id, body, hdr, now))

    def _release(self, key: tuple[int, int, int], st: T.ExporterState) -> np.ndarray:
        q = self._pending.pop(key, deque())
        parts, keep = [], deque()
        now = time.monotonic()
        for set_id, body, hdr, since in q:
            tpl = st.templates.get(set_id)
            if now - since > MAX_HOLD_SECONDS:
                self.stats.count("dropped_unknown_template")
            elif tpl is None:
                keep.append((set_id, body, hdr, since))
            else:
                parts.append(self._data_set(st, tpl, body, hdr, key[0]))
                self.stats.count("released_after_template")
        if keep:
            self._pending[key] = keep
        return concat(parts)

    def _data_set(self, st: T.ExporterState, tpl: T.Template, body: bytes, hdr: tuple[Any, ...],
                  exporter: int) -> np.ndarray:
        if self._sink is not None and tpl.dtype is not None and not tpl.options:
            self._sink.append((st, tpl, body[: len(body) // tpl.record_len * tpl.record_len], hdr, exporter))
            return make_records(0)
        try:
            cols = T.decode_fixed(tpl, body) if tpl.dtype is not None else T.decode_variable(tpl, body)
        except ValueError:
            self.stats.count("malformed_record")
            return make_records(0)
        if tpl.options:
            st.learn_options(cols)
            return make_records(0)
        return self._to_records(st, cols, hdr, exporter)

    def _to_records(self, st: T.ExporterState, cols: dict[int, np.ndarray], hdr: tuple[Any, ...],
                    exporter: Any) -> np.ndarray:
        n = int(cols[-1][0])
        if n == 0:
            return make_records(0)
        if T.F_SRC not in cols or T.F_DST not in cols:
            if T.F_SRC6 in cols or T.F_DST6 in cols:
                self.stats.count("ipv6_skipped", n)
            else:
                self.stats.count("no_addresses", n)
            return make_records(0)
        zeros = np.zeros(n, dtype=np.uint64)
        out = make_records(n)
        out["src"] = cols[T.F_SRC] & np.uint64(0xFFFFFFFF)
        out["dst"] = cols[T.F_DST] & np.uint64(0xFFFFFFFF)
        out["proto"] = cols.get(T.F_PROTO, zeros) & np.uint64(0xFF)
        out["flags"] = cols.get(T.F_FLAGS, zeros) & np.uint64(0xFF)
        out["sport"] = cols.get(T.F_SPORT, zeros) & np.uint64(0xFFFF)
        dport = cols.get(T.F_DPORT, zeros) & np.uint64(0xFFFF)
        icmp = cols.get(T.F_ICMP_TYPE, cols.get(T.F_IPFIX_ICMP_TYPE_CODE))
        if icmp is not None:
            dport = np.where(out["proto"] == ICMP, icmp & np.uint64(0xFFFF), dport)
        out["dport"] = dport
        pk = cols.get(T.F_PKTS, cols.get(T.F_TOTAL_PKTS, cols.get(T.F_OUT_PKTS, zeros)))
        by = cols.get(T.F_BYTES, cols.get(T.F_TOTAL_BYTES, cols.get(T.F_OUT_BYTES, zeros)))
        rate = np.full(n, st.sampling or self.default_sampling, dtype=np.uint64)
        for fid in (T.F_SAMPLING_INTERVAL, T.F_SAMPLER_RANDOM, T.F_PKT_INTERVAL):
            if fid in cols:
                rate = np.where(cols[fid] > 0, cols[fid], rate)
                break
        else:
            sid = cols.get(T.F_SAMPLER_ID, cols.get(T.F_SELECTOR_ID))
            if sid is not None and st.sampler_rates:
                lut = st.sampler_rates
                rate = np.array([lut.get(int(s), int(r)) for s, r in zip(sid, rate, strict=True)], dtype=np.uint64)
        rate = np.clip(rate, 1, 1 << 24)
        out["packets"] = pk * rate
        out["bytes"] = by * rate
        out["sampling"] = rate
        out["exporter"] = exporter
        up = np.broadcast_to(np.asarray(hdr[0], dtype=np.int64), (n,))
        secs = np.broadcast_to(np.asarray(hdr[1], dtype=np.float64), (n,))
        if T.F_START_MS in cols:
            out["ts"] = cols[T.F_START_MS] / 1000.0
            out["te"] = cols.get(T.F_END_MS, cols[T.F_START_MS]) / 1000.0
        elif T.F_START_S in cols:
            out["ts"] = cols[T.F_START_S].astype(np.float64)
            out["te"] = cols.get(T.F_END_S, cols[T.F_START_S]).astype(np.float64)
        elif T.F_FIRST in cols:
            first, last = cols[T.F_FIRST], cols.get(T.F_LAST, cols[T.F_FIRST])
            if st.sysinit_ms:  # IPFIX: relative to systemInitTimeMilliseconds
                alt_ts = (st.sysinit_ms + first.astype(np.float64)) / 1000.0
                alt_te = (st.sysinit_ms + last.astype(np.float64)) / 1000.0
            else:
                alt_ts = alt_te = secs
            v9 = up != 0  # v9: relative to the header's uptime
            out["ts"] = np.where(v9, _uptime_to_epoch(first, up, secs), alt_ts)
            out["te"] = np.where(v9, _uptime_to_epoch(last, up, secs), alt_te)
        else:
            out["ts"] = out["te"] = secs
        bad = out["te"] < out["ts"]
        if bad.any():
            out["te"][bad] = out["ts"][bad]
        return out
