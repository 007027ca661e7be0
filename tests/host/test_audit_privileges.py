"""sudoers, world-writable and SUID/SGID files, cron permissions on fake host trees."""

from __future__ import annotations

import os
from pathlib import Path

from fsbrain.domains.host.audit import run_audit


def write(root: Path, path: str, text: str = "", mode: int | None = None) -> Path:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    if mode is not None:
        os.chmod(p, mode)
    return p


def values(root: Path, check: str, selection: list[str] | None = None) -> list[tuple[str | None, str | None]]:
    r = run_audit(root, checks=selection or [check])
    return [(f.file, f.value) for f in r.findings if f.check_id == check]


def test_sudoers_nopasswd_all_main_file_and_includedir(tmp_path):
    write(tmp_path, "/etc/sudoers",
          "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n"
          "# deploy ALL=(ALL) NOPASSWD: ALL   (commented out)\n"
          "ops ALL=(ALL) NOPASSWD: /usr/bin/systemctl restart nginx\n"
          "@includedir /etc/sudoers.d\n", 0o440)
    write(tmp_path, "/etc/sudoers.d/90-cloud", "ubuntu ALL=(ALL) \\\n    NOPASSWD:ALL\n", 0o440)
    write(tmp_path, "/etc/sudoers.d/README.txt", "x ALL=(ALL) NOPASSWD: ALL\n", 0o440)  # '.' -> ignored by sudo
    write(tmp_path, "/etc/sudoers.d/backup~", "y ALL=(ALL) NOPASSWD: ALL\n", 0o440)   # '~' -> ignored by sudo
    got = values(tmp_path, "FSB-PRV-001", ["privileges"])
    assert got == [("/etc/sudoers.d/90-cloud", "ubuntu ALL=(ALL) NOPASSWD:ALL")]
    r = run_audit(tmp_path, checks=["FSB-PRV-001"])
    assert r.findings[0].line == 1


def test_sudoers_defaults_not_authenticate_and_setenv_tag(tmp_path):
    write(tmp_path, "/etc/sudoers", "Defaults !authenticate\nadm ALL=(ALL) NOPASSWD: SETENV: ALL\n", 0o440)
    assert [v for _, v in values(tmp_path, "FSB-PRV-001")] == ["Defaults !authenticate",
                                                               "adm ALL=(ALL) NOPASSWD: SETENV: ALL"]


def test_sudoers_writable_by_others(tmp_path):
    write(tmp_path, "/etc/sudoers", "root ALL=(ALL) ALL\n#includedir /etc/sudoers.d\n", 0o440)
    write(tmp_path, "/etc/sudoers.d/app", "app ALL=(ALL) /bin/true\n", 0o666)
    assert values(tmp_path, "FSB-PRV-002") == [("/etc/sudoers.d/app", "0o666")]


def test_world_writable_files_and_directories(tmp_path):
    write(tmp_path, "/etc/app.conf", "x", 0o666)
    write(tmp_path, "/etc/ok.conf", "x", 0o644)
    write(tmp_path, "/usr/bin/tool", "x", 0o777)
    (tmp_path / "etc" / "shared").mkdir()
    os.chmod(tmp_path / "etc" / "shared", 0o1777)  # sticky: fine
    (tmp_path / "etc" / "open").mkdir()
    os.chmod(tmp_path / "etc" / "open", 0o777)
    os.symlink("/etc/ok.conf", tmp_path / "etc" / "link")  # links are always 0777: ignored
    got = sorted(values(tmp_path, "FSB-FS-001"))
    assert got == [("/etc/app.conf", "-rw-rw-rw-"), ("/etc/open", "drwxrwxrwx"), ("/usr/bin/tool", "-rwxrwxrwx")]


def test_suid_sgid_against_known_good_list(tmp_path):
    write(tmp_path, "/usr/bin/passwd", "x", 0o4755)
    write(tmp_path, "/bin/su", "x", 0o4755)          # folded onto /usr/bin/su: known good
    write(tmp_path, "/usr/bin/crontab", "x", 0o2755)
    write(tmp_path, "/usr/local/bin/rootme", "x", 0o4755)
    write(tmp_path, "/tmp/.x", "x", 0o2755)
    write(tmp_path, "/usr/bin/find", "x", 0o4755)     # classic GTFOBins privilege escalation
    got = sorted(f for f, _ in values(tmp_path, "FSB-FS-002"))
    assert got == ["/tmp/.x", "/usr/bin/find", "/usr/local/bin/rootme"]


def test_cron_permissions_and_writable_programs(tmp_path):
    write(tmp_path, "/etc/crontab", "SHELL=/bin/sh\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n"
          "0 3 * * * root /opt/backup.sh --all\n30 2 * * * root /usr/local/bin/safe.sh\n", 0o644)
    write(tmp_path, "/opt/backup.sh", "#!/bin/sh\n", 0o777)
    write(tmp_path, "/usr/local/bin/safe.sh", "#!/bin/sh\n", 0o755)
    write(tmp_path, "/etc/cron.d/job", "@reboot root /bin/sh /opt/boot.sh\n", 0o666)
    write(tmp_path, "/opt/boot.sh", "#!/bin/sh\n", 0o775)
    write(tmp_path, "/etc/cron.daily/logrotate", "#!/bin/sh\n", 0o755)
    crontabs = tmp_path / "var/spool/cron/crontabs"
    write(tmp_path, "/var/spool/cron/crontabs/alice", "*/5 * * * * /home/alice/miner.sh\n", 0o600)
    write(tmp_path, "/home/alice/miner.sh", "#!/bin/sh\n", 0o757)
    os.chmod(crontabs, 0o1730)  # Debian's mode: group crontab may write, sticky -> fine
    r = run_audit(tmp_path, checks=["cron"])
    crn1 = sorted((f.file, f.value) for f in r.findings if f.check_id == "FSB-CRN-001")
    crn2 = sorted((f.file, f.line, f.value) for f in r.findings if f.check_id == "FSB-CRN-002")
    assert crn1 == [("/etc/cron.d/job", "-rw-rw-rw-")]
    assert crn2 == [("/etc/cron.d/job", 1, "/opt/boot.sh"), ("/etc/crontab", 3, "/opt/backup.sh"),
                    ("/var/spool/cron/crontabs/alice", 1, "/home/alice/miner.sh")]


def test_cron_directory_writable_by_others(tmp_path):
    (tmp_path / "etc" / "cron.d").mkdir(parents=True)
    os.chmod(tmp_path / "etc" / "cron.d", 0o777)
    assert values(tmp_path, "FSB-CRN-001") == [("/etc/cron.d", "drwxrwxrwx")]


def test_hostile_file_names_in_findings_are_printable(tmp_path):
    etc = os.path.join(os.fsencode(tmp_path), b"etc")
    os.makedirs(etc)
    for name in (b"bad\xffname", b"new\nline"):
        p = os.path.join(etc, name)
        with open(p, "wb") as fh:
            fh.write(b"x")
        os.chmod(p, 0o666)
    r = run_audit(tmp_path, checks=["FSB-FS-001"])
    assert sorted(f.file for f in r.findings) == ["/etc/bad\\xffname", "/etc/new\\nline"]
    import json

    json.dumps(r.to_dict(), ensure_ascii=False).encode("utf-8")  # no lone surrogates left
