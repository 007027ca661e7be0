"""Backtests: replay labelled history in time order through the same evaluator the API uses.

Input records are raw events (as the API receives them) or prepared ones (``{"event_type", "event_id",
"timestamp", "data"}`` with identity values already pseudonymised, as the decision log stores them and
``fsbrain events prepare`` writes them), each with a ground-truth ``label`` field (``normal`` or a risk
label); ``scenario`` and other ``_``-prefixed fields are ignored. Validation and
pseudonymisation are stateless, so they run in worker processes; features and rules run in order in this
process, on a fresh in-memory state, exactly as :meth:`Engine.decide` runs them for the API (the
*streaming* backtest, :func:`run_backtest`, the reference).

:func:`backtest_file` (what ``fsbrain backtest`` runs) takes the *columnar* path where it gives the same
report: prepared events in a JSON-lines file, in time order. Every windowed feature of every event is then
computed at once (:mod:`fsbrain.engine.columnar`), and worker processes run each event through
``Engine._decide_policy`` (the API evaluator's rules, score and outcome) with its feature values.
"""

from __future__ import annotations

import contextlib
import gc
import operator
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fsbrain.core.errors import InputError
from fsbrain.core.pii import Pseudonymizer
from fsbrain.engine.evaluator import Engine
from fsbrain.engine.events import prepare_event
from fsbrain.engine.policy import CompiledPolicy
from fsbrain.state.memory import MemoryStateBackend

TRUTH_FIELDS = ("label", "scenario")
NORMAL = "normal"


@dataclass
class BacktestReport:
    policy: str
    events: int = 0
    invalid: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    truth: Counter[str] = field(default_factory=Counter)
    # per label: tp, fp, fn on label attribution (label predicted with a non-lowest outcome)
    label_counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0}))
    caught: Counter[str] = field(default_factory=Counter)  # truth label → outcome above the lowest rung
    rule_hits: Counter[str] = field(default_factory=Counter)
    rule_fraud_hits: Counter[str] = field(default_factory=Counter)
    rule_label_hits: Counter[str] = field(default_factory=Counter)
    rule_unique: Counter[str] = field(default_factory=Counter)
    rule_labels: dict[str, str] = field(default_factory=dict)
    rule_errors: Counter[str] = field(default_factory=Counter)
    invalid_examples: list[str] = field(default_factory=list)
    # how features were computed: "streaming" (event by event on the state backend, the reference) or
    # "columnar" (all events at once, fsbrain.engine.columnar); why a columnar request fell back
    method: str = "streaming"
    method_note: str = ""
    phases: dict[str, float] = field(default_factory=dict)  # seconds per pass of the columnar path

    def merge(self, other: BacktestReport) -> None:
        """Add another part's tallies (rule workers tally chunks of events independently)."""
        self.events += other.events
        for name in ("outcomes", "truth", "caught", "rule_hits", "rule_fraud_hits", "rule_label_hits",
                     "rule_unique", "rule_errors"):
            getattr(self, name).update(getattr(other, name))
        for lab, c in other.label_counts.items():
            mine = self.label_counts[lab]
            for k, v in c.items():
                mine[k] += v

    def to_dict(self) -> dict[str, Any]:
        labels = {}
        for lab in sorted(set(self.label_counts) | {t for t in self.truth if t != NORMAL}):
            c = self.label_counts[lab]
            p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
            r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            n = self.truth.get(lab, 0)
            labels[lab] = {"support": n, "tp": c["tp"], "fp": c["fp"], "fn": c["fn"],
                           "precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4),
                           "caught_rate": round(self.caught[lab] / n, 4) if n else None}
        decided = sum(self.outcomes.values()) or 1
        normal = self.truth.get(NORMAL, 0)
        fraud = sum(v for k, v in self.truth.items() if k != NORMAL)
        rules = {}
        for rid, hits in self.rule_hits.most_common():
            rules[rid] = {"label": self.rule_labels.get(rid), "hits": hits,
                          "precision_fraud": round(self.rule_fraud_hits[rid] / hits, 4),
                          "precision_label": round(self.rule_label_hits[rid] / hits, 4),
                          "unique_catches": self.rule_unique[rid], "errors": self.rule_errors[rid]}
        return {
            "policy": self.policy,
            "method": self.method,
            **({"method_note": self.method_note} if self.method_note else {}),
            "events": self.events,
            "invalid_events": self.invalid,
            "invalid_examples": self.invalid_examples[:5],
            "seconds": round(self.seconds, 3),
            **({"phases": self.phases} if self.phases else {}),
            "events_per_second": round(self.events / self.seconds, 1) if self.seconds else None,
            "outcomes": dict(self.outcomes),
            "outcome_share": {k: round(v / decided, 4) for k, v in self.outcomes.items()},
            "review_rate": round(self.outcomes.get("review", 0) / decided, 4),
            "truth": dict(self.truth),
            "fraud_caught_rate": round(sum(v for k, v in self.caught.items() if k != NORMAL) / fraud, 4) if fraud else None,
            "normal_flagged_rate": round(self.caught.get(NORMAL, 0) / normal, 4) if normal else None,
            "labels": labels,
            "rules": rules,
        }


