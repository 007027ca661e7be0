"""Running the API server (uvicorn), with an app factory for multi-worker mode."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from fsbrain.config import Settings

SETTINGS_ENV = "FSBRAIN_SERVER_SETTINGS"


def tune_gc() -> None:
    """Long-lived state objects make CPython's collector walk millions of objects: freeze what start-up
    built and collect less often (measured in docs/benchmarks/state.md)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # the decision writer thread and the event loop share the GIL: hand it over after 1 ms instead of
    # 5 ms, so a request never waits long behind a batch insert
    sys.setswitchinterval(0.001)


def app_factory() -> Any:
    """Build the app from settings passed by :func:`run` through the environment (one per worker)."""
    from fsbrain.api.app import create_app
    from fsbrain.service import Platform

    settings = Settings.model_validate(json.loads(os.environ[SETTINGS_ENV]))
    platform = Platform(settings)
    platform.freeze_gc = True
    app = create_app(platform)
    tune_gc()
    return app


def run(settings: Settings, *, platform: Any = None) -> None:
    import uvicorn

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    common: dict[str, Any] = dict(host=settings.host, port=settings.port, log_level=settings.log_level,
                                  access_log=False, http="httptools", loop="uvloop")
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        uvicorn.run("fsbrain.server:app_factory", factory=True, workers=settings.workers, **common)
        return
    from fsbrain.api.app import create_app
    from fsbrain.service import Platform

    platform = platform or Platform(settings)
    platform.freeze_gc = True
    app = create_app(platform)
    tune_gc()
    uvicorn.run(app, **common)
