"""ASGI middleware: inspect every HTTP request in front of any ASGI app (FastAPI, Starlette, Django ASGI…).

Modes: ``detect`` (inspect, log, pass everything) and ``block`` (answer attacks with 403, CC decisions
with 429 / 403 / a cookie challenge, oversize requests with 413 / 431). Every response carries
``X-Request-Id`` (the client's, if it sent a sane one, else a new id); block answers are an HTML page or JSON
(chosen by ``Accept``) quoting that id, so support can find the verdict in the logs.

Limits: headers beyond ``max_header_bytes`` and bodies beyond ``max_body_bytes`` are named in the verdict's
``limits_hit`` (``max_header_bytes`` / ``max_body_bytes``); in block mode they are refused (431 / 413) with
the limit named, in detect mode only the first ``max_body_bytes`` are inspected and the whole body still
reaches the app.

>>> async def app(scope, receive, send): ...
>>> FsbrainWAFMiddleware(app, mode="detect", inspector=None).mode
'detect'
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from fsbrain.core.errors import InputError
from fsbrain.core.model import new_id

log = logging.getLogger("fsbrain.web.waf")
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
MODES = ("detect", "block")
CHALLENGE_COOKIE = "fsbrain_chk"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">{extra_head}
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.5rem}} code{{background:#f2f2f2;padding:.1rem .3rem}}</style></head>
<body><h1>{title}</h1><p>{message}</p><p>{message_zh}</p>
<p>Request ID / 请求编号: <code>{request_id}</code></p></body></html>
"""
_TEXTS = {
    403: ("Request blocked", "This request was blocked by the site's security policy. If you believe this is a "
          "mistake, contact support and quote the request ID below.", "该请求已被网站安全策略拦截。如有疑问，请联系客服并提供下方请求编号。"),
    413: ("Request too large", "The request exceeds a size limit ({limit}).", "请求超过大小限制（{limit}）。"),
    431: ("Request headers too large", "The request headers exceed a size limit ({limit}).",
          "请求头超过大小限制（{limit}）。"),
    429: ("Too many requests", "Too many requests from your network. Please retry later.", "请求过于频繁，请稍后再试。"),
    200: ("Checking your browser", "One moment: this page reloads by itself. Cookies must be enabled.",
          "请稍候，页面将自动刷新（需要启用 Cookie）。"),
}


def block_response(status: int, request_id: str, *, accept: str = "", labels: list[str] | None = None,
                   limit: str | None = None, extra_headers: list[tuple[bytes, bytes]] | None = None,
                   extra_head: str = "") -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """``(status, headers, body)`` of a block / limit / challenge answer, HTML or JSON by ``Accept``."""
    title, msg, msg_zh = _TEXTS[status]
    msg, msg_zh = msg.format(limit=limit or ""), msg_zh.format(limit=limit or "")
    if "application/json" in accept and "text/html" not in accept:
        body = json.dumps({"error": {403: "request_blocked", 413: "payload_too_large", 431: "headers_too_large",
                                     429: "rate_limited", 200: "challenge"}[status],
                           "message": msg, "request_id": request_id, "labels": labels or [],
                           **({"limit": limit} if limit else {})}).encode()
        ctype = b"application/json"
    else:
        body = _PAGE.format(title=title, message=html.escape(msg), message_zh=html.escape(msg_zh),
                            request_id=html.escape(request_id), extra_head=extra_head).encode()
        ctype = b"text/html; charset=utf-8"
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
               (b"x-request-id", request_id.encode()), (b"cache-control", b"no-store")]
    return status, headers + (extra_headers or []), body


def fold_headers(raw: Any) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Raw ``(name, value)`` byte pairs as text pairs, and one value per name: repeats joined with ``, ``
    (cookies with ``; ``)."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
    hdict: dict[str, str] = {}
    for k, v in headers:
        hdict[k] = f"{hdict[k]}, {v}" if k in hdict and k != "cookie" else (
            f"{hdict[k]}; {v}" if k in hdict else v)
    return headers, hdict


def _clean_request_id(value: str | None) -> str:
    if value and 8 <= len(value) <= 64 and all(c.isalnum() or c in "-_." for c in value):
        return value
    return new_id("r")


