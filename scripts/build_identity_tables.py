#!/usr/bin/env python3
"""Build the compact identity code tables shipped in ``fsbrain.domains.credit.data``.

Region codes, mobile number segments and card BINs are facts. This script reads the public corpora under
``../shared/data`` (see each folder's SOURCE.txt) and writes small, purpose-built tables:

* ``regions.csv.gz`` — every GB/T 2260 code seen in any 民政部 (mca) or 统计局 (stats) revision
  1980–2019: ``code,name,first,last`` (first/last revision as YYYYMM; the newest name wins).
* ``phone_cities.csv.gz`` — the distinct (province, city) places of the mobile segments, with area code,
  zip, and the GB/T 2260 province and prefecture codes matched by name: ``idx,province,city,area_code,
  zip,province_code,city_code``.
* ``phone_ranges.csv.gz`` — runs of consecutive 7-digit segments with the same place and carrier:
  ``gap,count,city_idx,carrier_type`` where ``gap`` is the distance from the previous run's end.
* ``bins.csv.gz`` — card BINs: ``bin,length,bank_code,card_type``; ``banks.csv.gz``: ``bank_code,name``.

Usage::

    python scripts/build_identity_tables.py [--shared ../shared/data] [--out src/fsbrain/domains/credit/data]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "src" / "fsbrain" / "domains" / "credit" / "data"

# colloquial short names in the segment data -> the start of the official prefecture name
CITY_ALIASES = {"巴州": "巴音郭楞", "博州": "博尔塔拉", "克州": "克孜勒苏", "雄安": "保定"}

CARRIER_TYPES = {"移动": 1, "联通": 2, "电信": 3, "电信虚拟运营商": 4, "联通虚拟运营商": 5,
                 "移动虚拟运营商": 6, "广电": 7, "广电虚拟运营商": 8}


def _write_gz(path: Path, header: list[str], rows: list[list[object]]) -> int:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    # mtime=0 keeps the output byte-for-byte reproducible
    data = gzip.compress(buf.getvalue().encode("utf-8"), compresslevel=9, mtime=0)
    path.write_bytes(data)
    return len(data)


def build_regions(gb: Path) -> list[list[object]]:
    """Merge every revision file into code -> (newest name, first revision, last revision)."""
    seen: dict[str, list] = {}
    files = sorted((gb / "mca").glob("*.tsv")) + sorted((gb / "stats").glob("*.tsv"))
    if not files:
        raise SystemExit(f"no revision files under {gb}/mca or {gb}/stats")
    for f in files:
        with f.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                code, name, rev = row["Code"].strip(), row["Name"].strip(), int(row["Revision"])
                if len(code) != 6 or not code.isdigit():
                    continue
                cur = seen.get(code)
                if cur is None:
                    seen[code] = [name, rev, rev]
                    continue
                if rev >= cur[2]:
                    cur[0] = name
                cur[1] = min(cur[1], rev)
                cur[2] = max(cur[2], rev)
    return [[code, v[0], v[1], v[2]] for code, v in sorted(seen.items())]


def _province_codes(regions: list[list[object]]) -> dict[str, str]:
    """Full province name -> 2-digit code."""
    return {str(name): str(code)[:2] for code, name, _f, _l in regions if str(code).endswith("0000")}


def _match_province(short: str, provinces: dict[str, str]) -> str:
    for full, code in provinces.items():
        if full.startswith(short):
            return code
    return ""


def _match_city(pcode: str, city: str, regions: list[list[object]]) -> str:
    """The 4-digit prefecture code of ``city`` (a short name such as 济南 or 恩施) in province ``pcode``.

    Prefecture-level names win over county-level ones; among equals the most recent revision wins.
    """
    if pcode in ("11", "12", "31", "50"):
        return pcode + "01"
    city = CITY_ALIASES.get(city, city)
    best: tuple[int, int, str] | None = None
    for code, name, _first, last in regions:
        code, name = str(code), str(name)
        if not code.startswith(pcode) or code.endswith("0000") or not name.startswith(city):
            continue
        rank = (0 if code.endswith("00") else 1, -int(last), code[:4])  # type: ignore[call-overload]
        if best is None or rank < best:
            best = rank
    return best[2] if best else ""


def build_phone(seg_file: Path, regions: list[list[object]]) -> tuple[list[list[object]], list[list[object]]]:
    provinces = _province_codes(regions)
    places: dict[tuple[str, str], int] = {}
    place_rows: list[list[object]] = []
    runs: list[list[int]] = []  # start, count, city_idx, carrier_type
    with gzip.open(seg_file, "rt", encoding="utf-8") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["prefix7"]))
    for r in rows:
        key = (r["province"], r["city"])
        idx = places.get(key)
        if idx is None:
            idx = places[key] = len(place_rows)
            pcode = _match_province(r["province"], provinces)
            place_rows.append([idx, r["province"], r["city"], r["area_code"], r["zip"], pcode,
                               _match_city(pcode, r["city"], regions) if pcode else ""])
        prefix = int(r["prefix7"])
        ctype = int(r["carrier_type"]) or CARRIER_TYPES.get(r["carrier"], 0)
        last = runs[-1] if runs else None
        if last and last[0] + last[1] == prefix and last[2] == idx and last[3] == ctype:
            last[1] += 1
        else:
            runs.append([prefix, 1, idx, ctype])
    out: list[list[object]] = []
    prev_end = 0
    for start, count, idx, ctype in runs:
        out.append([start - prev_end, count, idx, ctype])
        prev_end = start + count
    return place_rows, out


def build_bins(bank_dir: Path) -> tuple[list[list[object]], list[list[object]]]:
    names: dict[str, str] = {}
    with (bank_dir / "bcbc_bank_name.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            names[r["bank"].strip()] = r["name"].strip()
    bins: set[tuple[str, int, str, str]] = set()
    with (bank_dir / "cn_bank_bin_merged.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            b, code = r["bin"].strip(), r["bank_code"].strip()
            if not b.isdigit() or not code:
                continue
            names.setdefault(code, r["bank_name"].strip())
            bins.add((b, int(r["card_length"]), code, r["card_type"].strip()))
    bin_rows = [list(t) for t in sorted(bins)]
    used = {t[2] for t in bins}
    bank_rows = [[c, n] for c, n in sorted(names.items()) if c in used]
    return bin_rows, bank_rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared/data folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the tables")
    args = ap.parse_args(argv)
    for sub in ("gb2260", "phone-segments", "bank-bin"):
        if not (args.shared / sub).is_dir():
            print(f"error: {args.shared / sub} is missing", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    regions = build_regions(args.shared / "gb2260")
    places, ranges = build_phone(args.shared / "phone-segments" / "cn_mobile_segments.csv.gz", regions)
    bins, banks = build_bins(args.shared / "bank-bin")
    sizes = {
        "regions.csv.gz": _write_gz(args.out / "regions.csv.gz", ["code", "name", "first", "last"], regions),
        "phone_cities.csv.gz": _write_gz(
            args.out / "phone_cities.csv.gz",
            ["idx", "province", "city", "area_code", "zip", "province_code", "city_code"], places),
        "phone_ranges.csv.gz": _write_gz(
            args.out / "phone_ranges.csv.gz", ["gap", "count", "city_idx", "carrier_type"], ranges),
        "bins.csv.gz": _write_gz(args.out / "bins.csv.gz", ["bin", "length", "bank_code", "card_type"], bins),
        "banks.csv.gz": _write_gz(args.out / "banks.csv.gz", ["bank_code", "name"], banks),
    }
    for name, size in sizes.items():
        print(f"{name:22s} {size:>9,d} bytes")
    print(f"regions={len(regions)} phone places={len(places)} runs={len(ranges)} bins={len(bins)} "
          f"banks={len(banks)}; total {sum(sizes.values()):,d} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
