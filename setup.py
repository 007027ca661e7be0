"""Builds the optional compiled hot paths (fsbrain._speedups, the web and host modules' ``.pyx``) from Cython,
and compiles the plain Python modules of ``fsbrain.compiled.MODULES`` from their unchanged ``.py`` sources,
recording each source's SHA-256 beside its extension (``fsbrain.compiled`` loads an extension only when that
hash matches the ``.py`` on disk).

Everything else is configured in pyproject.toml. The extension is optional: where no C compiler is
available the build warns and installs the pure-Python package, which gives identical results.
"""

import ast
import functools
import hashlib
import os
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def compiled_modules() -> tuple[str, ...]:
    """``fsbrain.compiled.MODULES``, read from the file's text (the package is not importable here)."""
    tree = ast.parse((HERE / "src/fsbrain/compiled.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MODULES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise RuntimeError("MODULES not found in src/fsbrain/compiled.py")


def _source_of(name: str) -> Path:
    return HERE / "src" / (name.replace(".", "/") + ".py")


# module -> SHA-256 of its .py, taken before Cython reads it: a .py edited during the build then reads as
# stale (and runs as Python), never as compiled from a text it was not compiled from
_HASHES: dict[str, str] = {}


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no Python headers: fall back to pure Python
            print(f"WARNING: fsbrain._speedups not built ({exc}); using the pure-Python engine")

    def copy_extensions_to_source(self) -> None:
        """``--inplace`` (and editable installs): the extensions, and the source hashes recorded beside them."""
        super().copy_extensions_to_source()
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            if ext.name not in compiled_modules():
                continue
            inplace_file, regular_file = self._get_inplace_equivalent(build_py, ext)
            src, dst = Path(regular_file + ".sha256"), Path(inplace_file + ".sha256")
            if src.is_file() and Path(regular_file).is_file():
                self.copy_file(str(src), str(dst), level=self.verbose)
            else:
                dst.unlink(missing_ok=True)

    def build_extension(self, ext: Extension) -> None:
        if ext.name in _HASHES:
            # the hash of the source this build compiles, beside the extension (removed first, written only
            # after a successful build: fsbrain.compiled never pairs an extension with a hash of another text)
            target = Path(self.get_ext_fullpath(ext.name))
            sidecar = Path(str(target) + ".sha256")
            sidecar.unlink(missing_ok=True)
            try:
                super().build_extension(ext)
            except Exception as exc:
                print(f"WARNING: {ext.name} not compiled ({exc}); its .py runs")
                return
            sidecar.write_text(_HASHES[ext.name] + "\n", encoding="ascii")
            return
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"WARNING: {ext.name} not built ({exc}); using the pure-Python engine")


def _fastlog_options(name: str = "fsbrain.domains.host._fastlog") -> dict:
    """fsbrain.domains.host._fastlog and fsbrain.domains.web._fastweb: C++ calling RE2 directly where RE2's headers and library are found
    (Debian: libre2-dev; pkg-config first, for RE2 versions that need Abseil), plain C otherwise (its batches
    then use Arrow's kernels). FSBRAIN_RE2=0 builds without RE2."""
    import os
    import shlex
    import subprocess
    import tempfile

    plain = {"extra_compile_args": ["-O2"]}
    if os.environ.get("FSBRAIN_RE2", "1").strip().lower() in ("0", "false", "no", "off"):
        return plain
    cflags, libs = [], ["-lre2"]
    try:
        out = subprocess.run(["pkg-config", "--cflags", "--libs", "re2"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0:
            flags = shlex.split(out.stdout)
            cflags = [f for f in flags if not f.startswith(("-l", "-L"))]
            libs = [f for f in flags if f.startswith(("-l", "-L"))]
    except (OSError, subprocess.SubprocessError):
        pass
    # a C++ compiler that builds and links a program using RE2 with these flags, else the plain C build
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.cc")
        with open(src, "w") as fh:
            fh.write('#include <re2/re2.h>\nint main() { RE2 r("a(b)"); return r.ok() ? 0 : 1; }\n')
        try:
            cxx = shlex.split(os.environ.get("CXX", "c++"))
            ok = subprocess.run([*cxx, "-std=c++17", *cflags, src, "-o", os.path.join(tmp, "t"), *libs],
                                capture_output=True, timeout=120).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
    if not ok:
        print(f"NOTE: RE2 (libre2-dev) not found: {name} built without it (RE2 through the google-re2 binding)")
        return plain
    return {"language": "c++", "define_macros": [("FSBRAIN_HAVE_RE2", "1")],
            "extra_compile_args": ["-O2", "-std=c++17", *cflags], "extra_link_args": libs}


def extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("WARNING: Cython missing; fsbrain._speedups not built (pure-Python engine)")
        return []
    only = [n for n in os.environ.get("FSBRAIN_BUILD_ONLY", "").split(",") if n.strip()]
    if only:  # scripts/_venv.sh: recompile just the plain modules whose .py changed
        return _plain_extensions(cythonize, [n.strip() for n in only if n.strip() in compiled_modules()])
    exts = cythonize(
        [Extension("fsbrain._speedups", ["src/fsbrain/_speedups.pyx"], extra_compile_args=["-O2"]),
         Extension("fsbrain.domains.web._fastweb", ["src/fsbrain/domains/web/_fastweb.pyx"],
                   **_fastlog_options("fsbrain.domains.web._fastweb")),
         Extension("fsbrain.domains.host._fastlog", ["src/fsbrain/domains/host/_fastlog.pyx"],
                   **_fastlog_options())],
        compiler_directives={"language_level": 3},
        quiet=True,
    )
    return exts + _plain_extensions(cythonize, list(compiled_modules()))


def _plain_extensions(cythonize, names: list[str]) -> list[Extension]:  # noqa: ANN001 - Cython's cythonize
    """Plain Python modules compiled as they are: annotations stay annotations (annotation_typing off, so no
    type is enforced or narrowed), functions keep Python's introspection (binding); the C files go under
    build/, not beside the sources."""
    names = [name for name in names if _source_of(name).is_file()]
    for name in names:
        _HASHES[name] = hashlib.sha256(_source_of(name).read_bytes()).hexdigest()
    plain = [Extension(name, [str(_source_of(name).relative_to(HERE))], extra_compile_args=["-O2"]) for name in names]
    if not plain:
        return []
    return cythonize(plain, compiler_directives={"language_level": 3, "annotation_typing": False, "binding": True},
                     build_dir="build/cython", quiet=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
