"""Web inspector benchmark: requests/s on one core and p50/p99 latency, writes docs/benchmarks/web.md.

Traffic: the held-out benign corpus (``benign_eval.jsonl.gz``: form posts, JSON APIs, Chinese and English
searches, uploads, static files) mixed with 5% attacks (libinjection held-out payloads in a query
parameter), the shape of typical production traffic. Every configuration runs in a fresh process of its own
on one core (no threads), after a warm-up pass, as a server runs one configuration per worker.

Usage: ``python bench/bench_web.py [--n 3000] [--crs ../shared/data/crs-regression]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _common import free_port, wait_port  # noqa: E402
from _machine import describe  # noqa: E402

from fsbrain.domains.web import ml  # noqa: E402
from fsbrain.domains.web.inspector import WebInspector  # noqa: E402
from fsbrain.domains.web.seclang.engine import WebRuleEngine  # noqa: E402

HEADERS = {"Host": "bank.example.com", "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0",
           "Accept": "text/html,*/*", "Accept-Language": "zh-CN,zh;q=0.9", "Accept-Encoding": "gzip"}


def _load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def _speedups_active() -> bool:
    try:
        from fsbrain.domains.web import speedups
    except ImportError:  # code from before the compiled paths
        return False
    return speedups.active()


def traffic(n: int, shared: Path) -> list[dict]:
    with gzip.open(ml.DATA_DIR / "benign_eval.jsonl.gz", "rt", encoding="utf-8") as f:
        benign = [json.loads(line) for line in f]
    attacks = []
    if (shared / "libinjection").is_dir():
        attacks = [{"method": "GET", "uri": "/search?q=" + quote(v, safe=""), "headers": HEADERS, "body": ""}
                   for c, v in ml.libinjection_values(shared) if c != "benign" and ml.heldout(v)]
    out = []
    for i in range(n):
        if attacks and i % 20 == 19:
            out.append(attacks[(i * 7919) % len(attacks)])
        else:
            out.append(benign[i % len(benign)])
    return out


def measure(inspect, reqs: list[dict]) -> dict:
    for r in reqs[:200]:
        inspect(r)
    lat = []
    attacks = 0
    cpu0 = time.process_time()
    for r in reqs:
        t0 = time.thread_time()
        v = inspect(r)
        lat.append((time.thread_time() - t0) * 1000)
        attacks += bool(v["attack"] if isinstance(v, dict) else v.blocked)
    cpu = max(1e-9, time.process_time() - cpu0)
    lat.sort()
    return {"rps": len(reqs) / cpu, "p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99) - 1],
            "max": lat[-1], "flagged": attacks / len(reqs)}


UPSTREAM = """
import sys, uvicorn
BODY = b"<html><body>" + b"x" * 1024 + b"</body></html>"
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html"), (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def _drive(base: str, reqs: list[dict], seconds: float, concurrency: int) -> dict:
    import asyncio

    import httpx

    lat: list[float] = []
    codes: dict[int, int] = {}

    async def worker(client: httpx.AsyncClient, k: int, deadline: float) -> None:
        i = k
        while time.perf_counter() < deadline:
            r = reqs[i % len(reqs)]
            i += concurrency
            h = {k2: v for k2, v in r["headers"].items() if k2.lower() not in ("host", "content-length")}
            t0 = time.perf_counter()
            resp = await client.request(r["method"], r["uri"], headers=h, content=r["body"] or None)
            lat.append((time.perf_counter() - t0) * 1000)
            codes[resp.status_code] = codes.get(resp.status_code, 0) + 1

    async def run() -> float:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            t0 = time.perf_counter()
            await asyncio.gather(*(worker(client, k, t0 + seconds) for k in range(concurrency)))
            return time.perf_counter() - t0

    wall = asyncio.run(run())
    lat.sort()
    return {"rps": len(lat) / wall, "p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99) - 1],
            "codes": codes}


MARKER = "<!-- bench_web.py writes everything above this line; what follows is kept -->"
WRK_PATH = "/search?q=%E4%BF%A1%E7%94%A8%E5%8D%A1%20%E8%BF%98%E6%AC%BE&page=2&sort=date"


