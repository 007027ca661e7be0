"""Request dependencies: the platform instance and API-key authentication."""

from __future__ import annotations

from fastapi import Request

from fsbrain.core.errors import AuthError
from fsbrain.service import Platform


async def get_platform(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


async def require_actor(request: Request) -> str:
    """The caller's name: the API key's name when auth is on, else ``anonymous@<client>``.

    Raises:
        AuthError: auth is required and the key is missing or unknown.
    """
    platform: Platform = request.app.state.platform
    client = request.client.host if request.client else "local"
    return await resolve_actor(platform, request.headers.get("x-api-key"), request.headers.get("authorization"),
                               client)


async def resolve_actor(platform: Platform, api_key: str | None, authorization: str | None, client: str) -> str:
    """:func:`require_actor` from raw header values (shared with the decision fast path)."""
    if not platform.settings.auth_required:
        return f"anonymous@{client}"
    raw = api_key
    if not raw:
        auth = authorization or ""
        if auth.lower().startswith("bearer "):
            raw = auth[7:].strip()
    if not raw:
        raise AuthError("missing API key: send it in the X-API-Key header")
    name = platform.cached_api_key(raw)
    if name is None:
        from starlette.concurrency import run_in_threadpool

        name = await run_in_threadpool(platform.verify_api_key, raw)
    if name is None:
        raise AuthError("unknown or revoked API key")
    return name
