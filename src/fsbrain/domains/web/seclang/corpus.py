"""Detection and false-positive rates of rule engines on payload corpora (libinjection's data files).

Each payload is sent as the value of one query parameter (percent-encoded, so the engine sees exactly
the payload after decoding) of an otherwise ordinary browser GET request. A payload counts as detected
when the verdict blocks (inbound anomaly score at or above the threshold). Rates are reported as
true-positive rate (detected / attacks) and true-negative rate (passed / benign).

Run ``python -m fsbrain.domains.web.seclang.corpus --libinjection DIR [--crs DIR]`` for a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

from fsbrain.domains.web.request import HttpRequest

_HEADERS = [("Host", "shop.example.com"),
            ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                           "Chrome/124.0 Safari/537.36"),
            ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ("Accept-Language", "en-US,en;q=0.9"), ("Accept-Encoding", "gzip, deflate, br")]


def load_payloads(files: list[Path]) -> list[bytes]:
    """Non-empty, non-comment lines of the given files."""
    out: list[bytes] = []
    for f in files:
        for line in f.read_bytes().splitlines():
            if line.strip() and not line.startswith(b"#"):
                out.append(line)
    return out


def payload_request(payload: bytes, param: str = "q") -> HttpRequest:
    """An ordinary GET carrying ``payload`` as one query parameter."""
    return HttpRequest(method="GET", uri=f"/search?{param}=" + quote_from_bytes(payload, safe=""),
                       headers=list(_HEADERS), remote_addr="198.51.100.7")


@dataclass
class Rate:
    """Counts for one engine on one corpus."""

    corpus: str
    total: int
    flagged: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.flagged / self.total if self.total else 0.0


def measure(engine: Any, name: str, payloads: list[bytes]) -> Rate:
    """How many payloads the engine blocks."""
    t0 = time.perf_counter()
    flagged = sum(1 for p in payloads if engine.inspect(payload_request(p)).blocked)
    return Rate(name, len(payloads), flagged, time.perf_counter() - t0)


def corpora(lib_dir: Path) -> dict[str, list[bytes]]:
    """The SQLi, XSS and benign (false_positives.txt) corpora of a libinjection checkout."""
    data = lib_dir / "data" if (lib_dir / "data").is_dir() else lib_dir
    return {"sqli": load_payloads(sorted(data.glob("sqli-*.txt"))),
            "xss": load_payloads(sorted(data.glob("xss-*.txt"))),
            "benign": load_payloads([data / "false_positives.txt"])}


def main(argv: list[str] | None = None) -> None:
    from fsbrain.domains.web.seclang.engine import WebRuleEngine

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--libinjection", type=Path, required=True)
    ap.add_argument("--crs", type=Path, help="CRS folder to compare with")
    args = ap.parse_args(argv)
    sets = corpora(args.libinjection)
    engines: list[tuple[str, Any]] = [("fsbrain default PL1", WebRuleEngine.default(paranoia=1)),
                                      ("fsbrain default PL2", WebRuleEngine.default(paranoia=2))]
    if args.crs:
        engines += [("CRS PL1", WebRuleEngine.from_crs(args.crs, paranoia=1)),
                    ("CRS PL2", WebRuleEngine.from_crs(args.crs, paranoia=2))]
    print(f"| engine | SQLi TPR (n={len(sets['sqli'])}) | XSS TPR (n={len(sets['xss'])}) | "
          f"benign TNR (n={len(sets['benign'])}) | false positives |")
    print("|---|---|---|---|---|")
    for name, eng in engines:
        s, x, b = (measure(eng, k, sets[k]) for k in ("sqli", "xss", "benign"))
        print(f"| {name} | {s.rate:.1%} | {x.rate:.1%} | {1 - b.rate:.1%} | {b.flagged} |", flush=True)


if __name__ == "__main__":
    main()
