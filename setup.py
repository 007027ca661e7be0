"""Builds the optional compiled hot paths (fsbrain._speedups) from Cython.

Everything else is configured in pyproject.toml. The extension is optional: where no C compiler is
available the build warns and installs the pure-Python package, which gives identical results.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no Python headers: fall back to pure Python
            print(f"WARNING: fsbrain._speedups not built ({exc}); using the pure-Python engine")

    def build_extension(self, ext: Extension) -> None:
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
    return cythonize(
        [Extension("fsbrain._speedups", ["src/fsbrain/_speedups.pyx"], extra_compile_args=["-O2"]),
         Extension("fsbrain.domains.web._fastweb", ["src/fsbrain/domains/web/_fastweb.pyx"],
                   **_fastlog_options("fsbrain.domains.web._fastweb")),
         Extension("fsbrain.domains.host._fastlog", ["src/fsbrain/domains/host/_fastlog.pyx"],
                   **_fastlog_options())],
        compiler_directives={"language_level": 3},
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
