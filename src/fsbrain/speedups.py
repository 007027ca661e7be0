"""Optional compiled hot paths (:mod:`fsbrain._speedups`, built from Cython at install time).

The pure-Python code they replace stays the reference: when the extension is missing (no compiler at
install time) or ``FSBRAIN_SPEEDUPS=0`` is set, the same results come from Python, only slower.
``/metrics`` and ``fsbrain serve`` report which one runs.
"""

from __future__ import annotations

import os
from types import ModuleType


def load(enabled: bool | None = None) -> ModuleType | None:
    """The compiled module, or ``None`` when it is disabled or not built.

    Args:
        enabled: ``True``/``False`` to force; ``None`` follows ``FSBRAIN_SPEEDUPS`` (default on).
    """
    if enabled is None:
        enabled = os.environ.get("FSBRAIN_SPEEDUPS", "1").strip().lower() not in ("0", "false", "no", "off")
    if not enabled:
        return None
    try:
        from fsbrain import _speedups
    except ImportError:
        return None
    return _speedups


def active() -> bool:
    """Whether the compiled hot paths are in use by default."""
    return load() is not None
