"""Account checks: empty and weak passwords, UID 0 and shared UIDs, hidden and odd accounts.

Reads ``/etc/passwd``, ``/etc/shadow`` and ``/etc/login.defs`` from the audited tree. Weak passwords are
found by hashing each candidate with the account's own salt and scheme through libxcrypt
(:mod:`.pwhash`); the search is time-boxed (``budget_s``) because yescrypt costs about 20 ms per try.
Evidence never contains a hash or a password, only the account name and the line.
"""

from __future__ import annotations

import re
import stat
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fsbrain.core.errors import InputError
from fsbrain.domains.host.audit import pwhash
from fsbrain.domains.host.audit.catalogue import Finding
from fsbrain.domains.host.audit.hostfs import HostFS

NOLOGIN_SHELLS = {
    "/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false", "/bin/sync", "/bin/true",
    "/usr/bin/true", "/sbin/shutdown", "/sbin/halt", "/usr/sbin/shutdown", "/usr/sbin/halt",
}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")


@dataclass(slots=True)
class PasswdEntry:
    name: str
    passwd: str
    uid: int
    home: str
    shell: str
    line: int


def load_weak_passwords(path: str | Path | None = None) -> list[str]:
    """The weak-password list: the shipped one, or ``path`` (one password a line, ``#`` comments)."""
    if path is None:
        text = (resources.files("fsbrain.domains.host") / "data" / "weak_passwords.txt").read_text("utf-8")
    else:
        try:
            text = Path(path).read_text("utf-8", errors="replace")
        except OSError as exc:
            raise InputError(f"cannot read weak-password list {path}: {exc.strerror}") from exc
    out: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        if not line or line.startswith("#") or line in seen:
            continue
        seen.add(line)
        out.append(line)
    if not out:
        raise InputError(f"weak-password list {path or '<builtin>'} is empty")
    return out


def read_passwd(fs: HostFS) -> list[PasswdEntry]:
    """Parse ``/etc/passwd``; malformed lines are noted and skipped."""
    out: list[PasswdEntry] = []
    for no, line in fs.lines("/etc/passwd"):
        if not line.strip() or line.startswith("#") or line[0] in "+-":
            continue
        f = line.split(":")
        if len(f) != 7 or not f[2].isdigit():
            fs.notes.append(f"/etc/passwd:{no}: malformed line skipped")
            continue
        out.append(PasswdEntry(f[0], f[1], int(f[2]), f[5], f[6], no))
    return out


def _uid_min(fs: HostFS) -> int:
    for _, line in fs.lines("/etc/login.defs"):
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "UID_MIN" and parts[1].isdigit():
            return int(parts[1])
    return 1000


def is_login_shell(shell: str) -> bool:
    """True unless the shell is one of the known no-login shells (an empty shell means /bin/sh)."""
    return shell.strip() not in NOLOGIN_SHELLS and not shell.strip().endswith("nologin")


def check_accounts(fs: HostFS) -> list[Finding]:
    """FSB-ACC-003..007 and 009 from ``/etc/passwd``."""
    users = read_passwd(fs)
    found: list[Finding] = []
    uid_min = _uid_min(fs)
    by_uid: dict[int, list[PasswdEntry]] = {}
    for u in users:
        by_uid.setdefault(u.uid, []).append(u)
        if u.uid == 0 and u.name != "root":
            found.append(Finding(check_id="FSB-ACC-003", file="/etc/passwd", line=u.line, value=u.name,
                                 detail=f"account {u.name!r} has UID 0 (full root privileges)"))
        login = is_login_shell(u.shell)
        if login and (not u.home or u.home in ("/nonexistent", "/dev/null") or not fs.isdir(u.home)):
            found.append(Finding(check_id="FSB-ACC-005", file="/etc/passwd", line=u.line, value=u.name,
                                 detail=f"shell {u.shell or '/bin/sh'!r}, home {u.home!r} does not exist"))
        if login and 0 < u.uid < uid_min:
            found.append(Finding(check_id="FSB-ACC-006", file="/etc/passwd", line=u.line, value=u.name,
                                 detail=f"UID {u.uid} < UID_MIN {uid_min} with shell {u.shell or '/bin/sh'!r}"))
        if not _NAME_RE.match(u.name):
            found.append(Finding(check_id="FSB-ACC-007", file="/etc/passwd", line=u.line, value=ascii(u.name)))
        if u.passwd not in ("x", "*", "!", "") and pwhash.scheme_of(u.passwd.lstrip("!")):
            found.append(Finding(check_id="FSB-ACC-009", file="/etc/passwd", line=u.line, value=u.name))
    for uid, group in sorted(by_uid.items()):
        if len(group) > 1 and uid != 0:
            names = ",".join(g.name for g in group)
            found.append(Finding(check_id="FSB-ACC-004", file="/etc/passwd", line=group[1].line, value=names,
                                 detail=f"UID {uid} is shared by {names}"))
    return found


def check_shadow_modes(fs: HostFS) -> list[Finding]:
    """FSB-ACC-010: ``/etc/shadow`` and ``/etc/gshadow`` readable by others or writable by group/others."""
    found = []
    for path in ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-"):
        st = fs.stat(path)
        if st is not None and st.st_mode & 0o026:
            found.append(Finding(check_id="FSB-ACC-010", file=path, value=stat.filemode(st.st_mode)))
    return found


def check_passwords(fs: HostFS, weak: list[str], *, budget_s: float = 60.0) -> list[Finding]:
    """FSB-ACC-001, 002 and 008 from ``/etc/shadow`` (and hashes left in ``/etc/passwd``)."""
    found: list[Finding] = []
    entries: list[tuple[str, str, str, int]] = []  # (name, hash, file, line)
    shadow_names: set[str] = set()
    for no, line in fs.lines("/etc/shadow"):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split(":")
        if len(f) < 2:
            fs.notes.append(f"/etc/shadow:{no}: malformed line skipped")
            continue
        shadow_names.add(f[0])
        entries.append((f[0], f[1], "/etc/shadow", no))
    for u in read_passwd(fs):
        if u.name not in shadow_names and u.passwd != "x":
            entries.append((u.name, u.passwd, "/etc/passwd", u.line))
    deadline = time.monotonic() + budget_s
    can_crypt = pwhash.available()
    if not can_crypt:
        fs.notes.append("weak-password check skipped: libxcrypt (libcrypt.so.1) is not available")
    out_of_time = False
    for name, hash_, file, line in entries:
        if hash_ == "":
            found.append(Finding(check_id="FSB-ACC-001", file=file, line=line, value=name,
                                 detail="password field is empty: login without a password"))
            continue
        if hash_.startswith(("!", "*")):
            continue  # locked or no password set
        scheme = pwhash.scheme_of(hash_)
        if scheme is None:
            fs.notes.append(f"{file}:{line}: unknown password hash format for {name!r}")
            continue
        if scheme in pwhash.OBSOLETE:
            found.append(Finding(check_id="FSB-ACC-008", file=file, line=line, value=name, detail=scheme))
        if not can_crypt or out_of_time:
            continue
        candidates = [name, f"{name}123", f"{name}@123", *weak]
        for i, pw in enumerate(candidates):
            if time.monotonic() > deadline:
                fs.notes.append(f"weak-password check stopped after {budget_s:g}s at account {name!r} "
                                f"({i} of {len(candidates)} candidates tried); later accounts not tried")
                out_of_time = True
                break
            if pwhash.verify(pw, hash_):
                found.append(Finding(check_id="FSB-ACC-002", file=file, line=line, value=name,
                                     detail=f"{scheme} hash matches weak-password list entry #{i + 1}"))
                break
    return found
