"""Identity enrichment: resident-ID region codes, mobile number attribution and bank-card issuers.

The code tables in ``data/`` are built by ``scripts/build_identity_tables.py`` from public corpora
(GB/T 2260 revisions 1980–2019, a 2023-12 mobile segment table, merged Chinese card BIN tables). They are
loaded on first use and cached.

>>> id_region("110105").name
'朝阳区'
>>> id_region("110105").province
'北京市'
>>> id_region("999999") is None
True
>>> info = phone_attribution("13800138000")
>>> (info.province, info.city, info.carrier)
('北京', '北京', '移动')
>>> card_issuer("6222021234567890123").bank_code
'ICBC'
>>> province_code("广东") == province_code("广东省") == "44"
True
"""

from __future__ import annotations

import bisect
import csv
import functools
import gzip
import io
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from fsbrain.core.pii import normalize_phone

__all__ = [
    "CARD_TYPE_NAMES",
    "CardInfo",
    "PhoneInfo",
    "PhoneTable",
    "Region",
    "card_bins",
    "card_issuer",
    "luhn_ok",
    "id_region",
    "phone_attribution",
    "phone_table",
    "province_code",
    "province_name",
    "region_codes",
]

CARD_TYPE_NAMES = {"DC": "储蓄卡", "CC": "信用卡", "SCC": "准贷记卡", "PC": "预付费卡"}
CARRIERS = {1: ("移动", False), 2: ("联通", False), 3: ("电信", False), 4: ("电信", True),
            5: ("联通", True), 6: ("移动", True), 7: ("广电", False), 8: ("广电", True)}
LATEST_REVISION = 201904
_MUNICIPALITIES = ("11", "12", "31", "50")
_NOT_PLACES = ("市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划")


_LOAD_LOCK = threading.Lock()


def _once(fn: Any) -> Any:
    """``lru_cache(maxsize=1)`` whose first call is serialised: when a server's thread pool calls a table
    loader at the same moment, one thread loads it and the others wait, instead of all loading it."""
    cached = lru_cache(maxsize=1)(fn)

    @functools.wraps(fn)
    def wrapper() -> Any:
        if cached.cache_info().currsize:
            return cached()
        with _LOAD_LOCK:
            return cached()

    wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return wrapper


def preload() -> None:
    """Load every table now (servers call this at start-up, so no request pays for it)."""
    _regions()
    _province_names()
    phone_table()
    _bins()


def _rows(name: str) -> list[dict[str, str]]:
    raw = resources.files("fsbrain.domains.credit").joinpath("data", name).read_bytes()
    return list(csv.DictReader(io.StringIO(gzip.decompress(raw).decode("utf-8"))))


@dataclass(frozen=True, slots=True)
class Region:
    """A GB/T 2260 administrative division code and where it sits.

    Args:
        code: six digits.
        name: the newest name the code carried.
        province: name of the province-level division (``code[:2] + "0000"``).
        prefecture: name of the prefecture-level division, when there is one.
        first_revision: first revision (YYYYMM) the code appears in.
        last_revision: last revision (YYYYMM) the code appears in.
    """

    code: str
    name: str
    province: str
    prefecture: str | None
    first_revision: int
    last_revision: int

    @property
    def level(self) -> str:
        """``province``, ``prefecture`` or ``county``."""
        if self.code.endswith("0000"):
            return "province"
        return "prefecture" if self.code.endswith("00") else "county"

    @property
    def current(self) -> bool:
        """Whether the code is still in the newest revision."""
        return self.last_revision >= LATEST_REVISION

    @property
    def province_code(self) -> str:
        return self.code[:2]


@_once
def _regions() -> dict[str, tuple[str, int, int]]:
    return {r["code"]: (r["name"], int(r["first"]), int(r["last"])) for r in _rows("regions.csv.gz")}


@lru_cache(maxsize=16384)
def id_region(code: str) -> Region | None:
    """The division of a six-digit code (a resident ID's first six digits), historical codes included.

    Returns:
        The :class:`Region`, or ``None`` when the code never existed in any revision since 1980.
    """
    code = str(code).strip()[:6]
    table = _regions()
    hit = table.get(code)
    if hit is None or len(code) != 6:
        return None
    province = table.get(code[:2] + "0000", ("", 0, 0))[0]
    prefecture: str | None = None
    if code.endswith("0000"):
        prefecture = None
    elif code[:2] in _MUNICIPALITIES:
        prefecture = province
    elif code.endswith("00"):
        prefecture = hit[0]
    else:
        pre = table.get(code[:4] + "00")
        if pre is not None and pre[0] not in _NOT_PLACES:
            prefecture = pre[0]
    return Region(code, hit[0], province, prefecture, hit[1], hit[2])


