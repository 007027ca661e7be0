"""Plain Python modules on the request path, also compiled with Cython, and the import guard that keeps a stale
build from running.

``setup.py`` compiles each module of :data:`MODULES` from its own ``.py`` file, unchanged (no type declarations:
Cython's ``annotation_typing`` is off, so the annotations stay annotations), and records the SHA-256 of that
source beside the extension (``<extension>.sha256``). Compiled, the web inspector's own Python (request parsing,
the model's parameters and scoring, the transaction, the verdict) runs without the interpreter's dispatch:
about 10% fewer instructions per request with OWASP CRS loaded (``bench/bench_web_instructions.py``).

The import system prefers an extension module to the ``.py`` beside it, so an edited ``.py`` would silently lose
to an extension built from the previous text. :class:`Guard` (installed first on ``sys.meta_path`` when
:mod:`fsbrain` is imported) loads a compiled module only when its recorded hash matches the ``.py`` now on disk;
otherwise, or with ``FSBRAIN_PURE_PYTHON=1``, it loads the ``.py`` (and logs why, once). Either way the code that
runs is the code on disk: the compiled and the interpreted module are the same source.

:func:`stale` names the modules built from another text; ``scripts/_venv.sh`` recompiles just those
(``FSBRAIN_BUILD_ONLY``), so ``scripts/test`` and ``scripts/serve`` run them compiled. :func:`main` prints
every module's state.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import logging
import os
import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

#: modules compiled from their ``.py`` source when a C compiler and Cython are available (``setup.py`` reads
#: this tuple from this file's text: keep it a literal)
MODULES = (
    "fsbrain.domains.web.inspector",
    "fsbrain.domains.web.request",
    "fsbrain.domains.web.ml",
    "fsbrain.domains.web.seclang.engine",
    "fsbrain.domains.web.seclang.transaction",
    "fsbrain.domains.web.seclang.operators",
    "fsbrain.domains.web.seclang.prefilter",
    "fsbrain.domains.web.transforms",
)

_ROOT = Path(__file__).resolve().parent.parent  # the folder holding the fsbrain package
_log = logging.getLogger(__name__)


def source_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pure_python() -> bool:
    """``FSBRAIN_PURE_PYTHON`` asks for the ``.py`` of every module even where an extension is fresh."""
    return os.environ.get("FSBRAIN_PURE_PYTHON", "").strip().lower() in ("1", "true", "yes", "on")


def _extension_of(py: Path) -> Path | None:
    """The extension module built beside ``py`` for this interpreter, if any."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        cand = py.with_name(py.stem + suffix)
        if cand.is_file():
            return cand
    return None


def state(name: str, pkg_dirs: list[str] | None = None) -> tuple[str, Path | None, Path | None]:
    """``(state, source, extension)`` of module ``name``: ``"compiled"`` (an extension built from the source now
    on disk), ``"stale"`` (an extension built from another text, or without a recorded hash), ``"source"`` (no
    extension: the ``.py`` runs), or ``"missing"`` (no ``.py`` found)."""
    last = name.rpartition(".")[2]
    dirs = pkg_dirs if pkg_dirs is not None else [str(_ROOT.joinpath(*name.split(".")[:-1]))]
    for d in dirs:
        py = Path(d) / f"{last}.py"
        if not py.is_file():
            continue
        ext = _extension_of(py)
        if ext is None:
            return "source", py, None
        try:
            recorded = Path(str(ext) + ".sha256").read_text(encoding="ascii").strip()
            current = source_hash(py.read_bytes())
        except (OSError, ValueError):  # unreadable, or not ASCII: not a hash this build wrote
            return "stale", py, ext
        return ("compiled" if recorded == current else "stale"), py, ext
    return "missing", None, None


class Guard(MetaPathFinder):
    """Finds the modules of :data:`MODULES`: the extension when it was built from the ``.py`` on disk, else the
    ``.py`` (see the module docstring). Other modules are left to the normal finders."""

    def __init__(self) -> None:
        self._names = frozenset(MODULES)
        self._told: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in self._names:
            return None
        st, py, ext = state(fullname, list(path) if path is not None else None)
        if st == "missing" or py is None:
            return None
        if st == "compiled" and ext is not None and not pure_python():
            loader = importlib.machinery.ExtensionFileLoader(fullname, str(ext))
            return importlib.machinery.ModuleSpec(fullname, loader, origin=str(ext))
        if st == "stale" and fullname not in self._told:
            self._told.add(fullname)
            _log.warning("%s: the compiled module was built from another version of %s; running the .py "
                         "(rebuild: .venv/bin/python setup.py build_ext --inplace)", fullname, py.name)
        loader = importlib.machinery.SourceFileLoader(fullname, str(py))
        spec = importlib.machinery.ModuleSpec(fullname, loader, origin=str(py))
        spec.has_location = True
        return spec


def install() -> None:
    """Put one :class:`Guard` first on ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(f, Guard) for f in sys.meta_path):
        sys.meta_path.insert(0, Guard())


def stale() -> list[str]:
    """The modules whose extension was built from another version of their ``.py``."""
    return [name for name in MODULES if state(name)[0] == "stale"]


def main() -> int:
    """Print each module's state; 1 when one is stale."""
    for name in MODULES:
        st, _py, ext = state(name)
        print(f"{name}: {st}" + (f" ({ext.name})" if ext is not None else ""))
    return 1 if stale() else 0

