"""The audit as a whole: every catalogue check fires on a badly configured host, score, alerts, CLI."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fsbrain.core.errors import InputError, PolicyError
from fsbrain.core.labels import is_label
from fsbrain.domains.host.audit import Finding, load_catalogue, pwhash, run_audit, score
from fsbrain.domains.host.audit.catalogue import parse_catalogue


def write(root: Path, path: str, text: str = "", mode: int | None = None) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    if mode is not None:
        os.chmod(p, mode)


def bad_host(root: Path) -> Path:
    """A host that fails every check in the catalogue."""
    weak = pwhash.crypt_hash("admin@123", "$1$fsbrain$")
    write(root, "/etc/hostname", "bad-host\n")
    write(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\n"
          "alice:x:1000:1000::/home/alice:/bin/bash\nalias:x:1000:1000::/home/alice:/bin/bash\n"
          "ghost:x:1001:1001::/nope:/bin/bash\nbackup:x:34:34::/root:/bin/sh\nbad name:x:1002:1002::/root:/bin/sh\n"
          "old:$1$ab$cdefghijklmnopqrstuvwx:1003:1003::/root:/usr/sbin/nologin\n")
    write(root, "/etc/shadow", f"root::1::::::\nalice:{weak}:1::::::\n", 0o644)
    (root / "root").mkdir()
    (root / "home" / "alice").mkdir(parents=True)
    write(root, "/etc/ssh/sshd_config", "PermitRootLogin yes\nPermitEmptyPasswords yes\nProtocol 1\n"
          "Ciphers arcfour\nMACs hmac-md5\nKexAlgorithms diffie-hellman-group1-sha1\n")
    write(root, "/etc/sudoers", "deploy ALL=(ALL) NOPASSWD: ALL\n", 0o666)
    write(root, "/usr/local/bin/backdoor", "x", 0o4777)
    write(root, "/etc/crontab", "* * * * * root /opt/job.sh\n", 0o666)
    write(root, "/opt/job.sh", "#!/bin/sh\n", 0o777)
    write(root, "/etc/redis/redis.conf", "bind 0.0.0.0\n")
    write(root, "/etc/mongod.conf", "net:\n  bindIp: 0.0.0.0\n")
    write(root, "/etc/memcached.conf", "-l 0.0.0.0\n")
    write(root, "/etc/elasticsearch/elasticsearch.yml", "network.host: 0.0.0.0\n")
    write(root, "/etc/mysql/my.cnf", "[mysqld]\nskip-grant-tables\nbind-address = 0.0.0.0\n")
    write(root, "/var/lib/pgsql/data/pg_hba.conf", "host all all 0.0.0.0/0 trust\n")
    write(root, "/var/lib/dpkg/status", "Package: sudo\nStatus: install ok installed\nVersion: 1.8.27-1\n")
    write(root, "/etc/os-release", "VERSION_CODENAME=buster\n")
    return root


def example_advisories() -> Path:
    return Path(str(resources.files("fsbrain.domains.host") / "data" / "advisories.example.yaml"))


def test_every_catalogue_check_fires_on_a_bad_host(tmp_path):
    r = run_audit(bad_host(tmp_path), advisories=example_advisories(), password_budget_s=30)
    fired = {f.check_id for f in r.findings}
    assert fired == set(load_catalogue()), f"never fired: {sorted(set(load_catalogue()) - fired)}"
    assert r.score == 0 and r.host == "bad-host"
    assert r.findings[0].severity == "critical"  # most severe first


def test_clean_host_scores_100_and_reports_json(tmp_path):
    write(tmp_path, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    write(tmp_path, "/etc/shadow", "root:!:1::::::\n", 0o640)
    (tmp_path / "root").mkdir()
    write(tmp_path, "/etc/ssh/sshd_config", "PasswordAuthentication no\n")
    r = run_audit(tmp_path, advisories=example_advisories())
    d = r.to_dict()
    assert d["score"] == 100 and d["findings"] == [] and d["summary"]["checks_run"] == len(load_catalogue())
    json.dumps(d)


def test_score_caps_repeats_per_check():
    crit = [Finding(check_id="FSB-ACC-001", severity="critical")] * 10
    assert score(crit) == 60  # capped at twice the weight of one finding
    assert score([Finding(check_id="FSB-SSH-002", severity="medium")]) == 95
    assert score([]) == 100


def test_alerts_carry_labels_reasons_and_evidence(tmp_path):
    r = run_audit(bad_host(tmp_path), checks=["FSB-SVC-001", "FSB-ACC-003"])
    alerts = r.to_alerts()
    assert {tuple(a.labels) for a in alerts} == {("unauthorized_access",), ("baseline",)}
    redis = next(a for a in alerts if a.labels == ["unauthorized_access"])
    assert redis.severity == 5 and redis.entity == "bad-host" and redis.source == "host.audit"
    assert redis.reasons[0].id == "FSB-SVC-001" and redis.details["evidence"]["file"] == "/etc/redis/redis.conf"


def test_check_selection(tmp_path):
    r = run_audit(bad_host(tmp_path), checks=["FSB-SSH", "FSB-PRV-001"])
    assert {f.check_id for f in r.findings} == {"FSB-SSH-001", "FSB-SSH-002", "FSB-SSH-003", "FSB-SSH-004",
                                                "FSB-SSH-005", "FSB-SSH-006", "FSB-SSH-007", "FSB-PRV-001"}
    with pytest.raises(InputError, match="unknown check 'FSB-NOPE-001'"):
        run_audit(tmp_path, checks=["FSB-NOPE-001"])
    with pytest.raises(InputError, match="not a directory"):
        run_audit(tmp_path / "missing")


def test_catalogue_is_valid_data_and_validation_collects_problems():
    cat = load_catalogue()
    assert all(is_label(c.label) and c.remedy for c in cat.values())
    with pytest.raises(PolicyError) as info:
        parse_catalogue({"format": "fsbrain-audit-checks/1", "checks": [
            {"id": "BAD", "category": "nope", "title": "t", "severity": "huge", "label": "nolabel", "remedy": "r"}]})
    assert len(info.value.problems) == 4


@pytest.fixture
def cli():
    from fsbrain.cli import _register, app

    _register()
    return lambda *args: CliRunner().invoke(app, list(args))


def test_cli_json_table_and_errors(cli, tmp_path):
    bad_host(tmp_path)
    res = cli("host", "audit", "--root", str(tmp_path), "--format", "json", "--checks", "services")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["score"] < 100 and {f["check_id"] for f in d["findings"]} >= {"FSB-SVC-001", "FSB-SVC-007"}
    res = cli("host", "audit", "--root", str(tmp_path), "--checks", "sshd", "--fail-under", "90")
    assert res.exit_code == 1 and "FSB-SSH-001" in res.stdout and "host score" in res.stdout
    res = cli("host", "audit", "--root", str(tmp_path), "--format", "json", "--alerts", "--checks", "FSB-SVC-003")
    assert [json.loads(line)["labels"] for line in res.stdout.splitlines()] == [["unauthorized_access"]]
    bad_adv = tmp_path / "adv.yaml"
    bad_adv.write_text("format: fsbrain-advisories/1\nadvisories: [{id: a, package: x, affected: [{fixed: '1 2'}]}]\n")
    res = cli("host", "audit", "--root", str(tmp_path), "--advisories", str(bad_adv))
    assert res.exit_code == 2 and "invalid Debian version" in res.output and "Traceback" not in res.output
    res = cli("host", "audit", "--root", str(tmp_path / "nope"))
    assert res.exit_code == 2 and "not a directory" in res.output
    res = cli("host", "audit", "--root", str(tmp_path), "--checks", "bogus")
    assert res.exit_code == 2 and "unknown check" in res.output


def test_public_names_of_the_audit_package():
    from fsbrain.domains.host import audit

    assert sorted(audit.__all__) == sorted([
        "CATEGORIES", "SEVERITY_RANK", "Advisory", "AuditReport", "Check", "Finding", "HostFS", "Version",
        "compare", "load_advisories", "load_catalogue", "run_audit", "score"])
    assert all(hasattr(audit, n) for n in audit.__all__)
