"""Security baseline audit (安全基线) of a Linux file tree: accounts, sshd, sudo, file modes, cron,
services without authentication and vulnerable package versions.

>>> from fsbrain.domains.host.audit import load_catalogue
>>> len(load_catalogue()) >= 30
True
"""

from fsbrain.domains.host.audit.catalogue import CATEGORIES, SEVERITY_RANK, Check, Finding, load_catalogue
from fsbrain.domains.host.audit.dpkgver import Version, compare
from fsbrain.domains.host.audit.hostfs import HostFS
from fsbrain.domains.host.audit.packages import Advisory, load_advisories
from fsbrain.domains.host.audit.runner import AuditReport, run_audit, score

__all__ = [
    "CATEGORIES",
    "SEVERITY_RANK",
    "Advisory",
    "AuditReport",
    "Check",
    "Finding",
    "HostFS",
    "Version",
    "compare",
    "load_advisories",
    "load_catalogue",
    "run_audit",
    "score",
]
