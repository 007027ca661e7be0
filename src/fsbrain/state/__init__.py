"""State backends for windowed entity features: in-process memory (default) and Redis."""

from __future__ import annotations

from typing import Any

from fsbrain.state.base import AGGREGATES, StateBackend, WindowOp, WindowRead, WindowSpec
from fsbrain.state.memory import MemoryStateBackend, MemoryStateBackendConfig

BACKEND_CLASS_FOR_TYPE = {
    "memory": "fsbrain.state.memory.MemoryStateBackend",
    "redis": "fsbrain.state.redis.RedisStateBackend",
}


def make_backend(kind: str = "memory", **kwargs: Any) -> StateBackend:
    """Build a backend by type name, importing it only when selected.

    Args:
        kind: a key of :data:`BACKEND_CLASS_FOR_TYPE` (``memory`` or ``redis``).
        **kwargs: the backend's configuration fields (e.g. ``url=``, ``prefix=`` for Redis).

    Raises:
        InputError: unknown kind or invalid configuration.
    """
    import importlib

    from fsbrain.core.errors import InputError

    try:
        path = BACKEND_CLASS_FOR_TYPE[kind]
    except KeyError:
        raise InputError(
            f"unknown state backend {kind!r} (one of {sorted(BACKEND_CLASS_FOR_TYPE)})"
        ) from None
    mod, _, cls = path.rpartition(".")
    return getattr(importlib.import_module(mod), cls)(**kwargs)  # type: ignore[no-any-return]


__all__ = [
    "AGGREGATES",
    "BACKEND_CLASS_FOR_TYPE",
    "MemoryStateBackend",
    "MemoryStateBackendConfig",
    "StateBackend",
    "WindowOp",
    "WindowRead",
    "WindowSpec",
    "make_backend",
]
