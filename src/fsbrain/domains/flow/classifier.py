"""Per-flow attack classifier over CICFlowMeter features (LightGBM, shipped as text, never pickle).

Classes: benign, ddos, dos_hulk, dos_goldeneye, dos_slowloris, dos_slowhttptest, port_scan,
ssh_brute_force, ftp_brute_force, botnet, web_attack. Training data: CICFlowMeter CSV with a ``Label``
column (CIC-IDS2017 label names are mapped by :data:`CLASS_OF_LABEL`; unknown labels are skipped and
counted). The model file is gzip'd text: a first line ``# fsbrain-flow-model {json}`` with classes,
features and evaluation, then LightGBM's own text format.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fsbrain.core.errors import InputError

MODEL_PATH = Path(__file__).parent / "data" / "flow_classifier.lgb.gz"
FORMAT = "fsbrain-flow-model"
VERSION = 1
CLASS_OF_LABEL = {
    "benign": "benign", "ddos": "ddos", "dos hulk": "dos_hulk", "dos goldeneye": "dos_goldeneye",
    "dos slowloris": "dos_slowloris", "dos slowhttptest": "dos_slowhttptest", "portscan": "port_scan",
    "port scan": "port_scan", "infiltration - portscan": "port_scan", "ssh-patator": "ssh_brute_force",
    "ftp-patator": "ftp_brute_force", "botnet": "botnet", "bot": "botnet", "web attack - brute force": "web_attack",
    "web attack - xss": "web_attack", "web attack - sql injection": "web_attack",
    "web attack \x96 brute force": "web_attack", "web attack \x96 xss": "web_attack",
    "web attack \x96 sql injection": "web_attack",
}
CLASSES = ("benign", "ddos", "dos_hulk", "dos_goldeneye", "dos_slowloris", "dos_slowhttptest", "port_scan",
           "ssh_brute_force", "ftp_brute_force", "botnet", "web_attack")
RISK_LABEL = {"ddos": "dos_app_layer", "dos_hulk": "dos_app_layer", "dos_goldeneye": "dos_app_layer",
              "dos_slowloris": "dos_app_layer", "dos_slowhttptest": "dos_app_layer", "port_scan": "port_scan",
              "ssh_brute_force": "brute_force", "ftp_brute_force": "brute_force", "botnet": "botnet",
              "web_attack": "web_scanner"}
# identifiers and labels: never features (addresses, source port and time do not generalise)
NOT_FEATURES = {"id", "flow id", "src ip", "source ip", "dst ip", "destination ip", "src port", "source port",
                "timestamp", "label", "attempted category"}
ALIASES = {"total fwd packets": "total fwd packet", "total backward packets": "total bwd packets",
           "total length of fwd packets": "total length of fwd packet",
           "total length of bwd packets": "total length of bwd packet", "destination port": "dst port"}
# one thread: the data sets are small, and on a busy 2-core machine LightGBM's first multi-threaded run
# was measured taking 24 s for what one thread does in 0.1 s
PARAMS = {"objective": "multiclass", "num_leaves": 15, "learning_rate": 0.1, "min_data_in_leaf": 10,
          "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
          "verbose": -1, "num_threads": 1, "seed": 2017, "deterministic": True}


def norm(name: str) -> str:
    """Canonical column name: stripped, lower-cased, common CIC-IDS2017 spellings unified."""
    n = name.strip().lower()
    return ALIASES.get(n, n)


def read_csv(path: str | Path, *, labels: bool, block_rows: int = 100_000) -> Iterator[dict[str, Any]]:
    """CICFlowMeter CSV in blocks: ``{"columns": {name: float64 array}, "ids": {...}, "labels": [...]}``.

    Non-numeric cells become NaN (LightGBM treats them as missing); ``inf`` too.

    Raises:
        InputError: unreadable file, or a ``Label`` column is required and absent.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    bad = [0]

    def skip(_row: Any) -> str:
        bad[0] += 1
        return "skip"

    try:
        reader = pacsv.open_csv(str(path), read_options=pacsv.ReadOptions(block_size=1 << 23),
                                parse_options=pacsv.ParseOptions(invalid_row_handler=skip),
                                convert_options=pacsv.ConvertOptions(column_types=_string_types(path)))
        header = [norm(n) for n in reader.schema.names]
        if labels and "label" not in header:
            raise InputError(f"{path}: no Label column; training needs labelled CICFlowMeter flows")
        for batch in reader:
            cols, ids, lab = {}, {}, None
            for name, col in zip(header, batch.columns, strict=True):
                if name == "label":
                    lab = [str(x).strip() for x in col.to_pylist()]
                elif name in NOT_FEATURES:
                    ids[name] = col.to_pylist()
                else:
                    cols[name] = _to_float(col)
            yield {"columns": cols, "ids": ids, "labels": lab, "rows": batch.num_rows, "bad_rows": bad[0]}
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: cannot read as CICFlowMeter CSV: {exc}") from exc


