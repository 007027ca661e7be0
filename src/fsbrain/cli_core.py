"""Core commands: serve, policy check, backtest, decide, lists, keys, labels."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fsbrain.core.errors import FsbrainError, InputError, PolicyError

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _fail(msg: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {msg}", highlight=False)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    policy = typer.Typer(help="Validate and inspect policies.", no_args_is_help=True)
    policy.command("check")(policy_check)
    app.add_typer(policy, name="policy")
    app.command("backtest")(backtest)
    app.command("decide")(decide)
    lists = typer.Typer(help="Black / white / grey lists.", no_args_is_help=True)
    lists.command("add")(lists_add)
    lists.command("list")(lists_list)
    lists.command("remove")(lists_remove)
    app.add_typer(lists, name="lists")
    keys = typer.Typer(help="API keys (stored hashed).", no_args_is_help=True)
    keys.command("create")(keys_create)
    keys.command("list")(keys_list)
    keys.command("revoke")(keys_revoke)
    app.add_typer(keys, name="keys")
    app.command("labels")(labels)
    events = typer.Typer(help="Event files: validate and pseudonymise.", no_args_is_help=True)
    events.command("prepare")(events_prepare)
    app.add_typer(events, name="events")


ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML configuration file.")]


def _settings(config: Path | None, **kw: Any) -> Any:
    from fsbrain.config import load_settings

    try:
        return load_settings(config, **kw)
    except InputError as exc:
        _fail(exc.message)


def _platform(config: Path | None, **kw: Any) -> Any:
    from fsbrain.service import Platform

    try:
        return Platform(_settings(config, **kw))
    except FsbrainError as exc:
        _fail(exc.message)


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    config: ConfigOpt = None,
    state: Annotated[str | None, typer.Option(help="State backend: memory or redis.")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL for --state redis.")] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default SQLite in FSBRAIN_HOME).")] = None,
    policy: Annotated[list[Path] | None, typer.Option(help="Live policy file (repeatable).")] = None,
    shadow: Annotated[list[Path] | None, typer.Option(help="Shadow policy file (repeatable).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (needs --state redis when > 1).")] = None,
    auth: Annotated[bool | None, typer.Option("--auth/--no-auth", help="Require API keys (forced on off loopback).")] = None,
    demo: Annotated[bool, typer.Option(help="Load demo data (simulated applications, list entries) on first start.")] = False,
    writer: Annotated[str | None, typer.Option(
        help="Where decisions are committed: 'auto' (default: the event 'loop' for a SQLite file, a child "
             "'process' for PostgreSQL), 'loop', 'process' or a 'thread'.")] = None,
) -> None:
    """Serve the API (OpenAPI docs at /docs)."""
    settings = _settings(config, host=host, port=port, state_type=state, redis_url=redis_url,
                         database_url=database_url, policies=policy or None, shadow_policies=shadow or None,
                         workers=workers, auth=auth, decision_writer=writer)
    if "decision_writer" not in settings.model_fields_set:
        settings = settings.model_copy(update={"decision_writer": "auto"})
    if settings.workers > 1 and settings.state.type == "memory":
        _fail("--workers > 1 needs a shared state backend: add --state redis")
    if settings.auth_required:
        console.print("API-key authentication is ON: create a key with `fsbrain keys create NAME`")
    if demo:
        from fsbrain.demo import load_demo
        from fsbrain.service import Platform

        platform = Platform(settings)
        load_demo(platform, console=console)
        if settings.workers == 1:
            _banner(settings)
            from fsbrain.server import run

            run(settings, platform=platform)
            return
        platform.close()
    _banner(settings)
    from fsbrain.server import run

    run(settings)


def _banner(settings: Any) -> None:
    console.print(f"fsbrain serving on http://{settings.host}:{settings.port}  (docs: /docs, metrics: /metrics)\n"
                  f"  database: {settings.db_url}\n  state: {settings.state.type}")


def policy_check(files: Annotated[list[Path], typer.Argument(help="Policy files.")],
                 json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Validate policy files; exit 1 and print file:line: problem for each error."""
    from fsbrain.engine.policy import load_policy

    results = []
    bad = False
    for f in files:
        try:
            pol = load_policy(f)
            results.append({"file": str(f), "valid": True, "policy": pol.ref, "event_type": pol.event_type,
                            "rules": len(pol.rules), "features": len(pol.features)})
        except PolicyError as exc:
            bad = True
            results.append({"file": str(f), "valid": False, "message": exc.message, "problems": exc.problems})
    if json_out:
        out.print_json(json.dumps(results, ensure_ascii=False))
    else:
        for r in results:
            if r["valid"]:
                out.print(f"[green]ok[/green] {r['file']}: {r['policy']} ({r['event_type']}), "
                          f"{r['rules']} rules, {r['features']} features", highlight=False)
            else:
                for p in r["problems"] or [{"line": None, "message": r["message"]}]:
                    loc = f"{r['file']}:{p['line']}" if p.get("line") else r["file"]
                    console.print(f"[red]{loc}[/red]: {p['message']}", highlight=False)
    if bad:
        raise typer.Exit(1)


