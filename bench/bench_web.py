"""Web inspector benchmark: requests/s on one core and p50/p99 latency, writes docs/benchmarks/web.md.

Traffic: the held-out benign corpus (``benign_eval.jsonl.gz``: form posts, JSON APIs, Chinese and English
searches, uploads, static files) mixed with 5% attacks (libinjection held-out payloads in a query
parameter), the shape of typical production traffic. Every configuration runs in this one process on one
core (no threads), after a warm-up pass.

Usage: ``python bench/bench_web.py [--n 3000] [--crs ../shared/data/crs-regression]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _machine import describe  # noqa: E402

from fsbrain.domains.web import ml  # noqa: E402
from fsbrain.domains.web.inspector import WebInspector  # noqa: E402
from fsbrain.domains.web.seclang.engine import WebRuleEngine  # noqa: E402

HEADERS = {"Host": "bank.example.com", "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0",
           "Accept": "text/html,*/*", "Accept-Language": "zh-CN,zh;q=0.9", "Accept-Encoding": "gzip"}


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
    t_all = time.perf_counter()
    for r in reqs:
        t0 = time.perf_counter()
        v = inspect(r)
        lat.append((time.perf_counter() - t0) * 1000)
        attacks += bool(v["attack"] if isinstance(v, dict) else v.blocked)
    wall = time.perf_counter() - t_all
    lat.sort()
    return {"rps": len(reqs) / wall, "p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99) - 1],
            "max": lat[-1], "flagged": attacks / len(reqs)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--crs", type=Path, default=REPO.parent / "shared" / "data" / "crs-regression")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "web.md")
    args = ap.parse_args(argv)
    reqs = traffic(args.n, args.shared)
    from fsbrain.domains.web.request import HttpRequest

    configs = []
    for pl in (1, 2):
        configs.append((f"fsbrain rules + model, PL{pl}", WebInspector(paranoia=pl).inspect))
    configs.append(("fsbrain rules only, PL1", WebInspector(paranoia=1, model=False).inspect))
    configs.append(("model only (n-gram scoring of every parameter)",
                    lambda r: {"attack": any(s.p_attack >= 0.95 for _, s in ml.WebModel.load_default().score_params(
                        [(n, v) for n, v in ml.request_params(r) if not ml.is_plain(v)], explain=False))}))
    if args.crs.is_dir():
        for pl in (1, 2):
            eng = WebRuleEngine.from_crs(args.crs, paranoia=pl)
            configs.append((f"OWASP CRS v4 rules + model, PL{pl}", WebInspector(paranoia=pl, rules=eng).inspect))
        eng = WebRuleEngine.from_crs(args.crs, paranoia=1)
        configs.append(("OWASP CRS v4 rules only (engine alone), PL1",
                        lambda r, e=eng: e.inspect(HttpRequest.from_dict(r))))
    rows = []
    for name, fn in configs:
        m = measure(fn, reqs)
        rows.append((name, m))
        print(f"{name}: {m['rps']:.0f} req/s, p50 {m['p50']:.3f} ms, p99 {m['p99']:.3f} ms, flagged {m['flagged']:.3f}",
              flush=True)
    lines = ["# Web inspector benchmark", "",
             f"Machine: {describe()}", "",
             f"Command: `python bench/bench_web.py --n {args.n}` (one process, one core, after a 200-request "
             "warm-up). Traffic: the held-out benign corpus (`benign_eval.jsonl.gz`: form posts, JSON APIs, "
             "Chinese/English searches, uploads, static files) with every 20th request an attack "
             "(libinjection held-out payload in `q`).", "",
             "| configuration | requests/s (1 core) | p50 ms | p99 ms | max ms | share flagged |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, m in rows:
        lines.append(f"| {name} | {m['rps']:.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {m['max']:.1f} | "
                     f"{m['flagged']:.3f} |")
    lines += ["", "The machine is shared with other work while benchmarks run; numbers vary by ±20% "
              "between runs. Latency includes request parsing, both rule phases and model scoring."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
