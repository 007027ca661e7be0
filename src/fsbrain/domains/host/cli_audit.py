"""``fsbrain host audit``, ``fsbrain host malware`` and ``fsbrain host yara-check``.

Exit codes: 0 clean, 1 findings (``audit`` only with ``--fail-under``; ``malware`` when something was
detected), 2 bad input (missing path, bad rule or advisory file) with a one-line message, no traceback.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fsbrain.core.errors import FsbrainError

err = Console(stderr=True, soft_wrap=True, highlight=False)
out = Console(soft_wrap=True, highlight=False)
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _fail(msg: str, code: int = 2) -> None:
    err.print(Text("error: ", style="red") + Text(msg))
    raise typer.Exit(code)


def parse_size(text: str) -> int:
    """``64M``, ``1g``, ``4096`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not m:
        raise typer.BadParameter(f"not a size: {text!r} (use e.g. 4096, 512K, 64M, 1G)")
    mult = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def _dump(obj: Any, *, ascii_only: bool = False) -> str:
    return json.dumps(obj, ensure_ascii=ascii_only, default=str)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
    app.command("malware")(malware)
    app.command("yara-check")(yara_check)


def audit(
    root: Annotated[Path, typer.Option("--root", help="Root of the file tree to audit (/ for this host).")] = Path("/"),
    fmt: Annotated[str, typer.Option("--format", help="json or table.")] = "table",
    checks: Annotated[str | None, typer.Option("--checks", help="Comma-separated check ids, id prefixes "
                                               "(FSB-SSH) or categories (accounts, sshd, ...).")] = None,
    advisories: Annotated[Path | None, typer.Option("--advisories", help="Advisory list (YAML/JSON) for "
                                                    "package checks.")] = None,
    weak_passwords: Annotated[Path | None, typer.Option("--weak-passwords", help="Weak-password list, one "
                                                        "a line (default: the shipped list).")] = None,
    password_budget: Annotated[float, typer.Option("--password-budget", help="Seconds allowed for trying "
                                                   "weak passwords.")] = 60.0,
    alerts: Annotated[bool, typer.Option("--alerts", help="With --format json: print fsbrain alerts "
                                         "(one JSON object a line) instead of the report.")] = False,
    fail_under: Annotated[int | None, typer.Option("--fail-under", help="Exit 1 when the host score is "
                                                   "below this.")] = None,
) -> None:
    """Security baseline audit (安全基线) of a Linux file tree: accounts, sshd, sudo, files, cron, services
    open without auth (未授权访问) and vulnerable packages (组件漏洞)."""
    from fsbrain.domains.host.audit import load_catalogue, run_audit

    if fmt not in ("json", "table"):
        _fail(f"unknown --format {fmt!r} (json or table)")
    if not root.is_dir():
        _fail(f"--root {root}: not a directory")
    if advisories is not None and not advisories.is_file():
        _fail(f"--advisories {advisories}: no such file")
    try:
        report = run_audit(root, checks=checks.split(",") if checks else None, advisories=advisories,
                           weak_passwords=weak_passwords, password_budget_s=password_budget)
    except FsbrainError as exc:
        _fail(exc.message)
    if fmt == "json" and alerts:
        for a in report.to_alerts():
            out.print(_dump(a.to_dict(), ascii_only=True), markup=False)
    elif fmt == "json":
        out.print(_dump(report.to_dict(), ascii_only=True), markup=False)
    else:
        cat = load_catalogue()
        t = Table(title=f"Security baseline: {report.host} ({report.root})", show_lines=False)
        for col in ("severity", "check", "title", "evidence", "remedy"):
            t.add_column(col, overflow="fold")
        for f in report.findings:
            where = f"{f.file or ''}{':' + str(f.line) if f.line else ''}"
            ev = where + (f"  {f.value}" if f.value else "") + (f"  ({f.detail})" if f.detail else "")
            t.add_row(Text(f.severity or "", style=SEVERITY_STYLE.get(f.severity or "", "")), f.check_id,
                      Text(f.title or cat[f.check_id].title), Text(ev), Text(f.remedy or ""))
        out.print(t)
        style = "green" if report.score >= 80 else "yellow" if report.score >= 50 else "red"
        out.print(Text(f"host score {report.score}/100", style=style),
                  Text(f"  {len(report.findings)} findings from {len(report.checks_run)} checks "
                       f"in {report.duration_s:.1f}s"))
        for n in report.notes:
            err.print(Text(f"note: {n}", style="dim"))
    if fail_under is not None and report.score < fail_under:
        raise typer.Exit(1)


def malware(
    paths: Annotated[list[Path], typer.Argument(help="Files and directories to scan.")],
    rules: Annotated[list[Path] | None, typer.Option("--rules", help="YARA rule file or directory "
                                                     "(repeatable; default: the shipped rules).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or table.")] = "table",
    max_depth: Annotated[int, typer.Option("--max-depth", help="Deepest archive nesting unpacked.")] = 16,
    max_file_size: Annotated[str, typer.Option("--max-file-size", help="Largest file read (e.g. 64M).")] = "64M",
    max_total: Annotated[str, typer.Option("--max-total", help="Bytes unpacked per top-level file.")] = "256M",
    max_members: Annotated[int, typer.Option("--max-members", help="Archive members per top-level file.")] = 10000,
    max_ratio: Annotated[float, typer.Option("--max-ratio", help="Largest compression ratio accepted.")] = 200.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per top-level file.")] = 60.0,
    follow_symlinks: Annotated[bool, typer.Option("--follow-symlinks", help="Follow symbolic links "
                                                  "while walking directories.")] = False,
    show_skips: Annotated[bool, typer.Option("--show-skips", help="Table: list every skipped item.")] = False,
) -> None:
    """Scan files and directories for trojans and webshells (木马/网页后门) with YARA, inside archives too."""
    from fsbrain.domains.host.archives import ScanLimits
    from fsbrain.domains.host.malware import Detection, MalwareScanner
    from fsbrain.domains.host.malware_rules import load_rules

    if fmt not in ("jsonl", "table"):
        _fail(f"unknown --format {fmt!r} (jsonl or table)")
    missing = [str(p) for p in paths if not p.exists() and not p.is_symlink()]
    if missing:
        _fail(f"no such file or directory: {', '.join(missing)}")
    if max_depth < 0 or max_members < 1 or max_ratio <= 1 or timeout <= 0:
        _fail("limits must be positive (--max-depth >= 0, --max-members >= 1, --max-ratio > 1, --timeout > 0)")
    try:
        limits = ScanLimits(max_depth=max_depth, max_file_size=parse_size(max_file_size),
                            max_member_size=parse_size(max_file_size), max_total_bytes=parse_size(max_total),
                            max_members=max_members, max_ratio=max_ratio, timeout_s=timeout)
        loaded = load_rules(list(rules) if rules else None)
    except typer.BadParameter as exc:
        _fail(str(exc))
    except FsbrainError as exc:
        _fail(exc.message)
    for f in loaded.failed:
        err.print(Text(f"warning: rule file skipped ({f.category}): {f.path}: {f.error}", style="yellow"))
    scanner = MalwareScanner(loaded, limits=limits, follow_symlinks=follow_symlinks)
    detections, skips = [], []
    for ev in scanner.scan([str(p) for p in paths]):
        if fmt == "jsonl":
            sys.stdout.write(_dump(ev.to_dict()) + "\n")
        elif isinstance(ev, Detection):
            detections.append(ev)
        else:
            skips.append(ev)
    stats = scanner.stats.to_dict()
    if fmt == "jsonl":
        sys.stdout.write(_dump({"type": "summary", **stats, "rules": loaded.count}) + "\n")
    else:
        t = Table(title=f"Malware scan: {len(detections)} detection(s)")
        for col in ("label", "rule", "file", "offset", "matched"):
            t.add_column(col, overflow="fold")
        for d in detections:
            matched = ", ".join(f"{s['id']}={s['excerpt']}" for s in d.strings[:2])
            t.add_row(Text(d.label(), style="red"), Text(d.rule), Text(d.location), str(d.offset), Text(matched))
        out.print(t)
        out.print(Text(f"{stats['files']} files, {stats['bytes']} bytes, {stats['members']} archive members, "
                       f"{stats['skipped']} skipped, {stats['elapsed_s']:.2f}s, {loaded.count} rules"))
        for reason, n in sorted(stats["skip_reasons"].items(), key=lambda kv: -kv[1]):
            out.print(Text(f"  skipped {n}: {reason}", style="dim"))
        if show_skips or len(skips) <= 20:
            for s in skips:
                out.print(Text(f"  skip {s.location}: {s.reason}", style="dim"))
    if scanner.stats.detections:
        raise typer.Exit(1)


def yara_check(
    path: Annotated[Path, typer.Argument(help="YARA rule file or directory.")],
    fmt: Annotated[str, typer.Option("--format", help="json or table.")] = "table",
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any file fails to compile.")] = False,
) -> None:
    """Compile every rule file separately and report which compile and why the others fail."""
    from fsbrain.domains.host.malware_rules import compile_report

    if fmt not in ("json", "table"):
        _fail(f"unknown --format {fmt!r} (json or table)")
    try:
        rep = compile_report(path)
    except FsbrainError as exc:
        _fail(exc.message)
    summ = rep.summary()
    if fmt == "json":
        out.print(_dump(rep.to_dict()), markup=False)
    else:
        t = Table(title=f"YARA compile report: {summ['compiled']}/{summ['files']} files compile, "
                        f"{summ['rules']} rules")
        for col in ("file", "reason", "error"):
            t.add_column(col, overflow="fold")
        for f in rep.failed:
            t.add_row(Text(f.path), Text(f.category or ""), Text((f.error or "")[:200]))
        out.print(t)
        out.print(Text(f"failures by reason: {summ['failures_by_reason']}"))
        if summ["missing_modules"]:
            out.print(Text(f"missing modules: {summ['missing_modules']}"))
    if strict and rep.failed:
        raise typer.Exit(1)
