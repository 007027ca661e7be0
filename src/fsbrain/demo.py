"""Demo data for a first start: simulated applications decided through the platform, and list entries."""

from __future__ import annotations

import time
from typing import Any

DEMO_N = 3000
DEMO_SEED = 20261125


def load_demo(platform: Any, *, console: Any = None, n: int = DEMO_N) -> dict[str, int]:
    """Decide ``n`` simulated applications from the last two weeks (once: skipped if decisions exist).

    Returns counts by outcome (empty when the demo was already loaded).
    """
    if platform.store.list_decisions(limit=1):
        if console is not None:
            console.print("demo data already loaded")
        return {}
    from fsbrain.domains.credit.simulator import iter_applications

    start = time.time() - 14 * 86400
    counts: dict[str, int] = {}
    first_device = None
    for rec in iter_applications(n, seed=DEMO_SEED, days=14, start=start):
        payload = {k: v for k, v in rec.items() if k not in ("label", "scenario") and not k.startswith("_")}
        d, _ = platform.decide("loan_application", payload)
        counts[d.outcome] = counts.get(d.outcome, 0) + 1
        if first_device is None and rec.get("label") == "gang_fraud":
            first_device = payload.get("device", {}).get("device_id")
    if first_device:
        platform.add_list_entry(list_type="black", entity_type="device_id", value=first_device,
                                reason="device used by a fraud ring (demo)", source="demo", expires_at=None,
                                actor="demo")
    platform.add_list_entry(list_type="grey", entity_type="ip", value="203.0.113.7",
                            reason="reported proxy exit (demo)", source="demo",
                            expires_at=time.time() + 30 * 86400, actor="demo")
    if console is not None:
        console.print(f"demo: decided {n} simulated applications: {counts}")
    return counts
