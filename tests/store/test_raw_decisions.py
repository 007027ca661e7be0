"""The driver-level decision writer stores exactly what ``Store.save_decisions`` stores, and answers alike."""

from __future__ import annotations

import shutil
import sqlite3
from typing import Any

import pytest
import sqlalchemy as sa

from fsbrain.core.errors import FsbrainError
from fsbrain.core.model import Decision, Reason
from fsbrain.store import Store
from fsbrain.store.rawdecisions import RawDecisionWriter, WalCheckpointer, decision_row, encode_json


def _d(eid: str, **kw: Any) -> Decision:
    base: dict[str, Any] = dict(
        event_id=eid, event_type="loan_application", outcome="review", score=742,
        labels=["multi_lending", "device_risk", "multi_lending"],
        reasons=[Reason(source="rule", id="ML-003", label="multi_lending", feature="id_platforms_7d", value=6,
                        threshold=4, weight=180, message="6 platforms in 7 days"),
                 Reason(source="list", id="black", label="device_risk", value=["a", 1.5], weight=0)],
        policy="credit-default@3", latency_ms=1.8347777,
        features={"id_platforms_7d": 6, "amount": 5000.5, "ok": True, "none": None, "ratio": 1 / 3,
                  "city": "北京", "big": 2**53 + 1, "tiny": 5e-324},
        errors=[{"rule": "X-1", "error": "missing field income"}], event_time=1_700_000_000.123456789,
    )
    base.update(kw)
    return Decision(**base)


def _event(i: int, **kw: Any) -> dict[str, Any]:
    return {"event_id": f"e{i}", "amount": 1000 + i, "rate": i / 7, "id_number": "h:" + "a" * 32,
            "name": "张三", "flags": [True, None, {"deep": [1, 2.5, "x"]}], "quote": 'say "hi"\n\t\\',
            "imei": "860123456789012", "empty": {}, **kw}


def _batches() -> list[list[tuple[Decision, dict[str, Any]]]]:
    first = _d("e0")
    dup_a, dup_b = _d("dup"), _d("dup")
    same = _d("twice", labels=[])
    clash = _d("other", decision_id=dup_a.decision_id)
    g = _d("g")
    x_id = _d("unused").decision_id
    sh = [_d("e1", shadow=True, policy="cand@1"), _d("e1", shadow=True, policy="cand@1"),
          _d("e1", shadow=True, policy="cand@2")]
    return [
        [(first, _event(0))],
        [(_d("e1"), _event(1)), (_d("e0", outcome="reject"), _event(0)), (_d("e2"), _event(2, phone="13812345678")),
         (_d("e3", shadow=True), _event(3)), (_d("e4", features={"x": float("nan")}), _event(4)),
         (_d("e5", features={"x": float("inf")}), _event(5)), (_d("e6"), _event(6, bad="a\x00b")),
         (_d("e7"), _event(7, bad="\ud800")), (_d("e8"), _event(8, bad={1, 2})), (_d("e9", score=1001), _event(9)),
         (_d("e10", score=True), _event(10)), (_d("e11"), {1: "non-str key"}), (_d("e12", event_time=None), _event(12)),
         (_d("e13"), _event(13, nested={"x": [float("-inf")]})), (_d("e14"), _event(14, idn="11010519491231002X")),
         (_d("e15", labels=["x" * 65]), _event(15)), (_d("", event_id=""), _event(16)),
         (_d("e17", policy="p" * 161), _event(17)), (_d("e18", created_at=-1.0), _event(18)),
         (_d("e19", features={"contact": "13812345678"}), _event(19)), (_d("e20"), "not a dict"),  # type: ignore[list-item]
         (_d("e21"), _event(21, unicode_digits="１３８１２３４５６７８")), (_d("e22"), _event(22, esc="\\u0000"))],
        [(dup_a, _event(30)), (dup_b, _event(31)), (same, _event(32)), (same, _event(32)), (clash, _event(33))],
        sh and [(s, _event(1)) for s in sh],
        [(g, _event(40))],
        # a reused decision id whose event a later row of the same batch decides: resolved after every insert
        [(_d("f", decision_id=g.decision_id), _event(41)), (_d("f"), _event(41)), (_d("h"), _event(42)),
         (_d("h", shadow=True, policy="cand@1"), _event(42))],
        # an item for an already decided event whose (unused) decision id a later item, for a new event,
        # stores: the first is a replay of the stored decision, not taken for stored itself
        [(_d("g", decision_id=x_id), _event(40)), (_d("k", decision_id=x_id), _event(43))],
    ]


def _norm(results: list[Any]) -> list[Any]:
    out = []
    for r in results:
        if isinstance(r, FsbrainError):
            out.append((type(r).__name__, str(r)))
        else:
            out.append(r.to_dict())
    return out


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return {t: [tuple(r) for r in c.exec_driver_sql(f"SELECT * FROM {t} ORDER BY 1, 2")]
                    for t in ("decisions", "shadow_decisions", "decision_labels")}
    finally:
        eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_urls(request, tmp_path, _sqlite_template):
    if request.param == "sqlite":
        urls = []
        for name in ("ref.db", "raw.db"):
            shutil.copyfile(_sqlite_template, tmp_path / name)
            urls.append(f"sqlite:///{tmp_path / name}")
        return urls
    # two fresh schemas in the real PostgreSQL database
    return [request.getfixturevalue("postgres_url"), request.getfixturevalue("second_postgres_url")]


