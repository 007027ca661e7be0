"""Build the compact bot user-agent table shipped with fsbrain (``src/fsbrain/domains/web/data/bot_agents.json``).

Sources (see SOURCE.txt under ../shared/data):

* ``crawler-user-agents/crawler-user-agents.json`` (MIT, monperrus/crawler-user-agents 1.60.0): 1,500
  regex patterns with tags. Each pattern gets a *category*: ``good`` for search engines (the crawlers a
  bank wants indexed), ``scanner`` for security scanners, ``automation`` for browser automation,
  ``library`` for HTTP libraries, ``crawler`` for everything else (SEO, AI crawlers, archivers, monitors…).
* CRS v4 ``rules/scanners-user-agents.data`` (Apache-2.0): the CRS list of scanner user-agent substrings,
  category ``scanner``.

Patterns that RE2 cannot compile are reported and left out. Usage::

    python scripts/build_web_bots.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import re2

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "fsbrain" / "domains" / "web" / "data" / "bot_agents.json"


def category(tags: list[str]) -> str:
    """One category from crawler-user-agents tags (the most severe wins)."""
    t = set(tags)
    if "scanner" in t:
        return "scanner"
    if "browser-automation" in t:
        return "automation"
    if "search-engine" in t:
        return "good"
    if "http-library" in t:
        return "library"
    return "crawler"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args(argv)
    entries = []
    skipped = []
    src = args.shared / "crawler-user-agents" / "crawler-user-agents.json"
    for e in json.loads(src.read_text(encoding="utf-8")):
        pat = e["pattern"]
        try:
            re2.compile(pat)
        except re2.error as exc:
            skipped.append((pat, str(exc)))
            continue
        entries.append({"pattern": pat, "category": category(e.get("tags") or []),
                        "tags": sorted(e.get("tags") or []), "url": e.get("url", "")})
    crs = args.shared / "crs-regression" / "rules" / "scanners-user-agents.data"
    n_crs = 0
    for line in crs.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            entries.append({"pattern": "(?i)" + re2.escape(s), "category": "scanner", "tags": ["crs-scanner"], "url": ""})
            n_crs += 1
    doc = {"version": 1,
           "sources": ["crawler-user-agents 1.60.0 (MIT) github.com/monperrus/crawler-user-agents",
                       "OWASP CRS v4 rules/scanners-user-agents.data (Apache-2.0)"],
           "entries": entries}
    OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(entries)} patterns ({n_crs} from CRS), {len(skipped)} skipped")
    for pat, err in skipped:
        print(f"  skipped {pat!r}: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
