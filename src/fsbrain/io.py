"""Reading event records from JSON lines, CSV or Parquet files (for backtests and batch decisions)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from fsbrain.core.errors import InputError

MAX_LINE_BYTES = 1_048_576


def detect_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".jsonl.gz", "jsonl"),
                        (".csv", "csv"), (".parquet", "parquet"), (".pq", "parquet")):
        if name.endswith(suffix):
            return fmt
    raise InputError(f"{path}: unknown file type (use .jsonl, .csv or .parquet)")


def read_records(path: str | Path, fmt: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield one dict per record.

    CSV columns with dotted names (``applicant.id_number``) become nested objects; cells holding JSON
    arrays or objects are decoded.

    Raises:
        InputError: unreadable file or a malformed record (with its line or row number).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    fmt = fmt or detect_format(p)
    if fmt == "jsonl" and p.name.lower().endswith(".json"):
        yield from _json_document(p)
    elif fmt == "jsonl":
        yield from _jsonl(p)
    elif fmt == "csv":
        yield from _csv(p)
    elif fmt == "parquet":
        yield from _parquet(p)
    else:
        raise InputError(f"unknown format {fmt!r} (jsonl, csv or parquet)")


def _json_document(p: Path) -> Iterator[dict[str, Any]]:
    """A .json file: one object, an array of objects, or JSON lines."""
    raw = p.read_bytes()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        yield from _jsonl(p)
        return
    items = doc if isinstance(doc, list) else [doc]
    for n, rec in enumerate(items, 1):
        if not isinstance(rec, dict):
            raise InputError(f"{p}: item {n} is not a JSON object")
        yield rec


def _jsonl(p: Path) -> Iterator[dict[str, Any]]:
    import gzip

    opener = gzip.open if p.name.endswith(".gz") else open
    with opener(p, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if len(line) > MAX_LINE_BYTES:
                raise InputError(f"{p}:{n}: line longer than {MAX_LINE_BYTES} bytes")
            line = line.strip()
            if not line:
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{p}:{n}: malformed JSON: {exc}") from None
            if not isinstance(rec, dict):
                raise InputError(f"{p}:{n}: each line must be a JSON object")
            yield rec


def _cell(v: str) -> Any:
    """A CSV cell: empty → absent, JSON arrays/objects decoded, everything else kept as text.

    Text is deliberately not guessed into numbers: ID numbers, phones and cards are digit strings, and
    the event schemas convert numeric fields themselves.
    """
    if v == "":
        return None
    if v[0] in "[{":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in flat.items():
        if v is None:
            continue
        parts = k.split(".")
        cur = out
        for part in parts[:-1]:
            nxt = cur.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise InputError(f"column {k!r} conflicts with column {part!r}")
            cur = nxt
        cur[parts[-1]] = v
    return out


def _csv(p: Path) -> Iterator[dict[str, Any]]:
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        try:
            for n, row in enumerate(reader, 2):
                if None in row:
                    raise InputError(f"{p}:{n}: more cells than header columns")
                try:
                    yield _nest({k: _cell(v) for k, v in row.items()})
                except InputError as exc:
                    raise InputError(f"{p}:{n}: {exc.message}") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{p}: not a readable UTF-8 CSV file: {exc}") from exc


def _parquet(p: Path) -> Iterator[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
        for batch in pf.iter_batches(batch_size=10_000):
            for rec in batch.to_pylist():
                yield _nest(rec) if any("." in k for k in rec) else {k: v for k, v in rec.items() if v is not None}
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{p}: not a readable Parquet file: {exc}") from exc
