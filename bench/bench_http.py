"""HTTP decision API under sustained load on loopback: 500 requests/s for 60 s, open loop.

    python bench/bench_http.py [--rate 500] [--seconds 60] [--quick]

Runs the server twice — in-process state with one worker, and Redis state with two workers — each on
SQLite in a fresh temporary home, and reports latency percentiles measured from each request's scheduled
send time, errors and achieved rate. Writes docs/benchmarks/http.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from _common import RESULTS, ROOT, load_average, raw_events, write_result
from loadgen import run, run_load

NOTES_MARK = "<!-- notes: kept when the tables above are re-measured -->"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, port: int, extra: list[str]) -> subprocess.Popen:
    env = dict(os.environ, FSBRAIN_HOME=str(home), FSBRAIN_LOG_LEVEL="warning")
    exe = Path(sys.executable).with_name("fsbrain")
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port), *extra], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not become ready in 60 s")


@contextlib.contextmanager
def pg_schema(base: str) -> Iterator[str]:
    """A fresh schema in a PostgreSQL database, dropped afterwards; yields a URL that uses it."""
    import sqlalchemy as sa

    schema = f"bench_{secrets.token_hex(6)}"
    eng = sa.create_engine(base)
    with eng.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        with eng.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        eng.dispose()


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and all its descendants (workers, writer processes)."""
    tck = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    f = fh.read().rsplit(")", 1)[1].split()
                stats[int(d)] = (int(f[1]), (int(f[11]) + int(f[12])) / tck)
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += stats[p][1]
        todo += [c for c, (ppid, _) in stats.items() if ppid == p]
    return total


def one_run(name: str, extra: list[str], bodies: list[bytes], rate: float, seconds: float) -> dict:
    run_id = secrets.token_hex(4)
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        proc = start_server(Path(d), port, extra)
        try:
            def body(i: int, tag: str) -> bytes:
                b = bodies[i % len(bodies)]
                return b.replace(b'"event_id": "', f'"event_id": "{tag}{run_id}-{i}-'.encode(), 1)

            run(run_load("127.0.0.1", port, "/v1/decisions/loan_application",
                         lambda i: body(i, "w"), rate=min(rate, 200), seconds=5))
            load0 = load_average()
            cpu0 = tree_cpu(proc.pid)
            res = run(run_load("127.0.0.1", port, "/v1/decisions/loan_application",
                               lambda i: body(i, "m"), rate=rate, seconds=seconds))
            cpu = tree_cpu(proc.pid) - cpu0
            load1 = load_average()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"name": name, "sent": res.sent, "ok": res.ok, "errors": res.errors, "status": res.status,
            "rate": res.sent / res.seconds, "p50": res.pct(50), "p90": res.pct(90), "p99": res.pct(99),
            "max": max(res.latencies_ms) if res.latencies_ms else float("nan"),
            "cpu_ms": cpu / max(1, res.sent) * 1000, "loadgen_cpu_ms": res.cpu_seconds / max(1, res.sent) * 1000,
            "load": f"{load0} → {load1}"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, nargs="+", default=[500.0, 200.0],
                    help="request rates to run, one after the other (default: the target 500, then 200)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--redis-workers", type=int, nargs="+", default=[2, 1],
                    help="worker counts for the Redis runs (default: 2, the multi-worker set-up Redis is for, then 1)")
    ap.add_argument("--writer", default=None, help="--writer for fsbrain serve (default: serve's own, auto)")
    ap.add_argument("--out", default="http", help="result name under docs/benchmarks (default http)")
    ap.add_argument("--postgres", default=None, metavar="URL",
                    help="also run the memory-state server on this PostgreSQL database (a fresh schema per run), "
                         "e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    if args.quick:
        args.seconds = 10
    load0 = load_average()
    bodies = []
    for r in raw_events(5000, seed=8):
        payload = {k: v for k, v in r.items() if k not in ("label", "scenario") and not k.startswith("_")}
        bodies.append(json.dumps(payload, ensure_ascii=False).encode())
    cfg_dir = tempfile.mkdtemp()
    cfg = Path(cfg_dir) / "redis.yaml"
    cfg.write_text(f"state: {{type: redis, url: 'redis://127.0.0.1:6379/12', prefix: bench{secrets.token_hex(3)}}}\n")
    writer = ["--writer", args.writer] if args.writer else []
    runs = []
    for rate in args.rate:
        r = one_run("memory state, 1 worker, SQLite", writer, bodies, rate, args.seconds)
        runs.append(r | {"target": rate})
        print(runs[-1], flush=True)
        if args.postgres:
            with pg_schema(args.postgres) as url:
                r = one_run("memory state, 1 worker, PostgreSQL", ["--database-url", url, *writer], bodies, rate,
                            args.seconds)
            runs.append(r | {"target": rate})
            print(runs[-1], flush=True)
        if not args.skip_redis:
            for w in args.redis_workers:
                r = one_run(f"Redis state, {w} worker{'s' if w > 1 else ''}, SQLite",
                            ["--config", str(cfg), "--workers", str(w), *writer], bodies, rate, args.seconds)
                runs.append(r | {"target": rate})
                print(runs[-1], flush=True)
    lines = [f"Open-loop load from a Python client (asyncio protocols on uvloop, requests serialised before the "
             f"clock starts) on the same machine (loopback) at a fixed rate for {args.seconds:g} s after a 5 s "
             f"warm-up; every request a distinct simulated application (new event_id), validated, "
             f"pseudonymised, decided by the shipped policy and stored (`fsbrain serve` defaults: decisions "
             f"committed on the event loop for SQLite{', writer ' + args.writer if args.writer else ''}). Latency "
             f"from the scheduled send time. Load average (1/5/15 min) at the start: {load0}; at the end: "
             f"{load_average()}.", "",
             "| server | target rate | requests | errors | achieved rate | p50 | p90 | p99 | max | server CPU per request "
             "| load generator CPU per request | load average before → after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['name']} | {r['target']:g}/s | {r['sent']:,} | {r['errors']} {r['status'] if r['errors'] else ''} | "
                     f"{r['rate']:,.0f}/s | {r['p50']:.1f} ms | {r['p90']:.1f} ms | **{r['p99']:.1f} ms** | "
                     f"{r['max']:.1f} ms | {r['cpu_ms']:.2f} ms | {r['loadgen_cpu_ms']:.2f} ms | {r['load']} |")
    lines += ["", "Server CPU per request is the user+system time of the server and all its processes (workers, "
              "decision writers) over the measured run, divided by the requests sent: the machine's cost of one "
              "decision, which other load on the machine disturbs less than latency. Load generator CPU per "
              "request is the benchmark process's own user+system time over the same run. Redis's own CPU is "
              "in neither.", "",
              "Reproduce: `python bench/bench_http.py` (Redis on 127.0.0.1:6379)."]
    notes = ""
    old = RESULTS / f"{args.out}.md"
    if old.exists() and NOTES_MARK in old.read_text(encoding="utf-8"):  # hand-written analysis is kept
        notes = "\n\n" + NOTES_MARK + old.read_text(encoding="utf-8").split(NOTES_MARK, 1)[1].rstrip()
    p = write_result(args.out, "Decision API over HTTP", "\n".join(lines) + notes)
    print(p.read_text())


if __name__ == "__main__":
    main()
