"""Brute-force detection over authentication events, on fsbrain's windowed features.

Every failed or successful login (an :class:`AuthEvent`, usually made by a filter from a log line) updates
a few windowed aggregates in a :class:`~fsbrain.state.StateBackend` (memory or Redis, so several workers
can share the counts), and raises :class:`~fsbrain.core.model.Alert` objects when a threshold is crossed:

==================  ===========================================================  ====================
detection           condition (defaults in ``filters/jails.yaml``)                label / severity
==================  ===========================================================  ====================
jail (fail2ban)     failures per address in ``findtime`` >= ``maxretry``           brute_force / 3
subnet              failures per /24 (/64) >= min_failures from >= min_ips         brute_force / 3
distributed         failures per account >= min_failures from >= min_ips           brute_force / 4
low_and_slow        failures per address in hours >= min_failures, never banned    brute_force / 3
spraying            accounts per address >= min_accounts, <= N tries each           password_spraying / 4
compromise          success from an address (or to an account) after failures      compromise / 5
recidive            bans of one address in a week >= min_bans                      brute_force / 4
==================  ===========================================================  ====================

Each alert carries reasons with the feature name, its value and the threshold, is raised once per entity
and detection while its condition lasts (then again after the window has passed), and jail / recidive
alerts carry ``action="ban"`` with ``details["ban_until"]`` (``None``: for ever).
"""

from __future__ import annotations

import functools
import ipaddress
import time
from dataclasses import dataclass
from typing import Any

from fsbrain.core.model import Alert, Reason
from fsbrain.domains.host.bruteforce_rules import on_failure
from fsbrain.domains.host.jails import JailConfig, JailsConfig
from fsbrain.state import MemoryStateBackend, StateBackend, WindowRead, WindowSpec

SOURCE = "host.bruteforce"
MAX_SUPPRESS = 200_000


@dataclass(slots=True, kw_only=True)
class AuthEvent:
    """One login attempt.

    Args:
        time: epoch seconds.
        status: ``failure`` or ``success``.
        host: the remote address (or name) the attempt came from.
        user: account tried, when known.
        jail: jail (service) name.
        attempts: failed attempts this event stands for (multi-line records).
        where: ``file:line`` evidence.
    """

    time: float
    status: str
    host: str
    user: str | None = None
    jail: str = "default"
    attempts: int = 1
    where: str | None = None


