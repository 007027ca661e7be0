"""Oracle tests: the vectorised window aggregation against a brute-force recomputation; the detector
never fails on arbitrary records."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.core.labels import is_label
from fsbrain.domains.flow.aggregate import aggregate, expand, rollup
from fsbrain.domains.flow.config import AMPLIFICATION_PORTS
from fsbrain.domains.flow.detector import VolumetricDetector
from fsbrain.domains.flow.records import make_records

AMP = np.array(sorted(AMPLIFICATION_PORTS), dtype=np.uint16)

record = st.tuples(
    st.floats(0, 50, allow_nan=False), st.floats(0, 5, allow_nan=False),  # ts, duration
    st.integers(0, 5), st.integers(0, 3),  # src, dst (small spaces: collisions)
    st.sampled_from([0, 53, 123, 4444]), st.sampled_from([1, 6, 17]), st.sampled_from([0, 2, 0x12, 0x1B]),
    st.integers(0, 10_000), st.integers(0, 10**7))


def _recs(rows):
    r = make_records(len(rows))
    for i, (ts, dur, src, dst, sport, proto, flags, pk, by) in enumerate(rows):
        r[i] = (ts, ts + dur, src, 0x0A000000 + dst * 64, sport, 80, proto, flags, pk, by, 1, 0)
    return r


@settings(max_examples=150, deadline=None)
@given(st.lists(record, min_size=1, max_size=40), st.sampled_from([0.5, 1.0, 2.0]))
def test_aggregation_matches_brute_force(rows, window):
    recs = _recs(rows)
    ex = expand(recs, window, 120, AMP)
    host = aggregate(ex, ex["dst"])
    sub, _ = rollup(host, np.uint32(0xFFFFFF00))
    want = defaultdict(lambda: defaultdict(float))
    for r in recs:
        w0, w1 = math.floor(r["ts"] / window), math.floor(r["te"] / window)
        span = min(w1 - w0 + 1, 120)
        for k in range(span):
            cell = want[(w0 + k, int(r["dst"]))]
            cell["pkts"] += r["packets"] / span
            cell["bytes"] += r["bytes"] / span
            cell["flows"] += 1 if k == 0 else 0
            if r["proto"] == 17:
                cell["udp"] += r["packets"] / span
                if r["sport"] in AMPLIFICATION_PORTS:
                    cell["amplification"] += r["packets"] / span
            if r["proto"] == 6 and r["flags"] & 2 and not r["flags"] & 0x10:
                cell["syn"] += r["packets"] / span
    got = {(int(w), int(e)): i for i, (w, e) in enumerate(zip(host.w, host.entity, strict=True))}
    assert set(got) == set(want)
    for key, cell in want.items():
        i = got[key]
        assert math.isclose(host.pkts[i], cell["pkts"], rel_tol=1e-9, abs_tol=1e-6)
        assert math.isclose(host.bytes[i], cell["bytes"], rel_tol=1e-9, abs_tol=1e-6)
        assert host.flows[i] == cell["flows"]
        for c in ("udp", "amplification", "syn"):
            assert math.isclose(host.cls_pkts[c][i], cell[c], rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(sub.pkts.sum(), host.pkts.sum(), rel_tol=1e-9, abs_tol=1e-6)
    assert len(sub) == len({w for w, _ in want})  # all destinations share one /24


@settings(max_examples=60, deadline=None)
@given(st.lists(record, min_size=1, max_size=60), st.integers(1, 7))
def test_detector_never_fails_and_alerts_are_well_formed(rows, chunks):
    recs = _recs(rows)
    recs["packets"] *= 100  # make floods possible
    det = VolumetricDetector()
    for part in np.array_split(recs, chunks):
        det.process(part)
    for a in det.finish():
        d = a.to_dict()
        assert all(is_label(x) for x in d["labels"]) and d["start"] <= d["end"]
        assert 0 < d["details"]["confidence"] <= 1 and d["details"]["mitigation"]["nftables"]
