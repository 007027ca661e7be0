"""The baseline check catalogue (data) and the finding shape every check emits.

The catalogue lives in ``fsbrain/domains/host/data/audit_checks.yaml``: id, category, title, severity,
risk label and remedy for each check. Code that evaluates checks only refers to ids, so titles and remedies
can change without touching code.

>>> cat = load_catalogue()
>>> cat["FSB-SSH-001"].severity
'high'
>>> Finding(check_id="FSB-SSH-001", file="/etc/ssh/sshd_config", line=3, value="yes").to_dict()["evidence"]["line"]
3
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fsbrain.core.errors import PolicyError
from fsbrain.core.labels import is_label

SEVERITY_RANK = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
CATEGORIES = ("accounts", "sshd", "privileges", "files", "cron", "services", "packages")
_ID_RE = re.compile(r"^FSB-[A-Z]{2,4}-\d{3}$")
CATALOGUE_FORMAT = "fsbrain-audit-checks/1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One entry of the catalogue.

    Args:
        id: stable identifier such as ``FSB-ACC-001``.
        category: one of :data:`CATEGORIES`; selects the module that evaluates it.
        title: one-line description of the weakness.
        severity: ``info`` .. ``critical``.
        label: fsbrain risk label for alerts (``baseline``, ``unauthorized_access``, ``vulnerable_component``).
        remedy: how to fix it.
    """

    id: str
    category: str
    title: str
    severity: str
    label: str
    remedy: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One failed check on one object.

    Args:
        check_id: the catalogue id.
        file: host path of the evidence (as seen on the audited host, e.g. ``/etc/shadow``).
        line: 1-based line number in ``file`` where known.
        value: the offending value (a setting, an account name, a mode); never a password hash.
        detail: extra explanation for this occurrence.
        severity: overrides the catalogue severity (advisories carry their own).
        title: overrides the catalogue title (advisories carry their own).
        remedy: overrides the catalogue remedy.
    """

    check_id: str
    file: str | None = None
    line: int | None = None
    value: str | None = None
    detail: str | None = None
    severity: str | None = None
    title: str | None = None
    remedy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "severity": self.severity,
            "title": self.title,
            "evidence": {"file": self.file, "line": self.line, "value": self.value},
            "detail": self.detail,
            "remedy": self.remedy,
        }


def _problem(problems: list[dict[str, Any]], where: str, message: str) -> None:
    problems.append({"path": where, "message": message, "severity": "error", "line": None})


def parse_catalogue(data: Any, *, source: str = "<catalogue>") -> dict[str, Check]:
    """Validate a parsed catalogue document and return its checks by id.

    Raises:
        PolicyError: listing every problem found, not only the first.
    """
    problems: list[dict[str, Any]] = []
    if not isinstance(data, dict) or data.get("format") != CATALOGUE_FORMAT:
        raise PolicyError(f"not a check catalogue (expected format: {CATALOGUE_FORMAT})", source=source)
    entries = data.get("checks")
    if not isinstance(entries, list):
        raise PolicyError("'checks' must be a list", source=source)
    out: dict[str, Check] = {}
    fields = ("id", "category", "title", "severity", "label", "remedy")
    for i, entry in enumerate(entries):
        where = f"checks[{i}]"
        if not isinstance(entry, dict):
            _problem(problems, where, "must be a mapping")
            continue
        missing = [f for f in fields if not isinstance(entry.get(f), str) or not entry.get(f)]
        extra = sorted(set(entry) - set(fields))
        if missing or extra:
            _problem(problems, where, f"missing {missing} / unknown {extra}")
            continue
        if not _ID_RE.match(entry["id"]):
            _problem(problems, where, f"bad id {entry['id']!r}")
        if entry["id"] in out:
            _problem(problems, where, f"duplicate id {entry['id']}")
        if entry["category"] not in CATEGORIES:
            _problem(problems, where, f"unknown category {entry['category']!r}")
        if entry["severity"] not in SEVERITY_RANK:
            _problem(problems, where, f"unknown severity {entry['severity']!r}")
        if not is_label(entry["label"]):
            _problem(problems, where, f"unknown risk label {entry['label']!r}")
        out[entry["id"]] = Check(**{f: entry[f] for f in fields})
    if problems:
        raise PolicyError(f"{len(problems)} problem(s): {problems[0]['path']}: {problems[0]['message']}",
                          source=source, problems=problems)
    return out


_CACHE: dict[str, dict[str, Check]] = {}


def load_catalogue(path: str | Path | None = None) -> dict[str, Check]:
    """Load the shipped catalogue (or the one at ``path``), validated."""
    key = str(path) if path else "<builtin>"
    if key in _CACHE:
        return _CACHE[key]
    if path is None:
        text = (resources.files("fsbrain.domains.host") / "data" / "audit_checks.yaml").read_text("utf-8")
        source = "audit_checks.yaml"
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read check catalogue: {exc.strerror}", source=source) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid YAML: {exc}", source=source) from exc
    _CACHE[key] = parse_catalogue(data, source=source)
    return _CACHE[key]
