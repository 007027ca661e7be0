"""``fsbrain host`` brute-force commands: scan, follow, bans, firewall, filter-test, filters.

Thin: each command calls the same functions the API uses (:mod:`.logparse_scan`, :mod:`.bruteforce`,
:mod:`.bans`, :mod:`.firewall`). Errors print one ``error:`` line and exit with status 2, no traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from fsbrain.core.errors import FsbrainError

F = TypeVar("F", bound=Callable[..., Any])


def _errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FsbrainError as exc:
            typer.secho(f"error: {exc.message}", fg="red", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _detector(jails: Path | None, state: str, redis_url: str | None) -> Any:
    from fsbrain.domains.host.bruteforce import BruteForceDetector
    from fsbrain.domains.host.jails import JailsConfig
    from fsbrain.state import make_backend

    cfg = JailsConfig.load(jails)
    if state == "redis":
        backend = make_backend("redis", url=redis_url or "redis://127.0.0.1:6379/0", allowed_lateness=86400.0)
    else:
        backend = make_backend("memory", allowed_lateness=86400.0)
    return BruteForceDetector(cfg, backend=backend)


def _banlist(allowlist: list[str] | None, backend: str | None) -> Any:
    from fsbrain.domains.host.bans import BanList

    return BanList(allowlist=allowlist, backend=backend)


def _print_jsonl(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        sys.stdout.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _summary_table(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"files (filter {report.filter})")
    for col in ("file", "lines", "failure", "success", "ignored", "missed", "nodate", "truncated", "binary"):
        t.add_column(col, justify="left" if col == "file" else "right")
    for f in report.files:
        t.add_row(*(str(f.get(c, 0)) for c in ("file", "lines", "failure", "success", "ignored", "missed",
                                                  "nodate", "truncated", "binary")))
    con.print(t)
    a = Table(title=f"alerts ({len(report.alerts)})")
    for col in ("severity", "labels", "entity", "title"):
        a.add_column(col)
    for al in sorted(report.alerts, key=lambda x: -x.severity)[:50]:
        a.add_row(str(al.severity), ",".join(al.labels), f"{al.entity_type}:{al.entity}", al.title)
    con.print(a)
    if report.hosts:
        h = Table(title="top failing hosts")
        h.add_column("host")
        h.add_column("failures", justify="right")
        for host, n in report.hosts.most_common(10):
            h.add_row(host, str(n))
        con.print(h)
    for e in report.errors:
        con.print(f"[red]problem:[/red] {e}")


def register(app: typer.Typer) -> None:
    """Attach the brute-force commands to the ``host`` command group."""
    bans_app = typer.Typer(help="Ban list: list, add, remove.", no_args_is_help=True)
    app.add_typer(bans_app, name="bans")

    @app.command("scan")
    @_errors
    def scan(logfile: list[Path] = typer.Argument(..., help="Log files (plain or .gz)."),
             fmt: str = typer.Option("table", "--format", help="jsonl (alerts, one per line) or table."),
             filter_name: str | None = typer.Option(None, "--filter", help="Filter name, e.g. sshd[mode=aggressive]; default: guessed."),
             filter_dir: list[Path] = typer.Option([], "--filter-dir", help="Directory of your own fail2ban filter files."),
             jails: Path | None = typer.Option(None, "--jails", help="Jails YAML (default: shipped jails.yaml)."),
             state: str = typer.Option("memory", "--state", help="memory or redis."),
             redis_url: str | None = typer.Option(None, "--redis-url"),
             timezone: str | None = typer.Option(None, "--timezone", help="Zone of dates without one (default: local)."),
             ban: bool = typer.Option(False, "--ban", help="Add the resulting bans to the ban list."),
             ban_backend: str | None = typer.Option(None, "--ban-backend", help="store, json or memory.")) -> None:
        """Scan log files offline and report brute-force alerts."""
        from fsbrain.domains.host.dates import zone
        from fsbrain.domains.host.logparse_scan import scan_files

        if fmt not in ("jsonl", "table"):
            raise typer.BadParameter("--format must be jsonl or table")
        det = _detector(jails, state, redis_url)
        tz = zone(timezone or det.config.timezone)
        report = scan_files(list(logfile), filter_spec=filter_name, filter_dirs=list(filter_dir), detector=det, tz=tz)
        if ban:
            _banlist(det.config.allowlist, ban_backend).apply_alerts(report.alerts)
        if fmt == "jsonl":
            _print_jsonl([a.to_dict() for a in report.alerts])
            typer.echo(json.dumps({"summary": report.to_dict()}, default=str), err=True)
        else:
            _summary_table(report)
        if report.errors and not report.files:
            raise typer.Exit(2)

    @app.command("follow")
    @_errors
    def follow(logfile: Path = typer.Argument(..., help="Log file to follow (rotation and truncation handled)."),
               filter_name: str | None = typer.Option(None, "--filter"),
               filter_dir: list[Path] = typer.Option([], "--filter-dir"),
               jails: Path | None = typer.Option(None, "--jails"),
               state: str = typer.Option("memory", "--state"),
               redis_url: str | None = typer.Option(None, "--redis-url"),
               from_start: bool = typer.Option(False, "--from-start", help="Read existing content first."),
               ban: bool = typer.Option(False, "--ban", help="Add bans to the ban list as alerts arrive."),
               ban_backend: str | None = typer.Option(None, "--ban-backend"),
               interval: float = typer.Option(0.5, "--interval", min=0.01),
               max_seconds: float | None = typer.Option(None, "--max-seconds", help="Stop after this long.")) -> None:
        """Follow a live log file and print alerts as JSON lines."""
        from fsbrain.domains.host.bruteforce import AuthEvent
        from fsbrain.domains.host.follow import FileFollower
        from fsbrain.domains.host.logparse_scan import guess_filter, make_filter, sample_lines

        det = _detector(jails, state, redis_url)
        spec = filter_name or (guess_filter(sample_lines(logfile), list(filter_dir)) if logfile.exists() else "sshd")
        flt = make_filter(spec, list(filter_dir))
        jail = det.config.jail_for_filter(spec).name
        bans = _banlist(det.config.allowlist, ban_backend) if ban else None
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        follower = FileFollower(logfile, from_start=from_start)
        try:
            for line in follower.follow(interval=interval, stop=lambda: deadline is not None and time.monotonic() > deadline):
                if b"\x00" in line:
                    continue
                res = flt.process(line)
                if res.status in ("failure", "success") and res.host:
                    alerts = det.observe(AuthEvent(time=res.time or time.time(), status=res.status, host=res.host,
                                                   user=res.user, jail=jail, attempts=res.attempts))
                    if bans is not None:
                        bans.apply_alerts(alerts)
                    _print_jsonl([a.to_dict() for a in alerts])
        finally:
            follower.close()
            typer.echo(json.dumps({"summary": {**flt.counts, **follower.counts}}), err=True)

    @bans_app.command("list")
    @_errors
    def bans_list(backend: str | None = typer.Option(None, "--backend", help="store, json or memory."),
                  as_json: bool = typer.Option(False, "--json")) -> None:
        """Show bans in force."""
        bl = _banlist(None, backend)
        rows = [b.to_dict() for b in bl.active()]
        if as_json:
            _print_jsonl(rows)
            return
        for r in rows:
            until = "for ever" if r["until"] is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["until"]))
            typer.echo(f"{r['target']:<40} until {until:<20} {r['jail']:<14} {r['reason']}")
        if not rows:
            typer.echo("no bans in force")

    @bans_app.command("add")
    @_errors
    def bans_add(target: str = typer.Argument(..., help="IP address or CIDR network."),
                 seconds: float | None = typer.Option(3600.0, "--seconds", help="Ban length; 0 = for ever."),
                 reason: str = typer.Option("manual ban", "--reason"),
                 jails: Path | None = typer.Option(None, "--jails", help="Its allow-list is honoured."),
                 backend: str | None = typer.Option(None, "--backend")) -> None:
        """Ban an address or network."""
        from fsbrain.domains.host.jails import JailsConfig

        bl = _banlist(JailsConfig.load(jails).allowlist, backend)
        b = bl.add(target, seconds=seconds or None, reason=reason)
        typer.echo(json.dumps(b.to_dict()))

    @bans_app.command("remove")
    @_errors
    def bans_remove(target: str = typer.Argument(...),
                    backend: str | None = typer.Option(None, "--backend")) -> None:
        """Lift a ban."""
        b = _banlist(None, backend).remove(target)
        typer.echo(json.dumps(b.to_dict()))

    @app.command("firewall")
    @_errors
    def firewall(backend: str = typer.Option("nft", "--backend", help="nft or iptables."),
                 apply_: bool = typer.Option(False, "--apply", help="Run the commands (default: print them)."),
                 ban_backend: str | None = typer.Option(None, "--ban-backend")) -> None:
        """Print (or apply with --apply) firewall commands for the bans in force."""
        from fsbrain.domains.host import firewall as fw

        cmds = fw.firewall_commands(_banlist(None, ban_backend).active(), backend)
        if not apply_:
            typer.echo(fw.render(cmds))
            return
        failed = [r for r in fw.apply(cmds) if not r["ok"]]
        for r in failed:
            typer.secho(f"failed: {r['cmd']}: {r['error']}", fg="red", err=True)
        typer.echo(f"applied {len(cmds) - len(failed)} of {len(cmds)} commands")
        if failed:
            raise typer.Exit(1)

    @app.command("filter-test")
    @_errors
    def filter_test(filter_name: str = typer.Argument(..., help="Filter name/spec or path to a .conf file."),
                    logfile: Path = typer.Argument(...),
                    filter_dir: list[Path] = typer.Option([], "--filter-dir"),
                    timezone: str | None = typer.Option(None, "--timezone"),
                    as_json: bool = typer.Option(False, "--json")) -> None:
        """Like fail2ban-regex: how many lines a filter matches, ignores and misses."""
        from fsbrain.domains.host.dates import zone
        from fsbrain.domains.host.logparse_scan import scan_files

        report = scan_files([logfile], filter_spec=filter_name, filter_dirs=list(filter_dir), tz=zone(timezone))
        out = report.to_dict()
        if as_json:
            typer.echo(json.dumps(out, default=str))
        else:
            t = out["totals"]
            typer.echo(f"Filter: {report.filter} (regexes on RE2: {report.engines.get('re2', 0)}, "
                       f"bounded Python re fallback: {report.engines.get('python_re', 0)})")
            typer.echo(f"Lines: {t.get('lines', 0)}, matched {t.get('failure', 0)}, successes {t.get('success', 0)}, "
                       f"ignored {t.get('ignored', 0)}, helper lines {t.get('nofail', 0)}, missed {t.get('missed', 0)}")
            typer.echo(f"Skipped or cut: no date {t.get('nodate', 0)}, truncated {t.get('truncated', 0)}, "
                       f"binary {t.get('binary', 0)}  [{out['seconds']} s]")
            for e in report.errors:
                typer.secho(f"problem: {e}", fg="red", err=True)
        if report.errors:
            raise typer.Exit(2)

    @app.command("filters")
    @_errors
    def filters_list() -> None:
        """List the shipped filters."""
        from fsbrain.domains.host.fail2ban import shipped_filters
        from fsbrain.domains.host.logparse_windows import NAME

        for name in [*shipped_filters(), NAME]:
            typer.echo(name)
