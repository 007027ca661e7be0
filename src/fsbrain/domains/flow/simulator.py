"""Traffic simulator: sampled NetFlow records of a protected /24 with diurnal load, flash crowds and attacks.

The protected network (``198.51.100.0/24`` by default) hosts web servers (TCP 443/80 plus some QUIC),
a DNS server, mail and SSH hosts. Normal load per host follows a day curve (quiet at night, peak mid
afternoon) with Poisson noise; a small share of TCP flows are SYN-only (failed connections), as in real
traffic. Records are 1:``sampling`` packet-sampled flows, packets and bytes already scaled.

Flash crowds multiply a web server's legitimate traffic (complete TCP sessions from many new clients)
by 5–10× for minutes. Attacks — SYN, UDP and ICMP floods, reflection/amplification from each of the
classic reflector ports, carpet bombing across the /24, and a low-rate UDP flood only a learned baseline
can see — come with ground truth (type, label, target, start, end, rate) to score a detector with
:func:`evaluate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fsbrain.domains.flow.records import (
    ACK,
    FIN,
    ICMP,
    PSH,
    SYN,
    TCP,
    UDP,
    concat,
    int_to_ip,
    ip_to_int,
    make_records,
)

DAY = 86400.0
LABELS = {"syn_flood": "ddos_syn_flood", "udp_flood": "ddos_udp_flood", "icmp_flood": "ddos_icmp_flood",
          "amplification": "ddos_amplification", "carpet_bombing": "ddos_carpet_bombing"}
AMP_SIZES = {19: 1000, 53: 1400, 123: 468, 389: 1300, 1900: 330, 11211: 1400}


@dataclass(slots=True, kw_only=True)
class Event:
    """One attack or flash crowd (ground truth).

    Args:
        type: ``syn_flood``, ``udp_flood``, ``icmp_flood``, ``amplification``, ``carpet_bombing`` or
            ``flash_crowd``.
        target: host address or prefix.
        start, end: epoch seconds.
        pps: attack packets/s (flash crowd: the multiplier of normal load).
        sources: attacking (or crowd) source addresses.
        port: reflector source port (amplification) or destination port (SYN flood).
    """

    type: str
    target: str
    start: float
    end: float
    pps: float
    sources: int = 1000
    port: int = 0

    @property
    def label(self) -> str | None:
        return LABELS.get(self.type)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


@dataclass(slots=True, kw_only=True)
class Scenario:
    """What to simulate. ``default_scenario`` builds the one used in the docs and tests."""

    start: float
    hours: float
    network: str = "198.51.100.0/24"
    sampling: int = 100
    seed: int = 7
    events: list[Event] = field(default_factory=list)


def _diurnal(t: np.ndarray) -> np.ndarray:
    hour = (t % DAY) / 3600.0
    return 0.2 + 0.8 * np.exp(-(((hour - 14.5 + 12) % 24 - 12) ** 2) / (2 * 4.0**2))


def _hosts(net: int) -> list[tuple[int, str, float]]:
    """(address, role, peak pps)."""
    rng = np.random.default_rng(3)
    out = []
    for i in range(1, 41):
        role = "dns" if i in (2, 3) else "mail" if i == 4 else "ssh" if i in (5, 6) else "web"
        peak = float(rng.lognormal(np.log(3000 if role == "web" else 800), 0.6))
        out.append((net + i, role, peak))
    return out


def _flows(rng: np.random.Generator, t: np.ndarray, dst: int, role: str, sampling: int,
           src_pool: tuple[int, int]) -> np.ndarray:
    """Normal sampled flows towards one host, one per element of ``t``."""
    n = len(t)
    r = make_records(n)
    r["ts"] = t
    r["te"] = t + rng.exponential(0.4, n).clip(0, 1.5)
    r["dst"] = dst
    r["src"] = rng.integers(src_pool[0], src_pool[1], n, dtype=np.uint32)
    r["sport"] = rng.integers(1024, 65535, n)
    k = 1 + rng.poisson(4, n)
    size = rng.integers(60, 1400, n)
    u = rng.random(n)
    if role == "dns":
        r["proto"], r["dport"], k, size = UDP, 53, np.ones(n, dtype=np.int64), rng.integers(60, 120, n)
        r["proto"][u < 0.1] = TCP
    else:
        r["proto"] = TCP
        r["dport"] = {"web": 443, "mail": 25, "ssh": 22}[role]
        r["flags"] = FIN | SYN | ACK | PSH
        syn_only = u < 0.02
        r["flags"][syn_only], k[syn_only], size[syn_only] = SYN, 1, 60
        if role == "web":
            quic = (u >= 0.02) & (u < 0.12)
            r["proto"][quic], r["flags"][quic] = UDP, 0
    icmp = rng.random(n) < 0.005
    r["proto"][icmp], r["flags"][icmp], r["sport"][icmp], r["dport"][icmp], k[icmp] = ICMP, 0, 0, 8, 1
    r["packets"] = k * sampling
    r["bytes"] = k * size * sampling
    r["sampling"] = sampling
    return r


def _poisson_times(rng: np.random.Generator, t0: float, seconds: int, rate: np.ndarray) -> np.ndarray:
    counts = rng.poisson(rate)
    return np.repeat(t0 + np.arange(seconds, dtype=np.float64), counts) + rng.random(int(counts.sum()))


def _attack(rng: np.random.Generator, ev: Event, net: int, sampling: int) -> np.ndarray:
    secs = int(ev.end - ev.start)
    sampled = ev.pps / sampling
    if ev.type == "carpet_bombing":
        dsts = net + np.arange(256, dtype=np.uint32)
    else:
        dsts = np.array([ip_to_int(ev.target)], dtype=np.uint32)
    spoofed = ev.type == "syn_flood"
    recs_per_s = min(sampled, ev.sources * len(dsts)) if not spoofed else sampled
    t = _poisson_times(rng, ev.start, secs, np.full(secs, recs_per_s))
    n = len(t)
    r = make_records(n)
    r["ts"] = t
    r["te"] = t + (rng.random(n) * 0.8 if not spoofed else 0.0)
    r["dst"] = dsts[rng.integers(0, len(dsts), n)]
    pool = rng.integers(0x0B000000, 0xDF000000, max(ev.sources, 1), dtype=np.uint32)
    r["src"] = rng.integers(0x0B000000, 0xDF000000, n, dtype=np.uint32) if spoofed else pool[rng.integers(0, len(pool), n)]
    k = 1 + rng.poisson(max(sampled / max(recs_per_s, 1e-9) - 1.0, 0.0), n)
    if ev.type == "syn_flood":
        r["proto"], r["flags"], r["dport"], size = TCP, SYN, ev.port or 443, 60
        r["sport"] = rng.integers(1024, 65535, n)
    elif ev.type == "icmp_flood":
        r["proto"], r["dport"], size = ICMP, 8, 84
    elif ev.type == "udp_flood":
        r["proto"], size = UDP, 1200
        r["sport"], r["dport"] = rng.integers(1024, 65535, n), rng.integers(1, 65535, n)
    else:  # amplification and carpet bombing by reflection
        r["proto"], r["sport"], size = UDP, ev.port, AMP_SIZES.get(ev.port, 1200)
        r["dport"] = rng.integers(1024, 65535, n)
    r["packets"] = k * sampling
    r["bytes"] = k * size * sampling
    r["sampling"] = sampling
    return r


def simulate(sc: Scenario) -> tuple[np.ndarray, list[Event]]:
    """Generate the scenario's records (sorted by start time) and its ground truth."""
    rng = np.random.default_rng(sc.seed)
    net = ip_to_int(sc.network.split("/")[0])
    secs = int(sc.hours * 3600)
    t = sc.start + np.arange(secs, dtype=np.float64)
    parts = []
    for dst, role, peak in _hosts(net):
        load = peak * _diurnal(t)
        for ev in sc.events:
            if ev.type == "flash_crowd" and ip_to_int(ev.target) == dst:
                ramp = np.clip(np.minimum(t - ev.start, ev.end - t) / 30.0, 0, 1)
                load = load * (1 + (ev.pps - 1) * ramp)
        recs_per_s = load / sc.sampling / 5.0  # about five sampled packets per record
        parts.append(_flows(rng, _poisson_times(rng, sc.start, secs, recs_per_s), dst, role, sc.sampling,
                            (0x20000000, 0x20000000 + 200_000)))
    for ev in sc.events:
        if ev.type == "flash_crowd":
            continue
        parts.append(_attack(rng, ev, net, sc.sampling))
    recs = concat(parts)
    recs = recs[np.argsort(recs["ts"], kind="stable")]
    return recs, list(sc.events)


