"""The FastAPI application: routers per resource, one error handler, a body-size guard."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fsbrain import __version__
from fsbrain.api.routers import ROUTER_MODULES
from fsbrain.core.errors import FsbrainError
from fsbrain.service import Platform
from fsbrain.speedups import settle_heap

log = logging.getLogger("fsbrain.api")

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class ORJSONResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


class BodyLimitMiddleware:
    """Reject bodies over ``max_bytes`` with 413 before reading them into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_json(send, 413, {"error": "payload_too_large",
                                                 "message": f"body larger than {self.max_bytes} bytes"})
                    return
        seen = 0

        async def limited_receive() -> Any:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return msg

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await _send_json(send, 413, {"error": "payload_too_large",
                                         "message": f"body larger than {self.max_bytes} bytes"})


class _TooLarge(Exception):
    pass


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    data = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


_DECIDE_PREFIX = "/v1/decisions/"


class FsbrainAPI(FastAPI):
    """FastAPI with a direct path for ``POST /v1/decisions/{event_type}``, the one hot endpoint.

    FastAPI's routing, dependency solving and middleware layers cost about a quarter of a decision
    request's CPU. The direct path does exactly what the routed endpoint does — body size limit, API-key
    check, JSON parsing, ``Platform.decide_async``, the same JSON answers and error bodies — and every other
    request (and the OpenAPI description of this one) goes through FastAPI as usual. The API test suite
    runs against it, so both paths answer alike.
    """

    fast_decisions = True

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (self.fast_decisions and scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"].startswith(_DECIDE_PREFIX)):
            event_type = scope["path"][len(_DECIDE_PREFIX):]
            if event_type and "/" not in event_type:
                await _fast_decide(self, event_type, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _fast_decide(app: FastAPI, event_type: str, scope: Scope, receive: Any, send: Any) -> None:
    from fsbrain.api.deps import resolve_actor
    from fsbrain.api.routers.decisions import decide_payload

    platform: Platform = app.state.platform
    limit = platform.settings.max_body_bytes
    too_big = {"error": "payload_too_large", "message": f"body larger than {limit} bytes"}
    api_key = authorization = None
    for k, v in scope.get("headers", ()):
        if k == b"content-length":
            try:
                if int(v) > limit:
                    await _send_json(send, 413, too_big)
                    return
            except ValueError:
                pass
        elif k == b"x-api-key":
            api_key = v.decode("latin-1")
        elif k == b"authorization":
            authorization = v.decode("latin-1")
    try:
        client = scope.get("client")
        await resolve_actor(platform, api_key, authorization, client[0] if client else "local")
        chunks, seen, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            seen += len(body)
            if seen > limit:
                await _send_json(send, 413, too_big)
                return
            chunks.append(body)
            more = msg.get("more_body", False)
        out = await decide_payload(platform, event_type, chunks[0] if len(chunks) == 1 else b"".join(chunks))
    except FsbrainError as exc:
        if exc.http_status >= 500:
            log.error("POST %s: %s", scope["path"], exc.message)
        else:
            platform.metrics.invalid.labels(exc.code).inc()
        await _send_json(send, exc.http_status, exc.to_dict())
        return
    except Exception:
        log.exception("POST %s failed", scope["path"])
        await _send_json(send, 500, {"error": "internal_error", "message": "internal error (logged)"})
        return
    data = orjson.dumps(out, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(data)).encode()), (b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})


def create_app(platform: Platform, *, background: bool = True) -> FastAPI:
    """Build the API around a platform instance."""
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if background:
            platform.start_background()
        settle_heap()  # what the platform loaded stays out of full garbage collections
        yield

    app = FsbrainAPI(
        lifespan=lifespan,
        title="fsbrain",
        version=__version__,
        description="Financial security brain: decisions and alerts with reasons. Errors are JSON "
                    "`{error, message, detail}` with a 4xx/5xx status.",
        default_response_class=ORJSONResponse,
    )
    app.state.platform = platform

    @app.exception_handler(FsbrainError)
    async def _fsbrain_error(request: Request, exc: FsbrainError) -> Response:
        if exc.http_status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.message)
        else:
            platform.metrics.invalid.labels(exc.code).inc()
        return ORJSONResponse(exc.to_dict(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        platform.metrics.invalid.labels("invalid_input").inc()
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errs]
        return ORJSONResponse({"error": "invalid_input", "message": f"{loc}: {first['msg']}" if loc else first["msg"],
                               "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ORJSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code,
                              headers=getattr(exc, "headers", None))

    for mod in ROUTER_MODULES:
        if importlib.util.find_spec(mod) is not None:
            app.include_router(importlib.import_module(mod).router)

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        from fsbrain.api.routers.decisions import openapi_components

        schema.setdefault("components", {}).setdefault("schemas", {}).update(openapi_components())
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    app.add_middleware(BodyLimitMiddleware, max_bytes=platform.settings.max_body_bytes)  # type: ignore[arg-type]
    return app
