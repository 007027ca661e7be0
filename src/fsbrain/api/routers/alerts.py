"""Alerts from the security and regtech pillars, in the shared reasons/labels shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from fsbrain.api.deps import get_platform, require_actor
from fsbrain.service import Platform

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


@router.get("", summary="List alerts")
def list_alerts(source: str | None = None, label: str | None = None,
                min_severity: int | None = Query(None, ge=1, le=5), entity: str | None = None,
                since: float | None = None, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
                platform: Platform = Depends(get_platform), actor: str = Depends(require_actor)) -> Any:
    items = platform.store.list_alerts(source=source, label=label, min_severity=min_severity, entity=entity,
                                       since=since, limit=limit, offset=offset)
    return {"items": [a.to_dict() for a in items], "limit": limit, "offset": offset}


@router.get("/{alert_id}", summary="One alert")
def get_alert(alert_id: str, platform: Platform = Depends(get_platform),
              actor: str = Depends(require_actor)) -> Any:
    return platform.store.get_alert(alert_id).to_dict()
