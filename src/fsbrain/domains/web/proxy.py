"""``fsbrain web proxy``: an async reverse proxy with the WAF in front of an upstream site.

The proxy is an ASGI app served by uvicorn (uvloop + httptools when installed): the
:class:`~fsbrain.domains.web.middleware.FsbrainWAFMiddleware` inspects each request; what passes is sent to
the upstream with one pooled :class:`httpx.AsyncClient` (keep-alive connections reused across requests) and
the upstream's answer is streamed back chunk by chunk (no buffering of response bodies). Hop-by-hop headers
are dropped both ways; ``X-Forwarded-For`` / ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` and
``X-Request-Id`` are added. An unreachable upstream answers 502 (JSON or text) with the request id.

Run: ``fsbrain web proxy --upstream http://127.0.0.1:8000 --listen 127.0.0.1:8080 --mode block``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from fsbrain.core.errors import InputError
from fsbrain.domains.web.middleware import FsbrainWAFMiddleware, Receive, Scope, Send

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                        b"trailers", b"transfer-encoding", b"upgrade", b"host", b"content-length"})


class ReverseProxyApp:
    """Forward HTTP requests to ``upstream`` (an ``http(s)://host[:port][/prefix]`` URL).

    Args:
        upstream: base URL of the protected site.
        timeout: upstream connect/read timeout, seconds.
        max_connections: size of the upstream connection pool.
    """

    def __init__(self, upstream: str, *, timeout: float = 30.0, max_connections: int = 200) -> None:
        url = httpx.URL(upstream)
        if url.scheme not in ("http", "https") or not url.host:
            raise InputError(f"--upstream must be an http(s) URL with a host, got {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self.timeout, self.max_connections = timeout, max_connections
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout), follow_redirects=False, trust_env=False,
                limits=httpx.Limits(max_connections=self.max_connections,
                                    max_keepalive_connections=self.max_connections))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await self.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        qs = scope.get("query_string", b"").decode("latin-1")
        url = self.upstream + path + (f"?{qs}" if qs else "")
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in HOP_BY_HOP]
        client_ip = (scope.get("client") or ("", 0))[0]
        prior = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-forwarded-for"]
        headers = [(k, v) for k, v in headers if k != b"x-forwarded-for"]
        headers.append((b"x-forwarded-for", ", ".join(prior + [client_ip]).encode("latin-1")))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        host = dict(scope.get("headers", [])).get(b"host")
        if host:
            headers.append((b"x-forwarded-host", host))

        first = await receive()
        if first["type"] == "http.disconnect":
            return

        async def body_stream() -> Any:
            yield first.get("body", b"")
            more = True
            while more:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return
                if msg.get("body"):
                    yield msg["body"]
                more = msg.get("more_body", False)

        content: Any = body_stream() if first.get("more_body") else (first.get("body") or None)
        req = self.client.build_request(scope["method"], url, headers=headers, content=content)
        rid = dict(scope.get("headers", [])).get(b"x-request-id", b"")
        try:
            resp = await self.client.send(req, stream=True)
        except httpx.HTTPError as exc:
            body = json.dumps({"error": "bad_gateway", "message": f"upstream {self.upstream} failed: "
                               f"{type(exc).__name__}", "request_id": rid.decode()}).encode()
            await send({"type": "http.response.start", "status": 502,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        try:
            out_headers = [(k, v) for k, v in resp.headers.raw if k.lower() not in HOP_BY_HOP]
            if "content-length" in resp.headers:  # raw bytes are relayed, so the upstream's length holds
                out_headers.append((b"content-length", resp.headers["content-length"].encode()))
            await send({"type": "http.response.start", "status": resp.status_code, "headers": out_headers})
            async for chunk in resp.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await resp.aclose()


def make_proxy_app(upstream: str, *, mode: str = "detect", inspector: Any = None, paranoia: int = 1,
                   cc: Any = None, bots: Any = None, **waf: Any) -> FsbrainWAFMiddleware:
    """The WAF middleware wrapped around a :class:`ReverseProxyApp` for ``upstream``."""
    return FsbrainWAFMiddleware(ReverseProxyApp(upstream), mode=mode, inspector=inspector, paranoia=paranoia,
                                cc=cc, bots=bots, **waf)


class _Lifespan:
    """Pass lifespan events to the proxy (the middleware forwards only HTTP)."""

    def __init__(self, waf: FsbrainWAFMiddleware) -> None:
        self.waf = waf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.waf.app(scope, receive, send)
        else:
            await self.waf(scope, receive, send)


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` -> ``(host, port)``.

    >>> parse_listen("127.0.0.1:8080")
    ('127.0.0.1', 8080)
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def serve(upstream: str, *, listen: str = "127.0.0.1:8080", mode: str = "detect", inspector: Any = None,
          paranoia: int = 1, cc: Any = None, log_level: str = "warning") -> None:
    """Run the proxy in the foreground with uvicorn until interrupted."""
    import uvicorn

    host, port = parse_listen(listen)
    app = _Lifespan(make_proxy_app(upstream, mode=mode, inspector=inspector, paranoia=paranoia, cc=cc))
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                server_header=False, date_header=False)
