"""Machine description written next to every benchmark result."""

from __future__ import annotations

import os
import platform
import subprocess


def _build() -> str:
    """How fsbrain was built here: the modules compiled from their .py (fsbrain.compiled) and whether the web
    module calls RE2 directly (libre2-dev at build time); both change the speed, not the results."""
    parts = []
    try:
        from fsbrain import compiled

        states = [compiled.state(name)[0] for name in compiled.MODULES]
        parts.append(f"{0 if compiled.pure_python() else states.count('compiled')}/{len(states)} plain modules compiled")
    except Exception:  # noqa: BLE001 - an older tree, or no fsbrain: say nothing
        pass
    try:
        from fsbrain.domains.web import _fastweb

        parts.append("RE2 called directly" if _fastweb.re2_direct() else "RE2 through the google-re2 binding")
    except Exception:  # noqa: BLE001 - no compiled web module
        parts.append("web rule loop not compiled")
    return "; ".join(parts)


def describe() -> str:
    """One line: CPU model, cores, memory, OS, Python, and how fsbrain was built."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        kernel = platform.release()
    build = _build()
    return (f"{cpu}, {os.cpu_count()} cores, {mem}, Linux {kernel}, "
            f"Python {platform.python_version()} ({platform.python_implementation()})" + (f"; {build}" if build else ""))


if __name__ == "__main__":
    print(describe())
