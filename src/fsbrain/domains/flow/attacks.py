"""An attack in progress and its conversion to an fsbrain :class:`~fsbrain.core.model.Alert`."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fsbrain.core.labels import get_label
from fsbrain.core.model import Alert, Reason
from fsbrain.domains.flow.mitigation import mitigations
from fsbrain.domains.flow.records import int_to_ip

RULE_IDS = {"ddos_syn_flood": "FLOW-SYN", "ddos_udp_flood": "FLOW-UDP", "ddos_icmp_flood": "FLOW-ICMP",
            "ddos_amplification": "FLOW-AMP", "ddos_carpet_bombing": "FLOW-CARPET"}
SHARE_FEATURE = {"syn": "syn_share_of_tcp", "udp": "udp_share", "icmp": "icmp_share",
                 "amplification": "reflector_share_of_udp"}
PROTO_NAME = {"syn": "tcp", "udp": "udp", "icmp": "icmp", "amplification": "udp"}
_KEEP = 200


def _bump(counter: Counter[Any], items: dict[Any, float]) -> None:
    counter.update(items)
    if len(counter) > _KEEP:
        for k, _ in counter.most_common()[_KEEP:]:
            del counter[k]


@dataclass(slots=True)
class Attack:
    """Running state of one attack on one entity.

    Args:
        level: ``host`` or ``subnet``.
        entity: destination address or subnet base (int).
        prefix: prefix length of ``entity``.
        label: risk label; cls: the underlying flood class (``syn``, ``udp``, ``icmp``, ``amplification``).
        window: measurement window (seconds); start_w: first window with a hit.
    """

    level: str
    entity: int
    prefix: int
    label: str
    cls: str
    window: float
    start_w: int
    last_w: int = 0
    windows: int = 0
    peak_pps: float = 0.0
    peak_bps: float = 0.0
    packets: float = 0.0
    bytes: float = 0.0
    threshold_pps: float = 0.0
    threshold_kind: str = "static"
    share: float = 0.0
    min_share: float = 0.5
    max_ratio: float = 0.0
    srcs: float = 0.0
    entropy: float = 0.0
    normal_pps: float = 0.0
    targets: float = 0.0
    new_sources: float = 0.0
    prev_sources: Any = None
    top_sources: Counter[int] = field(default_factory=Counter)
    src_ports: Counter[int] = field(default_factory=Counter)
    dst_ports: Counter[int] = field(default_factory=Counter)
    top_targets: Counter[int] = field(default_factory=Counter)

    def hit(self, w: int, pps: float, bps: float, threshold: float, kind: str, share: float, srcs: float,
            entropy: float, normal: float, targets: float, new_sources: float = 0.0) -> None:
        """Record one window in which the attack's class was over threshold."""
        if self.windows == 0:
            self.threshold_pps, self.threshold_kind, self.normal_pps = threshold, kind, normal
        self.last_w = max(self.last_w, w)
        self.windows += 1
        self.packets += pps * self.window
        self.bytes += bps * self.window / 8
        if pps > self.peak_pps:
            self.peak_pps, self.share = pps, share
        self.peak_bps = max(self.peak_bps, bps)
        self.max_ratio = max(self.max_ratio, pps / threshold if threshold else 1.0)
        self.srcs = max(self.srcs, srcs)
        self.entropy = max(self.entropy, entropy)
        self.targets = max(self.targets, targets)
        if self.windows > 1:  # the first window has no previous attack window to compare with
            self.new_sources = max(self.new_sources, new_sources / self.window)

    def add_evidence(self, sources: dict[int, float], sports: dict[int, float], dports: dict[int, float],
                     targets: dict[int, float]) -> None:
        """Merge one window's per-source / per-port / per-target packet counts."""
        _bump(self.top_sources, sources)
        _bump(self.src_ports, sports)
        _bump(self.dst_ports, dports)
        _bump(self.top_targets, targets)

    @property
    def target(self) -> str:
        return f"{int_to_ip(self.entity)}/{self.prefix}"

    def confidence(self) -> float:
        """0.5 at threshold; + up to 0.3 as the peak reaches 10× threshold; + up to 0.2 as the class's
        share of the traffic goes from its minimum to 100 %."""
        over = min(1.0, math.log10(max(self.max_ratio, 1.0)))
        dom = min(1.0, max(0.0, (self.share - self.min_share) / max(1e-9, 1.0 - self.min_share)))
        return round(min(1.0, 0.5 + 0.3 * over + 0.2 * dom), 3)

    def to_alert(self, top_n: int = 10, *, ended: bool = True) -> Alert:
        """The attack as an alert (``end`` None while it is still going on)."""
        conf = self.confidence()
        lab = get_label(self.label)
        severity = 5 if self.peak_bps >= 1e10 or self.max_ratio >= 20 else lab.severity
        srcs = [{"ip": int_to_ip(k), "packets": int(v)} for k, v in self.top_sources.most_common(top_n)]
        sports = [{"port": int(k), "packets": int(v)} for k, v in self.src_ports.most_common(top_n)]
        dports = [{"port": int(k), "packets": int(v)} for k, v in self.dst_ports.most_common(top_n)]
        tgts = [{"ip": int_to_ip(k), "packets": int(v)} for k, v in self.top_targets.most_common(top_n)]
        amp_ports = [p["port"] for p in sports[:3]] if self.cls == "amplification" else None
        mit = mitigations(self.label, self.target, src_ports=amp_ports, dst_ports=[p["port"] for p in dports[:3]],
                          carpet_proto=PROTO_NAME[self.cls] if self.label == "ddos_carpet_bombing" else None,
                          normal_pps=self.normal_pps or None)
        feature = f"{self.cls}_pps" + ("_subnet" if self.level == "subnet" else "")
        reasons = [
            Reason(source="detector", id=RULE_IDS[self.label], label=self.label, feature=feature,
                   value=round(self.peak_pps, 1), threshold=round(self.threshold_pps, 1), weight=int(conf * 600),
                   message=f"{self.threshold_kind} threshold"),
            Reason(source="detector", id=RULE_IDS[self.label], label=self.label, feature=SHARE_FEATURE[self.cls],
                   value=round(self.share, 3), threshold=self.min_share, weight=int(conf * 200)),
            Reason(source="detector", id=RULE_IDS[self.label], label=self.label, feature="source_entropy_bits",
                   value=round(self.entropy, 2), threshold=None, weight=0,
                   message=f"{int(self.srcs)} distinct sources at most in one window"),
        ]
        if self.label == "ddos_carpet_bombing":
            reasons.append(Reason(source="detector", id="FLOW-CARPET", label=self.label, feature="targets",
                                  value=int(self.targets), threshold=None, weight=int(conf * 200)))
        what = {"ddos_amplification": f"{', '.join(_svc(p) for p in (amp_ports or []))} amplification",
                "ddos_carpet_bombing": f"carpet bombing ({self.cls} flood)"}.get(self.label, lab.en)
        start = self.start_w * self.window
        return Alert(
            source="flow.volumetric", labels=[self.label], severity=severity, score=int(conf * 1000),
            title=f"{what} against {self.target}: peak {self.peak_pps:,.0f} pps, {self.peak_bps / 1e6:,.1f} Mbit/s",
            entity_type="ip" if self.level == "host" else "subnet", entity=self.target, reasons=reasons,
            action="mitigate", start=start, end=(self.last_w + 1) * self.window if ended else None,
            details={
                "level": self.level, "class": self.cls, "confidence": conf,
                "detected_at": (self.start_w + 1) * self.window, "windows": self.windows,
                "window_seconds": self.window, "peak_pps": round(self.peak_pps, 1),
                "peak_bps": round(self.peak_bps, 1), "packets": int(self.packets), "bytes": int(self.bytes),
                "threshold_pps": round(self.threshold_pps, 1), "threshold_kind": self.threshold_kind,
                "normal_pps": round(self.normal_pps, 1), "distinct_sources": int(self.srcs),
                "source_entropy_bits": round(self.entropy, 2),
                "max_new_sources_per_s": round(self.new_sources, 1), "top_sources": srcs, "top_src_ports": sports,
                "top_dst_ports": dports, "top_targets": tgts, "targets": int(self.targets),
                "mitigation": mit,
            },
        )


def _svc(port: int) -> str:
    from fsbrain.domains.flow.config import AMPLIFICATION_PORTS

    return AMPLIFICATION_PORTS.get(port, f"UDP/{port}")
