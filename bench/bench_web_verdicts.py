"""Verdict equivalence check for rule-engine / inspector speed work: same requests, same verdicts.

Runs fixed request sets through several engines and records every verdict (blocked, score, threshold,
matched rules with variable, value, points, message and logdata, labels, limits, interruption, body
processor and error; for the inspector the whole verdict minus its latency). ``--save FILE`` writes them;
``--check FILE`` recomputes them with the code as it is now and lists every request whose verdict differs.

Request sets:

* ``rules_mix``: ``bench_web_rules.make_mix`` (3,000 requests, seed 7, and its 300-request warm-up mix);
* ``web_traffic``: ``bench_web.traffic`` (3,000 requests: benign_eval corpus + libinjection held-out attacks);
* ``crs_tests``: every stage request of the CRS v4 regression suite (``../shared/data/crs-regression``);
* ``libinjection``: every 4th libinjection SQLi/XSS payload and false_positives.txt line as ``GET /search?q=``.

Engines: fsbrain default rules at PL1, PL2, PL4; OWASP CRS v4 at PL1, PL2 and as the regression suite
configures it (PL4, DetectionOnly, TX setup from ``crs_overrides.yaml``); the inspector (default rules +
model) at PL1 and PL2 on ``web_traffic`` and ``rules_mix``.

Usage::

    python bench/bench_web_verdicts.py --save /tmp/verdicts-before.json.gz     # on the old code
    python bench/bench_web_verdicts.py --check /tmp/verdicts-before.json.gz    # on the new code
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import bench_web  # noqa: E402
import bench_web_rules  # noqa: E402

from fsbrain.domains.web import HttpRequest, WebRuleEngine  # noqa: E402
from fsbrain.domains.web.inspector import WebInspector  # noqa: E402
from fsbrain.domains.web.seclang import ftw  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def rule_digest(v: Any) -> list[Any]:
    return [v.blocked, v.score, v.threshold, [[m.id, m.variable, m.value, m.score, m.msg, m.logdata, m.labels]
                                              for m in v.matched],
            v.labels, v.limits_hit, v.interrupted_by, v.body_processor, v.body_error]


def insp_digest(v: dict[str, Any]) -> Any:
    out = json.loads(json.dumps({k: x for k, x in v.items() if k != "latency_ms"}, sort_keys=True, default=str))
    return _canonical(out)


def _canonical(d: Any) -> Any:
    """Order n-grams of equal weight by text in model explanations (their order among ties used to depend
    on Python's per-process hash seed)."""
    for m in d.get("model", []):
        m["top_ngrams"] = sorted(m.get("top_ngrams", []), key=lambda g: (-g[1], g[0]))
    for r in d.get("reasons", []):
        if r.get("source") == "model" and isinstance(r.get("message"), str) and " n-grams in " in r["message"]:
            head, _, grams = r["message"].partition(": ")
            r["message"] = head + ": " + ", ".join(sorted(grams.split(", ")))
    return d


def request_sets(shared: Path) -> dict[str, list[dict[str, Any]]]:
    sets: dict[str, list[dict[str, Any]]] = {}
    sets["rules_mix"] = [r.to_dict() for r in bench_web_rules.make_mix(300, seed=1) + bench_web_rules.make_mix(3000)]
    sets["web_traffic"] = bench_web.traffic(3000, shared)
    tests = shared / "crs-regression" / "tests"
    if tests.is_dir():
        crs: list[dict[str, Any]] = []
        for case in ftw.load_cases(tests):
            if isinstance(case, ftw.FtwResult):
                continue
            for stage in case.stages:
                try:
                    crs.append(ftw.stage_request(stage.get("input") or {}).to_dict())
                except Exception:  # noqa: BLE001 - a stage the runner cannot build is skipped there too
                    continue
        sets["crs_tests"] = crs
    lib = shared / "libinjection"
    if lib.is_dir():
        vals = []
        for f in sorted(lib.rglob("*.txt")):
            if f.name.startswith(("sqli", "xss", "false_positives")):
                vals += [ln for ln in f.read_text("utf-8", "replace").splitlines() if ln.strip()]
        vals = vals[::4]  # every 4th line: ~5,000 payloads
        sets["libinjection"] = [{"method": "GET", "uri": "/search?q=" + quote(v, safe=""),
                                 "headers": bench_web.HEADERS, "body": ""} for v in vals]
    return sets


def compute(shared: Path, only: set[str] | None = None) -> dict[str, list[Any]]:
    sets = request_sets(shared)
    crs_dir = shared / "crs-regression"
    engines: list[tuple[str, Any, list[str]]] = []
    all_sets = list(sets)
    for pl in (1, 2, 4):
        engines.append((f"default-pl{pl}", lambda pl=pl: WebRuleEngine.default(paranoia=pl), all_sets))
    if crs_dir.is_dir():
        for pl in (1, 2):
            engines.append((f"crs-pl{pl}", lambda pl=pl: WebRuleEngine.from_crs(crs_dir, paranoia=pl), all_sets))
        engines.append(("crs-suite", lambda: ftw.engine_for_suite(crs_dir, ftw.Overrides.load()), all_sets))
    for pl in (1, 2):
        engines.append((f"inspector-pl{pl}", lambda pl=pl: WebInspector(paranoia=pl),
                        ["rules_mix", "web_traffic", "libinjection"]))
    out: dict[str, list[Any]] = {}
    for name, make, set_names in engines:
        if only and name not in only:
            continue
        eng = make()
        for sn in set_names:
            if sn not in sets:
                continue
            t0 = time.process_time()
            res = []
            for r in sets[sn]:
                if isinstance(eng, WebInspector):
                    res.append(insp_digest(eng.inspect(r)))
                else:
                    res.append(rule_digest(eng.inspect(HttpRequest.from_dict(r))))
            out[f"{name}/{sn}"] = res
            print(f"{name}/{sn}: {len(res)} verdicts, {time.process_time() - t0:.1f} CPU-s", flush=True)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", type=Path)
    g.add_argument("--check", type=Path)
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--only", nargs="*", help="engine names to run (default: all)")
    args = ap.parse_args(argv)
    got = compute(args.shared, set(args.only) if args.only else None)
    if args.save:
        with gzip.open(args.save, "wt", encoding="utf-8") as f:
            json.dump(got, f)
        print(f"saved {sum(len(v) for v in got.values())} verdicts to {args.save}")
        return 0
    with gzip.open(args.check, "rt", encoding="utf-8") as f:
        want = json.load(f)
    bad = 0
    total = 0
    for key, res in got.items():
        if key not in want:
            print(f"{key}: not in {args.check}")
            continue
        ref = want[key]
        total += len(res)
        if len(ref) != len(res):
            print(f"{key}: {len(res)} verdicts, {len(ref)} saved")
            bad += 1
            continue
        got_j = json.loads(json.dumps(res))
        if key.startswith("inspector"):
            got_j = [_canonical(x) for x in got_j]
            ref = [_canonical(x) for x in ref]
        diffs = [i for i, (a, b) in enumerate(zip(got_j, ref, strict=True)) if a != b]
        bad += len(diffs)
        print(f"{key}: {len(res)} verdicts, {len(diffs)} differ")
        for i in diffs[:5]:
            print(f"  #{i}\n    now:   {json.dumps(got_j[i], ensure_ascii=False)[:600]}\n"
                  f"    saved: {json.dumps(ref[i], ensure_ascii=False)[:600]}")
    print(f"{total} verdicts compared, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
