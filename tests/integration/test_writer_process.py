"""The decision writer in a child process gives the same answers as the in-thread writer."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fsbrain.api.app import create_app
from fsbrain.config import load_settings
from fsbrain.core.errors import BackendError, ConflictError
from fsbrain.core.model import Decision
from fsbrain.service import Platform
from fsbrain.writer_process import ProcessCommitWriter

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


def _decide_all(tmp: Path, writer: str, db_url: str | None = None) -> list[dict]:
    p = Platform(load_settings(home=tmp, decision_writer=writer, database_url=db_url))
    try:
        assert type(p.writer).__name__ == ("ProcessCommitWriter" if writer == "process" else "GroupCommitWriter")
        client = TestClient(create_app(p, background=False))
        out = []
        for a in _apps(12):
            r = client.post("/v1/decisions/loan_application", json=a)
            assert r.status_code == 200, r.text
            out.append(r.json())
        again = client.post("/v1/decisions/loan_application", json=_apps(1)[0]).json()
        assert again["replayed"] is True and again["decision_id"] == out[0]["decision_id"]
        stored = client.get(f"/v1/decisions/{out[5]['decision_id']}").json()
        assert stored["outcome"] == out[5]["outcome"] and stored["features"]
        return out
    finally:
        p.close()


def _strip(d: dict) -> tuple:
    return d["outcome"], d["score"], d["labels"], [r["id"] for r in d["reasons"]], d["policy"]


def test_process_writer_matches_thread_writer(tmp_path: Path) -> None:
    a = _decide_all(tmp_path / "t", "thread")
    b = _decide_all(tmp_path / "p", "process")
    assert [_strip(x) for x in a] == [_strip(x) for x in b]


@pytest.mark.postgres
def test_process_writer_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    out = _decide_all(tmp_path, "process", postgres_url)
    assert len({d["decision_id"] for d in out}) == 12


def test_concurrent_copies_of_one_event_are_decided_once(tmp_path: Path) -> None:
    p = Platform(load_settings(home=tmp_path, decision_writer="process"))
    try:
        ev = _apps(1)[0]

        async def go() -> list:
            return await asyncio.gather(*(p.decide_async("loan_application", copy.deepcopy(ev)) for _ in range(8)))

        results = asyncio.run(go())
        assert len({d.decision_id for d, _ in results}) == 1
        assert sum(1 for _, replayed in results if not replayed) == 1
    finally:
        p.close()


def test_conflicts_come_back_as_errors(tmp_path: Path) -> None:
    w = ProcessCommitWriter(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        from fsbrain.store import Store

        s = Store(f"sqlite:///{tmp_path / 'w.db'}")
        s.migrate()
        s.close()
        d1 = Decision(event_id="e1", event_type="loan_application", outcome="approve", score=0, policy="p@1")
        assert w.save([(d1, {"a": 1})])[0].decision_id == d1.decision_id
        d2 = Decision(event_id="e1", event_type="loan_application", outcome="reject", score=900, policy="p@1")
        stored = w.save([(d2, {"a": 2})])[0]
        assert stored.decision_id == d1.decision_id and stored.outcome == "approve"  # the first one stands
        d3 = Decision(event_id="e2", event_type="loan_application", outcome="approve", score=0, policy="p@1",
                      decision_id=d1.decision_id)
        with pytest.raises(ConflictError, match="already stored"):
            w.save([(d3, {})])
    finally:
        w.close()
    with pytest.raises(BackendError, match="closed"):
        w.save([(d1, {})])


def test_a_dead_writer_fails_its_waiters_and_restarts(tmp_path: Path) -> None:
    from fsbrain.store import Store

    url = f"sqlite:///{tmp_path / 'w.db'}"
    s = Store(url)
    s.migrate()
    s.close()
    w = ProcessCommitWriter(url)
    try:
        os.kill(w._proc.pid, signal.SIGKILL)
        w._proc.join(timeout=10)
        deadline = time.time() + 10
        d = Decision(event_id="after", event_type="loan_application", outcome="approve", score=0, policy="p@1")
        while True:  # the next submission notices the dead process and starts a new one
            try:
                assert w.save([(d, {})])[0].decision_id == d.decision_id
                break
            except BackendError:
                assert time.time() < deadline
        assert w._proc.is_alive()
    finally:
        w.close()


def test_database_failure_fails_the_batch(tmp_path: Path) -> None:
    w = ProcessCommitWriter(f"sqlite:///{tmp_path / 'nothing-here.db'}")  # never migrated: no tables
    try:
        d = Decision(event_id="x", event_type="loan_application", outcome="approve", score=0, policy="p@1")
        with pytest.raises(BackendError):
            w.save([(d, {})])
    finally:
        w.close()
