"""``fsbrain web crs-test`` and ``fsbrain web rules-check``: thin commands over the rule engine API."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from fsbrain.core.errors import PolicyError


def _rule_files(target: Path) -> list[Path]:
    if target.is_dir():
        files = sorted(target.glob("*.conf"))
        if (target / "rules").is_dir():
            files += sorted((target / "rules").glob("*.conf"))
        return files
    return [target]


def rules_check(target: Path = typer.Argument(..., help="A SecLang rule file or a folder of *.conf files.")) -> None:
    """Validate rule files; exit 1 with file:line for every problem."""
    from fsbrain.domains.web.seclang.parser import parse_files

    files = _rule_files(target)
    if not files:
        typer.secho(f"{target}: no .conf rule files", fg="red", err=True)
        raise typer.Exit(1)
    try:
        rs = parse_files(files)
    except PolicyError as exc:
        for p in exc.problems or [{"path": exc.source, "line": exc.line, "message": exc.message}]:
            where = f"{p.get('path')}:{p.get('line')}" if p.get("line") else str(p.get("path"))
            typer.secho(f"{where}: {p.get('severity', 'error')}: {p.get('message')}", fg="red", err=True)
        raise typer.Exit(1) from None
    for d in rs.disabled:
        typer.secho(f"{d['path']}:{d['line']}: warning: {d['message']} (rule loaded disabled)", fg="yellow",
                    err=True)
    n = sum(1 for r in rs.rules if r.kind != "marker")
    typer.echo(f"ok: {len(files)} file(s), {n} rule(s), {len(rs.disabled)} disabled")


def crs_test(
    rules: Path = typer.Option(..., "--rules", help="CRS folder (release folder, rules/ or Debian layout)."),
    tests: Path = typer.Option(..., "--tests", help="Folder of go-ftw YAML regression tests."),
    overrides: Path | None = typer.Option(None, "--overrides", help="Overrides YAML (default: fsbrain's)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    show_failures: bool = typer.Option(False, "--failures", help="List failing tests."),
) -> None:
    """Run the go-ftw regression suite in-process; print the pass rate per rule file and overall."""
    from fsbrain.domains.web.seclang import ftw

    ov = ftw.Overrides.load(overrides) if overrides else ftw.Overrides.load()
    engine = ftw.engine_for_suite(rules, ov)
    results = ftw.run_suite(engine, tests, ov)
    summary = ftw.summarize(results)
    failures = [r for r in results if r.status == "failed"]
    if as_json:
        summary["failures"] = [{"test": r.name, "group": r.group, "missing": r.missing,
                                "unexpected": r.unexpected, "reason": r.reason} for r in failures]
        typer.echo(json.dumps(summary, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="CRS regression (go-ftw) in-process")
        for col in ("rule file", "passed", "failed", "known", "n/a", "pass rate"):
            table.add_column(col, justify="left" if col == "rule file" else "right")
        rows = list(summary["groups"].items()) + [("TOTAL", summary["total"])]
        for name, g in rows:
            rate = "-" if g["pass_rate"] is None else f"{g['pass_rate'] * 100:.1f}%"
            table.add_row(name, str(g["passed"]), str(g["failed"]), str(g["known_failure"]),
                          str(g["not_applicable"]), rate)
        Console().print(table)
        if show_failures:
            for r in failures:
                typer.echo(f"FAIL {r.name} missing={r.missing} unexpected={r.unexpected} {r.reason}")
    if failures:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach ``crs-test`` and ``rules-check`` to the ``fsbrain web`` group."""
    app.command("crs-test")(crs_test)
    app.command("rules-check")(rules_check)
