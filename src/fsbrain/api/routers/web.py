"""Web security endpoints (``/v1/web``): request inspection and access-log scanning.

* ``POST /v1/web/inspect``: one HTTP request in (``method``, ``uri``, ``headers``, ``body``), one verdict out
  with ``attack``, ``score``, ``labels``, ``rules``, ``reasons``, and ``limits_hit`` when the request exceeded
  an inspection limit (``explain: true`` adds the model's per-parameter scores, the rule/model split and
  latency).
* ``POST /v1/web/logs``: access-log lines (combined or JSON) in, alerts and a summary out; bad lines are
  counted and listed with their numbers.

Inspectors (fsbrain rules + the shipped model) are built once per paranoia level per process.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from fsbrain.api.deps import require_actor
from fsbrain.api.schemas import ReasonOut
from fsbrain.core.errors import InputError

router = APIRouter(prefix="/v1/web", tags=["web"])

MAX_BODY_CHARS = 1_048_576
MAX_LOG_LINES = 10_000


class WebRequestIn(BaseModel):
    """One HTTP request to inspect."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(default="GET", min_length=1, max_length=32, description="HTTP method")
    uri: str = Field(default="/", min_length=1, max_length=65536, description="Path and query string, raw")
    headers: dict[str, str] | list[tuple[str, str]] = Field(
        default_factory=dict, description="Headers as an object or a list of [name, value] pairs")
    body: str = Field(default="", max_length=MAX_BODY_CHARS, description="Request body (UTF-8 text)")
    paranoia: int = Field(default=1, ge=1, le=4, description="Paranoia level 1..4")
    explain: bool = Field(default=False, description="Add model scores, rule/model split, limits and latency")


class WebVerdictOut(BaseModel):
    """The verdict on one request."""

    attack: bool
    score: int
    labels: list[str]
    rules: list[int]
    reasons: list[ReasonOut]
    rule_score: int | None = None
    model_score: int | None = None
    threshold: int | None = None
    suppressed_rules: list[int] | None = None
    model: list[dict[str, Any]] | None = None
    limits_hit: list[str] | None = None
    errors: list[str] | None = None
    paranoia: int | None = None
    latency_ms: float | None = None


class WebLogsIn(BaseModel):
    """Access-log lines to scan (oldest first)."""

    model_config = ConfigDict(extra="forbid")

    lines: list[str] = Field(min_length=1, max_length=MAX_LOG_LINES, description="Combined-log or JSON lines")
    paranoia: int = Field(default=1, ge=1, le=4, description="Paranoia level 1..4")


class WebLogsOut(BaseModel):
    """Alerts (the platform's alert shape) and the scan summary."""

    alerts: list[dict[str, Any]]
    summary: dict[str, Any]


_lock = threading.Lock()


def _inspector(request: Request, paranoia: int) -> Any:
    cache = getattr(request.app.state, "web_inspectors", None)
    if cache is None:
        cache = request.app.state.web_inspectors = {}
    insp = cache.get(paranoia)
    if insp is None:
        with _lock:
            insp = cache.get(paranoia)
            if insp is None:
                from fsbrain.domains.web.inspector import WebInspector

                insp = cache[paranoia] = WebInspector(paranoia=paranoia)
    return insp


@router.post("/inspect", response_model=WebVerdictOut, response_model_exclude_none=True,
             summary="Inspect one HTTP request")
def inspect_request(body: WebRequestIn, request: Request, actor: str = Depends(require_actor)) -> dict[str, Any]:
    from fsbrain.domains.web.inspector import public_verdict

    req = {"method": body.method, "uri": body.uri,
           "headers": body.headers if isinstance(body.headers, dict) else [list(h) for h in body.headers],
           "body": body.body}
    v = _inspector(request, body.paranoia).inspect(req)
    return v if body.explain else public_verdict(v)


@router.post("/logs", response_model=WebLogsOut, summary="Scan access-log lines: alerts and summary")
def scan_logs(body: WebLogsIn, request: Request, actor: str = Depends(require_actor)) -> dict[str, Any]:
    from fsbrain.domains.web.bots import BotDetector
    from fsbrain.domains.web.cc import CCDetector
    from fsbrain.domains.web.logs import scan_lines

    if any(len(line) > 65536 for line in body.lines):
        raise InputError("lines: a line is longer than 65536 characters")
    res = scan_lines(body.lines, inspector=_inspector(request, body.paranoia), bots=BotDetector(), cc=CCDetector())
    return {"alerts": [a.to_dict() for a in res.alerts], "summary": res.summary}