def region_codes(*, level: str = "county", current_only: bool = True) -> list[str]:
    """All codes of one level (``province``, ``prefecture``, ``county``), sorted; for generators and tests."""
    out = []
    for code, (name, _first, last) in _regions().items():
        r_level = "province" if code.endswith("0000") else "prefecture" if code.endswith("00") else "county"
        if r_level != level or (current_only and last < LATEST_REVISION) or name in _NOT_PLACES:
            continue
        out.append(code)
    return sorted(out)


@_once
def _province_names() -> dict[str, str]:
    return {code[:2]: name for code, (name, _f, _l) in _regions().items() if code.endswith("0000")}


def province_name(code: str) -> str | None:
    """Full name of a province-level division from its two-digit code."""
    return _province_names().get(str(code)[:2])


@lru_cache(maxsize=4096)
def province_code(name: str | None) -> str | None:
    """Two-digit province code from a name in any common form (``广东``, ``广东省``, ``内蒙古``) or a code."""
    if not name:
        return None
    n = str(name).strip()
    if re.fullmatch(r"\d{2}(\d{4})?", n):
        return n[:2] if n[:2] in _province_names() else None
    for code, full in _province_names().items():
        if full == n or (len(n) >= 2 and full.startswith(n)):
            return code
    return None


@dataclass(frozen=True, slots=True)
class PhoneInfo:
    """Where a mobile number was issued (号码归属地) and by which carrier.

    Args:
        segment: the seven-digit prefix looked up.
        province: short province name as carriers write it (``广东``, ``内蒙古``).
        city: short city name (``深圳``).
        carrier: ``移动``, ``联通``, ``电信`` or ``广电``.
        virtual: true for virtual-operator (转售) numbers, e.g. most 170/171 numbers.
        area_code: landline area code of the city.
        zip: postal code of the city.
        province_code: GB/T 2260 two-digit province code.
        city_code: GB/T 2260 four-digit prefecture code (``None`` when no match).
    """

    segment: str
    province: str
    city: str
    carrier: str
    virtual: bool
    area_code: str
    zip: str
    province_code: str | None
    city_code: str | None


class PhoneTable:
    """The mobile segment table as sorted numpy ranges: ``start``, ``end`` (exclusive), place and carrier.

    Args:
        starts: first 7-digit segment of each run.
        ends: one past the last segment of each run.
        places: place index of each run (into ``place_rows``).
        carriers: carrier type 1..8 of each run.
        place_rows: (province, city, area_code, zip, province_code, city_code) per place index.
    """

    def __init__(self, starts: np.ndarray, ends: np.ndarray, places: np.ndarray, carriers: np.ndarray,
                 place_rows: list[tuple[str, str, str, str, str, str]]) -> None:
        self.starts = starts
        self.ends = ends
        self.places = places
        self.carriers = carriers
        self.place_rows = place_rows
        self._starts = starts.tolist()  # plain lists: bisect beats numpy for one lookup
        self._ends = ends.tolist()

    def lookup_index(self, segments: np.ndarray) -> np.ndarray:
        """Run index of each 7-digit segment, or -1 where the segment is unknown (vectorised)."""
        seg = np.asarray(segments, dtype=np.int64)
        idx = np.searchsorted(self.starts, seg, side="right") - 1
        ok = (idx >= 0) & (seg < self.ends[np.clip(idx, 0, None)])
        return np.where(ok, idx, -1)

    def info(self, segment: int) -> PhoneInfo | None:
        """Attribution of one 7-digit segment, or ``None`` when unknown."""
        i = bisect.bisect_right(self._starts, segment) - 1
        if i < 0 or segment >= self._ends[i]:
            return None
        prov, city, area, zip_, pcode, ccode = self.place_rows[int(self.places[i])]
        carrier, virtual = CARRIERS.get(int(self.carriers[i]), ("未知", False))
        return PhoneInfo(f"{segment:07d}", prov, city, carrier, virtual, area, zip_, pcode or None,
                         ccode or None)