class FsbrainWAFMiddleware:
    """Inspect requests in front of ``app`` (see the module docstring).

    Args:
        app: the protected ASGI app.
        mode: ``detect`` or ``block``.
        inspector: a :class:`~fsbrain.domains.web.inspector.WebInspector` (default: one at ``paranoia``).
        paranoia: paranoia level for the default inspector.
        cc: optional :class:`~fsbrain.domains.web.cc.CCDetector` for flood decisions.
        bots: optional :class:`~fsbrain.domains.web.bots.BotDetector` (verdict only; never blocks alone).
        max_body_bytes: body bytes buffered and inspected.
        max_header_bytes: total header bytes allowed.
        on_verdict: called with ``(request_id, verdict)`` for every inspected request (default: log attacks).
        challenge_secret: key of the challenge cookie (default: random per process).
        verdict_cache: verdicts remembered for repeated identical requests (0: off). Used only when the
            inspector says its verdicts are a function of the request alone (``inspector.cacheable``, true
            for a :class:`~fsbrain.domains.web.inspector.WebInspector` whose rules read no ``UNIQUE_ID``),
            so a cached verdict is exactly what inspection would give; bot and CC state are still
            updated on every request (see :class:`~fsbrain.domains.web.inspector.VerdictCache`).
    """

    def __init__(self, app: ASGIApp, *, mode: str = "detect", inspector: Any = None, paranoia: int = 1,
                 cc: Any = None, bots: Any = None, max_body_bytes: int = 1_048_576, max_header_bytes: int = 65536,
                 on_verdict: Callable[[str, dict[str, Any]], None] | None = None,
                 challenge_secret: bytes | None = None, verdict_cache: int = 4096) -> None:
        if mode not in MODES:
            raise InputError(f"WAF mode must be one of {MODES}, got {mode!r}")
        self.app, self.mode, self.paranoia = app, mode, paranoia
        self._inspector = inspector
        self.cc, self.bots = cc, bots
        self.max_body_bytes, self.max_header_bytes = max_body_bytes, max_header_bytes
        self.on_verdict = on_verdict or self._log_verdict
        self.challenge_secret = challenge_secret or os.urandom(16)
        self.verdict_cache = int(verdict_cache)
        self._verdicts: Any = None  # the VerdictCache once built; False when not used

    @property
    def verdicts(self) -> Any:
        """The :class:`~fsbrain.domains.web.inspector.VerdictCache` in use, or ``None``."""
        if self._verdicts is None:
            insp = self.inspector
            if self.verdict_cache > 0 and getattr(insp, "cacheable", False) is True:
                from fsbrain.domains.web.inspector import VerdictCache

                self._verdicts = VerdictCache(insp, max_entries=self.verdict_cache)
            else:
                self._verdicts = False
        return self._verdicts if self._verdicts is not False else None

    def inspect(self, req: dict[str, Any]) -> dict[str, Any]:
        """The inspector's verdict on ``req`` (through the verdict cache when it is in use)."""
        cache = self._verdicts
        if cache is None:
            cache = self.verdicts
        if cache is None or cache is False:
            return self.inspector.inspect(req)
        return cache.inspect(req)

    @property
    def inspector(self) -> Any:
        if self._inspector is None:
            from fsbrain.domains.web.inspector import WebInspector

            self._inspector = WebInspector(paranoia=self.paranoia)
        return self._inspector

    @staticmethod
    def _log_verdict(request_id: str, verdict: dict[str, Any]) -> None:
        if verdict.get("attack") or verdict.get("cc"):
            log.warning("fsbrain waf %s %s", request_id, json.dumps(verdict, ensure_ascii=False, default=str))

    def _token(self, ip: str) -> str:
        return hmac.new(self.challenge_secret, ip.encode(), hashlib.sha256).hexdigest()[:32]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers, hdict = fold_headers(scope.get("headers", []))
        request_id = _clean_request_id(hdict.get("x-request-id"))
        accept = hdict.get("accept", "")
        limits: list[str] = []
        if sum(len(k) + len(v) + 4 for k, v in headers) > self.max_header_bytes:
            limits.append("max_header_bytes")
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= self.max_body_bytes:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            more = msg.get("more_body", False)
        if size > self.max_body_bytes:
            limits.append("max_body_bytes")
        body = b"".join(chunks)
        if self.mode == "block" and limits:
            status = 431 if limits[0] == "max_header_bytes" else 413
            lim = f"{limits[0]}={self.max_header_bytes if status == 431 else self.max_body_bytes}"
            await self._answer(send, *block_response(status, request_id, accept=accept, limit=lim))
            self.on_verdict(request_id, {"attack": True, "score": 0, "labels": ["web_protocol"], "rules": [],
                                         "reasons": [], "limits_hit": limits})
            return
        path = scope.get("raw_path") or scope.get("path", "/").encode()
        uri = path.decode("latin-1") + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
        req = {"method": scope.get("method", "GET"), "uri": uri, "headers": headers,
               "body": body[: self.max_body_bytes]}
        try:
            verdict = self.inspect(req)
        except InputError as exc:
            verdict = {"attack": True, "score": 0, "labels": ["web_protocol"], "rules": [], "reasons": [],
                       "errors": [exc.message]}
        verdict["limits_hit"] = sorted(set(verdict.get("limits_hit", [])) | set(limits))
        ip = (scope.get("client") or ("-", 0))[0]
        blocked = await self._flood_and_bots(scope, send, hdict, ip, request_id, accept, verdict)
        self.on_verdict(request_id, verdict)
        if blocked:
            return
        if self.mode == "block" and verdict["attack"]:
            await self._answer(send, *block_response(403, request_id, accept=accept, labels=verdict["labels"]))
            return
        await self._forward(scope, receive, send, chunks, more, request_id)

    async def _flood_and_bots(self, scope: Scope, send: Send, hdict: dict[str, str], ip: str, request_id: str,
                              accept: str, verdict: dict[str, Any]) -> bool:
        import time

        now = time.time()
        if self.bots is not None:
            verdict["bot"] = self.bots.inspect(hdict, ip=ip, path=scope.get("path", "/"), ts=now).to_dict()
        if self.cc is None:
            return False
        cookie = hdict.get("cookie", "")
        passed = f"{CHALLENGE_COOKIE}={self._token(ip)}" in cookie
        c = self.cc.observe(ip=ip, path=scope.get("path", "/"), ts=now, session=None, has_cookie=bool(cookie))
        if c.action is None:
            return False
        verdict["cc"] = c.to_dict()
        if self.mode != "block" or (c.action == "challenge" and passed):
            return False
        if c.action == "rate_limit":
            retry = str(max(1, int((c.expires_at or now) - now))).encode()
            await self._answer(send, *block_response(429, request_id, accept=accept,
                                                     extra_headers=[(b"retry-after", retry)]))
        elif c.action == "challenge":
            cookie_hdr = f"{CHALLENGE_COOKIE}={self._token(ip)}; Path=/; HttpOnly; SameSite=Lax".encode()
            await self._answer(send, *block_response(200, request_id, accept="text/html",
                                                     extra_headers=[(b"set-cookie", cookie_hdr)],
                                                     extra_head='<meta http-equiv="refresh" content="1">'))
        else:
            await self._answer(send, *block_response(403, request_id, accept=accept, labels=["cc_flood"]))
        return True

    @staticmethod
    async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _forward(self, scope: Scope, receive: Receive, send: Send, chunks: list[bytes], more: bool,
                       request_id: str) -> None:
        pending = list(chunks) or [b""]

        async def replay() -> Message:
            if pending:
                chunk = pending.pop(0)
                return {"type": "http.request", "body": chunk, "more_body": bool(pending) or more}
            return await receive()

        rid = request_id.encode()

        async def send_with_id(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                hs = [h for h in msg.get("headers", []) if h[0].lower() != b"x-request-id"]
                msg = dict(msg, headers=hs + [(b"x-request-id", rid)])
            await send(msg)

        scope = dict(scope, headers=[h for h in scope.get("headers", []) if h[0].lower() != b"x-request-id"]
                     + [(b"x-request-id", rid)])
        await self.app(scope, replay, send_with_id)
