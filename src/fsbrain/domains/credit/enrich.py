"""Field-level checks behind :func:`fsbrain.domains.credit.schema.to_event_data`.

Each helper returns a flat dict of event fields. Raw identity values go in, only tokens (``h:…``), masks
and derived facts (validity, age, attribution) come out.

>>> f = id_number_fields("11010519491231002X", 1_700_000_000.0)
>>> f["id_valid"], f["id_problem"], f["id_region_valid"], f["id_sex"]
(True, None, True, 'F')
>>> id_number_fields("110105194912310021", 1_700_000_000.0)["id_problem"]
'checksum'
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from stdnum.cn import ric

from fsbrain.core.pii import (
    mask_card,
    mask_id_number,
    mask_name,
    mask_phone,
    normalize_id_number,
    normalize_phone,
)
from fsbrain.domains.credit.identity import (
    card_issuer,
    id_region,
    luhn_ok,
    phone_attribution,
    province_code,
    province_name,
)

if TYPE_CHECKING:
    from fsbrain.domains.credit.schema import Applicant, Contact, Device

Hasher = Callable[[str, str], str]

_CN_TZ = dt.timezone(dt.timedelta(hours=8))
_MOBILE_RE = re.compile(r"1[3-9]\d{9}")
RISKY_IP_TYPES = frozenset({"datacenter", "proxy", "vpn"})
COPY_PASTE_FLAGS = ("employer_equals_address", "contact_phone_is_self", "contact_phones_duplicate",
                    "contact_name_is_applicant", "contact_names_duplicate")


def _age(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _birth(v: str) -> dt.date | None:
    """Birth date of an 18-digit (or first-generation 15-digit) ID number, if it is a real date."""
    try:
        if len(v) == 18:
            return dt.date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
        return dt.date(1900 + int(v[6:8]), int(v[8:10]), int(v[10:12]))
    except ValueError:
        return None


def id_number_fields(raw: str, ts: float) -> dict[str, Any]:
    """Format, birth date, checksum and GB/T 2260 region of a resident ID number; never raises."""
    v = normalize_id_number(raw)
    is18 = re.fullmatch(r"\d{17}[\dX]", v) is not None
    is15 = re.fullmatch(r"\d{15}", v) is not None
    birth = _birth(v) if (is18 or is15) else None
    checksum_ok = is18 and ric.calc_check_digit(v) == v[-1]
    problem = None
    if not is18:
        problem = "format"
    elif birth is None:
        problem = "birth_date"
    elif not checksum_ok:
        problem = "checksum"
    region = id_region(v[:6]) if (is18 or is15) else None
    on = dt.datetime.fromtimestamp(ts, _CN_TZ).date()
    age = _age(birth, on) if birth else None
    pcode = v[:2] if (is18 or is15) and province_name(v[:2]) else None
    return {
        "id_valid": problem is None,
        "id_problem": problem,
        "id_checksum_ok": checksum_ok,
        "id_age": age,
        "id_birth_year": birth.year if birth else None,
        "id_sex": ("M" if int(v[16 if is18 else 14]) % 2 else "F") if (is18 or is15) else None,
        "id_region_code": v[:6] if (is18 or is15) else None,
        "id_region_valid": region is not None and region.level != "province",
        "id_region_current": bool(region and region.current),
        "id_region_name": region.name if region else None,
        "id_region_retired_before_birth": bool(region and birth and region.last_revision // 100 < birth.year),
        "id_province_code": pcode,
        "id_province": province_name(pcode) if pcode else None,
    }


def phone_fields(raw: str) -> dict[str, Any]:
    """Validity and attribution (province, city, carrier) of a mobile number; never raises."""
    v = normalize_phone(raw)
    info = phone_attribution(v) if _MOBILE_RE.fullmatch(v) else None
    return {
        "phone_valid": _MOBILE_RE.fullmatch(v) is not None,
        "phone_segment_known": info is not None,
        "phone_province": info.province if info else None,
        "phone_province_code": info.province_code if info else None,
        "phone_city": info.city if info else None,
        "phone_city_code": info.city_code if info else None,
        "phone_carrier": info.carrier if info else None,
        "phone_virtual": bool(info and info.virtual),
    }


def card_fields(raw: str | None) -> dict[str, Any]:
    """Luhn validity, issuer and length check of a bank card; never raises."""
    if raw is None:
        return {"card_present": False, "card_valid": None, "card_bin_known": None, "card_bank": None,
                "card_bank_code": None, "card_type": None, "card_length_ok": None}
    v = re.sub(r"[\s\-]", "", raw)
    info = card_issuer(v)
    valid = v.isdigit() and 12 <= len(v) <= 19 and (info.luhn_valid if info else luhn_ok(v))
    return {
        "card_present": True,
        "card_valid": valid,
        "card_bin_known": info is not None,
        "card_bank": info.bank_name if info else None,
        "card_bank_code": info.bank_code if info else None,
        "card_type": info.card_type if info else None,
        "card_length_ok": info.length_ok if info else None,
    }


def _same(a: str | None, b: str | None) -> bool | None:
    return None if a is None or b is None else a == b


def _city_match(phone_city: str | None, city: str | None) -> bool | None:
    if not phone_city or not city:
        return None
    return city.startswith(phone_city) or phone_city.startswith(city)


def _norm_text(s: str | None) -> str:
    return re.sub(r"[\s,，.。\-#]", "", s or "").lower()


def _mask_email(email: str) -> str:
    user, _, domain = email.rpartition("@")
    return f"{user[:1]}***@{domain.lower()}"


def identity_fields(id_number: str, phone: str, bank_card: str | None, ts: float, h: Hasher) -> dict[str, Any]:
    """ID, phone and card checks plus their tokens and masks, and the ID/phone province match."""
    out: dict[str, Any] = {
        "id_number": h("id_number", id_number), "id_number_masked": mask_id_number(id_number),
        "phone": h("phone", phone), "phone_masked": mask_phone(phone),
        "bank_card": h("bank_card", bank_card) if bank_card else None,
        "bank_card_masked": mask_card(bank_card) if bank_card else None,
    }
    out.update(id_number_fields(id_number, ts))
    out.update(phone_fields(phone))
    out.update(card_fields(bank_card))
    out["id_phone_province_match"] = _same(out["id_province_code"], out["phone_province_code"])
    return out


def applicant_fields(a: Applicant, ident: dict[str, Any], h: Hasher) -> dict[str, Any]:
    """Stated personal, work and address facts, compared with what the ID and phone say."""
    addr, res = a.address, a.residence
    apc = province_code(addr.province)
    id_age, id_birth = ident["id_age"], None
    if ident["id_problem"] in (None, "checksum") and ident["id_birth_year"] is not None:
        id_birth = _birth(normalize_id_number(a.id_number))
    addr_key = f"{apc or addr.province}|{addr.city}|{_norm_text(addr.detail)}"
    res_key = f"{province_code(res.province) or res.province}|{res.city}|{_norm_text(res.detail)}" if res else None
    emp, detail = _norm_text(a.employer), _norm_text(addr.detail)
    return {
        "applicant_name": h("name", a.name), "applicant_name_masked": mask_name(a.name),
        "email": h("email", a.email.lower()) if a.email else None,
        "email_masked": _mask_email(a.email) if a.email else None,
        "email_domain": a.email.rsplit("@", 1)[1].lower() if a.email else None,
        "age_stated": a.age,
        "age_mismatch": None if a.age is None or id_age is None else abs(a.age - id_age) > 1,
        "birth_date_mismatch": None if a.birth_date is None or id_birth is None else a.birth_date != id_birth,
        "gender_mismatch": _same(a.gender, ident["id_sex"]) is False if a.gender and ident["id_sex"] else None,
        "education": a.education, "marital_status": a.marital_status,
        "employer": a.employer, "employer_missing": not a.employer, "occupation": a.occupation,
        "monthly_income": a.monthly_income,
        "address_province": addr.province, "address_province_code": apc, "address_city": addr.city,
        "address": h("address", addr_key), "address_masked": f"{addr.province}{addr.city}***",
        "address_detail_present": bool(addr.detail),
        "residence": h("address", res_key) if res_key else None,
        "residence_province_code": province_code(res.province) if res else None,
        "residence_city": res.city if res else None,
        "residence_type": res.type if res else None, "residence_years": res.years if res else None,
        "address_phone_province_match": _same(apc, ident["phone_province_code"]),
        "address_phone_city_match": _city_match(ident["phone_city"], addr.city),
        "id_address_province_match": _same(ident["id_province_code"], apc),
        "employer_equals_address": bool(emp and detail and (emp == detail or emp in detail or detail in emp)),
    }


@functools.lru_cache(maxsize=65536)
def _is_private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """``ip.is_private`` (a scan of a dozen networks), cached: the same addresses come back often."""
    return ip.is_private


def device_fields(d: Device) -> dict[str, Any]:
    """Device, network and location facts; ``ip_prefix`` is the /24 (IPv4) or /48 (IPv6) network."""
    ip = d.ip
    if ip.version == 4:
        prefix = str(ip).rsplit(".", 1)[0] + ".0/24"
    else:
        prefix = str(ipaddress.ip_network(f"{ip}/48", strict=False))
    private = _is_private(ip)
    ip_type = d.ip_type or ("private" if private else "unknown")
    return {
        "device_id": d.device_id, "device_os": d.os, "os_version": d.os_version, "device_model": d.model,
        "device_is_emulator": d.is_emulator, "device_is_rooted": d.is_rooted, "app_version": d.app_version,
        "ip": str(ip), "ip_version": ip.version, "ip_prefix": prefix, "ip_type": ip_type,
        "ip_is_private": private, "ip_risky": ip_type in RISKY_IP_TYPES,
        "gps_present": d.gps is not None,
        "gps_lat": d.gps.lat if d.gps else None, "gps_lon": d.gps.lon if d.gps else None,
    }


def contact_fields(contacts: Sequence[Contact], a: Applicant, h: Hasher) -> dict[str, Any]:
    """Emergency contacts as tokens, with self-reference and duplicate checks."""
    phones = [normalize_phone(c.phone) for c in contacts]
    names = [c.name.strip() for c in contacts]
    own = normalize_phone(a.phone)
    tokens = [h("phone", p) for p in phones]
    return {
        "contacts_count": len(contacts),
        "contact_phones": tokens,
        "contact_phone_1": tokens[0] if tokens else None,
        "contact_phone_2": tokens[1] if len(tokens) > 1 else None,
        "contact_names": [h("name", n) for n in names],
        "contact_relations": [c.relation for c in contacts],
        "contact_phones_masked": [mask_phone(p) for p in phones],
        "contact_phone_invalid_count": sum(_MOBILE_RE.fullmatch(p) is None for p in phones),
        "contact_phone_is_self": own in phones,
        "contact_phones_duplicate": len(set(phones)) < len(phones),
        "contact_name_is_applicant": a.name.strip() in names,
        "contact_names_duplicate": len(set(names)) < len(names),
    }