def _to_float(col: Any) -> np.ndarray:
    """A text column to float64; cells that are not numbers (and infinities) become NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pc.fill_null(pc.cast(col, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        vals = []
        for v in col.to_pylist():
            try:
                vals.append(float(v))
            except (TypeError, ValueError):
                vals.append(np.nan)
        arr = np.array(vals, dtype=np.float64)
    arr = np.asarray(arr, dtype=np.float64).copy()
    arr[~np.isfinite(arr)] = np.nan
    return arr


def _string_types(path: str | Path) -> dict[str, Any]:
    """Read every column as text, then convert numerics ourselves (garbage cells must not fail a block)."""
    import pyarrow as pa

    from fsbrain.domains.flow.fileio import _read_header

    return {h: pa.string() for h in _read_header(path)}


def matrix(cols: dict[str, np.ndarray], features: list[str], n: int) -> np.ndarray:
    """Feature matrix in the model's column order; absent columns are NaN."""
    out = np.full((n, len(features)), np.nan, dtype=np.float64)
    for j, f in enumerate(features):
        if f in cols:
            out[:, j] = cols[f]
    return out


def load_labelled(path: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """All labelled rows of a file: ``(X, y class index, feature names, info)``; unknown labels skipped."""
    blocks = list(read_csv(path, labels=True))
    features = sorted({f for b in blocks for f in b["columns"]})
    xs, ys, ts, skipped = [], [], [], {}
    for b in blocks:
        x = matrix(b["columns"], features, b["rows"])
        cls = [CLASS_OF_LABEL.get(lab.lower()) for lab in b["labels"]]
        keep = np.array([c is not None for c in cls], dtype=bool)
        for lab, c in zip(b["labels"], cls, strict=True):
            if c is None:
                skipped[lab] = skipped.get(lab, 0) + 1
        xs.append(x[keep])
        ys.append(np.array([CLASSES.index(c) for c in cls if c is not None], dtype=np.int64))
        ts += [t for t, k in zip(b["ids"].get("timestamp", [""] * b["rows"]), keep, strict=True) if k]
    x, y = np.concatenate(xs), np.concatenate(ys)
    if limit is not None and len(y) > limit:
        idx = np.sort(np.random.default_rng(0).choice(len(y), limit, replace=False))
        x, y, ts = x[idx], y[idx], [ts[i] for i in idx]
    bad = blocks[-1]["bad_rows"] if blocks else 0
    return x, y, features, {"skipped_labels": skipped, "bad_rows": bad, "timestamps": ts}


def train(x: np.ndarray, y: np.ndarray, features: list[str], *, rounds: int = 120) -> Any:
    """Train the multiclass LightGBM model (class-balanced sample weights)."""
    import lightgbm as lgb

    if len(np.unique(y)) < 2:
        raise InputError("training needs flows of at least two classes")
    counts = np.bincount(y, minlength=len(CLASSES)).astype(np.float64)
    w = (len(y) / (len(np.unique(y)) * np.maximum(counts, 1)))[y]
    ds = lgb.Dataset(x, label=y, weight=w, feature_name=[f.replace(" ", "_").replace("/", "_per_") for f in features],
                     free_raw_data=True)
    return lgb.train({**PARAMS, "num_class": len(CLASSES)}, ds, num_boost_round=rounds)


def report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Per-class precision, recall, F1 and support, plus macro-F1 and accuracy (over classes present)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    present = sorted(set(y_true.tolist()))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=present, zero_division=0)
    per = {CLASSES[c]: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                        "f1": round(float(f[i]), 4), "support": int(s[i])} for i, c in enumerate(present)}
    return {"per_class": per, "macro_f1": round(float(f1_score(y_true, y_pred, labels=present, average="macro",
                                                                zero_division=0)), 4),
            "accuracy": round(float(accuracy_score(y_true, y_pred)), 4), "n": int(len(y_true))}


