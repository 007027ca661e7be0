"""Running the API server (uvicorn), with an app factory for multi-worker mode."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from fsbrain.config import Settings

SETTINGS_ENV = "FSBRAIN_SERVER_SETTINGS"
HTTP_PROTOCOL = "fsbrain.server:CoalescingHttpToolsProtocol"


class _CoalescingTransport:
    """A transport that holds a response's head until its body follows.

    uvicorn writes a response's head and its body with two ``transport.write`` calls, i.e. two ``send``
    system calls and two TCP segments, and the client wakes up for each. Holding the head (a write that
    starts a response other than ``100 Continue``) until the next write makes that one call; a head that no
    body follows (``HEAD``, 204) goes out when the response completes (the protocol flushes it then), or when
    the connection is closed. Everything else is the wrapped transport's.
    """

    __slots__ = ("_t", "_held")

    def __init__(self, transport: Any) -> None:
        self._t = transport
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._t.write(held + data)
        elif data[:9] in (b"HTTP/1.1 ", b"HTTP/1.0 ") and data[9:10] != b"1":
            self._held = bytes(data)
        else:
            self._t.write(data)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._t.is_closing():
                self._t.write(held)

    def close(self) -> None:
        self.flush()
        self._t.close()

    def write_eof(self) -> None:
        self.flush()
        self._t.write_eof()

    def get_write_buffer_size(self) -> int:
        return int(self._t.get_write_buffer_size()) + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


def _protocol_class() -> Any:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol writing each complete response with one system call."""

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.transport = _CoalescingTransport(transport)  # type: ignore[assignment]

        def on_response_complete(self) -> None:
            self.transport.flush()  # type: ignore[attr-defined]
            super().on_response_complete()

    return CoalescingHttpToolsProtocol


def __getattr__(name: str) -> Any:  # uvicorn imports the protocol class by name (lazily: uvicorn is optional here)
    if name == "CoalescingHttpToolsProtocol":
        cls = _protocol_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


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
                                  access_log=False, http=HTTP_PROTOCOL, loop="uvloop")
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
