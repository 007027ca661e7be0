"""Flow pillar endpoints (``/v1/flow``).

* ``POST /v1/flow/classify``: CICFlowMeter flows as JSON objects (column name -> value) in, one label and
  probability per flow out (the shipped LightGBM model).
* ``POST /v1/flow/records``: normalised flow records in; they feed this process's volumetric detector
  (created on first use and attached to the app) and the alerts of attacks that started or ended come back.
* ``GET /v1/flow/attacks``: attacks in progress and recent ones from the attached detector (empty, with a
  note, when none is attached).
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from fsbrain.api.deps import require_actor
from fsbrain.core.errors import InputError

router = APIRouter(prefix="/v1/flow", tags=["flow"])

MAX_FLOWS = 10_000
_lock = threading.Lock()


class ClassifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flows: list[dict[str, float | int | str | None]] = Field(
        max_length=MAX_FLOWS, description="CICFlowMeter flows: column name (any case) -> value")


class FlowRecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ts: float = Field(ge=0, description="flow start, epoch seconds")
    te: float | None = Field(default=None, ge=0, description="flow end (default: ts)")
    src: str = Field(max_length=15, description="source IPv4")
    dst: str = Field(max_length=15, description="destination IPv4")
    sport: int = Field(default=0, ge=0, le=65535)
    dport: int = Field(default=0, ge=0, le=65535)
    proto: int = Field(ge=0, le=255)
    flags: int = Field(default=0, ge=0, le=255, description="cumulative TCP flags")
    packets: int = Field(ge=0, le=2**40, description="packets (already multiplied by the sampling rate)")
    bytes: int = Field(ge=0, le=2**50)


class RecordsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[FlowRecordIn] = Field(max_length=MAX_FLOWS)


def _classifier(request: Request) -> Any:
    clf = getattr(request.app.state, "flow_classifier", None)
    if clf is None:
        from fsbrain.domains.flow.classifier import FlowClassifier

        with _lock:
            clf = getattr(request.app.state, "flow_classifier", None) or FlowClassifier.load()
            request.app.state.flow_classifier = clf
    return clf


@router.post("/classify")
def classify(body: ClassifyIn, request: Request, _actor: str = Depends(require_actor)) -> dict[str, Any]:
    """Label each flow; unknown columns are ignored, missing features count as missing values."""
    import numpy as np

    from fsbrain.domains.flow.classifier import RISK_LABEL, norm

    clf = _classifier(request)
    n = len(body.flows)
    cols: dict[str, np.ndarray] = {}
    for i, flow in enumerate(body.flows):
        for k, v in flow.items():
            name = norm(k)
            if name not in clf.features:
                continue
            try:
                val = float(v) if v is not None else np.nan
            except (TypeError, ValueError):
                val = np.nan
            cols.setdefault(name, np.full(n, np.nan))[i] = val if np.isfinite(val) else np.nan
    if n == 0:
        return {"results": [], "model": clf.meta.get("source", "")}
    labels, prob = clf.predict(cols, n)
    return {"results": [{"label": lab, "probability": round(float(p), 4), "risk_label": RISK_LABEL.get(lab)}
                        for lab, p in zip(labels, prob, strict=True)],
            "model": clf.meta.get("source", "")}


def _detector(request: Request) -> Any:
    det = getattr(request.app.state, "flow_detector", None)
    if det is None:
        from fsbrain.domains.flow.detector import VolumetricDetector

        with _lock:
            det = getattr(request.app.state, "flow_detector", None) or VolumetricDetector()
            request.app.state.flow_detector = det
    return det


@router.post("/records")
def records(body: RecordsIn, request: Request, _actor: str = Depends(require_actor)) -> dict[str, Any]:
    """Feed flow records to this process's detector; returns alerts of attacks that started or ended."""
    from fsbrain.domains.flow.records import ip_to_int, make_records

    recs = make_records(len(body.records))
    for i, r in enumerate(body.records):
        try:
            src, dst = ip_to_int(r.src), ip_to_int(r.dst)
        except ValueError as exc:
            raise InputError(f"records[{i}]: {exc}") from exc
        recs[i] = (r.ts, max(r.te or r.ts, r.ts), src, dst, r.sport, r.dport, r.proto, r.flags, r.packets,
                   r.bytes, 1, 0)
    det = _detector(request)
    with _lock:
        ended = det.process(recs[recs["ts"].argsort(kind="stable")])
        started = det.drain_started()
    return {"accepted": len(recs), "started": [a.to_dict() for a in started],
            "ended": [a.to_dict() for a in ended]}


@router.get("/attacks")
def attacks(request: Request, limit: int = 100, _actor: str = Depends(require_actor)) -> dict[str, Any]:
    """Attacks in progress and the most recent finished ones."""
    det = getattr(request.app.state, "flow_detector", None)
    if det is None:
        return {"active": [], "recent": [], "note": "no flow detector is attached to this API process; "
                "POST /v1/flow/records or run `fsbrain flow collect`"}
    limit = max(1, min(limit, 1000))
    with _lock:
        return {"active": [a.to_dict() for a in det.active_alerts()],
                "recent": [a.to_dict() for a in det.closed[-limit:]], "stats": det.stats()}
