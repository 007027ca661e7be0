"""Privilege checks: sudoers, world-writable and SUID/SGID files, cron permissions.

* sudoers: ``/etc/sudoers`` plus ``@includedir``/``#includedir`` and ``@include``/``#include`` targets
  (``/etc/sudoers.d``; like sudo, names ending in ``~`` or containing ``.`` are ignored), backslash line
  continuations, comments. ``NOPASSWD: ALL`` and ``Defaults !authenticate`` are reported.
* World-writable files (and world-writable directories without the sticky bit) under system locations.
* SUID/SGID binaries compared with a known-good list (``data/suid_known_good.txt``) after folding
  ``/bin``, ``/sbin``, ``/lib`` onto ``/usr``.
* Cron: crontabs and cron directories writable by group/others, and programs run by cron that others can
  modify (they run as root).
"""

from __future__ import annotations

import re
import stat
from importlib import resources

from fsbrain.domains.host.audit.catalogue import Finding
from fsbrain.domains.host.audit.hostfs import HostFS

SENSITIVE_DIRS = ("/etc", "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin",
                  "/usr/lib/systemd/system", "/lib/systemd/system", "/boot", "/root", "/var/spool/cron")
SUID_DIRS = ("/bin", "/sbin", "/usr", "/opt", "/etc", "/root", "/home", "/tmp", "/var/tmp", "/dev/shm", "/srv")
CRON_DIRS = ("/etc/cron.d", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly",
             "/var/spool/cron", "/var/spool/cron/crontabs")
CRON_FILES = ("/etc/crontab", "/etc/anacrontab")
MAX_WALK = 500_000
_NOPASSWD_ALL = re.compile(r"\bNOPASSWD\s*:\s*(?:[A-Z_]+\s*:\s*)*ALL\b")
_INCLUDE = re.compile(r"^[@#](include|includedir)\s+(\S+)")
_INTERPRETERS = {"sh", "bash", "dash", "zsh", "python", "python3", "perl", "ruby", "php", "nice", "ionice",
                 "run-parts", "timeout", "flock", "env", "exec"}


def _fold_usr(path: str) -> str:
    for prefix in ("/bin/", "/sbin/", "/lib/", "/lib64/", "/libexec/"):
        if path.startswith(prefix):
            return "/usr" + path
    return path


def known_good_suid() -> set[str]:
    text = (resources.files("fsbrain.domains.host") / "data" / "suid_known_good.txt").read_text("utf-8")
    return {_fold_usr(x.strip()) for x in text.splitlines() if x.strip() and not x.startswith("#")}


def _sudoers_files(fs: HostFS, path: str, seen: set[str], out: list[str]) -> None:
    if path in seen or len(seen) > 256:
        return
    seen.add(path)
    out.append(path)
    for _, line in fs.lines(path):
        m = _INCLUDE.match(line.strip())
        if m is None:
            continue
        target = m.group(2) if m.group(2).startswith("/") else "/etc/" + m.group(2)
        if m.group(1) == "includedir":
            for f in fs.listdir(target):
                name = f.rpartition("/")[2]
                if not name.endswith("~") and "." not in name:
                    _sudoers_files(fs, f, seen, out)
        else:
            _sudoers_files(fs, target, seen, out)


def check_sudoers(fs: HostFS) -> list[Finding]:
    """FSB-PRV-001 and FSB-PRV-002."""
    files: list[str] = []
    _sudoers_files(fs, "/etc/sudoers", set(), files)
    found: list[Finding] = []
    for path in files:
        st = fs.stat(path)
        if st is None:
            continue
        if st.st_mode & 0o022:
            found.append(Finding(check_id="FSB-PRV-002", file=path, value=oct(stat.S_IMODE(st.st_mode))))
        logical = ""
        start = 0
        for no, line in fs.lines(path):
            if not logical:
                start = no
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1] + " "
                continue
            logical += line
            text, logical = logical.strip(), ""
            if not text or (text.startswith("#") and not _INCLUDE.match(text)):
                continue
            text = text.split(" #", 1)[0]
            if _NOPASSWD_ALL.search(text) or re.match(r"^Defaults\b.*!\s*authenticate\b", text):
                found.append(Finding(check_id="FSB-PRV-001", file=path, line=start, value=" ".join(text.split())))
    return found


