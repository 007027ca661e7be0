"""Simulated loan applications with ground truth, for backtests, demos and benchmarks.

``fsbrain simulate credit`` and :func:`iter_applications` produce raw applications exactly as the API
receives them (raw identity values: valid resident IDs on real region codes, real phone segments,
Luhn-valid cards on real BINs), plus ground-truth fields: ``label`` (``normal`` or a risk label),
``scenario`` (how it was generated) and ``_group`` (spree, ring, farm or coupon-group id, else null).
Drop those three before validating: :func:`split_truth`. Patterns are documented in docs/credit.md.

>>> recs = list(iter_applications(200, seed=7, days=7))
>>> len(recs), recs[0]["timestamp"] <= recs[-1]["timestamp"]
(200, True)
>>> from fsbrain.domains.credit.schema import LoanApplication
>>> app, truth = split_truth(recs[0])
>>> LoanApplication.model_validate(app).platform_id.startswith("plat-"), sorted(truth)
(True, ['_group', 'label', 'scenario'])
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from fsbrain.core.errors import InputError
from fsbrain.domains.credit import sim_people as sp
from fsbrain.domains.credit import sim_rings, sim_scenarios
from fsbrain.domains.credit.sim_base import CN_TZ, Block, Clock, StartLike

__all__ = ["DEFAULT_MIX", "LABELS", "TRUTH_FIELDS", "check_args", "generate", "iter_applications", "label_counts",
           "split_truth"]

LABELS = ("normal", "multi_lending", "forged_application", "gang_fraud", "device_risk", "promotion_abuse")
DEFAULT_MIX = {"normal": 0.87, "multi_lending": 0.04, "forged_application": 0.03, "gang_fraud": 0.025,
               "device_risk": 0.02, "promotion_abuse": 0.015}
TRUTH_FIELDS = ("label", "scenario", "_group")
MAX_N = 50_000_000
_GENERATORS: dict[str, Callable[[np.random.Generator, int, Clock, dt.date], Block]] = {
    "normal": sim_scenarios.normal,
    "multi_lending": sim_scenarios.multi_lending,
    "forged_application": sim_scenarios.forged,
    "gang_fraud": sim_rings.gang,
    "device_risk": sim_rings.device_risk,
    "promotion_abuse": sim_rings.promotion_abuse,
}


def check_args(n: int, days: int, mix: dict[str, float] | None = None) -> None:
    """Raise :class:`InputError` naming the argument when ``n``, ``days`` or ``mix`` is out of range."""
    mix = DEFAULT_MIX if mix is None else mix
    if not 1 <= n <= MAX_N:
        raise InputError(f"n: must be between 1 and {MAX_N:,}, got {n}")
    if not 1 <= days <= 366:
        raise InputError(f"days: must be between 1 and 366, got {days}")
    unknown = set(mix) - set(LABELS)
    if unknown:
        raise InputError(f"mix: unknown label(s) {sorted(unknown)}; known: {list(LABELS)}")
    if any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise InputError("mix: shares must be non-negative and not all zero")


def label_counts(n: int, mix: dict[str, float] | None = None) -> dict[str, int]:
    """Split ``n`` applications over labels by ``mix`` (largest remainder, so the counts sum to ``n``)."""
    mix = dict(DEFAULT_MIX if mix is None else mix)
    total = sum(mix.values())
    raw = {k: n * v / total for k, v in mix.items()}
    out = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[: n - sum(out.values())]:
        out[k] += 1
    return out


def _unsorted(n: int, seed: int, days: int, start: StartLike,
              mix: dict[str, float] | None) -> tuple[Block, np.ndarray]:
    mix = dict(DEFAULT_MIX if mix is None else mix)
    check_args(n, days, mix)
    clock = Clock.of(start, days)
    blocks = []
    for i, (label, k) in enumerate(label_counts(n, mix).items()):
        if k > 0:
            blocks.append(_GENERATORS[label](np.random.default_rng([seed, i]), k, clock, clock.ref_day))
    block = Block.concat(blocks)
    return block, np.lexsort((block.app["uid"], block.app["ts"]))


def generate(n: int, seed: int = 0, *, days: int = 28, start: StartLike = None,
             mix: dict[str, float] | None = None) -> Block:
    """All ``n`` applications as columns, sorted by time. Each label has its own seeded stream.

    Raises:
        InputError: a bad ``n``, ``days`` or ``mix``.
    """
    block, order = _unsorted(n, seed, days, start, mix)
    return block.take(order)


def _iso(ts: np.ndarray) -> list[str]:
    local = (ts + 8 * 3600).astype("datetime64[s]")
    return np.char.add(np.datetime_as_string(local, unit="s"), "+08:00").tolist()


def _records(b: Block, seed: int, offset: int) -> Iterator[dict[str, Any]]:
    p, a, m = b.people, b.app, len(b.people)
    L = {k: v.tolist() for k, v in a.items() if k not in ("ts", "account_created")}
    P = {k: getattr(p, k).tolist() for k in (
        "name", "id_number", "phone", "card", "email", "education", "marital", "employer", "occupation",
        "income", "addr_province", "addr_city", "addr_detail", "res_type", "res_years", "device_id", "os",
        "os_version", "model", "rooted", "ip", "ip_type", "gps_lat", "gps_lon", "c_n")}
    cn, cp, cr = p.c_name.tolist(), p.c_phone.tolist(), p.c_rel.tolist()
    ts, created = _iso(a["ts"]), _iso(a["account_created"])
    acct = np.char.add(np.char.add(a["platform"], "-u"), sp.hex_of(a["uid"], 10)).tolist()
    for i in range(m):
        lat = P["gps_lat"][i]
        income = P["income"][i]
        yield {
            "event_id": f"sim{seed}-{offset + i:08d}",
            "timestamp": ts[i],
            "platform_id": L["platform"][i],
            "applicant": {
                "name": P["name"][i], "id_number": P["id_number"][i], "phone": P["phone"][i],
                "bank_card": P["card"][i] or None, "email": P["email"][i] or None,
                "age": L["age_stated"][i] if L["age_stated"][i] >= 0 else None,
                "gender": L["gender_stated"][i] or None,
                "education": P["education"][i], "marital_status": P["marital"][i],
                "employer": P["employer"][i] or None, "occupation": P["occupation"][i],
                "monthly_income": None if income != income else income,
                "address": {"province": P["addr_province"][i], "city": P["addr_city"][i],
                            "detail": P["addr_detail"][i]},
                "residence": {"province": P["addr_province"][i], "city": P["addr_city"][i], "detail": None,
                              "type": P["res_type"][i], "years": P["res_years"][i]},
            },
            "loan": {"amount": L["amount"][i], "term_months": L["term"][i], "purpose": L["purpose"][i],
                     "product": L["product"][i], "coupon_code": L["coupon"][i] or None},
            "device": {"device_id": P["device_id"][i], "os": P["os"][i], "os_version": P["os_version"][i],
                       "model": P["model"][i], "is_emulator": L["emulator"][i], "is_rooted": P["rooted"][i],
                       "app_version": L["app_version"][i], "ip": P["ip"][i], "ip_type": P["ip_type"][i],
                       "gps": None if lat != lat else {"lat": lat, "lon": P["gps_lon"][i]}},
            "contacts": [{"name": cn[i][k], "phone": cp[i][k], "relation": cr[i][k]} for k in range(P["c_n"][i])],
            "account": {"account_id": acct[i], "account_created_at": created[i],
                        "is_new_user": L["is_new_user"][i]},
            "label": L["label"][i],
            "scenario": L["scenario"][i],
            "_group": L["group"][i] or None,
        }


def iter_applications(n: int, seed: int = 0, days: int = 28, start: StartLike = None, *,
                      mix: dict[str, float] | None = None, chunk: int = 50_000) -> Iterator[dict[str, Any]]:
    """Yield ``n`` raw applications with ground truth, in time order (deterministic per seed).

    Args:
        n: number of applications.
        seed: random seed; the same seed, n, days, start and mix give the same records.
        days: length of the simulated period.
        start: first day (a date: its midnight China time), a datetime, or epoch seconds;
            default 2026-10-01.
        mix: share of each label (defaults to :data:`DEFAULT_MIX`).
        chunk: records materialised at a time (memory bound).

    Raises:
        InputError: a bad ``n``, ``days`` or ``mix``.
    """
    block, order = _unsorted(n, seed, days, start, mix)
    for s in range(0, n, chunk):
        yield from _records(block.take(order[s:s + chunk]), seed, s)


def split_truth(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate a simulated record into the API payload and its ground truth fields."""
    app = {k: v for k, v in record.items() if k not in TRUTH_FIELDS}
    return app, {k: record.get(k) for k in TRUTH_FIELDS}


def summarize(labels: Counter[str], scenarios: Counter[str], groups: dict[str, set[str]]) -> dict[str, Any]:
    """The label / scenario / group summary printed at the end of ``fsbrain simulate credit``."""
    total = sum(labels.values()) or 1
    return {
        "labels": {k: {"count": labels[k], "share": round(labels[k] / total, 4), "groups": len(groups.get(k, ()))}
                   for k in LABELS if k in labels},
        "scenarios": dict(scenarios.most_common()),
    }


def period(start: StartLike, days: int) -> tuple[str, str]:
    """ISO first and last instant of the simulated period (China time)."""
    c = Clock.of(start, days)
    return (dt.datetime.fromtimestamp(c.start, CN_TZ).isoformat(),
            dt.datetime.fromtimestamp(c.end, CN_TZ).isoformat())
