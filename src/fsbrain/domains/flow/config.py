"""Detector configuration (YAML or dict), validated with pydantic ``extra="forbid"``.

Example (every key optional)::

    window: 1.0                 # measurement window, seconds
    protected: [203.0.113.0/24] # destinations watched (empty: every destination)
    subnet_prefix: 24
    host:
      syn:  {pps: 20000}         # static thresholds: alert above these whatever was learned
      amplification: {pps: 10000, bps: 1.0e9}
    learn: {sigma: 6, ratio: 3, floor_pps: 2000}

>>> DetectorConfig.from_dict({"window": 2, "host": {"udp": {"pps": 5000}}}).host.udp.pps
5000.0
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fsbrain.core.errors import PolicyError

CLASSES = ("syn", "udp", "icmp", "amplification")
LABEL_OF = {"syn": "ddos_syn_flood", "udp": "ddos_udp_flood", "icmp": "ddos_icmp_flood",
            "amplification": "ddos_amplification"}
AMPLIFICATION_PORTS = {19: "chargen", 53: "DNS", 123: "NTP", 389: "CLDAP", 1900: "SSDP", 11211: "memcached",
                       161: "SNMP", 3702: "WS-Discovery", 111: "portmap", 5353: "mDNS"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassThreshold(_Model):
    """Static thresholds of one attack class at one level; an alert fires when either is exceeded."""

    pps: float | None = None
    """packets/s of the class's traffic towards the entity (None: no static packet threshold)."""
    bps: float | None = None
    """bits/s of the class's traffic towards the entity (None: no static bit threshold)."""


class LevelThresholds(_Model):
    """Static thresholds per attack class for one level (host or subnet)."""

    syn: ClassThreshold = ClassThreshold(pps=20_000)
    """TCP packets in flows that carry SYN without ACK."""
    udp: ClassThreshold = ClassThreshold(pps=50_000, bps=2e9)
    """UDP packets."""
    icmp: ClassThreshold = ClassThreshold(pps=10_000, bps=2e8)
    """ICMP packets."""
    amplification: ClassThreshold = ClassThreshold(pps=20_000, bps=1e9)
    """UDP packets from a known reflector source port (see ``amplification_ports``)."""


def _subnet_defaults() -> LevelThresholds:
    return LevelThresholds(syn=ClassThreshold(pps=100_000), udp=ClassThreshold(pps=200_000, bps=8e9),
                           icmp=ClassThreshold(pps=50_000, bps=1e9),
                           amplification=ClassThreshold(pps=100_000, bps=4e9))


class LearnConfig(_Model):
    """Learned baselines: per entity, per time-of-day slot, mean and spread of each class's rate."""

    enabled: bool = True
    """Learn baselines from traffic that raised no alert."""
    slots_per_day: int = Field(24, ge=1, le=288)
    """Time-of-day slots (24: one per hour)."""
    utc_offset_hours: float = Field(0.0, ge=-14, le=14)
    """Local time offset for the time-of-day slots."""
    sigma: float = Field(6.0, gt=0)
    """Learned threshold = ``ratio`` × mean + ``sigma`` × standard deviation of the slot."""
    ratio: float = Field(3.0, ge=1)
    """See ``sigma``."""
    floor_pps: float = Field(2_000.0, ge=0)
    """Never alert on a learned threshold below this rate (tiny baselines would make noise)."""
    confirm_windows: int = Field(2, ge=1, le=10)
    """Consecutive windows over a learned threshold before it alerts (static thresholds alert at once)."""
    min_windows: int = Field(60, ge=1)
    """Windows seen in a slot (or overall) before its baseline is trusted."""
    memory_windows: int = Field(20_000, ge=10)
    """Observations remembered per slot; older ones fade (exponential forgetting)."""
    max_entities: int = Field(100_000, ge=1)
    """Hosts and subnets with a learned baseline; beyond this, static thresholds only."""


class DetectorConfig(_Model):
    """The volumetric detector's settings."""

    window: float = Field(1.0, ge=0.1, le=60)
    """Measurement window in seconds."""
    lateness_windows: int = Field(2, ge=0, le=600)
    """Windows to wait for late records before a window is evaluated (streaming)."""
    protected: list[str] = []
    """IPv4 prefixes to protect; empty means every destination seen."""
    subnet_prefix: int = Field(24, ge=8, le=31)
    """Prefix length of the subnet level (carpet bombing)."""
    host: LevelThresholds = LevelThresholds()
    """Static thresholds per destination host."""
    subnet: LevelThresholds = Field(default_factory=_subnet_defaults)
    """Static thresholds per destination subnet."""
    learn: LearnConfig = LearnConfig()
    """Learned baselines."""
    min_share: dict[str, float] = {"syn": 0.5, "udp": 0.5, "icmp": 0.5, "amplification": 0.5}
    """Share of the entity's relevant traffic the class must have (SYN: of TCP packets; amplification: of
    UDP packets; UDP and ICMP: of all packets)."""
    amplification_ports: dict[int, str] = dict(AMPLIFICATION_PORTS)
    """Reflector source ports and service names."""
    carpet_min_targets: int = Field(16, ge=2)
    """A subnet attack is carpet bombing when at least this many hosts receive the attack traffic…"""
    carpet_max_top_share: float = Field(0.5, gt=0, le=1)
    """…and no single host receives more than this share of it."""
    end_after_windows: int = Field(5, ge=1)
    """An attack ends after this many quiet windows."""
    max_flow_windows: int = Field(120, ge=1)
    """A long flow's packets are spread over at most this many windows."""
    top_n: int = Field(10, ge=1, le=100)
    """Top sources / ports / targets kept per attack."""

    @field_validator("protected")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        for p in v:
            ipaddress.IPv4Network(p, strict=False)
        return v

    @field_validator("min_share")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(CLASSES)
        if unknown:
            raise ValueError(f"unknown attack class {sorted(unknown)} (one of {CLASSES})")
        return {**{c: 0.5 for c in CLASSES}, **v}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "<config>") -> DetectorConfig:
        """Validate a mapping.

        Raises:
            PolicyError: naming every invalid key.
        """
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            problems = [{"path": ".".join(str(x) for x in e["loc"]), "message": e["msg"], "severity": "error",
                         "line": None} for e in exc.errors()]
            text = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
            raise PolicyError(f"invalid flow detector config: {text}", source=source, problems=problems) from exc

    @classmethod
    def from_yaml(cls, path: str | Path) -> DetectorConfig:
        """Load a YAML file.

        Raises:
            PolicyError: unreadable file, bad YAML or invalid settings.
        """
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyError(f"cannot read flow detector config: {exc}", source=str(path)) from exc
        if data is not None and not isinstance(data, dict):
            raise PolicyError("flow detector config must be a mapping", source=str(path))
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()
