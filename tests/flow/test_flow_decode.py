"""NetFlow v5/v9/IPFIX and sFlow decoding: round trips, the netflow package as oracle, templates, sampling."""

from __future__ import annotations

import struct

import netflow
import numpy as np
import pytest

from fsbrain.domains.flow.export import encode_ipfix, encode_v5, encode_v9, write_pcap
from fsbrain.domains.flow.fileio import read_flows
from fsbrain.domains.flow.nfdecode import NetflowDecoder
from fsbrain.domains.flow.records import DecodeStats, int_to_ip, make_records
from fsbrain.domains.flow.sflow import SflowDecoder, counter_sample, encode_sflow, ipv4_header, packet_sample

FIELDS = ("src", "dst", "sport", "dport", "proto", "flags", "packets", "bytes")


def _records(n: int = 100, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = make_records(n)
    r["ts"] = 1.7e9 + np.arange(n)
    r["te"] = r["ts"] + 0.5
    r["src"] = rng.integers(1, 2**32 - 1, n)
    r["dst"] = rng.integers(1, 2**32 - 1, n)
    r["sport"] = rng.integers(0, 65535, n)
    r["dport"] = rng.integers(0, 65535, n)
    r["proto"] = rng.choice([6, 17], n)
    r["flags"] = rng.integers(0, 63, n)
    r["packets"] = rng.integers(1, 10_000, n) * 10
    r["bytes"] = r["packets"] * 64
    return r


@pytest.mark.parametrize("encode", ["v5", "v9", "ipfix"])
def test_round_trip_keeps_every_field(encode):
    recs = _records()
    pkts = {"v5": lambda: encode_v5(recs, boot=1.69e9, sampling=10),
            "v9": lambda: encode_v9(recs, boot=1.69e9, sampling=10),
            "ipfix": lambda: encode_ipfix(recs)}[encode]()
    dec = NetflowDecoder()
    out = np.concatenate([dec.decode(p, exporter=1) for p in pkts])
    assert len(out) == len(recs)
    for f in FIELDS:
        assert (out[f] == recs[f]).all(), f
    assert np.abs(out["ts"] - recs["ts"]).max() < 1.0  # v9 headers carry whole seconds
    assert dec.stats.errors == {}


def test_v9_matches_the_netflow_package():
    recs = _records(48)
    pkts = encode_v9(recs, boot=1.69e9)
    templates: dict = {"netflow": {}, "ipfix": {}}
    ref = [f for p in pkts for f in netflow.parse_packet(p, templates).flows]
    dec = NetflowDecoder()
    ours = np.concatenate([dec.decode(p) for p in pkts])
    assert len(ref) == len(ours) == 48
    for f, r in zip(ref, ours, strict=True):
        assert f.data["IPV4_SRC_ADDR"] == int_to_ip(r["src"]) and f.data["L4_DST_PORT"] == r["dport"]
        assert f.data["IN_PKTS"] == r["packets"] and f.data["PROTOCOL"] == r["proto"]


def test_v5_matches_the_netflow_package():
    recs = _records(30)
    pkt = encode_v5(recs, boot=1.69e9)[0]
    ref = netflow.parse_packet(pkt).flows
    ours = NetflowDecoder().decode(pkt)
    assert [f.data["IN_OCTETS"] for f in ref] == ours["bytes"].tolist()
    assert [f.data["SRC_PORT"] for f in ref] == ours["sport"].tolist()


def test_unknown_template_is_held_then_released():
    recs = _records(48)
    pkts = encode_v9(recs, boot=1.69e9, per_packet=24, template_every=100)
    dec = NetflowDecoder()
    # the data-only second packet arrives before the packet carrying the template
    assert len(dec.decode(pkts[1], exporter=7)) == 0
    assert dec.stats.errors["unknown_template"] == 1 and dec.pending == 1
    out = dec.decode(pkts[0], exporter=7)
    assert len(out) == 48 and dec.pending == 0
    assert sorted(out["src"].tolist()) == sorted(recs["src"].tolist())


def test_templates_are_per_exporter():
    recs = _records(24)
    pkts = encode_v9(recs, boot=1.69e9, template_every=100)
    dec = NetflowDecoder()
    assert len(dec.decode(pkts[0], exporter=1)) == 24
    # the same template id from another router is not trusted: held, not mis-decoded
    data_only = encode_v9(recs, boot=1.69e9, template_every=100)[0]
    sets = data_only[20:]
    set_len = struct.unpack_from("!H", sets, 2)[0]
    packet_without_template = data_only[:20] + sets[set_len:]
    assert len(dec.decode(packet_without_template, exporter=2)) == 0
    assert dec.stats.errors["unknown_template"] == 1


def test_bounded_holding_drops_and_counts():
    recs = _records(24)
    pkt = encode_v9(recs, boot=1.69e9)[0]
    sets = pkt[20:]
    set_len = struct.unpack_from("!H", sets, 2)[0]
    data_only = pkt[:20] + sets[set_len:]
    dec = NetflowDecoder()
    for _ in range(70):
        dec.decode(data_only, exporter=3)
    assert dec.pending == 64
    assert dec.stats.errors["dropped_unknown_template"] == 6


def test_ipfix_template_withdrawal():
    recs = _records(24)
    dec = NetflowDecoder()
    assert len(dec.decode(encode_ipfix(recs)[0], exporter=1)) == 24
    withdraw = struct.pack("!HH", 2, 8) + struct.pack("!HH", 256, 0)
    dec.decode(struct.pack("!HHIII", 10, 16 + len(withdraw), 0, 0, 1) + withdraw, exporter=1)
    assert dec.template_count() == 0


def test_v5_sampling_from_header_and_errors_counted():
    recs = _records(5)
    out = NetflowDecoder().decode(encode_v5(recs, boot=1.69e9, sampling=10)[0])
    assert out["sampling"].tolist() == [10] * 5
    dec = NetflowDecoder()
    dec.decode(b"\x00\x07" + bytes(40))
    dec.decode(encode_v5(recs, boot=1.69e9)[0][:100])
    dec.decode(b"\x00")
    assert dec.stats.errors == {"bad_version": 1, "truncated": 2}
    assert dec.stats.records == 1  # the one whole record in the truncated packet


def test_sflow_flow_and_counter_samples():
    dec = SflowDecoder()
    eth = b"\x00" * 12 + b"\x81\x00\x00\x05" + b"\x08\x00"  # one VLAN tag
    udp = ipv4_header(0x0A000001, 0xC6336401, 17, 123, 40000)
    syn = ipv4_header(0x0A000002, 0xC6336401, 6, 5555, 443, flags=0x02)
    dgram = encode_sflow([packet_sample(eth + udp, 490, 512, ethernet=True), packet_sample(syn, 60, 512),
                          counter_sample(7, 10**9, 10**6)])
    out = dec.decode(dgram, now=5.0)
    assert out["sport"].tolist() == [123, 5555]
    assert out["proto"].tolist() == [17, 6] and out["flags"].tolist() == [0, 2]
    assert out["packets"].tolist() == [512, 512] and out["bytes"].tolist() == [490 * 512, 60 * 512]
    assert dec.counters[(0xC0000201, 7)]["in_octets"] == 10**9
    dec.decode(dgram[:-10], now=6.0)
    dec.decode(b"\x00\x00\x00\x04" + dgram[4:], now=6.0)
    assert dec.stats.errors["truncated"] == 1 and dec.stats.errors["bad_version"] == 1


def test_pcap_of_netflow_and_sflow(tmp_path):
    recs = _records(60)
    payloads = encode_v9(recs, boot=1.69e9) + [encode_sflow([packet_sample(ipv4_header(1, 2, 1, 0, 8), 84, 100)])]
    path = tmp_path / "flows.pcap"
    write_pcap(str(path), payloads)
    stats = DecodeStats()
    out = np.concatenate(list(read_flows(path, stats=stats)))
    assert len(out) == 61
    assert sorted(out["src"].tolist())[-60:] == sorted(recs["src"].tolist())


@pytest.mark.parametrize("encode", ["v5", "v9", "ipfix"])
def test_batch_decoding_equals_packet_by_packet(encode):
    recs = _records(200, seed=3)
    pkts = {"v5": lambda: encode_v5(recs, boot=1.69e9, sampling=4),
            "v9": lambda: encode_v9(recs, boot=1.69e9, sampling=4),
            "ipfix": lambda: encode_ipfix(recs)}[encode]()
    dec = NetflowDecoder()
    single = np.concatenate([dec.decode(p, exporter=5) for p in pkts])
    batch_dec = NetflowDecoder()
    mixed = [(p, 5) for p in pkts] + [(b"\x00\x05bad", 5)]
    many = batch_dec.decode_many(mixed)
    order = np.argsort(many["ts"], kind="stable")
    assert (many[order] == single[np.argsort(single["ts"], kind="stable")]).all()
    assert batch_dec.stats.records == dec.stats.records == 200
    assert batch_dec.stats.packets == len(pkts) + 1 and batch_dec.stats.errors == {"truncated": 1}


def test_held_flowsets_expire(monkeypatch):
    import fsbrain.domains.flow.nfdecode as nd

    recs = _records(48)
    pkts = encode_v9(recs, boot=1.69e9, per_packet=24, template_every=100)
    dec = NetflowDecoder()
    clock = [1000.0]
    monkeypatch.setattr(nd.time, "monotonic", lambda: clock[0])
    dec.decode(pkts[1], exporter=7)
    clock[0] += nd.MAX_HOLD_SECONDS + 1
    out = dec.decode(pkts[0], exporter=7)
    assert len(out) == 24  # only the template packet's own records; the stale held set was dropped
    assert dec.stats.errors["dropped_unknown_template"] == 1 and dec.pending == 0
