"""The policy file format, as pydantic models (``extra="forbid"``: a misspelt key is an error).

A policy is data: features, lists, rules, weights, labels, outcome thresholds and model slots. See
docs/policy-language.md for the language with worked examples.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fsbrain.state.base import MAX_WINDOW, MIN_WINDOW

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, None: 1}
NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
RULE_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
FIELD_RE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


def parse_duration(value: Any) -> float:
    """``"7d"``, ``"90m"``, ``"10s"``, ``"2w"`` or a number of seconds → seconds.

    >>> parse_duration("7d"), parse_duration("90m"), parse_duration(30)
    (604800.0, 5400.0, 30.0)
    """
    if isinstance(value, bool):
        raise ValueError("a duration must be like 10s, 30m, 24h, 7d or a number of seconds")
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration (use 10s, 30m, 24h, 7d, 2w or seconds)")
    return float(m.group(1)) * _UNITS[m.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureDef(_Strict):
    """A windowed entity feature, e.g. distinct platforms per ID number in 7 days."""

    name: str = Field(pattern=NAME_RE, description="Feature name used in rules as f.NAME.")
    agg: Literal["count", "distinct", "sum", "min", "max", "mean"] = Field(
        description="Aggregate over the window.")
    key: list[str] = Field(min_length=1, max_length=4,
                           description="Event field(s) identifying the entity; several fields form a combined key.")
    value: str | None = Field(default=None, pattern=FIELD_RE,
                              description="Event field aggregated (required except for count).")
    window: float = Field(description="Window length: 1m .. 90d (e.g. 7d, 24h, 10m).")
    bucket: float | None = Field(default=None, description="Bucket width (default window/60).")
    when: str | None = Field(default=None,
                             description="Optional filter expression on the event: only matching events are counted.")
    description: str = ""

    @field_validator("window", "bucket", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)

    @field_validator("key")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        for k in v:
            if not re.match(FIELD_RE, k):
                raise ValueError(f"key field {k!r} is not a field path like device.device_id")
        return v

    @model_validator(mode="after")
    def _check(self) -> FeatureDef:
        if self.agg != "count" and not self.value:
            raise ValueError(f"aggregate {self.agg!r} needs a value field")
        if not (MIN_WINDOW <= self.window <= MAX_WINDOW):
            raise ValueError(f"window must be between {MIN_WINDOW:g}s and {MAX_WINDOW / 86400:g}d")
        if self.bucket is not None and not (0 < self.bucket <= self.window):
            raise ValueError("bucket must be positive and at most the window")
        return self


class ListCheck(_Strict):
    """Which event field is looked up in the black/white/grey lists, as which entity type."""

    field: str = Field(pattern=FIELD_RE, description="Event field holding the (pseudonymised) value.")
    entity_type: str = Field(pattern=NAME_RE, description="List entity type: id_number, phone, device_id, ip, bank_card…")


class RuleDef(_Strict):
    """One rule: a boolean expression; when true it adds its weight and label, with a reason."""

    id: str = Field(pattern=RULE_ID_RE)
    label: str = Field(description="Risk label, e.g. multi_lending.")
    when: str = Field(min_length=1, max_length=4000, description="Expression (GoRules ZEN language).")
    weight: int = Field(ge=-1000, le=1000, description="Points added to the 0–1000 score when the rule hits.")
    outcome: str | None = Field(default=None, description="Minimum outcome forced when the rule hits (hard rule).")
    feature: str | None = Field(default=None, description="Feature or field named in the reason.")
    threshold: float | int | str | None = Field(default=None, description="Threshold named in the reason.")
    description: str = ""
    enabled: bool = True


class OutcomeDef(_Strict):
    name: str = Field(pattern=NAME_RE)
    min_score: int = Field(ge=0, le=1000, description="Lowest score that gets this outcome.")


class ModelDef(_Strict):
    """A model slot: its score (0–1) is read in rules as m.NAME."""

    name: str = Field(pattern=NAME_RE)
    type: Literal["lightgbm"] = "lightgbm"
    path: str = Field(description="Model file (LightGBM text format), relative to the policy file.")
    inputs: list[str] = Field(min_length=1, description="Feature names (f.X) or event fields (e.X), in model order.")


class WhitelistDef(_Strict):
    short_circuit: bool = Field(default=True, description="Stop at a whitelist hit and return `outcome`.")
    outcome: str | None = Field(default=None, description="Outcome on a whitelist hit (default: the lowest rung).")


class PolicyDef(_Strict):
    """A whole policy file."""

    policy: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="Policy name.")
    version: int = Field(ge=1, description="Version, bumped on every change.")
    event_type: str = Field(pattern=NAME_RE)
    description: str = ""
    outcomes: list[OutcomeDef] = Field(min_length=2)
    features: list[FeatureDef] = Field(default_factory=list, max_length=500)
    lists: list[ListCheck] = Field(default_factory=list)
    whitelist: WhitelistDef = Field(default_factory=WhitelistDef)
    models: list[ModelDef] = Field(default_factory=list)
    rules: list[RuleDef] = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _check(self) -> PolicyDef:
        names = [o.name for o in self.outcomes]
        if len(set(names)) != len(names):
            raise ValueError("outcome names must be unique")
        scores = [o.min_score for o in self.outcomes]
        if scores[0] != 0:
            raise ValueError("the first outcome must start at min_score 0")
        if scores != sorted(scores) or len(set(scores)) != len(scores):
            raise ValueError("outcome min_score values must strictly increase down the ladder")
        if self.whitelist.outcome is not None and self.whitelist.outcome not in names:
            raise ValueError(f"whitelist outcome {self.whitelist.outcome!r} is not one of the outcomes {names}")
        return self
