"""Individual behaviour patterns: normal borrowing, multi-platform sprees and forged applications.

Group patterns (gangs, device farms, coupon abuse) are in :mod:`.sim_rings`. Every generator takes the
random generator, the number of applications wanted, the :class:`~.sim_base.Clock` and a reference day
for ages, and returns a :class:`~.sim_base.Block` of exactly that many applications.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from fsbrain.domains.credit import sim_people as sp
from fsbrain.domains.credit.identity import id_region
from fsbrain.domains.credit.sim_base import (
    N_PLATFORMS,
    PLATFORM_WEIGHTS,
    Block,
    Clock,
    base_app,
    repeat_to,
    uids,
)
from fsbrain.domains.credit.sim_population import People, make_people

FORGERY_KINDS = np.array(["bad_checksum", "impossible_age", "invalid_region", "phone_far", "income_inconsistent",
                          "copy_paste", "age_mismatch", "bad_card"])
FORGERY_WEIGHTS = np.array([0.22, 0.1, 0.1, 0.2, 0.14, 0.1, 0.06, 0.08])


def normal(rng: np.random.Generator, n: int, clock: Clock, ref: dt.date) -> Block:
    """Ordinary applicants: most apply once; some re-apply or try two or three platforms within weeks."""
    people = make_people(rng, max(1, int(n / 1.2) + 1), ref)
    k = rng.choice([1, 2, 3], len(people), p=[0.85, 0.1, 0.05])
    idx = repeat_to(k, n)
    first = np.repeat(np.cumsum(k) - k, k)[:n]
    nth = np.arange(len(idx)) - first
    t0 = clock.sample(rng, len(people))
    ts = t0[idx] + np.where(nth > 0, rng.random(len(idx)) * 20 * 86400, 0.0)
    back = rng.random(len(idx)) * np.minimum(10 * 86400, t0[idx] - clock.start)
    ts = np.where(ts >= clock.end, t0[idx] - back, ts)
    plat0 = rng.choice(N_PLATFORMS, len(people), p=PLATFORM_WEIGHTS)
    other = rng.choice(N_PLATFORMS, len(idx), p=PLATFORM_WEIGHTS)
    platform = np.where((nth > 0) & (rng.random(len(idx)) < 0.7), other, plat0[idx])
    b = base_app(rng, people.take(idx), ts, platform, "normal", "normal", "", uids(rng, len(people))[idx], 0.3)
    b.app["is_new_user"] &= nth == 0
    return b


def multi_lending(rng: np.random.Generator, n: int, clock: Clock, ref: dt.date) -> Block:
    """Sprees: one person applies at 4–12 distinct platforms within 1–6.5 days, for small amounts."""
    k = np.minimum(4 + rng.geometric(0.3, max(1, n // 4 + 1)) - 1, 12)
    k = k[: np.searchsorted(np.cumsum(k), n) + 1]
    people = make_people(rng, len(k), ref)
    people.income *= 0.7
    idx = np.repeat(np.arange(len(k)), k)[:n]
    t0 = clock.sample(rng, len(k))
    window = np.minimum(rng.uniform(1.0, 6.5, len(k)) * 86400, clock.days * 86400.0 - 1)
    t0 = np.clip(t0, clock.start, np.maximum(clock.start, clock.end - window - 1))
    ts = t0[idx] + rng.random(len(idx)) * window[idx]
    platform = np.concatenate([rng.choice(N_PLATFORMS, int(c), replace=False, p=PLATFORM_WEIGHTS) for c in k])[:n]
    spree = np.char.add("ml-", sp.hex_of(rng.integers(0, 2**40, len(k)), 10))
    b = base_app(rng, people.take(idx), ts, platform, "multi_lending", "spree", spree[idx], uids(rng, len(k))[idx],
                 0.7)
    b.app["amount"] = np.round(rng.uniform(1000, 6000, len(idx)), -2)
    return b


def _other_province_places(rng: np.random.Generator, avoid_a: np.ndarray, avoid_b: np.ndarray) -> np.ndarray:
    g = sp.geo()
    w = g.place_weights / g.place_weights.sum()
    place = rng.choice(len(w), len(avoid_a), p=w)
    for _ in range(20):
        bad = (g.place_province[place] == avoid_a) | (g.place_province[place] == avoid_b)
        if not bad.any():
            break
        place[bad] = rng.choice(len(w), int(bad.sum()), p=w)
    return place


def _invalid_regions(rng: np.random.Generator, provinces: np.ndarray) -> np.ndarray:
    """Six-digit codes in the right province that no GB/T 2260 revision ever had (``PP9xxx``)."""
    codes = provinces.astype(np.int64) * 10000 + 9000 + rng.integers(0, 1000, len(provinces))
    out = codes.astype("U6")
    for i in np.flatnonzero([id_region(c) is not None for c in out]):
        out[i] = f"{provinces[i]}9999" if id_region(f"{provinces[i]}9999") is None else "999999"
    return out


def apply_forgeries(rng: np.random.Generator, p: People, kind1: np.ndarray, kind2: np.ndarray) -> None:
    """Corrupt each person's record in place according to its forgery kinds."""

    def has(kind: str) -> np.ndarray:
        return np.flatnonzero((kind1 == kind) | (kind2 == kind))

    r = has("impossible_age")
    young = rng.random(len(r)) < 0.5
    years = np.where(young, rng.integers(6, 16, len(r)), rng.integers(85, 111, len(r)))
    p.birth[r] = (np.datetime64("2026-06-30") - (years * 365.25).astype("timedelta64[D]")).astype(p.birth.dtype)
    ids = sp.id_numbers(p.id_number[r].astype("U6"), p.birth[r], p.male[r], rng)
    bad_date = rng.random(len(r)) < 0.3  # a date that does not exist, with a correct check digit
    fake = np.char.add(np.char.add(ids.astype("U10"), rng.choice(["0230", "1301", "0431", "0000"], len(r))),
                       np.array([s[14:17] for s in ids], dtype="U3"))
    p.id_number[r] = np.where(bad_date, sp.with_check_digit(fake), ids)
    r = has("invalid_region")
    regions = _invalid_regions(rng, p.id_province[r])
    p.id_number[r] = sp.with_check_digit(np.char.add(regions, np.array([s[6:17] for s in p.id_number[r]], dtype="U11")))
    r = has("bad_checksum")  # last of the ID changes, so nothing recomputes the check digit afterwards
    first17 = np.array([s[:17] for s in p.id_number[r]], dtype="U17")
    right = np.array([s[-1] for s in sp.with_check_digit(first17)], dtype="U1")
    wrong = np.array(list("0123456789X"))[rng.integers(0, 11, len(r))]
    wrong = np.where(wrong == right, np.where(right == "1", "2", "1"), wrong)
    p.id_number[r] = np.char.add(first17, wrong)
    r = has("phone_far")
    p.phone[r] = sp.phones(_other_province_places(rng, p.id_province[r], p.addr_province_code[r]), rng)
    r = has("income_inconsistent")
    occ = rng.choice(["student", "unemployed", "service_staff", "factory_worker"], len(r))
    p.occupation[r] = occ
    p.income[r] = np.round(rng.uniform(25_000, 90_000, len(r)), -2)
    p.employer[r] = np.where(np.isin(occ, ["student", "unemployed"]), "", p.employer[r])
    r = has("copy_paste")
    how = rng.integers(0, 3, len(r))
    p.employer[r] = np.where(how == 0, p.addr_detail[r], p.employer[r])
    p.c_phone[r, 0] = np.where(how == 1, p.phone[r], p.c_phone[r, 0])
    p.c_n[r] = np.where(how == 2, np.maximum(p.c_n[r], 2), p.c_n[r])
    p.c_phone[r, 1] = np.where(how == 2, p.c_phone[r, 0], p.c_phone[r, 1])
    p.c_name[r, 1] = np.where(how == 2, p.c_name[r, 0], p.c_name[r, 1])
    r = has("bad_card")
    no_card = r[p.card[r] == ""]
    p.card[no_card] = sp.cards(len(no_card), rng)
    last = (np.array([c[-1] for c in p.card[r]], dtype=np.int64) + rng.integers(1, 10, len(r))) % 10
    p.card[r] = np.char.add(np.array([c[:-1] for c in p.card[r]], dtype="U18"), last.astype("U1"))


