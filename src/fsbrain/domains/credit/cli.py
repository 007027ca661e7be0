"""``fsbrain simulate credit``: write a labelled population of loan applications.

Registered on the ``simulate`` command group by :mod:`fsbrain.cli` through :func:`register`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fsbrain.core.errors import FsbrainError, InputError

__all__ = ["register"]


def _parse_start(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"start: not a date (YYYY-MM-DD): {value!r}") from None


def credit(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.jsonl, .csv or .parquet).")],
    n: Annotated[int, typer.Option("--n", help="Number of applications.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same output).")] = 0,
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet (default: from the "
                                                              "file suffix, else jsonl).")] = None,
    days: Annotated[int, typer.Option("--days", help="Length of the simulated period in days.")] = 28,
    start: Annotated[str | None, typer.Option("--start", help="First day, YYYY-MM-DD (China time); "
                                                               "default 2026-10-01.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Simulate loan applications with ground-truth labels (normal and five fraud patterns)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fsbrain.domains.credit.sim_io import simulate_to_file

    err = Console(stderr=True)
    try:
        first = _parse_start(start)
        with Progress(TextColumn("simulate credit"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, disable=json_out, transient=True) as prog:
            task = prog.add_task("applications", total=max(n, 0))
            summary = simulate_to_file(out, n=n, seed=seed, days=days, start=first, fmt=fmt,
                                       progress=lambda k: prog.advance(task, k))
    except FsbrainError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(2) from None
    if json_out:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
        return
    _print_summary(summary)


def _print_summary(s: dict[str, Any]) -> None:
    con = Console()
    table = Table(title=f"{s['n']:,} applications → {s['out']} ({s['format']})")
    for col in ("label", "applications", "share", "groups"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for label, v in s["labels"].items():
        table.add_row(label, f"{v['count']:,}", f"{v['share']:.2%}", f"{v['groups']:,}" if v["groups"] else "")
    con.print(table)
    con.print(f"{s['seconds']} s ({s['per_second']:,.0f} applications/s), {s['bytes'] / 1e6:.1f} MB, "
              f"seed {s['seed']}, {s['days']} days", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``credit`` to the ``simulate`` command group."""
    app.command("credit")(credit)
