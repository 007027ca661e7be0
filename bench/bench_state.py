"""State-backend benchmark: update_get throughput (15 windowed features per event) and memory per entity.

Run ``.venv/bin/python bench/bench_state.py`` (about a minute; Redis on 127.0.0.1:6379 is used when it
answers, database 13 under the prefix ``fsbbench``, which is deleted afterwards). Results and the machine
description go to ``docs/benchmarks/state.md``; ``--quick`` runs a smaller version and ``--no-write``
only prints.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _machine import describe  # noqa: E402

from fsbrain.state.base import WindowOp, WindowSpec  # noqa: E402
from fsbrain.state.memory import MemoryStateBackend, resident_bytes  # noqa: E402

H, D = 3600.0, 86400.0
# (name, aggregate, window, entity field, value field): the shape of a credit anti-fraud policy.
FEATURES = [
    ("id_apps_1h", "count", H, "id", None),
    ("id_apps_24h", "count", D, "id", None),
    ("id_platforms_7d", "distinct", 7 * D, "id", "platform"),
    ("id_devices_24h", "distinct", D, "id", "device"),
    ("id_amount_30d", "sum", 30 * D, "id", "amount"),
    ("id_amount_max_7d", "max", 7 * D, "id", "amount"),
    ("id_amount_mean_30d", "mean", 30 * D, "id", "amount"),
    ("dev_apps_1h", "count", H, "device", None),
    ("dev_ids_30d", "distinct", 30 * D, "device", "id"),
    ("dev_amount_min_24h", "min", D, "device", "amount"),
    ("phone_ids_30d", "distinct", 30 * D, "phone", "id"),
    ("phone_apps_24h", "count", D, "phone", None),
    ("ip_apps_10m", "count", 600.0, "ip", None),
    ("ip_ids_24h", "distinct", D, "ip", "id"),
    ("ip_amount_1h", "sum", H, "ip", "amount"),
]
SPECS = [(WindowSpec(name=n, agg=a, window=w), k, v) for n, a, w, k, v in FEATURES]


def make_events(n: int, seed: int = 7, pool: int = 50_000) -> list[tuple[float, list[WindowOp]]]:
    """``n`` loan applications over ~a week: repeat applicants, shared devices, phones and IPs."""
    rng = random.Random(seed)
    out, ts = [], 1_780_000_000.0
    for _ in range(n):
        ts += rng.expovariate(1 / 6.0)
        ev = {
            "id": f"id{rng.randrange(pool)}",
            "device": f"dev{rng.randrange(pool * 3 // 4)}",
            "phone": f"ph{rng.randrange(pool)}",
            "ip": f"ip{rng.randrange(pool // 2)}",
            "platform": f"p{rng.randrange(40)}",
            "amount": round(rng.uniform(500, 50_000), 2),
        }
        out.append((ts, [WindowOp(s, ev[k], ev[v] if v else 1) for s, k, v in SPECS]))
    return out


def throughput(backend: Any, events: list[tuple[float, list[WindowOp]]]) -> dict[str, float]:
    """Run ``update_get`` once per event; calls/s, ops/s and per-call latency percentiles."""
    lat = []
    clock = time.perf_counter
    c0, t0 = time.process_time(), clock()
    for ts, ops in events:
        t = clock()
        backend.update_get(ops, ts)
        lat.append(clock() - t)
    wall, cpu = clock() - t0, time.process_time() - c0
    lat.sort()
    n_ops = len(events) * len(SPECS)
    return {
        "calls_s": len(events) / wall,
        "ops_s": n_ops / wall,
        "us_per_op": wall / n_ops * 1e6,
        "cpu_calls_s": len(events) / cpu,
        "cpu_us_per_op": cpu / n_ops * 1e6,
        "p50_us": lat[len(lat) // 2] * 1e6,
        "p99_us": lat[int(len(lat) * 0.99)] * 1e6,
    }


def redis_script_usec(url: str) -> tuple[int, int]:
    """Server-side (calls, microseconds) of EVALSHA so far, from INFO commandstats."""
    import redis

    r = redis.Redis.from_url(url)
    st = r.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    r.close()
    return int(st["calls"]), int(st["usec"])


def memory_per_entity(n_entities: int, events_per_entity: int) -> dict[str, float]:
    """RSS growth of the memory backend holding ``n_entities`` applicants x 15 features."""
    gc.collect()
    before = resident_bytes()
    b = MemoryStateBackend(sweep_every=0)
    rng = random.Random(3)
    ts = 1_780_000_000.0
    for rep in range(events_per_entity):
        for i in range(n_entities):  # key strings are made here: the backend keeps them, so they count
            key = f"{i:012d}"
            ops = [
                WindowOp(s, key, f"v{rng.randrange(9)}" if s.agg == "distinct" else 1_000.5)
                for s, _, _ in SPECS
            ]
            b.update(ops, ts + rep * 4_000 + i * 1e-3)
    gc.collect()
    grown = resident_bytes() - before
    states = b.entity_count()
    return {
        "entities": n_entities,
        "states": states,
        "events_per_entity": events_per_entity,
        "rss_mib": grown / 2**20,
        "mib_per_million_entities": grown / n_entities * 1e6 / 2**20,
        "bytes_per_state": grown / states,
    }


def redis_memory(url: str, n_entities: int) -> dict[str, float]:
    """Redis ``used_memory`` growth for ``n_entities`` applicants x 15 features (one hash per state)."""
    from fsbrain.state.redis import RedisStateBackend

    b = RedisStateBackend(url=url, prefix="fsbbench")
    b.clear()
    before = b.stats()["used_memory"]
    ts = 1_780_000_000.0
    for i in range(n_entities):
        key = f"{i:012d}"
        b.update(
            [WindowOp(s, key, "v1" if s.agg == "distinct" else 1_000.5) for s, _, _ in SPECS], ts + i * 1e-3
        )
    keys = b.entity_count()
    grown = b.stats()["used_memory"] - before
    b.clear()
    b.close()
    return {
        "entities": n_entities,
        "keys": keys,
        "used_memory_mib": grown / 2**20,
        "mib_per_million_keys": grown / keys * 1e6 / 2**20,
        "mib_per_million_entities": grown / n_entities * 1e6 / 2**20,
    }


def redis_url_if_up() -> str | None:
    import redis

    url = os.environ.get("FSBRAIN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        return None
    return url


def report(res: dict[str, Any], args: argparse.Namespace) -> str:
    rows = []
    for name in ("memory", "memory, gc tuned", "redis"):
        if name in res:
            r = res[name]
            server = f"{r['server_us_per_call']:.0f}" if "server_us_per_call" in r else "-"
            rows.append(
                f"| {name} | {r['calls_s']:,.0f} | {r['ops_s']:,.0f} | {r['us_per_op']:.2f} | "
                f"{r['cpu_calls_s']:,.0f} | {r['cpu_us_per_op']:.2f} | {r['p50_us']:.0f} | "
                f"{r['p99_us']:.0f} | {server} |"
            )
    mem = "\n".join(
        f"| memory | {x['entities']:,} x {x['events_per_entity']} event(s) | {x['states']:,} | "
        f"{x['rss_mib']:.0f} MiB | **{x['mib_per_million_entities']:,.0f} MiB** | {x['bytes_per_state']:.0f} B |"
        for x in res["rss"]
    )
    if "redis_mem" in res:
        x = res["redis_mem"]
        mem += (
            f"\n| redis `used_memory` | {x['entities']:,} x 1 event | {x['keys']:,} keys | "
            f"{x['used_memory_mib']:.0f} MiB | **{x['mib_per_million_entities']:,.0f} MiB** "
            f"({x['mib_per_million_keys']:,.0f} MiB per million keys) | "
            f"{x['used_memory_mib'] * 2**20 / x['keys']:.0f} B |"
        )
    return f"""# State backends: benchmark