UNIQUE_LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, wrk.path .. "&r=" .. counter)
end
"""


def _wrk(base: str, seconds: float, concurrency: int, unique: bool = False) -> dict:
    """Drive ``base + WRK_PATH`` with wrk (C load generator) and parse its summary; ``unique``: a counter in
    the query makes every request different (the proxy's verdict cache never hits)."""
    import re
    import shutil
    import subprocess
    import tempfile

    hdrs = []
    for k, v in HEADERS.items():
        if k != "Host":
            hdrs += ["-H", f"{k}: {v}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(UNIQUE_LUA)
        lua.flush()
        out = subprocess.run([shutil.which("wrk") or "wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s",
                              "--latency", *hdrs, *(["-s", lua.name] if unique else []), base + WRK_PATH],
                             capture_output=True, text=True, timeout=seconds + 60).stdout

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "p50": ms("50"), "p99": ms("99"),
            "codes": {"non-2xx": int(non2xx.group(1)) if non2xx else 0}}


def proxy_overhead(reqs: list[dict], seconds: float = 8.0, concurrency: int = 16) -> list[tuple[str, dict]]:
    """Loopback: a load generator -> (upstream | fsbrain proxy -> upstream); each server its own process;
    the proxy with one worker process, then with two."""
    import shutil
    import subprocess

    benign = [r for r in reqs if "?q=" not in r["uri"] or r["method"] != "GET"]
    traffics = [("", False)]
    drive = _drive
    if shutil.which("wrk"):
        traffics = [("unique requests", True), ("one repeated request", False)]

        def drive(base: str, _reqs: list[dict], secs: float, conc: int, unique: bool = False) -> dict:
            return _wrk(base, secs, conc, unique)
    up_port = free_port()
    procs = [subprocess.Popen([sys.executable, "-c", UPSTREAM, str(up_port)])]
    try:
        wait_port(up_port)
        out = [("direct to upstream", drive(f"http://127.0.0.1:{up_port}", benign, seconds, concurrency))]
        for workers in (1, 2):
            port = free_port()
            px = subprocess.Popen([sys.executable, "-c", "from fsbrain.cli import main; main()", "web", "proxy",
                                   "--upstream", f"http://127.0.0.1:{up_port}", "--listen", f"127.0.0.1:{port}",
                                   "--mode", "block", "--workers", str(workers)])
            procs.append(px)
            wait_port(port)
            time.sleep(0.5 * workers)
            for label, unique in traffics:
                kw = {"unique": unique} if label else {}
                drive(f"http://127.0.0.1:{port}", benign[:200], 2.0, concurrency, **kw)  # warm-up
                out.append((f"through fsbrain proxy, {workers} worker{'s' if workers > 1 else ''} (block mode, "
                            f"rules + model{', ' + label if label else ''})",
                            drive(f"http://127.0.0.1:{port}", benign, seconds, concurrency, **kw)))
            px.terminate()
            px.wait(15)
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)
    return out


def _config_names(crs: bool) -> list[str]:
    names = ["fsbrain rules + model, PL1", "fsbrain rules + model, PL2", "fsbrain rules only, PL1",
             "model only (n-gram scoring of every parameter)"]
    if crs:
        names += ["OWASP CRS v4 rules + model, PL1", "OWASP CRS v4 rules + model, PL2",
                  "OWASP CRS v4 rules only (engine alone), PL1"]
    return names


