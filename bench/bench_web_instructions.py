"""Instructions per inspected request (valgrind callgrind): a speed measure that other load on the machine does
not move.

The OWASP CRS v4 engine (PL1; ``--rules default``: fsbrain's own rules; ``--inspector``: the full inspector,
rules + model, given request dicts) inspects the rule benchmark's mix (``bench_web_rules.make_mix``) after a warm-up;
each timed request is released after its inspection (as a server releases it). Callgrind counts only inside the
timed loop: the requests are inspected through ``map`` and collection is toggled on in CPython's ``map_next``
(``--collect-atstart=no --toggle-collect=map_next``), so loading the rules, the warm-up and building the test
requests are not counted; the total is divided by the number of requests. (Until the eighth session the script
subtracted a second run without the timed requests. That counted building the test requests too, about 42,000
instructions per request for the engine and 62,000 for the inspector, and such a difference of two whole runs
moves when a garbage collection or the shutdown falls differently in them: making the second run build the same
requests gave a *higher* count, 829,000 instead of 754,000.) ``--src`` points at another
checkout's ``src`` folder to measure it the same way (before / after a change). ``FSBRAIN_PURE_PYTHON=1`` in the environment
measures the same tree with the modules of ``fsbrain.compiled`` interpreted instead of compiled. Hash randomisation is off
(``PYTHONHASHSEED=0``): with it on, counts move by about 2%. OpenBLAS runs one thread (``OPENBLAS_NUM_THREADS=1``):
its idle worker threads made counts move by about 1%.

Usage::

    python bench/bench_web_instructions.py [--crs ../shared/data/crs-regression] [--n 600] [--paranoia 2]
        [--rules crs|default] [--inspector] [--src OTHER/src ...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROGRAM = r'''
import collections
import gc
import sys
sys.path.insert(0, {bench!r})
from bench_web_rules import make_mix
from fsbrain.domains.web import WebRuleEngine
from fsbrain.domains.web.inspector import WebInspector
eng = WebRuleEngine.from_crs({crs!r}, paranoia={paranoia}) if {crs!r} else WebRuleEngine.default(paranoia={paranoia})
if {inspector!r}:  # the full inspector (rules + model), given request dicts as the proxy and middleware pass them
    eng = WebInspector(paranoia={paranoia}, rules=eng)
    mix = lambda k, seed=7: [r.to_dict() for r in make_mix(k, seed)]
else:
    mix = make_mix
for q in mix(600, seed=1):
    eng.inspect(q)
reqs = mix({n})
gc.freeze()  # as fsbrain.speedups.settle_heap() in the servers (spelled out: older trees lack it)
reqs.reverse()


def feed():
    while reqs:
        yield reqs.pop()


# the timed loop: callgrind counts inside map_next only; each request is released there, after its inspection
collections.deque(map(eng.inspect, feed()), maxlen=0)
'''


def count(src: Path, crs: Path | None, n: int, paranoia: int, inspector: bool = False) -> int:
    """Instructions spent inspecting ``n`` timed requests with the code under ``src``."""
    with tempfile.TemporaryDirectory() as tmp:
        prog = Path(tmp) / "prog.py"
        prog.write_text(PROGRAM.format(bench=str(REPO / "bench"), crs=str(crs) if crs else "", n=n, paranoia=paranoia,
                                       inspector=inspector))
        out = Path(tmp) / "cg.out"
        # union sets compiled in the request (FSBRAIN_WEB_UNION_THREAD=0): valgrind runs one thread at a time, so
        # the background builder's compiles would land in the timed requests at random and make counts differ
        # from run to run; compiled in the request, they all happen in the warm-up, as they do in a server
        # OpenBLAS threads off: numpy (imported by the model code) starts BLAS worker threads whose idle spinning
        # valgrind counts too; it moved the same code's count by ~1% (up to 3.5 million instructions) from run to run
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(src), FSBRAIN_WEB_UNION_THREAD="0",
                   OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        subprocess.run(["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=map_next",
                        f"--callgrind-out-file={out}", sys.executable, str(prog)],
                       env=env, check=True, capture_output=True)
        text = out.read_text(errors="replace")
    m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    if m is None:
        raise SystemExit("no instruction total in callgrind's output")
    total = int(m.group(1))
    if total == 0:
        raise SystemExit("callgrind counted nothing in map_next: this Python's library has no symbol for it")
    return total


def per_request(src: Path, crs: Path | None, n: int, paranoia: int, inspector: bool = False) -> float:
    return count(src, crs, n, paranoia, inspector) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crs", type=Path, default=REPO.parent / "shared/data/crs-regression")
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--paranoia", type=int, default=1)
    ap.add_argument("--rules", choices=("crs", "default"), default="crs",
                    help="OWASP CRS v4 (default) or fsbrain's own rules")
    ap.add_argument("--inspector", action="store_true",
                    help="count the full inspector (rules + model, from request dicts) instead of the rule engine")
    ap.add_argument("--src", type=Path, action="append", default=[], help="another src folder to measure too")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    crs = args.crs if args.rules == "crs" else None
    if crs is not None and not crs.is_dir():
        raise SystemExit(f"CRS not found at {crs}")
    what = ("OWASP CRS v4" if crs else "fsbrain rules") + (" + model (full inspector)" if args.inspector else "")
    for src in [REPO / "src", *args.src]:
        ipr = per_request(src.resolve(), crs, args.n, args.paranoia, args.inspector)
        print(f"{src}: {ipr:,.0f} instructions per request ({what} PL{args.paranoia}, {args.n} requests)")


if __name__ == "__main__":
    main()
