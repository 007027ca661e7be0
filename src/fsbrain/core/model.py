"""The shared data model: events, reasons, decisions and alerts.

Every pillar returns the same shapes, so one store, one case queue, one console and one report serve
risk control, regulatory tech and base security alike.

>>> r = Reason(source="rule", id="ML-003", label="multi_lending", feature="id_platforms_7d",
...            value=6, threshold=4, weight=180)
>>> Reason.from_dict(r.to_dict()) == r
True
"""

from __future__ import annotations

import copy
import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any

OUTCOMES_DEFAULT = ("approve", "review", "reject")
SEVERITIES = {1: "info", 2: "low", 3: "medium", 4: "high", 5: "critical"}


_id_state: list[Any] = []


def _reseed_ids() -> None:
    """A fresh random process tag and counter (at import and in every forked child)."""
    _id_state[:] = [os.urandom(5).hex(), itertools.count(int.from_bytes(os.urandom(4), "big"))]


_reseed_ids()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_ids)


def new_id(prefix: str = "") -> str:
    """A sortable unique id: 12 hex digits of milliseconds, a random 40-bit process tag and a 40-bit
    per-process counter (no system call per id; unique across processes and forks)."""
    ms = int(time.time() * 1000)
    tag, seq = _id_state
    return f"{prefix}{ms:012x}{tag}{next(seq) & 0xFFFFFFFFFF:010x}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason:
    """Why a decision or alert was made: one hit of a rule, list, model, graph check or detector.

    Args:
        source: ``rule``, ``list``, ``model``, ``graph``, ``feature`` or ``detector``.
        id: rule id, list name, model name, signature id.
        label: risk label the hit points to (see :mod:`fsbrain.core.labels`).
        feature: the feature or field that drove the hit, if any.
        value: the value the feature had.
        threshold: the threshold it was compared against, if any.
        weight: score contribution (points on the 0–1000 scale).
        message: human-readable explanation.
    """

    source: str
    id: str
    label: str | None = None
    feature: str | None = None
    value: Any = None
    threshold: Any = None
    weight: int = 0
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set (``None`` left out); container values are copied, as ``asdict`` would."""
        out: dict[str, Any] = {}
        for k in _REASON_FIELDS:
            v = getattr(self, k)
            if v is not None:
                out[k] = copy.deepcopy(v) if type(v) in (dict, list) else v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reason:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


_REASON_FIELDS = tuple(Reason.__dataclass_fields__)


@dataclass(slots=True, kw_only=True)
class Event:
    """An event entering the engine.

    Args:
        event_id: caller-supplied idempotency key (generated when absent).
        event_type: e.g. ``loan_application``, ``payment``, ``http_request``, ``auth_log``, ``flow``.
        timestamp: event time, seconds since the epoch (UTC).
        data: the validated payload; identity fields already pseudonymised.
    """

    event_id: str
    event_type: str
    timestamp: float
    data: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class Decision:
    """The engine's answer to one event.

    Args:
        event_id: the event decided on.
        event_type: its type.
        outcome: one rung of the policy's outcome ladder (default approve / review / reject).
        score: integer risk score 0..1000 (higher is riskier).
        labels: risk labels hit, most important first.
        reasons: every hit, with rule id, feature, value, threshold and weight.
        policy: ``name@version`` of the policy that decided.
        latency_ms: time spent deciding.
        features: the exact feature values the rules saw (stored for audit, not for screens).
        errors: rules that failed at run time on this event (the decision still stands).
        decision_id: storage id.
        created_at: when the decision was made (epoch seconds).
        shadow: true for a candidate policy's decision, never returned to callers.
    """

    event_id: str
    event_type: str
    outcome: str
    score: int
    labels: list[str] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)
    policy: str = ""
    latency_ms: float = 0.0
    features: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    decision_id: str = field(default_factory=lambda: new_id("d"))
    created_at: float = field(default_factory=time.time)
    event_time: float | None = None
    shadow: bool = False

    def to_dict(self, *, with_features: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision_id": self.decision_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "outcome": self.outcome,
            "score": self.score,
            "labels": list(self.labels),
            "reasons": [r.to_dict() for r in self.reasons],
            "policy": self.policy,
            "latency_ms": round(self.latency_ms, 3),
            "errors": list(self.errors),
            "created_at": self.created_at,
            "event_time": self.event_time,
            "shadow": self.shadow,
        }
        if with_features:
            out["features"] = dict(self.features)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        return cls(
            decision_id=data["decision_id"],
            event_id=data["event_id"],
            event_type=data["event_type"],
            outcome=data["outcome"],
            score=int(data["score"]),
            labels=list(data.get("labels") or []),
            reasons=[Reason.from_dict(r) for r in data.get("reasons") or []],
            policy=data.get("policy", ""),
            latency_ms=float(data.get("latency_ms", 0.0)),
            features=dict(data.get("features") or {}),
            errors=list(data.get("errors") or []),
            created_at=float(data.get("created_at", 0.0)),
            event_time=data.get("event_time"),
            shadow=bool(data.get("shadow", False)),
        )


@dataclass(slots=True, kw_only=True)
class Alert:
    """A finding from a security or regtech detector, in the same reasons/labels shape as decisions.

    Args:
        source: the pillar and detector, e.g. ``web.rules``, ``host.bruteforce``, ``flow.volumetric``.
        labels: risk labels (e.g. ``web_sqli``, ``brute_force``, ``ddos_syn_flood``).
        severity: 1 (info) .. 5 (critical).
        score: 0..1000.
        entity_type: what the alert is about: ``ip``, ``host``, ``file``, ``account``, ``subnet`` …
        entity: the entity value (an IP, a file path; identity values are pseudonymised).
        title: one-line summary for screens.
        reasons: hits that caused the alert.
        action: recommended or taken action: ``block``, ``challenge``, ``rate_limit``, ``ban``, ``review``…
        start, end: time span the alert covers (epoch seconds).
        details: pillar-specific evidence (JSON-serialisable).
    """

    source: str
    labels: list[str]
    severity: int
    title: str
    score: int = 0
    entity_type: str | None = None
    entity: str | None = None
    reasons: list[Reason] = field(default_factory=list)
    action: str | None = None
    start: float | None = None
    end: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    alert_id: str = field(default_factory=lambda: new_id("a"))
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "source": self.source,
            "labels": list(self.labels),
            "severity": self.severity,
            "severity_name": SEVERITIES.get(self.severity, str(self.severity)),
            "score": self.score,
            "title": self.title,
            "entity_type": self.entity_type,
            "entity": self.entity,
            "reasons": [r.to_dict() for r in self.reasons],
            "action": self.action,
            "start": self.start,
            "end": self.end,
            "details": dict(self.details),
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(
            alert_id=data["alert_id"],
            source=data["source"],
            labels=list(data.get("labels") or []),
            severity=int(data["severity"]),
            score=int(data.get("score", 0)),
            title=data.get("title", ""),
            entity_type=data.get("entity_type"),
            entity=data.get("entity"),
            reasons=[Reason.from_dict(r) for r in data.get("reasons") or []],
            action=data.get("action"),
            start=data.get("start"),
            end=data.get("end"),
            details=dict(data.get("details") or {}),
            created_at=float(data.get("created_at", 0.0)),
        )
