"""Installed packages (dpkg status file) against an advisory list (组件漏洞).

Advisory file (YAML or JSON; users bring their own, fsbrain ships an example)::

    format: fsbrain-advisories/1
    advisories:
      - id: DSA-5724-1                    # unique in the file
        package: openssh                  # binary or source package name, or a list of names
        cves: [CVE-2024-6387]
        severity: critical                # info | low | medium | high | critical
        title: regreSSHion ...            # optional
        release: bookworm                 # optional: applies only when os-release VERSION_CODENAME matches
        affected:                         # one or more ranges, Debian version comparison
          - introduced: "1:8.5p1"         # optional, default: every version
            fixed: "1:9.2p1-2+deb12u3"    # versions >= fixed are safe; or last_affected: <= is affected

Every problem in the file is collected and reported together with its location.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fsbrain.core.errors import InputError, PolicyError
from fsbrain.domains.host.audit.catalogue import SEVERITY_RANK, Finding
from fsbrain.domains.host.audit.dpkgver import Version
from fsbrain.domains.host.audit.hostfs import HostFS

ADVISORY_FORMAT = "fsbrain-advisories/1"
DPKG_STATUS = "/var/lib/dpkg/status"
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_RANGE_KEYS = {"introduced", "fixed", "last_affected"}
_KEYS = {"id", "package", "cves", "severity", "title", "release", "affected", "url", "note"}


@dataclass(frozen=True, slots=True)
class Range:
    introduced: Version | None
    fixed: Version | None
    last_affected: Version | None

    def contains(self, v: Version) -> bool:
        if self.introduced is not None and v < self.introduced:
            return False
        if self.fixed is not None:
            return v < self.fixed
        if self.last_affected is not None:
            return v <= self.last_affected
        return True


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    packages: tuple[str, ...]
    cves: tuple[str, ...]
    severity: str
    title: str
    release: str | None
    ranges: tuple[Range, ...]
    fixed_text: str | None


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    version: Version
    source: str
    line: int


def _version(value: Any, where: str, problems: list[dict[str, Any]]) -> Version | None:
    if value is None:
        return None
    try:
        return Version.parse(str(value))
    except InputError as exc:
        problems.append({"path": where, "message": exc.message, "severity": "error", "line": None})
        return None


def parse_advisories(data: Any, *, source: str = "<advisories>") -> list[Advisory]:
    """Validate a parsed advisory document.

    Raises:
        PolicyError: every problem found, each with its path in the document.
    """
    if not isinstance(data, dict) or data.get("format") != ADVISORY_FORMAT:
        raise PolicyError(f"not an advisory file (expected 'format: {ADVISORY_FORMAT}')", source=source)
    items = data.get("advisories")
    if not isinstance(items, list):
        raise PolicyError("'advisories' must be a list", source=source)
    problems: list[dict[str, Any]] = []

    def bad(where: str, msg: str) -> None:
        problems.append({"path": where, "message": msg, "severity": "error", "line": None})

    out: list[Advisory] = []
    ids: set[str] = set()
    for i, a in enumerate(items):
        w = f"advisories[{i}]"
        if not isinstance(a, dict):
            bad(w, "must be a mapping")
            continue
        if set(a) - _KEYS:
            bad(w, f"unknown keys {sorted(set(a) - _KEYS)}")
        aid = str(a.get("id") or "")
        if not aid or aid in ids:
            bad(w, f"missing or duplicate id {aid!r}")
        ids.add(aid)
        pkgs = a.get("package")
        pkgs = [pkgs] if isinstance(pkgs, str) else pkgs
        if not pkgs or not all(isinstance(p, str) and p for p in pkgs):
            bad(f"{w}.package", "must be a package name or a list of names")
            pkgs = []
        cves = a.get("cves") or []
        if not isinstance(cves, list) or not all(isinstance(c, str) and _CVE.match(c) for c in cves):
            bad(f"{w}.cves", f"must be a list of CVE ids like CVE-2024-6387, got {cves!r}")
            cves = []
        sev = a.get("severity", "high")
        if sev not in SEVERITY_RANK:
            bad(f"{w}.severity", f"unknown severity {sev!r}")
        ranges = a.get("affected")
        if not isinstance(ranges, list) or not ranges:
            bad(f"{w}.affected", "must be a non-empty list of ranges")
            ranges = []
        parsed: list[Range] = []
        fixed_text = None
        for j, r in enumerate(ranges):
            rw = f"{w}.affected[{j}]"
            if not isinstance(r, dict) or set(r) - _RANGE_KEYS or ("fixed" in r and "last_affected" in r):
                bad(rw, "a range has introduced and one of fixed / last_affected")
                continue
            fixed_text = str(r["fixed"]) if "fixed" in r else fixed_text
            parsed.append(Range(_version(r.get("introduced"), rw, problems), _version(r.get("fixed"), rw, problems),
                                _version(r.get("last_affected"), rw, problems)))
        out.append(Advisory(aid, tuple(pkgs), tuple(cves), str(sev), str(a.get("title") or ", ".join(cves) or aid),
                            a.get("release"), tuple(parsed), fixed_text))
    if problems:
        first = problems[0]
        raise PolicyError(f"{len(problems)} problem(s), first: {first['path']}: {first['message']}",
                          source=source, problems=problems)
    return out


def load_advisories(path: str | Path) -> list[Advisory]:
    """Read and validate an advisory file (``.json``, or YAML otherwise)."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read advisory file: {exc}", source=str(p)) from exc
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PolicyError(f"invalid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}", source=str(p)) from exc
    return parse_advisories(data, source=str(p))


