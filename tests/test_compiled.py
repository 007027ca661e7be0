"""Modules compiled from their ``.py`` (``fsbrain.compiled``): the import guard loads an extension only when it was
built from the ``.py`` on disk, and the compiled modules give exactly the interpreted modules' verdicts."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fsbrain
from fsbrain import compiled

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _package(tmp_path: Path, source: str, sidecar: str | None) -> Path:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "mod.py").write_text(source)
    ext = pkg / f"mod{SUFFIX}"
    ext.write_bytes(b"not a real extension: the guard must not load it unless the hash matches")
    if sidecar is not None:
        Path(str(ext) + ".sha256").write_text(sidecar)
    return pkg


def _guard(name: str) -> compiled.Guard:
    g = compiled.Guard()
    g._names = frozenset({name})
    return g


def test_guard_loads_the_extension_built_from_the_source_on_disk(tmp_path, monkeypatch):
    monkeypatch.delenv("FSBRAIN_PURE_PYTHON", raising=False)
    src = "VALUE = 1\n"
    pkg = _package(tmp_path, src, compiled.source_hash(src.encode()) + "\n")
    spec = _guard("pkg.mod").find_spec("pkg.mod", [str(pkg)])
    assert isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
    assert spec.origin == str(pkg / f"mod{SUFFIX}")
    assert compiled.state("pkg.mod", [str(pkg)])[0] == "compiled"


def test_guard_runs_the_py_when_the_extension_was_built_from_another_text(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("FSBRAIN_PURE_PYTHON", raising=False)
    pkg = _package(tmp_path, "VALUE = 2\n", compiled.source_hash(b"VALUE = 1\n"))
    with caplog.at_level("WARNING", logger="fsbrain.compiled"):
        spec = _guard("pkg.mod").find_spec("pkg.mod", [str(pkg)])
    assert isinstance(spec.loader, importlib.machinery.SourceFileLoader)
    assert spec.origin == str(pkg / "mod.py")
    assert "built from another version of mod.py" in caplog.text
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.VALUE == 2  # the text on disk, not the stale build


def test_guard_treats_a_missing_hash_as_stale_and_honours_pure_python(tmp_path, monkeypatch):
    pkg = _package(tmp_path, "VALUE = 3\n", None)
    assert compiled.state("pkg.mod", [str(pkg)])[0] == "stale"
    assert isinstance(_guard("pkg.mod").find_spec("pkg.mod", [str(pkg)]).loader, importlib.machinery.SourceFileLoader)
    src = "VALUE = 4\n"
    pkg2 = tmp_path / "two"
    pkg2.mkdir()
    pkg2 = _package(pkg2, src, compiled.source_hash(src.encode()))
    monkeypatch.setenv("FSBRAIN_PURE_PYTHON", "1")
    assert isinstance(_guard("pkg.mod").find_spec("pkg.mod", [str(pkg2)]).loader, importlib.machinery.SourceFileLoader)


def test_guard_treats_a_garbled_hash_file_as_stale(tmp_path, monkeypatch):
    monkeypatch.delenv("FSBRAIN_PURE_PYTHON", raising=False)
    pkg = _package(tmp_path, "VALUE = 5\n", None)
    Path(str(pkg / f"mod{SUFFIX}") + ".sha256").write_bytes(b"\xff\xfe not ascii \x00")
    assert compiled.state("pkg.mod", [str(pkg)])[0] == "stale"
    assert isinstance(_guard("pkg.mod").find_spec("pkg.mod", [str(pkg)]).loader, importlib.machinery.SourceFileLoader)


def test_guard_leaves_other_modules_and_missing_sources_alone(tmp_path):
    g = _guard("pkg.mod")
    assert g.find_spec("pkg.other", [str(tmp_path)]) is None
    assert g.find_spec("pkg.mod", [str(tmp_path)]) is None  # no mod.py there
    assert compiled.state("pkg.mod", [str(tmp_path)])[0] == "missing"


def test_guard_is_installed_once_and_first():
    compiled.install()
    guards = [f for f in sys.meta_path if isinstance(f, compiled.Guard)]
    assert len(guards) == 1 and sys.meta_path.index(guards[0]) < 3
    assert fsbrain.__version__


def test_every_listed_module_exists_and_is_never_stale_after_the_build():
    # scripts/test rebuilds stale modules before pytest starts (scripts/_venv.sh)
    for name in compiled.MODULES:
        st, py, ext = compiled.state(name)
        assert st != "missing", name
        assert st != "stale", f"{name}: stale build ({ext}); run .venv/bin/python setup.py build_ext --inplace"
        mod = sys.modules.get(name) or importlib.import_module(name)
        if st == "compiled" and not os.environ.get("FSBRAIN_PURE_PYTHON"):
            assert Path(mod.__file__) == ext, name
        else:
            assert Path(mod.__file__) == py, name


_VERDICTS = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from bench_web_rules import make_mix
from fsbrain.domains.web.inspector import WebInspector
import fsbrain.domains.web.inspector as m
out = {"file": m.__file__, "verdicts": []}
for pl in (1, 2):
    insp = WebInspector(paranoia=pl)
    for r in make_mix(240, seed=5):
        v = insp.inspect(r.to_dict())
        v.pop("latency_ms", None)
        out["verdicts"].append(v)
print(json.dumps(out, sort_keys=True, default=str))
"""


def test_compiled_and_interpreted_modules_give_the_same_verdicts():
    if not any(compiled.state(n)[0] == "compiled" for n in compiled.MODULES):
        pytest.skip("no module compiled here (no C compiler or Cython at install): nothing to compare")
    runs = {}
    for pure in ("0", "1"):
        env = dict(os.environ, FSBRAIN_PURE_PYTHON=pure, PYTHONHASHSEED="0")
        got = subprocess.run([sys.executable, "-c", _VERDICTS, str(ROOT / "bench")], env=env, capture_output=True,
                             text=True, timeout=600, check=True)
        runs[pure] = json.loads(got.stdout)
    assert runs["0"]["file"].endswith(SUFFIX) and runs["1"]["file"].endswith(".py")
    assert len(runs["0"]["verdicts"]) == 480
    assert sum(v["attack"] for v in runs["0"]["verdicts"]) > 20  # the mix's attacks are in there
    assert runs["0"]["verdicts"] == runs["1"]["verdicts"]