@_once
def phone_table() -> PhoneTable:
    """The cached mobile segment table."""
    places = sorted(_rows("phone_cities.csv.gz"), key=lambda r: int(r["idx"]))
    place_rows = [(r["province"], r["city"], r["area_code"], r["zip"], r["province_code"], r["city_code"])
                  for r in places]
    ranges = _rows("phone_ranges.csv.gz")
    gaps = np.fromiter((int(r["gap"]) for r in ranges), dtype=np.int64, count=len(ranges))
    counts = np.fromiter((int(r["count"]) for r in ranges), dtype=np.int64, count=len(ranges))
    starts = np.cumsum(gaps + np.concatenate(([0], counts[:-1])))
    return PhoneTable(
        starts, starts + counts,
        np.fromiter((int(r["city_idx"]) for r in ranges), dtype=np.int32, count=len(ranges)),
        np.fromiter((int(r["carrier_type"]) for r in ranges), dtype=np.int8, count=len(ranges)),
        place_rows,
    )


def phone_attribution(phone: str) -> PhoneInfo | None:
    """Province, city and carrier of a mainland mobile number from its 7-digit segment.

    Returns:
        :class:`PhoneInfo`, or ``None`` for a malformed number or an unknown segment.
    """
    v = normalize_phone(phone)
    if not re.fullmatch(r"1[3-9]\d{9}", v):
        return None
    return _segment_info(int(v[:7]))


@lru_cache(maxsize=65536)
def _segment_info(segment: int) -> PhoneInfo | None:
    return phone_table().info(segment)


@dataclass(frozen=True, slots=True)
class CardInfo:
    """The issuer of a bank card from its BIN, and whether the number is well formed.

    Args:
        bin: the matched BIN prefix.
        bank_code: issuer code (``ICBC``, ``CMB`` …).
        bank_name: issuer name in Chinese.
        card_type: ``DC`` (debit), ``CC`` (credit), ``SCC`` (semi-credit) or ``PC`` (prepaid).
        length: the card number's length.
        expected_lengths: lengths the BIN is issued with.
        luhn_valid: whether the Luhn check digit is right.
    """

    bin: str
    bank_code: str
    bank_name: str
    card_type: str
    length: int
    expected_lengths: tuple[int, ...]
    luhn_valid: bool

    @property
    def length_ok(self) -> bool:
        return self.length in self.expected_lengths

    @property
    def card_type_name(self) -> str:
        return CARD_TYPE_NAMES.get(self.card_type, self.card_type)


@_once
def _bins() -> tuple[dict[str, list[tuple[int, str, str]]], dict[str, str], tuple[int, ...]]:
    banks = {r["bank_code"]: r["name"] for r in _rows("banks.csv.gz")}
    table: dict[str, list[tuple[int, str, str]]] = {}
    for r in _rows("bins.csv.gz"):
        table.setdefault(r["bin"], []).append((int(r["length"]), r["bank_code"], r["card_type"]))
    lengths = tuple(sorted({len(b) for b in table}, reverse=True))
    return table, banks, lengths


def luhn_ok(digits: str) -> bool:
    """Luhn check of a digit string (the same answer as ``stdnum.luhn.is_valid``, faster)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_bins() -> list[tuple[str, int, str, str]]:
    """Every (bin, card length, bank code, card type) row, sorted; for generators and tests."""
    table, _banks, _lengths = _bins()
    return sorted((b, ln, code, ctype) for b, rows in table.items() for ln, code, ctype in rows)


def card_issuer(card: str) -> CardInfo | None:
    """The issuer of a card number by longest BIN prefix (a length match preferred).

    Returns:
        :class:`CardInfo` (check ``length_ok`` and ``luhn_valid``), or ``None`` when no BIN matches.
    """
    v = re.sub(r"[\s\-]", "", str(card))
    if not v.isdigit():
        return None
    table, banks, lengths = _bins()
    for n in lengths:
        if n > len(v):
            continue
        rows = table.get(v[:n])
        if not rows:
            continue
        pick = next((r for r in rows if r[0] == len(v)), rows[0])
        expected = tuple(sorted({r[0] for r in rows if r[1] == pick[1]}))
        return CardInfo(v[:n], pick[1], banks.get(pick[1], pick[1]), pick[2], len(v), expected,
                        luhn_ok(v))
    return None
