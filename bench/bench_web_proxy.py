"""Does ``fsbrain web proxy`` become the bottleneck of the site it protects? Loopback measurement.

Two upstreams, each a uvicorn process (httptools):

* ``trivial``: answers every request with a fixed 1 KiB HTML page (the proxy's worst case);
* ``bank``: what an online-banking JSON API does per request: parses the query, builds an account
  statement of 100 transactions (amounts as ``Decimal``, running balance, per-category totals, a filter on
  the search term) and a 360-month loan amortisation offer (``Decimal``), renders it to JSON (~18 KiB) and
  computes an ETag (SHA-256) over it; about 0.5 ms of CPU per request.

``bank2`` / ``trivial2`` are the same apps with two uvicorn worker processes (a site that uses both cores,
as it would in production).

For each upstream, in one run: ``wrk -t1 -c16`` for ``--seconds`` (a) straight to the upstream, then
through ``fsbrain web proxy --mode block`` (rules + model, PL1) with (b) ``--workers 1`` and (c)
``--workers 2``. Two kinds of traffic (``--traffic``):

* ``unique``: every request differs (a counter in the query, by a wrk Lua script), so the proxy's verdict
  cache never hits: every request is inspected (the honest worst case);
* ``repeat``: the same request again and again (a browser's headers and a Chinese search query), which the
  verdict cache answers after the first time (static assets, polling: the best case).

Per row: wall requests/s, the site throughput lost against (a) with the same traffic, latency, and the CPU
time of each process (upstream, proxy with its worker processes, wrk; user + system from ``/proc/PID/stat``
over the run) divided by the requests served: CPU µs per request, the number that stays meaningful on a
shared machine. ``proxy/upstream`` is the proxy's CPU per request over the upstream's: the cores of proxy
needed per core of the site. ``--baseline-src DIR`` adds the proxy rows run from another source tree (a
checkout of an earlier commit's ``src``) in the same run, for a before/after on the same machine
(``--src DIR`` measures another tree than this checkout's ``src/``); with ``--interleave ROUNDS`` the two
trees' one-worker proxies are instead measured alternately, ROUNDS times each (medians: the robust
before/after on a noisy machine).
``--modes`` adds ``detect`` and ``forward-only`` (inspection replaced by a constant verdict: what the
forwarding alone costs) rows with one worker; ``--servers asgi`` adds the uvicorn/ASGI server.

Usage: ``python bench/bench_web_proxy.py [--seconds 8] [--upstreams trivial,bank,bank2] [--traffic unique,repeat]
[--workers 1,2] [--modes block] [--servers fast] [--baseline-src DIR] [--out FILE]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _common import free_port, wait_port  # noqa: E402
from _machine import describe  # noqa: E402

WRK_PATH = "/search?q=%E4%BF%A1%E7%94%A8%E5%8D%A1%20%E8%BF%98%E6%AC%BE&page=2&sort=date"
ATTACK_PATH = "/item?id=1%27%20union%20select%20password%20from%20users--"
HEADERS = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0", "Accept": "text/html,*/*",
           "Accept-Language": "zh-CN,zh;q=0.9", "Accept-Encoding": "gzip"}

UPSTREAM = r'''
import hashlib, json, os, sys
from decimal import Decimal
from urllib.parse import parse_qs
import uvicorn

KIND = os.environ["BENCH_UPSTREAM_KIND"]
PAGE = b"<html><body>" + b"x" * 1024 + b"</body></html>"
CATS = ["groceries", "salary", "rent", "transfer", "utilities", "dining", "travel", "fees"]
MERCHANTS = ["Carrefour", "Acme Payroll", "Landlord Ltd", "Zhang San", "City Power", "Noodle Bar", "Air China",
             "Card fee", "Wang Wu", "Supermarket 88"]

def statement(q, page):
    balance = Decimal("12500.00")
    rows, totals = [], {}
    for i in range(100):
        n = (page * 100 + i) * 2654435761 % 100000
        amount = (Decimal(n % 50000) / 100 - 250).quantize(Decimal("0.01"))
        cat = CATS[n % len(CATS)]
        balance += amount
        totals[cat] = totals.get(cat, Decimal(0)) + amount
        rows.append({"id": f"tx-{page}-{i:04d}", "date": f"2026-11-{1 + i % 28:02d}", "amount": str(amount),
                     "currency": "CNY", "category": cat, "merchant": MERCHANTS[n % len(MERCHANTS)],
                     "balance": str(balance), "memo": f"{q} #{i}" if i % 7 == 0 else ""})
    hits = [r for r in rows if q and q.split()[0] in r["memo"]]
    return {"account": "6222 **** **** 1234", "page": page, "transactions": rows, "matches": len(hits),
            "totals": {k: str(v) for k, v in sorted(totals.items())}, "closing_balance": str(balance),
            "loan_offer": amortisation(Decimal("300000.00") + page, Decimal("0.0039"), 360)}

def amortisation(principal, rate, months):
    pay = (principal * rate / (1 - (1 + rate) ** -months)).quantize(Decimal("0.01"))
    left, interest_total, sched = principal, Decimal(0), []
    for m in range(1, months + 1):
        interest = (left * rate).quantize(Decimal("0.01"))
        left -= pay - interest
        interest_total += interest
        if m <= 12:
            sched.append({"month": m, "payment": str(pay), "interest": str(interest), "left": str(left)})
    return {"monthly_payment": str(pay), "interest_total": str(interest_total), "first_year": sched}

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    if KIND == "trivial":
        body, ctype, extra = PAGE, b"text/html", []
    else:
        qs = parse_qs(scope["query_string"].decode("latin-1"))
        q = qs.get("q", [""])[0]
        page = int(qs.get("page", ["1"])[0]) if qs.get("page", ["1"])[0].isdigit() else 1
        body = json.dumps(statement(q, page), ensure_ascii=False).encode()
        ctype, extra = b"application/json", [(b"etag", hashlib.sha256(body).hexdigest()[:32].encode())]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())] + extra})
    await send({"type": "http.response.body", "body": body})

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
'''

STUB = '''
import sys
from fsbrain.domains.web.proxy import _Lifespan, _run_fast, make_proxy_app

class Stub:  # inspection replaced by a constant verdict: what forwarding alone costs
    def inspect(self, req):
        return {"attack": False, "score": 0, "labels": [], "rules": [], "reasons": []}

waf = make_proxy_app(f"http://127.0.0.1:{sys.argv[1]}", mode="block", inspector=Stub())
if sys.argv[3] == "fast":
    _run_fast(waf, "127.0.0.1", int(sys.argv[2]))
else:
    import uvicorn
    uvicorn.run(_Lifespan(waf), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False,
                lifespan="on", server_header=False, date_header=False)
'''

UNIQUE_LUA = '''
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, wrk.path .. "&r=" .. counter)
end
'''


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (uvicorn's worker processes)."""
    total = 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            kids = [int(k) for k in fh.read().split()]
    except OSError:
        return total
    return total + sum(_cpu(k) for k in kids)