def forged(rng: np.random.Generator, n: int, clock: Clock, ref: dt.date) -> Block:
    """Fabricated applications with one or two inconsistencies each (see ``FORGERY_KINDS``)."""
    m = max(1, int(n / 1.2) + 1)
    people = make_people(rng, m, ref)
    k = rng.choice([1, 2], m, p=[0.8, 0.2])
    idx = repeat_to(k, n)
    kind1 = FORGERY_KINDS[rng.choice(len(FORGERY_KINDS), m, p=FORGERY_WEIGHTS)]
    kind2 = np.where(rng.random(m) < 0.3, FORGERY_KINDS[rng.choice(len(FORGERY_KINDS), m, p=FORGERY_WEIGHTS)], kind1)
    apply_forgeries(rng, people, kind1, kind2)
    ts = clock.sample(rng, len(idx))
    platform = rng.choice(N_PLATFORMS, len(idx), p=PLATFORM_WEIGHTS)
    scen = np.where(kind1 == kind2, kind1, np.char.add(np.char.add(kind1, "+"), kind2))
    b = base_app(rng, people.take(idx), ts, platform, "forged_application", scen[idx], "", uids(rng, m)[idx], 0.6)
    lie = ((kind1 == "age_mismatch") | (kind2 == "age_mismatch"))[idx]
    shift = rng.choice([-1, 1], len(idx)) * rng.integers(5, 16, len(idx))
    b.app["age_stated"] = np.where(lie, np.maximum(18, np.maximum(b.app["age_stated"], 20) + shift),
                                   b.app["age_stated"])
    b.app["gender_stated"] = np.where(lie, np.where(b.people.male, "F", "M"), b.app["gender_stated"])
    return b
