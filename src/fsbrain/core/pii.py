"""Identity fields: validation, keyed pseudonymisation and masking.

Chinese resident ID numbers (GB 11643: checksum, birth date, region), mobile numbers and bank cards (Luhn)
are validated, then replaced by a keyed hash (HMAC-SHA256) before anything is stored or logged. Screens show
masked values only.

>>> p = Pseudonymizer(b"k" * 32)
>>> p.hash("id_number", "11010519491231002X") == p.hash("id_number", "11010519491231002x")
True
>>> mask_id_number("11010519491231002X")
'110105********002X'
>>> mask_phone("13812345678")
'138****5678'
>>> mask_card("6222021234567890123")
'622202*********0123'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from stdnum import luhn
from stdnum.cn import ric

from fsbrain.core.errors import InputError

_MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
_PHONE_JUNK = re.compile(r"[\s\-()]")
_CARD_JUNK = re.compile(r"[\s\-]")
_CARD_RE = re.compile(r"^\d{12,19}$")

# field kinds -> normaliser
PII_KINDS = ("id_number", "phone", "bank_card", "name", "email", "address")


@dataclass(frozen=True, slots=True)
class IdNumberInfo:
    """What a valid resident ID number says about its holder."""

    region_code: str
    birth_date: dt.date
    sex: str  # "M" or "F"

    def age_on(self, day: dt.date) -> int:
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years


def normalize_id_number(value: str) -> str:
    return str(value).strip().replace(" ", "").upper()


def validate_id_number(value: str, *, field: str = "id_number") -> IdNumberInfo:
    """Validate a GB 11643 resident ID number (18 digits, checksum, real birth date).

    Region codes are checked against the national table by :mod:`fsbrain.domains.credit.identity`;
    here only the format, checksum and date are enforced.

    Raises:
        InputError: naming ``field`` and what is wrong.
    """
    v = normalize_id_number(value)
    if not re.fullmatch(r"\d{17}[\dX]", v):
        raise InputError(f"{field}: must be 18 characters, 17 digits and a check digit (0-9 or X)")
    try:
        birth = dt.date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        raise InputError(f"{field}: birth date {v[6:14]} is not a real date") from None
    if ric.calc_check_digit(v) != v[-1]:
        raise InputError(f"{field}: check digit is wrong (GB 11643)")
    return IdNumberInfo(region_code=v[:6], birth_date=birth, sex="M" if int(v[16]) % 2 else "F")


def id_number_is_valid(value: str) -> bool:
    try:
        validate_id_number(value)
        return True
    except InputError:
        return False


def normalize_phone(value: str) -> str:
    if type(value) is str and value.isdigit():
        return value
    v = _PHONE_JUNK.sub("", str(value))
    if v.startswith("+86"):
        v = v[3:]
    elif v.startswith("0086"):
        v = v[4:]
    return v


def validate_phone(value: str, *, field: str = "phone") -> str:
    """Validate a mainland-China mobile number (11 digits, 1[3-9]…); returns it normalised."""
    v = normalize_phone(value)
    if not _MOBILE_RE.fullmatch(v):
        raise InputError(f"{field}: not a mainland-China mobile number (11 digits starting 13-19)")
    return v


def validate_bank_card(value: str, *, field: str = "bank_card") -> str:
    """Validate a bank card number (12–19 digits, Luhn); returns it normalised."""
    v = re.sub(r"[\s\-]", "", str(value))
    if not _CARD_RE.fullmatch(v):
        raise InputError(f"{field}: must be 12 to 19 digits")
    if not luhn.is_valid(v):
        raise InputError(f"{field}: Luhn check digit is wrong")
    return v


def mask_id_number(value: str) -> str:
    v = normalize_id_number(value)
    return v[:6] + "*" * 8 + v[-4:] if len(v) >= 12 else "*" * len(v)


def mask_phone(value: str) -> str:
    v = normalize_phone(value)
    return v[:3] + "****" + v[-4:] if len(v) >= 8 else "*" * len(v)


def mask_card(value: str) -> str:
    v = re.sub(r"\D", "", str(value))
    return v[:6] + "*" * (len(v) - 10) + v[-4:] if len(v) >= 12 else "*" * len(v)


def mask_name(value: str) -> str:
    v = str(value)
    return v[:1] + "*" * (len(v) - 1) if v else v


def mask(kind: str, value: str) -> str:
    """Mask a raw identity value of the given kind for display."""
    return {
        "id_number": mask_id_number,
        "phone": mask_phone,
        "bank_card": mask_card,
        "name": mask_name,
    }.get(kind, lambda v: "*" * min(len(str(v)), 8))(value)


_NORMALIZERS = {
    "id_number": normalize_id_number,
    "phone": normalize_phone,
    "bank_card": lambda v: v if type(v) is str and v.isdigit() else _CARD_JUNK.sub("", str(v)),
}


class Pseudonymizer:
    """Keyed hash (HMAC-SHA256) of identity values; the same value and kind always map to the same token.

    Args:
        key: secret key, at least 16 bytes. Keep it out of the repository; see :func:`load_or_create_key`.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise InputError("pseudonymisation key must be at least 16 bytes")
        self.key = key
        # a keyed HMAC state copied per value: cheaper than hmac.digest(), and unlike the one-shot call it
        # does not release the GIL (each release lets the decision writer thread cut in on the request)
        base = hmac.new(key, digestmod=hashlib.sha256)
        self._base = getattr(base, "_hmac", None) or base  # OpenSSL's HMAC object where present: C copy()

    def hash(self, kind: str, value: str) -> str:
        fn = _NORMALIZERS.get(kind)
        norm = fn(value) if fn is not None else str(value).strip()
        h = self._base.copy()
        h.update(f"{kind}:{norm}".encode())
        return "h:" + h.hexdigest()[:32]

    @staticmethod
    def is_token(value: object) -> bool:
        return isinstance(value, str) and value.startswith("h:") and len(value) == 34


def load_or_create_key(path: Path | None = None) -> bytes:
    """The pseudonymisation key: ``FSBRAIN_PII_KEY`` (hex) if set, else a key file created once (mode 0600)."""
    env = os.environ.get("FSBRAIN_PII_KEY")
    if env:
        try:
            key = bytes.fromhex(env)
        except ValueError:
            raise InputError("FSBRAIN_PII_KEY must be hex") from None
        if len(key) < 16:
            raise InputError("FSBRAIN_PII_KEY must be at least 32 hex characters")
        return key
    path = path or Path(os.environ.get("FSBRAIN_HOME", ".fsbrain")) / "pii.key"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key
