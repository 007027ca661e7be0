"""The fast server of ``fsbrain web proxy``: raw asyncio protocols and httptools on both sides.

:mod:`fsbrain.domains.web.proxy` serves the proxy as an ASGI app under uvicorn (``--server asgi``), which
costs two Python HTTP stacks per request (uvicorn's request/response cycle and ASGI messages in front, an
asyncio-streams client behind) and three socket writes. This module does the same job with one callback
object per connection and no task or coroutine per request in the common case:

* client side: an :class:`asyncio.Protocol` fed to ``httptools.HttpRequestParser``; a request whose body
  is complete (or exceeds ``max_body_bytes``) is inspected synchronously with the middleware's own
  inspector, CC and bot detectors, limits, block pages and request ids
  (:class:`~fsbrain.domains.web.middleware.FsbrainWAFMiddleware` holds the configuration and its helpers
  are reused, so both servers give the same verdicts and answers), through the middleware's exact verdict
  cache for repeated identical requests (:class:`~fsbrain.domains.web.inspector.VerdictCache`; CC and bot
  state are updated on every request); the verdict goes to ``on_verdict`` (the alert: an attack logged as
  JSON by default) once the answer or the forwarded request has been written, so a slow alert sink never
  delays the answer, and a hook that raises is logged without failing the request;
* upstream side: keep-alive connections that are protocols too, responses parsed by
  ``httptools.HttpResponseParser`` and written to the client from its callbacks: the response head goes
  out with the first body chunk (one ``send`` for a typical response), bodies are streamed (re-chunked to
  HTTP/1.1 clients when the upstream gave no length), with flow control both ways (a slow reader pauses the
  other side).

Behaviour kept from the ASGI server: modes, 403/413/431/429/challenge answers (HTML or JSON) with request
ids, ``X-Request-Id`` on every response and towards the upstream, request bodies beyond ``max_body_bytes``
streamed on in detect mode (``Content-Length`` kept, else chunked) and refused with 413 in block mode,
hop-by-hop headers dropped both ways (with the ones the ``Connection`` header names),
``X-Forwarded-For/Proto/Host`` added, ``Expect: 100-continue`` answered, 502 JSON when the upstream fails
before answering, one retry on a fresh connection when a pooled idle connection turns out closed and the
body was buffered, an inactivity timeout on the upstream (checked by the server's sweep, at most
``timeout / 2`` or 1 s apart: no timer per request), pipelined requests answered in order, idle
keep-alive client connections closed after ``keep_alive_timeout`` (5 s, as uvicorn) and 408 for a request
that has not fully arrived within ``request_timeout`` (30 s).
Malformed requests get 400 (JSON) and the connection is closed; request heads beyond
``max_head_bytes`` (default 16 × the middleware's ``max_header_bytes``) get 431 in both modes, since they
cannot be buffered; ``CONNECT`` and protocol upgrades are not proxied (405 / upgrade headers dropped).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from http import HTTPStatus
from typing import Any

import httptools

from fsbrain.core.errors import InputError
from fsbrain.domains.web.middleware import (
    FsbrainWAFMiddleware,
    _clean_request_id,
    block_response,
    fold_headers,
)
from fsbrain.domains.web.proxy import HOP_BY_HOP, ReverseProxyApp, UpstreamError

log = logging.getLogger("fsbrain.web.proxy")
_REASONS = {int(s): s.phrase.encode() for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"


class _TooLarge(Exception):
    pass


def _run_sync(coro: Any) -> Any:
    """Run a coroutine that never really suspends (the middleware's helpers awaiting a capturing send)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a WAF helper suspended")  # pragma: no cover - CC backends are synchronous


def _response_bytes(status: int, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool) -> bytes:
    head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
    head += [k + b": " + v + b"\r\n" for k, v in headers]
    if not keep_alive:
        head.append(b"connection: close\r\n")
    head.append(b"\r\n")
    return b"".join(head) + body


class _Request:
    __slots__ = ("url", "headers", "hbytes", "hsize", "method", "version", "keep_alive", "body", "size", "done",
                 "dispatched", "exchange", "discard", "expect")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.hbytes = 0
        self.hsize = 0  # header bytes as the WAF counts them (name + value + 4 per header)
        self.method = b"GET"
        self.version = "1.1"
        self.keep_alive = True
        self.body: list[bytes] = []
        self.size = 0
        self.done = self.dispatched = self.discard = self.expect = False
        self.exchange: _Exchange | None = None


class _UpConn(asyncio.Protocol):
    """One keep-alive connection to the upstream; parser callbacks go to the current exchange."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.ex: _Exchange | None = None
        self.reused = self.paused = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        ex = self.ex
        if ex is None:  # bytes nobody asked for: the connection is no longer in sync
            self.close()
            return
        ex.got_bytes = True
        ex.last = ex.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.ex is ex:
                ex.fail(exc)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        ex = self.ex
        if ex is None:
            try:
                self.pool.idle.remove(self)
            except ValueError:
                pass
            return
        ex.upstream_closed(exc)

    def pause_writing(self) -> None:
        if self.ex is not None:
            self.ex.client.pause_reading()

    def resume_writing(self) -> None:
        if self.ex is not None:
            self.ex.client.resume_reading()

    def close(self) -> None:
        self.ex = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.ex is not None:
            self.ex.resp_headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.ex is not None:
            self.ex.resp_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.ex is not None:
            self.ex.on_response_head(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        if self.ex is not None:
            self.ex.on_response_body(body)

    def on_message_complete(self) -> None:
        if self.ex is not None:
            self.ex.on_response_complete(False)


class _Pool:
    def __init__(self, app: ReverseProxyApp, loop: asyncio.AbstractEventLoop) -> None:
        p = app.pool
        self.host, self.port, self.ssl, self.timeout, self.max_idle = p.host, p.port, p.ssl, p.timeout, p.max_idle
        self.loop = loop
        self.idle: list[_UpConn] = []

    def take(self) -> _UpConn | None:
        while self.idle:
            conn = self.idle.pop()
            if conn.transport is not None and not conn.transport.is_closing():
                conn.reused = True
                return conn
        return None

    async def connect(self) -> _UpConn:
        try:
            async with asyncio.timeout(self.timeout):
                _, conn = await self.loop.create_connection(
                    lambda: _UpConn(self), self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None)
        except (TimeoutError, OSError) as exc:
            raise UpstreamError(f"cannot connect: {type(exc).__name__}") from exc
        return conn

    def release(self, conn: _UpConn) -> None:
        conn.ex = None
        if conn.paused and conn.transport is not None:
            conn.transport.resume_reading()
            conn.paused = False
        if len(self.idle) < self.max_idle and conn.transport is not None and not conn.transport.is_closing():
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class _Exchange:
    """One request forwarded to the upstream and its response relayed back. Upstream inactivity is checked
    by the server's once-a-second sweep (no timer per request)."""

    __slots__ = ("client", "req", "rid", "head", "chunked", "server", "loop", "streamed", "pending", "up",
                 "got_bytes", "started", "finished", "interim", "head_only", "retried", "resp_headers",
                 "out_mode", "eof_body", "pending_head", "last", "timed", "task", "up_keep")

    def __init__(self, client: _Client, req: _Request, rid: bytes, head: bytes, chunked: bool) -> None:
        self.client, self.req, self.rid, self.head, self.chunked = client, req, rid, head, chunked
        self.server = client.server
        self.loop = client.server.loop
        self.streamed = not req.done
        self.pending: list[bytes] = list(req.body)
        self.up: _UpConn | None = None
        self.got_bytes = self.started = self.finished = self.interim = self.head_only = False
        self.retried = False
        self.resp_headers: list[tuple[bytes, bytes]] = []
        self.out_mode = "length"  # or "chunked" / "eof" / "none"
        self.eof_body = False
        self.pending_head: bytes | None = None
        self.last = 0.0
        self.timed = False  # attached once: the upstream inactivity timeout runs
        self.up_keep = False  # the upstream keeps the connection after this response
        self.task: Any = None
        self.head_only = req.method == b"HEAD"

    # -- sending the request
    def start(self) -> None:
        conn = self.server.pool.take()
        if conn is not None:
            self.attach(conn)
        else:
            self.task = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            conn = await self.server.pool.connect()
        except UpstreamError as exc:
            self.task = None
            if not self.finished:
                self.fail(exc)
            return
        self.task = None
        if self.finished:  # the client went away meanwhile
            self.server.pool.release(conn)
            return
        self.attach(conn)

    def attach(self, conn: _UpConn) -> None:
        self.up = conn
        conn.ex = self
        self.last = self.loop.time()
        self.timed = True
        body = self.pending
        if not self.streamed:
            conn.transport.write(self.head + b"".join(body) if body else self.head)
            return
        out = [self.head]
        for chunk in body:
            if chunk:
                out.append(b"%x\r\n%s\r\n" % (len(chunk), chunk) if self.chunked else chunk)
        if self.req.done and self.chunked:
            out.append(_LAST_CHUNK)
        self.pending = []
        conn.transport.write(b"".join(out))

    def feed_body(self, chunk: bytes) -> None:
        """More of a streamed request body."""
        if not chunk:
            return
        if self.up is None or self.up.transport is None:
            self.pending.append(chunk)
            return
        self.up.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if self.chunked else chunk)

    def end_body(self) -> None:
        if self.chunked and self.up is not None and self.up.transport is not None:
            self.up.transport.write(_LAST_CHUNK)

    def check_timeout(self, now: float) -> None:
        """Called by the server's sweep: fail the exchange when the upstream has been silent too long."""
        if self.timed and not self.finished and now - self.last >= self.server.timeout:
            self.fail(TimeoutError())

    # -- the response
    def on_response_head(self, status: int) -> None:
        if status < 200:  # 1xx interim answer: wait for the final one
            self.interim = True
            return
        req = self.req
        out = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
        length = conn_tokens = None
        chunked_in = False
        for k, v in self.resp_headers:
            lk = k.lower()
            if lk in HOP_BY_HOP:
                if lk == b"connection":
                    conn_tokens = v if conn_tokens is None else conn_tokens + b"," + v
                elif lk == b"transfer-encoding":
                    chunked_in = b"chunked" in v.lower()
                elif lk == b"content-length":
                    length = v
                continue
            if lk != b"x-request-id":
                out.append(k + b": " + v + b"\r\n")
        if conn_tokens is None:
            self.up_keep = self.up.parser.get_http_version() == "1.1" if self.up is not None else False
        else:
            tokens = conn_tokens.lower()
            self.up_keep = self.up is not None and (
                b"close" not in tokens if self.up.parser.get_http_version() == "1.1" else b"keep-alive" in tokens)
            named = {t.strip() for t in tokens.split(b",")} - HOP_BY_HOP
            if named:  # headers the Connection header names are hop-by-hop too
                out = out[:1] + [k + b": " + v + b"\r\n" for k, v in self.resp_headers
                                 if k.lower() not in named and k.lower() not in HOP_BY_HOP
                                 and k.lower() != b"x-request-id"]
        if self.head_only or status in (204, 304):
            self.out_mode = "none"
            if length is not None:
                out.append(b"content-length: " + length + b"\r\n")
        elif length is not None and not chunked_in:
            out.append(b"content-length: " + length + b"\r\n")
        elif req.version == "1.1":
            self.out_mode = "chunked"
            out.append(b"transfer-encoding: chunked\r\n")
        else:
            self.out_mode = "eof"
            req.keep_alive = False
        self.eof_body = length is None and not chunked_in and self.out_mode != "none"
        out.append(b"x-request-id: " + self.rid + b"\r\n")
        if not req.keep_alive or (self.streamed and not req.done):
            req.keep_alive = False
            out.append(b"connection: close\r\n")
        elif req.version == "1.0":
            out.append(b"connection: keep-alive\r\n")
        out.append(b"\r\n")
        self.started = True
        self.pending_head = b"".join(out)
        if self.head_only:
            self.on_response_complete(False)

    def on_response_body(self, body: bytes) -> None:
        if self.interim or self.finished or self.head_only:
            return
        if self.out_mode == "chunked":
            body = b"%x\r\n%s\r\n" % (len(body), body)
        if self.pending_head is not None:
            body = self.pending_head + body
            self.pending_head = None
        self.client.write(body)

    def on_response_complete(self, eof: bool) -> None:
        if self.interim:
            self.interim = False
            return
        if self.finished:
            return
        tail = _LAST_CHUNK if self.out_mode == "chunked" else b""
        if self.pending_head is not None:
            tail = self.pending_head + tail
            self.pending_head = None
        if tail:
            self.client.write(tail)
        conn = self.up
        self.up = None
        if conn is not None:
            if not eof and not self.head_only and self.req.done and conn.transport is not None and self.up_keep:
                self.server.pool.release(conn)
            else:
                conn.close()
        self._finish()

    # -- failures
    def upstream_closed(self, exc: Exception | None) -> None:
        conn, self.up = self.up, None
        if conn is not None:
            conn.ex = None
        if self.finished:
            return
        if self.started and self.eof_body and exc is None:
            self.on_response_complete(True)  # a body delimited by the end of the connection
            return
        self.fail(exc or UpstreamError("connection closed before a response" if not self.got_bytes
                                       else "connection closed in the response"), conn)

    def fail(self, exc: BaseException, conn: _UpConn | None = None) -> None:
        conn = conn or self.up
        self.up = None
        if conn is not None:
            conn.close()
        if self.finished:
            return
        if (not self.retried and not self.got_bytes and not self.started and not self.streamed and conn is not None
                and conn.reused and isinstance(exc, (UpstreamError, ConnectionError))):
            self.retried = True  # an idle connection the upstream had closed: once more on a fresh one
            self.task = self.loop.create_task(self._connect())
            return
        if self.started:  # the client has part of the response: all we can do is cut it
            self.finished = True
            self.client.abort()
            self._cancel()
            return
        body = json.dumps({"error": "bad_gateway", "message": f"upstream {self.server.upstream} failed: "
                           f"{type(exc).__name__}", "request_id": self.rid.decode("latin-1")}).encode()
        self.client.write(_response_bytes(
            502, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                  (b"x-request-id", self.rid)], body, self.req.keep_alive and self.req.done))
        if not self.req.done:
            self.req.keep_alive = False
        self._finish()

    def abort(self) -> None:
        """The client went away."""
        if self.finished:
            return
        self.finished = True
        self._cancel()
        if self.up is not None:
            self.up.close()
            self.up = None

    def _cancel(self) -> None:
        self.timed = False
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def _finish(self) -> None:
        self.finished = True
        self.timed = False
        self.client.exchange_done(self.req)


