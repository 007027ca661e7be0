"""Flow pillar benchmark: batch decode + detection throughput, CSV reading, and UDP collector loss.

Usage: .venv/bin/python bench/bench_flow.py [--quick]   (writes docs/benchmarks/flow.md)

* Batch: the simulator's default scenario (≈1.5 M sampled flow records, every attack type) encoded as
  NetFlow v5, v9 and IPFIX packets; we time decoding every packet and running the volumetric detector
  over the records, in CPU seconds of this process (one core; the load from other processes on a shared
  machine does not inflate it) and wall seconds.
* Collector: a second process sends NetFlow v5 (30 records per datagram) on loopback at a fixed record
  rate with a token-bucket limiter; the collector (decode + detection) runs in this process. Loss is what
  the sender sent minus what we decoded, and the kernel's own drop counter for the socket.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _machine import describe  # noqa: E402

from fsbrain.domains.flow.collector import UdpCollector  # noqa: E402
from fsbrain.domains.flow.config import DetectorConfig  # noqa: E402
from fsbrain.domains.flow.detector import VolumetricDetector  # noqa: E402
from fsbrain.domains.flow.export import encode_ipfix, encode_v5, encode_v9  # noqa: E402
from fsbrain.domains.flow.nfdecode import NetflowDecoder  # noqa: E402
from fsbrain.domains.flow.simulator import default_scenario, evaluate, simulate  # noqa: E402


def batch(recs: np.ndarray, events: list, kind: str) -> dict:
    boot = float(recs["ts"].min()) - 60
    enc = {"v5": lambda r: encode_v5(r, boot=boot, sampling=100),
           "v9": lambda r: encode_v9(r, boot=boot, sampling=100),
           "ipfix": lambda r: encode_ipfix(r, template_every=50)}[kind]
    pkts = enc(recs)
    dec = NetflowDecoder()
    det = VolumetricDetector(DetectorConfig(protected=["198.51.100.0/24"]))
    c0, w0 = time.process_time(), time.perf_counter()
    n = 0
    for i in range(0, len(pkts), 4000):
        out = dec.decode_many([(p, 1) for p in pkts[i : i + 4000]])
        n += len(out)
        det.process(out)
    alerts = det.finish()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    res = evaluate(alerts, events, 1.0)
    return {"format": kind, "packets": len(pkts), "records": n, "cpu_s": cpu, "wall_s": wall,
            "rec_per_cpu_s": n / cpu, "detected": f"{res['detected']}/{res['total']}",
            "false": len(res["false_alerts"])}


def detect_only(recs: np.ndarray) -> dict:
    det = VolumetricDetector(DetectorConfig(protected=["198.51.100.0/24"]))
    c0 = time.process_time()
    for i in range(0, len(recs), 200_000):
        det.process(recs[i : i + 200_000])
    det.finish()
    cpu = time.process_time() - c0
    return {"records": len(recs), "cpu_s": cpu, "rec_per_cpu_s": len(recs) / cpu}


def csv_scan(recs: np.ndarray) -> dict:
    """Write the records as nfdump CSV, then time reading it back and detecting (CPU seconds)."""
    import tempfile

    from fsbrain.domains.flow.cli import write_records
    from fsbrain.domains.flow.fileio import read_flows

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "flows.csv"
        write_records(recs, path)
        det = VolumetricDetector(DetectorConfig(protected=["198.51.100.0/24"]))
        c0 = time.process_time()
        n = 0
        for batch in read_flows(path, "nfdump"):
            n += len(batch)
            det.process(batch)
        alerts = det.finish()
        cpu = time.process_time() - c0
    return {"records": n, "cpu_s": cpu, "rec_per_cpu_s": n / cpu, "alerts": len(alerts)}


def decode_only(recs: np.ndarray) -> dict:
    out = {}
    boot = float(recs["ts"].min()) - 60
    for kind, pkts in (("v5", encode_v5(recs, boot=boot)), ("v9", encode_v9(recs, boot=boot)),
                       ("ipfix", encode_ipfix(recs))):
        dec = NetflowDecoder()
        c0 = time.process_time()
        n = sum(len(dec.decode_many([(p, 1) for p in pkts[i : i + 4000]])) for i in range(0, len(pkts), 4000))
        out[kind] = n / (time.process_time() - c0)
    return out


def _sender(port: int, rate: float, seconds: float, q: mp.Queue) -> None:
    """Send pre-encoded NetFlow v5 datagrams (30 records) at ``rate`` records/s; only the header time is
    patched per datagram, so the sender is not the bottleneck."""
    import struct

    from fsbrain.domains.flow.records import make_records

    rng = np.random.default_rng(1)
    pkts = []
    for _ in range(64):
        r = make_records(30)
        r["src"] = rng.integers(0, 2**32, 30)
        r["dst"] = rng.integers(0xC6336400, 0xC6336500, 30)
        r["proto"], r["packets"], r["bytes"], r["ts"], r["te"] = 6, 10, 6000, 100.0, 100.0
        pkts.append(bytearray(encode_v5(r, boot=100.0)[0]))  # first = last = uptime 0
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    t0 = time.perf_counter()
    while True:
        now = time.perf_counter()
        if now - t0 >= seconds:
            break
        due = int((now - t0) * rate / 30)  # token bucket: datagrams due by now
        wall = time.time()
        while sent < due:
            p = pkts[sent % 64]
            struct.pack_into("!IIII", p, 4, 0, int(wall), int(wall % 1 * 1e9), sent * 30)
            s.sendto(p, ("127.0.0.1", port))
            sent += 1
        time.sleep(0.0005)
    q.put((sent * 30, time.perf_counter() - t0))


def collector(rate: float, seconds: float) -> dict:
    col = UdpCollector(("127.0.0.1", 0), detector=VolumetricDetector(), flush_interval=0.25)
    th = threading.Thread(target=col.run, kwargs={"duration": seconds + 3}, daemon=True)
    th.start()
    q: mp.Queue = mp.Queue()
    p = mp.Process(target=_sender, args=(col.address[1], rate, seconds, q))
    c0 = time.process_time()
    p.start()
    sent, took = q.get(timeout=seconds + 60)
    p.join()
    th.join()
    cpu = time.process_time() - c0
    s = col.summary()
    col.finish()
    col.close()
    got = s["collector"]["records"]
    return {"target_rate": rate, "sent": sent, "send_rate": sent / took, "received": got,
            "lost": sent - got, "kernel_drops": s["collector"]["kernel_drops"], "collector_cpu_s": cpu,
            "rcvbuf": s["rcvbuf"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter collector runs")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "flow.md"))
    args = ap.parse_args()
    recs, events = simulate(default_scenario())
    lines = ["# Flow pillar benchmark", "", f"Machine: {describe()}", "",
             f"Command: `.venv/bin/python bench/bench_flow.py{' --quick' if args.quick else ''}` "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             "## Batch: decode NetFlow packets + volumetric detection (one process, one core)", "",
             f"Input: the simulator's default scenario, {len(recs):,} sampled flow records over "
             f"{(recs['ts'].max() - recs['ts'].min()) / 3600:.1f} h with 11 attacks and 3 flash crowds. "
             "Records/CPU-second is the per-core rate.", "",
             "| format | datagrams | records | CPU s | wall s | records / CPU s | attacks found | false alerts |",
             "|---|---|---|---|---|---|---|---|"]
    for kind in ("v5", "v9", "ipfix"):
        b = batch(recs, events, kind)
        print(b, flush=True)
        lines.append(f"| NetFlow {kind} | {b['packets']:,} | {b['records']:,} | {b['cpu_s']:.2f} | {b['wall_s']:.2f} | "
                     f"{b['rec_per_cpu_s']:,.0f} | {b['detected']} | {b['false']} |")
    d = detect_only(recs)
    dec = decode_only(recs[:300_000])
    print(d, dec, flush=True)
    cs = csv_scan(recs)
    print(cs, flush=True)
    lines += ["", f"nfdump CSV file (read with pyarrow, parsed, detected): {cs['records']:,} records in "
              f"{cs['cpu_s']:.2f} CPU s = {cs['rec_per_cpu_s']:,.0f} records/CPU s, {cs['alerts']} alerts."]
    lines += ["", f"Parts: detection alone {d['rec_per_cpu_s']:,.0f} records/CPU s; decoding alone "
              + ", ".join(f"{k} {v:,.0f}" for k, v in dec.items()) + " records/CPU s.", "",
              "## UDP collector on loopback (sender in a second process, token-bucket rate)", "",
              "| target records/s | sent | achieved send rate | decoded | lost | kernel drops | collector CPU s | SO_RCVBUF |",
              "|---|---|---|---|---|---|---|---|"]
    secs = 5 if args.quick else 15
    for rate in (100_000, 200_000):
        c = collector(rate, secs)
        print(c, flush=True)
        lines.append(f"| {rate:,} | {c['sent']:,} | {c['send_rate']:,.0f} | {c['received']:,} | {c['lost']:,} | "
                     f"{c['kernel_drops']} | {c['collector_cpu_s']:.2f} | {c['rcvbuf']:,} |")
    lines += ["", f"Each run lasts {secs} s. NetFlow v5 datagrams of 30 records; the collector decodes every "
              "datagram and runs the detector on 0.25 s batches.", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