def is_prepared(rec: dict[str, Any]) -> bool:
    """A record already in event-data form (``fsbrain events prepare`` output, or the decision log)."""
    return isinstance(rec.get("data"), dict) and "event_type" in rec and "timestamp" in rec and "event_id" in rec


def truth_label(rec: dict[str, Any]) -> str:
    """A record's ground-truth label: ``normal`` when the field is missing or null, else its text."""
    v = rec.get("label")
    return NORMAL if v is None else str(v)


def prepare_records(records: Iterable[dict[str, Any]], key: bytes, *, workers: int = 1,
                    ) -> Iterator[dict[str, Any]]:
    """Validate and pseudonymise raw records into prepared ones (identity values become keyed hashes).

    Invalid records are yielded as ``{"error": message, "record": n}``.
    """
    for n, truth, et, eid, ts, data, err in prepared_stream(records, key, workers=workers):
        if err is not None:
            yield {"record": n + 1, "error": err}
        else:
            yield {"event_type": et, "event_id": eid, "timestamp": ts, "label": truth, "data": data}


def _prepare_chunk(args: tuple[list[dict[str, Any]], bytes, int]) -> list[tuple[Any, ...]]:
    records, key, base = args
    ps = Pseudonymizer(key)
    out: list[tuple[Any, ...]] = []
    for i, rec in enumerate(records):
        truth = truth_label(rec)
        if is_prepared(rec):
            out.append((base + i, truth, rec["event_type"], str(rec["event_id"]), float(rec["timestamp"]),
                        rec["data"], None))
            continue
        payload = {k: v for k, v in rec.items() if k not in TRUTH_FIELDS and not k.startswith("_")}
        try:
            ev = prepare_event("loan_application" if "event_type" not in payload else payload.pop("event_type"),
                               payload, ps)
            out.append((base + i, truth, ev.event_type, ev.event_id, ev.timestamp, ev.data, None))
        except InputError as exc:
            out.append((base + i, truth, None, None, None, None, exc.message))
    return out


def prepared_stream(records: Iterable[dict[str, Any]], key: bytes, *, workers: int = 1,
                    chunk: int = 2000) -> Iterator[tuple[Any, ...]]:
    """Validate and pseudonymise records, in worker processes when ``workers > 1``, preserving order."""
    def chunks() -> Iterator[tuple[list[dict[str, Any]], bytes, int]]:
        buf: list[dict[str, Any]] = []
        base = 0
        for r in records:
            buf.append(r)
            if len(buf) >= chunk:
                yield buf, key, base
                base += len(buf)
                buf = []
        if buf:
            yield buf, key, base

    if workers <= 1:
        for c in chunks():
            yield from _prepare_chunk(c)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from (item for part in pool.map(_prepare_chunk, chunks(), chunksize=1) for item in part)