def default_scenario(*, start: float = 1793577600.0, seed: int = 7, train_hours: float = 1.0,
                     gap: float = 600.0, duration: float = 90.0) -> Scenario:
    """Training time (with a flash crowd), then every attack type and more flash crowds, ``gap`` apart.

    ``start`` defaults to 2026-11-02 00:00 UTC plus the training time lands in the morning ramp.
    """
    base = ".".join(["198.51.100"])
    t = start + train_hours * 3600
    ev: list[Event] = [Event(type="flash_crowd", target=f"{base}.9", start=start + 1200, end=start + 1500, pps=8)]
    plan = [("syn_flood", f"{base}.10", 120_000, 5000, 443), ("udp_flood", f"{base}.11", 100_000, 300, 0),
            ("icmp_flood", f"{base}.12", 40_000, 100, 0), ("flash_crowd", f"{base}.10", 8, 20_000, 0)]
    plan += [("amplification", f"{base}.{13 + i}", 60_000, 2000, p) for i, p in enumerate((123, 53, 1900, 11211, 389, 19))]
    plan += [("flash_crowd", f"{base}.21", 10, 20_000, 0), ("carpet_bombing", f"{base}.0/24", 300_000, 3000, 53),
             ("udp_flood", f"{base}.22", 8_000, 50, 0)]
    for kind, target, pps, sources, port in plan:
        t += gap
        end = t + (300 if kind == "flash_crowd" else duration)
        ev.append(Event(type=kind, target=target, start=t, end=end, pps=pps, sources=sources, port=port))
    hours = (t + gap - start) / 3600.0
    return Scenario(start=start, hours=hours, seed=seed, events=ev)


