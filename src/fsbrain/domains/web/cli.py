"""``fsbrain web inspect | scan | proxy | train``: the web pillar from the command line.

``inspect`` reads JSON lines ``{"method","uri","headers","body"}`` (``-`` for stdin) and writes one verdict
per input line, in order, with the keys ``attack, score, labels, rules, reasons``, and ``limits_hit`` when the
request exceeded an inspection limit (what lies beyond it was not inspected); ``--explain`` adds the model's
per-parameter scores, the rule/model split and latency. A line that is not a
valid request produces ``{"attack": false, "score": 0, "labels": [], "rules": [], "reasons": [],
"error": "line N: <problem>"}`` and the command exits with status 1 after processing every line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer

from fsbrain.core.errors import FsbrainError, InputError

PARANOIA = typer.Option(1, "--paranoia", min=1, max=4, help="Paranoia level 1..4.")
CRS = typer.Option(None, "--crs", help="Load OWASP CRS from this folder instead of fsbrain's own rules.")
MODEL = typer.Option(None, "--model", help="Model file from `fsbrain web train` (default: the shipped model).")
NO_MODEL = typer.Option(False, "--no-model", help="Rules only.")


def _inspector(paranoia: int, crs: Path | None, model: Path | None, no_model: bool) -> Any:
    from fsbrain.domains.web.inspector import WebInspector
    from fsbrain.speedups import settle_heap

    insp = WebInspector(paranoia=paranoia, rules=str(crs) if crs else None,
                        model=False if no_model else (str(model) if model else None))
    settle_heap()  # full garbage collections no longer walk the loaded rules (pauses of ~10-20 ms with CRS)
    return insp


def _open_lines(path: str) -> Any:
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc


def inspect_lines(lines: Any, inspector: Any, *, explain: bool = False) -> tuple[list[dict[str, Any]], int]:
    """Verdicts for JSON request lines; returns ``(verdicts, number of bad lines)`` (blank lines skipped)."""
    from fsbrain.domains.web.inspector import public_verdict

    out, bad = [], 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise InputError(f"a request must be a JSON object, got {type(req).__name__}")
            v = inspector.inspect(req)
            out.append(v if explain else public_verdict(v))
        except ValueError as exc:
            bad += 1
            out.append({"attack": False, "score": 0, "labels": [], "rules": [], "reasons": [],
                        "error": f"line {n}: invalid JSON: {exc}"})
        except FsbrainError as exc:
            bad += 1
            out.append({"attack": False, "score": 0, "labels": [], "rules": [], "reasons": [],
                        "error": f"line {n}: {exc.message}"})
    return out, bad


def register(app: typer.Typer) -> None:
    """Add the web commands to ``app`` (the ``fsbrain web`` group)."""

    @app.command("inspect")
    def inspect_cmd(file: str = typer.Argument(..., help="JSON-lines requests, or - for stdin."),
                    paranoia: int = PARANOIA, crs: Path | None = CRS, model: Path | None = MODEL,
                    no_model: bool = NO_MODEL,
                    explain: bool = typer.Option(False, "--explain", help="Add model scores, limits, latency.")
                    ) -> None:
        """Inspect HTTP requests (JSON lines) and print one verdict per line."""
        insp = _inspector(paranoia, crs, model, no_model)
        with _open_lines(file) as fh:
            verdicts, bad = inspect_lines(fh, insp, explain=explain)
        for v in verdicts:
            sys.stdout.write(json.dumps(v, ensure_ascii=False, default=str) + "\n")
        if bad:
            typer.secho(f"{bad} bad line(s); see the 'error' verdicts", fg="red", err=True)
            raise typer.Exit(1)

    @app.command("scan")
    def scan_cmd(access_log: str = typer.Argument(..., help="nginx/Apache combined log or JSON lines; - for stdin."),
                 fmt: str = typer.Option("table", "--format", help="jsonl (alerts then a summary line) or table."),
                 paranoia: int = PARANOIA, crs: Path | None = CRS, model: Path | None = MODEL,
                 no_model: bool = NO_MODEL,
                 redis: str | None = typer.Option(None, "--redis", help="Keep bot/CC state in Redis at this URL.")
                 ) -> None:
        """Scan an access log: attack, bot and CC-flood alerts plus a summary."""
        from fsbrain.domains.web.bots import BotDetector
        from fsbrain.domains.web.cc import CCDetector
        from fsbrain.domains.web.logs import scan_lines

        if fmt not in ("jsonl", "table"):
            raise InputError(f"--format must be jsonl or table, got {fmt!r}")
        insp = _inspector(paranoia, crs, model, no_model)
        if redis:
            from fsbrain.state import make_backend

            bots, cc = BotDetector(make_backend("redis", url=redis)), CCDetector.from_redis(redis)
        else:
            bots, cc = BotDetector(), CCDetector()
        with _open_lines(access_log) as fh:
            res = scan_lines(fh, inspector=insp, bots=bots, cc=cc)
        if fmt == "jsonl":
            for a in res.alerts:
                sys.stdout.write(json.dumps(a.to_dict(), ensure_ascii=False, default=str) + "\n")
            sys.stdout.write(json.dumps({"summary": res.summary}, ensure_ascii=False, default=str) + "\n")
            return
        _print_table(res)

    @app.command("proxy")
    def proxy_cmd(upstream: str = typer.Option(..., "--upstream", help="URL of the protected site."),
                  listen: str = typer.Option("127.0.0.1:8080", "--listen", help="HOST:PORT to listen on."),
                  mode: str = typer.Option("detect", "--mode", help="detect (log only) or block."),
                  paranoia: int = PARANOIA, crs: Path | None = CRS, model: Path | None = MODEL,
                  no_model: bool = NO_MODEL,
                  cc: bool = typer.Option(False, "--cc", help="Enable CC-flood decisions (in-process state)."),
                  redis: str | None = typer.Option(None, "--redis", help="CC state in Redis (shared by proxies)."),
                  workers: int = typer.Option(1, "--workers", help="Worker processes sharing the port "
                                              "(about one per core; CC state is shared only with --redis)."),
                  server: str = typer.Option("fast", "--server", help="fast (raw asyncio + httptools, default) "
                                             "or asgi (uvicorn + the ASGI middleware)."),
                  verdict_cache: int | None = typer.Option(
                      None, "--verdict-cache", help="Verdicts remembered for repeated identical requests (0: off; "
                      "default $FSBRAIN_WEB_VERDICT_CACHE, else 4096).")
                  ) -> None:
        """Run the reverse proxy with the WAF in front of --upstream."""
        from fsbrain.domains.web.cc import CCDetector
        from fsbrain.domains.web.middleware import MODES
        from fsbrain.domains.web.proxy import SERVERS, ReverseProxyApp, parse_listen, serve

        if mode not in MODES:
            raise InputError(f"--mode must be one of {MODES}, got {mode!r}")
        if server not in SERVERS:
            raise InputError(f"--server must be one of {SERVERS}, got {server!r}")
        parse_listen(listen)
        if not 1 <= workers <= 256:
            raise InputError(f"--workers must be 1..256, got {workers}")
        if verdict_cache is not None and not 0 <= verdict_cache <= 10_000_000:
            raise InputError(f"--verdict-cache must be 0..10000000 verdicts, got {verdict_cache}")
        ReverseProxyApp(upstream)  # validates --upstream before anything starts
        typer.secho(f"fsbrain web proxy: http://{listen} -> {upstream} (mode {mode}, paranoia {paranoia}, "
                    f"{workers} worker{'s' if workers > 1 else ''}, {server} server)", err=True)
        if workers > 1:
            serve(upstream, listen=listen, mode=mode, paranoia=paranoia, workers=workers,
                  worker_options={"crs": str(crs) if crs else None, "model": str(model) if model else None,
                                  "no_model": no_model, "cc": cc, "redis": redis}, server=server,
                  verdict_cache=verdict_cache)
            return
        detector = CCDetector.from_redis(redis) if redis else (CCDetector() if cc else None)
        insp = _inspector(paranoia, crs, model, no_model)
        serve(upstream, listen=listen, mode=mode, inspector=insp, cc=detector, server=server,
              verdict_cache=verdict_cache)

    @app.command("train")
    def train_cmd(benign: Path = typer.Option(..., "--benign", help="Your benign traffic: JSON-lines requests "
                                              "or one parameter value per line."),
                  attacks: Path | None = typer.Option(None, "--attacks", help="Extra attack values: "
                                                      "class<TAB>value lines (or plain lines = sqli)."),
                  corpus: Path | None = typer.Option(None, "--corpus", help="Folder with libinjection/ and "
                                                     "crs-regression/ (default: $FSBRAIN_SHARED_DATA or ../shared/data)."),
                  out: Path = typer.Option(Path("fsbrain-web-model.json.gz"), "--out", help="Model file to write."),
                  weight: float = typer.Option(3.0, "--weight", help="Weight of your benign values vs shipped ones.")
                  ) -> None:
        """Retrain the n-gram model with your own benign traffic (and optional attack values)."""
        from fsbrain.domains.web.ml import retrain

        summary = retrain(benign=benign, attacks=attacks, corpus=corpus or _default_corpus(), out=out,
                          weight=weight)
        sys.stdout.write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")


def _default_corpus() -> Path | None:
    env = os.environ.get("FSBRAIN_SHARED_DATA")
    for cand in ([Path(env)] if env else []) + [Path.cwd().parent / "shared" / "data", Path("../shared/data")]:
        if (cand / "libinjection").is_dir():
            return cand
    return None


def _print_table(res: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    s = res.summary
    con.print(f"[bold]{s['lines']}[/] lines, {s['parsed']} parsed, {s['bad_lines']} bad; "
              f"{s['requests']} requests, {s['attack_requests']} attacks; {len(res.alerts)} alerts")
    for b in s["bad_line_samples"][:10]:
        con.print(f"  [red]line {b['line']}[/]: {b['error']}")
    t = Table(title="Top attackers")
    for col in ("ip", "attacks", "labels"):
        t.add_column(col)
    for row in s["top_attackers"]:
        t.add_row(row["ip"], str(row["attacks"]), ", ".join(f"{k}:{v}" for k, v in row["labels"].items()))
    con.print(t)
    t = Table(title="Attack types per hour")
    t.add_column("hour")
    t.add_column("labels")
    for hour, labs in s["attack_types_per_hour"].items():
        t.add_row(hour, ", ".join(f"{k}:{v}" for k, v in labs.items()))
    con.print(t)
    con.print(f"Bots: {s['bots']['bad_clients']} bad clients {s['bots']['by_category']}; "
              f"good crawlers (verify by reverse DNS): {s['bots']['good_bot_requests']}")
    t = Table(title="CC floods")
    for col in ("entity", "action", "requests"):
        t.add_column(col)
    for f in s["floods"]:
        t.add_row(f"{f['entity_type']} {f['entity']}", f["action"], str(f["requests"]))
    con.print(t)
    if s["flash_crowd_requests"]:
        con.print(f"Flash crowd (not blocked): {s['flash_crowd_requests']} requests")
    if s.get("limits_hit"):
        con.print("[yellow]Only partly inspected[/] (beyond a limit): "
                  + ", ".join(f"{k}: {v} requests" for k, v in s["limits_hit"].items()))