def run_backtest(policy: CompiledPolicy, records: Iterable[dict[str, Any]], *, workers: int = 1,
                 key: bytes | None = None, progress: Callable[[int], None] | None = None,
                 rule_workers: int = 0) -> BacktestReport:
    """Replay ``records`` (time-ordered) through ``policy`` on a fresh in-memory state.

    Args:
        workers: processes that validate and pseudonymise raw records (prepared records skip this).
        rule_workers: processes that evaluate rules, score and tally (0: all in this process). Windowed
            features depend on every earlier event, so they are computed here, in order; the rules, the
            score and the tally depend only on one event and its features, so chunks of events go to the
            workers with their feature values, and the partial reports are added up. The result is the
            same report as with ``rule_workers=0`` (tested), only faster on several cores.
    """
    if rule_workers > 0:
        return _run_pipelined(policy, records, workers=workers, key=key, progress=progress,
                              rule_workers=rule_workers)

    engine = Engine(state=MemoryStateBackend())
    engine.set_policy(policy)
    rep = BacktestReport(policy=policy.ref)
    rep.rule_labels = {r.id: r.label for r in policy.rules}
    weights = {r.id: r.weight for r in policy.rules}
    forced = {r.id for r in policy.rules if r.outcome is not None}
    lowest = policy.outcomes[0][0]
    review_at = policy.outcomes[1][1]
    t0 = time.perf_counter()
    with _quiet_gc():
        _replay(engine, rep, records, workers, key, progress, weights, forced, lowest, review_at)
    rep.seconds = time.perf_counter() - t0
    return rep


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    """Collect rarely while the window state grows (as ``fsbrain serve`` does); restore afterwards."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def _valid_in_order(rep: BacktestReport, records: Iterable[dict[str, Any]], workers: int, key: bytes | None,
                    progress: Callable[[int], None] | None) -> Iterator[tuple[str, str, str, float, dict[str, Any]]]:
    """``(truth, event_type, event_id, ts, data)`` of each valid record; invalid ones are counted in
    ``rep``, and a record older than the one before stops the backtest with :class:`InputError`."""
    import secrets

    last_ts = float("-inf")
    for n, (_, truth, et, eid, ts, data, err) in enumerate(
            prepared_stream(records, key or secrets.token_bytes(32), workers=workers), 1):
        if progress is not None and n % 5000 == 0:
            progress(5000)
        if err is not None:
            rep.invalid += 1
            if len(rep.invalid_examples) < 5:
                rep.invalid_examples.append(f"record {n}: {err}")
            continue
        if ts < last_ts - 1e-6:
            raise InputError(f"record {n}: events are not in time order ({ts} after {last_ts}); sort them first")
        last_ts = max(last_ts, ts)
        yield truth, et, eid, ts, data


def _replay(engine: Engine, rep: BacktestReport, records: Iterable[dict[str, Any]], workers: int,
            key: bytes | None, progress: Callable[[int], None] | None, weights: dict[str, int],
            forced: set[str], lowest: str, review_at: int) -> None:
    for truth, et, eid, ts, data in _valid_in_order(rep, records, workers, key, progress):
        d, _ = engine.decide(et, data, event_id=eid, timestamp=ts)
        _tally(rep, d, truth, weights, forced, lowest, review_at)


def _tally(rep: BacktestReport, d: Any, truth: str, weights: dict[str, int], forced: set[str],
           lowest: str, review_at: int) -> None:
    rep.events += 1
    rep.outcomes[d.outcome] += 1
    rep.truth[truth] += 1
    flagged = d.outcome != lowest
    if flagged:
        rep.caught[truth] += 1
    predicted = set(d.labels) if flagged else set()
    for lab in predicted:
        if lab == truth:
            rep.label_counts[lab]["tp"] += 1
        else:
            rep.label_counts[lab]["fp"] += 1
    if truth != NORMAL and truth not in predicted:
        rep.label_counts[truth]["fn"] += 1
    hit_forced = [r.id for r in d.reasons if r.id in forced]
    for r in d.reasons:
        if r.source != "rule":
            continue
        rep.rule_hits[r.id] += 1
        if truth != NORMAL:
            rep.rule_fraud_hits[r.id] += 1
            if flagged and d.score - weights.get(r.id, 0) < review_at and hit_forced in ([], [r.id]):
                rep.rule_unique[r.id] += 1
        if truth == r.label:
            rep.rule_label_hits[r.id] += 1
    for e in d.errors:
        if "rule" in e:
            rep.rule_errors[e["rule"]] += 1


# -- two-stage backtest: features in order here, rules and tallies in worker processes ----------------
_W: dict[str, Any] = {}
_CHUNK = 1000


def _rule_worker_init(text: str, source: str) -> None:
    from fsbrain.engine.policy import compile_policy

    pol = compile_policy(text, source)
    eng = Engine(state=MemoryStateBackend())
    eng.set_policy(pol)
    _W.update(engine=eng, policy=pol, plan=eng._plans[pol.event_type])


def _rule_chunk(chunk: list[tuple[Any, ...]]) -> BacktestReport:
    eng, pol, plan = _W["engine"], _W["policy"], _W["plan"]
    rep = BacktestReport(policy=pol.ref)
    weights = {r.id: r.weight for r in pol.rules}
    forced = {r.id for r in pol.rules if r.outcome is not None}
    lowest, review_at = pol.outcomes[0][0], pol.outcomes[1][1]
    for truth, eid, ts, data, fvalues, ferrors in chunk:
        d = eng._decide_policy(plan, plan.live, data, fvalues, ferrors, eid, ts, time.perf_counter())
        _tally(rep, d, truth, weights, forced, lowest, review_at)
    rep.label_counts = {k: dict(v) for k, v in rep.label_counts.items()}  # picklable (no lambda factory)
    return rep


def _run_pipelined(policy: CompiledPolicy, records: Iterable[dict[str, Any]], *, workers: int,
                   key: bytes | None, progress: Callable[[int], None] | None, rule_workers: int) -> BacktestReport:
    import multiprocessing as mp

    engine = Engine(state=MemoryStateBackend())
    engine.set_policy(policy)
    plan = engine._plans[policy.event_type]
    rep = BacktestReport(policy=policy.ref)
    rep.rule_labels = {r.id: r.label for r in policy.rules}
    t0 = time.perf_counter()
    futures = []
    chunk: list[tuple[Any, ...]] = []
    ctx = mp.get_context("spawn")
    # what the rule stage reads of an event: the fields the rules name and those a reason reports (a
    # policy with model slots ships whole events, since a model may read any field)
    need = None if policy.models else sorted(
        set(policy.rule_names) | {r.feature.split(".")[0] for r in policy.rules if r.feature})
    with _quiet_gc(), ProcessPoolExecutor(max_workers=rule_workers, mp_context=ctx, initializer=_rule_worker_init,
                                          initargs=(policy.text, policy.source)) as pool:
        for truth, et, eid, ts, data in _valid_in_order(rep, records, workers, key, progress):
            if et != policy.event_type:
                engine.policy(et)  # unknown event type: the same error as the one-process backtest
            fvalues, ferrors = engine._features(plan, data, ts)
            part = data if need is None else {k: data[k] for k in need if k in data}
            chunk.append((truth, eid, ts, part, fvalues, ferrors))
            if len(chunk) >= _CHUNK:
                futures.append(pool.submit(_rule_chunk, chunk))
                chunk = []
                while len(futures) > 4 * rule_workers:  # bounded memory: wait for the oldest chunk
                    rep.merge(futures.pop(0).result())
        if chunk:
            futures.append(pool.submit(_rule_chunk, chunk))
        for f in futures:
            rep.merge(f.result())
    rep.seconds = time.perf_counter() - t0
    return rep


# -- columnar backtest: features for the whole history at once, rules and tallies in processes -------
REPORT_TIMING_KEYS = ("seconds", "events_per_second", "method", "method_note", "phases")
_SPAN_BYTES = 8 << 20


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A report without what may differ between two runs of the same history (timing, method)."""
    return {k: v for k, v in report.items() if k not in REPORT_TIMING_KEYS}


