"""Vectorised window aggregation: flow records to per-(window, entity) traffic metrics.

A record's packets and bytes are spread evenly over the measurement windows its ``[ts, te]`` covers
(capped), so a 60-second flow exported at once does not look like a one-second burst; its flow count goes
to the window where it started. Then, for each level (destination host, destination subnet, overall),
one ``numpy.unique`` over ``window << 32 | entity`` and a few ``bincount`` calls give every metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fsbrain.domains.flow.config import CLASSES
from fsbrain.domains.flow.records import ACK, ICMP, SYN, TCP, UDP

ROW_FIELDS = ("w", "dst", "src", "sport", "dport", "proto", "flags", "pkts", "bytes", "flows", "cls")
# class bit per expanded row
CLS_BIT = {"syn": 1, "udp": 2, "icmp": 4, "amplification": 8, "tcp": 16}


def expand(recs: np.ndarray, window: float, max_span: int, amp_ports: np.ndarray) -> dict[str, np.ndarray]:
    """Records to window rows: one row per (record, window it covers).

    Returns:
        Column arrays named :data:`ROW_FIELDS`; ``cls`` holds the class bits of :data:`CLS_BIT`.
    """
    w0 = np.floor(recs["ts"] / window).astype(np.int64)
    w1 = np.floor(recs["te"] / window).astype(np.int64)
    span = np.clip(w1 - w0 + 1, 1, max_span)
    proto, flags = recs["proto"], recs["flags"]
    tcp = proto == TCP
    udp = proto == UDP
    cls = (tcp & ((flags & SYN) != 0) & ((flags & ACK) == 0)).astype(np.uint8) * CLS_BIT["syn"]
    cls |= udp.astype(np.uint8) * CLS_BIT["udp"]
    cls |= (proto == ICMP).astype(np.uint8) * CLS_BIT["icmp"]
    cls |= (udp & np.isin(recs["sport"], amp_ports)).astype(np.uint8) * CLS_BIT["amplification"]
    cls |= tcp.astype(np.uint8) * CLS_BIT["tcp"]
    pk = recs["packets"].astype(np.float64)
    by = recs["bytes"].astype(np.float64)
    if (span == 1).all():
        return {"w": w0, "dst": recs["dst"], "src": recs["src"], "sport": recs["sport"], "dport": recs["dport"],
                "proto": proto, "flags": flags, "pkts": pk, "bytes": by, "flows": np.ones(len(recs)), "cls": cls}
    idx = np.repeat(np.arange(len(recs)), span)
    first = np.zeros(len(idx), dtype=bool)
    starts = np.concatenate(([0], np.cumsum(span)[:-1]))
    first[starts] = True
    offs = np.arange(len(idx)) - np.repeat(starts, span)
    share = 1.0 / span[idx]
    return {"w": w0[idx] + offs, "dst": recs["dst"][idx], "src": recs["src"][idx], "sport": recs["sport"][idx],
            "dport": recs["dport"][idx], "proto": proto[idx], "flags": flags[idx], "pkts": pk[idx] * share,
            "bytes": by[idx] * share, "flows": first.astype(np.float64), "cls": cls[idx]}


@dataclass(slots=True)
class LevelAgg:
    """Metrics of one level; index ``i`` is the i-th (window, entity) group.

    Attributes:
        w, entity: the group's window index and entity (host or subnet address; 0 for overall).
        inverse: for each input row, its group index (used to pull top sources of alerting groups).
        pkts, bytes, flows: totals per group (divide by the window length for rates).
        srcs: distinct source addresses; new_srcs: of which not seen in the previous window;
        entropy: Shannon entropy (bits) of the packet distribution over sources.
        cls_pkts, cls_bytes: per attack class; tcp_pkts: all TCP packets.
        targets, top_share: per class, hosts receiving a fair part of the class traffic and the largest
            single host's share (subnet and overall levels; empty for hosts).
    """

    w: np.ndarray
    entity: np.ndarray
    inverse: np.ndarray
    pkts: np.ndarray
    bytes: np.ndarray
    flows: np.ndarray
    srcs: np.ndarray
    new_srcs: np.ndarray
    entropy: np.ndarray
    tcp_pkts: np.ndarray
    cls_pkts: dict[str, np.ndarray] = field(default_factory=dict)
    cls_bytes: dict[str, np.ndarray] = field(default_factory=dict)
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    top_share: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.w)


def _group(w: np.ndarray, ent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    wmin = int(w.min())
    key = ((w - wmin).astype(np.uint64) << np.uint64(32)) | ent.astype(np.uint64)
    uniq, inv = np.unique(key, return_inverse=True)
    return (uniq >> np.uint64(32)).astype(np.int64) + wmin, (uniq & np.uint64(0xFFFFFFFF)).astype(np.uint32), inv


def _sources(inv: np.ndarray, src: np.ndarray, pkts: np.ndarray, w: np.ndarray, n: int,
             prev_pairs: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct sources, entropy and new sources per group; also the (group-entity, src) pairs of the
    last window for the next call."""
    pair = (inv.astype(np.uint64) << np.uint64(32)) | src.astype(np.uint64)
    upair, pinv = np.unique(pair, return_inverse=True)
    gid = (upair >> np.uint64(32)).astype(np.int64)
    srcs = np.bincount(gid, minlength=n).astype(np.float64)
    p = np.bincount(pinv, weights=pkts, minlength=len(upair))
    tot = np.bincount(gid, weights=p, minlength=n)
    plogp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    s = np.bincount(gid, weights=plogp, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(tot > 0, np.log2(np.where(tot > 0, tot, 1.0)) - s / np.where(tot > 0, tot, 1.0), 0.0)
    return srcs, np.maximum(ent, 0.0), gid, upair


def aggregate(rows: dict[str, np.ndarray], entity: np.ndarray, *, host_level: bool = False,
              prev: dict[str, np.ndarray] | None = None) -> LevelAgg:
    """Aggregate window rows by ``(w, entity)``.

    Args:
        rows: output of :func:`expand` (possibly filtered).
        entity: per-row entity (destination, subnet base address, or zeros).
        host_level: compute new sources against ``prev`` (the previous window's dst/src pairs).
        prev: ``{"w": int, "keys": dst<<32|src}`` carried between calls; updated in place.
    """
    w = rows["w"]
    gw, gent, inv = _group(w, entity)
    n = len(gw)
    pk, by = rows["pkts"], rows["bytes"]
    agg = LevelAgg(w=gw, entity=gent, inverse=inv,
                   pkts=np.bincount(inv, weights=pk, minlength=n), bytes=np.bincount(inv, weights=by, minlength=n),
                   flows=np.bincount(inv, weights=rows["flows"], minlength=n),
                   srcs=np.zeros(n), new_srcs=np.zeros(n), entropy=np.zeros(n), tcp_pkts=np.zeros(n))
    agg.srcs, agg.entropy, _, _ = _sources(inv, rows["src"], pk, w, n, None)
    cls = rows["cls"]
    agg.tcp_pkts = np.bincount(inv, weights=np.where(cls & 16, pk, 0.0), minlength=n)
    for c in CLASSES:
        m = (cls & CLS_BIT[c]) != 0
        agg.cls_pkts[c] = np.bincount(inv, weights=np.where(m, pk, 0.0), minlength=n)
        agg.cls_bytes[c] = np.bincount(inv, weights=np.where(m, by, 0.0), minlength=n)
    if host_level:
        agg.new_srcs = _new_sources(w, rows["dst"], rows["src"], inv, n, prev)
    return agg


def _new_sources(w: np.ndarray, dst: np.ndarray, src: np.ndarray, inv: np.ndarray, n: int,
                 prev: dict[str, np.ndarray] | None) -> np.ndarray:
    key = (dst.astype(np.uint64) << np.uint64(32)) | src.astype(np.uint64)
    order = np.lexsort((w, key))
    k, ww, g = key[order], w[order], inv[order]
    first = np.ones(len(k), dtype=bool)
    first[1:] = (k[1:] != k[:-1]) | (ww[1:] != ww[:-1])
    k, ww, g = k[first], ww[first], g[first]  # unique (pair, window), sorted by pair then window
    seen_before = np.zeros(len(k), dtype=bool)
    seen_before[1:] = (k[1:] == k[:-1]) & (ww[1:] == ww[:-1] + 1)
    if prev is not None and len(prev.get("keys", ())):
        at_start = ww == int(prev["w"]) + 1
        seen_before |= at_start & np.isin(k, prev["keys"])
    if prev is not None and len(ww):
        last = int(ww.max())
        prev["w"] = np.int64(last)
        prev["keys"] = k[ww == last]
    return np.bincount(g[~seen_before], minlength=n).astype(np.float64)


def spread(host: LevelAgg, parent_of_host: np.ndarray, n_parent: int) -> tuple[dict[str, np.ndarray],
                                                                              dict[str, np.ndarray]]:
    """Per class, for each parent group (subnet-window): hosts receiving at least a quarter of the mean
    host's class traffic, and the largest host's share of the parent's class traffic."""
    targets, top = {}, {}
    for c in CLASSES:
        hp = host.cls_pkts[c]
        tot = np.bincount(parent_of_host, weights=hp, minlength=n_parent)
        cnt = np.bincount(parent_of_host, weights=(hp > 0).astype(np.float64), minlength=n_parent)
        mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), 0.0)
        fair = hp >= 0.25 * mean[parent_of_host]
        targets[c] = np.bincount(parent_of_host, weights=(fair & (hp > 0)).astype(np.float64), minlength=n_parent)
        mx = np.zeros(n_parent)
        np.maximum.at(mx, parent_of_host, hp)
        top[c] = np.where(tot > 0, mx / np.where(tot > 0, tot, 1.0), 0.0)
    return targets, top