def read_dpkg_status(fs: HostFS) -> list[Package]:
    """Installed packages from ``/var/lib/dpkg/status``."""
    out: list[Package] = []
    para: dict[str, str] = {}
    start = 1

    def flush() -> None:
        if para.get("Package") and para.get("Version") and para.get("Status", "").split()[-1:] == ["installed"]:
            try:
                v = Version.parse(para["Version"])
            except InputError:
                fs.notes.append(f"{DPKG_STATUS}:{start}: bad version {para['Version']!r} of {para['Package']}")
                return
            src = para.get("Source", para["Package"]).split()[0]
            out.append(Package(para["Package"], v, src, start))

    for no, line in fs.lines(DPKG_STATUS):
        if not line.strip():
            flush()
            para = {}
            continue
        if not para:
            start = no
        if line[0] in " \t":
            continue  # continuation of a multi-line field
        key, _, value = line.partition(":")
        para[key] = value.strip()
    flush()
    return out


def os_codename(fs: HostFS) -> str | None:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        for _, line in fs.lines(path):
            if line.startswith("VERSION_CODENAME="):
                return line.partition("=")[2].strip().strip("\"'") or None
    return None


def check_packages(fs: HostFS, advisories: list[Advisory]) -> list[Finding]:
    """FSB-PKG-001: one finding per (package, advisory) whose installed version is in an affected range."""
    pkgs = read_dpkg_status(fs)
    codename = os_codename(fs)
    found: list[Finding] = []
    for adv in advisories:
        if adv.release and codename and adv.release != codename:
            continue
        names = set(adv.packages)
        for p in pkgs:
            if (p.name in names or p.source in names) and any(r.contains(p.version) for r in adv.ranges):
                cves = ", ".join(adv.cves)
                fix = f"upgrade {p.name} to {adv.fixed_text} or later" if adv.fixed_text else \
                    f"no fixed version is known; remove or mitigate {p.name}"
                found.append(Finding(check_id="FSB-PKG-001", file=DPKG_STATUS, line=p.line,
                                     value=f"{p.name} {p.version}", severity=adv.severity,
                                     title=f"{p.name} {p.version}: {adv.title} ({cves or adv.id})",
                                     detail=f"advisory {adv.id}", remedy=fix.capitalize()))
    return found
