"""Redis backend specifics: the v1 key layout, TTLs, one round trip per call, failures as BackendError."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import redis

from fsbrain.core.errors import BackendError, InputError
from fsbrain.state import make_backend
from fsbrain.state.base import AGGREGATES, WindowOp, WindowRead, WindowSpec
from fsbrain.state.redis import RedisStateBackend, RedisStateBackendConfig

pytestmark = pytest.mark.redis

SPECS = {agg: WindowSpec(name=f"f:{agg}", agg=agg, window=60, bucket=10) for agg in AGGREGATES}


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def raw(redis_url: str) -> Any:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


def test_key_layout_v1(redis_url: str, raw: Any, prefix: str) -> None:
    b = RedisStateBackend(url=redis_url, prefix=prefix)
    b.update([WindowOp(SPECS[a], "ip 1.2.3.4", 4) for a in AGGREGATES], 1_000.5)
    b.update(
        [WindowOp(SPECS["distinct"], "ip 1.2.3.4", "a:b"), WindowOp(SPECS["mean"], "ip 1.2.3.4", 0.25)],
        1_001.0,
    )
    assert raw.get(f"{prefix}:v1:clock") == b"1001.0"
    layout = {k.decode(): raw.hgetall(k) for k in raw.scan_iter(match=f"{prefix}:v1:w:*")}
    assert layout == {
        f"{prefix}:v1:w:f%3Acount|c6b10.0:ip 1.2.3.4": {b"100": b"1"},
        f"{prefix}:v1:w:f%3Adistinct|d6b10.0:ip 1.2.3.4": {b"100:4": b"1", b"100:a:b": b"1"},
        f"{prefix}:v1:w:f%3Asum|s6b10.0:ip 1.2.3.4": {b"100": b"40000"},
        f"{prefix}:v1:w:f%3Amin|n6b10.0:ip 1.2.3.4": {b"100": b"4.0"},
        f"{prefix}:v1:w:f%3Amax|x6b10.0:ip 1.2.3.4": {b"100": b"4.0"},
        f"{prefix}:v1:w:f%3Amean|a6b10.0:ip 1.2.3.4": {b"100": b"42500 2"},
    }
    b.close()


def test_keys_carry_a_ttl_of_window_plus_bucket_plus_lateness(redis_url: str, raw: Any, prefix: str) -> None:
    b = RedisStateBackend(url=redis_url, prefix=prefix, allowed_lateness=30, ttl_grace=5)
    b.update([WindowOp(SPECS["count"], "k")], 50.0)
    ttl = raw.pttl(f"{prefix}:v1:w:f%3Acount|c6b10.0:k")
    assert 100_000 <= ttl <= (60 + 10 + 30 + 5) * 1000


def test_ttl_really_removes_idle_entities(redis_url: str, raw: Any, prefix: str) -> None:
    b = RedisStateBackend(url=redis_url, prefix=prefix, allowed_lateness=0)
    spec = WindowSpec(name="burst", agg="count", window=1, bucket=0.5)  # TTL 1.5 s
    b.update([WindowOp(spec, f"ip{i}") for i in range(20)], time.time())
    assert b.entity_count() == 20
    time.sleep(1.8)
    assert b.entity_count() == 0


class _CountingConnection(redis.Connection):
    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sent += 1
        super().send_packed_command(command, check_health)


def test_update_get_is_one_round_trip_for_all_ops(redis_url: str, prefix: str) -> None:
    b = RedisStateBackend(url=redis_url, prefix=prefix)
    b._client.connection_pool.connection_class = _CountingConnection  # before the first connection
    ops = [WindowOp(SPECS[AGGREGATES[i % 6]], f"e{i % 4}", i) for i in range(18)]
    b.update_get(ops, 10.0)  # the first call may load the script (NOSCRIPT, SCRIPT LOAD)
    _CountingConnection.sent = 0
    b.update_get(ops, 11.0)
    b.get([WindowRead(o.spec, o.key) for o in ops], 11.0)
    assert _CountingConnection.sent == 2


def test_script_is_reloaded_after_script_flush(redis_url: str, raw: Any, prefix: str) -> None:
    b = RedisStateBackend(url=redis_url, prefix=prefix)
    assert b.update_get([WindowOp(SPECS["count"], "k")], 1.0) == [1]
    raw.script_flush()
    assert b.update_get([WindowOp(SPECS["count"], "k")], 2.0) == [2]


def test_expire_walks_many_keys_with_scan(redis_url: str, prefix: str) -> None:
    b = RedisStateBackend(url=redis_url, prefix=prefix, allowed_lateness=0)
    b.update([WindowOp(SPECS["distinct"], f"old{i}", i % 3) for i in range(1_200)], 0.0)
    b.update([WindowOp(SPECS["distinct"], "new", "x")], 1_000.0)
    assert b.expire(1_000.0) == 1_200
    assert b.entity_count() == 1
    assert b.get([WindowRead(SPECS["distinct"], "new")], 1_000.0) == [1]


def test_clear_deletes_only_its_own_prefix(redis_url: str, raw: Any, prefix: str) -> None:
    mine = RedisStateBackend(url=redis_url, prefix=prefix)
    other = RedisStateBackend(url=redis_url, prefix=prefix + "x")
    mine.update([WindowOp(SPECS["count"], "k")], 1.0)
    other.update([WindowOp(SPECS["count"], "k")], 1.0)
    mine.clear()
    assert mine.entity_count() == 0 and raw.get(f"{prefix}:v1:clock") is None
    assert other.get([WindowRead(SPECS["count"], "k")], 1.0) == [1]


def test_unreachable_redis_raises_backend_error_without_the_password() -> None:
    b = RedisStateBackend(url="redis://:s3cret@127.0.0.1:1/0", socket_connect_timeout=0.5)
    for call in (
        lambda: b.update_get([WindowOp(SPECS["count"], "k")], 1.0),
        lambda: b.get([WindowRead(SPECS["count"], "k")], 1.0),
        lambda: b.expire(1.0),
        b.ping,
    ):
        with pytest.raises(
            BackendError,
            match=r"Redis state backend at redis://:\*\*\*@127\.0\.0\.1:1/0: "
            r"\w+ failed: ConnectionError",
        ) as info:
            call()
        assert "s3cret" not in str(info.value)
        assert info.value.http_status == 503


def test_redis_errors_become_backend_errors(redis_url: str, raw: Any, prefix: str) -> None:
    b = RedisStateBackend(url=redis_url, prefix=prefix)
    raw.set(f"{prefix}:v1:w:f%3Acount|c6b10.0:k", "not a hash")
    with pytest.raises(BackendError, match="update_get failed: ResponseError.*WRONGTYPE"):
        b.update_get([WindowOp(SPECS["count"], "k")], 1.0)


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"hostname": "x"}, "Extra inputs are not permitted"),
        ({"prefix": "a:b"}, "String should match pattern"),
        ({"socket_timeout": 0}, "greater than 0"),
        ({"url": "http://127.0.0.1"}, "invalid Redis URL"),
    ],
)
def test_invalid_configuration_is_an_input_error(kw: dict[str, Any], problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        RedisStateBackend(**kw)


def test_config_object_and_registry(redis_url: str, prefix: str) -> None:
    cfg = RedisStateBackendConfig(url=redis_url, prefix=prefix)
    assert RedisStateBackend(cfg).ping() is True
    with pytest.raises(InputError, match="either a config or keyword fields"):
        RedisStateBackend(cfg, prefix="y")
    b = make_backend("redis", url=redis_url, prefix=prefix)
    assert isinstance(b, RedisStateBackend) and b.config.prefix == prefix
    stats = b.stats()
    assert stats["backend"] == "redis" and stats["layout_version"] == 1 and stats["used_memory"] > 0


def test_update_get_read_is_update_get_then_get_in_one_call(redis_url: str, raw: Any) -> None:
    """One event's observations and read-only windows in one script call give what update_get then get
    give (a read of a count window is not counted), on a replayed stream with time steps and expiry."""
    one = RedisStateBackend(url=redis_url, prefix=f"t{uuid.uuid4().hex[:8]}")
    two = RedisStateBackend(url=redis_url, prefix=f"t{uuid.uuid4().hex[:8]}")
    calls = []
    script = one._ug
    one._ug = lambda **kw: calls.append(1) or script(**kw)
    values = [3, 1.5, "x", 0, -2, "y", 7]
    for i in range(40):
        ts = 1_000.0 + i * 7.5
        ops = [WindowOp(SPECS[a], f"k{i % 3}", values[(i + j) % len(values)] if a != "count" else None)
               for j, a in enumerate(AGGREGATES) if (i + j) % 2 == 0]
        ops = [o for o in ops if o.spec.agg == "distinct" or not isinstance(o.value, str)]
        reads = [WindowRead(SPECS[a], f"k{(i + 1) % 3}") for a in AGGREGATES]
        calls.clear()
        got = one.update_get_read(ops, reads, ts)
        assert len(calls) == 1
        want = (two.update_get(ops, ts) if ops else []), two.get(reads, ts)
        assert got == want, i
    for b in (one, two):
        b.clear()
        b.close()
