"""``fsbrain web proxy``: an async reverse proxy with the WAF in front of an upstream site.

By default (``--server fast``) the proxy is served by :mod:`fsbrain.domains.web.proxy_server` (raw asyncio
protocols and httptools on both sides, the same WAF configuration and answers). This module holds the
upstream URL handling and the ASGI form (``--server asgi``): an ASGI app served by uvicorn (httptools; uvloop when installed): the
:class:`~fsbrain.domains.web.middleware.FsbrainWAFMiddleware` inspects each request; what passes is sent to
the upstream over a pool of keep-alive HTTP/1.1 connections (plain asyncio streams, responses parsed by
httptools, the C parser uvicorn itself uses) and the upstream's answer is streamed back chunk by chunk (no
buffering of response bodies). Hop-by-hop headers are dropped both ways; ``X-Forwarded-For`` /
``X-Forwarded-Proto`` / ``X-Forwarded-Host`` and ``X-Request-Id`` are added. An unreachable or failing
upstream answers 502 (JSON) with the request id. A pooled connection the upstream closed while idle is
retried once on a fresh one when the request body was already buffered.

Run: ``fsbrain web proxy --upstream http://127.0.0.1:8000 --listen 127.0.0.1:8080 --mode block
[--workers 4] [--server fast|asgi]`` (several worker processes share the listening socket; inspection is CPU-bound, so use
about one per core).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from typing import Any
from urllib.parse import urlsplit

import httptools

from fsbrain.core.errors import InputError
from fsbrain.domains.web.middleware import FsbrainWAFMiddleware, Receive, Scope, Send

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                        b"trailers", b"transfer-encoding", b"upgrade", b"host", b"content-length", b"expect"})
_READ = 65536


class UpstreamError(Exception):
    """The upstream could not be reached or answered something that is not HTTP."""


class _Response:
    """httptools callbacks collecting one response: status, headers, body chunks."""

    __slots__ = ("headers", "chunks", "headers_done", "done")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.headers_done = False
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.done = True


def _keep_alive(version: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the upstream keeps the connection open after this response (HTTP/1.1 unless ``Connection:
    close``; HTTP/1.0 only with ``Connection: keep-alive``). httptools' ``should_keep_alive`` is reset once
    the message is complete, so the headers are read here."""
    tokens = b",".join(v for k, v in headers if k.lower() == b"connection").lower()
    if version == "1.1":
        return b"close" not in tokens
    return b"keep-alive" in tokens


class _Conn:
    __slots__ = ("reader", "writer", "reused")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.reused = reader, writer, False

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not raise
            pass


