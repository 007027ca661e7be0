"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from fsbrain.api.deps import get_platform
from fsbrain.service import Platform

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process is serving")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: policies loaded, database and state backend reachable")
def readyz(platform: Platform = Depends(get_platform)) -> Response:
    checks: dict[str, Any] = {"policies": platform.engine.event_types,
                              "compiled_hot_path": platform.engine._fast is not None,
                              "decision_writer": getattr(platform, "writer_kind", platform.settings.decision_writer)}
    ok = bool(checks["policies"])
    try:
        checks["database"] = platform.store.ping()
    except Exception as exc:  # report, don't crash: readiness must answer
        checks["database"] = f"error: {exc}"
    ok = ok and checks["database"] is True
    try:
        checks["state"] = platform.engine.state.stats().get("backend", platform.engine.state.name)
        ping = getattr(platform.engine.state, "ping", None)
        if ping is not None:
            ping()
    except Exception as exc:
        checks["state"] = f"error: {exc}"
        ok = False
    from fsbrain.api.app import ORJSONResponse

    return ORJSONResponse({"status": "ready" if ok else "not_ready", "checks": checks},
                          status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(platform: Platform = Depends(get_platform)) -> Response:
    st = platform.engine.stats
    body = platform.metrics.render()
    extra = (f"# HELP fsbrain_compiled_hot_path 1 when the engine runs the compiled (Cython) hot path\n"
             f"# TYPE fsbrain_compiled_hot_path gauge\nfsbrain_compiled_hot_path {int(platform.engine._fast is not None)}\n"
             f"# HELP fsbrain_engine_rule_errors Rule evaluation errors since start\n"
             f"# TYPE fsbrain_engine_rule_errors counter\nfsbrain_engine_rule_errors {st.rule_errors}\n"
             f"# HELP fsbrain_engine_feature_errors Feature computation errors since start\n"
             f"# TYPE fsbrain_engine_feature_errors counter\nfsbrain_engine_feature_errors {st.feature_errors}\n")
    return Response(body + extra.encode(), media_type="text/plain; version=0.0.4; charset=utf-8")
