"""The flow package's public names, and mitigation texts for each attack type."""

from __future__ import annotations

import fsbrain.domains.flow as flow
from fsbrain.domains.flow.mitigation import mitigations


def test_public_names_are_stable():
    assert sorted(flow.__all__) == sorted([
        "FLOW_DTYPE", "DecodeStats", "DetectorConfig", "FlowClassifier", "NetflowDecoder", "SflowDecoder",
        "UdpCollector", "VolumetricDetector", "default_scenario", "detect", "evaluate", "make_records",
        "read_flows", "simulate"])
    for name in flow.__all__:
        assert getattr(flow, name) is not None


def test_mitigation_per_attack_type():
    syn = mitigations("ddos_syn_flood", "203.0.113.7/32", dst_ports=[443], normal_pps=900)
    assert "tcp-flags [ syn ];" in syn["flowspec"] and "destination-port [ =443 ];" in syn["flowspec"]
    assert "limit rate over 1800/second" in syn["nftables"]
    assert "deny tcp any host 203.0.113.7 syn" in syn["acl"]
    icmp = mitigations("ddos_icmp_flood", "203.0.113.7/32")
    assert "protocol icmp;" in icmp["flowspec"] and "deny icmp any host 203.0.113.7" in icmp["acl"]
    carpet = mitigations("ddos_carpet_bombing", "198.51.100.0/24", src_ports=[53, 123], carpet_proto="udp")
    assert "deny udp any eq 53 198.51.100.0 0.0.0.255" in carpet["acl"]
    assert "udp sport { 53, 123 }" in carpet["nftables"]
    assert carpet["blackhole"].startswith("ip route 198.51.100.0 255.255.255.0 Null0 tag 666")
    udp = mitigations("ddos_udp_flood", "203.0.113.7/32")
    assert "then {\n    discard;" in udp["flowspec"] and "meta l4proto udp counter drop" in udp["nftables"]
