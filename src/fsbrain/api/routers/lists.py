"""Black / white / grey lists: values are validated, pseudonymised and masked before storage."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from fsbrain.api.deps import get_platform, require_actor
from fsbrain.service import Platform

router = APIRouter(prefix="/v1/lists", tags=["lists"])


class ListEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    list_type: Literal["black", "white", "grey"]
    entity_type: str = Field(description="id_number, phone, bank_card, device_id, ip, account_id, …")
    value: str = Field(min_length=1, max_length=256,
                       description="Raw value; identity values are validated then stored only as keyed hashes")
    reason: str = Field(default="", max_length=500)
    source: str = Field(default="api", max_length=100)
    expires_at: float | None = Field(default=None, description="Epoch seconds; omit for no expiry")


@router.post("", status_code=201, summary="Add a list entry")
def add_entry(entry: ListEntryIn, platform: Platform = Depends(get_platform),
              actor: str = Depends(require_actor)) -> dict[str, Any]:
    return platform.add_list_entry(list_type=entry.list_type, entity_type=entry.entity_type, value=entry.value,
                                   reason=entry.reason, source=entry.source, expires_at=entry.expires_at,
                                   actor=actor)


@router.get("", summary="List entries (masked values only)")
def list_entries(list_type: Literal["black", "white", "grey"] | None = None, entity_type: str | None = None,
                 include_expired: bool = False, limit: int = Query(100, ge=1, le=1000),
                 offset: int = Query(0, ge=0), platform: Platform = Depends(get_platform),
                 actor: str = Depends(require_actor)) -> dict[str, Any]:
    items = platform.store.list_entries(list_type=list_type, entity_type=entity_type,
                                        include_expired=include_expired, limit=limit, offset=offset)
    return {"items": items, "limit": limit, "offset": offset}


@router.delete("/{entry_id}", summary="Remove a list entry")
def remove_entry(entry_id: str, platform: Platform = Depends(get_platform),
                 actor: str = Depends(require_actor)) -> dict[str, Any]:
    return platform.remove_list_entry(entry_id, actor)
