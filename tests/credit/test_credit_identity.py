"""Identity enrichment: region codes, phone attribution, card issuers; conformance against ../shared/data."""

from __future__ import annotations

import csv
import doctest
import gzip
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.domains.credit import identity
from fsbrain.domains.credit.identity import (
    card_issuer,
    id_region,
    phone_attribution,
    phone_table,
    province_code,
)

REPO = Path(__file__).resolve().parents[2]
DATA = resources.files("fsbrain.domains.credit").joinpath("data")
TABLES = ("regions.csv.gz", "phone_cities.csv.gz", "phone_ranges.csv.gz", "bins.csv.gz", "banks.csv.gz")


def test_doctests_of_identity_modules():
    from fsbrain.domains.credit import enrich, schema, sim_people, simulator

    for mod in (identity, enrich, schema, sim_people, simulator):
        res = doctest.testmod(mod)
        assert res.failed == 0 and res.attempted > 0, mod.__name__


def test_region_current_historical_and_unknown():
    r = id_region("440305")
    assert (r.name, r.province, r.prefecture, r.level, r.current) == ("南山区", "广东省", "深圳市", "county", True)
    old = id_region("429001")  # 随州市 as a county-level city under Hubei, renumbered in 2000
    assert old is not None and not old.current and old.last_revision < 201904
    assert id_region("110000").level == "province"
    assert id_region("999999") is None and id_region("11010") is None and id_region("abcdef") is None


def test_province_code_forms():
    assert province_code("内蒙古") == province_code("内蒙古自治区") == "15"
    assert province_code("440305") == "44"
    assert province_code("火星") is None and province_code("") is None and province_code("99") is None


def test_phone_attribution_known_and_malformed():
    info = phone_attribution("+86 138-0013-8000")
    assert (info.province, info.city, info.carrier, info.province_code, info.city_code) == (
        "北京", "北京", "移动", "11", "1101")
    assert phone_attribution("12345") is None and phone_attribution("10012345678") is None


def test_phone_vectorised_lookup_matches_scalar():
    t = phone_table()
    rng = np.random.default_rng(5)
    segs = rng.integers(1_300_000, 2_000_000, 2000)
    idx = t.lookup_index(segs)
    for s, i in zip(segs[:300], idx[:300], strict=True):
        info = t.info(int(s))
        assert (info is None) == (i < 0)
    assert (idx >= 0).mean() > 0.2


def test_card_issuer_length_and_luhn():
    info = card_issuer("6222 0212 3456 7890 128")
    assert (info.bank_code, info.card_type, info.length_ok, info.luhn_valid) == ("ICBC", "DC", True, True)
    assert info.card_type_name == "储蓄卡"
    short = card_issuer("62220212345678")
    assert short is not None and short.length_ok is False
    assert card_issuer("0000000000000000") is None and card_issuer("not a card") is None


def test_shipped_tables_are_small_and_own_format():
    total = sum(len(DATA.joinpath(name).read_bytes()) for name in TABLES)
    assert total < 3_000_000
    header = gzip.decompress(DATA.joinpath("phone_ranges.csv.gz").read_bytes()).split(b"\n", 1)[0]
    assert header == b"gap,count,city_idx,carrier_type"


# ---------------------------------------------------------------- conformance against ../shared/data


@pytest.mark.conformance
def test_every_gb2260_code_ever_is_known(shared_data):
    with (shared_data("gb2260") / "all_codes_ever.tsv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) > 7000
    for row in rows:
        r = id_region(row["code"])
        assert r is not None, row
        assert r.first_revision <= int(row["first_revision"]) and r.last_revision >= int(row["last_revision"])


@pytest.mark.conformance
def test_phone_segments_match_corpus(shared_data):
    path = shared_data("phone-segments") / "cn_mobile_segments.csv.gz"
    carriers = {1: "移动", 2: "联通", 3: "电信", 4: "电信", 5: "联通", 6: "移动", 7: "广电", 8: "广电"}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            if n % 211:
                continue
            info = phone_attribution(row["prefix7"] + "0000")
            assert info is not None, row
            assert (info.province, info.city, info.area_code) == (row["province"], row["city"], row["area_code"])
            assert info.carrier == carriers[int(row["carrier_type"])]
            assert info.virtual == (int(row["carrier_type"]) in (4, 5, 6, 8))


@pytest.mark.conformance
def test_phone_province_agrees_with_libphonenumber(shared_data):
    path = shared_data("phone-segments") / "libphonenumber_cn_geocode.csv.gz"
    agree = total = 0
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            if len(row["prefix"]) != 9 or n % 37:
                continue
            info = phone_attribution(row["prefix"][2:] + "0000")
            if info is None:
                continue
            total += 1
            agree += row["zh"].startswith(info.province)
    assert total > 1000 and agree / total > 0.9


@pytest.mark.conformance
def test_every_bin_resolves(shared_data):
    with (shared_data("bank-bin") / "cn_bank_bin_merged.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        number = row["bin"] + "0" * (int(row["card_length"]) - len(row["bin"]))
        info = card_issuer(number)
        assert info is not None and info.bin.startswith(row["bin"][: len(info.bin)]), row
        if info.bin == row["bin"]:
            assert info.length_ok


@pytest.mark.conformance
def test_build_script_reproduces_shipped_tables(shared_data, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_identity_tables", REPO / "scripts" / "build_identity_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shared = shared_data("gb2260").parent
    assert mod.main(["--shared", str(shared), "--out", str(tmp_path)]) == 0
    corpus = {hashlib.sha256(p.read_bytes()).hexdigest() for p in shared.rglob("*") if p.is_file()}
    for name in TABLES:
        built = (tmp_path / name).read_bytes()
        shipped = DATA.joinpath(name).read_bytes()
        assert gzip.decompress(built) == gzip.decompress(shipped), f"{name} is stale: rerun the build script"
        assert hashlib.sha256(shipped).hexdigest() not in corpus


def test_public_names():
    import fsbrain.domains.credit as credit

    assert set(credit.__all__) == {"EVENT_TYPE", "CardInfo", "LoanApplication", "PhoneInfo", "Region",
                                   "card_issuer", "id_region", "parse_application", "phone_attribution",
                                   "to_event_data"}
    assert all(hasattr(credit, name) for name in credit.__all__)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\A[0-9]{1,19}\Z"))
def test_luhn_ok_agrees_with_stdnum(digits):
    from stdnum import luhn

    assert identity.luhn_ok(digits) == luhn.is_valid(digits)
