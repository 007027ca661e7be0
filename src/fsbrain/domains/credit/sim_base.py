"""Building blocks of the credit simulator: the clock, platforms, and the application columns.

A :class:`Block` holds the applying people (one row per application) plus the application columns
(time, platform, loan, account, ground truth). Pattern generators in :mod:`.sim_scenarios` and
:mod:`.sim_rings` return Blocks; :mod:`.simulator` concatenates, sorts and writes them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np

from fsbrain.domains.credit.sim_population import People

N_PLATFORMS = 40
PLATFORMS = np.array([f"plat-{i:02d}" for i in range(1, N_PLATFORMS + 1)])
_PW = 1.0 / np.arange(1, N_PLATFORMS + 1) ** 0.8
PLATFORM_WEIGHTS = _PW / _PW.sum()
# China local hour-of-day activity (00..23): quiet at night, peaks late morning, afternoon and evening
HOUR_WEIGHTS = np.array([0.6, 0.35, 0.2, 0.12, 0.1, 0.12, 0.3, 0.6, 1.0, 1.4, 1.6, 1.6, 1.4, 1.3, 1.5, 1.5, 1.4,
                         1.3, 1.3, 1.5, 1.8, 1.9, 1.6, 1.1])
NIGHT_WEIGHTS = np.array([2.0, 2.0, 1.8, 1.5, 1.2, 0.8] + [0.3] * 16 + [1.2, 1.8])
PURPOSES = np.array(["consumption", "education", "medical", "travel", "decoration", "business",
                     "debt_consolidation", "other"])
PURPOSE_W = np.array([0.5, 0.05, 0.05, 0.06, 0.1, 0.08, 0.1, 0.06])
TERMS = np.array([3, 6, 12, 24, 36])
COLUMNS = ("ts", "platform", "label", "scenario", "group", "uid", "amount", "term", "purpose", "product",
           "coupon", "account_created", "is_new_user", "age_stated", "gender_stated", "emulator", "app_version")


CN_TZ = dt.timezone(dt.timedelta(hours=8))
DEFAULT_START = dt.date(2026, 10, 1)
StartLike = dt.date | dt.datetime | float | int | None


@dataclass
class Clock:
    """The simulated period: ``days`` days from ``start`` (epoch seconds); rhythms follow China time."""

    start: float
    days: int

    @classmethod
    def of(cls, start: StartLike, days: int) -> Clock:
        """From a date (its midnight, China time), a datetime (naive = China time), epoch seconds or None."""
        if start is None:
            start = DEFAULT_START
        if isinstance(start, dt.datetime):
            ts = (start if start.tzinfo else start.replace(tzinfo=CN_TZ)).timestamp()
        elif isinstance(start, dt.date):
            ts = dt.datetime(start.year, start.month, start.day, tzinfo=CN_TZ).timestamp()
        else:
            ts = float(start)
        return cls(ts, days)

    @property
    def end(self) -> float:
        return self.start + self.days * 86400.0

    @property
    def ref_day(self) -> dt.date:
        """The first day (China time), used as "today" for birth dates."""
        return dt.datetime.fromtimestamp(self.start, CN_TZ).date()

    def sample(self, rng: np.random.Generator, m: int, *, hours: np.ndarray = HOUR_WEIGHTS) -> np.ndarray:
        """Times in [start, end) with weekly, month-end, slow-growth and hour-of-day rhythm."""
        midnight = dt.datetime.fromtimestamp(self.start, CN_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
        nd = self.days + 1
        day = np.arange(nd)
        dates = np.datetime64(midnight.date()) + day
        dow = (dates.astype(np.int64) + 3) % 7  # 0 = Monday
        dom = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
        w = np.where(dow >= 5, 0.85, 1.0) * np.where((dom >= 25) | (dom <= 3), 1.15, 1.0) * (1 + 0.1 * day / nd)
        pd, ph = w / w.sum(), hours / hours.sum()

        def draw(k: int) -> np.ndarray:
            return (midnight.timestamp() + rng.choice(nd, k, p=pd) * 86400.0 + rng.choice(24, k, p=ph) * 3600.0
                    + rng.random(k) * 3600.0)

        out = draw(m)
        for _ in range(12):
            bad = np.flatnonzero((out < self.start) | (out >= self.end))
            if not len(bad):
                break
            out[bad] = draw(len(bad))
        return np.clip(out, self.start, self.end - 1.0)


@dataclass
class Block:
    """Applications as columns: ``people`` (one row per application) and ``app`` (the :data:`COLUMNS`)."""

    people: People
    app: dict[str, np.ndarray]

    @staticmethod
    def concat(blocks: list[Block]) -> Block:
        ppl = People(**{f.name: np.concatenate([getattr(b.people, f.name) for b in blocks])
                        for f in fields(People)})
        return Block(ppl, {c: np.concatenate([b.app[c] for b in blocks]) for c in COLUMNS})

    def take(self, idx: np.ndarray) -> Block:
        return Block(self.people.take(idx), {c: v[idx] for c, v in self.app.items()})


def base_app(rng: np.random.Generator, p: People, ts: np.ndarray, platform: np.ndarray, label: str,
             scenario: np.ndarray | str, group: np.ndarray | str, uid: np.ndarray, new_user_p: float) -> Block:
    """Ordinary loan, account and device-app columns for people ``p`` applying at ``ts`` on ``platform``."""
    m = len(p)
    new = rng.random(m) < new_user_p
    created = np.where(new, ts - rng.random(m) * 2 * 86400, ts - (30 + rng.random(m) * 870) * 86400)
    coupon = new & (rng.random(m) < 0.35)
    base = np.maximum(3000.0, np.nan_to_num(p.income) * 1.5)
    amount = np.clip(np.round(base * rng.lognormal(0, 0.6, m), -2), 500, 200_000)
    product = np.where(coupon, "new-user-special",
                       np.array(["cash-loan", "consumer-installment", "standard"])[rng.choice(3, m, p=[.5, .35, .15])])
    product = np.where((p.occupation == "self_employed") & ~coupon & (rng.random(m) < 0.3), "business-loan", product)
    age_given = rng.random(m) < 0.5
    age = ((ts.astype("datetime64[s]").astype("datetime64[D]") - p.birth).astype(np.int64) / 365.25).astype(np.int64)
    app = {
        "ts": ts, "platform": PLATFORMS[platform], "label": np.full(m, label),
        "scenario": np.broadcast_to(np.asarray(scenario), (m,)).astype("U32"),
        "group": np.broadcast_to(np.asarray(group), (m,)).astype("U24"), "uid": uid,
        "amount": amount, "term": TERMS[rng.choice(5, m, p=[.1, .25, .4, .15, .1])],
        "purpose": PURPOSES[rng.choice(len(PURPOSES), m, p=PURPOSE_W)], "product": product.astype("U24"),
        "coupon": np.where(coupon, np.char.add("NU-", PLATFORMS[platform]), "").astype("U24"),
        "account_created": created, "is_new_user": new,
        "age_stated": np.where(age_given, age, -1),
        "gender_stated": np.where(rng.random(m) < 0.6, np.where(p.male, "M", "F"), ""),
        "emulator": rng.random(m) < 0.001, "app_version": np.array(["5.8.0", "5.9.1", "6.0.0", "6.1.2"])[
            rng.choice(4, m, p=[.1, .2, .3, .4])],
    }
    return Block(p, app)


def uids(rng: np.random.Generator, m: int) -> np.ndarray:
    """Random person ids (they key account ids and break timestamp ties)."""
    return rng.integers(1, 2**40, m)


def ring_sizes(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """Group sizes in ``lo..hi`` adding up to at least ``n`` members (the last group may be cut by callers)."""
    sizes = rng.integers(lo, hi + 1, n // lo + 1)
    return sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]


def repeat_to(k: np.ndarray, n: int) -> np.ndarray:
    """Row index repeating person ``i`` ``k[i]`` times, exactly ``n`` long (``k`` is raised in place if short)."""
    while int(k.sum()) < n:  # raise the people with the fewest applications first
        k[np.flatnonzero(k == k.min())[: n - int(k.sum())]] += 1
    return np.repeat(np.arange(len(k)), k)[:n]
