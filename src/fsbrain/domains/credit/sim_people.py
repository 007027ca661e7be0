"""Vectorised generators of synthetic identity values for the credit simulator.

Resident ID numbers carry real GB/T 2260 county codes and correct GB 11643 check digits; mobile numbers
come from real 7-digit segments of the chosen city; bank cards use real BINs and valid Luhn digits. All
draws come from one ``numpy.random.Generator`` so a seed reproduces everything.

>>> import numpy as np
>>> from fsbrain.core.pii import id_number_is_valid
>>> rng = np.random.default_rng(1)
>>> ids = id_numbers(np.array(["110105"]), np.array(["1990-05-17"], dtype="datetime64[D]"),
...                  np.array([True]), rng)
>>> id_number_is_valid(ids[0]), ids[0][:14]
(True, '11010519900517')
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fsbrain.domains.credit.identity import (
    card_bins,
    id_region,
    phone_table,
    province_name,
    region_codes,
)

_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK = np.array(list("10X98765432"))
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_VIRTUAL = (4, 5, 6, 8)
_BIG_BANKS = {"ICBC": 10.0, "CCB": 9.0, "ABC": 8.0, "BOC": 7.0, "PSBC": 6.0, "CMB": 6.0, "COMM": 4.0,
              "CIB": 3.0, "SPDB": 2.5, "CMBC": 2.5, "CITIC": 2.5, "CEB": 2.0, "GDB": 1.5, "SPABANK": 2.0}


def ascii_rows(codes: np.ndarray) -> np.ndarray:
    """Turn an (m, k) matrix of ASCII codes into an array of m Python-friendly strings of length k."""
    mat = np.ascontiguousarray(codes, dtype=np.uint8)
    return mat.view(f"S{mat.shape[1]}").ravel().astype(f"U{mat.shape[1]}")


def tight(arr: np.ndarray) -> np.ndarray:
    """The same strings in the narrowest fixed-width dtype (``np.char.add`` widens to the sum of widths)."""
    width = int(np.char.str_len(arr).max()) if arr.size else 1
    return arr.astype(f"U{max(width, 1)}")


def digits_of(values: np.ndarray, width: int) -> np.ndarray:
    """The (m, width) decimal digit matrix of non-negative integers."""
    pow10 = 10 ** np.arange(width - 1, -1, -1, dtype=np.uint64)
    return ((values.astype(np.uint64)[:, None] // pow10) % 10).astype(np.uint8)


def id_numbers(regions: np.ndarray, births: np.ndarray, male: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """18-character resident ID numbers.

    Args:
        regions: six-digit region codes (str).
        births: birth dates (``datetime64[D]``).
        male: sex of each holder (the 17th digit is odd for men).
        rng: the random generator (draws the sequence digits).
    """
    m = len(regions)
    y = births.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = births.astype("datetime64[M]").astype(np.int64) % 12 + 1
    d = (births - births.astype("datetime64[M]")).astype(np.int64) + 1
    seq = rng.integers(0, 500, m) * 2 + male.astype(np.int64)
    first17 = regions.astype(np.int64) * 10**11 + (y * 10000 + mo * 100 + d) * 1000 + seq
    dig = digits_of(first17, 17)
    idx = (dig.astype(np.int64) @ _ID_WEIGHTS) % 11
    return np.char.add(ascii_rows(dig + 48), _ID_CHECK[idx])


def with_check_digit(first17: np.ndarray) -> np.ndarray:
    """Complete 17-digit ID prefixes (str) with their correct GB 11643 check character."""
    dig = np.frombuffer(first17.astype("S17").tobytes(), dtype=np.uint8).reshape(-1, 17) - 48
    return np.char.add(first17.astype("U17"), _ID_CHECK[(dig.astype(np.int64) @ _ID_WEIGHTS) % 11])


def luhn_complete(payload: np.ndarray) -> np.ndarray:
    """Append the Luhn check digit to each row of an (m, k) digit matrix; returns strings."""
    k = payload.shape[1]
    doubled = payload.astype(np.int64)
    pos = np.arange(k)[::-1] % 2 == 0  # rightmost payload digit is doubled once the check is appended
    dd = doubled[:, pos] * 2
    doubled[:, pos] = dd - 9 * (dd > 9)
    check = (10 - doubled.sum(axis=1) % 10) % 10
    return ascii_rows(np.hstack([payload, check[:, None].astype(np.uint8)]) + 48)


@dataclass(frozen=True)
class Geo:
    """Sampling tables derived from the shipped identity tables (cached)."""

    provinces: np.ndarray  # two-digit codes, str
    province_weights: np.ndarray
    place_province: np.ndarray  # per phone place: two-digit code
    place_city: np.ndarray  # per place: display name of the city (深圳市)
    place_city_code: np.ndarray  # per place: four-digit prefecture code or ""
    place_weights: np.ndarray
    place_runs: list[np.ndarray]  # per place: run indices of non-virtual segments
    place_run_cum: list[np.ndarray]
    virtual_runs: np.ndarray
    counties_by_prefecture: dict[str, np.ndarray]
    counties_by_province: dict[str, np.ndarray]
    retired_counties: dict[str, np.ndarray]  # province -> retired county codes
    county_names: dict[str, str]


@lru_cache(maxsize=1)
def geo() -> Geo:
    """Build (once) the province, place, segment and county sampling tables."""
    t = phone_table()
    counts = (t.ends - t.starts).astype(np.float64)
    real = ~np.isin(t.carriers, _VIRTUAL)
    n_places = len(t.place_rows)
    place_runs, place_cum, place_w = [], [], np.zeros(n_places)
    order = np.argsort(t.places, kind="stable")
    bounds = np.searchsorted(t.places[order], np.arange(n_places + 1))
    for p in range(n_places):
        runs = order[bounds[p]:bounds[p + 1]]
        runs = runs[real[runs]]
        place_runs.append(runs)
        place_cum.append(np.cumsum(counts[runs]))
        place_w[p] = counts[runs].sum()
    pprov = np.array([r[4] for r in t.place_rows])
    cities = []
    for prov, city, _a, _z, pcode, ccode in t.place_rows:
        reg = id_region(ccode + "00") if ccode else None
        if pcode in ("11", "12", "31", "50"):
            cities.append(province_name(pcode) or prov)
        else:
            cities.append(reg.name if reg and reg.name not in ("市辖区", "县") else city + "市")
    provinces = np.unique(pprov[pprov != ""])
    pw = np.array([place_w[pprov == p].sum() for p in provinces])
    counties = np.array(region_codes(level="county", current_only=True))
    by_pref = {k: counties[counties.astype("U4") == k] for k in np.unique(counties.astype("U4"))}
    by_prov = {k: counties[counties.astype("U2") == k] for k in provinces}
    old = [c for c in region_codes(level="county", current_only=False)
           if (r := id_region(c)) is not None and not r.current]
    old_arr = np.array(old)
    retired = {k: old_arr[old_arr.astype("U2") == k] for k in provinces}
    names = {c: r.name for c in list(counties) + old if (r := id_region(c)) is not None}
    return Geo(provinces, pw / pw.sum(), pprov, np.array(cities), np.array([r[5] for r in t.place_rows]),
               place_w, place_runs, place_cum, np.flatnonzero(~real), by_pref, by_prov, retired, names)


def _groups(keys: np.ndarray) -> list[tuple[object, np.ndarray]]:
    if len(keys) == 0:
        return []
    order = np.argsort(keys, kind="stable")
    uniq, start = np.unique(keys[order], return_index=True)
    ends = np.append(start[1:], len(keys))
    return [(u, order[s:e]) for u, s, e in zip(uniq, start, ends, strict=True)]


def sample_places(province: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A phone place (city) inside each given province, weighted by its number of segments."""
    g = geo()
    out = np.empty(len(province), dtype=np.int64)
    for prov, rows in _groups(province):
        cand = np.flatnonzero(g.place_province == prov)
        w = g.place_weights[cand]
        out[rows] = cand[np.searchsorted(np.cumsum(w), rng.random(len(rows)) * w.sum())]
    return out


