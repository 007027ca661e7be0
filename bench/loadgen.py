"""Open-loop HTTP/1.1 load generator for loopback benchmarks.

Requests are *scheduled* at a constant rate and latency is measured from the scheduled send time, so a
stalled server cannot hide its queueing delay (no coordinated omission). Bounded by count and time; it
only ever connects to the host and port it is given (the benchmarks pass 127.0.0.1).
"""

from __future__ import annotations

import asyncio
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

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def _conn_worker(host: str, port: int, queue: asyncio.Queue, res: LoadResult) -> None:
    reader = writer = None
    while True:
        item = await queue.get()
        if item is None:
            break
        scheduled, raw = item
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(raw)
            await writer.drain()
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            res.status[status] = res.status.get(status, 0) + 1
            if 200 <= status < 300:
                res.ok += 1
            else:
                res.errors += 1
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            res.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
        res.latencies_ms.append((time.perf_counter() - scheduled) * 1000)


async def run_load(host: str, port: int, path: str, bodies: Callable[[int], bytes], *, rate: float,
                   seconds: float, connections: int = 32) -> LoadResult:
    """Send POSTs of ``bodies(i)`` to ``path`` at ``rate`` per second for ``seconds``."""
    res = LoadResult()
    queue: asyncio.Queue = asyncio.Queue()
    workers = [asyncio.create_task(_conn_worker(host, port, queue, res)) for _ in range(connections)]
    total = int(rate * seconds)
    start = time.perf_counter()
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        body = bodies(i)
        raw = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        queue.put_nowait((due, raw))
        res.sent += 1
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    res.seconds = time.perf_counter() - start
    return res