def backtest_file(policy: CompiledPolicy, path: str | Any, *, method: str = "auto", workers: int = 2,
                  rule_workers: int = 1, key: bytes | None = None,
                  progress: Callable[[int], None] | None = None) -> BacktestReport:
    """Backtest the events in ``path`` (what ``fsbrain backtest`` runs).

    Args:
        method: ``columnar`` computes every windowed feature for the whole history at once
            (:mod:`fsbrain.engine.columnar`) and evaluates rules in ``workers`` processes; ``streaming``
            replays event by event on the in-memory state (:func:`run_backtest`, the reference);
            ``auto`` tries columnar and falls back to streaming where it cannot give the identical report
            (raw records needing validation, events out of order, a file that is not JSON lines, ...),
            saying why in ``method_note``.
    """
    from pathlib import Path

    from fsbrain.io import read_records

    if method not in ("auto", "columnar", "streaming"):
        raise InputError(f"unknown backtest method {method!r} (auto, columnar or streaming)")
    note = ""
    if method != "streaming":
        from fsbrain.engine.columnar import Unsupported

        try:
            return run_columnar(policy, Path(path), workers=max(1, workers), progress=progress)
        except Unsupported as exc:
            note = f"columnar path not used: {exc}"
            if method == "columnar":
                raise InputError(note) from None
    rep = run_backtest(policy, read_records(path), workers=workers, key=key, progress=progress,
                       rule_workers=rule_workers)
    rep.method_note = note
    return rep


