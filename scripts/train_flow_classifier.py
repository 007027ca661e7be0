"""Train the shipped flow classifier on ../shared/data/cicids2017-flows and print its evaluation.

Split (documented in docs/flow.md): the corpus file is itself a seeded random 60 % of the sampled
"improved CIC-IDS2017" flows (SPLIT.txt; the other 40 % is withheld by the corpus owners). Within it we
hold out a stratified 25 % (scikit-learn ``train_test_split``, ``random_state=2017``) for evaluation and
train the shipped model on the other 75 %. A second, time-aware check trains on the earliest 75 % of each
class's flows (by Timestamp) and tests on the latest 25 %.

Usage: .venv/bin/python scripts/train_flow_classifier.py [CSV] [--out MODEL]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fsbrain.domains.flow import classifier as C

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cicids2017-flows" / "flows_train.csv.gz"


def split_stratified(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.25, stratify=y, random_state=2017)
    return np.sort(tr), np.sort(te)


def split_time(y: np.ndarray, ts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    order = np.array(ts, dtype=object)
    tr, te = [], []
    for c in np.unique(y):
        idx = np.nonzero(y == c)[0]
        idx = idx[np.argsort(order[idx], kind="stable")]
        cut = int(round(len(idx) * 0.75))
        tr += idx[:cut].tolist()
        te += idx[cut:].tolist()
    return np.array(sorted(tr)), np.array(sorted(te))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", nargs="?", default=str(DEFAULT))
    ap.add_argument("--out", default=str(C.MODEL_PATH))
    args = ap.parse_args()
    x, y, feats, info = C.load_labelled(args.csv)
    results = {}
    for name, (tr, te) in {"stratified": split_stratified(y), "time": split_time(y, info["timestamps"])}.items():
        model = C.build(x[tr], y[tr], feats)
        pred = np.asarray(model.booster.predict(x[te])).argmax(axis=1)
        results[name] = C.report(y[te], pred)
        if name == "stratified":
            shipped = model
        print(name, json.dumps(results[name], indent=1))
    shipped.meta["evaluation"] = {"split": "stratified 75/25 of flows_train.csv.gz, random_state=2017",
                                  "stratified": results["stratified"], "time_aware": results["time"],
                                  "skipped_labels": info["skipped_labels"]}
    shipped.meta["source"] = "cicids2017-flows/flows_train.csv.gz (improved CIC-IDS2017, Engelen et al. 2021)"
    shipped.save(args.out)
    print("wrote", args.out, Path(args.out).stat().st_size, "bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
