"""Conformance: every annotated line of fail2ban's sample logs, through fsbrain's own filters.

For each supported filter, each ``# failJSON`` line must be matched or not matched as annotated, with the
annotated host, time and user. ``EXCEPTIONS`` lists (sample, reason) pairs that are allowed to differ; it
is empty, and docs/host-bruteforce.md reports the same table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fsbrain.domains.host.fail2ban import SHIPPED_DIR
from fsbrain.domains.host.fail2ban_samples import SAMPLE_TO_FILTER, run_sample

pytestmark = pytest.mark.conformance

# fail2ban sample file -> covered by fsbrain's filter of the same name (sshd-journal: sshd, logtype journal)
SUPPORTED = ["sshd", "sshd-journal", "pam-generic", "vsftpd", "proftpd", "pure-ftpd", "postfix", "dovecot",
             "nginx-http-auth", "apache-auth", "mysqld-auth", "mongodb-auth", "dropbear", "courier-auth",
             "cyrus-imap", "sieve", "sogo-auth", "webmin-auth", "gitlab", "grafana", "haproxy-http-auth",
             "lighttpd-auth", "traefik-auth", "mssql-auth", "phpmyadmin-syslog", "drupal-auth", "bitwarden",
             "uwimap-auth", "solid-pop3d", "wuftpd", "selinux-ssh", "recidive"]
OWN_SAMPLES = ["postgres-auth", "redis-auth", "windows-4625"]
EXCEPTIONS: dict[str, str] = {}


@pytest.mark.parametrize("sample", SUPPORTED)
def test_fail2ban_sample(shared_data, sample):
    path = shared_data("fail2ban-logs") / sample
    rep = run_sample(path)
    assert rep.checks > 0
    if sample in EXCEPTIONS:
        pytest.xfail(EXCEPTIONS[sample])
    assert rep.all_ok, "\n".join(rep.failures)
    assert rep.host_checks > 0


@pytest.mark.parametrize("sample", OWN_SAMPLES)
def test_own_sample(sample):
    rep = run_sample(SHIPPED_DIR / "samples" / f"{sample}.txt")
    assert rep.checks >= 5
    assert rep.all_ok, "\n".join(rep.failures)


def test_every_shipped_filter_has_samples():
    names = {p.stem for p in SHIPPED_DIR.glob("*.conf")} - {"common"}
    covered = set(SUPPORTED) | set(OWN_SAMPLES)
    assert names <= covered, f"filters without a conformance sample: {sorted(names - covered)}"


DEBIAN_FILTERS = Path("/etc/fail2ban/filter.d")


# fail2ban's own filters through fsbrain's loader: every sample must pass except these
DEBIAN_EXCEPTIONS = {
    "monit": "dates that start with a zone abbreviation ([PDT Apr 16 21:05:29]) are not recognised",
}


@pytest.mark.skipif(not (DEBIAN_FILTERS / "sshd.conf").exists(), reason="Debian's fail2ban is not installed")
def test_debian_filters_load_as_they_are(shared_data):
    """fail2ban's own filter files (prefregex, mlfid, conditionals via the bounded fallback) pass too."""
    logs = shared_data("fail2ban-logs")
    failed = {}
    checked = 0
    for sample in sorted(p.name for p in logs.iterdir() if p.is_file()):
        name = SAMPLE_TO_FILTER.get(sample, sample)
        if not (DEBIAN_FILTERS / f"{name}.conf").exists():
            continue
        rep = run_sample(logs / sample, filter_dirs=[DEBIAN_FILTERS])
        checked += 1
        if not rep.all_ok:
            failed[sample] = rep.failures[:3]
    assert checked >= 85
    assert set(failed) == set(DEBIAN_EXCEPTIONS), failed
