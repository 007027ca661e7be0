"""Decisions: ask for one, read a stored one, list them."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from fsbrain.api.app import ORJSONResponse
from fsbrain.api.deps import get_platform, require_actor
from fsbrain.api.schemas import ReasonOut
from fsbrain.core.errors import InputError
from fsbrain.service import Platform

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])


class DecisionOut(BaseModel):
    decision_id: str
    event_id: str
    event_type: str
    outcome: str = Field(description="One rung of the policy's outcome ladder (default approve/review/reject)")
    score: int = Field(ge=0, le=1000, description="Risk score 0–1000, higher is riskier")
    labels: list[str] = Field(description="Risk labels hit, most important first")
    reasons: list[ReasonOut]
    policy: str = Field(description="name@version of the deciding policy")
    latency_ms: float
    errors: list[dict[str, Any]] = Field(description="Rules that failed on this event (the decision stands)")
    created_at: float
    event_time: float | None = None
    shadow: bool = False
    replayed: bool = Field(default=False, description="True when this event_id was decided before")
    features: dict[str, Any] | None = Field(default=None, description="Exact feature values (GET only)")


class DecisionList(BaseModel):
    items: list[DecisionOut]
    limit: int
    offset: int


async def decide_payload(platform: Platform, event_type: str, body: bytes) -> dict[str, Any]:
    """Parse, decide and shape one decision request (shared with the app's direct path)."""
    if not body:
        raise InputError("the request body is empty: send a JSON object")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc}") from None
    decision, replayed = await platform.decide_async(event_type, payload)
    out = decision.to_dict(with_features=False)
    out["replayed"] = replayed
    return out


async def _decide(platform: Platform, event_type: str, body: bytes) -> Any:
    # returned as a ready response: the shape is DecisionOut's by construction, and skipping FastAPI's
    # response re-validation saves a large share of the request's time
    return ORJSONResponse(await decide_payload(platform, event_type, body))


@router.post("/loan_application", response_model=DecisionOut, response_model_exclude_none=True,
             summary="Decide on a loan application",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"$ref": "#/components/schemas/LoanApplication"}}}}})
async def decide_loan(request: Request, platform: Platform = Depends(get_platform),
                      actor: str = Depends(require_actor)) -> Any:
    return await _decide(platform, "loan_application", await request.body())


@router.post("/{event_type}", response_model=DecisionOut, response_model_exclude_none=True,
             summary="Decide on an event of any registered type")
async def decide_any(event_type: str, request: Request, platform: Platform = Depends(get_platform),
                     actor: str = Depends(require_actor)) -> Any:
    return await _decide(platform, event_type, await request.body())


@router.get("/{decision_id}", response_model=DecisionOut, summary="A stored decision, with its feature values")
def get_decision(decision_id: str, platform: Platform = Depends(get_platform),
                 actor: str = Depends(require_actor)) -> Any:
    return platform.store.get_decision(decision_id).to_dict(with_features=True)


@router.get("", response_model=DecisionList, summary="List stored decisions")
def list_decisions(event_type: str | None = None, outcome: str | None = None, label: str | None = None,
                   since: float | None = None, until: float | None = None,
                   limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
                   platform: Platform = Depends(get_platform), actor: str = Depends(require_actor)) -> Any:
    items = platform.store.list_decisions(event_type=event_type, outcome=outcome, label=label, since=since,
                                          until=until, limit=limit, offset=offset)
    return {"items": [d.to_dict(with_features=False) for d in items], "limit": limit, "offset": offset}


def openapi_components() -> dict[str, Any]:
    """Schemas referenced by hand-written request bodies (merged into the OpenAPI document)."""
    from fsbrain.engine.events import event_model

    schema = event_model("loan_application").model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {"LoanApplication": schema, **defs}
