"""LoanApplication validation and to_event_data: flags, tokens, masks, no raw identity values."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.core.errors import InputError
from fsbrain.core.pii import Pseudonymizer
from fsbrain.domains.credit.schema import LoanApplication, parse_application, to_event_data

KEY = Pseudonymizer(b"test-key-0123456789abcdef")

# 11010519491231002X is the GB 11643 worked example (valid checksum, Beijing Chaoyang)
GOOD = {
    "event_id": "e-1",
    "timestamp": "2026-11-02T10:00:00+08:00",
    "platform_id": "plat-a",
    "applicant": {
        "name": "王小明", "id_number": "11010519491231002X", "phone": "+86 138-0013-8000",
        "bank_card": "6222 0212 3456 7890 128", "email": "Xiao.Ming@Example.com", "age": 76,
        "gender": "F", "employer": "北京某某科技有限公司", "occupation": "engineer", "monthly_income": 18000,
        "address": {"province": "北京市", "city": "北京市", "detail": "朝阳区建国路88号"},
        "residence": {"province": "北京", "city": "北京", "detail": "朝阳区建国路88号", "type": "rented",
                      "years": 3},
    },
    "loan": {"amount": 20000, "term_months": 12, "purpose": "consumption", "product": "cash-12",
             "coupon_code": "NEW50"},
    "device": {"device_id": "dev-1", "os": "android", "is_emulator": False, "is_rooted": False,
               "app_version": "5.2.0", "ip": "36.112.1.9", "ip_type": "mobile", "gps": {"lat": 39.9, "lon": 116.4}},
    "contacts": [{"name": "王大明", "phone": "13912345678", "relation": "parent"},
                 {"name": "李红", "phone": "18611112222", "relation": "friend"}],
    "account": {"account_id": "acc-1", "account_created_at": 1762000000, "is_new_user": True},
}
RAW_VALUES = ["王小明", "11010519491231002X", "13800138000", "6222021234567890128", "138-0013-8000",
              "Xiao.Ming@Example.com", "xiao.ming", "建国路88号", "王大明", "李红", "13912345678", "18611112222"]


def _app(**changes) -> dict:
    data = copy.deepcopy(GOOD)
    for path, value in changes.items():
        node = data
        parts = path.split("__")
        for p in parts[:-1]:
            node = node[p]
        if value is ...:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value
    return data


def test_good_application_flags():
    d = to_event_data(parse_application(GOOD), KEY)
    assert d["timestamp"] == dt.datetime(2026, 11, 2, 2, tzinfo=dt.UTC).timestamp()
    assert d["id_valid"] is True and d["id_problem"] is None and d["id_region_valid"] is True
    assert d["id_age"] == 76 and d["id_sex"] == "F" and d["age_mismatch"] is False
    assert d["id_province_code"] == "11" and d["id_region_name"] == "朝阳区"
    assert (d["phone_valid"], d["phone_province"], d["phone_carrier"]) == (True, "北京", "移动")
    assert d["id_phone_province_match"] is True and d["address_phone_province_match"] is True
    assert d["card_valid"] is True and d["card_bank_code"] == "ICBC" and d["card_length_ok"] is True
    assert d["id_number_masked"] == "110105********002X" and d["phone_masked"] == "138****8000"
    assert d["ip_prefix"] == "36.112.1.0/24" and d["ip_type"] == "mobile" and d["ip_risky"] is False
    assert d["contacts_count"] == 2 and d["copy_paste_count"] == 0
    assert d["has_coupon"] is True and d["is_new_user"] is True
    assert d["account_age_days"] == pytest.approx((d["timestamp"] - 1762000000) / 86400, abs=0.01)
    assert KEY.is_token(d["id_number"]) and KEY.is_token(d["phone"]) and KEY.is_token(d["bank_card"])
    assert all(KEY.is_token(t) for t in d["contact_phones"] + d["contact_names"])


def test_no_raw_identity_value_in_event_data():
    text = json.dumps(to_event_data(parse_application(GOOD), KEY), ensure_ascii=False)
    for raw in RAW_VALUES:
        assert raw not in text, raw


def test_tokens_are_stable_across_formatting():
    a = to_event_data(parse_application(GOOD), KEY)
    b = to_event_data(parse_application(_app(applicant__phone="13800138000",
                                             applicant__id_number="11010519491231002x")), KEY)
    assert a["phone"] == b["phone"] and a["id_number"] == b["id_number"]


def test_bad_checksum_is_flagged_not_rejected():
    d = to_event_data(parse_application(_app(applicant__id_number="110105194912310021")), KEY)
    assert d["id_valid"] is False and d["id_problem"] == "checksum" and d["id_checksum_ok"] is False
    assert d["id_age"] == 76  # the stated birth date is still read


@pytest.mark.parametrize(("id_number", "problem", "region_valid"), [
    ("110105194902300027", "birth_date", True),
    ("12345", "format", False),
    ("999999199001011234", "checksum", False),
])
def test_id_problems(id_number, problem, region_valid):
    d = to_event_data(parse_application(_app(applicant__id_number=id_number)), KEY)
    assert d["id_problem"] == problem and d["id_region_valid"] is region_valid


def test_mismatches_and_copy_paste():
    d = to_event_data(parse_application(_app(
        applicant__phone="13002301234",  # a Chongqing segment, while the ID and address say Beijing
        applicant__age=30, applicant__gender="M", applicant__employer="朝阳区建国路88号",
        contacts=[{"name": "王小明", "phone": "13002301234", "relation": "friend"},
                  {"name": "王小明", "phone": "130 0230 1234", "relation": "friend"}])), KEY)
    assert d["age_mismatch"] is True and d["gender_mismatch"] is True
    assert d["employer_equals_address"] and d["contact_phone_is_self"] and d["contact_phones_duplicate"]
    assert d["contact_name_is_applicant"] and d["contact_names_duplicate"]
    assert d["copy_paste_count"] == 5
    assert d["phone_province_code"] == "50" and d["id_phone_province_match"] is False
    assert d["address_phone_province_match"] is False and d["address_phone_city_match"] is False


def test_optional_fields_absent_and_now_default():
    data = _app(timestamp=..., event_id=..., contacts=..., applicant__bank_card=..., applicant__email=...,
                applicant__residence=..., device__gps=..., device__ip_type=...)
    d = to_event_data(parse_application(data), KEY, now=1_780_000_000.0)
    assert d["timestamp"] == 1_780_000_000.0 and d["event_id"] is None
    assert d["card_present"] is False and d["bank_card"] is None and d["contacts_count"] == 0
    assert d["ip_type"] == "unknown" and d["gps_present"] is False


def test_private_ip_type_and_epoch_ms():
    d = to_event_data(parse_application(_app(device__ip="10.1.2.3", device__ip_type=...,
                                             timestamp=1_780_000_000_123)), KEY)
    assert d["ip_type"] == "private" and d["timestamp"] == pytest.approx(1_780_000_000.123)


@pytest.mark.parametrize(("changes", "field"), [
    ({"applicant__monthly_income": -1}, "applicant.monthly_income"),
    ({"loan__amount": 0}, "loan.amount"),
    ({"loan__amount": 1e12}, "loan.amount"),
    ({"loan__term_months": "twelve"}, "loan.term_months"),
    ({"device__ip": "not-an-ip"}, "device.ip"),
    ({"device__ip_type": "tor"}, "device.ip_type"),
    ({"applicant__phone": "call me"}, "applicant.phone"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"timestamp": 12}, "timestamp"),
    ({"platform_id": ...}, "platform_id"),
    ({"applicant__surprise": 1}, "applicant.surprise"),
    ({"contacts": [{"name": "x", "phone": "13800138000", "relation": "boss"}]}, "contacts.0.relation"),
])
def test_bad_input_names_the_field(changes, field):
    with pytest.raises(InputError, match="^" + re.escape(field) + ": ") as exc:
        parse_application(_app(**changes))
    assert exc.value.http_status == 422 and exc.value.detail[0]["field"] == field


def test_extra_top_level_field_and_non_object():
    with pytest.raises(InputError, match="^hacker: Extra inputs"):
        parse_application(_app(hacker=True))
    with pytest.raises(InputError, match="^<body>: "):
        parse_application([1, 2])


def test_openapi_schema_has_descriptions():
    props = LoanApplication.model_json_schema()["$defs"]["Applicant"]["properties"]
    assert "GB 11643" in props["id_number"]["description"]


_texts = st.text(min_size=1, max_size=12).filter(lambda s: s.strip())


@settings(max_examples=60, deadline=None)
@given(name=_texts, id_number=st.from_regex(r"\A[0-9]{17}[0-9X]\Z"),
       phone=st.from_regex(r"\A1[3-9][0-9]{9}\Z"), detail=_texts)
def test_hypothesis_never_leaks_and_never_crashes(name, id_number, phone, detail):
    app = parse_application(_app(applicant__name=name, applicant__id_number=id_number,
                                 applicant__phone=phone, applicant__address__detail=detail,
                                 applicant__employer=None, contacts=[]))
    d = to_event_data(app, KEY)
    text = json.dumps({k: v for k, v in d.items() if not k.endswith("_masked")}, ensure_ascii=False)
    assert id_number not in text and phone not in text
    assert d["id_valid"] == (d["id_problem"] is None)
