"""The ``fsbrain`` command. Thin: every command calls the same engine API the service uses."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer

app = typer.Typer(help="fsbrain: financial security brain", no_args_is_help=True, add_completion=False)

# Domain packs contribute sub-commands: (command name, module exposing a typer app named ``app``).
DOMAIN_CLIS = [
    ("web", "fsbrain.domains.web.cli"),
    ("host", "fsbrain.domains.host.cli"),
    ("flow", "fsbrain.domains.flow.cli"),
]

CORE_CLIS = [
    "fsbrain.cli_core",
]


def _register() -> None:
    for mod in CORE_CLIS:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod).register(app)
    for name, mod in DOMAIN_CLIS:
        if importlib.util.find_spec(mod) is not None:
            app.add_typer(importlib.import_module(mod).app, name=name)


def main() -> None:
    from fsbrain.core.errors import FsbrainError

    _register()
    try:
        app()
    except FsbrainError as exc:
        typer.secho(f"error: {exc.message}", fg="red", err=True)
        sys.exit(2)
