"""Match a large log file on several processes, with results identical to one process.

The expensive part of filtering a line (finding the date, running the prefix and failure regexes) does
not depend on other lines, so worker processes do it for contiguous chunks of the file
(:meth:`LogFilter.extract`). The part that does (connection ids tying lines together) then runs in file
order in the calling process (:meth:`LogFilter.decide`), so the outcome is the same as a single pass.
Filters with ``maxlines > 1`` are multi-line by nature and always run in one process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fsbrain.domains.host.fail2ban import load_filter
from fsbrain.domains.host.logparse import LineResult, LogFilter

_worker: dict[str, Any] = {}


def _init(spec: str, dirs: list[str] | None, options: dict[str, Any]) -> None:
    _worker["flt"] = LogFilter(load_filter(spec, [Path(d) for d in dirs] if dirs else None), **options)


def _chunks(path: Path, jobs: int) -> list[tuple[int, int]]:
    size = path.stat().st_size
    step = max(1, size // max(1, jobs * 4))
    bounds, pos = [], 0
    with open(path, "rb") as fh:
        while pos < size:
            fh.seek(min(size, pos + step))
            fh.readline()
            end = min(size, fh.tell())
            bounds.append((pos, end))
            pos = end
    return bounds


def _work(span: tuple[int, int]) -> tuple[list[tuple[int, Any]], int, dict[str, int]]:
    flt: LogFilter = _worker["flt"]
    for k in flt.counts:
        flt.counts[k] = 0
    start, end = span
    out: list[tuple[int, Any]] = []
    with open(_worker["path"], "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    extract = flt.extract
    for i, line in enumerate(lines):
        x = extract(line.rstrip(b"\r"))
        if x[0] != "missed":
            out.append((i, x))
    return out, len(lines), dict(flt.counts)


def parallel_results(path: str | Path, spec: str, *, jobs: int | None = None, filter_dirs: list[Path] | None = None,
                     **options: Any) -> Iterator[tuple[int, LineResult]]:
    """``(line number, result)`` for every line that is not ``missed``, in file order."""
    p = Path(path)
    jobs = max(1, jobs or os.cpu_count() or 1)
    final = LogFilter(load_filter(spec, filter_dirs), **options)
    if final.maxlines > 1 or jobs == 1:
        with open(p, "rb") as fh:
            for n, raw in enumerate(fh, 1):
                res = final.process(raw.rstrip(b"\r\n"))
                if res.status != "missed":
                    yield n, res
        return
    _worker["path"] = str(p)
    ctx = mp.get_context("fork")
    dirs = [str(d) for d in filter_dirs] if filter_dirs else None
    base = 0
    with ctx.Pool(jobs, initializer=_init, initargs=(spec, dirs, options)) as pool:
        for found, n_lines, _counts in pool.imap(_work, _chunks(p, jobs), chunksize=1):
            for i, x in found:
                yield base + i + 1, final.decide(x)
            base += n_lines


def parallel_failures(path: str | Path, spec: str, *, jobs: int | None = None,
                      filter_dirs: list[Path] | None = None) -> list[bytes]:
    """The lines of ``path`` that are failures (for benchmarks and cross-checks)."""
    numbers = {n for n, r in parallel_results(path, spec, jobs=jobs, filter_dirs=filter_dirs) if r.status == "failure"}
    out = []
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if n in numbers:
                out.append(raw.rstrip(b"\r\n"))
    return out
