"""Host security: brute-force detection, security baseline audit, trojan and webshell scanning.

Brute force (暴力破解): fail2ban-format filters (:func:`load_filter`, :class:`LogFilter`), jails
(:class:`JailsConfig`), the detector (:class:`BruteForceDetector`), the ban list (:class:`BanList`),
firewall commands (:func:`firewall_commands`), file scanning and following (:func:`scan_files`,
:class:`FileFollower`).
"""

from fsbrain.domains.host.bans import Ban, BanList
from fsbrain.domains.host.bruteforce import AllowList, AuthEvent, BruteForceDetector
from fsbrain.domains.host.fail2ban import FilterDefinition, load_filter, shipped_filters
from fsbrain.domains.host.firewall import firewall_commands
from fsbrain.domains.host.follow import FileFollower
from fsbrain.domains.host.jails import JailConfig, JailsConfig
from fsbrain.domains.host.logparse import LineResult, LogFilter
from fsbrain.domains.host.logparse_scan import ScanReport, make_filter, scan_files

__all__ = [
    "AllowList",
    "AuthEvent",
    "Ban",
    "BanList",
    "BruteForceDetector",
    "FileFollower",
    "FilterDefinition",
    "JailConfig",
    "JailsConfig",
    "LineResult",
    "LogFilter",
    "ScanReport",
    "firewall_commands",
    "load_filter",
    "make_filter",
    "scan_files",
    "shipped_filters",
]