class FlowClassifier:
    """A loaded model.

    Args:
        booster: the LightGBM booster.
        meta: header metadata (classes, features, evaluation).
    """

    def __init__(self, booster: Any, meta: dict[str, Any]) -> None:
        self.booster = booster
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])
        self.features: list[str] = list(meta["features"])

    @classmethod
    def load(cls, path: str | Path | None = None) -> FlowClassifier:
        """Load a model file (default: the one shipped in the package).

        Raises:
            InputError: missing file, not an fsbrain flow model, or unreadable LightGBM text.
        """
        import lightgbm as lgb

        p = Path(path) if path else MODEL_PATH
        try:
            raw = gzip.decompress(p.read_bytes()) if p.read_bytes()[:2] == b"\x1f\x8b" else p.read_bytes()
            head, _, body = raw.decode("utf-8").partition("\n")
        except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(f"{p}: cannot read flow model: {exc}") from exc
        prefix = f"# {FORMAT} "
        if not head.startswith(prefix):
            raise InputError(f"{p}: not an fsbrain flow model (first line must start with {prefix.strip()!r})")
        try:
            meta = json.loads(head[len(prefix):])
            if meta.get("version") != VERSION:
                raise InputError(f"{p}: flow model version {meta.get('version')} (this fsbrain reads {VERSION})")
            booster = lgb.Booster(model_str=body)
        except (ValueError, lgb.basic.LightGBMError) as exc:
            raise InputError(f"{p}: corrupt flow model: {exc}") from exc
        return cls(booster, meta)

    def save(self, path: str | Path) -> None:
        """Write the model (gzip'd text when the name ends in ``.gz``)."""
        text = f"# {FORMAT} {json.dumps(self.meta, sort_keys=True)}\n" + self.booster.model_to_string()
        data = text.encode("utf-8")
        Path(path).write_bytes(gzip.compress(data, 9, mtime=0) if str(path).endswith(".gz") else data)

    def predict_proba(self, cols: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Class probabilities for ``n`` flows given their feature columns (by canonical name)."""
        return np.asarray(self.booster.predict(matrix(cols, self.features, n)))

    def predict(self, cols: dict[str, np.ndarray], n: int) -> tuple[list[str], np.ndarray]:
        """Top class and its probability per flow."""
        p = self.predict_proba(cols, n)
        idx = p.argmax(axis=1)
        return [self.classes[i] for i in idx], p[np.arange(n), idx]


def build(x: np.ndarray, y: np.ndarray, features: list[str], *, evaluation: dict[str, Any] | None = None,
          rounds: int = 120, source: str = "") -> FlowClassifier:
    """Train and wrap a model with its metadata."""
    booster = train(x, y, features, rounds=rounds)
    meta = {"format": FORMAT, "version": VERSION, "classes": list(CLASSES), "features": features,
            "risk_labels": RISK_LABEL, "rounds": rounds, "trained_rows": int(len(y)), "source": source,
            "evaluation": evaluation or {}}
    return FlowClassifier(booster, meta)
