"""The ``fsbrain`` command. Thin: every command calls the same engine API the service uses.

Commands come from modules that define ``register(app: typer.Typer) -> None``; each is attached either to
the top-level app or to a named command group (``fsbrain web ...``, ``fsbrain host ...``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer

app = typer.Typer(help="fsbrain: financial security brain", no_args_is_help=True, add_completion=False)

GROUP_HELP = {
    "simulate": "Generate realistic labelled event streams.",
    "web": "Web security: exploits, bad bots and CC floods.",
    "host": "Host security: brute force, security baseline, trojans and webshells.",
    "flow": "DDoS and network-flow detection.",
}

# (command group or None for top level, module defining register(app))
CLI_MODULES: list[tuple[str | None, str]] = [
    (None, "fsbrain.cli_core"),
    ("simulate", "fsbrain.domains.credit.cli"),
    ("web", "fsbrain.domains.web.cli"),
    ("web", "fsbrain.domains.web.cli_crs"),
    ("host", "fsbrain.domains.host.cli_bruteforce"),
    ("host", "fsbrain.domains.host.cli_audit"),
    ("flow", "fsbrain.domains.flow.cli"),
]

_registered = False


def _register() -> None:
    global _registered
    if _registered:
        return
    groups: dict[str, typer.Typer] = {}
    for group, mod in CLI_MODULES:
        if importlib.util.find_spec(mod) is None:
            continue
        target = app
        if group is not None:
            if group not in groups:
                groups[group] = typer.Typer(help=GROUP_HELP.get(group), no_args_is_help=True)
                app.add_typer(groups[group], name=group)
            target = groups[group]
        importlib.import_module(mod).register(target)
    _registered = True


def main() -> None:
    from fsbrain.core.errors import FsbrainError

    _register()
    try:
        app()
    except FsbrainError as exc:
        typer.secho(f"error: {exc.message}", fg="red", err=True)
        sys.exit(2)
