"""The reverse proxy on loopback: a tiny upstream, the proxy in front, benign and attack requests."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from fsbrain.core.errors import InputError
from fsbrain.domains.web.inspector import WebInspector
from fsbrain.domains.web.proxy import ReverseProxyApp, _Lifespan, make_proxy_app, parse_listen


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
    def __init__(self, app, port: int):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                                    lifespan="on" if isinstance(app, _Lifespan) else "off"))
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


@pytest.fixture(scope="module")
def stack():
    up_port, px_port = free_port(), free_port()
    insp = WebInspector(paranoia=1)
    proxy = _Lifespan(make_proxy_app(f"http://127.0.0.1:{up_port}", mode="block", inspector=insp))
    with Server(upstream_app, up_port), Server(proxy, px_port):
        yield f"http://127.0.0.1:{px_port}", up_port


def test_benign_requests_pass_through(stack):
    base, _ = stack
    with httpx.Client(base_url=base) as c:
        r = c.get("/search", params={"q": "信用卡 还款"}, headers={"X-Request-Id": "test-request-0001"})
        assert r.status_code == 201 and r.headers["x-upstream"] == "yes"
        method, path, qs, body, rid, xff = r.content.split(b"|")
        assert (method, path, rid, xff) == (b"GET", b"/search", b"test-request-0001", b"127.0.0.1")
        assert r.headers["x-request-id"] == "test-request-0001"
        assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
        r = c.post("/transfer", data={"payee": "张三", "memo": "rent for May"})
        assert r.status_code == 201 and r.content.split(b"|")[3].startswith(b"payee=")
        r = c.get("/big")
        assert r.status_code == 200 and len(r.content) == 500_000


def test_attacks_are_blocked_before_the_upstream(stack):
    base, _ = stack
    with httpx.Client(base_url=base) as c:
        r = c.get("/item?id=1%27%20union%20select%20password%20from%20users--")
        assert r.status_code == 403 and "Request blocked" in r.text and "x-upstream" not in r.headers
        assert r.headers["x-request-id"] in r.text
        r = c.post("/api/v1/payments", json={"memo": "<script>alert(document.cookie)</script>"},
                   headers={"Accept": "application/json"})
        assert r.status_code == 403 and r.json()["error"] == "request_blocked" and "web_xss" in r.json()["labels"]


def test_upstream_down_answers_502():
    px_port = free_port()
    dead = free_port()
    proxy = _Lifespan(make_proxy_app(f"http://127.0.0.1:{dead}", mode="detect",
                                     inspector=WebInspector(paranoia=1)))
    with Server(proxy, px_port), httpx.Client(base_url=f"http://127.0.0.1:{px_port}") as c:
        r = c.get("/anything")
        assert r.status_code == 502 and r.json()["error"] == "bad_gateway"


def test_bad_arguments():
    with pytest.raises(InputError, match="--upstream"):
        ReverseProxyApp("ftp://example.com")
    with pytest.raises(InputError, match="--upstream"):
        ReverseProxyApp("http://" + "a" * 70 + ".example")
    with pytest.raises(InputError, match="--upstream"):
        ReverseProxyApp("http://h:99999")
    assert ReverseProxyApp("http://[::1]:8000/app/").host_header == b"[::1]:8000"
    assert ReverseProxyApp("http://[::1]:8000/app/").prefix == b"/app"
    with pytest.raises(InputError, match="HOST:PORT"):
        parse_listen("8080")
    assert parse_listen("[::1]:9000") == ("::1", 9000)


def test_cli_proxy_refuses_bad_options():
    from typer.testing import CliRunner

    from fsbrain.cli import _register, app

    _register()
    res = CliRunner().invoke(app, ["web", "proxy", "--upstream", "http://127.0.0.1:9", "--mode", "prevent"])
    assert isinstance(res.exception, InputError) and "--mode" in res.exception.message
    res = CliRunner().invoke(app, ["web", "proxy", "--upstream", "http://127.0.0.1:9", "--listen", "nowhere"])
    assert isinstance(res.exception, InputError) and "HOST:PORT" in res.exception.message


def test_upstream_connections_are_reused_and_bodies_stream(stack):
    base, _ = stack
    with httpx.Client(base_url=base) as c:
        for i in range(5):
            r = c.get(f"/page{i}", params={"q": "savings account"})
            assert r.status_code == 201 and r.content.split(b"|")[1] == f"/page{i}".encode()
        r = c.head("/big")
        assert r.status_code == 200 and r.content == b""
        r = c.get("/big")
        assert len(r.content) == 500_000


def test_detect_mode_streams_a_large_upload_and_survives_idle_closes():
    up_port, px_port = free_port(), free_port()
    proxy_app = make_proxy_app(f"http://127.0.0.1:{up_port}", mode="detect", inspector=WebInspector(paranoia=1))
    upstream = uvicorn.Server(uvicorn.Config(upstream_app, host="127.0.0.1", port=up_port, log_level="error",
                                             timeout_keep_alive=1))
    up_thread = threading.Thread(target=upstream.run, daemon=True)
    up_thread.start()
    deadline = time.monotonic() + 20
    while not upstream.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with Server(_Lifespan(proxy_app), px_port), httpx.Client(base_url=f"http://127.0.0.1:{px_port}") as c:
            body = b"memo=" + b"x" * 1_500_000  # beyond the inspected 1 MiB: streamed on to the upstream
            r = c.post("/upload", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 201 and r.content.split(b"|")[3] == body
            assert proxy_app.app.pool.idle  # the upstream connection went back to the pool
            time.sleep(1.6)  # the upstream closes its idle keep-alive connection meanwhile
            r = c.get("/again")
            assert r.status_code == 201 and r.content.split(b"|")[1] == b"/again"
    finally:
        upstream.should_exit = True
        up_thread.join(10)


def test_verdict_cache_setting(monkeypatch):
    from fsbrain.domains.web import proxy

    insp = WebInspector(paranoia=1, model=False)

    monkeypatch.setenv(proxy.ENV_VERDICT_CACHE, "lots")
    with pytest.raises(InputError, match=proxy.ENV_VERDICT_CACHE):
        proxy.serve("http://127.0.0.1:9", listen="127.0.0.1:1")
    started: list[int] = []
    monkeypatch.setattr(proxy, "_run_fast", lambda waf, host, port, sock=None: started.append(waf.verdict_cache))
    monkeypatch.setenv(proxy.ENV_VERDICT_CACHE, "0")
    proxy.serve("http://127.0.0.1:9", listen="127.0.0.1:1", inspector=insp)
    monkeypatch.delenv(proxy.ENV_VERDICT_CACHE)
    proxy.serve("http://127.0.0.1:9", listen="127.0.0.1:1", inspector=insp)
    proxy.serve("http://127.0.0.1:9", listen="127.0.0.1:1", inspector=insp, verdict_cache=7)
    assert started == [0, 4096, 7]
    waf = proxy._worker_waf({"upstream": "http://127.0.0.1:9", "mode": "block", "paranoia": 1, "verdict_cache": 0})
    assert waf.verdicts is None
    waf = proxy._worker_waf({"upstream": "http://127.0.0.1:9", "mode": "block", "paranoia": 1, "verdict_cache": 16})
    assert waf.verdicts is not None and waf.verdicts.max_entries == 16


def test_cli_proxy_verdict_cache_option(monkeypatch):
    from typer.testing import CliRunner

    from fsbrain.cli import _register, app
    from fsbrain.domains.web import proxy

    _register()
    res = CliRunner().invoke(app, ["web", "proxy", "--upstream", "http://127.0.0.1:9", "--verdict-cache", "-1"])
    assert res.exit_code != 0 and "--verdict-cache" in (res.output + str(res.exception))
    started: list[int] = []
    monkeypatch.setattr(proxy, "_run_fast", lambda waf, host, port, sock=None: started.append(waf.verdict_cache))
    res = CliRunner().invoke(app, ["web", "proxy", "--upstream", "http://127.0.0.1:9", "--no-model",
                                   "--verdict-cache", "0"])
    assert res.exit_code == 0, res.output
    assert started == [0]
