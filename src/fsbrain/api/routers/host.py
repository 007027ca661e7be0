"""Host security endpoints: brute-force ban list and log-line analysis (``/v1/host``).

Brute force:

* ``GET /v1/host/bans``: bans in force; ``POST`` bans an address or network; ``DELETE /v1/host/bans/{target}``
  lifts a ban (a CIDR's ``/`` is sent URL-encoded, ``%2F``). Bans live on the platform store's black list.
* ``POST /v1/host/logs``: log lines in, brute-force alerts out (one detector per API process, its counts in
  the platform's state backend so Redis-backed workers share them).

Other host features (audit, malware) may add their endpoints below, each in its own section.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from fsbrain.api.deps import get_platform, require_actor
from fsbrain.core.errors import InputError

router = APIRouter(prefix="/v1/host", tags=["host"])

MAX_LINES = 10_000
MAX_LINE_CHARS = 16_384


# -- brute force: models -------------------------------------------------------------------------
class BanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1, max_length=64, description="IP address or CIDR network")
    seconds: float | None = Field(default=3600.0, gt=0, le=400 * 86400,
                                  description="Ban length; null bans for ever")
    reason: str = Field(default="manual ban", max_length=500)


class LogsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: str = Field(min_length=1, max_length=200, description="Filter name with options, e.g. sshd[mode=aggressive]")
    lines: list[str] = Field(max_length=MAX_LINES, description="Raw log lines, oldest first")
    timezone: str | None = Field(default=None, max_length=64, description="Zone of dates written without one")
    ban: bool = Field(default=False, description="Add bans from the alerts to the ban list")


class _BruteForceService:
    """Per-application detector, filters and ban list (created on first use)."""

    def __init__(self, platform: Any) -> None:
        from fsbrain.domains.host.bans import BanList
        from fsbrain.domains.host.bruteforce import BruteForceDetector
        from fsbrain.domains.host.jails import JailsConfig
        from fsbrain.state import MemoryStateBackend

        cfg = JailsConfig.load()
        # log lines arrive late and out of order (batches, several files): keep a day of lateness. On a
        # Redis-backed platform the counts go to the same Redis (own key prefix) so workers share them.
        settings = getattr(platform, "settings", None)
        state_cfg = getattr(settings, "state", None)
        if state_cfg is not None and state_cfg.type == "redis":
            from fsbrain.state import make_backend

            state = make_backend("redis", url=state_cfg.url, prefix=f"{state_cfg.prefix}-hostbf",
                                 allowed_lateness=86400.0)
        else:
            state = MemoryStateBackend(allowed_lateness=86400.0)
        self.detector = BruteForceDetector(cfg, backend=state)
        self.bans = BanList(allowlist=cfg.allowlist, backend="store", store=platform.store)
        self.filters: dict[tuple[str, str | None], Any] = {}
        self.lock = threading.Lock()

    def filter(self, spec: str, tz_name: str | None) -> Any:
        from fsbrain.domains.host.dates import zone
        from fsbrain.domains.host.logparse_scan import make_filter

        key = (spec, tz_name)
        flt = self.filters.get(key)
        if flt is None:
            if len(self.filters) > 64:
                self.filters.clear()
            flt = self.filters[key] = make_filter(spec, None, tz=zone(tz_name))
        return flt


_init_lock = threading.Lock()


def _service(request: Request, platform: Any = Depends(get_platform)) -> _BruteForceService:
    svc = getattr(request.app.state, "host_bruteforce", None)
    if svc is None:
        with _init_lock:
            svc = getattr(request.app.state, "host_bruteforce", None)
            if svc is None:
                svc = request.app.state.host_bruteforce = _BruteForceService(platform)
    return svc  # type: ignore[no-any-return]


# -- brute force: endpoints ----------------------------------------------------------------------
@router.get("/bans", summary="Bans in force")
def list_bans(svc: _BruteForceService = Depends(_service), actor: str = Depends(require_actor)) -> dict[str, Any]:
    return {"items": [b.to_dict() for b in svc.bans.active()]}


@router.post("/bans", status_code=201, summary="Ban an address or network")
def add_ban(body: BanIn, svc: _BruteForceService = Depends(_service),
            actor: str = Depends(require_actor)) -> dict[str, Any]:
    with svc.lock:
        ban = svc.bans.add(body.target, seconds=body.seconds, reason=f"{body.reason} (by {actor})"[:500])
    return ban.to_dict()


@router.delete("/bans/{target:path}", summary="Lift a ban")
def remove_ban(target: str, svc: _BruteForceService = Depends(_service),
               actor: str = Depends(require_actor)) -> dict[str, Any]:
    with svc.lock:
        return svc.bans.remove(target).to_dict()


@router.post("/logs", summary="Analyse log lines: brute-force alerts out")
def post_logs(body: LogsIn, svc: _BruteForceService = Depends(_service),
              actor: str = Depends(require_actor)) -> dict[str, Any]:
    import time

    from fsbrain.domains.host.bruteforce import AuthEvent

    with svc.lock:
        flt = svc.filter(body.filter, body.timezone)
        jail = svc.detector.config.jail_for_filter(body.filter).name
        before = dict(flt.counts)
        alerts = []
        skipped = 0
        for line in body.lines:
            if len(line) > MAX_LINE_CHARS or "\x00" in line:
                skipped += 1
                continue
            res = flt.process(line.encode("utf-8", "replace"))
            if res.status in ("failure", "success") and res.host:
                alerts += svc.detector.observe(AuthEvent(time=res.time or time.time(), status=res.status,
                                                         host=res.host, user=res.user, jail=jail,
                                                         attempts=res.attempts, where=f"api:{actor}"))
        counts = {k: flt.counts[k] - before.get(k, 0) for k in flt.counts}
        if body.ban:
            svc.bans.apply_alerts(alerts)
    if not body.lines:
        raise InputError("lines: send at least one log line")
    return {"alerts": [a.to_dict() for a in alerts], "counts": {**counts, "skipped": skipped}}
