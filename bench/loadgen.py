"""Open-loop HTTP/1.1 load generator for loopback benchmarks.

Requests are *scheduled* at a constant rate and latency is measured from the scheduled send time, so a
stalled server cannot hide its queueing delay (no coordinated omission): a request due while every
connection is busy waits in a queue, and that wait is part of its latency. Bounded by count and time; it
only ever connects to the host and port it is given (the benchmarks pass 127.0.0.1).

The client shares the machine with the server, so it is kept lean: every request is serialised before the
clock starts, each connection is a plain ``asyncio.Protocol`` (no streams, no task per request) on uvloop
when it is installed, and a response is parsed only as far as its status and length.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    status: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the load generator's own CPU time (user + system) during the run

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class _Conn(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.due = 0.0
        self.busy = False
        self.need = -1  # bytes of the whole response once its head is parsed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, due: float, raw: bytes) -> None:
        self.due, self.busy, self.buf, self.need = due, True, b"", -1
        assert self.transport is not None
        self.transport.write(raw)

    def data_received(self, data: bytes) -> None:
        self.buf = buf = self.buf + data if self.buf else data
        if self.need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = buf[:end].lower()
            try:
                self.status = int(head[9:12])
                i = head.index(b"content-length:")
                j = head.find(b"\r\n", i)
                self.need = end + 4 + int(head[i + 15:j if j >= 0 else len(head)])
            except ValueError:  # no length (the benchmarked endpoints always send one): a broken answer
                self._fail()
                return
        if len(buf) >= self.need:
            self.busy = False
            self.gen.done(self, self.status, self.due, buf[self.need:])

    def _fail(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.gen.lost(self)


class _Generator:
    def __init__(self, host: str, port: int, res: LoadResult, connections: int) -> None:
        self.host, self.port, self.res = host, port, res
        self.connections = connections
        self.idle: collections.deque[_Conn] = collections.deque()
        self.waiting: collections.deque[tuple[float, bytes]] = collections.deque()
        self.open = 0
        self.inflight = 0
        self.loop = asyncio.get_running_loop()
        self.finished = self.loop.create_future()
        self.all_sent = False

    async def connect(self) -> None:
        _, conn = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port)
        self.open += 1
        self.idle.append(conn)

    def submit(self, due: float, raw: bytes) -> None:
        self.inflight += 1
        if self.idle:
            self.idle.popleft().send(due, raw)
        else:
            self.waiting.append((due, raw))
            if self.open < self.connections:
                self.open += 1  # counted now, so a burst does not open more than allowed
                self.loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        self.open -= 1
        try:
            await self.connect()
        except OSError:
            if self.waiting:  # the server is gone: the waiting request fails
                self._record(self.waiting.popleft()[0], None)
            return
        self._next(self.idle.pop())

    def _next(self, conn: _Conn) -> None:
        if self.waiting:
            due, raw = self.waiting.popleft()
            conn.send(due, raw)
        else:
            self.idle.append(conn)

    def _record(self, due: float, status: int | None) -> None:
        res = self.res
        res.latencies_ms.append((time.perf_counter() - due) * 1000)
        if status is None:
            res.errors += 1
        else:
            res.status[status] = res.status.get(status, 0) + 1
            if 200 <= status < 300:
                res.ok += 1
            else:
                res.errors += 1
        self.inflight -= 1
        if self.all_sent and self.inflight == 0 and not self.finished.done():
            self.finished.set_result(None)

    def done(self, conn: _Conn, status: int, due: float, extra: bytes) -> None:
        self._record(due, status if not extra else None)  # bytes after the answer: the stream is broken
        if extra:
            conn._fail()
            return
        self._next(conn)

    def lost(self, conn: _Conn) -> None:
        self.open -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.busy:
            conn.busy = False
            self._record(conn.due, None)
        if self.waiting and self.open < self.connections:
            self.open += 1
            self.loop.create_task(self._reconnect())


async def run_load(host: str, port: int, path: str, bodies: Callable[[int], bytes], *, rate: float,
                   seconds: float, connections: int = 32) -> LoadResult:
    """Send POSTs of ``bodies(i)`` to ``path`` at ``rate`` per second for ``seconds``.

    Every request is built before the clock starts; the result carries the generator's own CPU time.
    """
    res = LoadResult()
    total = int(rate * seconds)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    raws = []
    for i in range(total):
        body = bodies(i)
        raws.append((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    gen = _Generator(host, port, res, connections)
    await asyncio.gather(*(gen.connect() for _ in range(min(connections, 8))))  # more open on demand
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    interval = 1.0 / rate
    i = 0
    while i < total:
        now = time.perf_counter()
        while i < total and start + i * interval <= now:  # everything due by now, at its scheduled time
            gen.submit(start + i * interval, raws[i])
            raws[i] = b""
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
    res.sent = total
    gen.all_sent = True
    if gen.inflight:
        await gen.finished
    res.seconds = time.perf_counter() - start
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    res.cpu_seconds = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
    for c in list(gen.idle):
        if c.transport is not None:
            c.transport.close()
    return res


def run(coro: object) -> LoadResult:
    """Run a :func:`run_load` coroutine on uvloop when it is installed (a leaner client), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[arg-type]