Produced by `.venv/bin/python bench/bench_state.py{" --quick" if args.quick else ""}` on {res["date"]}.

Machine: {res["machine"]}. Load average when it started: {res["load"]} (other work was running on this
2-core machine: treat these as lower bounds of what an idle core does).

## update_get throughput, 15 windowed features per event

{res["n_events"]:,} simulated loan applications (Redis: the first {res.get("n_redis", 0):,}) (repeat applicants, shared devices, phones, IPs; ~6 s
apart), each one `update_get` call with the 15 features of a credit policy (count, distinct, sum, min,
max, mean over 10 min to 30 days). One core, one client; for Redis one script call (EVALSHA) per event.
"Wall" rates are what this run saw on a shared machine; "per CPU-second" divides by the client process's
CPU time instead (what a dedicated core would do); the last column is Redis's own time per script call
(INFO commandstats), which a dedicated Redis core adds to each call's latency. The pre-built events are
moved out of the garbage collector's way (`gc.freeze()`) before timing; "gc tuned" is the same run with
`gc.set_threshold(50_000, 20, 100)` (see docs/state.md).

| backend | calls/s (wall) | ops/s (wall) | µs/op (wall) | calls per CPU-second | client CPU µs/op | p50 µs/call | p99 µs/call | Redis server µs/call |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

