"""Argument checks shared by the store repositories.

Bad arguments raise :class:`~fsbrain.core.errors.InputError` naming the argument, before anything is
written. The identity guard keeps raw resident ID numbers, mobile numbers and (for identity kinds) bank
card numbers out of the database: callers must pass keyed-hash tokens (:class:`fsbrain.core.pii.Pseudonymizer`)
and masked display strings.

>>> looks_like_raw_identity("11010519491231002X")
'id_number'
>>> looks_like_raw_identity("h:" + "0" * 32) is None
True
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from stdnum import luhn

from fsbrain.core.errors import InputError
from fsbrain.core.pii import PII_KINDS, id_number_is_valid, normalize_phone

MAX_LIMIT = 10_000
_MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
_DIGITS_RE = re.compile(r"^\d{12,19}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

IDENTITY_KINDS = frozenset(PII_KINDS)
"""Entity kinds whose list values must be keyed-hash tokens (``h:`` + 32 hex)."""

_IDENTITY_SUFFIXES = ("_id_number", "_phone", "_bank_card", "_email")


def is_identity_kind(entity_type: str) -> bool:
    """Whether list values of this entity type are personal identity values (tokens required).

    The PII kinds themselves and names ending in one of the unambiguous kinds, e.g. ``contact_phone``.

    >>> [is_identity_kind(k) for k in ("phone", "contact_phone", "device_id", "ip_address")]
    [True, True, False, False]
    """
    return entity_type in IDENTITY_KINDS or entity_type.endswith(_IDENTITY_SUFFIXES)


def looks_like_raw_identity(value: str, *, with_cards: bool = False) -> str | None:
    """The identity kind a raw string looks like (``id_number``, ``phone``, ``bank_card``), else ``None``.

    Args:
        value: the string to inspect.
        with_cards: also flag 12–19 digit Luhn-valid numbers (off for free-form payloads, where device
            IMEIs and order numbers can pass a Luhn check by chance).
    """
    if not isinstance(value, str) or len(value) > 24:
        return None
    v = value.strip()
    if len(v) == 18 and id_number_is_valid(v):
        return "id_number"
    if _MOBILE_RE.fullmatch(normalize_phone(v)) and re.fullmatch(r"[+\d\s\-()]+", v):
        return "phone"
    if with_cards and _DIGITS_RE.fullmatch(re.sub(r"[\s\-]", "", v)) and luhn.is_valid(re.sub(r"[\s\-]", "", v)):
        return "bank_card"
    return None


def find_raw_identity(obj: Any, path: str = "") -> tuple[str, str] | None:
    """The first ``(path, kind)`` in a JSON-like value holding a raw ID number or mobile number."""
    if isinstance(obj, str):
        kind = looks_like_raw_identity(obj)
        return (path or "$", kind) if kind else None
    if isinstance(obj, dict):
        for key, val in obj.items():
            hit = find_raw_identity(val, f"{path}.{key}" if path else str(key))
            if hit:
                return hit
    elif isinstance(obj, (list, tuple)):
        for i, val in enumerate(obj):
            hit = find_raw_identity(val, f"{path}[{i}]")
            if hit:
                return hit
    return None


# A raw ID or mobile number can only hide in a JSON string made of digits (and phone punctuation): when
# the serialised value has no such string, the walk below cannot find anything and is skipped.
_CANDIDATE_RE = re.compile(r'"(?:\d{17}[\dXx]|[+\d\s\-()]{11,24})"')


def require_no_raw_identity(obj: Any, what: str) -> None:
    """Raise :class:`InputError` when ``obj`` carries a raw identity value."""
    try:
        if not _CANDIDATE_RE.search(json.dumps(obj, default=str)):
            return
    except (TypeError, ValueError):
        pass
    hit = find_raw_identity(obj)
    if hit:
        raise InputError(f"{what}: field {hit[0]} holds a raw {hit[1]}; pseudonymise it before storing")


_SUSPECT_ESCAPE_RE = re.compile(r"\\u(0000|d[89a-f][0-9a-f]{2})")


def _bad_string(value: str) -> str | None:
    """Why a string cannot be stored on every backend (NUL, lone surrogate), else ``None``."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate)"
    return None


def find_bad_string(obj: Any, path: str) -> tuple[str, str] | None:
    if isinstance(obj, str):
        why = _bad_string(obj)
        return (path or "$", why) if why else None
    if isinstance(obj, dict):
        for key, val in obj.items():
            sub = f"{path}.{key}" if path else str(key)
            why = _bad_string(key) if isinstance(key, str) else None
            hit = (sub, "key " + why) if why else find_bad_string(val, sub)
            if hit:
                return hit
    elif isinstance(obj, (list, tuple)):
        for i, val in enumerate(obj):
            hit = find_bad_string(val, f"{path}[{i}]")
            if hit:
                return hit
    return None


def json_value(value: Any, name: str) -> Any:
    """Check that ``value`` is strict, storable JSON and return it unchanged.

    Refuses NaN/Infinity, non-JSON objects, and strings PostgreSQL cannot hold (NUL, lone surrogates), so
    SQLite and PostgreSQL accept exactly the same data.

    Raises:
        InputError: naming ``name`` (and the path inside it) and the problem.
    """
    try:
        dumped = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name}: not JSON-serialisable ({err})") from err
    if _SUSPECT_ESCAPE_RE.search(dumped):
        hit = find_bad_string(value, "")
        if hit:
            raise InputError(f"{name}: {hit[0]} {hit[1]}")
    return value


def text(value: Any, name: str, *, max_len: int, allow_empty: bool = False) -> str:
    """Check a string argument's type, length and content; returns it stripped."""
    if not isinstance(value, str):
        raise InputError(f"{name}: must be a string, got {type(value).__name__}")
    why = _bad_string(value)
    if why:
        raise InputError(f"{name}: {why}")
    v = value.strip()
    if not v and not allow_empty:
        raise InputError(f"{name}: must not be empty")
    if len(v) > max_len:
        raise InputError(f"{name}: at most {max_len} characters (got {len(v)})")
    return v


def identifier(value: Any, name: str) -> str:
    """A lower-case identifier: letter first, then letters, digits or ``_`` (at most 32)."""
    v = text(value, name, max_len=32)
    if not _NAME_RE.fullmatch(v):
        raise InputError(f"{name}: {v!r} must be lower-case letters, digits and _ (letter first)")
    return v


def choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    """One of ``options``."""
    if value not in options:
        raise InputError(f"{name}: {value!r} is not one of {', '.join(options)}")
    return str(value)


def timestamp(value: Any, name: str, *, optional: bool = True) -> float | None:
    """An epoch-seconds float (finite, non-negative) or ``None`` when optional."""
    if value is None:
        if optional:
            return None
        raise InputError(f"{name}: required")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name}: must be epoch seconds (a number), got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise InputError(f"{name}: must be a finite, non-negative number of epoch seconds")
    return v


def page(limit: Any, offset: Any) -> tuple[int, int]:
    """Validate ``limit`` (1..MAX_LIMIT) and ``offset`` (>= 0)."""
    for name, val in (("limit", limit), ("offset", offset)):
        if isinstance(val, bool) or not isinstance(val, int):
            raise InputError(f"{name}: must be an integer")
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit: must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise InputError("offset: must be >= 0")
    return int(limit), int(offset)


def split_policy(policy: str) -> tuple[str, str]:
    """``"credit-default@3"`` -> ``("credit-default", "3")``; no ``@`` gives an empty version."""
    name, _, version = policy.rpartition("@")
    return (name, version) if name else (policy, "")
