"""Run a filter over a fail2ban sample log and check every ``# failJSON`` annotation.

Sample logs (fail2ban's ``tests/files/logs``) annotate the line after each ``# failJSON: {...}`` comment
with ``match`` (should it be a failure), ``host`` (the address expected), ``time`` (local time, read in
``Europe/Zurich`` with "now" = 2005-08-14, as fail2ban's own test-suite does) and sometimes ``user``.
``# filterOptions:`` lines switch the filter options (one run per option set) for the lines that follow,
``# fileOptions:`` applies to the whole file, and ``constraint`` limits an annotation to some option
sets. Constraints are parsed (``opts.get('mode') == 'x'``, ``name != 'y'``, joined by ``and``), never
evaluated as code.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsbrain.core.errors import FsbrainError
from fsbrain.domains.host.dates import zone
from fsbrain.domains.host.logparse_scan import make_filter

SAMPLE_TZ = "Europe/Zurich"
SAMPLE_NOW = 1124013600.0  # 2005-08-14 12:00 CEST, fail2ban's test clock
SAMPLE_TO_FILTER = {"sshd-journal": "sshd"}
_COND_RE = re.compile(r"""^\s*(?:opts\.get\(\s*['"]([\w.\-]+)['"]\s*\)|(name))\s*(==|!=)\s*['"]([^'"]*)['"]\s*$""")


@dataclass(slots=True)
class SampleReport:
    """Outcome of one sample file against one filter.

    Args:
        sample: sample file name.
        filter: filter name used.
        checks: annotated (line, option set) pairs checked.
        match_ok: checks where matched / not matched was as annotated.
        host_ok: checks with an expected host where the host was right (and matched).
        host_checks: checks with an expected host.
        time_ok: checks with an expected time where the time was right.
        time_checks: checks with an expected time.
        user_ok / user_checks: the same for ``user``.
        failures: first mismatches, for reports.
    """

    sample: str
    filter: str
    checks: int = 0
    match_ok: int = 0
    host_checks: int = 0
    host_ok: int = 0
    time_checks: int = 0
    time_ok: int = 0
    user_checks: int = 0
    user_ok: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        return (self.match_ok == self.checks and self.host_ok == self.host_checks
                and self.time_ok == self.time_checks and self.user_ok == self.user_checks)


def _constraint_ok(expr: str | None, name: str, opts: dict[str, str]) -> bool:
    if not expr:
        return True
    for part in re.split(r"\s+and\s+", expr):
        m = _COND_RE.match(part)
        if not m:
            raise ValueError(f"unsupported constraint {expr!r}")
        key, is_name, op, want = m.groups()
        have = name if is_name else opts.get(key)
        if (have == want) != (op == "=="):
            return False
    return True


def _options_list(raw: str) -> list[dict[str, Any]]:
    val = json.loads(raw)
    return val if isinstance(val, list) else [val]


def parse_sample(path: Path) -> tuple[dict[str, Any], list[tuple[list[dict[str, Any]], dict[str, Any] | None, bytes]]]:
    """Split a sample file into file options and ``(option sets, annotation, line)`` triples."""
    file_opts: dict[str, Any] = {}
    opt_sets: list[dict[str, Any]] = [{}]
    pending: dict[str, Any] | None = None
    items = []
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"#"):
                text = line.decode("utf-8", "replace")
                if text.startswith(("# failJSON:", "#failJSON:")):
                    pending = json.loads(text.split(":", 1)[1])
                elif text.startswith("# filterOptions:"):
                    opt_sets = _options_list(text.split(":", 1)[1])
                elif text.startswith("# fileOptions:"):
                    file_opts.update(json.loads(text.split(":", 1)[1]))
                continue
            if not line.strip():
                continue
            items.append((opt_sets, pending, line))
            pending = None
    return file_opts, items


def run_sample(path: Path, *, filter_name: str | None = None, filter_dirs: list[Path] | None = None,
               max_failures: int = 20) -> SampleReport:
    """Check one sample file; see the module docstring for the rules."""
    sample = path.stem if path.suffix == ".txt" else path.name  # fsbrain's own samples are *.txt (package data)
    fname = filter_name or SAMPLE_TO_FILTER.get(sample, sample)
    file_opts, items = parse_sample(path)
    rep = SampleReport(sample=sample, filter=fname)
    tz = zone(SAMPLE_TZ)
    # distinct option sets in order of appearance
    seen: dict[str, dict[str, Any]] = {}
    for opt_sets, _, _ in items:
        for o in opt_sets:
            seen.setdefault(json.dumps({**file_opts, **o}, sort_keys=True), {**file_opts, **o})
    for key, opts in seen.items():
        cond = opts.get("test.condition")
        if cond and not _constraint_ok(cond.replace("==", " == ").replace("!=", " != "), fname, {}):
            continue
        fopts = {k: str(v) for k, v in opts.items() if not k.startswith("test.")}
        flt = make_filter(fname, filter_dirs, fopts, tz=tz, now=SAMPLE_NOW)
        for opt_sets, ann, line in items:
            if not any(json.dumps({**file_opts, **o}, sort_keys=True) == key for o in opt_sets):
                continue
            if ann is not None and not _constraint_ok(ann.get("constraint"), fname, fopts):
                continue
            res = flt.process(line)
            if ann is None:
                continue
            _check(rep, ann, res, line, fopts, tz, max_failures)
    return rep


def _local_time(text: str, tz: dt.tzinfo | None) -> float:
    nums = [int(x) for x in re.findall(r"\d+", text)[:6]]
    return dt.datetime(*nums, tzinfo=tz).timestamp()  # type: ignore[misc]


def _check(rep: SampleReport, ann: dict[str, Any], res: Any, line: bytes, opts: dict[str, str],
           tz: dt.tzinfo | None, max_failures: int) -> None:
    rep.checks += 1
    want = bool(ann.get("match", False))
    got = res.status == "failure"
    problems = []
    if want == got:
        rep.match_ok += 1
    else:
        problems.append(f"expected match={want}, got {res.status}")
    if want and "host" in ann and ann["host"] is not None:
        rep.host_checks += 1
        if got and res.host == ann["host"]:
            rep.host_ok += 1
        else:
            problems.append(f"host {res.host!r} != {ann['host']!r}")
    if want and ann.get("time"):
        rep.time_checks += 1
        exp = _local_time(ann["time"], tz)
        if res.time is not None and int(res.time) == int(exp):
            rep.time_ok += 1
        else:
            problems.append(f"time {res.time} != {ann['time']}")
    if want and "user" in ann:
        rep.user_checks += 1
        if got and (res.user or "") == ann["user"]:
            rep.user_ok += 1
        else:
            problems.append(f"user {res.user!r} != {ann['user']!r}")
    if problems and len(rep.failures) < max_failures:
        rep.failures.append(f"{opts or '{}'} {line[:160].decode('utf-8', 'replace')!r}: {'; '.join(problems)}")


def markdown_table(reports: list[SampleReport]) -> str:
    """A Markdown table of reports: checks, matched right, host right, time right, user right."""
    rows = ["| sample | filter | annotated checks | matched right | host right | time right | user right |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for r in reports:
        rows.append(f"| {r.sample} | {r.filter} | {r.checks} | {r.match_ok}/{r.checks} | "
                    f"{r.host_ok}/{r.host_checks} | {r.time_ok}/{r.time_checks} | {r.user_ok}/{r.user_checks} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m fsbrain.domains.host.fail2ban_samples SAMPLE_DIR [--filter-dir DIR] NAME...``."""
    import argparse

    ap = argparse.ArgumentParser(description="Check fail2ban sample logs against filters.")
    ap.add_argument("sample_dir", type=Path)
    ap.add_argument("names", nargs="*", help="sample names (default: every sample with a filter)")
    ap.add_argument("--filter-dir", type=Path, action="append", default=None)
    args = ap.parse_args(argv)
    from fsbrain.domains.host.fail2ban import find_filter_file

    names = args.names or sorted(p.name for p in args.sample_dir.iterdir() if p.is_file())
    reports = []
    for name in names:
        base = name[:-4] if name.endswith(".txt") else name
        try:
            find_filter_file(SAMPLE_TO_FILTER.get(base, base), args.filter_dir)
        except Exception:  # noqa: BLE001 - no filter of that name: not a sample we support
            if base != "windows-4625":
                continue
        try:
            reports.append(run_sample(args.sample_dir / name, filter_dirs=args.filter_dir))
        except FsbrainError as exc:
            rep = SampleReport(sample=name, filter=SAMPLE_TO_FILTER.get(name, name))
            rep.failures.append(exc.message)
            reports.append(rep)
            print(f"{name}: {exc.message}", file=sys.stderr)
    print(markdown_table(reports))
    return 0 if all(r.all_ok for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
