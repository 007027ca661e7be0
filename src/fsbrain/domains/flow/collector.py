"""UDP flow collector: NetFlow v5/v9, IPFIX and sFlow v5 on one socket, feeding the volumetric detector.

A tight blocking ``recvfrom_into`` loop over a preallocated buffer (Python has no ``recvmmsg``; at
NetFlow's 24–30 records per datagram, 100,000 records/s is only ~4,000 datagrams/s), a large kernel
receive buffer (``SO_RCVBUFFORCE`` when permitted, else ``SO_RCVBUF``), decoded batches handed to the
detector every ``flush_interval`` seconds. Kernel-side drops are read from ``/proc/net/udp`` for this
socket, so loss is measured, not guessed. Memory is bounded: the decoder holds at most 64 unknown-template
flowsets per exporter and the detector only a few windows of rows.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fsbrain.core.errors import InputError
from fsbrain.core.model import Alert
from fsbrain.domains.flow.detector import VolumetricDetector
from fsbrain.domains.flow.nfdecode import NetflowDecoder
from fsbrain.domains.flow.sflow import SflowDecoder

RCVBUF = 64 * 1024 * 1024


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` to a tuple.

    Raises:
        InputError: not HOST:PORT with a port in 1..65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:2055")
    return host or "0.0.0.0", int(port)


def kernel_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for this socket (``/proc/net/udp`` ``drops`` column), if readable."""
    host, port = sock.getsockname()[:2]
    want = f"{port:04X}"
    try:
        with open("/proc/net/udp") as fh:
            next(fh)
            for line in fh:
                parts = line.split()
                if parts[1].endswith(":" + want):
                    addr = parts[1].split(":")[0]
                    if host in ("0.0.0.0", "") or addr == socket.inet_aton(host)[::-1].hex().upper():
                        return int(parts[-1])
    except (OSError, ValueError, StopIteration):
        return None
    return None


@dataclass(slots=True)
class CollectorStats:
    """Counters of one collector run."""

    datagrams: int = 0
    bytes: int = 0
    records: int = 0
    alerts: int = 0
    started: float = field(default_factory=time.time)
    kernel_drops_at_start: int = 0
    kernel_drops: int = 0

    def to_dict(self) -> dict[str, Any]:
        el = max(1e-9, time.time() - self.started)
        return {"datagrams": self.datagrams, "bytes": self.bytes, "records": self.records, "alerts": self.alerts,
                "seconds": round(el, 3), "records_per_s": round(self.records / el, 1),
                "kernel_drops": self.kernel_drops - self.kernel_drops_at_start}


class UdpCollector:
    """Receive flow exports on a UDP socket.

    Args:
        listen: ``(host, port)``.
        detector: detector to feed (None: decode and count only).
        on_alert: called with each alert, at attack start (``end`` None) and at its end.
        on_records: called with each decoded batch (tests, taps).
        flush_interval: seconds between detector hand-offs.
    """

    def __init__(self, listen: tuple[str, int], *, detector: VolumetricDetector | None = None,
                 on_alert: Callable[[Alert], None] | None = None,
                 on_records: Callable[[np.ndarray], None] | None = None, flush_interval: float = 0.25) -> None:
        self.listen = listen
        self.detector = detector
        self.on_alert = on_alert
        self.on_records = on_records
        self.flush_interval = flush_interval
        self.netflow = NetflowDecoder()
        self.sflow = SflowDecoder()
        self.stats = CollectorStats()
        self.stop_event = threading.Event()
        self._last_data = time.time()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if opt is None:
                continue
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, RCVBUF)
                break
            except OSError:
                continue
        try:
            self.sock.bind(listen)
        except OSError as exc:
            self.sock.close()
            raise InputError(f"cannot listen on {listen[0]}:{listen[1]}: {exc.strerror}") from exc
        self.address = self.sock.getsockname()
        self.stats.kernel_drops_at_start = kernel_drops(self.sock) or 0
        self.sock.settimeout(0.1)

    @property
    def rcvbuf(self) -> int:
        """The kernel receive buffer actually granted (bytes)."""
        try:
            return self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError:  # closed
            return 0

    def run(self, duration: float | None = None) -> CollectorStats:
        """Receive until :meth:`stop` or ``duration`` seconds; returns the counters.

        The loop only receives and queues datagrams; every ``flush_interval`` the queue is decoded in one
        vectorised pass (:meth:`NetflowDecoder.decode_many`) and handed to the detector.
        """
        buf = bytearray(65536)
        view = memoryview(buf)
        nf_items: list[tuple[bytes, int]] = []
        sf_items: list[tuple[bytes, float]] = []
        deadline = time.time() + duration if duration else None
        next_flush = time.time() + self.flush_interval
        recv, st = self.sock.recvfrom_into, self.stats
        addr_cache: dict[str, int] = {}
        try:
            while not self.stop_event.is_set():
                try:
                    n, addr = recv(buf)
                except TimeoutError:
                    n = 0
                now = time.time()
                if n:
                    st.datagrams += 1
                    st.bytes += n
                    if n >= 4 and buf[0] == 0 and buf[1] == 0 and buf[2] == 0 and buf[3] == 5:
                        sf_items.append((bytes(view[:n]), now))
                    else:
                        exp = addr_cache.get(addr[0])
                        if exp is None:
                            exp = addr_cache[addr[0]] = int.from_bytes(socket.inet_aton(addr[0]), "big")
                        nf_items.append((bytes(view[:n]), exp))
                if now >= next_flush or (deadline is not None and now >= deadline) or len(nf_items) > 20_000:
                    self._flush(nf_items, sf_items)
                    nf_items, sf_items = [], []
                    next_flush = now + self.flush_interval
                    if deadline is not None and now >= deadline:
                        break
        finally:
            self._flush(nf_items, sf_items)
            st.kernel_drops = kernel_drops(self.sock) or st.kernel_drops_at_start
        return st

    def _flush(self, nf_items: list[tuple[bytes, int]], sf_items: list[tuple[bytes, float]]) -> None:
        parts = []
        if nf_items:
            parts.append(self.netflow.decode_many(nf_items))
        for data, t in sf_items:
            parts.append(self.sflow.decode(data, now=t))
        parts = [p for p in parts if len(p)]
        if not parts:
            if self.detector is not None:  # quiet: close windows and attacks by the wall clock
                self._emit(self.detector.idle(time.time() - self._last_data))
            return
        self._last_data = time.time()
        recs = np.concatenate(parts)
        self.stats.records += len(recs)
        if self.on_records is not None:
            self.on_records(recs)
        if self.detector is None:
            return
        self._emit(self.detector.process(recs))

    def _emit(self, ended: list[Alert]) -> None:
        assert self.detector is not None
        for a in self.detector.drain_started() + ended:
            self.stats.alerts += 1
            if self.on_alert is not None:
                self.on_alert(a)

    def finish(self) -> list[Alert]:
        """Close open attacks (at shutdown); returns every alert of the run."""
        return self.detector.finish() if self.detector is not None else []

    def close(self) -> None:
        """Release the socket."""
        self.sock.close()

    def stop(self) -> None:
        self.stop_event.set()

    def summary(self) -> dict[str, Any]:
        """Collector, decoder and detector counters."""
        out: dict[str, Any] = {"collector": self.stats.to_dict(), "netflow": self.netflow.stats.to_dict(),
                               "sflow": self.sflow.stats.to_dict(), "templates": self.netflow.template_count(),
                               "held_flowsets": self.netflow.pending, "rcvbuf": self.rcvbuf}
        if self.detector is not None:
            out["detector"] = self.detector.stats()
        return out