## Memory per tracked entity

An *entity* here is one applicant key tracked by all 15 features (15 states). Resident-set growth of the
process (memory backend) or growth of Redis `used_memory`, divided by the entities held.

| backend | workload | states | grown | per million entities | per state |
|---|---|---|---|---|---|
{mem}

Entities touched once keep their single bucket without a bucket dict; an entity seen in several buckets
pays for a dict of buckets (and, for distinct, a set per bucket). Idle entities leave memory once their
window has passed (automatic sweep, `expire`, and TTLs in Redis).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller run (a few seconds)")
    ap.add_argument(
        "--no-write", action="store_true", help="print only; do not write docs/benchmarks/state.md"
    )
    args = ap.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    res: dict[str, Any] = {
        "machine": describe(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    events = make_events(int(60_000 * scale))
    res["n_events"] = len(events)
    gc.collect()
    gc.freeze()  # the pre-built events are the bench's, not the backend's: keep them out of GC passes
    throughput(MemoryStateBackend(), events[:2_000])  # warm-up
    res["memory"] = throughput(MemoryStateBackend(), events)
    print("memory", res["memory"], flush=True)
    gc.collect()
    old = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)  # what a server holding large state does (docs/state.md)
    res["memory, gc tuned"] = throughput(MemoryStateBackend(), events)
    gc.set_threshold(*old)
    print("memory, gc tuned", res["memory, gc tuned"], flush=True)
    url = redis_url_if_up()
    if url:
        from fsbrain.state.redis import RedisStateBackend

        rb = RedisStateBackend(url=url, prefix="fsbbench")
        rb.clear()
        calls0, usec0 = redis_script_usec(url)
        res["n_redis"] = int(8_000 * scale)
        res["redis"] = throughput(rb, events[: int(8_000 * scale)])
        calls1, usec1 = redis_script_usec(url)
        res["redis"]["server_us_per_call"] = (usec1 - usec0) / max(1, calls1 - calls0)
        rb.clear()
        rb.close()
        print("redis", res["redis"], flush=True)
        res["redis_mem"] = redis_memory(url, int(8_000 * scale))
        print("redis memory", res["redis_mem"], flush=True)
    gc.unfreeze()
    del events
    res["rss"] = [memory_per_entity(int(100_000 * scale), 1), memory_per_entity(int(25_000 * scale), 4)]
    print("rss", res["rss"], flush=True)
    text = report(res, args)
    if not args.no_write:
        out = ROOT / "docs" / "benchmarks" / "state.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
