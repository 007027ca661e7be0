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


def source_stats(src: np.ndarray, pkts: np.ndarray,
                 prev_src: np.ndarray | None) -> tuple[int, float, int, np.ndarray]:
    """Distinct sources, Shannon entropy (bits) of packets over sources, sources absent from ``prev_src``
    (the previous window), and the distinct sources themselves, for one entity-window's rows."""
    if len(src) == 0:
        return 0, 0.0, 0, np.zeros(0, dtype=np.uint32)
    u, inv = np.unique(src, return_inverse=True)
    p = np.bincount(inv, weights=pkts)
    tot = p.sum()
    ent = 0.0
    if tot > 0:
        q = p[p > 0] / tot
        ent = float(max(0.0, -(q * np.log2(q)).sum()))
    new = len(u) if prev_src is None else int((~np.isin(u, prev_src, assume_unique=True)).sum())
    return len(u), ent, new, u


def aggregate(rows: dict[str, np.ndarray], entity: np.ndarray) -> LevelAgg:
    """Aggregate window rows by ``(w, entity)``: one sort, then a ``bincount`` per metric.

    Source statistics (distinct, new, entropy) are left at zero here and computed by the detector for
    alerting groups only (:func:`source_stats`): they explain alerts, they do not decide them.

    Args:
        rows: output of :func:`expand` (possibly filtered).
        entity: per-row entity (destination host address).
    """
    gw, gent, inv = _group(rows["w"], entity)
    n = len(gw)
    pk, by = rows["pkts"], rows["bytes"]
    agg = LevelAgg(w=gw, entity=gent, inverse=inv,
                   pkts=np.bincount(inv, weights=pk, minlength=n), bytes=np.bincount(inv, weights=by, minlength=n),
                   flows=np.bincount(inv, weights=rows["flows"], minlength=n),
                   srcs=np.zeros(n), new_srcs=np.zeros(n), entropy=np.zeros(n), tcp_pkts=np.zeros(n))
    cls = rows["cls"]
    for c, bit in (("tcp", 16), *((c, CLS_BIT[c]) for c in CLASSES)):
        m = (cls & bit) != 0
        cp = np.bincount(inv[m], weights=pk[m], minlength=n)
        if c == "tcp":
            agg.tcp_pkts = cp
            continue
        agg.cls_pkts[c] = cp
        agg.cls_bytes[c] = np.bincount(inv[m], weights=by[m], minlength=n)
    return agg


def rollup(host: LevelAgg, mask: np.uint32) -> tuple[LevelAgg, np.ndarray]:
    """Subnet-level metrics summed from host-level groups (no pass over the rows).

    Returns:
        The subnet aggregate and, for each host group, the index of its subnet group; the subnet's
        ``inverse`` maps host groups (not rows) to subnet groups.
    """
    sw, sent, parent = _group(host.w, host.entity & mask)
    n = len(sw)

    def s(x: np.ndarray) -> np.ndarray:
        return np.bincount(parent, weights=x, minlength=n)

    agg = LevelAgg(w=sw, entity=sent, inverse=parent, pkts=s(host.pkts), bytes=s(host.bytes), flows=s(host.flows),
                   srcs=np.zeros(n), new_srcs=np.zeros(n), entropy=np.zeros(n), tcp_pkts=s(host.tcp_pkts))
    for c in CLASSES:
        agg.cls_pkts[c] = s(host.cls_pkts[c])
        agg.cls_bytes[c] = s(host.cls_bytes[c])
    return agg, parent


def top_by_group(group: np.ndarray, keys: np.ndarray, weights: np.ndarray, n: int) -> dict[int, dict[int, float]]:
    """For each group id, its ``n`` heaviest keys with their summed weights (one sort for all groups)."""
    if len(group) == 0:
        return {}
    k = (group.astype(np.uint64) << np.uint64(32)) | keys.astype(np.uint64)
    u, inv = np.unique(k, return_inverse=True)
    tot = np.bincount(inv, weights=weights)
    ug = (u >> np.uint64(32)).astype(np.int64)
    order = np.lexsort((-tot, ug))
    ug_o = ug[order]
    rank = np.arange(len(order)) - np.searchsorted(ug_o, ug_o, "left")
    keep = order[rank < n]
    out: dict[int, dict[int, float]] = {}
    for g, key, wt in zip(ug[keep].tolist(), (u[keep] & np.uint64(0xFFFFFFFF)).tolist(), tot[keep].tolist(),
                          strict=True):
        out.setdefault(g, {})[key] = wt
    return out


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
