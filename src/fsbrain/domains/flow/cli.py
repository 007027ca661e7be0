"""``fsbrain flow …``: collect, scan, simulate, classify, train.

Thin: each command calls the same functions the API and the tests use. Problems are reported as
``error: …`` with exit status 2 (``fsbrain.cli.main`` turns :class:`~fsbrain.core.errors.FsbrainError`
into that), never as a traceback.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from fsbrain.core.errors import InputError


def _config(path: Path | None) -> Any:
    from fsbrain.domains.flow.config import DetectorConfig

    return DetectorConfig.from_yaml(path) if path else DetectorConfig()


def _emit(alerts: list[Any], fmt: str, out: Any) -> None:
    if fmt == "jsonl":
        for a in alerts:
            out.write(json.dumps(a.to_dict(), default=float) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(alerts)} attack(s)")
    for col in ("start", "end", "label", "target", "peak pps", "peak Mbit/s", "confidence", "top source / port"):
        t.add_column(col)
    import datetime as dt

    for a in alerts:
        d = a.details
        top = d["top_src_ports"][0]["port"] if d["class"] == "amplification" and d["top_src_ports"] else (
            d["top_sources"][0]["ip"] if d["top_sources"] else "")
        t.add_row(dt.datetime.fromtimestamp(a.start, dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                  dt.datetime.fromtimestamp(a.end, dt.UTC).strftime("%H:%M:%S") if a.end else "ongoing",
                  a.labels[0], a.entity or "", f"{d['peak_pps']:,.0f}", f"{d['peak_bps'] / 1e6:,.1f}",
                  f"{d['confidence']:.2f}", str(top))
    Console(file=out, width=160).print(t)


def register(app: typer.Typer) -> None:
    """Attach the flow commands to ``app`` (the ``fsbrain flow`` group)."""

    @app.command()
    def scan(
        files: list[Path] = typer.Argument(..., help="flow files: CICFlowMeter CSV, nfdump CSV, pcap of NetFlow/IPFIX/sFlow"),
        format: str = typer.Option("table", "--format", help="jsonl or table"),
        config: Path | None = typer.Option(None, "--config", help="detector YAML config"),
        input_format: str = typer.Option("auto", "--input-format", help="auto, cicflowmeter, nfdump or pcap"),
        stats: bool = typer.Option(False, "--stats", help="print decode and detector counters to stderr"),
        baseline: Path | None = typer.Option(None, "--baseline", help="learned baselines: loaded if the file "
                                             "exists, saved after the run"),
    ) -> None:
        """Detect volumetric attacks in flow files (read in time order, one detector across all files)."""
        from fsbrain.domains.flow.detector import VolumetricDetector
        from fsbrain.domains.flow.fileio import read_flows
        from fsbrain.domains.flow.records import DecodeStats

        if format not in ("jsonl", "table"):
            raise InputError(f"--format {format!r}: use jsonl or table")
        det = VolumetricDetector(_config(config))
        if baseline is not None and baseline.exists():
            det.load_baselines(str(baseline))
        ds = DecodeStats()
        for f in files:
            for batch in read_flows(f, input_format, ds):
                if len(batch):
                    det.process(batch[batch["ts"].argsort(kind="stable")])
        alerts = det.finish()
        if baseline is not None:
            det.save_baselines(str(baseline))
        _emit(alerts, format, sys.stdout)
        if stats:
            typer.echo(json.dumps({"decode": ds.to_dict(), "detector": det.stats()}, default=float), err=True)

    @app.command()
    def collect(
        listen: str = typer.Option("127.0.0.1:2055", "--listen", help="HOST:PORT for NetFlow/IPFIX/sFlow"),
        config: Path | None = typer.Option(None, "--config", help="detector YAML config"),
        duration: float = typer.Option(0.0, "--duration", help="stop after this many seconds (0: until Ctrl-C)"),
        out: Path | None = typer.Option(None, "--out", help="append alerts as JSON lines here (default stdout)"),
        stats_file: Path | None = typer.Option(None, "--stats-file", help="write final counters (JSON) here"),
        baseline: Path | None = typer.Option(None, "--baseline", help="learned baselines: loaded if the file "
                                             "exists, saved at exit"),
    ) -> None:
        """Receive flow exports over UDP and print alerts as attacks start and end (JSON lines)."""
        from fsbrain.domains.flow.collector import UdpCollector, parse_listen
        from fsbrain.domains.flow.detector import VolumetricDetector

        sink = open(out, "a", encoding="utf-8") if out else sys.stdout  # noqa: SIM115

        def emit(a: Any) -> None:
            sink.write(json.dumps(a.to_dict(), default=float) + "\n")
            sink.flush()

        det = VolumetricDetector(_config(config))
        if baseline is not None and baseline.exists():
            det.load_baselines(str(baseline))
        col = UdpCollector(parse_listen(listen), detector=det, on_alert=emit)
        signal.signal(signal.SIGTERM, lambda *_: col.stop())
        typer.echo(f"listening on {col.address[0]}:{col.address[1]} (rcvbuf {col.rcvbuf} bytes)", err=True)
        try:
            col.run(duration or None)
        except KeyboardInterrupt:
            pass
        already = len(col.detector.closed) if col.detector is not None else 0
        for a in col.finish()[already:]:
            emit(a)
        summary = col.summary()
        col.close()
        if baseline is not None:
            det.save_baselines(str(baseline))
        typer.echo(json.dumps(summary, default=float), err=True)
        if stats_file:
            stats_file.write_text(json.dumps(summary, default=float, indent=1))
        if out:
            sink.close()

    @app.command()
    def simulate(
        out: Path = typer.Option(..., "--out", help="output: .csv (nfdump CSV), .pcap (NetFlow v9 in UDP) or .npy"),
        seed: int = typer.Option(7, "--seed"),
        train_hours: float = typer.Option(1.0, "--train-hours", help="attack-free learning time at the start"),
        evaluate: bool = typer.Option(False, "--evaluate", help="also run the detector and print the score"),
    ) -> None:
        """Write simulated flows (normal diurnal load, flash crowds, every attack type) and ground truth."""
        from fsbrain.domains.flow import simulator as S

        sc = S.default_scenario(seed=seed, train_hours=train_hours)
        recs, events = S.simulate(sc)
        write_records(recs, out)
        truth = out.with_name(out.name + ".truth.json")
        truth.write_text(json.dumps(S.truth_json(events), indent=1))
        typer.echo(f"wrote {len(recs)} flow records to {out} and ground truth to {truth}", err=True)
        if evaluate:
            from fsbrain.domains.flow.config import DetectorConfig
            from fsbrain.domains.flow.detector import detect

            res = S.evaluate(detect([recs], DetectorConfig(protected=[sc.network])), events, 1.0)
            typer.echo(json.dumps(res, default=float, indent=1))

    @app.command()
    def classify(
        file: Path = typer.Argument(..., help="CICFlowMeter CSV"),
        model: Path | None = typer.Option(None, "--model", help="model file (default: the shipped model)"),
        out: Path | None = typer.Option(None, "--out", help="write CSV here (default stdout)"),
    ) -> None:
        """Label every flow (benign, ddos, dos_*, port_scan, *_brute_force, botnet, web_attack) with a probability."""
        from fsbrain.domains.flow.classifier import FlowClassifier, read_csv

        clf = FlowClassifier.load(model)
        sink = open(out, "w", encoding="utf-8") if out else sys.stdout  # noqa: SIM115
        sink.write("row,flow_id,src_ip,dst_ip,dst_port,label,probability\n")
        row = 0
        for block in read_csv(file, labels=False):
            labels, prob = clf.predict(block["columns"], block["rows"])
            ids = block["ids"]
            empty = [""] * block["rows"]
            for i in range(block["rows"]):
                fid = ids.get("flow id", empty)[i]
                src, dst = ids.get("src ip", ids.get("source ip", empty))[i], ids.get("dst ip", ids.get("destination ip", empty))[i]
                dport = block["columns"].get("dst port")
                dp = "" if dport is None or dport[i] != dport[i] else int(dport[i])
                sink.write(f"{row},{_csv(fid)},{_csv(src)},{_csv(dst)},{dp},{labels[i]},{prob[i]:.4f}\n")
                row += 1
        if out:
            sink.close()
        typer.echo(f"classified {row} flows", err=True)

    @app.command()
    def train(
        file: Path = typer.Argument(..., help="labelled CICFlowMeter CSV (a Label column)"),
        out: Path = typer.Option(..., "--out", help="model file to write (.lgb, or .lgb.gz compressed)"),
        rounds: int = typer.Option(120, "--rounds", min=10, max=2000, help="boosting rounds"),
        holdout: float = typer.Option(0.25, "--holdout", min=0.0, max=0.5, help="stratified share kept for evaluation"),
    ) -> None:
        """Train a flow classifier on your own labelled exports and report its hold-out evaluation."""
        import numpy as np

        from fsbrain.domains.flow import classifier as C

        x, y, feats, info = C.load_labelled(file)
        evaluation: dict[str, Any] = {"skipped_labels": info["skipped_labels"]}
        if holdout > 0:
            from sklearn.model_selection import train_test_split

            idx = np.arange(len(y))
            counts = np.bincount(y)
            strat = y if counts[counts > 0].min() >= 2 else None
            tr, te = train_test_split(idx, test_size=holdout, stratify=strat, random_state=2017)
            m = C.build(x[tr], y[tr], feats, rounds=rounds)
            evaluation["holdout"] = C.report(y[te], np.asarray(m.booster.predict(x[te])).argmax(axis=1))
            typer.echo(json.dumps(evaluation["holdout"], indent=1), err=True)
        model = C.build(x, y, feats, rounds=rounds, evaluation=evaluation, source=str(file))
        model.save(out)
        typer.echo(f"wrote {out} ({len(y)} flows, {len(feats)} features)", err=True)


def _csv(v: Any) -> str:
    """One CSV cell (quoted when needed)."""
    s = "" if v is None else str(v)
    return '"' + s.replace('"', '""') + '"' if any(ch in s for ch in ',"\n') else s


def write_records(recs: Any, out: Path) -> None:
    """Write records as nfdump-style CSV, a pcap of NetFlow v9 packets, or a numpy ``.npy`` file.

    Raises:
        InputError: unknown extension.
    """
    import numpy as np

    from fsbrain.domains.flow.records import flags_to_str

    suffix = out.suffix.lower()
    if suffix == ".npy":
        np.save(out, recs)
    elif suffix == ".pcap":
        from fsbrain.domains.flow.export import encode_v9, write_pcap

        boot = float(recs["ts"].min()) - 3600 if len(recs) else 0.0
        write_pcap(str(out), encode_v9(recs, boot=boot, sampling=int(recs["sampling"].max()) if len(recs) else 0),
                   ts=boot + 3600)
    elif suffix == ".csv":
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        def dotted(v: np.ndarray) -> pa.Array:
            parts = [pa.array(((v >> np.uint32(s)) & np.uint32(255)).astype(np.int64)).cast(pa.string())
                     for s in (24, 16, 8, 0)]
            return pc.binary_join_element_wise(*parts, ".")

        def stamp(t: np.ndarray) -> pa.Array:
            return pc.strftime(pa.array((t * 1e6).astype("datetime64[us]")), "%Y-%m-%d %H:%M:%S")

        flag_names = np.array([flags_to_str(i) for i in range(256)], dtype=object)
        table = pa.table({"ts": stamp(recs["ts"]), "te": stamp(recs["te"]), "sa": dotted(recs["src"]),
                          "da": dotted(recs["dst"]), "sp": recs["sport"], "dp": recs["dport"], "pr": recs["proto"],
                          "flg": pa.DictionaryArray.from_arrays(pa.array(recs["flags"].astype(np.int32)),
                                                                pa.array(flag_names.tolist())).cast(pa.string()),
                          "ipkt": recs["packets"], "ibyt": recs["bytes"]})
        with open(out, "wb") as fh:
            fh.write(b"ts,te,sa,da,sp,dp,pr,flg,ipkt,ibyt\n")
            pacsv.write_csv(table, fh, write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))
    else:
        raise InputError(f"--out {out}: use a .csv, .pcap or .npy file name")