def _build_config(name: str, crs: Path) -> Any:
    """The inspect function of a configuration."""
    from fsbrain.domains.web.request import HttpRequest

    if name == "fsbrain rules only, PL1":
        return WebInspector(paranoia=1, model=False).inspect
    if name.startswith("model only"):
        model = ml.WebModel.load_default()
        return lambda r: {"attack": any(s.p_attack >= 0.85 for _, s in model.score_params(
            [(n, v) for n, v in ml.request_params(r, headers=True) if not ml.is_plain(v)], explain=False))}
    pl = int(name[-1])
    if name.startswith("fsbrain rules + model"):
        return WebInspector(paranoia=pl).inspect
    eng = WebRuleEngine.from_crs(crs, paranoia=pl)
    if "engine alone" in name:
        return lambda r: eng.inspect(HttpRequest.from_dict(r))
    return WebInspector(paranoia=pl, rules=eng).inspect


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--crs", type=Path, default=REPO.parent / "shared" / "data" / "crs-regression")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "web.md")
    ap.add_argument("--no-proxy", action="store_true", help="skip the loopback proxy-overhead measurement")
    ap.add_argument("--config", type=int, help=argparse.SUPPRESS)  # measure one configuration (a child process)
    args = ap.parse_args(argv)
    load0 = _load()
    reqs = traffic(args.n, args.shared)
    names = _config_names(args.crs.is_dir())
    if args.config is not None:  # one configuration, in this (child) process
        fn = _build_config(names[args.config], args.crs)
        from fsbrain.speedups import settle_heap

        settle_heap()  # as the proxy and fsbrain serve do once their rules are loaded
        print(json.dumps(measure(fn, reqs)))
        return 0
    rows = []
    for k, name in enumerate(names):
        # a process per configuration, as a server runs one per worker: configurations measured before, with
        # their rule sets, caches and automata still loaded, made later ones of one shared process slower
        out = subprocess.run([sys.executable, __file__, "--config", str(k), "--n", str(args.n), "--crs", str(args.crs),
                              "--shared", str(args.shared)], check=True, capture_output=True, text=True).stdout
        m = json.loads(out.strip().splitlines()[-1])
        rows.append((name, m))
        print(f"{name}: {m['rps']:.0f} req/s, p50 {m['p50']:.3f} ms, p99 {m['p99']:.3f} ms, flagged {m['flagged']:.3f}",
              flush=True)
    lines = ["# Web inspector benchmark", "",
             f"Machine: {describe()}", "",
             f"Command: `python bench/bench_web.py --n {args.n}` (a process per configuration, one core, after a "
             "200-request warm-up; until the seventh session every configuration ran in one process, and those "
             "measured before slowed the later ones). Requests/s are per CPU-second and latencies are CPU time of the inspecting thread "
             f"(`time.thread_time`), because the machine is shared (load average {load0} at the start, {_load()} at "
             "the end of the run) and wall-clock numbers mostly measure the other work; contention still inflates "
             "CPU time. Compiled hot paths (`fsbrain.domains.web._fastweb`): "
             f"{'in use' if _speedups_active() else 'not built / off'}. Traffic: the held-out benign corpus (`benign_eval.jsonl.gz`: form posts, JSON APIs, "
             "Chinese/English searches, uploads, static files) with every 20th request an attack "
             "(libinjection held-out payload in `q`).", "",
             "| configuration | requests per CPU-second | p50 ms (CPU) | p99 ms (CPU) | max ms | share flagged |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, m in rows:
        lines.append(f"| {name} | {m['rps']:.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {m['max']:.1f} | "
                     f"{m['flagged']:.3f} |")
    lines += ["", "Latency includes request parsing, both rule phases and model scoring; the rule engine "
              "(`seclang/`) dominates. Every request of this corpus is different (new parameter values, new "
              "cookies), so most values are scanned for the first time: compare with the *value caches emptied* "
              "rows of web_rules.md rather than its mix of repeating header values. The inspectors are built, "
              "then `settle_heap()` runs (`gc.freeze()`, as the proxy and `fsbrain serve` do)."]
    if not args.no_proxy:
        import shutil

        prox = proxy_overhead(reqs)
        lines += ["", "## Proxy overhead on loopback", "",
                  "`fsbrain web proxy --mode block` (the default fast server: raw asyncio protocols with httptools "
                  "on both sides and a keep-alive upstream pool; `--workers 1` and `--workers 2`; "
                  "`bench/bench_web_proxy.py` measures it against a realistic upstream) in front of a "
                  "minimal uvicorn upstream (1 KiB page), driven with 16 concurrent keep-alive connections for "
                  "8 s by " + ("`wrk -t1 -c16` with a browser's headers and a Chinese search query "
                               f"(`{WRK_PATH}`)" if shutil.which("wrk") else
                               "an httpx load generator over the benign requests above") + "; upstream, proxy and "
                  "load generator are separate processes on the same 2 cores, so the proxy competes with both "
                  "for CPU. \"Unique requests\": a counter in the query makes every request different, so the "
                  "proxy's verdict cache never hits and every request is inspected; \"one repeated request\": "
                  "the cache answers from the third on (a verdict is stored when its request is seen twice). Wall-clock numbers (CPU per request of each process: "
                  "`bench/bench_web_proxy.py`):", "",
                  "| path | requests/s | p50 ms | p99 ms | status codes |", "|---|---:|---:|---:|---|"]
        for name, m in prox:
            lines.append(f"| {name} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['codes']} |")
            print(f"{name}: {m['rps']:.0f} req/s p50 {m['p50']:.2f} ms p99 {m['p99']:.2f} ms {m['codes']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept = ""
    if args.out.exists():  # the hand-written sections after the marker are kept
        old = args.out.read_text(encoding="utf-8")
        if MARKER in old:
            kept = old[old.index(MARKER):]
    lines += ["", kept.rstrip("\n")] if kept else []
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
