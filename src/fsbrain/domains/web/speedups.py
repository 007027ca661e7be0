"""Optional compiled hot paths of the web engine (:mod:`fsbrain.domains.web._fastweb`, built from Cython at
install time).

The pure-Python code they replace stays the reference: when the extension is missing (no compiler at
install time) or ``FSBRAIN_SPEEDUPS=0`` is set, the same verdicts come from Python, only slower.
``WebRuleEngine(compiled=False)`` (and ``optimize=False``, the plain reference engine) runs the rule loop in
Python whatever this says.
"""

from __future__ import annotations

from types import ModuleType

from fsbrain.speedups import load_module


def load(enabled: bool | None = None) -> ModuleType | None:
    """The compiled module, or ``None`` when it is disabled or not built.

    Args:
        enabled: ``True``/``False`` to force; ``None`` follows ``FSBRAIN_SPEEDUPS`` (default on).
    """
    return load_module("fsbrain.domains.web._fastweb", enabled)


def active() -> bool:
    """Whether the compiled hot paths are in use by default."""
    return load() is not None
