"""Read log files safely and run filters and the brute-force detector over them.

Reading is bounded and never silent:

* files are read as bytes (no decoding errors), ``.gz`` files transparently;
* a line longer than :data:`~fsbrain.domains.host.logparse.MAX_LINE` bytes is cut there and the rest of it
  skipped (counted as ``truncated``); lines holding NUL bytes are counted as ``binary`` and not matched;
* a file that cannot be opened is reported (``errors``) and the scan goes on with the next one;
* file names are shown escaped (:func:`display_name`), so control characters in a hostile name cannot
  rewrite the terminal.

:func:`scan_files` returns a :class:`ScanReport` with per-file counts, alerts and the top failing hosts.
"""

from __future__ import annotations

import datetime as dt
import gzip
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fsbrain.core.errors import FsbrainError, InputError
from fsbrain.core.model import Alert
from fsbrain.domains.host.bruteforce import AuthEvent, BruteForceDetector
from fsbrain.domains.host.fail2ban import FilterDefinition, load_filter, shipped_filters
from fsbrain.domains.host.logparse import MAX_LINE, LogFilter
from fsbrain.domains.host.logparse_windows import NAME as WINDOWS_NAME
from fsbrain.domains.host.logparse_windows import WindowsEventFilter

MAX_TOP_HOSTS = 1_000_000
GUESS_LINES = 300
SCAN_BATCH = 16384  # lines matched per batch (LogFilter.process_batch) ...
SCAN_BATCH_BYTES = 8 << 20  # ... and at most this many bytes of them, so memory stays bounded


def display_name(path: str | Path) -> str:
    """A file name safe to print: control and non-printable characters escaped."""
    s = str(path)
    if s.isprintable():
        return s
    return s.encode("unicode_escape", "backslashreplace").decode("ascii")