def _load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def wrk(url: str, seconds: float, concurrency: int = 16, script: Path | None = None) -> dict:
    hdrs: list[str] = []
    for k, v in HEADERS.items():
        hdrs += ["-H", f"{k}: {v}"]
    cmd = [shutil.which("wrk") or "wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency", *hdrs]
    if script is not None:
        cmd += ["-s", str(script)]
    proc = subprocess.Popen([*cmd, url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()  # type: ignore[union-attr]
    _, _, ru = os.wait4(proc.pid, 0)
    proc.returncode = 0
    wrk_cpu = ru.ru_utime + ru.ru_stime

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else float("nan")

    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    n = int(total.group(1)) if total else 0
    return {"requests": n, "rps": float(rps.group(1)) if rps else 0.0,
            "p50": ms("50"), "p99": ms("99"), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": errors.group(1).strip() if errors else "", "wrk_cpu_us": wrk_cpu * 1e6 / max(1, n)}


def measured(url: str, seconds: float, pids: dict[str, int], script: Path | None) -> dict:
    c0 = {k: _cpu(p) for k, p in pids.items()}
    res = wrk(url, seconds, script=script)
    for k, p in pids.items():
        res[f"{k}_cpu_us"] = (_cpu(p) - c0[k]) * 1e6 / max(1, res["requests"])
    res["load"] = _load()
    return res


def _workdir(prefix: str) -> tuple[Path, Path]:
    """A fresh temporary folder for the upstream's script, and the wrk Lua script of ``unique`` traffic in it."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    lua = tmp / "unique.lua"
    lua.write_text(UNIQUE_LUA, encoding="utf-8")
    return tmp, lua


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(15)


@contextlib.contextmanager
def _processes():
    """The list the bench's child processes go in; whichever still runs at the end (error or not) is stopped."""
    procs: list[subprocess.Popen] = []
    try:
        yield procs
    finally:
        for p in procs:
            _stop(p)


def _started(cmd: list[str], procs: list[subprocess.Popen], port: int, settle: float, **popen) -> subprocess.Popen:
    """Start ``cmd`` (kept in ``procs``), wait until it listens on ``port``, then ``settle`` s for its workers."""
    proc = subprocess.Popen(cmd, **popen)
    procs.append(proc)
    wait_port(port, timeout=90.0)
    if settle:
        time.sleep(settle)  # every worker up
    return proc


def _upstream(kind: str, tmp: Path, procs: list[subprocess.Popen]) -> tuple[subprocess.Popen, int]:
    """Start the ``kind`` upstream on a free port, ready (every worker up): (process, port)."""
    port = free_port()
    (tmp / "bench_upstream.py").write_text(UPSTREAM, encoding="utf-8")
    env = {**os.environ, "BENCH_UPSTREAM_KIND": kind.rstrip("2")}
    if kind.endswith("2"):  # two uvicorn worker processes: a site that uses both cores
        cmd = [sys.executable, "-m", "uvicorn", "bench_upstream:app", "--app-dir", str(tmp), "--port", str(port),
               "--workers", "2", "--log-level", "warning", "--no-access-log"]
    else:
        cmd = [sys.executable, str(tmp / "bench_upstream.py"), str(port)]
    return _started(cmd, procs, port, 1.0, env=env), port


def _proxy(up_port: int, procs: list[subprocess.Popen], *, mode: str, server: str, workers: int, src: Path,
           settle: float = 0.0) -> tuple[subprocess.Popen, int]:
    """Start the proxy (from the source tree ``src``) in front of the upstream on a free port, listening:
    (process, port)."""
    port = free_port()
    if mode == "forward-only":
        cmd = [sys.executable, "-c", STUB, str(up_port), str(port), server]
    else:
        cmd = [sys.executable, "-c", "from fsbrain.cli import main; main()", "web", "proxy",
               "--upstream", f"http://127.0.0.1:{up_port}", "--listen", f"127.0.0.1:{port}",
               "--mode", mode, "--server", server, "--workers", str(workers)]
    return _started(cmd, procs, port, settle, cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(src)}), port


def run(upstreams: list[str], traffics: list[str], workers: list[int], modes: list[str], servers: list[str],
        seconds: float, baseline: Path | None, src_dir: Path = REPO / "src") -> list[dict]:
    rows: list[dict] = []
    tmp, lua = _workdir("bench_web_proxy_")
    trees = [("", src_dir)] + ([("before: ", baseline)] if baseline else [])
    with _processes() as procs:
        for kind in upstreams:
            up, up_port = _upstream(kind, tmp, procs)
            wrk(f"http://127.0.0.1:{up_port}{WRK_PATH}", 2)  # warm-up
            direct: dict[str, float] = {}
            for traffic in traffics:
                script = lua if traffic == "unique" else None
                res = measured(f"http://127.0.0.1:{up_port}{WRK_PATH}", seconds, {"upstream": up.pid}, script)
                direct[traffic] = res["rps"]
                rows.append({"upstream": kind, "traffic": traffic, "path": "(a) upstream alone", **res})
                print(rows[-1], flush=True)
            setups: list[tuple[str, str, str, int, Path]] = []
            for server in servers:
                for label, src in trees:
                    for w in workers:
                        if label and w != workers[0]:
                            continue  # the baseline tree: one proxy set-up is enough for a before/after
                        setups.append((f"{label}({'b' if w == 1 else 'c'}) proxy, {w} worker{'s' * (w > 1)}"
                                       + (f", {server} server" if server != "fast" else ""), "block", server, w, src))
                for mode in modes:
                    if mode == "block" or (mode == "forward-only" and not kind.startswith("trivial")):
                        continue
                    for label, src in trees:
                        setups.append((f"{label}proxy, 1 worker, {mode}" + ("" if mode != "forward-only" else
                                       " (inspection stubbed)") + (f", {server} server" if server != "fast" else ""),
                                       mode, server, 1, src))
            for name, mode, server, w, src in setups:
                px, port = _proxy(up_port, procs, mode=mode, server=server, workers=w, src=src, settle=0.5 * w)
                for traffic in traffics:
                    script = lua if traffic == "unique" else None
                    wrk(f"http://127.0.0.1:{port}{WRK_PATH}", 2, script=script)  # warm-up: pool, caches
                    res = measured(f"http://127.0.0.1:{port}{WRK_PATH}", seconds,
                                   {"upstream": up.pid, "proxy": px.pid}, script)
                    res["lost"] = 1 - res["rps"] / direct[traffic] if direct.get(traffic) else float("nan")
                    rows.append({"upstream": kind, "traffic": traffic, "path": name, **res})
                    print(rows[-1], flush=True)
                _stop(px)
            _stop(up)
    return rows


def interleaved(upstreams: list[str], traffics: list[str], seconds: float, rounds: int, src_dir: Path,
                baseline: Path) -> list[str]:
    """Before/after on the same machine: both trees' one-worker proxies up at once, measured alternately
    (before, after, after, before, ...) ``rounds`` times each; proxy CPU µs per request, median and runs."""
    import statistics

    tmp, lua = _workdir("bench_web_proxy_ab_")
    res: dict[tuple[str, str, str], list[float]] = {}
    loads: list[str] = []
    with _processes() as procs:
        for kind in upstreams:
            up, up_port = _upstream(kind, tmp, procs)
            pxs = {}
            for name, src in (("before", baseline), ("after", src_dir)):
                px, port = _proxy(up_port, procs, mode="block", server="fast", workers=1, src=src)
                pxs[name] = (port, px)
            for traffic in traffics:
                script = lua if traffic == "unique" else None
                for port, _ in pxs.values():
                    wrk(f"http://127.0.0.1:{port}{WRK_PATH}", 2, script=script)  # warm-up
                for r in range(rounds):
                    order = list(pxs.items()) if r % 2 == 0 else list(pxs.items())[::-1]
                    for name, (port, px) in order:
                        m = measured(f"http://127.0.0.1:{port}{WRK_PATH}", seconds, {"proxy": px.pid}, script)
                        res.setdefault((kind, traffic, name), []).append(m["proxy_cpu_us"])
                        loads.append(m["load"])
                        print(kind, traffic, name, f"{m['proxy_cpu_us']:.0f} µs/req", f"load {m['load']}", flush=True)
            for _, px in pxs.values():
                _stop(px)
            _stop(up)
    lines = [f"Interleaved before/after ({rounds} runs of {seconds:g} s each, one worker, block mode; load average "
             f"{min(loads)}–{max(loads)}): proxy CPU µs per request, median (runs)", "",
             "| upstream | traffic | before | after | after / before |", "|---|---|---:|---:|---:|"]
    for kind in upstreams:
        for traffic in traffics:
            b, a = res[(kind, traffic, "before")], res[(kind, traffic, "after")]
            lines.append(f"| {kind} | {traffic} | {statistics.median(b):.0f} ({', '.join(f'{x:.0f}' for x in b)}) | "
                         f"{statistics.median(a):.0f} ({', '.join(f'{x:.0f}' for x in a)}) | "
                         f"{statistics.median(a) / statistics.median(b):.2f} |")
    return lines


def table(rows: list[dict]) -> list[str]:
    lines = ["| upstream | traffic | path | wall req/s | site throughput lost | p50 ms | p99 ms | upstream CPU µs/req "
             "| proxy CPU µs/req | wrk CPU µs/req | proxy / upstream CPU | load | non-2xx / errors |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        up, px = r["upstream_cpu_us"], r.get("proxy_cpu_us")
        lost = r.get("lost")
        lines.append(f"| {r['upstream']} | {r['traffic']} | {r['path']} | {r['rps']:,.0f} | "
                     f"{'—' if lost is None else f'{lost:.0%}'} | {r['p50']:.2f} | {r['p99']:.2f} | {up:.0f} | "
                     f"{'—' if px is None else f'{px:.0f}'} | {r['wrk_cpu_us']:.0f} | "
                     f"{'—' if px is None else f'{px / up:.2f}'} | {r['load']} | {r['non2xx']} {r['errors']} |")
    return lines


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--upstreams", default="trivial,bank,bank2")
    ap.add_argument("--traffic", default="unique,repeat")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--modes", default="block", help="block (always), detect, forward-only")
    ap.add_argument("--servers", default="fast")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="also run the proxy rows from this source tree (an earlier commit's src/)")
    ap.add_argument("--src", type=Path, default=REPO / "src",
                    help="the source tree of the proxy measured (default: this checkout's src/)")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    ap.add_argument("--attack", action="store_true",
                    help="drive an SQL injection instead of the search request (block mode answers 403 from the "
                         "proxy; the verdict is logged as an alert)")
    ap.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                    help="with --baseline-src: instead of the table, measure both trees' one-worker proxies "
                         "alternately ROUNDS times each (before/after on the same machine)")
    args = ap.parse_args(argv)
    global WRK_PATH
    if args.attack:
        WRK_PATH = ATTACK_PATH
    load0 = _load()
    if args.interleave and args.baseline_src:
        lines = interleaved(args.upstreams.split(","), args.traffic.split(","), args.seconds, args.interleave,
                            args.src, args.baseline_src)
        text = "\n".join([f"Machine: {describe()}", "", f"Command: `python bench/bench_web_proxy.py {' '.join(argv)}`",
                          "", *lines]) + "\n"
        print(text)
        if args.out:
            args.out.write_text(text, encoding="utf-8")
        return 0
    rows = run(args.upstreams.split(","), args.traffic.split(","), [int(w) for w in args.workers.split(",")],
               args.modes.split(","), args.servers.split(","), args.seconds, args.baseline_src, args.src)
    cmd = " ".join(["python bench/bench_web_proxy.py", *argv])
    lines = [f"Machine: {describe()}; load average {load0} at the start, {_load()} at the end.", "",
             f"Command: `{cmd}`", "", *table(rows)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
