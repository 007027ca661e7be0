"""Machine description written next to every benchmark result."""

from __future__ import annotations

import os
import platform
import subprocess


def describe() -> str:
    """One line: CPU model, cores, memory, OS, Python."""
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
    return (f"{cpu}, {os.cpu_count()} cores, {mem}, Linux {kernel}, "
            f"Python {platform.python_version()} ({platform.python_implementation()})")


if __name__ == "__main__":
    print(describe())
