"""Shared fixtures: external corpora, real Redis and PostgreSQL, a clean environment."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FSBRAIN_SHARED_DATA", REPO.parent / "shared" / "data"))


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _need_service(name: str, host: str, port: int) -> None:
    if _port_open(host, port):
        return
    msg = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI must provide it (.ci/run starts it)")
    pytest.skip(f"{msg}; start it to run this test")


@pytest.fixture(scope="session")
def shared_data():
    """Return a function ``(name) -> Path`` of a corpus under ../shared/data, skipping when absent."""

    def get(name: str) -> Path:
        p = SHARED_DATA / name
        if not p.exists():
            pytest.skip(f"external corpus ../shared/data/{name} is absent (a fresh clone has no ../shared); "
                        "CI always has it")
        return p

    return get


@pytest.fixture
def redis_url():
    """URL of the real Redis server, on a database index reserved for tests; flushed before and after.

    Test runs on one machine share that database, so each test holds an exclusive lock on it
    (``/tmp/fsbrain-test-redis-<db>.lock``) while it runs: two suites at once (a CI run beside a developer's)
    take turns on Redis instead of flushing each other's keys mid-test."""
    _need_service("Redis", "127.0.0.1", 6379)
    import fcntl

    import redis

    url = os.environ.get("FSBRAIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    name = "".join(ch if ch.isalnum() else "_" for ch in url.rsplit("@", 1)[-1])
    with open(Path(tempfile.gettempdir()) / f"fsbrain-test-redis-{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if the test fails
        r = redis.Redis.from_url(url)
        r.flushdb()
        try:
            yield url
        finally:
            r.flushdb()
            r.close()


@pytest.fixture
def postgres_url():
    """URL of a fresh, empty schema in the real PostgreSQL database ``test``; dropped afterwards."""
    _need_service("PostgreSQL", "127.0.0.1", 5432)
    import sqlalchemy as sa

    base = os.environ.get("FSBRAIN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    eng = sa.create_engine(base)
    with eng.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{base}?options=-csearch_path%3D{schema}"
    with eng.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    eng.dispose()


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch, tmp_path):
    """Each test gets its own FSBRAIN_HOME and a fixed pseudonymisation key."""
    for k in list(os.environ):
        # FSBRAIN_SPEEDUPS stays: `FSBRAIN_SPEEDUPS=0 scripts/test` runs the whole suite on the Python paths (it
        # used to be cleared here, so engines built inside tests were compiled while import-time choices were not)
        if k.startswith("FSBRAIN_") and k not in ("FSBRAIN_SHARED_DATA", "FSBRAIN_TEST_REDIS_URL",
                                                   "FSBRAIN_TEST_POSTGRES_URL", "FSBRAIN_SPEEDUPS"):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("FSBRAIN_HOME", str(tmp_path / "fsbrain-home"))
    monkeypatch.setenv("FSBRAIN_PII_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
