"""Benchmark the web rule engine: requests/s per core and p50/p99 inspection latency.

A realistic mix — 95% benign (page views with browser headers and cookies, searches in English and
Chinese, JSON API calls, form posts, a multipart upload) and 5% attacks (SQLi, XSS, RCE, LFI, scanner) —
is inspected on one core by fsbrain's default rules and by OWASP CRS at PL1 and PL2, each configuration (row)
in a fresh process of its own, as a server runs one configuration per worker process.
Requests are built before timing; the time measured is ``engine.inspect`` and the release of the
request afterwards (as a server frees it once answered).

Usage::

    python bench/bench_web_rules.py [--crs ../shared/data/crs-regression] [--n 3000] [--runs 3] [--out docs/benchmarks/web_rules.md]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe  # noqa: E402

from fsbrain.domains.web import HttpRequest, WebRuleEngine  # noqa: E402
from fsbrain.domains.web.inspector import WebInspector  # noqa: E402

try:  # (bench_web_instructions.py runs this mix against older trees too)
    from fsbrain.speedups import settle_heap  # noqa: E402
except ImportError:  # pragma: no cover - a tree from before settle_heap
    def settle_heap() -> bool:
        return False

UAS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
       "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
       "Mobile/15E148 Safari/604.1",
       "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"]
WORDS = ["savings account", "credit card limit", "mortgage rates 2026", "转账限额", "信用卡 年费", "理财产品 收益",
         "branch near me", "how to reset password", "外汇 汇率 美元", "loan calculator"]
ATTACKS = ["1' OR '1'='1", "1 UNION SELECT username, password FROM users--", "<script>alert(document.cookie)</script>",
           "\"><img src=x onerror=alert(1)>", ";cat /etc/passwd", "../../../../etc/shadow", "${jndi:ldap://x.example/a}",
           "<?php system($_GET['c']); ?>", "http://169.254.169.254/latest/meta-data/"]


MARKER = "<!-- bench_web_rules.py writes everything above this line; what follows is kept -->"


def _headers(rng: random.Random) -> list[tuple[str, str]]:
    return [("Host", "bank.example.com"), ("User-Agent", rng.choice(UAS)),
            ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"),
            ("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8"), ("Accept-Encoding", "gzip, deflate, br"),
            ("Cookie", f"sid={rng.getrandbits(64):016x}; lang=zh-CN; _ga=GA1.2.{rng.randint(1, 10**9)}.1700000000"),
            ("Referer", "https://bank.example.com/home")]


def make_mix(n: int, seed: int = 7) -> list[HttpRequest]:
    """``n`` requests: 95% benign of five kinds, 5% attacks."""
    rng = random.Random(seed)
    out: list[HttpRequest] = []
    for i in range(n):
        h = _headers(rng)
        kind = rng.random()
        if i % 20 == 19:
            out.append(HttpRequest(method="GET", uri="/search?q=" + quote(rng.choice(ATTACKS)), headers=h))
        elif kind < 0.45:
            out.append(HttpRequest(method="GET", uri=f"/products/{rng.randint(1, 999)}?ref=home&page={rng.randint(1, 9)}",
                                   headers=h))
        elif kind < 0.65:
            out.append(HttpRequest(method="GET", uri="/search?q=" + quote(rng.choice(WORDS)) + "&sort=relevance",
                                   headers=h))
        elif kind < 0.85:
            body = json.dumps({"account": f"62{rng.randint(10**14, 10**15)}", "amount": round(rng.random() * 5000, 2),
                               "memo": rng.choice(WORDS), "currency": "CNY"}, ensure_ascii=False)
            out.append(HttpRequest(method="POST", uri="/api/v1/transfer",
                                   headers=h + [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
                                   body=body.encode()))
        elif kind < 0.97:
            body = f"username=user{rng.randint(1, 9999)}&password=S3cret%21{rng.randint(1, 99)}&remember=on"
            out.append(HttpRequest(method="POST", uri="/login", headers=h + [
                ("Content-Type", "application/x-www-form-urlencoded"), ("Content-Length", str(len(body)))],
                body=body.encode()))
        else:
            body = (b"--b1\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nstatement\r\n--b1\r\n"
                    b"Content-Disposition: form-data; name=\"file\"; filename=\"march.pdf\"\r\n"
                    b"Content-Type: application/pdf\r\n\r\n%PDF-1.4 ...\r\n--b1--\r\n")
            out.append(HttpRequest(method="POST", uri="/upload", headers=h + [
                ("Content-Type", "multipart/form-data; boundary=b1"), ("Content-Length", str(len(body)))], body=body))
    return out


def settle_unions(engine: WebRuleEngine) -> None:
    """Wait until the union sets the warm-up asked for are compiled (``prefilter.BACKGROUND_UNIONS``: a
    background thread compiles them while the stages' own sets answer): the timing is then of the steady
    state a server reaches in its first second, not of that start-up transient (which also competes for
    the core's sibling on a small VM). Older trees compile them in the request and have nothing to wait for."""
    pf = getattr(engine, "prefilter", None)
    for pas in (getattr(pf, "plain_pass", None), getattr(pf, "full_pass", None)):
        if hasattr(pas, "wait_unions"):
            pas.wait_unions()


def run(engine: Any, n: int, cold: bool = False, repeat: bool = False) -> dict[str, float]:
    """Inspect a fresh mix once for warm-up, then time a second fresh mix request by request. ``cold``:
    the prefilter's per-value caches are emptied before every request (outside the timing), so every
    value is scanned as if never seen before. ``repeat``: the timed mix (the same requests, built anew) is
    inspected once before it is timed, so every value has been seen before.

    Each request is released right after its inspection, inside the timing, as a server releases it once
    it has answered: the parsed state the inspection caches on a request (body, arguments, collections)
    dies with it. Keeping all 3,000 inspected requests alive instead made the garbage collector walk
    their ~150,000 containers in full collections, a cost a server does not have (about 15% of CRS PL1's
    time on the fifth session's machine).

    ``engine`` is a ``WebRuleEngine`` or a ``WebInspector`` (rules + model, the configuration the proxy, the
    middleware and ``fsbrain web inspect`` run): an inspector is given each request as the dict those
    callers pass (``{"method", "uri", "headers", "body"}``), so its time includes parsing the request."""
    inspector = not isinstance(engine, WebRuleEngine)
    mix = (lambda k, seed=7: [r.to_dict() for r in make_mix(k, seed)]) if inspector else make_mix
    rules = engine.rules if inspector else engine
    for r in mix(min(n, 300), seed=1):
        engine.inspect(r)
    if repeat:
        for r in mix(n):
            engine.inspect(r)
    settle_unions(rules)
    reqs = mix(n)
    reqs.reverse()
    lat: list[float] = []
    cpu: list[float] = []
    blocked = 0
    t_all = time.perf_counter()
    while reqs:
        r = reqs.pop()
        if cold:
            rules.prefilter.clear_caches()
            if inspector and engine.model is not None:
                engine.model._cache.clear()  # the model's per-value score cache too
        t0 = time.perf_counter()
        c0 = time.thread_time()
        v = engine.inspect(r)
        del r  # the last reference: the request and what its inspection cached on it are freed here
        cpu.append(time.thread_time() - c0)
        lat.append(time.perf_counter() - t0)
        blocked += bool(v["attack"]) if inspector else v.blocked
    total = time.perf_counter() - t_all
    lat.sort()
    cpu.sort()
    return {"rps": n / total, "rps_cpu": n / sum(cpu), "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
            "p99_cpu_ms": cpu[min(len(cpu) - 1, int(len(cpu) * 0.99))] * 1000, "blocked": blocked, "n": n}


class _TimedRules:
    """A rule engine that adds the thread CPU time of each ``inspect`` call to ``cpu`` (the rest of the
    engine is delegated): the full inspector's share spent in its rule engine."""

    def __init__(self, engine: WebRuleEngine) -> None:
        self._engine, self.cpu = engine, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def inspect(self, req: HttpRequest) -> Any:
        c0 = time.thread_time()
        try:
            return self._engine.inspect(req)
        finally:
            self.cpu += time.thread_time() - c0


def rules_share(insp: WebInspector, n: int, seed: int = 11) -> tuple[float, float]:
    """CPU microseconds per request of ``insp.inspect`` and of the rule engine inside it, over a fresh mix
    (``seed``): the inspector's own work (parsing the request dict, the model's parameters, scoring, the
    verdict) is the difference. A separate pass from the timed rows, whose time the wrapper would add to."""
    rules = insp.rules
    timed = _TimedRules(rules)
    insp.rules = timed
    try:
        reqs = [r.to_dict() for r in make_mix(n, seed)]
        reqs.reverse()
        total = 0.0
        while reqs:
            r = reqs.pop()
            c0 = time.thread_time()
            insp.inspect(r)
            del r
            total += time.thread_time() - c0
    finally:
        insp.rules = rules
    return total / n * 1e6, timed.cpu / n * 1e6


# Rows: (name, engine kind, cold). cold: False = a fresh mix; True = value caches emptied before every request;
# None = the timed mix inspected once before it is timed. Each row runs in a process of its own (see main()).
def _rows(crs: bool, compiled: bool, engine_only: bool) -> list[tuple[str, str, bool | None]]:
    rows: list[tuple[str, str, bool | None]] = [
        ("fsbrain default rules, PL1", "d1", False), ("fsbrain default rules, PL2", "d2", False),
        ("fsbrain default rules, PL1, value caches emptied before every request", "d1", True),
        ("fsbrain default rules, PL1, the same mix a second time (every value seen before)", "d1", None),
        ("fsbrain default rules, PL1, plain evaluation (optimize=False)", "d1-plain", False)]
    if compiled:
        rows.insert(1, ("fsbrain default rules, PL1, Python rule loop and scan (compiled=False)", "d1-py", False))
    if crs:
        rows += [("OWASP CRS v4, PL1", "c1", False), ("OWASP CRS v4, PL2", "c2", False),
                 ("OWASP CRS v4, PL1, value caches emptied before every request", "c1", True),
                 ("OWASP CRS v4, PL1, the same mix a second time (every value seen before)", "c1", None),
                 ("OWASP CRS v4, PL1, plain evaluation (optimize=False)", "c1-plain", False)]
        if compiled:
            rows.insert(len(rows) - 4, ("OWASP CRS v4, PL1, Python rule loop and scan (compiled=False)", "c1-py", False))
    if not engine_only:
        # the full inspector (rules + model), as the proxy, the middleware and `fsbrain web inspect` run it
        rows += [(f"full inspector (fsbrain rules + model), PL{pl}", f"i{pl}", False) for pl in (1, 2)]
        if crs:
            rows += [(f"full inspector (OWASP CRS v4 + model), PL{pl}", f"ic{pl}", False) for pl in (1, 2)]
    return rows


def _build(kind: str, crs: Path) -> Any:
    """The engine (or inspector) of a row kind."""
    pl = int(next(ch for ch in kind if ch.isdigit()))
    kw: dict[str, Any] = {"compiled": False} if kind.endswith("-py") else {"optimize": False} if kind.endswith("-plain") else {}
    if kind.startswith("ic"):
        return WebInspector(paranoia=pl, rules=WebRuleEngine.from_crs(crs, paranoia=pl))
    if kind.startswith("i"):
        return WebInspector(paranoia=pl)
    if kind.startswith("c"):
        return WebRuleEngine.from_crs(crs, paranoia=pl, **kw)
    return WebRuleEngine.default(paranoia=pl, **kw)


def _run_row(kind: str, cold: bool | None, crs: Path, n: int) -> dict[str, Any]:
    """One row, in this process: build its engine, settle the heap, time it (and, for an inspector, split its
    time between the rule engine and its own work in a second pass)."""
    eng = _build(kind, crs)
    settle_heap()  # as the servers do once their rules are loaded (full collections skip the rule sets)
    res: dict[str, Any] = run(eng, n, bool(cold), repeat=cold is None)
    if isinstance(eng, WebInspector):
        res["share"] = rules_share(eng, n)
    return res


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row's runs as one: the median of each measure, the range of requests per CPU-second and how many
    runs reached 5,000 of them."""
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs)
                           for k in ("rps", "rps_cpu", "p50_ms", "p99_ms", "p99_cpu_ms")}
    cpu = [r["rps_cpu"] for r in runs]
    out.update(lo=min(cpu), hi=max(cpu), runs=len(runs), blocked=runs[0]["blocked"], n=runs[0]["n"])
    out["pass"] = sum(c >= 5000 for c in cpu)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--crs", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/crs-regression")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--engine-only", action="store_true", help="skip the full-inspector (rules + model) rows")
    ap.add_argument("--runs", type=int, default=3,
                    help="rounds over every row (each row once per round, in a process of its own); the table gives "
                         "each row's median and its range: on a shared VM one run cannot separate a 10%% change "
                         "from the noise")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs/benchmarks/web_rules.md")
    ap.add_argument("--row", nargs=2, metavar=("KIND", "COLD"), help=argparse.SUPPRESS)  # one row (a child process)
    args = ap.parse_args()
    if args.row:
        cold = {"False": False, "True": True, "None": None}[args.row[1]]
        print(json.dumps(_run_row(args.row[0], cold, args.crs, args.n)))
        return
    load0 = os.getloadavg()
    d1 = WebRuleEngine.default(paranoia=1)
    has_crs = (args.crs / "rules").is_dir() or args.crs.is_dir()
    runs = max(1, args.runs)
    specs = _rows(has_crs, d1.compiled, args.engine_only)
    got: dict[str, list[dict[str, Any]]] = {name: [] for name, _k, _c in specs}
    for rnd in range(runs):  # rounds, not a row's runs back to back: a slow stretch of the VM hits every row
        for name, kind, cold in specs:
            # a process per row, as a server runs one configuration per worker: rows that ran before, with their
            # loaded rule sets, caches and automata, made later rows of one shared process 10-40% slower
            out = subprocess.run([sys.executable, __file__, "--row", kind, str(cold), "--crs", str(args.crs),
                                  "--n", str(args.n)], check=True, capture_output=True, text=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            got[name].append(res)
            print(f"[{rnd + 1}/{runs}] {name}: {res['rps']:.0f} req/s wall, {res['rps_cpu']:.0f} req/s per CPU-second, "
                  f"p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms (CPU p99 {res['p99_cpu_ms']:.2f} ms), "
                  f"blocked {res['blocked']}/{res['n']}", flush=True)
    rows = [(name, _median_row(got[name])) for name, _k, _c in specs]
    shares = [(name, statistics.median(r["share"][0] for r in got[name]),
               statistics.median(r["share"][1] for r in got[name])) for name, _k, _c in specs if "share" in got[name][0]]
    for name, tot, inner in shares:
        print(f"{name}: {tot:.0f} us CPU per request, {inner:.0f} us of it in the rule engine (medians)", flush=True)
    load = os.getloadavg()
    lines = ["# Web rule engine benchmark", "",
             f"Machine: {describe()}", f"Load average (1/5/15 min) at the start: {load0[0]:.2f} {load0[1]:.2f} "
             f"{load0[2]:.2f}; at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other work shares these cores; "
             "numbers are lower bounds).",
             f"Compiled hot paths (`fsbrain.domains.web._fastweb`): {'in use' if d1.compiled else 'not built / off'} "
             "(the rows marked `compiled=False` run the same engine with the Python rule loop and prefilter scan; "
             "the parsing helpers and transformations stay compiled there, `FSBRAIN_SPEEDUPS=0` turns everything "
             "off).", "",
             f"Mix: {args.n} requests, 95% benign (page views, English/Chinese searches, JSON transfers, form logins, "
             "multipart uploads, browser headers and cookies), 5% attacks. Each row runs in a process of its own "
             "(as a server runs one configuration per worker; until the seventh session all rows shared one "
             "process, and the rule sets, caches and automata of the rows before made later rows 10-40% slower), "
             "on one core; time is "
             "`engine.inspect` and the release of the request afterwards (a server frees each request once it "
             "has answered; keeping every inspected request alive would make full garbage collections walk "
             "their parsed state). Before timing, the bench waits for the union sets its warm-up asked for, "
             "which a background thread compiles (`FSBRAIN_WEB_UNION_THREAD`), so the timing is of the steady "
             "state.", "",
             "`req/s (wall)` is requests over elapsed time in one process; `req/s per CPU-second` divides by the "
             "thread's CPU time, which is what one dedicated core would sustain when other work shares the "
             "machine. Latencies are wall-clock per `inspect` call. The row's engine is built, then "
             "`fsbrain.speedups.settle_heap()` runs (`gc.freeze()`, as `fsbrain serve` and the proxy do once their "
             "rules are loaded): without it a full garbage collection walks the loaded rule sets (11–21 ms with CRS) "
             "every few thousand requests.", "",
             f"RE2: {'called directly by the compiled module (libre2-dev at build time)' if d1.re2_direct else 'through the google-re2 binding'}.", "",
             "The prefilter caches each value's rule-hit mask across requests (header values, cookie names, common "
             "parameters repeat in real traffic; in this mix cookie ids, account numbers, amounts and user names "
             "are random). The *caches emptied* rows clear those caches before every request: every value is "
             "scanned as new; the *second time* rows inspect the timed mix (the same requests, built anew) once before timing it. *Plain evaluation* is the engine without the prefilter and constant folding "
             "(`optimize=False`, the reference the tests compare against). The *full inspector* rows are what the proxy, "
             "the middleware and `fsbrain web inspect` run: `WebInspector`, the rule engine and the n-gram model "
             "together (verdict, labels, reasons, model explanation), given each request as the dict those callers "
             "pass, so their time includes parsing it; their *blocked* column counts verdicts with `attack` true.", "",
             f"Each row ran {runs} time(s), in {runs} round(s) over all rows; every column is the median of its runs, "
             "and the range column gives the lowest and highest requests per CPU-second. *≥ 5,000* counts the runs "
             "at or above the issue's target of 5,000 typical requests/s per core.", "",
             "| engine | req/s (wall) | req/s per CPU-second | range | ≥ 5,000 | p50 ms | p99 ms | p99 CPU ms | blocked |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {r['rps']:.0f} | {r['rps_cpu']:.0f} | {r['lo']:.0f}–{r['hi']:.0f} | {r['pass']}/{r['runs']} | "
              f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p99_cpu_ms']:.2f} | {r['blocked']}/{r['n']} |" for n, r in rows]
    if shares:
        lines += ["", "**Where the full inspector's time goes** (a second pass over a fresh mix, the rule engine's "
                  "`inspect` wrapped with a CPU timer; the rest is the inspector's own work: parsing the request "
                  "dict, the model's parameters and scores, the verdict with its reasons), CPU µs per request:", "",
                  "| full inspector | total | in the rule engine | the inspector's own work |", "|---|---:|---:|---:|"]
        lines += [f"| {name.removeprefix('full inspector (').replace('), ', ', ')} | {tot:.0f} | {inner:.0f} | {tot - inner:.0f} |"
                  for name, tot, inner in shares]
    lines += ["", f"Reproduce: `.venv/bin/python bench/bench_web_rules.py --runs {runs}`", ""]
    if args.out.exists():  # the hand-written sections after the marker are kept
        old = args.out.read_text(encoding="utf-8")
        if MARKER in old:
            lines += [old[old.index(MARKER):].rstrip("\n"), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
