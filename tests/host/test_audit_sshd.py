"""sshd_config checks: first value wins, Include globs, Match blocks, weak algorithms, defaults."""

from __future__ import annotations

from pathlib import Path

from fsbrain.domains.host.audit import run_audit


def write(root: Path, path: str, text: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def findings(root: Path, check: str | None = None):
    r = run_audit(root, checks=["sshd"])
    return [f for f in r.findings if check is None or f.check_id == check]


def test_hardened_config_has_no_findings(tmp_path):
    write(tmp_path, "/etc/ssh/sshd_config",
          "PermitRootLogin no\nPasswordAuthentication no\nPermitEmptyPasswords no\n"
          "Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com\nMACs hmac-sha2-512-etm@openssh.com\n"
          "KexAlgorithms curve25519-sha256\n")
    assert findings(tmp_path) == []


def test_no_sshd_config_means_no_ssh_findings(tmp_path):
    (tmp_path / "etc").mkdir()
    assert findings(tmp_path) == []


def test_defaults_apply_when_unset(tmp_path):
    write(tmp_path, "/etc/ssh/sshd_config", "# empty config\nPort 22\n")
    got = findings(tmp_path)
    assert [f.check_id for f in got] == ["FSB-SSH-002"]  # OpenSSH default PasswordAuthentication yes
    assert "default" in (got[0].detail or "")


def test_weak_settings_each_reported_with_line(tmp_path):
    write(tmp_path, "/etc/ssh/sshd_config",
          "PermitRootLogin yes\nPasswordAuthentication yes\nPermitEmptyPasswords yes\nProtocol 2,1\n"
          "Ciphers aes256-ctr,aes128-cbc,3des-cbc\nMACs hmac-sha2-256,hmac-md5\n"
          "KexAlgorithms=curve25519-sha256,diffie-hellman-group1-sha1\n")
    got = {f.check_id: f for f in findings(tmp_path)}
    assert set(got) == {f"FSB-SSH-00{i}" for i in range(1, 8)}
    assert got["FSB-SSH-001"].line == 1
    assert got["FSB-SSH-005"].value == "aes128-cbc,3des-cbc"
    assert got["FSB-SSH-006"].value == "hmac-md5"
    assert got["FSB-SSH-007"].value == "diffie-hellman-group1-sha1" and got["FSB-SSH-007"].line == 7


def test_first_value_wins_and_include_glob_order(tmp_path):
    # Debian's layout: the Include at the top wins over later lines of the main file
    write(tmp_path, "/etc/ssh/sshd_config",
          "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\nPermitRootLogin yes\n")
    write(tmp_path, "/etc/ssh/sshd_config.d/10-hardening.conf", "passwordauthentication no\n")
    write(tmp_path, "/etc/ssh/sshd_config.d/20-late.conf", "PasswordAuthentication yes\n")
    write(tmp_path, "/etc/ssh/sshd_config.d/ignored.txt", "PermitRootLogin no\n")
    got = findings(tmp_path)
    assert [f.check_id for f in got] == ["FSB-SSH-001"]
    assert got[0].file == "/etc/ssh/sshd_config" and got[0].line == 3


def test_relative_include_and_include_loop(tmp_path):
    write(tmp_path, "/etc/ssh/sshd_config", "Include extra.conf\nPasswordAuthentication no\n")
    write(tmp_path, "/etc/ssh/extra.conf", "Include extra.conf\nPermitEmptyPasswords yes\n")
    r = run_audit(tmp_path, checks=["sshd"])
    assert [f.check_id for f in r.findings] == ["FSB-SSH-003"]
    assert r.findings[0].file == "/etc/ssh/extra.conf"
    assert any("Include nesting" in n for n in r.notes)


def test_match_block_weakness_reported_without_changing_global(tmp_path):
    write(tmp_path, "/etc/ssh/sshd_config",
          "PermitRootLogin no\nPasswordAuthentication no\n"
          "Match Address 10.0.0.0/8\n  PasswordAuthentication yes\n  PermitRootLogin yes\n"
          "Match all\nCiphers aes256-ctr\n")
    got = findings(tmp_path)
    assert sorted(f.check_id for f in got) == ["FSB-SSH-001", "FSB-SSH-002"]
    assert all(f.detail == "in Match Address 10.0.0.0/8" for f in got)


def test_algorithm_list_prefixes(tmp_path):
    write(tmp_path, "/etc/ssh/sshd_config", "PasswordAuthentication no\nCiphers -aes128-cbc,3des-cbc\n"
          "MACs +hmac-sha1\nKexAlgorithms ^diffie-hellman-group14-sha1\n")
    got = {f.check_id: f.value for f in findings(tmp_path)}
    assert got == {"FSB-SSH-006": "hmac-sha1", "FSB-SSH-007": "diffie-hellman-group14-sha1"}


def test_absolute_symlink_inside_tree_is_resolved_in_tree(tmp_path):
    write(tmp_path, "/opt/ssh/real_config", "PermitRootLogin yes\nPasswordAuthentication no\n")
    (tmp_path / "etc" / "ssh").mkdir(parents=True)
    (tmp_path / "etc" / "ssh" / "sshd_config").symlink_to("/opt/ssh/real_config")  # absolute: inside the tree
    assert [f.check_id for f in findings(tmp_path)] == ["FSB-SSH-001"]