def phones(places: np.ndarray, rng: np.random.Generator, *, virtual: np.ndarray | None = None) -> np.ndarray:
    """11-digit mobile numbers from real segments of each place (or of virtual operators where flagged)."""
    t = phone_table()
    g = geo()
    run = np.empty(len(places), dtype=np.int64)
    for place, rows in _groups(places):
        cum = g.place_run_cum[int(place)]  # type: ignore[call-overload]
        pick = np.searchsorted(cum, rng.random(len(rows)) * cum[-1], side="right")
        run[rows] = g.place_runs[int(place)][np.minimum(pick, len(cum) - 1)]  # type: ignore[call-overload]
    if virtual is not None and virtual.any():
        run[virtual] = rng.choice(g.virtual_runs, int(virtual.sum()))
    seg = t.starts[run] + (rng.random(len(run)) * (t.ends[run] - t.starts[run])).astype(np.int64)
    return ascii_rows(digits_of(seg * 10000 + rng.integers(0, 10000, len(run)), 11) + 48)


def counties(places: np.ndarray, local: np.ndarray, id_province: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """ID region codes: in the place's prefecture for ``local`` people, else anywhere in ``id_province``."""
    g = geo()
    out = np.empty(len(places), dtype="U6")
    pref = g.place_city_code[places]
    key = np.where(local & np.isin(pref, list(g.counties_by_prefecture)), pref, id_province)
    for k, rows in _groups(key):
        pool = g.counties_by_prefecture.get(str(k)) if len(str(k)) == 4 else g.counties_by_province[str(k)]
        out[rows] = rng.choice(pool, len(rows))  # type: ignore[arg-type]
    return out


@lru_cache(maxsize=1)
def _card_pool() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = [r for r in card_bins() if len(r[0]) == 6 and r[1] in (16, 19) and r[3] in ("DC", "CC")]
    per_bank: dict[str, int] = {}
    for r in rows:
        per_bank[r[2]] = per_bank.get(r[2], 0) + 1
    w = np.array([_BIG_BANKS.get(r[2], 0.25) / per_bank[r[2]] for r in rows])
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), w / w.sum()