def evaluate(alerts: list[Any], events: list[Event], window: float) -> dict[str, Any]:
    """Score alerts against ground truth.

    An attack is *detected* when an alert with its label overlaps it on its target (host alerts match
    host targets; carpet bombing matches subnet alerts); the delay is counted in windows from the window
    holding the onset to the first alerting window. Any other alert is a false alert; alerts touching a
    flash crowd's host during the crowd are counted apart.
    """
    used: set[int] = set()
    rows = []
    for ev in events:
        if ev.label is None:
            continue
        best = None
        for i, a in enumerate(alerts):
            d = a if isinstance(a, dict) else a.to_dict()
            if d["entity"] not in (ev.target, f"{ev.target}/32") or d["end"] is None or d["end"] < ev.start \
                    or d["start"] > ev.end:
                continue
            used.add(i)
            if best is None or d["start"] < best["start"]:
                best = d
        onset_w = int(np.floor(ev.start / window))
        row = {"type": ev.type, "target": ev.target, "port": ev.port, "pps": ev.pps, "detected": best is not None,
               "label": best["labels"][0] if best else None, "correct": bool(best and best["labels"][0] == ev.label),
               "delay_windows": int(round(best["start"] / window)) - onset_w + 1 if best else None,
               "peak_pps": best["details"]["peak_pps"] if best else None,
               "confidence": best["details"]["confidence"] if best else None}
        rows.append(row)
    crowd_alerts = 0
    false_alerts = []
    for i, a in enumerate(alerts):
        if i in used:
            continue
        d = a if isinstance(a, dict) else a.to_dict()
        on_crowd = any(ev.type == "flash_crowd" and d["entity"] == f"{ev.target}/32" and d["start"] <= ev.end
                       and (d["end"] or d["start"]) >= ev.start for ev in events)
        crowd_alerts += on_crowd
        false_alerts.append({"entity": d["entity"], "labels": d["labels"], "start": d["start"]})
    return {"attacks": rows, "detected": sum(r["detected"] for r in rows), "total": len(rows),
            "correct": sum(r["correct"] for r in rows),
            "within_two_windows": sum(bool(r["detected"] and r["delay_windows"] <= 2) for r in rows),
            "false_alerts": false_alerts, "flash_crowd_alerts": crowd_alerts,
            "flash_crowds": sum(ev.type == "flash_crowd" for ev in events), "window": window}


def truth_json(events: list[Event]) -> list[dict[str, Any]]:
    """Ground truth as JSON-friendly dicts."""
    return [e.to_dict() for e in events]


__all__ = ["Event", "Scenario", "default_scenario", "evaluate", "int_to_ip", "simulate", "truth_json"]
