"""Redis state backend: windowed features shared by every worker (key layout v1, docs/state.md).

Each (feature namespace, entity) is one Redis hash of bucket aggregates; one registered Lua script
(EVALSHA) applies and reads all of a decision's ops in a single round trip, with the same semantics and
the same fixed-point arithmetic as the in-process backend, so both return identical values on the same
event stream. Keys carry a TTL of ``window + bucket + allowed_lateness`` seconds, set whenever a write
opens a newer bucket, so Redis memory stays bounded even when nobody calls :meth:`RedisStateBackend.expire`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import redis as redis_lib
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fsbrain.core.errors import BackendError, InputError
from fsbrain.state._lua import EXPIRE, UPDATE_GET
from fsbrain.state.base import (
    AGG_CODES,
    DEFAULT_ALLOWED_LATENESS,
    VALUE_SCALE,
    StateBackend,
    WindowOp,
    WindowRead,
    WindowSpec,
    config_error,
    mean_of,
    state_namespace,
    to_float,
    to_units,
)

LAYOUT_VERSION = 1
_NS_RE = re.compile(r"\|([cdsnxa])(\d+)b([^:|]+)$")
_SCAN_BATCH = 500
_floor = math.floor


class RedisStateBackendConfig(BaseModel):
    """Configuration of the Redis backend."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["redis"] = "redis"
    """Selects this backend."""
    url: str = "redis://127.0.0.1:6379/0"
    """Redis URL (``redis://[:password@]host:port/db``, ``rediss://`` for TLS, ``unix://`` sockets)."""
    prefix: str = Field(default="fsb", min_length=1, pattern=r"^[^:\s]+$")
    """First part of every key; several deployments can share one database under different prefixes."""
    socket_timeout: float = Field(default=2.0, gt=0)
    """Seconds to wait for a reply before failing with ``BackendError``."""
    socket_connect_timeout: float = Field(default=2.0, gt=0)
    """Seconds to wait for a connection before failing with ``BackendError``."""
    allowed_lateness: float = Field(default=DEFAULT_ALLOWED_LATENESS, ge=0, allow_inf_nan=False)
    """Seconds an event may lag the newest one (must match the memory backend's for equal results)."""
    ttl_grace: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """Extra seconds added to every key's TTL (for event times that run behind the wall clock)."""


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _glob_escape(s: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", s)


class RedisStateBackend(StateBackend):
    """Windowed features in Redis.

    Args:
        config: a validated config; when omitted, ``**kwargs`` are its fields (``url=...``, ``prefix=...``).

    Raises:
        InputError: invalid configuration.
        BackendError: (from every method) Redis unreachable, timed out or answering with an error.
    """

    name = "redis"

    def __init__(self, config: RedisStateBackendConfig | None = None, **kwargs: Any) -> None:
        if config is None:
            try:
                config = RedisStateBackendConfig(**kwargs)
            except ValidationError as exc:
                raise config_error("Redis", exc) from exc
        elif kwargs:
            raise InputError(f"pass either a config or keyword fields, not both (got {sorted(kwargs)})")
        self.config = config
        self._where = _masked(config.url)
        self._base = f"{config.prefix}:v{LAYOUT_VERSION}:"
        self._clock_key = self._base + "clock"
        self._lateness = repr(float(config.allowed_lateness))
        try:
            self._client = redis_lib.Redis.from_url(
                config.url,
                socket_timeout=config.socket_timeout,
                socket_connect_timeout=config.socket_connect_timeout,
            )
        except ValueError as exc:
            raise InputError(f"invalid Redis URL {self._where!r}: {exc}") from exc
        self._ug = self._client.register_script(UPDATE_GET)
        self._expire = self._client.register_script(EXPIRE)
        self._specs: dict[int, tuple[WindowSpec, tuple[str, str, str]]] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def _fail(self, what: str, exc: Exception) -> BackendError:
        return BackendError(
            f"Redis state backend at {self._where}: {what} failed: {type(exc).__name__}: {exc}"
        )

    def _meta(self, spec: WindowSpec) -> tuple[str, str, str]:
        """``(key prefix, aggregate code, script meta "<code> <n> <bucket> <ttl ms>")`` of a spec."""
        hit = self._specs.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit[1]
        ttl_ms = int(
            (spec.window + spec.bucket + self.config.allowed_lateness + self.config.ttl_grace) * 1000
        )
        code = AGG_CODES[spec.agg]
        meta = (
            f"{self._base}w:{state_namespace(spec)}:",
            code,
            f"{code} {spec.n_buckets} {float(spec.bucket)!r} {max(1, ttl_ms)}",
        )
        if len(self._specs) > 65536:
            self._specs.clear()
        self._specs[id(spec)] = (spec, meta)  # keeps the spec alive, so its id cannot be reused
        return meta

    @staticmethod
    def _encode(spec: WindowSpec, code: str, value: Any) -> str:
        if code == "c" or value is None:
            return ""
        if code == "d":
            return "=" + (value if type(value) is str else str(value))
        if code == "n" or code == "x":
            return repr(to_float(spec, value))
        return str(to_units(spec, value))

    def _call(
        self,
        mode: str,
        items: Sequence[WindowOp] | Sequence[WindowRead],
        ts: float,
        reads: Sequence[WindowRead] = (),
    ) -> list[Any]:
        keys = [self._clock_key]
        args: list[Any] = [f"{mode}:{len(reads)}" if reads else mode, "" if mode == "g" else repr(float(ts)),
                           self._lateness]
        codes = []
        for it in items:
            spec = it.spec
            pre, code, meta = self._meta(spec)
            key = it.key
            keys.append(pre + (key if type(key) is str else str(key)))
            value = self._encode(spec, code, it.value) if mode != "g" else ""  # type: ignore[union-attr]
            args += (meta, str(_floor(ts / spec.bucket)), value)
            codes.append(code)
        for it in reads:
            spec = it.spec
            pre, code, meta = self._meta(spec)
            key = it.key
            keys.append(pre + (key if type(key) is str else str(key)))
            args += (meta, str(_floor(ts / spec.bucket)), "")
            codes.append(code)
        try:
            raw = self._ug(keys=keys, args=args)
        except redis_lib.RedisError as exc:
            raise self._fail({"ug": "update_get", "u": "update", "g": "get"}[mode], exc) from exc
        if mode == "u":
            return []
        out: list[Any] = []
        for code, r in zip(codes, raw, strict=True):
            if code == "c" or code == "d":
                out.append(r)
            elif code == "s":
                out.append(r / VALUE_SCALE)
            elif code == "a":
                out.append(None if r is None else mean_of(int(r[0]), int(r[1])))
            else:
                out.append(None if r is None else float(r))
        return out

    def _scan(self, suffix: str) -> Iterator[list[bytes]]:
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=_glob_escape(self._base) + suffix, count=1000):
            batch.append(key)
            if len(batch) >= _SCAN_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- interface -------------------------------------------------------------------------------
    def update(self, ops: Sequence[WindowOp], ts: float) -> None:
        """Add each observation at event time ``ts`` (one round trip)."""
        if ops:
            self._call("u", ops, ts)

    def update_get(self, ops: Sequence[WindowOp], ts: float) -> list[Any]:
        """Observe and read every op in one script call (one round trip)."""
        return self._call("ug", ops, ts) if ops else []

    def get(self, reads: Sequence[WindowRead], as_of: float) -> list[Any]:
        """Values of each read as of ``as_of`` (one round trip)."""
        return self._call("g", reads, as_of) if reads else []

    def update_get_read(self, ops: Sequence[WindowOp], reads: Sequence[WindowRead], ts: float,
                        ) -> tuple[list[Any], list[Any]]:
        """``update_get(ops, ts)`` then ``get(reads, ts)`` in one script call (one round trip, atomic)."""
        if not ops or not reads:
            return super().update_get_read(ops, reads, ts)
        out = self._call("ug", ops, ts, reads)
        return out[: len(ops)], out[len(ops) :]

    def expire(self, now: float) -> int:
        """Prune every entity hash against ``min(now, clock) - allowed_lateness``; return buckets freed.

        Walks the keys with SCAN (never KEYS), so it can run beside live traffic.
        """
        wpre = (self._base + "w:").encode()
        freed = 0
        try:
            for batch in self._scan("w:*"):
                keys: list[Any] = [self._clock_key]
                args: list[Any] = [repr(float(now)), self._lateness]
                for key in batch:
                    ns = key[len(wpre) :].split(b":", 1)[0].decode("utf-8", "replace")
                    m = _NS_RE.search(ns)
                    if m is None:
                        continue
                    keys.append(key)
                    args += (m.group(1), m.group(2), m.group(3))
                if len(keys) > 1:
                    freed += int(self._expire(keys=keys, args=args))
        except redis_lib.RedisError as exc:
            raise self._fail("expire", exc) from exc
        return freed

    def clear(self) -> None:
        """Delete every key under this backend's prefix and layout version (and the clock)."""
        try:
            for batch in self._scan("*"):
                self._client.unlink(*batch)
        except redis_lib.RedisError as exc:
            raise self._fail("clear", exc) from exc

    def entity_count(self) -> int:
        """Number of (feature, entity) hashes under this prefix (a SCAN: for tests and benchmarks)."""
        try:
            return sum(len(batch) for batch in self._scan("w:*"))
        except redis_lib.RedisError as exc:
            raise self._fail("entity_count", exc) from exc

    def ping(self) -> bool:
        """``True`` when Redis answers; raises ``BackendError`` otherwise (for readiness checks)."""
        try:
            return bool(self._client.ping())
        except redis_lib.RedisError as exc:
            raise self._fail("ping", exc) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def stats(self) -> dict[str, Any]:
        """Redis-wide sizes: ``used_memory`` (bytes) and the number of keys in the database."""
        try:
            mem = self._client.info("memory")
            keys = self._client.dbsize()
        except redis_lib.RedisError as exc:
            raise self._fail("stats", exc) from exc
        return {
            "backend": self.name,
            "used_memory": int(mem["used_memory"]),
            "db_keys": int(keys),
            "prefix": self.config.prefix,
            "layout_version": LAYOUT_VERSION,
        }
