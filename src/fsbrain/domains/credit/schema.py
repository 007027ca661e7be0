"""The loan-application request (``POST /v1/decisions/loan_application``) and its engine event data.

Identity values arrive raw. :func:`to_event_data` checks them (ID checksum, birth date and region, mobile
attribution, card BIN and Luhn), records what it found as flags, and replaces every raw identity value by
a keyed-hash token plus a masked form for screens. Bad checksums do not reject the request: forged
data is what the policy is there to catch. Field names of the result are documented in ``docs/credit.md``.

>>> from fsbrain.core.pii import Pseudonymizer
>>> app = parse_application({
...     "platform_id": "p1", "timestamp": "2026-11-02T10:00:00+08:00",
...     "applicant": {"name": "张三", "id_number": "11010519491231002X", "phone": "13800138000",
...                   "address": {"province": "北京", "city": "北京市", "detail": "朝阳路1号"}},
...     "loan": {"amount": 5000, "term_months": 12},
...     "device": {"device_id": "d1", "os": "android", "ip": "1.2.3.4"},
...     "account": {"account_id": "a1"}})
>>> data = to_event_data(app, Pseudonymizer(b"k" * 32))
>>> data["id_valid"], data["id_age"], data["id_phone_province_match"], data["id_number_masked"]
(True, 76, True, '110105********002X')
>>> "11010519491231002X" in str(data)
False
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, IPvAnyAddress, ValidationError

from fsbrain.core.errors import InputError
from fsbrain.core.pii import Pseudonymizer
from fsbrain.domains.credit import enrich

__all__ = [
    "Account", "Address", "Applicant", "Contact", "Device", "Gps", "Loan", "LoanApplication", "Residence",
    "parse_application", "to_event_data",
]

_MIN_TS = dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp()
_MAX_TS = dt.datetime(2100, 1, 1, tzinfo=dt.UTC).timestamp()


def _to_epoch(value: Any) -> Any:
    """Accept epoch seconds (or milliseconds), an ISO 8601 string or a datetime; UTC when no offset."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("not an ISO 8601 date-time or epoch seconds") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.timestamp()
    if isinstance(value, int | float):
        ts = float(value)
        if ts > _MAX_TS:  # epoch milliseconds
            ts /= 1000.0
        if not _MIN_TS <= ts < _MAX_TS:
            raise ValueError("must be between 2000-01-01 and 2100-01-01")
        return ts
    return value


Timestamp = Annotated[float, BeforeValidator(_to_epoch, json_schema_input_type=float | str)]

_M = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Address(BaseModel):
    """A postal address as the applicant stated it."""

    model_config = _M
    province: str = Field(min_length=1, max_length=20, description="Province, full or short form (广东省 or 广东).")
    city: str = Field(min_length=1, max_length=30, description="City (深圳市 or 深圳).")
    detail: str | None = Field(None, max_length=200, description="Street address; pseudonymised, never stored raw.")


class Residence(Address):
    """Where the applicant lives now, and how."""

    type: Literal["owned", "rented", "family", "dormitory", "other"] | None = Field(
        None, description="Housing: owned, rented, living with family, employer dormitory, other.")
    years: int | None = Field(None, ge=0, le=100, description="Years lived at this residence.")


class Applicant(BaseModel):
    """The person applying. Identity values are checked, then replaced by tokens and masks."""

    model_config = _M
    name: str = Field(min_length=1, max_length=50, description="Full name (pseudonymised).")
    id_number: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z \-]+$",
                           description="Resident ID number (GB 11643, 18 characters). A wrong checksum, "
                                       "date or region is flagged, not rejected.")
    phone: str = Field(min_length=5, max_length=20, pattern=r"^\+?[0-9 \-()]+$",
                       description="Mobile number (+86 optional). Attribution is looked up from its segment.")
    bank_card: str | None = Field(None, min_length=8, max_length=30, pattern=r"^[0-9 \-]+$",
                                  description="Bank card for disbursement; issuer from its BIN, Luhn checked.")
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                              description="E-mail address (pseudonymised; its domain is kept).")
    age: int | None = Field(None, ge=0, le=150, description="Age as stated; compared with the ID's birth date.")
    birth_date: dt.date | None = Field(None, description="Birth date as stated; compared with the ID.")
    gender: Literal["M", "F"] | None = Field(None, description="Sex as stated; compared with the ID.")
    education: Literal["primary", "secondary", "vocational", "college", "bachelor", "master", "doctor"] | None = (
        Field(None, description="Highest education."))
    marital_status: Literal["single", "married", "divorced", "widowed"] | None = Field(
        None, description="Marital status.")
    employer: str | None = Field(None, max_length=100, description="Employer name as stated.")
    occupation: str | None = Field(None, max_length=50, description="Job or occupation as stated.")
    monthly_income: float | None = Field(None, ge=0, le=10_000_000, description="Monthly income in CNY.")
    address: Address = Field(description="Home or registered address.")
    residence: Residence | None = Field(None, description="Current residence, when different or detailed.")


class Loan(BaseModel):
    """What is applied for."""

    model_config = _M
    amount: float = Field(gt=0, le=10_000_000, description="Amount applied for, CNY.")
    term_months: int = Field(ge=1, le=360, description="Term in months.")
    purpose: Literal["consumption", "education", "medical", "travel", "decoration", "business",
                     "debt_consolidation", "other"] = Field("consumption", description="Stated purpose.")
    product: str = Field("standard", min_length=1, max_length=50, description="Loan product identifier.")
    coupon_code: str | None = Field(None, max_length=50,
                                    description="New-user coupon or promotion code claimed, if any.")


