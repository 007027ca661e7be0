"""Writing simulated applications as JSON lines, CSV or Parquet, and the run summary.

JSON lines and Parquet keep the nested request shape and types, and are what backtests should replay.
CSV flattens it to dotted column names (``applicant.id_number``) with the contact list as a JSON cell, for
spreadsheets and analysis tools; CSV carries no types, so readers must keep digit strings (ID numbers,
phones, cards, OS versions) as text.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from fsbrain.core.errors import InputError
from fsbrain.domains.credit.simulator import check_args, iter_applications, summarize

FORMATS = ("jsonl", "csv", "parquet")
_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def format_for(path: Path, fmt: str | None) -> str:
    """The output format: ``fmt`` when given, else from the file suffix (default jsonl)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    return _SUFFIX.get(path.suffix.lower(), "jsonl")


def flatten(rec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of a record; lists become JSON text, booleans ``true``/``false``."""
    out: dict[str, Any] = {}
    for k, v in rec.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = orjson.dumps(v).decode()
        elif isinstance(v, bool):
            out[key] = "true" if v else "false"
        else:
            out[key] = v
    return out


def _parquet_schema() -> Any:
    import pyarrow as pa

    s, f, i, b = pa.string(), pa.float64(), pa.int64(), pa.bool_()
    addr = [("province", s), ("city", s), ("detail", s)]
    return pa.schema([
        ("event_id", s), ("timestamp", s), ("platform_id", s),
        ("applicant", pa.struct([
            ("name", s), ("id_number", s), ("phone", s), ("bank_card", s), ("email", s), ("age", i),
            ("gender", s), ("education", s), ("marital_status", s), ("employer", s), ("occupation", s),
            ("monthly_income", f), ("address", pa.struct(addr)),
            ("residence", pa.struct([*addr, ("type", s), ("years", i)]))])),
        ("loan", pa.struct([("amount", f), ("term_months", i), ("purpose", s), ("product", s),
                            ("coupon_code", s)])),
        ("device", pa.struct([("device_id", s), ("os", s), ("os_version", s), ("model", s), ("is_emulator", b),
                              ("is_rooted", b), ("app_version", s), ("ip", s), ("ip_type", s),
                              ("gps", pa.struct([("lat", f), ("lon", f)]))])),
        ("contacts", pa.list_(pa.struct([("name", s), ("phone", s), ("relation", s)]))),
        ("account", pa.struct([("account_id", s), ("account_created_at", s), ("is_new_user", b)])),
        ("label", s), ("scenario", s), ("_group", s),
    ])


def _batches(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    buf: list[dict[str, Any]] = []
    for r in records:
        buf.append(r)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def write_records(records: Iterable[dict[str, Any]], path: Path, fmt: str,
                  on_batch: Callable[[list[dict[str, Any]]], None] | None = None, batch: int = 20_000) -> int:
    """Write records to ``path`` in ``fmt``; ``on_batch`` sees each batch after it is written."""
    n = 0
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _parquet_schema()
        with pq.ParquetWriter(path, schema, compression="zstd") as w:
            for part in _batches(records, batch):
                w.write_table(pa.Table.from_pylist(part, schema=schema))
                n += len(part)
                if on_batch:
                    on_batch(part)
        return n
    with open(path, "wb" if fmt == "jsonl" else "w", **({} if fmt == "jsonl" else {"newline": "",
                                                                                   "encoding": "utf-8"})) as fh:
        writer: csv.DictWriter[str] | None = None
        for part in _batches(records, batch):
            if fmt == "jsonl":
                fh.write(b"".join(orjson.dumps(r) + b"\n" for r in part))
            else:
                flat = [flatten(r) for r in part]
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(flat[0]), extrasaction="ignore")
                    writer.writeheader()
                writer.writerows(flat)
            n += len(part)
            if on_batch:
                on_batch(part)
    return n


def simulate_to_file(path: Path, *, n: int, seed: int, days: int, start: Any = None, fmt: str | None = None,
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Generate and write ``n`` applications; returns the run summary (labels, scenarios, timing).

    Raises:
        InputError: bad arguments or an unwritable output path.
    """
    fmt = format_for(path, fmt)
    if not path.parent.exists():
        raise InputError(f"out: directory {path.parent} does not exist")
    if path.is_dir():
        raise InputError(f"out: {path} is a directory")
    labels: Counter[str] = Counter()
    scenarios: Counter[str] = Counter()
    groups: dict[str, set[str]] = {}

    def seen(part: list[dict[str, Any]]) -> None:
        for r in part:
            labels[r["label"]] += 1
            scenarios[f"{r['label']}/{r['scenario']}"] += 1
            if r["_group"]:
                groups.setdefault(r["label"], set()).add(r["_group"])
        if progress:
            progress(len(part))

    check_args(n, days)
    t0 = time.perf_counter()
    records = iter_applications(n, seed, days, start)
    part = path.with_name(path.name + ".part")
    try:
        written = write_records(records, part, fmt, seen)
        part.replace(path)
    except OSError as exc:
        raise InputError(f"out: cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        part.unlink(missing_ok=True)
    secs = time.perf_counter() - t0
    return {"out": str(path), "format": fmt, "n": written, "seed": seed, "days": days,
            "seconds": round(secs, 2), "per_second": round(written / secs, 1) if secs else None,
            "bytes": path.stat().st_size, **summarize(labels, scenarios, groups)}