def check_file_modes(fs: HostFS, *, max_entries: int = MAX_WALK) -> list[Finding]:
    """FSB-FS-001 (world-writable in system locations) and FSB-FS-002 (unexpected SUID/SGID)."""
    found: list[Finding] = []
    seen: set[tuple[int, int]] = set()
    dirs: set[tuple[int, int]] = set()
    for top in SENSITIVE_DIRS:
        for path, st in fs.walk(top, max_entries=max_entries, visited=dirs):
            if (st.st_dev, st.st_ino) in seen or stat.S_ISLNK(st.st_mode):
                continue
            seen.add((st.st_dev, st.st_ino))
            ww = st.st_mode & stat.S_IWOTH
            if ww and (stat.S_ISREG(st.st_mode) or (stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_ISVTX)):
                found.append(Finding(check_id="FSB-FS-001", file=path, value=stat.filemode(st.st_mode)))
    good = known_good_suid()
    seen.clear()
    dirs.clear()
    for top in SUID_DIRS:
        for path, st in fs.walk(top, max_entries=max_entries, visited=dirs):
            if not stat.S_ISREG(st.st_mode) or not st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if _fold_usr(path) not in good:
                kind = "SUID" if st.st_mode & stat.S_ISUID else "SGID"
                found.append(Finding(check_id="FSB-FS-002", file=path, value=stat.filemode(st.st_mode),
                                     detail=f"{kind} uid={st.st_uid} gid={st.st_gid}"))
    return found


def _cron_program(command: str) -> str | None:
    """The absolute path of the program a cron command runs (skipping interpreters and wrappers)."""
    for tok in command.split():
        if "=" in tok and not tok.startswith("/"):
            continue  # VAR=value prefix
        if tok.startswith("-") or tok.rpartition("/")[2] in _INTERPRETERS or tok.isdigit():
            continue
        if tok.startswith("/"):
            return tok.rstrip(";&|")
        return None
    return None


def _cron_commands(fs: HostFS, path: str, system: bool) -> list[tuple[int, str]]:
    out = []
    for no, line in fs.lines(path):
        s = line.strip()
        if not s or s.startswith("#") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", s):
            continue
        parts = s.split()
        n_time = 1 if parts[0].startswith("@") else 5
        skip = n_time + (1 if system else 0)
        if len(parts) > skip:
            out.append((no, " ".join(parts[skip:])))
    return out


def check_cron(fs: HostFS) -> list[Finding]:
    """FSB-CRN-001 and FSB-CRN-002."""
    found: list[Finding] = []
    targets: list[tuple[str, bool]] = [(f, True) for f in CRON_FILES]
    for d in CRON_DIRS:
        st = fs.stat(d)
        if st is None or not stat.S_ISDIR(st.st_mode):
            continue
        sticky = st.st_mode & stat.S_ISVTX
        if st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and not sticky):
            found.append(Finding(check_id="FSB-CRN-001", file=d, value=stat.filemode(st.st_mode)))
        for f in fs.listdir(d):
            if fs.isdir(f):
                continue
            targets.append((f, d == "/etc/cron.d"))  # cron.d has a user field, spool crontabs do not
    for path, system in targets:
        st = fs.stat(path)
        if st is None:
            continue
        if st.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
            found.append(Finding(check_id="FSB-CRN-001", file=path, value=stat.filemode(st.st_mode)))
        if path.startswith(("/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly")):
            continue  # scripts themselves, checked by mode above
        for no, command in _cron_commands(fs, path, system):
            prog = _cron_program(command)
            pst = fs.stat(prog) if prog else None
            if prog and pst is not None and pst.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
                found.append(Finding(check_id="FSB-CRN-002", file=path, line=no, value=prog,
                                     detail=f"{prog} is {stat.filemode(pst.st_mode)}"))
    return found
