"""The brute-force part of ``fsbrain.domains.host`` exports exactly what it means to."""

from __future__ import annotations

import fsbrain.domains.host as host

BRUTE_FORCE_API = {
    "AllowList", "AuthEvent", "Ban", "BanList", "BruteForceDetector", "FileFollower", "FilterDefinition",
    "JailConfig", "JailsConfig", "LineResult", "LogFilter", "ScanReport", "firewall_commands", "load_filter",
    "make_filter", "scan_files", "shipped_filters",
}


def test_brute_force_exports():
    assert BRUTE_FORCE_API <= set(host.__all__)
    for name in BRUTE_FORCE_API:
        assert getattr(host, name) is not None


def test_cli_and_router_register():
    import typer
    from fastapi import APIRouter

    from fsbrain.api.routers.host import router
    from fsbrain.domains.host.cli_bruteforce import register

    app = typer.Typer()
    register(app)
    names = {c.name for c in app.registered_commands}
    assert {"scan", "follow", "firewall", "filter-test", "filters"} <= names
    assert isinstance(router, APIRouter) and router.prefix == "/v1/host"
    paths = {r.path for r in router.routes}
    assert {"/v1/host/bans", "/v1/host/logs", "/v1/host/bans/{target:path}"} <= paths
