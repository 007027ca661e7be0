"""Optional compiled hot paths (:mod:`fsbrain._speedups`, built from Cython at install time).

The pure-Python code they replace stays the reference: when the extension is missing (no compiler at
install time) or ``FSBRAIN_SPEEDUPS=0`` is set, the same results come from Python, only slower.
``/metrics`` and ``fsbrain serve`` report which one runs.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def enabled_by_env() -> bool:
    """``FSBRAIN_SPEEDUPS`` (default on): ``0``, ``false``, ``no`` or ``off`` turns every compiled path off."""
    return os.environ.get("FSBRAIN_SPEEDUPS", "1").strip().lower() not in ("0", "false", "no", "off")


def load_module(name: str, enabled: bool | None = None) -> ModuleType | None:
    """The compiled module ``name`` (e.g. ``fsbrain._speedups``), or ``None`` when it is disabled or not built.

    Args:
        enabled: ``True``/``False`` to force; ``None`` follows ``FSBRAIN_SPEEDUPS`` (default on).
    """
    if enabled is None:
        enabled = enabled_by_env()
    if not enabled:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def load(enabled: bool | None = None) -> ModuleType | None:
    """The engine's compiled module (:mod:`fsbrain._speedups`), or ``None`` when it is disabled or not built.

    Args:
        enabled: ``True``/``False`` to force; ``None`` follows ``FSBRAIN_SPEEDUPS`` (default on).
    """
    return load_module("fsbrain._speedups", enabled)


def active() -> bool:
    """Whether the compiled hot paths are in use by default."""
    return load() is not None


def settle_heap() -> bool:
    """Call once a long-running process has loaded its rules, models and lists: everything allocated so far
    moves to the garbage collector's permanent generation (:func:`gc.freeze`), so full collections no longer
    walk it. With OWASP CRS loaded, a full collection otherwise takes 11–21 ms and lands on a request every
    few thousand requests. ``FSBRAIN_GC_FREEZE=0`` turns it off. Returns whether it froze."""
    import gc

    if os.environ.get("FSBRAIN_GC_FREEZE", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    gc.collect()
    gc.freeze()
    return True
