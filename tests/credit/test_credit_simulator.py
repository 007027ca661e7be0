"""The credit simulator: determinism, label mix, schema validity, and that each pattern is really there."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

import pytest

from fsbrain.core.errors import InputError
from fsbrain.core.pii import Pseudonymizer, id_number_is_valid
from fsbrain.domains.credit.schema import parse_application, to_event_data
from fsbrain.domains.credit.simulator import DEFAULT_MIX, iter_applications, label_counts, split_truth

N = 6000
KEY = Pseudonymizer(b"simulator-test-key-0123")


@pytest.fixture(scope="module")
def records():
    return list(iter_applications(N, seed=11, days=28))


@pytest.fixture(scope="module")
def events(records):
    out = []
    for rec in records:
        app, truth = split_truth(rec)
        out.append((truth, to_event_data(parse_application(app), KEY)))
    return out


def _by(records, label):
    return [r for r in records if r["label"] == label]


def test_deterministic_per_seed():
    a = list(iter_applications(400, seed=3, days=10))
    b = list(iter_applications(400, seed=3, days=10))
    c = list(iter_applications(400, seed=4, days=10))
    assert a == b
    assert [r["applicant"]["id_number"] for r in a] != [r["applicant"]["id_number"] for r in c]


def test_label_mix_and_order(records):
    counts = Counter(r["label"] for r in records)
    assert counts == Counter(label_counts(N, DEFAULT_MIX))
    assert 0.85 <= counts["normal"] / N <= 0.9 and len(counts) == 6
    ts = [r["timestamp"] for r in records]
    assert ts == sorted(ts) and len({r["event_id"] for r in records}) == N


def test_period_and_diurnal_rhythm(records):
    start = dt.datetime(2026, 10, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    times = [dt.datetime.fromisoformat(r["timestamp"]) for r in _by(records, "normal")]
    assert min(times) >= start and max(times) < start + dt.timedelta(days=28)
    hours = Counter(t.hour for t in times)
    assert sum(hours[h] for h in (2, 3, 4)) * 4 < sum(hours[h] for h in (10, 11, 20))


def test_every_record_validates_with_no_invalid_input(events):
    assert len(events) == N  # parse_application raised nothing


def test_normal_identities_are_real(records, events):
    for rec in _by(records, "normal")[:800]:
        assert id_number_is_valid(rec["applicant"]["id_number"])
    normal = [d for t, d in events if t["label"] == "normal"]
    assert all(d["id_region_valid"] and d["phone_segment_known"] for d in normal)
    assert all(d["card_valid"] and d["card_bin_known"] for d in normal if d["card_present"])
    # but not trivially clean: some normal people are on a VPN or rooted phone, some phones are from home
    assert 0 < sum(d["ip_risky"] for d in normal) < 0.05 * len(normal)
    assert 0 < sum(d["device_is_rooted"] for d in normal) < 0.05 * len(normal)
    assert 0.05 < sum(d["id_phone_province_match"] is False for d in normal) / len(normal) < 0.4


def test_forged_applications_carry_inconsistencies(events):
    forged = [(t, d) for t, d in events if t["label"] == "forged_application"]
    kinds = Counter(k for t, _ in forged for k in t["scenario"].split("+"))
    assert {"bad_checksum", "impossible_age", "invalid_region", "phone_far", "copy_paste"} <= set(kinds)
    for t, d in forged:
        s = t["scenario"]
        if "bad_checksum" in s:
            assert d["id_valid"] is False
        if "invalid_region" in s:
            assert d["id_region_valid"] is False
        if "phone_far" in s:
            assert d["id_phone_province_match"] is False and d["address_phone_province_match"] is False
        if "copy_paste" in s:
            assert d["copy_paste_count"] >= 1
        if "impossible_age" in s:
            assert d["id_problem"] == "birth_date" or not 16 <= d["id_age"] <= 80
        if "bad_card" in s:
            assert d["card_valid"] is False


def test_multi_lenders_hit_four_platforms_in_a_week(records):
    sprees = defaultdict(list)
    for r in _by(records, "multi_lending"):
        sprees[r["_group"]].append(r)
    assert len(sprees) > 20
    full = 0
    for group in sprees.values():
        ids = {r["applicant"]["id_number"] for r in group}
        assert len(ids) == 1
        times = sorted(dt.datetime.fromisoformat(r["timestamp"]) for r in group)
        assert times[-1] - times[0] <= dt.timedelta(days=7)
        full += len({r["platform_id"] for r in group}) >= 4
    assert full >= len(sprees) - 1  # only the last spree may be cut short by n


def test_normal_people_sometimes_use_two_or_three_platforms(records):
    per_id = defaultdict(set)
    for r in _by(records, "normal"):
        per_id[r["applicant"]["id_number"]].add(r["platform_id"])
    sizes = Counter(len(v) for v in per_id.values())
    assert sizes[2] + sizes[3] > 0.03 * len(per_id) and max(sizes) <= 3


def test_gang_rings_share_what_their_scenario_says(records, events):
    rings = defaultdict(list)
    for rec, (_t, d) in zip(records, events, strict=True):
        if rec["label"] == "gang_fraud":
            rings[rec["_group"]].append((rec, d))
    assert len(rings) >= 3
    for members in rings.values():
        if len(members) < 4:
            continue
        shares = members[0][0]["scenario"].split("+")
        assert len(shares) >= 2
        ids = {d["id_number"] for _, d in members}
        assert len(ids) >= 3
        if "device" in shares:
            assert len({d["device_id"] for _, d in members}) < len(ids)
        if "contact" in shares:
            assert len({d["contact_phone_1"] for _, d in members}) == 1
        if "address" in shares:
            assert len({d["address"] for _, d in members}) == 1
        if "ip_range" in shares:
            assert len({d["ip_prefix"] for _, d in members}) == 1


def test_families_share_addresses_and_sometimes_devices(events):
    normal = [d for t, d in events if t["label"] == "normal"]
    ids_per_address = defaultdict(set)
    ids_per_device = defaultdict(set)
    for d in normal:
        ids_per_address[d["address"]].add(d["id_number"])
        ids_per_device[d["device_id"]].add(d["id_number"])
    assert sum(len(v) == 2 for v in ids_per_address.values()) > 50
    assert sum(len(v) == 2 for v in ids_per_device.values()) > 5
    assert max(len(v) for v in ids_per_device.values()) <= 3


def test_device_risk_and_farms(records, events):
    risky = [(t, d) for t, d in events if t["label"] == "device_risk"]
    solo = [d for t, d in risky if t["scenario"] != "device_farm"]
    assert all(d["device_is_emulator"] or d["device_is_rooted"] or d["ip_risky"] for d in solo)
    farms = defaultdict(list)
    for t, d in risky:
        if t["scenario"] == "device_farm":
            farms[t["_group"]].append(d)
    assert farms
    for apps in farms.values():
        assert len({a["device_id"] for a in apps}) == len(apps)  # ids reset for every application
        assert len({a["ip_prefix"] for a in apps}) == 1 and len({a["device_model"] for a in apps}) == 1


def test_promotion_abuse_many_new_accounts_few_devices(events):
    groups = defaultdict(list)
    for t, d in events:
        if t["label"] == "promotion_abuse":
            groups[t["_group"]].append(d)
    assert groups
    for apps in groups.values():
        assert all(a["is_new_user"] and a["has_coupon"] and a["account_age_days"] < 0.05 for a in apps)
        assert len({a["device_id"] for a in apps}) <= 3
        assert len({a["account_id"] for a in apps}) == len(apps)
    normal_coupons = sum(d["has_coupon"] for t, d in events if t["label"] == "normal")
    assert normal_coupons > 100  # coupons alone do not mean abuse


def test_float_start_and_short_period():
    start = 1_790_000_000.0
    recs = list(iter_applications(300, seed=1, days=2, start=start))
    assert all(start <= parse_application(split_truth(r)[0]).timestamp < start + 2 * 86400 for r in recs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n": 0}, "^n: "), ({"n": 10, "days": 0}, "^days: "), ({"n": 10, "mix": {"phishing": 1.0}}, "^mix: "),
    ({"n": 10, "mix": {"normal": 0.0}}, "^mix: "),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        next(iter_applications(**kwargs))