def cards(m: int, rng: np.random.Generator) -> np.ndarray:
    """Luhn-valid card numbers on real six-digit BINs, big banks more likely."""
    bins, lengths, w = _card_pool()
    pick = rng.choice(len(bins), m, p=w)
    out = np.empty(m, dtype="U19")
    for length in np.unique(lengths[pick]):
        rows = np.flatnonzero(lengths[pick] == length)
        head = digits_of(bins[pick[rows]].astype(np.int64), 6)
        body = rng.integers(0, 10, (len(rows), int(length) - 7), dtype=np.uint8)
        out[rows] = luhn_complete(np.hstack([head, body]))
    return out


def hex_ids(m: int, rng: np.random.Generator, width: int = 16) -> np.ndarray:
    """Random lowercase hex strings (device ids, account suffixes)."""
    return ascii_rows(_HEX[rng.integers(0, 16, (m, width))])


def hex_of(values: np.ndarray, width: int = 12) -> np.ndarray:
    """Lowercase hex of non-negative integers, zero-padded to ``width`` (deterministic ids)."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    nibbles = (values.astype(np.uint64)[:, None] >> shifts) & np.uint64(15)
    return ascii_rows(_HEX[nibbles.astype(np.int64)])


def ipv4(m: int, rng: np.random.Generator, first_octets: np.ndarray, *, first: np.ndarray | None = None,
         second: np.ndarray | None = None, third: np.ndarray | None = None) -> np.ndarray:
    """Dotted IPv4 strings: first octet drawn from ``first_octets`` unless ``first`` fixes it per row;
    likewise ``second`` and ``third``; the last octet is random."""
    o1 = first if first is not None else rng.choice(first_octets, m)
    o2 = second if second is not None else rng.integers(1, 255, m)
    o3 = third if third is not None else rng.integers(0, 255, m)
    parts = [np.asarray(o, dtype=np.int64).astype(str) for o in (o1, o2, o3, rng.integers(2, 254, m))]
    out = parts[0]
    for p in parts[1:]:
        out = np.char.add(np.char.add(out, "."), p)
    return out
