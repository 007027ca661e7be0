"""Fuzzing the decoders with Hypothesis: arbitrary bytes and mutated valid packets never raise."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsbrain.domains.flow.export import encode_ipfix, encode_v5, encode_v9
from fsbrain.domains.flow.nfdecode import NetflowDecoder
from fsbrain.domains.flow.records import FLOW_DTYPE, make_records
from fsbrain.domains.flow.sflow import SflowDecoder, counter_sample, encode_sflow, ipv4_header, packet_sample

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_packets() -> list[bytes]:
    r = make_records(30)
    r["ts"] = 1.7e9 + np.arange(30)
    r["te"] = r["ts"]
    r["src"], r["dst"], r["proto"], r["packets"], r["bytes"] = 1, 2, 17, 10, 640
    sf = encode_sflow([packet_sample(ipv4_header(1, 2, 6, 1, 2, 2), 60, 10), counter_sample(1, 2, 3)])
    return [encode_v5(r, boot=1.6e9)[0], encode_v9(r, boot=1.6e9, sampling=4)[0], encode_ipfix(r)[0], sf]


VALID = _valid_packets()


def _check(out: np.ndarray) -> None:
    assert out.dtype == FLOW_DTYPE


@FAST
@given(st.binary(max_size=2000))
def test_netflow_decoder_survives_random_bytes(data):
    dec = NetflowDecoder()
    _check(dec.decode(data, exporter=1))
    assert dec.stats.packets == 1


@FAST
@given(st.sampled_from([5, 9, 10]), st.binary(max_size=1500))
def test_netflow_decoder_survives_random_bodies_with_valid_versions(version, body):
    dec = NetflowDecoder()
    _check(dec.decode(version.to_bytes(2, "big") + body, exporter=1))


@FAST
@given(st.integers(0, 3), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
       st.integers(0, 2000))
def test_decoders_survive_mutated_valid_packets(which, flips, cut):
    data = bytearray(VALID[which])
    for pos, val in flips:
        data[pos % len(data)] = val
    data = bytes(data[: max(0, len(data) - cut)]) if cut % 3 == 0 else bytes(data)
    nf = NetflowDecoder()
    # a template first, so data flowsets of the mutated packet reach the vectorised path
    nf.decode(VALID[1], exporter=9)
    nf.decode(VALID[2], exporter=9)
    _check(nf.decode(data, exporter=9))
    _check(SflowDecoder().decode(data, now=1.0))


@FAST
@given(st.binary(max_size=3000))
def test_sflow_decoder_survives_random_bytes(data):
    dec = SflowDecoder()
    _check(dec.decode(b"\x00\x00\x00\x05" + data, now=0.0))
    _check(dec.decode(data, now=0.0))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40), min_size=1, max_size=30))
def test_garbage_csv_rows_are_counted_not_fatal(tmp_path_factory, cells):
    from fsbrain.domains.flow.fileio import read_flows
    from fsbrain.domains.flow.records import DecodeStats

    path = tmp_path_factory.mktemp("csv") / "g.csv"
    good = "2026-01-01 00:00:00,2026-01-01 00:00:01,10.0.0.1,10.0.0.2,1,2,6,.A..S.,10,600"
    body = "\n".join(",".join(c.replace("\n", " ").replace("\r", " ") for c in cells[i: i + 3])
                     for i in range(0, len(cells), 3))
    path.write_text("ts,te,sa,da,sp,dp,pr,flg,ipkt,ibyt\n" + good + "\n" + body + "\n" + good + "\n", encoding="utf-8")
    stats = DecodeStats()
    try:
        out = np.concatenate(list(read_flows(path, "nfdump", stats)) or [make_records(0)])
    except Exception as exc:  # only our own clear error is acceptable
        from fsbrain.core.errors import InputError

        assert isinstance(exc, InputError), exc
        return
    assert len(out) >= 1
