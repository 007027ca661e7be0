"""sshd_config checks with OpenSSH's own semantics.

* Keywords are case-insensitive; for each keyword the **first** value obtained wins (sshd's rule), so an
  ``Include`` of ``sshd_config.d/*.conf`` at the top overrides later lines of the main file.
* ``Include`` takes globs, relative to ``/etc/ssh``, expanded in lexical order, nested up to 16 deep.
* ``Match`` blocks apply only to matching connections: weak settings inside one are reported with the
  block's criteria in the evidence, and never change the global value.
* Unset keywords take OpenSSH's defaults (``PasswordAuthentication yes``, ``PermitRootLogin
  prohibit-password``, ``PermitEmptyPasswords no``).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from dataclasses import dataclass

from fsbrain.domains.host.audit.catalogue import Finding
from fsbrain.domains.host.audit.hostfs import HostFS

SSHD_CONFIG = "/etc/ssh/sshd_config"
WEAK_CIPHERS = {
    "3des-cbc", "aes128-cbc", "aes192-cbc", "aes256-cbc", "blowfish-cbc", "cast128-cbc", "arcfour",
    "arcfour128", "arcfour256", "rijndael-cbc@lysator.liu.se", "des-cbc", "des", "3des", "blowfish", "none",
}
WEAK_MACS = {
    "hmac-md5", "hmac-md5-96", "hmac-sha1", "hmac-sha1-96", "hmac-md5-etm@openssh.com",
    "hmac-md5-96-etm@openssh.com", "hmac-sha1-etm@openssh.com", "hmac-sha1-96-etm@openssh.com",
    "umac-64@openssh.com", "umac-64-etm@openssh.com", "hmac-ripemd160", "hmac-ripemd160@openssh.com",
    "hmac-ripemd160-etm@openssh.com",
}
WEAK_KEX = {
    "diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1",
    "gss-gex-sha1-*", "gss-group1-sha1-*", "gss-group14-sha1-*", "rsa1024-sha1",
}
DEFAULTS = {"passwordauthentication": "yes", "permitrootlogin": "prohibit-password",
            "permitemptypasswords": "no", "protocol": "2"}
_MAX_INCLUDE_DEPTH = 16
_LINE_RE = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(?:\s*=\s*|\s+)(.*)$")


@dataclass(slots=True)
class Directive:
    key: str  # lower-case keyword
    value: str
    file: str
    line: int
    match: str | None  # the Match criteria this line is under, None for global


def parse(fs: HostFS, path: str = SSHD_CONFIG) -> list[Directive]:
    """Every directive in file order with Includes expanded and Match context attached."""
    out: list[Directive] = []
    _parse_file(fs, path, out, None, 0)
    return out


def _parse_file(fs: HostFS, path: str, out: list[Directive], match: str | None, depth: int) -> str | None:
    if depth > _MAX_INCLUDE_DEPTH:
        fs.notes.append(f"{path}: Include nesting deeper than {_MAX_INCLUDE_DEPTH}, not followed")
        return match
    for no, raw in fs.lines(path):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE_RE.match(line)
        if m is None:
            fs.notes.append(f"{path}:{no}: unparsable line skipped")
            continue
        key, value = m.group(1).lower(), m.group(2).strip()
        if key == "match":
            match = None if value.lower() == "all" else value
            continue
        if key == "include":
            try:
                patterns = shlex.split(value)
            except ValueError:
                patterns = value.split()
            for pat in patterns:
                full = pat if pat.startswith("/") else posixpath.join("/etc/ssh", pat)
                for inc in _glob(fs, full):
                    match = _parse_file(fs, inc, out, match, depth + 1)
            continue
        out.append(Directive(key, value, path, no, match))
    return match


def _glob(fs: HostFS, pattern: str) -> list[str]:
    if not any(c in pattern for c in "*?["):
        return [pattern] if fs.exists(pattern) else []
    directory, _, name = pattern.rpartition("/")
    return [p for p in fs.listdir(directory or "/") if fnmatch.fnmatchcase(p.rpartition("/")[2], name)]


def effective(directives: list[Directive], key: str) -> Directive | None:
    """The global directive that wins for ``key`` (first one outside Match blocks)."""
    for d in directives:
        if d.key == key and d.match is None:
            return d
    return None


def _algos(value: str) -> list[str]:
    """Algorithms a Ciphers/MACs/KexAlgorithms value enables ('-' removals enable nothing)."""
    if value.startswith("-"):
        return []
    return [a.strip() for a in value.lstrip("+^").split(",") if a.strip()]


def _is_weak(algo: str, weak: set[str]) -> bool:
    return any(fnmatch.fnmatchcase(algo.lower(), w) or fnmatch.fnmatchcase(w, algo.lower()) for w in weak)


def _where(d: Directive) -> str | None:
    return f"in Match {d.match}" if d.match else None


def check_sshd(fs: HostFS) -> list[Finding]:
    """FSB-SSH-001..007 for ``/etc/ssh/sshd_config`` (nothing when sshd is not configured)."""
    if not fs.exists(SSHD_CONFIG):
        return []
    ds = parse(fs)
    found: list[Finding] = []

    def emit(check: str, d: Directive | None, value: str, detail: str | None = None) -> None:
        if d is None:
            found.append(Finding(check_id=check, file=SSHD_CONFIG, value=value,
                                 detail=detail or "not set: OpenSSH's default applies"))
        else:
            found.append(Finding(check_id=check, file=d.file, line=d.line, value=f"{d.key} {d.value}",
                                 detail=_where(d) or detail))

    simple = [("permitrootlogin", "FSB-SSH-001", {"yes"}), ("passwordauthentication", "FSB-SSH-002", {"yes"}),
              ("permitemptypasswords", "FSB-SSH-003", {"yes"})]
    for key, check, bad in simple:
        glob_d = effective(ds, key)
        if glob_d is None:
            value = DEFAULTS[key]
        else:
            value = glob_d.value.split()[0].lower() if glob_d.value.split() else ""
        if value in bad:
            emit(check, glob_d, f"{key} {value}")
        for d in ds:
            if d.match is not None and d.key == key and d.value.split()[:1] and d.value.split()[0].lower() in bad:
                emit(check, d, d.value)
    proto = effective(ds, "protocol")
    if proto is not None and "1" in [p.strip() for p in proto.value.split(",")]:
        emit("FSB-SSH-004", proto, proto.value)
    for key, check, weak in (("ciphers", "FSB-SSH-005", WEAK_CIPHERS), ("macs", "FSB-SSH-006", WEAK_MACS),
                             ("kexalgorithms", "FSB-SSH-007", WEAK_KEX)):
        for d in ds:
            if d.key != key:
                continue
            if d.match is None and d is not effective(ds, key):
                continue  # a later global line is ignored by sshd
            bad_algos = [a for a in _algos(d.value) if _is_weak(a, weak)]
            if bad_algos:
                found.append(Finding(check_id=check, file=d.file, line=d.line, value=",".join(bad_algos),
                                     detail=_where(d)))
    return found
