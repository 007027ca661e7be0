"""Volumetric DDoS detection over flow records: per destination host and subnet, per window.

Each measurement window, for every protected destination host and subnet, the detector computes
packets/s, bits/s, flows/s, distinct and new sources, source entropy, and the rate of four attack
classes — TCP SYN-without-ACK, UDP, ICMP, and UDP from reflector ports. A class *hits* when

* its share of the entity's traffic is at least ``min_share`` (a flash crowd raises legitimate,
  established TCP; a flood changes the mix), and
* its rate exceeds a static threshold, or — once the entity's time-of-day baseline is trusted — the
  learned threshold ``max(floor, ratio × mean + sigma × std)``.

Amplification hides the plain UDP hit of the same entity; a subnet hit spread over at least
``carpet_min_targets`` hosts, none with more than ``carpet_max_top_share``, is carpet bombing and absorbs
the per-host hits of its class. Consecutive hits form one attack, closed after ``end_after_windows`` quiet
windows and reported as an :class:`~fsbrain.core.model.Alert`. Windows that raised nothing teach the
baselines. Everything per window is vectorised (see :mod:`fsbrain.domains.flow.aggregate`).

With a :class:`~fsbrain.state.StateBackend` (memory or Redis), per-host class packet counts go through
shared windowed ``sum`` features, so several collectors (one per router) add into the same counts.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import numpy as np

from fsbrain.core.model import Alert
from fsbrain.domains.flow.aggregate import (
    CLS_BIT,
    LevelAgg,
    aggregate,
    expand,
    rollup,
    source_stats,
    spread,
    top_by_group,
)
from fsbrain.domains.flow.attacks import Attack
from fsbrain.domains.flow.baseline import Baseline
from fsbrain.domains.flow.config import CLASSES, LABEL_OF, DetectorConfig
from fsbrain.state.base import StateBackend, WindowOp, WindowRead, WindowSpec

MAX_BUFFER_ROWS = 2_000_000


class VolumetricDetector:
    """Streaming or batch volumetric detector.

    Args:
        config: detector settings.
        backend: optional state backend for shared per-host class counts.

    >>> from fsbrain.domains.flow.records import make_records
    >>> det = VolumetricDetector(DetectorConfig(window=1.0))
    >>> r = make_records(1)
    >>> r["ts"], r["te"], r["dst"], r["proto"], r["flags"], r["packets"], r["bytes"] = 10.2, 10.2, 9, 6, 2, 90_000, 5_400_000
    >>> _ = det.process(r)
    >>> [a.labels for a in det.finish()]
    [['ddos_syn_flood']]
    """

    def __init__(self, config: DetectorConfig | None = None, *, backend: StateBackend | None = None) -> None:
        self.config = config or DetectorConfig()
        self.backend = backend
        c = self.config
        self._amp = np.array(sorted(c.amplification_ports), dtype=np.uint16)
        self._nets = [ipaddress.IPv4Network(p, strict=False) for p in c.protected]
        self._mask = np.uint32((0xFFFFFFFF << (32 - c.subnet_prefix)) & 0xFFFFFFFF)
        kw = {"metrics": CLASSES, "slots": c.learn.slots_per_day, "memory": c.learn.memory_windows,
              "max_entities": c.learn.max_entities}
        self.baselines = {"host": Baseline(**kw), "subnet": Baseline(**kw)}
        self._buf: list[dict[str, np.ndarray]] = []
        self._buf_rows = 0
        self._watermark = np.iinfo(np.int64).min
        self._done_w = np.iinfo(np.int64).min
        self.active: dict[tuple[str, int, str], Attack] = {}
        self.closed: list[Alert] = []
        self._started: list[Alert] = []
        self.windows_evaluated = 0
        self.records = 0
        self.late_records = 0
        self.last_window: dict[str, float] = {}
        self._cand: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
        self._specs = {cl: WindowSpec(name=f"flow_host_{cl}_pkts", agg="sum", window=max(1.0, c.window),
                                      bucket=max(1.0, c.window)) for cl in CLASSES}

    # -- feeding ---------------------------------------------------------------------------------
    def process(self, recs: np.ndarray) -> list[Alert]:
        """Add records; evaluate every window older than the lateness allowance.

        Returns:
            Alerts of attacks that ended during this call.
        """
        if len(recs) == 0:
            return []
        self.records += len(recs)
        if self._nets:
            keep = np.zeros(len(recs), dtype=bool)
            for net in self._nets:
                m = np.uint32(int(net.netmask))
                keep |= (recs["dst"] & m) == np.uint32(int(net.network_address))
            recs = recs[keep]
            if len(recs) == 0:
                return []
        rows = expand(recs, self.config.window, self.config.max_flow_windows, self._amp)
        late = rows["w"] <= self._done_w
        if late.any():
            self.late_records += int(late.sum())
            rows = {k: v[~late] for k, v in rows.items()}
            if len(rows["w"]) == 0:
                return []
        self._buf.append(rows)
        self._buf_rows += len(rows["w"])
        self._watermark = max(self._watermark, int(np.floor(recs["ts"].max() / self.config.window)))
        cutoff = self._watermark - self.config.lateness_windows
        if self._buf_rows > MAX_BUFFER_ROWS:
            cutoff = self._watermark - 1
        before = len(self.closed)
        self._flush(cutoff)
        return self.closed[before:]

    def idle(self, seconds: float) -> list[Alert]:
        """No records arrived for ``seconds`` (streaming): evaluate what is buffered, and let attacks end
        as if that many empty windows had passed.

        Returns:
            Alerts of attacks that ended.
        """
        c = self.config
        extra = int(seconds / c.window)
        if not self._buf and not self.active or extra <= c.lateness_windows:
            return []
        before = len(self.closed)
        if self._buf:
            self._flush(self._watermark)
        self._close_quiet(self._watermark + extra - c.lateness_windows)
        return self.closed[before:]

    def finish(self) -> list[Alert]:
        """Evaluate everything buffered and close every open attack; returns all alerts of the run."""
        self._flush(self._watermark)
        for key in list(self.active):
            self.closed.append(self.active.pop(key).to_alert(self.config.top_n))
        return list(self.closed)

    def drain_started(self) -> list[Alert]:
        """Alerts (``end`` None) for attacks that started since the last call."""
        out, self._started = self._started, []
        return out

    def active_alerts(self) -> list[Alert]:
        """Attacks still going on, as provisional alerts."""
        return [a.to_alert(self.config.top_n, ended=False) for a in self.active.values()]

    # -- evaluation ------------------------------------------------------------------------------
    def _flush(self, cutoff: int) -> None:
        if not self._buf or cutoff <= self._done_w:
            return
        rows = {k: np.concatenate([b[k] for b in self._buf]) for k in self._buf[0]}
        now = rows["w"] <= cutoff
        rest = {k: v[~now] for k, v in rows.items()}
        self._buf = [rest] if len(rest["w"]) else []
        self._buf_rows = len(rest["w"])
        cur = {k: v[now] for k, v in rows.items()}
        if len(cur["w"]):
            self._evaluate(cur)
        self._done_w = cutoff
        self._close_quiet(cutoff)

    def _slot(self, w: np.ndarray) -> np.ndarray:
        ln = self.config.learn
        t = (w * self.config.window + ln.utc_offset_hours * 3600.0) % 86400.0
        return np.minimum((t / (86400.0 / ln.slots_per_day)).astype(np.int64), ln.slots_per_day - 1)

    def _evaluate(self, rows: dict[str, np.ndarray]) -> None:
        c = self.config
        host = aggregate(rows, rows["dst"])
        subnet, parent = rollup(host, self._mask)
        subnet.targets, subnet.top_share = spread(host, parent, len(subnet))
        self._count_backend(host)
        sub_hits = self._hits("subnet", subnet)
        host_hits = self._hits("host", host)
        carpet_sub = {cl: h[0] for cl, h in sub_hits.items()}
        udp_family = carpet_sub["udp"] | carpet_sub["amplification"]
        carpet_sub["udp"] = carpet_sub["amplification"] = udp_family
        for cl, (mask, _, _) in host_hits.items():
            mask &= ~carpet_sub[cl][parent]  # folded into the carpet-bombing alert
        self._record("subnet", subnet, sub_hits, rows, parent_of_host=parent, host=host)
        self._record("host", host, host_hits, rows)
        if c.learn.enabled:
            for level, agg, hits in (("host", host, host_hits), ("subnet", subnet, sub_hits)):
                quiet = ~np.logical_or.reduce([h[0] for h in hits.values()])
                if level == "host":
                    quiet &= ~np.logical_or.reduce([carpet_sub[cl][parent] for cl in CLASSES])
                pps = {cl: agg.cls_pkts[cl][quiet] / c.window for cl in CLASSES}
                self.baselines[level].update(agg.entity[quiet], self._slot(agg.w[quiet]), pps)
        self.windows_evaluated += len(np.unique(host.w))
        last = host.w == host.w.max()
        self.last_window = {"window_start": float(host.w.max() * c.window),
                            "pps": float(host.pkts[last].sum() / c.window),
                            "bps": float(host.bytes[last].sum() * 8 / c.window),
                            "flows_per_s": float(host.flows[last].sum() / c.window),
                            "destinations": int(last.sum())}

    def _count_backend(self, host: LevelAgg) -> None:
        """Route per-host class packet counts through the shared state backend (if any)."""
        if self.backend is None:
            return
        w = self.config.window
        for i in range(len(host)):
            ts = float(host.w[i] * w)
            ops = [WindowOp(self._specs[cl], str(int(host.entity[i])), float(host.cls_pkts[cl][i]))
                   for cl in CLASSES if host.cls_pkts[cl][i] > 0]
            if ops:
                self.backend.update(ops, ts)
        for i in range(len(host)):
            ts = float(host.w[i] * w)
            vals = self.backend.get([WindowRead(self._specs[cl], str(int(host.entity[i]))) for cl in CLASSES], ts)
            for cl, v in zip(CLASSES, vals, strict=True):
                host.cls_pkts[cl][i] = max(host.cls_pkts[cl][i], float(v or 0))

    def _hits(self, level: str, agg: LevelAgg) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per class: (hit mask, threshold used in pps, 1 where the learned threshold decided)."""
        c = self.config
        thr_cfg = c.host if level == "host" else c.subnet
        slots = self._slot(agg.w)
        denom = {"syn": agg.tcp_pkts, "amplification": agg.cls_pkts["udp"], "udp": agg.pkts, "icmp": agg.pkts}
        out = {}
        for cl in CLASSES:
            pps = agg.cls_pkts[cl] / c.window
            bps = agg.cls_bytes[cl] * 8 / c.window
            d = denom[cl]
            share = np.where(d > 0, agg.cls_pkts[cl] / np.where(d > 0, d, 1.0), 0.0)
            st = getattr(thr_cfg, cl)
            static = np.zeros(len(agg), dtype=bool)
            thr = np.full(len(agg), np.inf)
            if st.pps is not None:
                static |= pps > st.pps
                thr[:] = st.pps
            if st.bps is not None:
                static |= bps > st.bps
            ok = share >= c.min_share[cl]
            if level == "subnet":
                ok &= (agg.targets[cl] >= c.carpet_min_targets) & (agg.top_share[cl] <= c.carpet_max_top_share)
            learned = np.zeros(len(agg), dtype=bool)
            if c.learn.enabled:
                mean, std, n = self.baselines[level].stats(cl, agg.entity, slots, c.learn.min_windows)
                lthr = np.maximum(c.learn.floor_pps, c.learn.ratio * mean + c.learn.sigma * std)
                learned = self._confirm(level, cl, agg, ok & (n > 0) & (pps > lthr))
                thr = np.where(learned & ~static, lthr, thr)
            hit = ok & (static | learned)
            out[cl] = (hit, np.where(np.isfinite(thr), thr, 0.0), (learned & ~static).astype(np.int8))
        # UDP mostly from reflector ports is amplification, whichever class crossed its threshold
        amp_share = np.where(agg.cls_pkts["udp"] > 0, agg.cls_pkts["amplification"] / np.maximum(agg.cls_pkts["udp"], 1e-9), 0)
        moved = out["udp"][0] & ~out["amplification"][0] & (amp_share >= c.min_share["amplification"])
        if moved.any():
            amp = out["amplification"]
            amp[0][moved] = True
            amp[1][moved] = out["udp"][1][moved]
            amp[2][moved] = out["udp"][2][moved]
        out["udp"][0][out["amplification"][0]] = False
        return out

    def _confirm(self, level: str, cl: str, agg: LevelAgg, cand: np.ndarray) -> np.ndarray:
        """Learned-threshold candidates count only from their ``confirm_windows``-th consecutive window
        (one noisy sampled window must not raise an alert; static thresholds act at once)."""
        need = self.config.learn.confirm_windows
        state = self._cand.setdefault((level, cl), {})
        if need <= 1 or not cand.any():
            if need > 1:
                state.clear()
            return cand
        idx = np.nonzero(cand)[0]
        out = np.zeros(len(cand), dtype=bool)
        new_state: dict[int, tuple[int, int]] = {}
        for i in idx[np.lexsort((agg.w[idx], agg.entity[idx]))]:
            e, w = int(agg.entity[i]), int(agg.w[i])
            prev = new_state.get(e) or state.get(e)
            run = prev[1] + 1 if prev is not None and prev[0] == w - 1 else 1
            new_state[e] = (w, run)
            out[i] = run >= need
        state.clear()
        state.update(new_state)
        return out

    def _record(self, level: str, agg: LevelAgg, hits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                rows: dict[str, np.ndarray], parent_of_host: np.ndarray | None = None,
                host: LevelAgg | None = None) -> None:
        c = self.config
        any_hit = np.logical_or.reduce([h[0] for h in hits.values()])
        if not any_hit.any():
            return
        row_group = agg.inverse if level == "host" else parent_of_host[host.inverse]  # type: ignore[index]
        prefix = 32 if level == "host" else c.subnet_prefix
        for cl in CLASSES:
            mask, thr, learned = hits[cl]
            gs = np.nonzero(mask)[0]
            if len(gs) == 0:
                continue
            # this class's rows of the hit groups, grouped once; evidence for every group in one sort
            ridx = np.nonzero(mask[row_group] & ((rows["cls"] & CLS_BIT[cl]) != 0))[0]
            rg = row_group[ridx]
            order = np.argsort(rg, kind="stable")
            ridx, rg = ridx[order], rg[order]
            lo, hi = np.searchsorted(rg, gs), np.searchsorted(rg, gs, "right")
            pk = rows["pkts"][ridx]
            tops = {name: top_by_group(rg, rows[name][ridx], pk, 2 * c.top_n) for name in ("src", "sport", "dport", "dst")}
            label = LABEL_OF[cl] if level == "host" else "ddos_carpet_bombing"
            mean, _, _ = self.baselines[level].stats(cl, agg.entity[gs], self._slot(agg.w[gs]), c.learn.min_windows)
            for j, g in enumerate(gs.tolist()):
                ent, w = int(agg.entity[g]), int(agg.w[g])
                key = (level, ent, label)
                att = self.active.get(key)
                if att is None:
                    att = self.active[key] = Attack(level=level, entity=ent, prefix=prefix, label=label, cls=cl,
                                                    window=c.window, start_w=w, min_share=c.min_share[cl])
                    self._started.append(att.to_alert(c.top_n, ended=False))
                idx = ridx[lo[j] : hi[j]]
                prev = att.prev_sources if att.windows and att.last_w == w - 1 else None
                n_src, ent_bits, new_src, att.prev_sources = source_stats(rows["src"][idx], rows["pkts"][idx], prev)
                pps = agg.cls_pkts[cl][g] / c.window
                d = {"syn": agg.tcp_pkts[g], "amplification": agg.cls_pkts["udp"][g]}.get(cl, agg.pkts[g])
                att.hit(w, pps, agg.cls_bytes[cl][g] * 8 / c.window, float(thr[g]),
                        "learned" if learned[g] else "static", agg.cls_pkts[cl][g] / d if d else 0.0,
                        float(n_src), ent_bits, float(mean[j]),
                        float(agg.targets[cl][g]) if level == "subnet" else 1.0, new_sources=new_src)
                att.add_evidence(*(tops[name].get(g, {}) for name in ("src", "sport", "dport", "dst")))

    def _close_quiet(self, upto: int) -> None:
        limit = upto - self.config.end_after_windows
        for key in [k for k, a in self.active.items() if a.last_w <= limit]:
            self.closed.append(self.active.pop(key).to_alert(self.config.top_n))
        if len(self.closed) > 10_000:
            del self.closed[: len(self.closed) - 10_000]

    def save_baselines(self, path: str) -> None:
        """Write the learned baselines (both levels) as versioned JSON, to start the next run with them."""
        import json

        data = {"window": self.config.window, "subnet_prefix": self.config.subnet_prefix,
                **{level: b.to_dict() for level, b in self.baselines.items()}}
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh)

    def load_baselines(self, path: str) -> None:
        """Load baselines written by :meth:`save_baselines`.

        Raises:
            InputError: unreadable file, or baselines learned with another window, subnet prefix,
                slot count or format version.
        """
        import json

        from fsbrain.core.errors import InputError

        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            if data.get("window") != self.config.window or data.get("subnet_prefix") != self.config.subnet_prefix:
                raise ValueError("learned with another window or subnet prefix")
            for level, b in self.baselines.items():
                b.load_dict(data[level])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: cannot load flow baselines: {exc}") from exc

    def stats(self) -> dict[str, Any]:
        """Counters for status screens and the API."""
        return {"records": self.records, "late_records": self.late_records,
                "windows_evaluated": self.windows_evaluated, "active_attacks": len(self.active),
                "alerts": len(self.closed), "buffered_rows": self._buf_rows,
                "baseline_hosts": len(self.baselines["host"]), "baseline_subnets": len(self.baselines["subnet"]),
                "last_window": self.last_window}


def detect(batches: Any, config: DetectorConfig | None = None) -> list[Alert]:
    """Run a fresh detector over an iterable of record batches (time-ordered) and return every alert."""
    det = VolumetricDetector(config)
    for b in batches:
        det.process(b)
    return det.finish()
