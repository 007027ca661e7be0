"""Policies: what is live, validation of a candidate, reload, shadow comparison, audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from fsbrain.api.deps import get_platform, require_actor
from fsbrain.core.errors import InputError, PolicyError
from fsbrain.engine.policy import compile_policy
from fsbrain.service import Platform

router = APIRouter(prefix="/v1", tags=["policies"])


def _summary(pol: Any, role: str) -> dict[str, Any]:
    return {"policy": pol.ref, "name": pol.name, "version": pol.version, "event_type": pol.event_type,
            "role": role, "sha256": pol.sha256, "source": pol.source, "rules": len(pol.rules),
            "features": len(pol.features), "outcomes": [{"name": n, "min_score": s} for n, s in pol.outcomes]}


@router.get("/policies", summary="Live and shadow policies")
def list_policies(platform: Platform = Depends(get_platform), actor: str = Depends(require_actor)) -> Any:
    out = []
    for et in platform.engine.event_types:
        out.append(_summary(platform.engine.policy(et), "live"))
        out += [_summary(s, "shadow") for s in platform.engine.shadows(et)]
    return {"items": out}


@router.post("/policies/check", summary="Validate a policy (YAML text in the body)")
async def check_policy(request: Request, actor: str = Depends(require_actor)) -> Any:
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("policy text must be UTF-8") from None
    try:
        pol = compile_policy(text, source="<request>")
    except PolicyError as exc:
        return {"valid": False, "message": exc.message, "problems": exc.problems}
    return {"valid": True, **_summary(pol, "candidate")}


@router.post("/policies/reload", summary="Reload changed policy files now")
def reload(platform: Platform = Depends(get_platform), actor: str = Depends(require_actor)) -> Any:
    return {"reloaded": platform.reload_if_changed()}


@router.get("/policies/{policy}/shadow", summary="Compare a shadow policy's decisions with the live ones")
def shadow(policy: str, since: float | None = None, platform: Platform = Depends(get_platform),
           actor: str = Depends(require_actor)) -> Any:
    return platform.store.shadow_comparison(policy, since=since)


@router.get("/policies/{name}/versions", summary="Every recorded version of a policy")
def versions(name: str, platform: Platform = Depends(get_platform), actor: str = Depends(require_actor)) -> Any:
    return {"items": platform.store.list_policy_versions(name)}


@router.get("/audit", summary="Audit log: who changed which policy, list or key, when")
def audit(object_type: str | None = None, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
          platform: Platform = Depends(get_platform), actor: str = Depends(require_actor)) -> Any:
    return {"items": platform.store.list_audit(limit=limit, offset=offset, object_type=object_type)}


@router.get("/labels", summary="The risk-label taxonomy (English and Chinese names)")
def labels() -> Any:
    from fsbrain.core.labels import all_labels

    return {"items": [{"id": lab.id, "en": lab.en, "zh": lab.zh, "pillar": lab.pillar, "severity": lab.severity}
                      for lab in all_labels()]}
