"""Response models shared by several routers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ReasonOut(BaseModel):
    """Why: one rule, list, model or detector hit (the same shape for decisions and alerts)."""

    source: str = Field(description="rule, list, model, graph, feature or detector")
    id: str = Field(description="Rule id (or list / model name)")
    label: str | None = Field(default=None, description="Risk label the hit points to")
    feature: str | None = Field(default=None, description="Feature the rule tested")
    value: Any = Field(default=None, description="The feature's value for this event")
    threshold: Any = Field(default=None, description="Threshold the value was compared against")
    weight: int = Field(default=0, description="Points this hit added to the score")
    message: str | None = None