class Gps(BaseModel):
    """Device location at application time."""

    model_config = _M
    lat: float = Field(ge=-90, le=90, description="Latitude, WGS84.")
    lon: float = Field(ge=-180, le=180, description="Longitude, WGS84.")


class Device(BaseModel):
    """The device and network the application came from."""

    model_config = _M
    device_id: str = Field(min_length=1, max_length=128, description="Device fingerprint or id.")
    os: Literal["android", "ios", "harmonyos", "windows", "macos", "linux", "other"] = Field(
        description="Operating system.")
    os_version: str | None = Field(None, max_length=32, description="OS version.")
    model: str | None = Field(None, max_length=64, description="Device model.")
    is_emulator: bool = Field(False, description="The SDK detected an emulator.")
    is_rooted: bool = Field(False, description="The SDK detected root / jailbreak.")
    app_version: str | None = Field(None, max_length=32, description="Client app version.")
    ip: IPvAnyAddress = Field(description="Client IP address (v4 or v6).")
    ip_type: Literal["residential", "mobile", "datacenter", "proxy", "vpn"] | None = Field(
        None, description="IP class from the caller's IP intelligence; `unknown` in the event when absent "
                          "(private addresses become `private`).")
    gps: Gps | None = Field(None, description="Location, when the user allowed it.")


class Contact(BaseModel):
    """An emergency contact."""

    model_config = _M
    name: str = Field(min_length=1, max_length=50, description="Contact's name (pseudonymised).")
    phone: str = Field(min_length=5, max_length=20, pattern=r"^\+?[0-9 \-()]+$",
                       description="Contact's mobile number (pseudonymised).")
    relation: Literal["parent", "spouse", "sibling", "child", "relative", "friend", "colleague", "other"] = Field(
        description="Relation to the applicant.")


class Account(BaseModel):
    """The applicant's account on the lending platform."""

    model_config = _M
    account_id: str = Field(min_length=1, max_length=64, description="Account id on the platform.")
    account_created_at: Timestamp | None = Field(None, description="When the account was opened.")
    is_new_user: bool = Field(False, description="First application on this platform (new-user offers apply).")


class LoanApplication(BaseModel):
    """A loan application (信贷进件) as sent to ``POST /v1/decisions/loan_application``."""

    model_config = _M
    event_id: str | None = Field(None, min_length=1, max_length=128,
                                 description="Idempotency key; the same id returns the stored decision.")
    timestamp: Timestamp | None = Field(None, description="Application time: ISO 8601 or epoch seconds; "
                                                          "now when absent.")
    platform_id: str = Field(min_length=1, max_length=64,
                             description="Lending platform or channel the application came through.")
    applicant: Applicant
    loan: Loan
    device: Device
    contacts: list[Contact] = Field(default_factory=list, max_length=10, description="Emergency contacts.")
    account: Account


def parse_application(data: Any) -> LoanApplication:
    """Validate a raw request body.

    Raises:
        InputError: naming the first bad field (dotted path) and the problem; ``detail`` lists all.
    """
    try:
        return LoanApplication.model_validate(data)
    except ValidationError as exc:
        errs = [{"field": ".".join(str(p) for p in e["loc"]) or "<body>", "problem": e["msg"]}
                for e in exc.errors()]
        first = errs[0]
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise InputError(f"{first['field']}: {first['problem']}{more}", detail=errs) from exc


def to_event_data(app: LoanApplication, pseudonymizer: Pseudonymizer, *, now: float | None = None) -> dict[str, Any]:
    """Flatten an application into the dict the rule engine reads, with identity values pseudonymised.

    Args:
        app: a validated application.
        pseudonymizer: the keyed hash for identity values.
        now: the time used when the application has no timestamp (default: the clock).

    Returns:
        A JSON-serialisable dict; no raw name, ID number, phone, card, e-mail, street address or contact
        name/phone appears in it. Field names are listed in docs/credit.md.
    """
    ts = app.timestamp if app.timestamp is not None else (time.time() if now is None else now)
    a, loan, dev, acc = app.applicant, app.loan, app.device, app.account
    h = pseudonymizer.hash
    out: dict[str, Any] = {"event_id": app.event_id, "timestamp": ts, "platform_id": app.platform_id}
    out.update(enrich.identity_fields(a.id_number, a.phone, a.bank_card, ts, h))
    out.update(enrich.applicant_fields(a, out, h))
    out.update({
        "loan_amount": loan.amount, "loan_term_months": loan.term_months, "loan_purpose": loan.purpose,
        "loan_product": loan.product, "coupon_code": loan.coupon_code, "has_coupon": bool(loan.coupon_code),
        "amount_income_ratio": round(loan.amount / a.monthly_income, 3) if (a.monthly_income or 0) >= 1 else None,
    })
    out.update(enrich.device_fields(dev))
    out.update(enrich.contact_fields(app.contacts, a, h))
    out.update({
        "account_id": acc.account_id, "account_created_at": acc.account_created_at,
        "account_age_days": (round((ts - acc.account_created_at) / 86400.0, 3)
                             if acc.account_created_at is not None else None),
        "is_new_user": acc.is_new_user,
    })
    out["copy_paste_count"] = sum(bool(out[k]) for k in enrich.COPY_PASTE_FLAGS)
    return out


def preload() -> None:
    """Load the identity code tables (region codes, phone segments, card BINs) ahead of the first event."""
    from fsbrain.domains.credit import identity

    identity.preload()
