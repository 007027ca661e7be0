"""Run every benchmark, then assemble docs/BENCHMARKS.md from docs/benchmarks/*.md.

    python bench/run_all.py            # everything (tens of minutes on 2 cores)
    python bench/run_all.py --only engine http
    python bench/run_all.py --assemble # only rebuild docs/BENCHMARKS.md from existing results
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _machine import describe  # noqa: E402

ORDER = ["engine", "http", "state", "web_rules", "web", "web_peer", "host_bruteforce", "host_malware", "flow"]


def assemble() -> Path:
    parts = sorted((ROOT / "docs" / "benchmarks").glob("*.md"),
                   key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))
    head = ("# Benchmarks\n\nEvery number below was measured by a script in `bench/` (named in each section), "
            "on the machine named in that section. Machines are shared and noisy: compare numbers measured in "
            "the same run, and read the load average each section records. No test asserts a timing.\n\n"
            f"Assembled {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; this machine: {describe()}.\n\n"
            "Run them all: `python bench/run_all.py`.\n")
    body = "\n\n".join(p.read_text(encoding="utf-8").strip() for p in parts)
    out = ROOT / "docs" / "BENCHMARKS.md"
    out.write_text(head + "\n" + body + "\n", encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--assemble", action="store_true")
    args = ap.parse_args()
    if not args.assemble:
        scripts = sorted((ROOT / "bench").glob("bench_*.py"))
        failed = []
        for s in scripts:
            name = s.stem.removeprefix("bench_")
            if args.only and name not in args.only:
                continue
            print(f"== {s.name}", flush=True)
            if subprocess.run([sys.executable, str(s)], cwd=ROOT).returncode != 0:
                failed.append(s.name)
        if failed:
            print("failed:", ", ".join(failed), file=sys.stderr)
    print(f"wrote {assemble()}")


if __name__ == "__main__":
    main()