def open_log(path: str | Path) -> IO[bytes]:
    """Open a log file for binary reading (gzip when it starts with the gzip magic).

    Raises:
        InputError: missing, a directory, unreadable, or not a regular file.
    """
    p = Path(path)
    name = display_name(p)
    try:
        if p.is_dir():
            raise InputError(f"{name}: is a directory, not a log file")
        fh: IO[bytes] = open(p, "rb")  # noqa: SIM115 - returned to the caller
    except FileNotFoundError as exc:
        raise InputError(f"{name}: no such file") from exc
    except PermissionError as exc:
        raise InputError(f"{name}: permission denied") from exc
    except OSError as exc:
        raise InputError(f"{name}: cannot open ({exc.strerror or exc})") from exc
    if getattr(fh, "peek", lambda n: b"")(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    return fh


def iter_lines(fh: IO[bytes], counts: dict[str, int]) -> Iterator[bytes]:
    """Lines without their end-of-line, each at most ``MAX_LINE`` bytes (longer ones cut and counted)."""
    readline = fh.readline
    while True:
        try:
            line = readline(MAX_LINE + 1)
        except (OSError, EOFError) as exc:  # truncated gzip, I/O error mid-file
            counts["read_errors"] = counts.get("read_errors", 0) + 1
            counts["last_error"] = str(exc)  # type: ignore[assignment]
            return
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            counts["truncated"] = counts.get("truncated", 0) + 1
            while True:  # skip the rest of the over-long line
                rest = readline(1 << 16)
                if not rest or rest.endswith(b"\n"):
                    break
            yield line[:MAX_LINE]
            continue
        yield line.rstrip(b"\r\n")


@dataclass(slots=True)
class ScanReport:
    """Result of scanning files: counts per file, alerts, top failing hosts, problems."""

    files: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    hosts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    filter: str = ""
    engines: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def totals(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for f in self.files:
            out.update({k: v for k, v in f.items() if isinstance(v, int)})
        return dict(out)

    def to_dict(self) -> dict[str, Any]:
        return {"filter": self.filter, "files": self.files, "totals": self.totals, "errors": self.errors,
                "engines": self.engines, "alerts": len(self.alerts), "seconds": round(self.seconds, 3),
                "top_hosts": self.hosts.most_common(20)}


def make_filter(spec: str, filter_dirs: list[Path] | None = None, options: dict[str, str] | None = None, *,
                tz: dt.tzinfo | None = None, now: float | None = None) -> Any:
    """A ready filter: the structured Windows reader for ``windows-4625``, else a fail2ban filter."""
    if spec.split("[", 1)[0] == WINDOWS_NAME:
        return WindowsEventFilter(tz=tz, now=now)
    return LogFilter(load_filter(spec, filter_dirs, options), tz=tz, now=now)


def guess_filter(sample: list[bytes], filter_dirs: list[Path] | None = None) -> str:
    """The shipped filter that recognises most of ``sample`` (failures and successes count double)."""
    best, best_score = "", 0
    for name in [*shipped_filters(), WINDOWS_NAME]:
        try:
            flt = make_filter(name, filter_dirs, now=time.time())
        except FsbrainError:
            continue
        for line in sample:
            flt.process(line)
        c = flt.counts
        score = 2 * (c["failure"] + c["success"]) + c["nofail"] + c["ignored"]
        if score > best_score:
            best, best_score = name, score
    if not best:
        raise InputError("could not recognise the log format; name a filter with --filter")
    return best


def sample_lines(path: str | Path, n: int = GUESS_LINES) -> list[bytes]:
    counts: dict[str, int] = {}
    with open_log(path) as fh:
        out = []
        for line in iter_lines(fh, counts):
            out.append(line)
            if len(out) >= n:
                break
    return out


def process_lines(flt: LogFilter, lines: Iterable[bytes], det: BruteForceDetector | None, jail: str,
                  report: ScanReport, counts: dict[str, int], where: str) -> None:
    """Run one filter and the detector over ``lines``, filling ``report`` and ``counts``."""
    last_time: float | None = None
    hosts = report.hosts
    batch_fn = getattr(flt, "process_batch", None)
    batch: list[bytes] = []
    numbers: list[int] = []
    size = 0

    def flush() -> None:
        nonlocal last_time
        results = batch_fn(batch) if batch_fn is not None else [flt.process(x) for x in batch]
        for lineno, res in zip(numbers, results, strict=True):
            st = res.status
            if st != "failure" and st != "success":
                continue
            if res.time is not None:
                last_time = res.time
            if res.host is None:
                continue
            if st == "failure" and (res.host in hosts or len(hosts) < MAX_TOP_HOSTS):
                hosts[res.host] += 1
            if det is not None:
                ts = res.time if res.time is not None else (last_time if last_time is not None else time.time())
                report.alerts.extend(det.observe(AuthEvent(time=ts, status=st, host=res.host, user=res.user,
                                                           jail=jail, attempts=res.attempts,
                                                           where=f"{where}:{lineno}")))
        batch.clear()
        numbers.clear()

    for lineno, line in enumerate(lines, 1):
        if b"\x00" in line:
            counts["binary"] = counts.get("binary", 0) + 1
            continue
        batch.append(line)
        numbers.append(lineno)
        size += len(line)
        if len(batch) >= SCAN_BATCH or size >= SCAN_BATCH_BYTES:
            flush()
            size = 0
    if batch:
        flush()


def scan_files(paths: list[str | Path], *, filter_spec: str | None = None, filter_dirs: list[Path] | None = None,
               detector: BruteForceDetector | None = None, tz: dt.tzinfo | None = None,
               now: float | None = None, definition: FilterDefinition | None = None) -> ScanReport:
    """Scan log files with one filter (named, or guessed from the first file) and the detector.

    Args:
        paths: log files (plain or gzip).
        filter_spec: filter name with options or path to a ``.conf``; ``None`` guesses it.
        filter_dirs: directories searched for user filters before the shipped ones.
        detector: where failures go; ``None`` only counts lines.
        tz: zone for dates without one.
        now: reference time for year inference.
        definition: an already loaded filter (takes precedence over ``filter_spec``).
    """
    report = ScanReport()
    t0 = time.perf_counter()
    flt: Any
    if definition is not None:
        flt = LogFilter(definition, tz=tz, now=now)
        report.filter = filter_spec or definition.name
    else:
        if filter_spec is None:
            first = next((p for p in paths if Path(p).is_file()), None)
            if first is None:
                problems = []
                for p in paths:
                    try:
                        open_log(p).close()
                    except InputError as exc:
                        problems.append(exc.message)
                raise InputError("no readable log file: " + "; ".join(problems or ["none given"]))
            filter_spec = guess_filter(sample_lines(first), filter_dirs)
        flt = make_filter(filter_spec, filter_dirs, tz=tz, now=now)
        report.filter = filter_spec
    report.engines = flt.engines
    jail = detector.config.jail_for_filter(report.filter).name if detector is not None else flt.name
    for p in paths:
        name = display_name(p)
        counts: dict[str, int] = {}
        try:
            fh = open_log(p)
        except InputError as exc:
            report.errors.append(exc.message)
            continue
        flt.reset()
        with fh:
            process_lines(flt, iter_lines(fh, counts), detector, jail, report, counts, name)
        c = {k: v for k, v in flt.counts.items()}
        c["truncated"] = c.get("truncated", 0) + counts.get("truncated", 0)
        c["binary"] = counts.get("binary", 0)
        c["lines"] += c["binary"]
        if counts.get("read_errors"):
            report.errors.append(f"{name}: read error after {c['lines']} lines ({counts.get('last_error')})")
        report.files.append({"file": name, **c})
    report.seconds = time.perf_counter() - t0
    return report
