"""Shared by the reverse-proxy tests (test_proxy.py: the ASGI server; test_proxy_fast.py: the fast one): a tiny
upstream, servers in threads, an upstream with the proxy in front of it, and the checks both servers must pass.

tests/web/conftest.py has pytest rewrite this module's asserts, so a failing check reports its values."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from fsbrain.domains.web.proxy import _Lifespan, make_proxy_app

ATTACK_PATH = "/item?id=1%27%20union%20select%20password%20from%20users--"


async def upstream_app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    h = dict(scope["headers"])
    if scope["path"] == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for _ in range(50):
            await send({"type": "http.response.body", "body": b"z" * 10000, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    out = b"|".join([scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body,
                     h.get(b"x-request-id", b"-"), h.get(b"x-forwarded-for", b"-")])
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"text/plain"), (b"x-upstream", b"yes"), (b"set-cookie", b"a=1"),
                            (b"set-cookie", b"b=2")]})
    await send({"type": "http.response.body", "body": out})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An ASGI app under uvicorn in a thread, started (or RuntimeError) on entering; ``options`` go to
    ``uvicorn.Config`` (``timeout_keep_alive=1``: an upstream that closes idle connections soon)."""

    def __init__(self, app, port: int, host: str = "127.0.0.1", **options):
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="error",
                                                    lifespan="on" if isinstance(app, _Lifespan) else "off",
                                                    **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def asgi_proxy(waf, port: int) -> Server:
    """The proxy app served the ASGI way (uvicorn, lifespan passed on)."""
    return Server(_Lifespan(waf), port)


@dataclass
class ProxyStack:
    base: str  # the proxy's URL
    port: int  # the proxy's port
    up_port: int  # the upstream's port
    waf: Any  # the proxy app (make_proxy_app's)
    proxy: Any  # what ``serve`` returned, entered


@contextmanager
def proxy_stack(serve: Callable[[Any, int], AbstractContextManager], upstream=upstream_app, *, path: str = "",
                upstream_options: dict | None = None, **app_options) -> Iterator[ProxyStack]:
    """``upstream`` (an ASGI app, on 127.0.0.1 under uvicorn with ``upstream_options``) and in front of it the
    proxy app (``make_proxy_app`` with ``app_options``, towards the upstream's URL + ``path``) served by
    ``serve(waf, port)``; both on free ports, started on entering and stopped on leaving."""
    up_port, px_port = free_port(), free_port()
    waf = make_proxy_app(f"http://127.0.0.1:{up_port}{path}", **app_options)
    with Server(upstream, up_port, **(upstream_options or {})), serve(waf, px_port) as px:
        yield ProxyStack(f"http://127.0.0.1:{px_port}", px_port, up_port, waf, px)


def check_benign_requests_pass_through(c: httpx.Client) -> httpx.Response:
    """A search, a form POST and a large answer go through the proxy in block mode and come back whole;
    returns the answer to the POST."""
    r = c.get("/search", params={"q": "信用卡 还款"}, headers={"X-Request-Id": "test-request-0001"})
    assert r.status_code == 201 and r.headers["x-upstream"] == "yes"
    method, path, qs, body, rid, xff = r.content.split(b"|")
    assert (method, path, rid, xff) == (b"GET", b"/search", b"test-request-0001", b"127.0.0.1")
    assert r.headers["x-request-id"] == "test-request-0001"
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    posted = c.post("/transfer", data={"payee": "张三", "memo": "rent for May"})
    assert posted.status_code == 201 and posted.content.split(b"|")[3].startswith(b"payee=")
    r = c.get("/big")
    assert r.status_code == 200 and len(r.content) == 500_000
    return posted


def check_attacks_are_blocked(c: httpx.Client) -> httpx.Response:
    """An SQL injection and an XSS get the proxy's 403 (HTML, then JSON), never the upstream's answer;
    returns the JSON one."""
    r = c.get(ATTACK_PATH)
    assert r.status_code == 403 and "Request blocked" in r.text and "x-upstream" not in r.headers
    assert r.headers["x-request-id"] in r.text
    r = c.post("/api/v1/payments", json={"memo": "<script>alert(document.cookie)</script>"},
               headers={"Accept": "application/json"})
    assert r.status_code == 403 and r.json()["error"] == "request_blocked" and "web_xss" in r.json()["labels"]
    return r