@functools.lru_cache(maxsize=65536)
def subnet_of(host: str, v4: int, v6: int) -> str | None:
    """The /v4 or /v6 network of an address, or ``None`` for names and junk (memoised: attackers repeat,
    and parsing an address costs more than the rest of a failure's bookkeeping)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = v4 if ip.version == 4 else v6
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class AllowList:
    """IP addresses and networks that are never banned or alerted on.

    >>> AllowList(["10.0.0.0/8"]).contains("10.1.2.3"), AllowList(["10.0.0.0/8"]).contains("11.0.0.1")
    (True, False)
    """

    def __init__(self, networks: list[str] | None = None) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in (networks or [])]
        self._cache: dict[str, bool] = {}

    def contains(self, host: str) -> bool:
        hit = self._cache.get(host)
        if hit is not None:
            return hit
        try:
            ip = ipaddress.ip_address(host)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            hit = any(ip in n for n in self.networks if n.version == ip.version)
        except ValueError:
            hit = False
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[host] = hit
        return hit


class BruteForceDetector:
    """Turns :class:`AuthEvent` streams into alerts; see the module docstring for the detections.

    Args:
        config: jails and thresholds (default: the shipped ``jails.yaml``).
        backend: where the windowed counts live (default: a new in-process backend).
        namespace: prefix of the feature names (and so of the Redis keys).

    Example:
        >>> cfg = JailsConfig.from_dict({"jails": [{"name": "ssh", "filter": "sshd", "maxretry": 3}]})
        >>> det = BruteForceDetector(cfg)
        >>> out = [det.observe(AuthEvent(time=100.0 + i, status="failure", host="192.0.2.9", jail="ssh"))
        ...        for i in range(3)]
        >>> [a.labels for a in out[2]], out[2][0].action
        ([['brute_force']], 'ban')
    """

    def __init__(self, config: JailsConfig | None = None, *, backend: StateBackend | None = None,
                 namespace: str = "host_bf") -> None:
        self.config = config if config is not None else JailsConfig.load()
        self.backend = backend if backend is not None else MemoryStateBackend(allowed_lateness=86400.0)
        self.namespace = namespace
        self.allowlist = AllowList(self.config.allowlist)
        self._jails = {j.name: j for j in self.config.jails}
        self._jail_allow: dict[str, AllowList] = {j.name: AllowList(j.ignoreip) for j in self.config.jails}
        d = self.config.detections
        ns = namespace
        self.s_subnet_fail = WindowSpec(name=f"{ns}_subnet_fail", agg="count", window=d.subnet.window)
        self.s_subnet_ips = WindowSpec(name=f"{ns}_subnet_ips", agg="distinct", window=d.subnet.window)
        self.s_acct_fail = WindowSpec(name=f"{ns}_account_fail", agg="count", window=d.distributed.window)
        self.s_acct_ips = WindowSpec(name=f"{ns}_account_ips", agg="distinct", window=d.distributed.window)
        self.s_slow = WindowSpec(name=f"{ns}_ip_fail_long", agg="count", window=d.low_and_slow.window)
        self.s_spray_fail = WindowSpec(name=f"{ns}_ip_fail_spray", agg="count", window=d.spraying.window)
        self.s_spray_users = WindowSpec(name=f"{ns}_ip_accounts", agg="distinct", window=d.spraying.window)
        self.s_comp_ip = WindowSpec(name=f"{ns}_ip_fail_recent", agg="count", window=d.compromise.window)
        self.s_comp_acct = WindowSpec(name=f"{ns}_account_fail_recent", agg="count", window=d.compromise.window)
        self.s_bans = WindowSpec(name=f"{ns}_ip_bans", agg="count", window=d.recidive.window)
        self._jail_specs: dict[str, WindowSpec] = {}
        self._suppress: dict[tuple[str, str], float] = {}
        self._banned: dict[tuple[str, str], float] = {}
        self._last_ban: dict[str, float] = {}
        self.counts = {"events": 0, "failures": 0, "successes": 0, "allowlisted": 0, "alerts": 0}

    def jail(self, name: str) -> JailConfig:
        j = self._jails.get(name)
        if j is None:
            j = self._jails[name] = self.config.jail_for_filter(name).model_copy(update={"name": name})
            self._jail_allow[name] = AllowList(j.ignoreip)
        return j

    def _jail_spec(self, jail: JailConfig) -> WindowSpec:
        spec = self._jail_specs.get(jail.name)
        if spec is None:
            spec = WindowSpec(name=f"{self.namespace}_{jail.name}_ip_fail", agg="count", window=jail.findtime)
            self._jail_specs[jail.name] = spec
        return spec

    # -- helpers ---------------------------------------------------------------------------------
    def _once(self, kind: str, entity: str, ts: float, hold: float) -> bool:
        """True the first time (kind, entity) fires within ``hold`` seconds."""
        key = (kind, entity)
        until = self._suppress.get(key)
        if until is not None and ts < until:
            return False
        if len(self._suppress) > MAX_SUPPRESS:
            self._suppress = {k: v for k, v in self._suppress.items() if v > ts}
        self._suppress[key] = ts + hold
        return True

    def _alert(self, *, label: str, severity: int, score: int, title: str, entity_type: str, entity: str,
               reasons: list[Reason], ts: float, window: float, action: str | None = None,
               details: dict[str, Any] | None = None) -> Alert:
        self.counts["alerts"] += 1
        return Alert(source=SOURCE, labels=[label], severity=severity, score=score, title=title,
                     entity_type=entity_type, entity=entity, reasons=reasons, action=action,
                     start=ts - window, end=ts, details=details or {})

    @staticmethod
    def _reason(rid: str, label: str, feature: str, value: Any, threshold: Any, weight: int,
                message: str) -> Reason:
        return Reason(source="detector", id=rid, label=label, feature=feature, value=value,
                      threshold=threshold, weight=weight, message=message)

    # -- main entry ------------------------------------------------------------------------------
    def observe(self, ev: AuthEvent) -> list[Alert]:
        """Account for one event; return the alerts it raises (usually none)."""
        self.counts["events"] += 1
        jail = self.jail(ev.jail)
        if self.allowlist.contains(ev.host) or self._jail_allow[jail.name].contains(ev.host):
            self.counts["allowlisted"] += 1
            return []
        if ev.status == "success":
            self.counts["successes"] += 1
            return self._on_success(ev, jail)
        if ev.status != "failure":
            return []
        self.counts["failures"] += 1
        return on_failure(self, ev, jail)

    def _on_success(self, ev: AuthEvent, jail: JailConfig) -> list[Alert]:
        c = self.config.detections.compromise
        if not c.enabled:
            return []
        reads = [WindowRead(self.s_comp_ip, ev.host)]
        if ev.user:
            reads.append(WindowRead(self.s_comp_acct, ev.user))
        vals = self.backend.get(reads, ev.time)
        out: list[Alert] = []
        ip_fail = int(vals[0] or 0)
        if ip_fail >= c.min_failures and self._once("compromise", ev.host, ev.time, c.window):
            r = self._reason("host.bf.compromise", "compromise", f"ip_failures_before_success_{int(c.window)}s",
                             ip_fail, c.min_failures, 950,
                             f"login as {ev.user or '?'} succeeded after {ip_fail} failures from the same address")
            out.append(self._alert(label="compromise", severity=5, score=950, entity_type="ip", entity=ev.host,
                                   title=f"{jail.name}: login from {ev.host} succeeded after {ip_fail} failures",
                                   reasons=[r], ts=ev.time, window=c.window, action="review",
                                   details={"jail": jail.name, "user": ev.user, "where": ev.where}))
        if ev.user and len(vals) > 1:
            acct_fail = int(vals[1] or 0)
            if (acct_fail >= max(c.min_failures, self.config.detections.distributed.min_failures)
                    and not out and self._once("compromise_account", ev.user, ev.time, c.window)):
                r = self._reason("host.bf.compromise_account", "compromise",
                                 f"account_failures_before_success_{int(c.window)}s", acct_fail,
                                 self.config.detections.distributed.min_failures, 900,
                                 f"account {ev.user} logged in from {ev.host} after {acct_fail} failed attempts")
                out.append(self._alert(label="compromise", severity=5, score=900, entity_type="account",
                                       entity=ev.user, reasons=[r], ts=ev.time, window=c.window, action="review",
                                       title=f"{jail.name}: account {ev.user} logged in after {acct_fail} failures",
                                       details={"jail": jail.name, "host": ev.host, "where": ev.where}))
        return out

    def is_banned(self, jail: str, host: str, at: float) -> bool:
        until = self._banned.get((jail, host))
        return until is not None and (until < 0 or at < until)

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "backend": self.backend.stats()}


def now() -> float:
    """Wall-clock time, for events without a date."""
    return time.time()
