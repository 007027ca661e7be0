"""Every decision writer (thread, child process, event loop) gives the same answers and stores the same rows;
the server's HTTP protocol writes each response with one system call and answers like uvicorn's own."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from fsbrain.api.app import create_app
from fsbrain.config import load_settings
from fsbrain.core.errors import BackendError
from fsbrain.core.model import Decision
from fsbrain.service import LoopCommitWriter, Platform

FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "application.json").read_text("utf-8"))


def _apps(n: int) -> list[dict]:
    out = []
    for i in range(n):
        a = copy.deepcopy(FIXTURE)
        a["event_id"] = f"w-{i}"
        a["timestamp"] = 1795140900 + i * 60
        a["device"]["device_id"] = f"dev-{i % 3}"
        out.append(a)
    return out


def _run(tmp: Path, writer: str, db_url: str | None = None) -> tuple[list[Any], list[tuple], str]:
    p = Platform(load_settings(home=tmp, decision_writer=writer, database_url=db_url))
    try:
        kind = p.writer_kind
        client = TestClient(create_app(p, background=False))
        answers = []
        apps = _apps(10)
        bad = copy.deepcopy(apps[0])
        bad["loan"]["amount"] = -5
        for a in [*apps, apps[0], bad, apps[3]]:
            r = client.post("/v1/decisions/loan_application", json=a)
            body = r.json()
            answers.append((r.status_code, {k: body.get(k) for k in ("outcome", "score", "labels", "reasons", "policy",
                                                                     "replayed", "error", "message", "event_id")}))
        eng = sa.create_engine(p.settings.db_url)
        with eng.connect() as c:
            rows = [tuple(r) for r in c.exec_driver_sql(
                "SELECT event_id, outcome, score, labels, reasons, policy, features, errors, event_time, event_data "
                "FROM decisions ORDER BY event_id")]
        eng.dispose()
        return answers, rows, kind
    finally:
        p.close()


def test_all_writers_answer_and_store_alike(tmp_path: Path) -> None:
    ref = _run(tmp_path / "thread", "thread")
    assert ref[2] == "thread"
    for writer, kind in (("process", "process"), ("loop", "loop"), ("auto", "loop")):
        got = _run(tmp_path / writer, writer)
        assert got[2] == kind
        assert got[0] == ref[0], writer
        assert got[1] == ref[1], writer
    assert [a[1]["replayed"] for a in ref[0]][10] is True and ref[0][11][0] == 422
    assert len(ref[1]) == 10


@pytest.mark.postgres
def test_auto_writer_on_postgresql_is_the_process_writer(tmp_path: Path, postgres_url: str) -> None:
    answers, rows, kind = _run(tmp_path, "auto", postgres_url)
    assert kind == "process" and len(rows) == 10 and answers[10][1]["replayed"] is True


def test_auto_writer_with_several_workers_stays_on_the_loop(tmp_path: Path) -> None:
    p = Platform(load_settings(home=tmp_path, decision_writer="auto", workers=2))
    try:
        assert p.writer_kind == "loop"
    finally:
        p.close()


def test_loop_writer_waits_for_another_writer_without_blocking_the_loop(tmp_path: Path) -> None:
    """Another process (a second worker, the CLI) holds SQLite's write lock: the commit is retried later
    while the loop keeps running; it lands once the lock is free."""
    import sqlite3

    from fsbrain.store import Store

    url = f"sqlite:///{tmp_path / 'busy.db'}"
    Store(url).migrate()
    w = LoopCommitWriter(url)
    other = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    d = Decision(event_id="x", event_type="loan_application", outcome="approve", score=0, policy="p@1")

    async def go() -> tuple[int, Any]:
        other.execute("BEGIN IMMEDIATE")
        fut = w.submit_async([(d, {"a": 1})])
        ticks = 0
        for _ in range(20):  # the loop turns while the commit waits
            await asyncio.sleep(0.005)
            ticks += 1
            assert not fut.done()
        other.execute("ROLLBACK")
        return ticks, await asyncio.wait_for(fut, 5)

    try:
        ticks, res = asyncio.run(go())
        assert ticks == 20 and res[0].decision_id == d.decision_id
        s = Store(url)
        assert s.get_decision_by_event("loan_application", "x").decision_id == d.decision_id
        s.close()
    finally:
        other.close()
        w.close()


def test_in_memory_database_keeps_the_thread_writer(tmp_path: Path) -> None:
    p = Platform(load_settings(home=tmp_path, decision_writer="loop", database_url="sqlite://"))
    try:
        assert p.writer_kind == "thread"
    finally:
        p.close()


def test_loop_writer_decides_concurrent_copies_once(tmp_path: Path) -> None:
    p = Platform(load_settings(home=tmp_path, decision_writer="loop"))
    try:
        apps = _apps(6)

        async def go() -> list:
            copies = [p.decide_async("loan_application", copy.deepcopy(apps[0])) for _ in range(8)]
            others = [p.decide_async("loan_application", a) for a in apps[1:]]
            return await asyncio.gather(*copies, *others)

        results = asyncio.run(go())
        assert len({d.decision_id for d, _ in results[:8]}) == 1
        assert sum(1 for _, replayed in results[:8] if not replayed) == 1
        assert len({d.decision_id for d, _ in results}) == 6
        # the synchronous path (CLI, other threads) shares the writer
        d, replayed = p.decide("loan_application", copy.deepcopy(apps[2]))
        assert replayed and d.decision_id == results[9][0].decision_id
    finally:
        p.close()


def test_loop_writer_batch_failure_and_close(tmp_path: Path) -> None:
    w = LoopCommitWriter(f"sqlite:///{tmp_path / 'nothing-here.db'}")  # never migrated: no tables
    d = Decision(event_id="x", event_type="loan_application", outcome="approve", score=0, policy="p@1")

    async def go() -> list:
        return await asyncio.gather(w.submit_async([(d, {})]), w.submit_async([(d, {})]), return_exceptions=True)

    try:
        out = asyncio.run(go())
        assert all(isinstance(x, BackendError) for x in out)
    finally:
        w.close()
    with pytest.raises(BackendError, match="closed"):
        w.save([(d, {})])


# -- the server's HTTP protocol ------------------------------------------------------------------------
class _FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def test_coalescing_transport_joins_head_and_body() -> None:
    from fsbrain.server import _CoalescingTransport

    t = _FakeTransport()
    ct = _CoalescingTransport(t)
    ct.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
    assert t.writes == [] and ct.get_write_buffer_size() > 0
    ct.write(b"BODY")
    assert t.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nBODY"]
    ct.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # never held: the client waits for it
    assert t.writes[-1] == b"HTTP/1.1 100 Continue\r\n\r\n"
    ct.write(b"chunk")  # not a head: straight through
    assert t.writes[-1] == b"chunk"
    ct.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    ct.flush()  # the protocol flushes when the response completes
    assert t.writes[-1].startswith(b"HTTP/1.1 204")
    ct.writelines([b"HTTP/1.1 200 OK\r\n\r\n"])
    ct.close()  # flushes first
    assert t.writes[-1] == b"HTTP/1.1 200 OK\r\n\r\n" and t.closed
    assert ct.get_extra_info("peername") == ("127.0.0.1", 1)


def _serve(tmp_path: Path) -> tuple[Any, Platform, int, threading.Thread]:
    import uvicorn

    from fsbrain.server import HTTP_PROTOCOL

    p = Platform(load_settings(home=tmp_path, decision_writer="loop"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(p, background=False), host="127.0.0.1", port=port,
                                           http=HTTP_PROTOCOL, loop="uvloop", log_level="warning", lifespan="off"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline and th.is_alive()
        time.sleep(0.05)
    return server, p, port, th


def _recv_response(sock: socket.socket, buf: bytes, head_only: bool = False) -> tuple[int, dict[str, str], bytes, bytes]:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if head_only:
        return status, headers, b"", rest
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            rest += sock.recv(65536)
        return status, headers, rest[:n], rest[n:]
    assert headers.get("transfer-encoding") == "chunked"
    body = b""
    while True:
        while b"\r\n" not in rest:
            rest += sock.recv(65536)
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        while len(rest) < size + 2:
            rest += sock.recv(65536)
        body, rest = body + rest[:size], rest[size + 2:]
        if size == 0:
            return status, headers, body, rest


def test_real_server_answers_keep_alive_requests(tmp_path: Path) -> None:
    server, p, port, th = _serve(tmp_path)
    try:
        app = json.dumps(_apps(1)[0]).encode()
        reqs = [
            b"POST /v1/decisions/loan_application HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(app), app),
            b"POST /v1/decisions/loan_application HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{bad}",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /v1/decisions/loan_application HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(app), app),
            b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"".join(reqs))  # pipelined on one connection
            buf, answers = b"", []
            for r in reqs:
                status, headers, body, buf = _recv_response(sock, buf, head_only=r.startswith(b"HEAD"))
                answers.append((status, headers, body))
        assert [a[0] for a in answers] == [200, 422, 200, 200, 200, 405, 200]
        first, again = json.loads(answers[0][2]), json.loads(answers[4][2])
        assert again["replayed"] is True and again["decision_id"] == first["decision_id"]
        assert json.loads(answers[1][2])["error"] == "invalid_input"
        assert b"fsbrain_decisions_total" in answers[3][2]
    finally:
        server.should_exit = True
        th.join(timeout=10)
        p.close()


@pytest.mark.redis
def test_redis_state_evaluates_off_the_loop_with_the_same_answers(tmp_path: Path, redis_url: str) -> None:
    """With Redis state the server evaluates on threads (the loop is not held by Redis round trips): a
    sequential stream gets the memory backend's answers, and concurrent copies of one event are decided
    once, while other events are decided concurrently."""
    import uuid

    mem = Platform(load_settings(home=tmp_path / "m", decision_writer="loop"))
    red = Platform(load_settings(home=tmp_path / "r", decision_writer="loop", state_type="redis",
                                 redis_url=redis_url, state_prefix=f"t{uuid.uuid4().hex[:10]}"))
    try:
        assert mem._eval_pool is None and red._eval_pool is not None
        apps = _apps(12)

        async def sequential(p: Platform) -> list:
            out = []
            for a in apps:
                d, _ = await p.decide_async("loan_application", copy.deepcopy(a))
                out.append((d.outcome, d.score, d.labels, d.features))
            return out

        assert asyncio.run(sequential(mem)) == asyncio.run(sequential(red))

        more = _apps(20)[12:]

        async def concurrent() -> list:
            copies = [red.decide_async("loan_application", copy.deepcopy(more[0])) for _ in range(6)]
            return await asyncio.gather(*copies, *(red.decide_async("loan_application", a) for a in more[1:]))

        results = asyncio.run(concurrent())
        assert len({d.decision_id for d, _ in results[:6]}) == 1
        assert sum(1 for _, replayed in results[:6] if not replayed) == 1
        assert len({d.decision_id for d, _ in results}) == 8
        assert red.store.get_decision_by_event("loan_application", more[3]["event_id"]) is not None
    finally:
        mem.close()
        red.close()
