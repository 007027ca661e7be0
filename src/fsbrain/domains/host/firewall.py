"""Firewall commands for the ban list: nftables sets with timeouts, or iptables + ipset.

:func:`firewall_commands` turns active bans into argument lists (never shell strings: every address is
validated by :mod:`ipaddress` first, and nothing is interpolated into a shell). By default they are only
printed (:func:`render`); :func:`apply` runs them, one ``subprocess.run`` per command, and reports each
failure with the command and its error output.

nftables layout: table ``inet fsbrain``, sets ``banned4`` / ``banned6`` (``flags interval, timeout``) and
an input chain dropping their members. ipset layout: ``fsbrain4`` / ``fsbrain6`` (``hash:net`` with
timeout support) referenced by one ``iptables`` / ``ip6tables`` DROP rule each.
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import subprocess
import time

from fsbrain.core.errors import InputError
from fsbrain.domains.host.bans import Ban

BACKENDS = ("nft", "iptables")
TABLE = "fsbrain"
MAX_TIMEOUT = 2_000_000  # ipset's timeout limit is about 24 days; nft accepts more, keep one cap


def _timeout(ban: Ban, now: float) -> int | None:
    if ban.until is None:
        return None
    return max(1, min(int(ban.until - now), MAX_TIMEOUT))


def _net(target: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(target, strict=False)
    except ValueError as exc:
        raise InputError(f"refusing to write a firewall rule for {target[:80]!r}: not an address") from exc


def nft_commands(bans: list[Ban], now: float | None = None) -> list[list[str]]:
    """nftables commands: create table, sets and chain (idempotent), then add every ban."""
    at = time.time() if now is None else now
    cmds = [
        ["nft", "add", "table", "inet", TABLE],
        ["nft", "add", "set", "inet", TABLE, "banned4", "{ type ipv4_addr; flags interval, timeout; }"],
        ["nft", "add", "set", "inet", TABLE, "banned6", "{ type ipv6_addr; flags interval, timeout; }"],
        ["nft", "add", "chain", "inet", TABLE, "input", "{ type filter hook input priority -10; policy accept; }"],
        ["nft", "flush", "chain", "inet", TABLE, "input"],
        ["nft", "add", "rule", "inet", TABLE, "input", "ip", "saddr", "@banned4", "drop"],
        ["nft", "add", "rule", "inet", TABLE, "input", "ip6", "saddr", "@banned6", "drop"],
    ]
    for b in bans:
        net = _net(b.target)
        elem = str(net.network_address) if net.num_addresses == 1 else str(net)
        t = _timeout(b, at)
        spec = f"{{ {elem} timeout {t}s }}" if t is not None else f"{{ {elem} }}"
        cmds.append(["nft", "add", "element", "inet", TABLE, "banned4" if net.version == 4 else "banned6", spec])
    return cmds


def iptables_commands(bans: list[Ban], now: float | None = None) -> list[list[str]]:
    """ipset + iptables commands: create sets (``-exist``), one DROP rule per family, add every ban."""
    at = time.time() if now is None else now
    cmds = [
        ["ipset", "create", "fsbrain4", "hash:net", "family", "inet", "timeout", "0", "-exist"],
        ["ipset", "create", "fsbrain6", "hash:net", "family", "inet6", "timeout", "0", "-exist"],
        ["iptables", "-I", "INPUT", "-m", "set", "--match-set", "fsbrain4", "src", "-j", "DROP"],
        ["ip6tables", "-I", "INPUT", "-m", "set", "--match-set", "fsbrain6", "src", "-j", "DROP"],
    ]
    for b in bans:
        net = _net(b.target)
        t = _timeout(b, at)
        elem = str(net.network_address) if net.num_addresses == 1 else str(net)
        cmds.append(["ipset", "add", "fsbrain4" if net.version == 4 else "fsbrain6", elem,
                     "timeout", str(t if t is not None else 0), "-exist"])
    return cmds


def firewall_commands(bans: list[Ban], backend: str = "nft", now: float | None = None) -> list[list[str]]:
    """Commands for ``backend`` (``nft`` or ``iptables``)."""
    if backend == "nft":
        return nft_commands(bans, now)
    if backend == "iptables":
        return iptables_commands(bans, now)
    raise InputError(f"unknown firewall backend {backend!r} (one of {BACKENDS})")


def render(cmds: list[list[str]]) -> str:
    """Shell-quoted text of the commands, one per line (for review or a script)."""
    return "\n".join(shlex.join(c) for c in cmds)


def apply(cmds: list[list[str]], *, timeout: float = 10.0) -> list[dict[str, object]]:
    """Run the commands; return one result per command (``ok``, ``rc``, ``error``).

    The iptables rule insertion is skipped when the rule already exists (checked with ``-C``).

    Raises:
        InputError: the firewall tool is not installed.
    """
    if cmds and shutil.which(cmds[0][0]) is None:
        raise InputError(f"{cmds[0][0]} is not installed (or not on PATH); nothing applied")
    results: list[dict[str, object]] = []
    for cmd in cmds:
        if cmd[0] in ("iptables", "ip6tables") and cmd[1] == "-I":
            check = [cmd[0], "-C", *cmd[2:]]
            if _run(check, timeout)["ok"]:
                results.append({"cmd": shlex.join(cmd), "ok": True, "rc": 0, "error": "rule already present"})
                continue
        results.append(_run(cmd, timeout))
    return results


def _run(cmd: list[str], timeout: float) -> dict[str, object]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"cmd": shlex.join(cmd), "ok": False, "rc": None, "error": str(exc)}
    return {"cmd": shlex.join(cmd), "ok": p.returncode == 0, "rc": p.returncode, "error": p.stderr.strip()[:500]}
