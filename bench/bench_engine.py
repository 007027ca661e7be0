"""Decision engine benchmarks: in-process decisions/s (one core), backtest throughput, state memory.

    python bench/bench_engine.py [--n 50000] [--backtest-n 1000000] [--quick]

Writes docs/benchmarks/engine.md. Timings are measured, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import secrets
import tempfile
import time
from pathlib import Path

from _common import load_average, pct, pin_one_core, raw_events, rss_mb, write_result

import fsbrain  # noqa: F401  (sets RUST_BACKTRACE before zen is imported)
from fsbrain import speedups
from fsbrain.engine import Engine, default_policy_path, load_policy
from fsbrain.engine.backtest import prepare_records, run_backtest
from fsbrain.server import tune_gc
from fsbrain.state import MemoryStateBackend, make_backend

_GC_DEFAULT = gc.get_threshold()


def inprocess(prepared: list[dict], backend: str) -> dict:
    pol = load_policy(default_policy_path())
    state = MemoryStateBackend() if backend == "memory" else make_backend(
        "redis", url="redis://127.0.0.1:6379/13", prefix=f"bench{secrets.token_hex(4)}")
    eng = Engine(state=state)
    eng.set_policy(pol)
    warm = min(2000, len(prepared) // 10)
    lat = []
    tune_gc()  # the collector settings `fsbrain serve` runs with
    t0 = time.perf_counter()
    for i, ev in enumerate(prepared):
        s = time.perf_counter()
        eng.decide(ev["event_type"], ev["data"], event_id=ev["event_id"], timestamp=ev["timestamp"])
        if i >= warm:
            lat.append((time.perf_counter() - s) * 1e6)
        if i == warm - 1:
            t0 = time.perf_counter()
            c0 = time.process_time()
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    state.close()
    gc.unfreeze()
    gc.set_threshold(*_GC_DEFAULT)
    return {"backend": backend, "decisions": len(lat), "per_s": len(lat) / secs, "per_cpu_s": len(lat) / cpu,
            "p50_us": pct(lat, 50),
            "p99_us": pct(lat, 99), "p999_us": pct(lat, 99.9), "rules": len(pol.rules), "features": len(pol.features)}


def state_memory(n_entities: int) -> dict:
    from fsbrain.state.base import WindowOp, WindowSpec

    gc.collect()
    before = rss_mb()
    st = MemoryStateBackend()
    spec = WindowSpec(name="id_platforms_7d", agg="distinct", window=7 * 86400)
    t = 1_790_000_000.0
    batch = []
    for i in range(n_entities):
        batch.append(WindowOp(spec, f"h:{i:032x}", f"plat-{i % 20:02d}"))
        if len(batch) == 1000:
            st.update(batch, t + i * 0.01)
            batch = []
    if batch:
        st.update(batch, t + n_entities * 0.01)
    gc.collect()
    used = rss_mb() - before
    return {"entities": n_entities, "rss_mb": used, "mb_per_million": used / n_entities * 1e6}


def _timed(fn):  # wall seconds, CPU seconds of this process and its finished children, load before/after
    import os

    load0, t0, c0 = load_average(), time.perf_counter(), os.times()
    out = fn()
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user) + \
        (c1.children_system - c0.children_system)
    return out, time.perf_counter() - t0, cpu, (load0, load_average())


def backtests(prep_path: Path, *, two_stage: bool = True) -> list[str]:
    """Backtest rows: the columnar run (the default of `fsbrain backtest`), the streaming reference (one
    process) and, optionally, the two-stage streaming run; each report compared with the reference's."""
    from fsbrain.engine.backtest import backtest_file, comparable
    from fsbrain.io import read_records

    pol = load_policy(default_policy_path())
    col, col_s, col_cpu, col_load = _timed(lambda: backtest_file(pol, prep_path, method="columnar", workers=2))
    ref, ref_s, ref_cpu, ref_load = _timed(lambda: run_backtest(pol, read_records(prep_path), workers=1))
    ref_d = comparable(ref.to_dict())
    same_col = comparable(col.to_dict()) == ref_d
    ph = col.phases
    rows = [
        f"| backtest {ref.events:,} prepared applications, streaming, one process (read JSON lines + "
        f"features + rules + tally; the reference) | {ref.events / ref_s:,.0f} events/s ({ref_s:,.1f} s, "
        f"{ref_cpu:,.1f} CPU-s; load {ref_load[0]} → {ref_load[1]}) |",
    ]
    if two_stage:
        two, two_s, two_cpu, two_load = _timed(
            lambda: run_backtest(pol, read_records(prep_path), workers=1, rule_workers=1))
        rows.append(
            f"| backtest {two.events:,} prepared applications, streaming, rules and tally in a second process "
            f"(`--method streaming --rule-workers 1`; report identical to the reference: "
            f"{'yes' if comparable(two.to_dict()) == ref_d else 'NO'}) | {two.events / two_s:,.0f} events/s "
            f"({two_s:,.1f} s, {two_cpu:,.1f} CPU-s; load {two_load[0]} → {two_load[1]}) |")
    rows.append(
        f"| **backtest {col.events:,} prepared applications, columnar** (`fsbrain backtest`, default "
        f"`--method auto`: features for the whole history at once, rules in 2 worker processes; report "
        f"identical to the reference: {'yes' if same_col else 'NO'}) | **{col.events / col_s:,.0f} events/s** "
        f"({col_s:,.1f} s: read + extract {ph.get('extract', 0):,.1f} s, features {ph.get('features', 0):,.1f} s, "
        f"rules + tally {ph.get('rules', 0):,.1f} s; {col_cpu:,.1f} CPU-s = "
        f"{col_cpu / max(col.events, 1) * 1e6:,.0f} µs per event; load {col_load[0]} → {col_load[1]}) |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000, help="events for the in-process run")
    ap.add_argument("--backtest-n", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--prepared", type=Path, help="backtest this prepared JSON-lines file (e.g. one kept from an "
                    "earlier run) instead of simulating and preparing --backtest-n applications")
    ap.add_argument("--backtest-only", action="store_true",
                    help="only the backtest rows (needs --prepared); printed, docs/benchmarks/engine.md untouched")
    ap.add_argument("--skip-two-stage", action="store_true", help="leave out the two-stage streaming backtest")
    args = ap.parse_args()
    if args.backtest_only:
        if not args.prepared:
            ap.error("--backtest-only needs --prepared FILE")
        print(f"Load average before: {load_average()}")
        print("\n".join(backtests(args.prepared, two_stage=not args.skip_two_stage)))
        return
    if args.quick:
        args.n, args.backtest_n = 5000, 20_000
    key = secrets.token_bytes(32)
    load0 = load_average()

    t = time.perf_counter()
    raw = raw_events(args.n, seed=5)
    sim_s = time.perf_counter() - t
    t = time.perf_counter()
    prepared = [r for r in prepare_records(raw, key, workers=2) if "error" not in r]
    prep_s = time.perf_counter() - t
    pin = pin_one_core()
    mem = inprocess(prepared, "memory")
    red = None if args.skip_redis else inprocess(prepared[: min(len(prepared), 20000)], "redis")
    import os

    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))

    # backtest over 1M simulated applications (prepared once, as the decision log stores them)
    with tempfile.TemporaryDirectory() as d:
        raw_path, prep_path = Path(d) / "raw.jsonl", Path(d) / "prepared.jsonl"
        from fsbrain.domains.credit.simulator import iter_applications

        t = time.perf_counter()
        with open(raw_path, "w", encoding="utf-8") as fh:
            for r in iter_applications(args.backtest_n, seed=6, days=60):
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        bt_sim_s = time.perf_counter() - t
        from fsbrain.io import read_records

        t = time.perf_counter()
        with open(prep_path, "wb") as fh:
            import orjson

            for r in prepare_records(read_records(raw_path), key, workers=2):
                if "error" not in r:
                    fh.write(orjson.dumps(r) + b"\n")
        bt_prep_s = time.perf_counter() - t
        if args.prepared:
            prep_path = args.prepared
        bt_rows = backtests(prep_path, two_stage=not args.skip_two_stage)
        raw_bt = None
        if args.quick:
            pol = load_policy(default_policy_path())
            t = time.perf_counter()
            raw_rep = run_backtest(pol, read_records(raw_path), workers=2, key=key)
            raw_bt = (raw_rep.events, time.perf_counter() - t)
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:  # a fresh process: RSS not blurred by earlier runs
        memr = pool.apply(state_memory, (200_000 if args.quick else 1_000_000,))

    lines = [
        f"Load average before/after: {load0} → {load_average()}. Policy: shipped `credit-default` "
        f"({mem['rules']} rules, {mem['features']} windowed features).",
        "",
        "| measurement | result |",
        "|---|---|",
        f"| in-process decisions, memory state, one core ({pin}; compiled hot path: "
        f"{'yes' if speedups.active() else 'NO'}) | **{mem['per_s']:,.0f} decisions/s** wall "
        f"({mem['per_cpu_s']:,.0f} per CPU-second); p50 {mem['p50_us']:.0f} µs, p99 {mem['p99_us']:.0f} µs, "
        f"p99.9 {mem['p999_us']:.0f} µs ({mem['decisions']:,} decisions) |",
    ]
    if red:
        lines.append(f"| in-process decisions, Redis state (one round trip per decision) | {red['per_s']:,.0f} "
                     f"decisions/s; p50 {red['p50_us']:.0f} µs, p99 {red['p99_us']:.0f} µs |")
    lines += [
        f"| simulate {args.n:,} applications | {args.n / sim_s:,.0f} applications/s |",
        f"| validate + pseudonymise (2 processes) | {len(prepared) / prep_s:,.0f} events/s |",
        f"| simulate {args.backtest_n:,} applications to JSON lines | {bt_sim_s:,.1f} s "
        f"({args.backtest_n / bt_sim_s:,.0f}/s) |",
        f"| prepare {args.backtest_n:,} (validate + pseudonymise, 2 processes) | {bt_prep_s:,.1f} s "
        f"({args.backtest_n / bt_prep_s:,.0f}/s) |",
        *bt_rows,
    ]
    if raw_bt:
        lines.append(f"| backtest from raw applications (validation in 2 processes) | {raw_bt[0] / raw_bt[1]:,.0f} events/s |")
    lines += [
        f"| memory state, resident size per million tracked entities (one distinct-count feature, 7-day "
        f"window) | {memr['mb_per_million']:,.0f} MB per million ({memr['entities']:,} entities: "
        f"{memr['rss_mb']:,.0f} MB) |",
        "",
        "Reproduce: `python bench/bench_engine.py` (add `--quick` for a smoke run).",
    ]
    p = write_result("engine", "Decision engine (issue: decision engine, credit)", "\n".join(lines))
    print(p.read_text())


if __name__ == "__main__":
    main()