class UpstreamPool:
    """Keep-alive HTTP/1.1 connections to one upstream ``host:port`` (TLS for https).

    Args:
        scheme: ``http`` or ``https``.
        host: upstream host.
        port: upstream port.
        timeout: connect and per-read timeout, seconds.
        max_idle: idle connections kept for reuse.
    """

    def __init__(self, scheme: str, host: str, port: int, *, timeout: float = 30.0, max_idle: int = 200) -> None:
        self.host, self.port, self.timeout, self.max_idle = host, port, timeout, max_idle
        self.ssl = ssl.create_default_context() if scheme == "https" else None
        self.idle: list[_Conn] = []

    async def acquire(self) -> _Conn:
        while self.idle:
            conn = self.idle.pop()
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                conn.reused = True
                return conn
            conn.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.ssl,
                                        server_hostname=self.host if self.ssl else None, limit=_READ),
                self.timeout)
        except (TimeoutError, OSError) as exc:
            raise UpstreamError(f"cannot connect: {type(exc).__name__}") from exc
        return _Conn(reader, writer)

    def release(self, conn: _Conn) -> None:
        if len(self.idle) < self.max_idle and not conn.writer.is_closing():
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class ReverseProxyApp:
    """Forward HTTP requests to ``upstream`` (an ``http(s)://host[:port][/prefix]`` URL).

    Args:
        upstream: base URL of the protected site.
        timeout: upstream connect/read timeout, seconds.
        max_connections: idle upstream connections kept for reuse.
    """

    def __init__(self, upstream: str, *, timeout: float = 30.0, max_connections: int = 200) -> None:
        try:
            url = urlsplit(upstream)
            port = url.port
        except ValueError as exc:
            raise InputError(f"--upstream must be an http(s) URL with a host, got {upstream!r}") from exc
        if url.scheme not in ("http", "https") or not url.hostname:
            raise InputError(f"--upstream must be an http(s) URL with a host, got {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self.prefix = url.path.rstrip("/").encode("latin-1", "replace")
        default_port = 443 if url.scheme == "https" else 80
        try:
            name = url.hostname.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InputError(f"--upstream host is not a valid host name: {url.hostname!r}") from exc
        name = f"[{name}]" if ":" in name else name
        self.host_header = (name if port in (None, default_port) else f"{name}:{port}").encode("ascii")
        self.timeout, self.max_connections = timeout, max_connections
        self.pool = UpstreamPool(url.scheme, url.hostname, port or default_port, timeout=timeout,
                                 max_idle=max_connections)

    async def aclose(self) -> None:
        self.pool.close()

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
        in_headers = scope.get("headers", [])
        path = scope.get("raw_path") or scope["path"].encode("utf-8")
        qs = scope.get("query_string", b"")
        target = self.prefix + path + (b"?" + qs if qs else b"")
        client_ip = (scope.get("client") or ("", 0))[0]
        prior: list[bytes] = []
        host = rid = length = None
        head = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (scope["method"].encode("latin-1"), target, self.host_header)]
        for k, v in in_headers:
            lk = k.lower()
            if lk in HOP_BY_HOP or lk == b"x-forwarded-for":
                if lk == b"x-forwarded-for":
                    prior.append(v)
                elif lk == b"host":
                    host = v
                elif lk == b"content-length":
                    length = v
                continue
            if lk == b"x-request-id":
                rid = v
            head.append(k + b": " + v + b"\r\n")
        xff = b", ".join(prior + [client_ip.encode("latin-1")])
        head.append(b"x-forwarded-for: " + xff + b"\r\nx-forwarded-proto: " + scope.get("scheme", "http").encode()
                    + b"\r\n")
        if host:
            head.append(b"x-forwarded-host: " + host + b"\r\n")

        first = await receive()
        if first["type"] == "http.disconnect":
            return
        body = first.get("body", b"")
        streamed = bool(first.get("more_body"))
        if streamed:
            head.append(b"content-length: " + length + b"\r\n\r\n" if length is not None and length.isdigit()
                        else b"transfer-encoding: chunked\r\n\r\n")
        else:
            head.append(b"content-length: %d\r\n\r\n" % len(body) if body or length is not None else b"\r\n")
        request_head = b"".join(head)
        chunked = streamed and not (length is not None and length.isdigit())
        started = False
        for attempt in (0, 1):
            conn: _Conn | None = None
            try:
                conn = await self.pool.acquire()
                conn.writer.write(request_head)
                if streamed:
                    await self._stream_body(conn, receive, body, chunked)
                elif body:
                    conn.writer.write(body)
                await conn.writer.drain()
                started = await self._relay(conn, scope["method"] == "HEAD", send)
                return
            except (TimeoutError, UpstreamError, OSError, httptools.HttpParserError) as exc:
                if conn is not None:
                    conn.close()
                if (attempt == 0 and not started and not streamed and conn is not None and conn.reused
                        and isinstance(exc, (UpstreamError, ConnectionError))):
                    continue  # an idle connection the upstream had closed: once more on a fresh one
                if not started:
                    await self._bad_gateway(send, exc, (rid or b"").decode("latin-1"))
                return

    @staticmethod
    async def _stream_body(conn: _Conn, receive: Receive, first: bytes, chunked: bool) -> None:
        w = conn.writer
        chunk, more = first, True
        while True:
            if chunk:
                w.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                await w.drain()
            if not more:
                break
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise UpstreamError("client went away")
            chunk, more = msg.get("body", b""), bool(msg.get("more_body"))
        if chunked:
            w.write(b"0\r\n\r\n")

    async def _relay(self, conn: _Conn, head_only: bool, send: Send) -> bool:
        """Read the upstream response and stream it to the client; the connection goes back to the pool
        when the upstream keeps it alive. Returns whether the response start was sent."""
        res = _Response()
        parser = httptools.HttpResponseParser(res)
        reader, timeout = conn.reader, self.timeout
        started = False
        got_bytes = False
        while True:
            async with asyncio.timeout(timeout):  # no extra task per read, unlike asyncio.wait_for
                data = await reader.read(_READ)
            if not data:  # EOF
                if not got_bytes:
                    raise UpstreamError("connection closed before a response")
                if not res.headers_done:
                    raise UpstreamError("connection closed in the response head")
                res.done = True  # a body delimited by the end of the connection
                conn.writer.close()
                conn = None  # type: ignore[assignment]
            else:
                got_bytes = True
                parser.feed_data(data)
            status = parser.get_status_code() if res.headers_done else 0
            if res.headers_done and status < 200:  # 1xx interim answer: wait for the final one
                res = _Response()
                parser = httptools.HttpResponseParser(res)
                continue
            if res.headers_done and not started:
                out = [(k, v) for k, v in res.headers if k.lower() not in HOP_BY_HOP]
                for k, v in res.headers:
                    if k.lower() == b"content-length":
                        out.append((b"content-length", v))
                        break
                await send({"type": "http.response.start", "status": status, "headers": out})
                started = True
                if head_only:
                    res.done, res.chunks = True, []
            if res.chunks:
                chunks, res.chunks = res.chunks, []
                last = len(chunks) - 1 if res.done else -1  # a complete response ends with its last chunk
                for i, c in enumerate(chunks):
                    await send({"type": "http.response.body", "body": c, "more_body": i != last})
            elif res.done:
                await send({"type": "http.response.body", "body": b""})
            if res.done:
                if conn is not None:
                    if _keep_alive(parser.get_http_version(), res.headers) and not head_only:
                        self.pool.release(conn)
                    else:
                        conn.close()
                return True

    async def _bad_gateway(self, send: Send, exc: BaseException, rid: str) -> None:
        body = json.dumps({"error": "bad_gateway", "message": f"upstream {self.upstream} failed: "
                           f"{type(exc).__name__}", "request_id": rid}).encode()
        await send({"type": "http.response.start", "status": 502,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


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


ENV_CONFIG = "FSBRAIN_WEB_PROXY"
ENV_VERDICT_CACHE = "FSBRAIN_WEB_VERDICT_CACHE"


def _worker_waf(cfg: dict[str, Any]) -> FsbrainWAFMiddleware:
    """The WAF + proxy of one ``--workers`` process, built from its JSON options."""
    from fsbrain.domains.web.cc import CCDetector
    from fsbrain.domains.web.inspector import WebInspector

    model: Any = False if cfg.get("no_model") else cfg.get("model")
    insp = WebInspector(paranoia=cfg["paranoia"], rules=cfg.get("crs"), model=model)
    cc = CCDetector.from_redis(cfg["redis"]) if cfg.get("redis") else (CCDetector() if cfg.get("cc") else None)
    return make_proxy_app(cfg["upstream"], mode=cfg["mode"], inspector=insp, cc=cc,
                          verdict_cache=int(cfg.get("verdict_cache", 4096)))


def worker_app() -> _Lifespan:
    """The app of one ``--workers`` process (``--server asgi``), built from the JSON options in
    ``$FSBRAIN_WEB_PROXY``."""
    from fsbrain.speedups import settle_heap

    app = _Lifespan(_worker_waf(json.loads(os.environ[ENV_CONFIG])))
    settle_heap()
    return app


SERVERS = ("fast", "asgi")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _run_fast(waf: FsbrainWAFMiddleware, host: str | None, port: int | None, sock: Any = None) -> None:
    """Serve ``waf`` with :class:`~fsbrain.domains.web.proxy_server.FastProxyServer` until SIGINT/SIGTERM."""
    import signal

    from fsbrain.domains.web.proxy_server import FastProxyServer
    from fsbrain.speedups import settle_heap

    settle_heap()  # the loaded rules and model stay out of full garbage collections (pauses of ~10-20 ms)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await FastProxyServer(waf).serve_forever(host, port, sock=sock, stop=stop)

    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(main())


def _supervise(cfg: dict[str, Any], host: str, port: int, workers: int) -> None:
    """Bind once, fork ``workers`` processes serving the socket, restart one that dies, stop all on
    SIGINT/SIGTERM."""
    import signal
    import socket
    import sys
    import time
    import traceback

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    children: dict[int, float] = {}
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _run_fast(_worker_waf(cfg), None, None, sock=sock)
            except BaseException:  # noqa: BLE001 - report and leave; the supervisor restarts the worker
                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        children[pid] = time.monotonic()

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for _ in range(workers):
        spawn()
    try:
        while children:
            try:
                pid, _status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if not stopping and started is not None:
                if time.monotonic() - started < 1.0:
                    time.sleep(1.0)  # a worker that dies at once: do not spin
                spawn()
    finally:
        sock.close()


def serve(upstream: str, *, listen: str = "127.0.0.1:8080", mode: str = "detect", inspector: Any = None,
          paranoia: int = 1, cc: Any = None, log_level: str = "warning", workers: int = 1,
          worker_options: dict[str, Any] | None = None, server: str = "fast", verdict_cache: int | None = None) -> None:
    """Run the proxy in the foreground until interrupted.

    ``server="fast"`` (default) serves it with the raw asyncio/httptools server of
    :mod:`fsbrain.domains.web.proxy_server`; ``server="asgi"`` with uvicorn and the ASGI middleware. With
    ``workers > 1``, that many processes share the listening socket; each builds its own inspector from
    ``worker_options`` (``paranoia``, ``crs``, ``model``, ``no_model``, ``cc``, ``redis``,
    ``verdict_cache``): in-process CC state is then per worker (use ``redis`` to share it).
    ``verdict_cache`` is the number of verdicts remembered for repeated identical requests (0: off; see
    :class:`~fsbrain.domains.web.inspector.VerdictCache`); default ``$FSBRAIN_WEB_VERDICT_CACHE``, else 4096.
    """
    if verdict_cache is None:
        env = os.environ.get(ENV_VERDICT_CACHE, "").strip()
        if env and not env.isdigit():
            raise InputError(f"${ENV_VERDICT_CACHE} must be a number of verdicts (0: off), got {env!r}")
        verdict_cache = int(env) if env else 4096
    if server not in SERVERS:
        raise InputError(f"--server must be one of {SERVERS}, got {server!r}")
    host, port = parse_listen(listen)
    cfg = {"upstream": upstream, "mode": mode, "paranoia": paranoia, "verdict_cache": verdict_cache,
           **(worker_options or {})}
    if server == "fast":
        if workers > 1:
            _supervise(cfg, host, port, workers)
        else:
            _run_fast(make_proxy_app(upstream, mode=mode, inspector=inspector, paranoia=paranoia, cc=cc,
                                     verdict_cache=int(cfg["verdict_cache"])), host, port)
        return
    import uvicorn

    common: dict[str, Any] = {"host": host, "port": port, "log_level": log_level, "access_log": False,
                              "lifespan": "on", "server_header": False, "date_header": False}
    if workers > 1:
        os.environ[ENV_CONFIG] = json.dumps(cfg)
        uvicorn.run("fsbrain.domains.web.proxy:worker_app", factory=True, workers=workers, **common)
        return
    app = _Lifespan(make_proxy_app(upstream, mode=mode, inspector=inspector, paranoia=paranoia, cc=cc,
                                   verdict_cache=int(cfg["verdict_cache"])))
    from fsbrain.speedups import settle_heap

    settle_heap()
    uvicorn.run(app, **common)