class _Client(asyncio.Protocol):
    """One client connection: parse requests, inspect, answer or forward, in order."""

    def __init__(self, server: FastProxyServer) -> None:
        self.server = server
        self.waf = server.waf
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.ip = ""
        self.ip_bytes = b""
        self.cur: _Request | None = None
        self.queue: deque[_Request] = deque()
        self.active: _Request | None = None
        self.closed = self.reading_paused = self.write_paused = self.upgraded = self.too_large = False
        self.in_next = False
        self.last = 0.0

    def check_idle(self, now: float) -> None:
        """Close a keep-alive connection idle for ``keep_alive_timeout``; answer 408 to a request whose
        head or body has not arrived within ``request_timeout`` (slow clients hold no connection forever)."""
        if self.closed:
            return
        if self.active is not None and self.active.discard and now - self.last > self.server.request_timeout:
            self.closed = True  # answered early, and the rest of the body never came
            self.transport.close()
            return
        if self.active is not None or self.queue:
            return
        cur = self.cur
        partial = cur is not None and not cur.done
        if partial and now - self.last > self.server.request_timeout:
            rid = _clean_request_id(None)
            body = json.dumps({"error": "request_timeout", "message": "the request did not arrive in time",
                               "request_id": rid}).encode()
            self.write(_response_bytes(408, [(b"content-type", b"application/json"),
                                             (b"content-length", str(len(body)).encode()),
                                             (b"x-request-id", rid.encode())], body, False))
            self.closed = True
            self.transport.close()
        elif not partial and now - self.last > self.server.keep_alive_timeout:
            self.closed = True
            self.transport.close()

    # -- transport
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else ""
        self.ip_bytes = self.ip.encode("latin-1", "replace")
        self.last = self.server.loop.time()
        self.server.clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.clients.discard(self)
        if self.active is not None and self.active.exchange is not None:
            self.active.exchange.abort()
        self.queue.clear()

    def pause_writing(self) -> None:
        self.write_paused = True
        ex = self.active.exchange if self.active is not None else None
        if ex is not None and ex.up is not None and ex.up.transport is not None:
            ex.up.transport.pause_reading()
            ex.up.paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        ex = self.active.exchange if self.active is not None else None
        if ex is not None and ex.up is not None and ex.up.paused and ex.up.transport is not None:
            ex.up.transport.resume_reading()
            ex.up.paused = False

    def pause_reading(self) -> None:
        if not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.upgraded or self.closed:
            return  # bytes after an upgrade request: not HTTP any more, ignored until the answer closes
        self.last = self.server.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.upgraded = True  # the request itself is complete; the connection closes after its answer
            if self.active is not None:
                self.active.keep_alive = False
            for r in self.queue:
                r.keep_alive = False
        except httptools.HttpParserError as exc:
            if self.too_large:
                self._refuse(431, f"max_head_bytes={self.server.max_head_bytes}")
            else:
                self._refuse(400, str(exc) or type(exc).__name__)

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request that cannot be parsed or buffered, then close (pipelined answers first)."""
        if self.closed:
            return
        if self.active is not None and self.active.exchange is not None:
            self.active.exchange.abort()
        rid = _clean_request_id(None)
        if status == 431:
            status, headers, body = block_response(431, rid, accept="application/json", limit=message)
        else:
            body = json.dumps({"error": "bad_request", "message": f"malformed HTTP request: {message}",
                               "request_id": rid}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"x-request-id", rid.encode())]
        self.write(_response_bytes(status, headers, body, False))
        self.closed = True
        self.transport.close()
        self._alert(rid, {"attack": True, "score": 0, "labels": ["web_protocol"], "rules": [], "reasons": [],
                          "limits_hit": ["max_head_bytes"] if status == 431 else [], "errors": [message]})

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self.cur = _Request()
        if self.active is not None or self.queue:
            self.pause_reading()  # pipelining: one request ahead at most

    def on_url(self, url: bytes) -> None:
        cur = self.cur
        cur.url += url  # type: ignore[union-attr]
        cur.hbytes += len(url)  # type: ignore[union-attr]
        if cur.hbytes > self.server.max_head_bytes:  # type: ignore[union-attr]
            self.too_large = True
            raise _TooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        cur = self.cur
        cur.headers.append((name.lower(), value))  # type: ignore[union-attr]
        n = len(name) + len(value) + 4
        cur.hsize += n  # type: ignore[union-attr]
        cur.hbytes += n  # type: ignore[union-attr]
        if cur.hbytes > self.server.max_head_bytes:  # type: ignore[union-attr]
            self.too_large = True
            raise _TooLarge

    def on_headers_complete(self) -> None:
        cur = self.cur
        p = self.parser
        cur.method = p.get_method()  # type: ignore[union-attr]
        cur.version = p.get_http_version()  # type: ignore[union-attr]
        cur.keep_alive = p.should_keep_alive()  # type: ignore[union-attr]
        for k, v in cur.headers:  # type: ignore[union-attr]
            if k == b"expect" and v.lower() == b"100-continue":
                cur.expect = True  # type: ignore[union-attr]
        if cur.expect and self.active is None and not self.queue:  # type: ignore[union-attr]
            self.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        cur = self.cur
        if cur is None or cur.discard:
            return
        if cur.exchange is not None:
            cur.exchange.feed_body(body)
            return
        cur.body.append(body)
        cur.size += len(body)
        if cur.size > self.waf.max_body_bytes and not cur.dispatched and self.active is None and not self.queue:
            self._dispatch(cur)  # beyond the inspected size: decide now, stream the rest

    def on_message_complete(self) -> None:
        cur = self.cur
        if cur is None:
            return
        cur.done = True
        if cur.dispatched:
            if cur.exchange is not None and not cur.exchange.finished:
                cur.exchange.end_body()
            elif cur.discard and cur.exchange is None:  # answered early; the rest of the body is now read
                if self.active is cur:
                    self.active = None
                if not cur.keep_alive:
                    if not self.closed:
                        self.closed = True
                        self.transport.close()
                else:
                    self._next()
            return
        if self.active is None and not self.queue:
            self._dispatch(cur)
        else:
            self.queue.append(cur)

    # -- per request
    def exchange_done(self, req: _Request) -> None:
        if self.active is req:
            self.active = None
        if not req.done:  # answered before the body was in: the rest is read and dropped, then we close
            req.discard = True
            req.exchange = None
            req.keep_alive = False
            self.active = req
            self.resume_reading()
            return
        if not req.keep_alive or (self.upgraded and not self.queue):
            if not self.closed:
                self.closed = True
                self.transport.close()
            return
        self._next()

    def _next(self) -> None:
        if self.in_next:
            return
        self.in_next = True
        try:
            while self.active is None and self.queue and not self.closed:
                self._dispatch(self.queue.popleft())
            if self.active is None and not self.queue:
                self.resume_reading()
        finally:
            self.in_next = False

    def _answer(self, req: _Request, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if not req.done:  # answered before the whole body arrived: drop the rest, then close
            req.keep_alive = False
        self.write(_response_bytes(status, headers, body, req.keep_alive))

    def _dispatch(self, req: _Request) -> None:
        """Inspect ``req`` (as FsbrainWAFMiddleware does) and answer it or forward it; an unexpected error
        (a bug, a CC backend down) answers 500 with a request id and closes the connection, like uvicorn."""
        req.dispatched = True
        self.active = req
        try:
            self._decide(req)
        except Exception as exc:  # noqa: BLE001 - one request's failure must not take the server down
            log.exception("fsbrain web proxy: internal error on a request")
            if req.exchange is not None:
                req.exchange.abort()
            if self.closed:
                return
            rid = _clean_request_id(None)
            body = json.dumps({"error": "internal_error", "message": f"proxy error: {type(exc).__name__}",
                               "request_id": rid}).encode()
            self.write(_response_bytes(500, [(b"content-type", b"application/json"),
                                             (b"content-length", str(len(body)).encode()),
                                             (b"x-request-id", rid.encode())], body, False))
            self.closed = True
            self.transport.close()

    def _decide(self, req: _Request) -> None:
        waf = self.waf
        url = req.url
        if req.method == b"CONNECT":
            req.keep_alive = False
            body = b'{"error": "method_not_allowed", "message": "CONNECT is not proxied"}'
            self._answer(req, 405, [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())], body)
            self.exchange_done(req)
            return
        if url[:1] == b"/":
            raw_path, _, qs = url.partition(b"?")
            qs = qs.partition(b"#")[0]
        else:
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                parsed = None
            if parsed is None or not parsed.path:
                if url == b"*" and req.method == b"OPTIONS":
                    raw_path, qs = b"*", b""
                else:
                    req.keep_alive = False
                    self._bad_target(req)
                    return
            else:
                raw_path, qs = parsed.path, parsed.query or b""
        headers, hdict = fold_headers(req.headers)
        request_id = _clean_request_id(hdict.get("x-request-id"))
        accept = hdict.get("accept", "")
        limits: list[str] = []
        if req.hsize > waf.max_header_bytes:
            limits.append("max_header_bytes")
        more = not req.done
        if req.size > waf.max_body_bytes:
            limits.append("max_body_bytes")
        body = b"".join(req.body)
        if waf.mode == "block" and limits:
            status = 431 if limits[0] == "max_header_bytes" else 413
            lim = f"{limits[0]}={waf.max_header_bytes if status == 431 else waf.max_body_bytes}"
            req.discard = True
            self._answer(req, *block_response(status, request_id, accept=accept, limit=lim))
            self._alert(request_id, {"attack": True, "score": 0, "labels": ["web_protocol"], "rules": [],
                                     "reasons": [], "limits_hit": limits})
            self.exchange_done(req)
            return
        path_s = raw_path.decode("latin-1")
        uri = path_s + ("?" + qs.decode("latin-1") if qs else "")
        inspected = {"method": req.method.decode("latin-1"), "uri": uri, "headers": headers,
                     "body": body[: waf.max_body_bytes]}
        try:
            verdict = waf.inspect(inspected)
        except InputError as exc:
            verdict = {"attack": True, "score": 0, "labels": ["web_protocol"], "rules": [], "reasons": [],
                       "errors": [exc.message]}
        verdict["limits_hit"] = sorted(set(verdict.get("limits_hit", [])) | set(limits))
        if waf.cc is not None or waf.bots is not None:
            sent: list[dict[str, Any]] = []

            async def capture(msg: dict[str, Any]) -> None:
                sent.append(msg)

            scope = {"type": "http", "path": path_s, "client": (self.ip, 0)}
            blocked = _run_sync(waf._flood_and_bots(scope, capture, hdict, self.ip, request_id, accept, verdict))
            if blocked:
                start, last = sent[0], sent[-1]
                self._answer(req, start["status"], start["headers"], last.get("body", b""))
                self._alert(request_id, verdict)
                self.exchange_done(req)
                return
        if waf.mode == "block" and verdict["attack"]:
            self._answer(req, *block_response(403, request_id, accept=accept, labels=verdict["labels"]))
            self._alert(request_id, verdict)
            self.exchange_done(req)
            return
        self._forward(req, raw_path, qs, request_id.encode(), more)
        self._alert(request_id, verdict)

    def _alert(self, request_id: str, verdict: dict[str, Any]) -> None:
        """Emit the verdict (``on_verdict``: by default an attack is logged as JSON) once the request has
        been answered or sent on, so writing the alert never delays the answer; a hook that raises is
        logged and does not change the answer already given."""
        try:
            self.waf.on_verdict(request_id, verdict)
        except Exception:  # noqa: BLE001 - an alert sink's failure must not fail the request
            log.exception("fsbrain web proxy: on_verdict failed for request %s", request_id)

    def _bad_target(self, req: _Request) -> None:
        rid = _clean_request_id(None)
        body = json.dumps({"error": "bad_request", "message": "malformed HTTP request: request target",
                           "request_id": rid}).encode()
        self._answer(req, 400, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"x-request-id", rid.encode())], body)
        self.exchange_done(req)

    def _forward(self, req: _Request, raw_path: bytes, qs: bytes, rid: bytes, more: bool) -> None:
        server = self.server
        target = server.prefix + raw_path + (b"?" + qs if qs else b"")
        head = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (req.method, target, server.host_header)]
        prior: list[bytes] = []
        host = length = conn_tokens = None
        for k, v in req.headers:
            if k in HOP_BY_HOP:
                if k == b"host":
                    host = v
                elif k == b"content-length":
                    length = v
                elif k == b"connection":
                    conn_tokens = v if conn_tokens is None else conn_tokens + b"," + v
                continue
            if k == b"x-forwarded-for":
                prior.append(v)
            elif k != b"x-request-id":
                head.append(k + b": " + v + b"\r\n")
        if conn_tokens is not None:
            named = {t.strip() for t in conn_tokens.lower().split(b",")} - HOP_BY_HOP - {b"x-forwarded-for"}
            if named:  # headers the Connection header names are hop-by-hop too
                head = head[:1] + [k + b": " + v + b"\r\n" for k, v in req.headers
                                   if k not in HOP_BY_HOP and k not in named and k != b"x-forwarded-for"
                                   and k != b"x-request-id"]
        prior.append(self.ip_bytes)
        head.append(b"x-request-id: " + rid + b"\r\nx-forwarded-for: " + b", ".join(prior)
                    + b"\r\nx-forwarded-proto: http\r\n")
        if host:
            head.append(b"x-forwarded-host: " + host + b"\r\n")
        chunked = False
        if more:
            if length is not None and length.isdigit():
                head.append(b"content-length: " + length + b"\r\n\r\n")
            else:
                chunked = True
                head.append(b"transfer-encoding: chunked\r\n\r\n")
        else:
            head.append(b"content-length: %d\r\n\r\n" % req.size if req.size or length is not None else b"\r\n")
        ex = _Exchange(self, req, rid, b"".join(head), chunked)
        req.exchange = ex
        ex.start()


class FastProxyServer:
    """The proxy served by raw asyncio protocols (see the module docstring).

    Args:
        waf: a :class:`FsbrainWAFMiddleware` around a :class:`ReverseProxyApp` (what
            :func:`~fsbrain.domains.web.proxy.make_proxy_app` returns): mode, inspector, CC and bot
            detectors, limits, ``on_verdict`` and the upstream are taken from it.
        max_head_bytes: request line + headers buffered at most (default 16 × ``waf.max_header_bytes``);
            beyond it the request is refused with 431 in both modes.
    """

    def __init__(self, waf: FsbrainWAFMiddleware, *, max_head_bytes: int | None = None,
                 keep_alive_timeout: float = 5.0, request_timeout: float = 30.0) -> None:
        app = waf.app
        if not isinstance(app, ReverseProxyApp):
            raise InputError("FastProxyServer needs make_proxy_app(...) (the WAF around a ReverseProxyApp)")
        self.waf, self.app = waf, app
        self.upstream, self.prefix, self.host_header, self.timeout = app.upstream, app.prefix, app.host_header, \
            app.timeout
        self.max_head_bytes = max_head_bytes or 16 * waf.max_header_bytes
        self.keep_alive_timeout, self.request_timeout = keep_alive_timeout, request_timeout
        self.clients: set[_Client] = set()
        self._sweeper: Any = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.pool: _Pool = None  # type: ignore[assignment]
        self.server: asyncio.base_events.Server | None = None

    def _protocol(self) -> _Client:
        return _Client(self)

    async def start(self, host: str | None = None, port: int | None = None, *, sock: Any = None,
                    backlog: int = 2048) -> asyncio.base_events.Server:
        """Listen on ``host:port`` (or an already bound ``sock``); returns the asyncio server."""
        self.loop = asyncio.get_running_loop()
        self.pool = _Pool(self.app, self.loop)
        _ = self.waf.inspector  # build the default inspector before the first request
        self._sweep_every = min(1.0, self.keep_alive_timeout / 2, self.request_timeout / 2, self.timeout / 2)
        self._sweeper = self.loop.call_later(self._sweep_every, self._sweep)
        if sock is not None:
            self.server = await self.loop.create_server(self._protocol, sock=sock, backlog=backlog)
        else:
            self.server = await self.loop.create_server(self._protocol, host, port, backlog=backlog,
                                                        reuse_address=True)
        return self.server

    def _sweep(self) -> None:
        now = self.loop.time()
        for client in list(self.clients):
            active = client.active
            if active is not None and active.exchange is not None:
                active.exchange.check_timeout(now)
            client.check_idle(now)
        self._sweeper = self.loop.call_later(self._sweep_every, self._sweep)

    def close(self) -> None:
        """Stop listening, drop idle upstream connections and the idle sweep."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self.server is not None:
            self.server.close()
        if self.pool is not None:
            self.pool.close()

    async def serve_forever(self, host: str | None = None, port: int | None = None, *, sock: Any = None,
                            stop: asyncio.Event | None = None) -> None:
        await self.start(host, port, sock=sock)
        try:
            if stop is None:
                await asyncio.Future()
            else:
                await stop.wait()
        finally:
            self.close()
