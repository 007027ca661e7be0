"""Fixtures for the store suite: every test runs on SQLite (a file in tmp_path) and on real PostgreSQL."""

from __future__ import annotations

import shutil

import pytest

from fsbrain.core.model import Decision, Reason
from fsbrain.core.pii import Pseudonymizer
from fsbrain.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    """One SQLite file migrated to head, copied for each test (migrating every time is slow)."""
    path = tmp_path_factory.mktemp("template") / "store.db"
    s = Store(f"sqlite:///{path}")
    s.migrate()
    s.close()  # disposing the engine checkpoints the WAL into the main file
    return path


@pytest.fixture
def store(store_url, _sqlite_template):
    """A migrated :class:`Store` on each backend."""
    if store_url.startswith("sqlite:///"):
        shutil.copyfile(_sqlite_template, store_url.removeprefix("sqlite:///"))
    s = Store(store_url)
    s.migrate()
    assert s.schema_revision() == Store.head_revision()
    yield s
    s.close()


@pytest.fixture
def pseudo():
    """The pseudonymiser callers use to make list tokens."""
    return Pseudonymizer(b"k" * 32)


def _make_decision(event_id: str = "e1", **kw) -> Decision:
    """A realistic decision with reasons, features and errors."""
    base = dict(
        event_id=event_id, event_type="loan_application", outcome="review", score=742,
        labels=["multi_lending", "device_risk"],
        reasons=[Reason(source="rule", id="ML-003", label="multi_lending", feature="id_distinct_platforms_7d",
                        value=6, threshold=4, weight=180, message="6 platforms in 7 days")],
        policy="credit-default@3", latency_ms=1.834,
        features={"id_distinct_platforms_7d": 6, "device_apps_1h": 2, "amount": 5000.5, "ok": True,
                  "ratio": 0.125, "city": "北京"},
        errors=[{"rule": "X-1", "error": "missing field income"}], event_time=1_700_000_000.5,
    )
    base.update(kw)
    return Decision(**base)


@pytest.fixture
def make_decision():
    """Factory ``(event_id="e1", **overrides) -> Decision``."""
    return _make_decision
