"""The reverse proxy on loopback: a tiny upstream, the proxy in front, benign and attack requests."""

from __future__ import annotations

import time

import httpx
import pytest
from proxy_helpers import (
    asgi_proxy,
    check_attacks_are_blocked,
    check_benign_requests_pass_through,
    free_port,
    proxy_stack,
)

from fsbrain.core.errors import InputError
from fsbrain.domains.web.inspector import WebInspector
from fsbrain.domains.web.proxy import ReverseProxyApp, make_proxy_app, parse_listen


@pytest.fixture(scope="module")
def stack():
    with proxy_stack(asgi_proxy, mode="block", inspector=WebInspector(paranoia=1)) as s:
        yield s.base, s.up_port


def test_benign_requests_pass_through(stack):
    base, _ = stack
    with httpx.Client(base_url=base) as c:
        check_benign_requests_pass_through(c)


def test_attacks_are_blocked_before_the_upstream(stack):
    base, _ = stack
    with httpx.Client(base_url=base) as c:
        check_attacks_are_blocked(c)


def test_upstream_down_answers_502():
    px_port = free_port()
    dead = free_port()
    proxy = make_proxy_app(f"http://127.0.0.1:{dead}", mode="detect", inspector=WebInspector(paranoia=1))
    with asgi_proxy(proxy, px_port), httpx.Client(base_url=f"http://127.0.0.1:{px_port}") as c:
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
    with proxy_stack(asgi_proxy, mode="detect", inspector=WebInspector(paranoia=1),
                     upstream_options={"timeout_keep_alive": 1}) as s, httpx.Client(base_url=s.base) as c:
        body = b"memo=" + b"x" * 1_500_000  # beyond the inspected 1 MiB: streamed on to the upstream
        r = c.post("/upload", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 201 and r.content.split(b"|")[3] == body
        assert s.waf.app.pool.idle  # the upstream connection went back to the pool
        time.sleep(1.6)  # the upstream closes its idle keep-alive connection meanwhile
        r = c.get("/again")
        assert r.status_code == 201 and r.content.split(b"|")[1] == b"/again"


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
