"""Mitigation text a network engineer can paste: RTBH blackhole, BGP FlowSpec, router ACL, nftables.

Blackholing drops *all* traffic to the target (the attack wins availability-wise, the rest of the
network survives); FlowSpec and ACLs drop only the attack's signature. The texts are suggestions with the
attack's real values filled in; an engineer chooses.

>>> m = mitigations("ddos_amplification", "203.0.113.10/32", src_ports=[123])
>>> print(m["nftables"])
nft add rule inet filter prerouting ip daddr 203.0.113.10/32 udp sport 123 counter drop
"""

from __future__ import annotations

PROTO_OF = {"ddos_syn_flood": "tcp", "ddos_udp_flood": "udp", "ddos_icmp_flood": "icmp",
            "ddos_amplification": "udp"}


def _ports(ports: list[int] | None) -> str:
    return " ".join(f"={p}" for p in (ports or [])[:8])


def flowspec(label: str, target: str, proto: str, src_ports: list[int] | None, dst_ports: list[int] | None,
             rate_bps: int | None) -> str:
    """An ExaBGP-style FlowSpec route (RFC 8955) for the attack signature."""
    match = [f"destination {target};", f"protocol {proto};"]
    if src_ports:
        match.append(f"source-port [ {_ports(src_ports)} ];")
    if dst_ports and label == "ddos_syn_flood":
        match.append(f"destination-port [ {_ports(dst_ports)} ];")
    if label == "ddos_syn_flood":
        match.append("tcp-flags [ syn ];")
    then = f"rate-limit {rate_bps};" if rate_bps else "discard;"
    body = "\n".join(f"    {m}" for m in match)
    return f"flow route {{\n  match {{\n{body}\n  }}\n  then {{\n    {then}\n  }}\n}}"


def acl(label: str, target: str, proto: str, src_ports: list[int] | None) -> str:
    """A Cisco IOS extended ACL (``ip access-group FSBRAIN-DDOS in`` on the edge interface)."""
    net, _, plen = target.partition("/")
    wildcard = _wildcard(int(plen or 32))
    dst = f"host {net}" if plen in ("", "32") else f"{net} {wildcard}"
    lines = ["ip access-list extended FSBRAIN-DDOS"]
    if label == "ddos_amplification" and src_ports:
        lines += [f" deny udp any eq {p} {dst}" for p in src_ports[:8]]
    elif label == "ddos_syn_flood":
        lines.append(f" deny tcp any {dst} syn")  # IOS-XR / NX-OS; on IOS use match-all +syn -ack
    elif label == "ddos_icmp_flood":
        lines.append(f" deny icmp any {dst}")
    else:
        lines.append(f" deny {proto} any {dst}")
    lines.append(" permit ip any any")
    return "\n".join(lines)


def _wildcard(plen: int) -> str:
    mask = (0xFFFFFFFF >> plen) if plen < 32 else 0
    return ".".join(str((mask >> s) & 0xFF) for s in (24, 16, 8, 0))


def nftables(label: str, target: str, proto: str, src_ports: list[int] | None, pps_limit: int | None) -> str:
    """An nftables rule for a Linux edge router or the target host itself."""
    base = f"nft add rule inet filter prerouting ip daddr {target}"
    if label == "ddos_amplification" and src_ports:
        ports = src_ports[0] if len(src_ports) == 1 else "{ " + ", ".join(str(p) for p in src_ports[:8]) + " }"
        return f"{base} udp sport {ports} counter drop"
    if label == "ddos_syn_flood":
        limit = pps_limit or 1000
        return f"{base} tcp flags & (syn|ack) == syn limit rate over {limit}/second counter drop"
    if label == "ddos_icmp_flood":
        return f"{base} meta l4proto icmp limit rate over {pps_limit or 100}/second counter drop"
    return f"{base} meta l4proto {proto} counter drop"


def blackhole(target: str) -> str:
    """Remotely triggered blackhole: a null route tagged for RTBH, and the RFC 7999 BLACKHOLE community."""
    net, _, plen = target.partition("/")
    mask = _wildcard(int(plen or 32))
    netmask = ".".join(str(255 - int(x)) for x in mask.split("."))
    return (f"ip route {net} {netmask} Null0 tag 666\n"
            f"! announce {target} to the upstream with BGP community 65535:666 (RFC 7999 BLACKHOLE)")


def mitigations(label: str, target: str, *, src_ports: list[int] | None = None, dst_ports: list[int] | None = None,
                carpet_proto: str | None = None, normal_pps: float | None = None) -> dict[str, str]:
    """Every mitigation text for an attack.

    Args:
        label: the attack's risk label.
        target: host ``a.b.c.d/32`` or subnet prefix.
        src_ports: reflector source ports (amplification).
        dst_ports: attacked destination ports (SYN flood).
        carpet_proto: for carpet bombing, the protocol of the underlying flood.
        normal_pps: the target's learned normal rate, used for rate limits (limit = 2 × normal).
    """
    proto = carpet_proto or PROTO_OF.get(label, "ip")
    inner = label
    if label == "ddos_carpet_bombing":
        inner = "ddos_amplification" if src_ports else {"tcp": "ddos_syn_flood", "icmp": "ddos_icmp_flood"}.get(
            proto, "ddos_udp_flood")
    limit = int(max(100.0, 2 * normal_pps)) if normal_pps else None
    return {
        "blackhole": blackhole(target),
        "flowspec": flowspec(inner, target, proto, src_ports if inner == "ddos_amplification" else None,
                             dst_ports, None),
        "acl": acl(inner, target, proto, src_ports),
        "nftables": nftables(inner, target, proto, src_ports, limit),
    }
