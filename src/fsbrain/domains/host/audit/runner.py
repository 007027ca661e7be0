"""Run the baseline catalogue against a file tree and build the report: findings, score, alerts.

Host score (0-100): 100 minus a penalty per finding by severity (critical 20, high 10, medium 5, low 2,
info 0); repeated findings of one check add up to at most twice that check's weight, so one noisy check
cannot hide the others. The score is a summary for dashboards; the findings are what to act on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fsbrain.core.errors import InputError
from fsbrain.core.model import Alert, Reason
from fsbrain.domains.host.audit import accounts, packages, privileges, services, sshd
from fsbrain.domains.host.audit.catalogue import SEVERITY_RANK, Check, Finding, load_catalogue
from fsbrain.domains.host.audit.hostfs import HostFS, printable

PENALTY = {"critical": 20, "high": 10, "medium": 5, "low": 2, "info": 0}
ALERT_SCORE = {"critical": 950, "high": 750, "medium": 500, "low": 250, "info": 50}


@dataclass(slots=True, kw_only=True)
class AuditReport:
    """Result of one audit.

    Args:
        root: the audited tree.
        host: host name read from the tree (``/etc/hostname``) or the root path.
        findings: every failed check, catalogue fields filled in, most severe first.
        checks_run: ids of the checks evaluated.
        notes: things the audit could not do (unreadable files, time limits), never silently dropped.
        score: 0-100, higher is better.
        duration_s: wall time.
    """

    root: str
    host: str
    findings: list[Finding] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    score: int = 100
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        by_sev = {s: 0 for s in SEVERITY_RANK}
        for f in self.findings:
            by_sev[f.severity or "info"] += 1
        return {"root": self.root, "host": self.host, "score": self.score,
                "summary": {"findings": len(self.findings), "by_severity": by_sev,
                            "checks_run": len(self.checks_run)},
                "findings": [f.to_dict() for f in self.findings], "notes": list(self.notes),
                "duration_s": round(self.duration_s, 3)}

    def to_alerts(self) -> list[Alert]:
        """One fsbrain Alert per finding (labels baseline / unauthorized_access / vulnerable_component)."""
        cat = load_catalogue()
        out = []
        for f in self.findings:
            check = cat[f.check_id]
            sev = f.severity or check.severity
            out.append(Alert(
                source="host.audit", labels=[check.label], severity=SEVERITY_RANK[sev],
                score=ALERT_SCORE[sev], title=f.title or check.title, entity_type="host", entity=self.host,
                reasons=[Reason(source="detector", id=f.check_id, label=check.label, feature=f.file,
                                value=f.value, message=f.detail)],
                action="review", details={"evidence": {"file": f.file, "line": f.line, "value": f.value},
                                          "remedy": f.remedy, "category": check.category}))
        return out


def score(findings: Iterable[Finding]) -> int:
    """Host score 0-100 from findings with severities filled in."""
    per_check: dict[str, int] = {}
    cap: dict[str, int] = {}
    for f in findings:
        w = PENALTY[f.severity or "info"]
        cap[f.check_id] = max(cap.get(f.check_id, 0), 2 * w)
        per_check[f.check_id] = min(per_check.get(f.check_id, 0) + w, cap[f.check_id])
    return max(0, 100 - sum(per_check.values()))


def _select(cat: dict[str, Check], wanted: Iterable[str] | None) -> list[str]:
    if not wanted:
        return list(cat)
    out: list[str] = []
    for w in wanted:
        w = w.strip().upper()
        if not w:
            continue
        hits = [cid for cid in cat if cid == w or cid.startswith(w.rstrip("*") + ("" if w.endswith("*") else "-"))
                or cat[cid].category.upper() == w]
        if not hits:
            raise InputError(f"unknown check {w!r}: use an id like FSB-SSH-001, a prefix like FSB-SSH, "
                             "or a category (accounts, sshd, privileges, files, cron, services, packages)")
        out += [h for h in hits if h not in out]
    return out


def run_audit(root: str | Path = "/", *, checks: Iterable[str] | None = None,
              advisories: str | Path | None = None, weak_passwords: str | Path | None = None,
              password_budget_s: float = 60.0, max_walk: int = privileges.MAX_WALK) -> AuditReport:
    """Audit the tree at ``root``.

    Args:
        root: directory holding the host's file system.
        checks: ids, id prefixes (``FSB-SSH``) or categories to run; all when empty.
        advisories: advisory file for FSB-PKG-001 (the check is skipped, with a note, without one).
        weak_passwords: weak-password list (the shipped list when None).
        password_budget_s: time box for trying weak passwords.
        max_walk: most directory entries visited per walked location.

    Raises:
        InputError: root is not a directory, unknown check, unreadable list.
        PolicyError: invalid advisory file.
    """
    t0 = time.perf_counter()
    fs = HostFS(root)
    cat = load_catalogue()
    selected = set(_select(cat, checks))
    advs = packages.load_advisories(advisories) if advisories else None
    weak = accounts.load_weak_passwords(weak_passwords) if "FSB-ACC-002" in selected else []

    def want(*ids: str) -> bool:
        return any(i in selected for i in ids)

    steps: list[tuple[tuple[str, ...], Callable[[], list[Finding]]]] = [
        (("FSB-ACC-003", "FSB-ACC-004", "FSB-ACC-005", "FSB-ACC-006", "FSB-ACC-007", "FSB-ACC-009"),
         lambda: accounts.check_accounts(fs)),
        (("FSB-ACC-010",), lambda: accounts.check_shadow_modes(fs)),
        (("FSB-ACC-001", "FSB-ACC-002", "FSB-ACC-008"),
         lambda: accounts.check_passwords(fs, weak, budget_s=password_budget_s)),
        (tuple(c for c in cat if c.startswith("FSB-SSH")), lambda: sshd.check_sshd(fs)),
        (("FSB-PRV-001", "FSB-PRV-002"), lambda: privileges.check_sudoers(fs)),
        (("FSB-FS-001", "FSB-FS-002"), lambda: privileges.check_file_modes(fs, max_entries=max_walk)),
        (("FSB-CRN-001", "FSB-CRN-002"), lambda: privileges.check_cron(fs)),
        (tuple(c for c in cat if c.startswith("FSB-SVC")), lambda: services.check_services(fs)),
    ]
    raw: list[Finding] = []
    for ids, fn in steps:
        if want(*ids):
            raw += fn()
    if "FSB-PKG-001" in selected:
        if advs is None:
            fs.notes.append("FSB-PKG-001 skipped: no advisory file given (--advisories FILE)")
            selected.discard("FSB-PKG-001")
        else:
            raw += packages.check_packages(fs, advs)
    findings = []
    for f in raw:
        if f.check_id not in selected:
            continue
        c = cat[f.check_id]
        findings.append(replace(f, severity=f.severity or c.severity, title=f.title or c.title,
                                remedy=f.remedy or c.remedy, file=printable(f.file), value=printable(f.value),
                                detail=printable(f.detail)))
    findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity or "info"], f.check_id, f.file or "", f.line or 0))
    host = (fs.read_text("/etc/hostname") or "").strip().splitlines()[:1]
    return AuditReport(root=fs.root, host=host[0] if host else os.path.basename(fs.root) or "/",
                       findings=findings, checks_run=sorted(selected), notes=[printable(n) or "" for n in dict.fromkeys(fs.notes)],
                       score=score(findings), duration_s=time.perf_counter() - t0)