_CW: dict[str, Any] = {}


def _col_init(text: str, source: str) -> None:
    from fsbrain.engine.policy import compile_policy

    pol = compile_policy(text, source)
    eng = Engine(state=MemoryStateBackend())
    eng.set_policy(pol)
    _CW.update(engine=eng, policy=pol, plan=eng._plans[pol.event_type])


def _spans(path: Any, size: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``size`` bytes, each ending after a newline (or at the end of the file)."""
    import os

    total = os.path.getsize(path)
    out = []
    with open(path, "rb") as fh:
        start = 0
        while start < total:
            end = min(total, start + size)
            if end < total:
                fh.seek(end)
                rest = fh.readline()
                end += len(rest)
            out.append((start, end))
            start = end
    return out


def _span_records(path: Any, span: tuple[int, int], event_type: str) -> Iterator[tuple[dict[str, Any], float]]:
    """The records of one byte range, as ``fsbrain.io`` reads them; anything the streaming reader or
    backtest treats specially (a malformed or raw record, another event type) is ``Unsupported``."""
    import orjson

    from fsbrain.engine.columnar import Unsupported
    from fsbrain.io import MAX_LINE_BYTES

    with open(path, "rb") as fh:
        fh.seek(span[0])
        buf = fh.read(span[1] - span[0])
    loads = orjson.loads
    for line in buf.split(b"\n"):
        if len(line) >= MAX_LINE_BYTES:
            raise Unsupported("a line longer than the reader allows")
        line = line.strip()
        if not line:
            continue
        try:
            rec = loads(line)
        except orjson.JSONDecodeError:
            raise Unsupported("a malformed JSON line") from None
        if not isinstance(rec, dict) or not is_prepared(rec):
            raise Unsupported("records that are not prepared events (validation and pseudonymisation run in "
                              "the streaming path; `fsbrain events prepare` makes them)")
        if rec["event_type"] != event_type:
            raise Unsupported(f"an event of type {rec['event_type']!r}, not {event_type!r}")
        try:
            ts = float(rec["timestamp"])
        except (TypeError, ValueError, OverflowError):
            raise Unsupported("a timestamp that is not a number") from None
        yield rec, ts


def _rule_fields(policy: CompiledPolicy) -> tuple[str, ...]:
    """The event fields ``Engine._decide_policy`` reads when no lists are loaded and no models run: the
    fields the rules name, and those a reason reports (a rule's ``feature`` that is no feature or model
    of the policy is looked up in the event)."""
    named = {f.name for f in policy.features} | {m.name for m in policy.models}
    return tuple(sorted(set(policy.rule_names) | {
        r.feature.split(".")[0] for r in policy.rules if r.feature and r.feature not in named}))


def _col_worker(conn: Any, text: str, source: str, path: Any, spans: list[tuple[int, int]]) -> None:
    """One worker of the columnar backtest: extract its byte ranges' feature inputs (sent back in order),
    keep what the rules read of each event, then decide and tally its events with the feature values it
    is sent. Messages out: ``("part", FeatureInputs)``, ``("done", BacktestReport)``, ``("progress", n)``,
    ``("unsupported", why)``, ``("error", traceback)``."""
    import traceback

    from fsbrain.engine.columnar import Unsupported, extract_inputs

    try:
        _col_init(text, source)
        eng, pol, plan = _CW["engine"], _CW["policy"], _CW["plan"]
        need = _rule_fields(pol)
        common: tuple[str, ...] | None = None  # the rule fields the first event has: kept as one tuple
        rare: list[str] = []
        pick: Any = None
        kept: list[list[tuple[str, float, Any, Any, Any]]] = []
        gc.disable()  # what is kept here holds no cycles; collecting would only rescan it
        for span in spans:
            datas, tss, keep = [], [], []
            for rec, ts in _span_records(path, span, pol.event_type):
                d = rec["data"]
                datas.append(d)
                tss.append(ts)
                if common is None:
                    common = tuple(k for k in need if k in d)
                    rare = [k for k in need if k not in d]
                    pick = operator.itemgetter(*common) if len(common) > 1 else None
                try:
                    part: Any = pick(d) if pick is not None else {k: d[k] for k in common if k in d}
                except KeyError:  # an event without some of them: the fields it has
                    part = {k: d[k] for k in common if k in d}
                extra = {k: d[k] for k in rare if k in d} if rare else None
                keep.append((str(rec["event_id"]), ts, truth_label(rec), part, extra or None))
            conn.send(("part", extract_inputs(plan, datas, tss, eng._fast)))
            kept.append(keep)
            del datas
        cpu_extract = time.process_time()
        msg = conn.recv()
        if msg is None:
            return
        cpu0 = time.process_time()
        names, nullable, arrays, errors = msg
        cols = [_py(a, nul) for a, nul in zip(arrays, nullable, strict=True)]
        del arrays
        weights = {r.id: r.weight for r in pol.rules}
        forced = {r.id for r in pol.rules if r.outcome is not None}
        lowest, review_at = pol.outcomes[0][0], pol.outcomes[1][1]
        decide, clock, live = eng._decide_policy, time.perf_counter, plan.live
        rows = zip(*cols, strict=True) if cols else iter(lambda: (), None)
        none: list[dict[str, Any]] = []
        i = 0
        gc.freeze()  # the kept events: never rescanned
        gc.set_threshold(50_000, 20, 100)  # decisions hold no cycles: collect rarely, as `fsbrain serve` does
        gc.enable()
        for keep in kept:
            # one partial report per byte range: added up in file order, so that every count's keys come
            # in the order the streaming run first meets them (the JSON report is the same text)
            rep = BacktestReport(policy=pol.ref)
            for (eid, ts, truth, part, extra), row in zip(keep, rows, strict=False):
                data = dict(zip(common, part, strict=True)) if type(part) is tuple else part
                if extra is not None:
                    data.update(extra)
                d = decide(plan, live, data, dict(zip(names, row, strict=True)), errors.get(i, none), eid, ts, clock())
                _tally(rep, d, truth, weights, forced, lowest, review_at)
                i += 1
            rep.label_counts = {k: dict(v) for k, v in rep.label_counts.items()}  # picklable
            conn.send(("span", rep))
        conn.send(("done", {"extract_cpu": cpu_extract, "rules_cpu": time.process_time() - cpu0,
                            "worker_max_rss_mb": _max_rss_mb()}))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the main process stopped (it fell back, or failed): nothing to report
    except Unsupported as exc:
        with contextlib.suppress(OSError):
            conn.send(("unsupported", str(exc)))
    except BaseException:
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))


def run_columnar(policy: CompiledPolicy, path: Any, *, workers: int = 2,
                 progress: Callable[[int], None] | None = None) -> BacktestReport:
    """The columnar backtest of a JSON-lines file of prepared events (see :func:`backtest_file`).

    ``workers`` processes each read every ``workers``-th byte range of the file and extract each event's
    feature inputs (keys, filters, values) with the engine's own rules, keeping what the rules read; this
    process computes every windowed feature of every event at once
    (:func:`fsbrain.engine.columnar.feature_values`) and sends each worker its events' values; the
    workers run each event through ``Engine._decide_policy`` (the rules, score and outcome of the API's
    evaluator) and tally; the partial reports add up.

    Raises:
        fsbrain.engine.columnar.Unsupported: where the result could differ from the streaming path's.
    """
    import multiprocessing as mp
    from multiprocessing.connection import wait

    from fsbrain.engine import columnar
    from fsbrain.io import detect_format

    if detect_format(path) != "jsonl" or path.name.lower().endswith((".json", ".gz")):
        raise columnar.Unsupported("the columnar path reads JSON-lines files (.jsonl, .ndjson)")
    if policy.models:
        raise columnar.Unsupported("the policy has model slots")
    engine = Engine(state=MemoryStateBackend())
    engine.set_policy(policy)
    plan = engine._plans[policy.event_type]
    rep = BacktestReport(policy=policy.ref, method="columnar")
    rep.rule_labels = {r.id: r.label for r in policy.rules}
    t0, c0 = time.perf_counter(), time.process_time()
    cpu: dict[str, float] = {}
    spans = _spans(path, _SPAN_BYTES)
    if not spans:
        rep.seconds = time.perf_counter() - t0
        return rep
    nw = max(1, min(workers, len(spans)))
    ctx = mp.get_context("spawn")
    conns, procs = [], []
    try:
        for k in range(nw):
            mine, theirs = ctx.Pipe()
            pr = ctx.Process(target=_col_worker, args=(theirs, policy.text, policy.source, path, spans[k::nw]),
                             daemon=True, name=f"fsbrain-backtest-{k}")
            pr.start()
            theirs.close()
            conns.append(mine)
            procs.append(pr)

        def recv(k: int) -> Any:
            try:
                kind, payload = conns[k].recv()
            except EOFError:
                procs[k].join(timeout=5)
                raise RuntimeError(f"backtest worker {k} exited unexpectedly (exit code {procs[k].exitcode}; "
                                   "out of memory? `--method streaming` needs less)") from None
            if kind == "unsupported":
                raise columnar.Unsupported(payload)
            if kind == "error":
                raise RuntimeError(f"backtest worker failed:\n{payload}")
            return kind, payload

        merger = columnar.InputMerger()
        owner: list[int] = []  # the worker of each part, in file order
        for i in range(len(spans)):
            _, part = recv(i % nw)
            merger.add(part)
            owner.append(i % nw)
        counts = merger.counts
        t1, c1 = time.perf_counter(), time.process_time()
        inputs = merger.result()
        del merger
        cols = columnar.feature_values(plan, inputs)
        errors = inputs.errors
        del inputs
        t2, c2 = time.perf_counter(), time.process_time()
        names = [f.spec.name for f, _, _ in plan.rows]
        nullable = [f.agg in ("min", "max", "mean") for f, _, _ in plan.rows]
        bases = [0]
        for n in counts:
            bases.append(bases[-1] + n)
        for k in range(nw):
            idx = np.concatenate([np.arange(bases[j], bases[j + 1]) for j in range(len(spans)) if owner[j] == k])
            pos = {int(g): i for i, g in enumerate(idx)} if errors else {}
            errs = {pos[g]: e for g, e in errors.items() if g in pos}
            conns[k].send((names, nullable, [cols[n][idx] for n in names], errs))
        del cols
        pending = set(range(nw))
        span_reps: list[BacktestReport | None] = [None] * len(spans)
        got = [0] * nw
        while pending:
            for c in wait([conns[k] for k in pending]):
                k = conns.index(c)
                kind, payload = recv(k)
                if kind == "span":
                    span_reps[k + nw * got[k]] = payload
                    got[k] += 1
                    if progress is not None:
                        progress(payload.events)
                elif kind == "done":
                    for name, v in payload.items():
                        cpu[name] = max(cpu.get(name, 0.0), v) if name.endswith("_mb") else cpu.get(name, 0.0) + v
                    pending.discard(k)
        for part in span_reps:
            if part is not None:
                rep.merge(part)
        rep.phases = {"extract": round(t1 - t0, 3), "features": round(t2 - t1, 3),
                      "rules": round(time.perf_counter() - t2, 3),
                      **{k: round(v, 3) for k, v in cpu.items()},
                      "main_cpu": round(time.process_time() - c0, 3), "features_cpu": round(c2 - c1, 3),
                      "main_max_rss_mb": _max_rss_mb()}
    finally:
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()
        for pr in procs:
            pr.join(timeout=5)
            if pr.is_alive():
                pr.terminate()
                pr.join()
    rep.seconds = time.perf_counter() - t0
    return rep


def _max_rss_mb() -> float:
    """Peak resident size of this process in MiB (Linux reports KiB; 0 where unknown)."""
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (ImportError, OSError):
        return 0.0


def _py(a: Any, nullable: bool) -> list[Any]:
    lst = a.tolist()
    return [None if v != v else v for v in lst] if nullable else lst