@pytest.fixture
def second_postgres_url():
    import os
    import uuid

    base = os.environ.get("FSBRAIN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    eng = sa.create_engine(base)
    with eng.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{base}?options=-csearch_path%3D{schema}"
    with eng.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    eng.dispose()


def test_same_rows_and_answers_as_the_store(two_urls):
    ref_url, raw_url = two_urls
    ref = Store(ref_url)
    ref.migrate()
    Store(raw_url).migrate()
    raw = RawDecisionWriter(raw_url)
    try:
        for batch in _batches():
            a, b = ref.save_decisions(batch), raw.save_decisions(batch)
            assert _norm(a) == _norm(b)
            assert sum(isinstance(x, FsbrainError) for x in a) < len(a)
    finally:
        ref.close()
        raw.close()
    rows_ref, rows_raw = _rows(ref_url), _rows(raw_url)
    assert rows_ref == rows_raw
    assert len(rows_ref["decisions"]) >= 8 and len(rows_ref["shadow_decisions"]) == 4
    # what the store reads back is the same too
    s = Store(raw_url)
    try:
        d = s.get_decision_by_event("loan_application", "e1")
        assert d is not None and d.features["ratio"] == 1 / 3 and d.features["big"] == 2**53 + 1
        assert s.get_event_data(d.decision_id)["quote"] == 'say "hi"\n\t\\'
    finally:
        s.close()


def test_encode_json_is_the_store_encoding_and_checks_alike():
    from fsbrain.core.errors import InputError
    from fsbrain.store import validate as v
    from fsbrain.store.db import _json_dumps

    values = [{"a": 1, "b": [1.5, None, "x"]}, [], {}, "s", 1, None, True, {"k": "北京\n\"\\"},
              {"n": float("nan")}, [float("-inf")], {"s": "a\x00"}, {"s": "\ud83d"}, {1: 2}, {(1, 2): 3},
              {"set": {1}}, b"bytes", {"x": 10**30}, [1e308 * 10]]
    for val in values:
        try:
            v.json_value(val, "f")
            want: Any = _json_dumps(val)
        except (InputError, TypeError) as err:
            want = (type(err).__name__, str(err))
        try:
            got: Any = encode_json(val, "f")
        except InputError as err:
            got = (type(err).__name__, str(err))
        if isinstance(want, tuple) and want[0] == "TypeError":
            assert isinstance(got, tuple)  # the store failed the batch; the raw writer fails the item
        else:
            assert got == want, val


def test_decision_row_errors_name_the_field():
    from fsbrain.core.errors import InputError

    with pytest.raises(InputError, match="raw phone"):
        decision_row(_d("x"), {"deep": [{"p": "138-1234-5678"}]})
    with pytest.raises(InputError, match="decision.features"):
        decision_row(_d("x", features={"v": float("nan")}), {})


def test_database_failure_fails_the_batch_and_reconnects(tmp_path):
    from fsbrain.core.errors import BackendError

    url = f"sqlite:///{tmp_path / 'late.db'}"
    raw = RawDecisionWriter(url)
    try:
        with pytest.raises(BackendError, match="no such table"):
            raw.save_decisions([(_d("x"), {})])
        Store(url).migrate()
        assert raw.save_decisions([(_d("x"), {})])[0].event_id == "x"
    finally:
        raw.close()


def test_checkpointer_keeps_the_wal_short_under_constant_writes(tmp_path, _sqlite_template):
    """A writer without automatic checkpoints: the checkpointer copies the WAL back and restarts it, so a
    WAL written to without pause stays short; every decision is in the database afterwards."""
    import time

    path = tmp_path / "c.db"
    shutil.copyfile(_sqlite_template, path)
    url = f"sqlite:///{path}"
    raw = RawDecisionWriter(url, autocheckpoint=0)
    cp = WalCheckpointer(url, interval=3600)  # driven by hand below
    try:
        for i in range(60):
            raw.save_decisions([(_d(f"c{i}"), _event(i))])
        frames_before = raw.checkpoint()[1]
        assert frames_before > 100
        cp.run_once()  # a short WAL: copied, not restarted
        assert cp.restarts == 0
        cp.run_once(force=True)
        assert cp.restarts == 1
        raw.save_decisions([(_d("after"), _event(99))])
        assert raw.checkpoint()[1] < 30  # the WAL started again from its beginning
        # a restart that cannot get the write lock in time gives up (the next interval tries again)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        cp.run_once(force=True)
        assert cp.restarts == 1 and time.monotonic() - t0 < 5
        other.execute("ROLLBACK")
        other.close()
    finally:
        cp.close()
        raw.close()
    s = Store(url)
    try:
        assert len(s.list_decisions(limit=100)) == 61
    finally:
        s.close()


def test_in_memory_sqlite_is_refused():
    from fsbrain.core.errors import InputError

    with pytest.raises(InputError, match="in-memory"):
        RawDecisionWriter("sqlite://")
