"""Account checks on fake host trees: empty, weak and obsolete password hashes, UID 0, hidden accounts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsbrain.core.errors import InputError
from fsbrain.domains.host.audit import pwhash, run_audit
from fsbrain.domains.host.audit.accounts import load_weak_passwords

pytestmark = pytest.mark.skipif(not pwhash.available(), reason="libxcrypt (libcrypt.so.1) not installed")

BASE_PASSWD = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


def write(root: Path, path: str, text: str, mode: int | None = None) -> Path:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    if mode is not None:
        os.chmod(p, mode)
    return p


def host(tmp_path: Path, passwd: str, shadow: str = "") -> Path:
    (tmp_path / "root").mkdir(exist_ok=True)
    (tmp_path / "home" / "alice").mkdir(parents=True, exist_ok=True)
    write(tmp_path, "/etc/passwd", passwd)
    write(tmp_path, "/etc/shadow", shadow, 0o640)
    return tmp_path


def ids(report, check: str) -> list[str | None]:
    return [f.value for f in report.findings if f.check_id == check]


SCHEMES = ["$y$", "$6$", "$5$", "$1$", "$2b$", "$2y$", ""]


@pytest.mark.parametrize("prefix", SCHEMES)
def test_weak_password_found_for_every_crypt_scheme(tmp_path, prefix):
    if prefix == "$2y$":
        setting = pwhash.gensalt("$2b$").replace("$2b$", "$2y$", 1)
    else:
        setting = pwhash.gensalt(prefix)
    weak_hash = pwhash.crypt_hash("woaini", setting)
    strong_hash = pwhash.crypt_hash("Vq7#pL2!zR9x-unlisted", pwhash.gensalt(prefix) if prefix != "$2y$" else setting)
    assert weak_hash and strong_hash
    root = host(tmp_path, BASE_PASSWD + "alice:x:1000:1000::/home/alice:/bin/bash\n"
                "bob:x:1001:1001::/home/alice:/bin/bash\n",
                f"root:*:19000:0:99999:7:::\nalice:{weak_hash}:19000:0:99999:7:::\n"
                f"bob:{strong_hash}:19000:0:99999:7:::\n")
    short = write(tmp_path, "/short-list.txt", "123456\nqwerty\nwoaini\nadmin@123\n")
    r = run_audit(root, checks=["accounts"], weak_passwords=short)
    assert ids(r, "FSB-ACC-002") == ["alice"]
    f = next(f for f in r.findings if f.check_id == "FSB-ACC-002")
    assert f.file == "/etc/shadow" and f.line == 2
    assert weak_hash not in repr(r.to_dict()), "a hash must never appear in evidence"
    obsolete = ids(r, "FSB-ACC-008")
    assert obsolete == (["alice", "bob"] if prefix in ("$1$", "") else [])


def test_empty_locked_and_username_passwords(tmp_path):
    same_as_name = pwhash.crypt_hash("carol123", pwhash.gensalt("$6$"))
    root = host(tmp_path, BASE_PASSWD + "alice:x:1000:1000::/home/alice:/bin/bash\n"
                "carol:x:1002:1002::/home/alice:/bin/bash\nlocked:x:1003:1003::/home/alice:/bin/bash\n",
                "root:!:19000::::::\nalice::19000::::::\ncarol:" + same_as_name + ":19000::::::\n"
                "locked:!" + same_as_name + ":19000::::::\n")
    r = run_audit(root, checks=["FSB-ACC-001", "FSB-ACC-002"])
    assert ids(r, "FSB-ACC-001") == ["alice"]
    assert ids(r, "FSB-ACC-002") == ["carol"]  # name+123 is tried; the locked copy is not reported


def test_custom_weak_password_list_and_bad_list(tmp_path):
    h = pwhash.crypt_hash("correct horse battery", pwhash.gensalt("$6$"))
    root = host(tmp_path, BASE_PASSWD + "alice:x:1000:1000::/home/alice:/bin/bash\n",
                f"alice:{h}:19000::::::\n")
    assert ids(run_audit(root, checks=["FSB-ACC-002"]), "FSB-ACC-002") == []
    lst = write(tmp_path, "/list.txt", "# mine\ncorrect horse battery\n")
    assert ids(run_audit(root, checks=["FSB-ACC-002"], weak_passwords=lst), "FSB-ACC-002") == ["alice"]
    empty = write(tmp_path, "/empty.txt", "# nothing\n")
    with pytest.raises(InputError, match="empty"):
        run_audit(root, checks=["FSB-ACC-002"], weak_passwords=empty)
    with pytest.raises(InputError, match="cannot read"):
        load_weak_passwords(tmp_path / "missing.txt")


def test_shipped_list_has_common_chinese_passwords():
    weak = load_weak_passwords()
    for pw in ("123456", "woaini", "qwerty", "admin@123", "5201314", "password"):
        assert pw in weak
    assert weak[0] == "123456"


def test_password_budget_exhaustion_is_noted_and_empty_passwords_still_found(tmp_path):
    h = pwhash.crypt_hash("not-in-any-list-xyz", pwhash.gensalt("$y$"))
    root = host(tmp_path, BASE_PASSWD + "alice:x:1000:1000::/home/alice:/bin/bash\n"
                "zed:x:1001:1001::/home/alice:/bin/bash\n", f"alice:{h}:1::::::\nzed::1::::::\n")
    r = run_audit(root, checks=["accounts"], password_budget_s=0.0)
    assert any("weak-password check stopped" in n for n in r.notes)
    assert ids(r, "FSB-ACC-001") == ["zed"]


def test_uid0_duplicates_hidden_system_and_odd_accounts(tmp_path):
    passwd = (BASE_PASSWD
              + "toor:x:0:0::/root:/bin/sh\n"                       # UID 0 not root
              + "alice:x:1000:1000::/home/alice:/bin/bash\n"
              + "alice2:x:1000:1000::/home/alice:/bin/bash\n"       # shared UID
              + "ghost:x:1005:1005::/home/ghost:/bin/bash\n"        # login shell, no home
              + "svc:x:998:998::/nonexistent:/usr/sbin/nologin\n"   # fine: no login shell
              + "backup:x:34:34::/root:/bin/bash\n"                 # system account with a shell
              + "ad\u200bmin:x:1006:1006::/home/alice:/bin/bash\n"  # zero-width space in the name
              + "legacy:$1$abc$0123456789abcdefghijkl:1007:1007::/home/alice:/bin/sh\n")  # hash in passwd
    root = host(tmp_path, passwd)
    r = run_audit(root, checks=["accounts"])
    assert ids(r, "FSB-ACC-003") == ["toor"]
    assert ids(r, "FSB-ACC-004") == ["alice,alice2"]
    assert ids(r, "FSB-ACC-005") == ["ghost"]
    assert ids(r, "FSB-ACC-006") == ["backup"]
    assert ids(r, "FSB-ACC-007") == [ascii("ad\u200bmin")]
    assert ids(r, "FSB-ACC-009") == ["legacy"]


def test_uid_min_from_login_defs_and_clean_host(tmp_path):
    root = host(tmp_path, BASE_PASSWD + "alice:x:600:600::/home/alice:/bin/bash\n")
    assert ids(run_audit(root, checks=["FSB-ACC-006"]), "FSB-ACC-006") == ["alice"]
    write(tmp_path, "/etc/login.defs", "# defs\nUID_MIN 500\n")
    r = run_audit(root, checks=["accounts"], password_budget_s=5)
    assert r.findings == [] and r.score == 100


def test_malformed_lines_are_noted_not_fatal(tmp_path):
    root = host(tmp_path, BASE_PASSWD + "broken line without fields\n\x00\xff:x\n")
    r = run_audit(root, checks=["accounts"])
    assert any("malformed" in n for n in r.notes)


@pytest.mark.parametrize(("mode", "hit"), [(0o640, False), (0o600, False), (0o000, False), (0o644, True),
                                           (0o660, True), (0o642, True)])
def test_shadow_file_permissions(tmp_path, mode, hit):
    root = host(tmp_path, BASE_PASSWD, "root:!:1::::::\n")
    os.chmod(root / "etc" / "shadow", mode)
    assert bool(ids(run_audit(root, checks=["FSB-ACC-010"]), "FSB-ACC-010")) is hit