def backtest(
    events: Annotated[Path, typer.Option("--events", help="Labelled events: .jsonl, .csv or .parquet, in time order.")],
    policy: Annotated[Path | None, typer.Option("--policy", help="Policy file (default: the shipped credit policy).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    workers: Annotated[int, typer.Option(help="Processes for validation/pseudonymisation.")] = 2,
    rule_workers: Annotated[int, typer.Option(
        help="Processes that evaluate rules and tally (features stay in order in the main process); "
             "0 runs everything in one process. Same report either way.")] = 1,
    method: Annotated[str, typer.Option(
        help="auto: compute windowed features for the whole history at once (columnar) where that gives the "
             "identical report (prepared events in a JSON-lines file), else replay event by event "
             "(streaming); columnar or streaming to insist. --workers processes run the columnar passes.")] = "auto",
) -> None:
    """Replay labelled history through a policy; report precision/recall per label, outcome mix, per-rule value."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fsbrain.engine.backtest import backtest_file
    from fsbrain.engine.policy import default_policy_path, load_policy

    try:
        pol = load_policy(policy or default_policy_path())
        if not events.is_file():
            raise InputError(f"{events}: no such file")
        with Progress(TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=json_out or not sys.stderr.isatty()) as prog:
            task = prog.add_task("events", total=None)
            rep = backtest_file(pol, events, method=method, workers=workers, rule_workers=max(0, rule_workers),
                                progress=lambda n: prog.advance(task, n))
    except FsbrainError as exc:
        _fail(exc.message)
    data = rep.to_dict()
    if json_out:
        out.print_json(json.dumps(data, ensure_ascii=False))
        return
    _print_backtest(data)


def _print_backtest(d: dict[str, Any]) -> None:
    out.print(f"[bold]{d['policy']}[/bold]: {d['events']} events in {d['seconds']} s "
              f"({d['events_per_second']} events/s), {d['invalid_events']} invalid; features computed "
              f"{d.get('method', 'streaming')}", highlight=False)
    if d.get("method_note"):
        out.print(f"note: {d['method_note']}", highlight=False)
    t = Table(title="Per label (label predicted with outcome above approve)")
    for c in ("label", "support", "precision", "recall", "F1", "caught (any label)"):
        t.add_column(c, justify="right" if c != "label" else "left")
    for lab, v in d["labels"].items():
        t.add_row(lab, str(v["support"]), f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}",
                  "" if v["caught_rate"] is None else f"{v['caught_rate']:.3f}")
    out.print(t)
    t = Table(title="Outcomes")
    t.add_column("outcome")
    t.add_column("count", justify="right")
    t.add_column("share", justify="right")
    for k, v in d["outcomes"].items():
        t.add_row(k, str(v), f"{d['outcome_share'][k]:.3f}")
    out.print(t)
    out.print(f"review rate {d['review_rate']:.3f}; fraud caught {d['fraud_caught_rate']}; "
              f"normal flagged {d['normal_flagged_rate']}")
    t = Table(title="Rules")
    for c in ("rule", "label", "hits", "precision (fraud)", "precision (label)", "unique catches", "errors"):
        t.add_column(c, justify="left" if c in ("rule", "label") else "right")
    for rid, v in d["rules"].items():
        t.add_row(rid, v["label"] or "", str(v["hits"]), f"{v['precision_fraud']:.3f}",
                  f"{v['precision_label']:.3f}", str(v["unique_catches"]), str(v["errors"]))
    out.print(t)


def decide(
    event_type: Annotated[str, typer.Argument(help="Event type, e.g. loan_application.")],
    file: Annotated[Path, typer.Argument(help="One JSON object, or JSON lines / CSV / Parquet of events.")],
    config: ConfigOpt = None,
) -> None:
    """Decide on events from a file with the configured platform (stored like API decisions); JSON lines out."""
    from fsbrain.io import read_records

    platform = _platform(config)
    failed = 0
    try:
        recs = read_records(file)
        for n, rec in enumerate(recs, 1):
            try:
                d, replayed = platform.decide(event_type, rec)
                row = d.to_dict(with_features=False)
                row["replayed"] = replayed
            except InputError as exc:
                failed += 1
                row = {"record": n, "error": exc.code, "message": exc.message}
            out.print_json(json.dumps(row, ensure_ascii=False)) if sys.stdout.isatty() else print(
                json.dumps(row, ensure_ascii=False))
    except FsbrainError as exc:
        _fail(exc.message)
    finally:
        platform.close()
    if failed:
        raise typer.Exit(1)


def lists_add(
    list_type: Annotated[str, typer.Argument(help="black, white or grey")],
    entity_type: Annotated[str, typer.Argument(help="id_number, phone, bank_card, device_id, ip, account_id, …")],
    value: Annotated[str, typer.Argument(help="Raw value (identity values are stored only as keyed hashes)")],
    reason: Annotated[str, typer.Option(help="Why it is listed.")] = "",
    source: Annotated[str, typer.Option(help="Where the listing came from.")] = "cli",
    ttl: Annotated[str | None, typer.Option(help="Expire after e.g. 30d, 12h.")] = None,
    actor: Annotated[str, typer.Option(help="Who makes the change (audit log).")] = "cli",
    config: ConfigOpt = None,
) -> None:
    """Add a list entry."""
    from fsbrain.engine.spec import parse_duration

    platform = _platform(config)
    try:
        expires = None
        if ttl:
            try:
                expires = time.time() + parse_duration(ttl)
            except ValueError as exc:
                raise InputError(f"--ttl: {exc}") from None
        e = platform.add_list_entry(list_type=list_type, entity_type=entity_type, value=value, reason=reason,
                                    source=source, expires_at=expires, actor=actor)
        out.print_json(json.dumps(e, ensure_ascii=False, default=str))
    except FsbrainError as exc:
        _fail(exc.message)
    finally:
        platform.close()


def lists_list(list_type: Annotated[str | None, typer.Option(help="black, white or grey")] = None,
               entity_type: Annotated[str | None, typer.Option()] = None,
               config: ConfigOpt = None) -> None:
    """Show list entries (masked)."""
    platform = _platform(config)
    try:
        items = platform.store.list_entries(list_type=list_type, entity_type=entity_type, limit=1000)
    except FsbrainError as exc:
        _fail(exc.message)
    finally:
        platform.close()
    t = Table()
    for c in ("id", "list", "entity", "value", "reason", "source", "expires"):
        t.add_column(c)
    for e in items:
        exp = e.get("expires_at")
        t.add_row(str(e.get("entry_id")), e["list_type"], e["entity_type"], e.get("masked", ""), e.get("reason", ""),
                  e.get("source", ""), time.strftime("%Y-%m-%d %H:%M", time.gmtime(exp)) if exp else "never")
    out.print(t)


def lists_remove(entry_id: Annotated[str, typer.Argument()], actor: Annotated[str, typer.Option()] = "cli",
                 config: ConfigOpt = None) -> None:
    """Remove a list entry by id."""
    platform = _platform(config)
    try:
        platform.remove_list_entry(entry_id, actor)
        out.print(f"removed {entry_id}")
    except FsbrainError as exc:
        _fail(exc.message)
    finally:
        platform.close()


def keys_create(name: Annotated[str, typer.Argument(help="Key name (shown in the audit log).")],
                actor: Annotated[str, typer.Option()] = "cli", config: ConfigOpt = None) -> None:
    """Create an API key; the raw key is printed once and stored only as a hash."""
    platform = _platform(config)
    try:
        raw = platform.store.create_api_key(name, actor)
        out.print(raw)
    except FsbrainError as exc:
        _fail(exc.message)
    finally:
        platform.close()


def keys_list(config: ConfigOpt = None) -> None:
    """List API keys (names and dates, never the keys)."""
    platform = _platform(config)
    try:
        for k in platform.store.list_api_keys():
            out.print(json.dumps(k, default=str))
    finally:
        platform.close()


def keys_revoke(name: Annotated[str, typer.Argument()], actor: Annotated[str, typer.Option()] = "cli",
                config: ConfigOpt = None) -> None:
    """Revoke an API key."""
    platform = _platform(config)
    try:
        platform.store.revoke_api_key(name, actor)
        out.print(f"revoked {name}")
    except FsbrainError as exc:
        _fail(exc.message)
    finally:
        platform.close()


def events_prepare(
    events: Annotated[Path, typer.Option("--events", help="Raw events: .jsonl, .csv or .parquet.")],
    out_file: Annotated[Path, typer.Option("--out", help="Prepared events (JSON lines).")],
    workers: Annotated[int, typer.Option(help="Processes.")] = 2,
    config: ConfigOpt = None,
) -> None:
    """Validate and pseudonymise raw events with this installation's key (raw identities never leave).

    The output replays through `fsbrain backtest` without re-validating, like the decision log does.
    """
    from fsbrain.core.pii import load_or_create_key
    from fsbrain.engine.backtest import prepare_records
    from fsbrain.io import read_records

    settings = _settings(config)
    ok = bad = 0
    tmp = out_file.with_name(out_file.name + ".part")
    try:
        key = load_or_create_key(settings.home / "pii.key")
        with open(tmp, "wb") as fh:
            import orjson

            for rec in prepare_records(read_records(events), key, workers=workers):
                if "error" in rec:
                    bad += 1
                    console.print(f"record {rec['record']}: {rec['error']}", highlight=False)
                    continue
                fh.write(orjson.dumps(rec) + b"\n")
                ok += 1
        tmp.replace(out_file)
    except FsbrainError as exc:
        tmp.unlink(missing_ok=True)
        _fail(exc.message)
    console.print(f"prepared {ok} events into {out_file}; {bad} invalid")
    if bad:
        raise typer.Exit(1)


def labels(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The risk-label taxonomy."""
    from fsbrain.core.labels import all_labels

    labs = all_labels()
    if json_out:
        out.print_json(json.dumps([{"id": x.id, "en": x.en, "zh": x.zh, "pillar": x.pillar} for x in labs],
                                  ensure_ascii=False))
        return
    t = Table()
    for c in ("id", "English", "中文", "pillar", "severity"):
        t.add_column(c)
    for x in labs:
        t.add_row(x.id, x.en, x.zh, x.pillar, str(x.severity))
    out.print(t)
