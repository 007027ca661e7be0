"""Jails and detection thresholds for brute-force detection, as a validated YAML file.

A *jail* ties a filter to fail2ban's counting semantics: ``maxretry`` failures from one address within
``findtime`` seconds ban it for ``bantime`` seconds (``-1``: for ever); a repeat offender's ban grows by
``bantime_factor`` each time, up to ``bantime_max``. The ``detections`` section holds the thresholds of
the detections that look beyond one address (subnets, accounts, slow attacks, spraying, compromise,
recidive). Unknown keys are errors (``extra="forbid"``), so typos do not pass silently.

Example file::

    version: 1
    timezone: Asia/Shanghai
    allowlist: [10.0.0.0/8, "2001:db8::/32"]
    jails:
      - name: sshd
        filter: sshd[mode=aggressive]
        findtime: 600
        maxretry: 5
        bantime: 3600
    detections:
      spraying: {window: 3600, min_accounts: 8}

>>> cfg = JailsConfig.from_dict({"jails": [{"name": "ssh", "filter": "sshd", "maxretry": 3}]})
>>> cfg.jail_for_filter("sshd").maxretry
3
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fsbrain.core.errors import PolicyError

DEFAULT_JAILS = Path(__file__).resolve().parent / "filters" / "jails.yaml"


def _check_networks(values: list[str]) -> list[str]:
    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError as exc:
            raise ValueError(f"{v!r} is not an IP address or CIDR network") from exc
    return values


class JailConfig(BaseModel):
    """One jail: a filter plus fail2ban's findtime / maxretry / bantime."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][\w.\-]{0,63}$")
    """Jail name, used in alert ids and feature names."""
    filter: str
    """Filter name with options (``sshd[mode=aggressive]``) or a path to a fail2ban ``.conf`` file."""
    enabled: bool = True
    logpath: list[str] = Field(default_factory=list)
    """Log files this jail reads when ``scan``/``follow`` are given none."""
    findtime: float = Field(default=600.0, ge=1, le=400 * 86400)
    """Window in seconds for counting failures."""
    maxretry: int = Field(default=5, ge=1, le=1_000_000)
    """Failures within ``findtime`` that trigger a ban."""
    bantime: float = Field(default=600.0)
    """Ban length in seconds; ``-1`` bans for ever."""
    bantime_factor: float = Field(default=2.0, ge=1.0, le=100.0)
    """Each further ban of the same address lasts this many times longer (recidive)."""
    bantime_max: float = Field(default=7 * 86400.0, ge=1)
    """Cap for grown ban lengths."""
    ignoreip: list[str] = Field(default_factory=list)
    """Addresses / networks this jail never bans (added to the global allow-list)."""

    _v_ignore = field_validator("ignoreip")(classmethod(lambda cls, v: _check_networks(v)))

    @field_validator("bantime")
    @classmethod
    def _bantime(cls, v: float) -> float:
        if v != -1 and not (1 <= v <= 400 * 86400):
            raise ValueError("bantime must be -1 (for ever) or between 1 s and 400 days")
        return v


class SubnetDetection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    prefix_v4: int = Field(default=24, ge=8, le=32)
    prefix_v6: int = Field(default=64, ge=16, le=128)
    window: float = Field(default=3600.0, ge=1)
    min_ips: int = Field(default=4, ge=2)
    """Distinct failing addresses in one subnet."""
    min_failures: int = Field(default=20, ge=1)
    """Failures from the subnet within the window."""


class DistributedDetection(BaseModel):
    """One account attacked from many addresses."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    window: float = Field(default=3600.0, ge=1)
    min_ips: int = Field(default=5, ge=2)
    min_failures: int = Field(default=10, ge=1)


class LowAndSlowDetection(BaseModel):
    """Failures from one address spread over hours, each burst below the jail threshold."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    window: float = Field(default=86400.0, ge=60)
    min_failures: int = Field(default=20, ge=2)


class SprayingDetection(BaseModel):
    """Many accounts tried from one address, about one attempt each."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    window: float = Field(default=3600.0, ge=1)
    min_accounts: int = Field(default=10, ge=2)
    max_attempts_per_account: float = Field(default=2.0, ge=1.0)
    """Failures divided by distinct accounts must stay at or below this."""


class CompromiseDetection(BaseModel):
    """A successful login from an address (or to an account) that just failed repeatedly."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    window: float = Field(default=3600.0, ge=1)
    min_failures: int = Field(default=3, ge=1)


class RecidiveDetection(BaseModel):
    """Addresses banned again and again."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    window: float = Field(default=7 * 86400.0, ge=60)
    min_bans: int = Field(default=3, ge=2)
    bantime: float = Field(default=7 * 86400.0, ge=60)


class DetectionsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subnet: SubnetDetection = Field(default_factory=SubnetDetection)
    distributed: DistributedDetection = Field(default_factory=DistributedDetection)
    low_and_slow: LowAndSlowDetection = Field(default_factory=LowAndSlowDetection)
    spraying: SprayingDetection = Field(default_factory=SprayingDetection)
    compromise: CompromiseDetection = Field(default_factory=CompromiseDetection)
    recidive: RecidiveDetection = Field(default_factory=RecidiveDetection)


class JailsConfig(BaseModel):
    """The whole file: jails, allow-list, time zone and detection thresholds."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(default=1, ge=1, le=1)
    timezone: str | None = None
    """IANA zone of dates written without one (default: the machine's)."""
    allowlist: list[str] = Field(default_factory=list)
    """IPs / CIDRs never banned or alerted on (monitoring hosts, bastions)."""
    jails: list[JailConfig] = Field(default_factory=list)
    detections: DetectionsConfig = Field(default_factory=DetectionsConfig)

    _v_allow = field_validator("allowlist")(classmethod(lambda cls, v: _check_networks(v)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<jails>") -> JailsConfig:
        """Validate a parsed document.

        Raises:
            PolicyError: with every problem, each naming its path in the document.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = [{"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "severity": "error"}
                        for e in exc.errors()]
            text = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
            raise PolicyError(f"invalid jails file: {text}", source=source, problems=problems) from exc

    @classmethod
    def load(cls, path: str | Path | None = None) -> JailsConfig:
        """Read a YAML file (default: the shipped ``filters/jails.yaml``)."""
        p = Path(path) if path is not None else DEFAULT_JAILS
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read jails file: {exc.strerror or exc}", source=str(p)) from exc
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise PolicyError(f"not valid YAML: {getattr(exc, 'problem', exc)}", source=str(p),
                              line=(mark.line + 1) if mark else None) from exc
        if not isinstance(data, dict):
            raise PolicyError("a jails file must be a mapping with a 'jails' list", source=str(p))
        return cls.from_dict(data, source=str(p))

    def jail_for_filter(self, filter_spec: str) -> JailConfig:
        """The jail using ``filter_spec`` (by full spec, then by bare name), or a default jail for it."""
        base = filter_spec.split("[", 1)[0]
        for j in self.jails:
            if j.enabled and j.filter == filter_spec:
                return j
        for j in self.jails:
            if j.enabled and j.filter.split("[", 1)[0] == base:
                return j
        name = Path(base).stem if base.endswith(".conf") else base
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:64] or "jail"
        return JailConfig(name=safe, filter=filter_spec)
