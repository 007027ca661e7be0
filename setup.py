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


def extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("WARNING: Cython missing; fsbrain._speedups not built (pure-Python engine)")
        return []
    return cythonize(
        [Extension("fsbrain._speedups", ["src/fsbrain/_speedups.pyx"], extra_compile_args=["-O2"]),
         Extension("fsbrain.domains.web._fastweb", ["src/fsbrain/domains/web/_fastweb.pyx"],
                   extra_compile_args=["-O2"]),
         Extension("fsbrain.domains.host._fastlog", ["src/fsbrain/domains/host/_fastlog.pyx"],
                   extra_compile_args=["-O2"])],
        compiler_directives={"language_level": 3},
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
