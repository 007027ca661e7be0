"""Services configured to listen without authentication (未授权访问).

Reads the services' own configuration files in the audited tree (nothing is probed over the network):

* Redis ``redis.conf``: reachable (``bind`` absent with ``protected-mode no``, or bound to a non-loopback
  address) and no ``requirepass`` / ACL user with a password.
* MongoDB ``mongod.conf`` (YAML or legacy ``key = value``): ``net.bindIp`` non-loopback or ``bindIpAll``
  without ``security.authorization: enabled`` (legacy ``auth = true``).
* Memcached ``/etc/memcached.conf`` or ``/etc/sysconfig/memcached``: no ``-l`` (memcached's default is
  every interface) or a non-loopback ``-l``, and no SASL (``-S``).
* Elasticsearch ``elasticsearch.yml``: ``network.host`` non-loopback without ``xpack.security.enabled: true``.
* MySQL/MariaDB ``my.cnf`` with ``!include``/``!includedir``: ``skip-grant-tables``; ``bind-address`` on all
  interfaces.
* PostgreSQL ``pg_hba.conf``: ``trust`` for ``host*`` lines whose address is not loopback.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import yaml

from fsbrain.domains.host.audit.catalogue import Finding
from fsbrain.domains.host.audit.hostfs import HostFS

REDIS_CONFS = ("/etc/redis/redis.conf", "/etc/redis.conf", "/usr/local/etc/redis.conf", "/etc/redis/*.conf")
MYSQL_CONFS = ("/etc/mysql/my.cnf", "/etc/my.cnf")
MYSQL_SECTIONS = ("mysqld", "mariadb", "server", "mysqld_safe")
PG_HBA = ("/etc/postgresql/*/*/pg_hba.conf", "/var/lib/pgsql/data/pg_hba.conf",
          "/var/lib/pgsql/*/data/pg_hba.conf", "/var/lib/postgresql/data/pg_hba.conf")


def is_loopback(addr: str) -> bool:
    """True for loopback addresses and ``localhost``; every other address (incl. 0.0.0.0) is reachable."""
    a = addr.strip().strip("[]\"'").lstrip("-")
    if a in ("localhost", "127.0.0.1", "::1"):
        return True
    try:
        return ipaddress.ip_address(a.split("%")[0]).is_loopback
    except ValueError:
        return a.startswith("_local_")  # Elasticsearch special value


def _expand(fs: HostFS, patterns: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for pat in patterns:
        parts = pat.split("/")
        paths = ["" ]
        for part in parts[1:]:
            nxt: list[str] = []
            for p in paths:
                if "*" in part:
                    rx = re.compile("^" + re.escape(part).replace(r"\*", ".*") + "$")
                    nxt += [c for c in fs.listdir(p or "/") if rx.match(c.rpartition("/")[2])]
                else:
                    nxt.append(f"{p}/{part}")
            paths = nxt
        out += [p for p in paths if fs.exists(p) and not fs.isdir(p) and p not in out]
    return out


def check_redis(fs: HostFS) -> list[Finding]:
    found = []
    for path in _expand(fs, REDIS_CONFS):
        bind: tuple[int, list[str]] | None = None
        protected, password = True, False
        for no, line in fs.lines(path):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            key = parts[0].lower()
            if key == "bind":
                bind = (no, parts[1:])
            elif key == "protected-mode" and len(parts) > 1:
                protected = parts[1].lower() != "no"
            elif key == "requirepass" and len(parts) > 1 and parts[1].strip("\"'"):
                password = True
            elif key == "user" and any(p.startswith((">", "#")) for p in parts[2:]) and "on" in parts[2:]:
                password = True
        if password:
            continue
        if bind is None and not protected:
            found.append(Finding(check_id="FSB-SVC-001", file=path, value="protected-mode no",
                                 detail="no bind (all interfaces), protected-mode no, no requirepass"))
        elif bind is not None and not all(is_loopback(a) for a in bind[1]):
            found.append(Finding(check_id="FSB-SVC-001", file=path, line=bind[0], value="bind " + " ".join(bind[1]),
                                 detail="reachable bind address and no requirepass"))
    return found


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                out.update(_flatten(v, key + "."))
            else:
                out[key] = v
    return out


def _yaml_file(fs: HostFS, path: str) -> dict[str, Any] | None:
    text = fs.read_text(path)
    if text is None:
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        return _flatten(data)
    kv: dict[str, Any] = {}  # legacy "key = value" format
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            kv[k.strip()] = v.strip()
    return kv


def _line_of(fs: HostFS, path: str, needle: str) -> int | None:
    for no, line in fs.lines(path):
        if needle in line and not line.lstrip().startswith("#"):
            return no
    return None


def check_mongodb(fs: HostFS) -> list[Finding]:
    path = "/etc/mongod.conf"
    conf = _yaml_file(fs, path)
    if conf is None:
        return []
    bind = str(conf.get("net.bindIp", conf.get("bind_ip", "127.0.0.1")))
    bind_all = str(conf.get("net.bindIpAll", "false")).lower() == "true"
    auth = str(conf.get("security.authorization", "")).lower() == "enabled" or \
        str(conf.get("auth", "")).lower() == "true"
    exposed = bind_all or not all(is_loopback(a) for a in bind.split(","))
    if exposed and not auth:
        value = "bindIpAll: true" if bind_all else f"bindIp: {bind}"
        return [Finding(check_id="FSB-SVC-002", file=path, line=_line_of(fs, path, "bindIp") or
                        _line_of(fs, path, "bind_ip"), value=value, detail="security.authorization not enabled")]
    return []


def check_memcached(fs: HostFS) -> list[Finding]:
    found = []
    for path in ("/etc/memcached.conf", "/etc/sysconfig/memcached"):
        text = fs.read_text(path)
        if text is None:
            continue
        listen: list[tuple[int, str]] = []
        sasl = False
        for no, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            for m in re.finditer(r"(?:^|[\s\"'])(?:-l|--listen)[=\s]+([^\s\"']+)", line):
                listen += [(no, a) for a in m.group(1).split(",")]
            if re.search(r"(?:^|[\s\"'])(?:-S|--enable-sasl)\b", line):
                sasl = True
        if sasl:
            continue
        if not listen:
            found.append(Finding(check_id="FSB-SVC-003", file=path, value="no -l option",
                                 detail="memcached listens on every interface by default"))
        for no, addr in listen:
            if not is_loopback(addr):
                found.append(Finding(check_id="FSB-SVC-003", file=path, line=no, value=f"-l {addr}"))
    return found


def check_elasticsearch(fs: HostFS) -> list[Finding]:
    path = "/etc/elasticsearch/elasticsearch.yml"
    conf = _yaml_file(fs, path)
    if conf is None:
        return []
    host = conf.get("network.host", conf.get("network.bind_host"))
    hosts = host if isinstance(host, list) else [host] if host is not None else []
    secured = str(conf.get("xpack.security.enabled", "")).lower() == "true"
    if hosts and not all(is_loopback(str(h)) for h in hosts) and not secured:
        return [Finding(check_id="FSB-SVC-004", file=path, line=_line_of(fs, path, "host"),
                        value=f"network.host: {','.join(map(str, hosts))}",
                        detail="xpack.security.enabled is not true")]
    return []


def _mysql_files(fs: HostFS, path: str, seen: set[str]) -> None:
    if path in seen or len(seen) > 128:
        return
    seen.add(path)
    for _, line in fs.lines(path):
        s = line.strip()
        if s.startswith("!includedir"):
            for f in fs.listdir(s.split(None, 1)[1] if len(s.split()) > 1 else ""):
                if f.endswith((".cnf", ".ini")):
                    _mysql_files(fs, f, seen)
        elif s.startswith("!include") and len(s.split()) > 1:
            _mysql_files(fs, s.split(None, 1)[1], seen)


def check_mysql(fs: HostFS) -> list[Finding]:
    files: set[str] = set()
    for root in MYSQL_CONFS:
        if fs.exists(root):
            _mysql_files(fs, root, files)
    found = []
    for path in sorted(files):
        section = ""
        for no, line in fs.lines(path):
            s = line.split("#", 1)[0].split(";", 1)[0].strip()
            if s.startswith("["):
                section = s.strip("[]").strip().lower()
                continue
            if not (section in MYSQL_SECTIONS or section.startswith("mysqld-") or section.startswith("mariadb-")):
                continue
            key, _, value = s.partition("=")
            key = key.strip().lower().replace("_", "-")
            if key == "skip-grant-tables" and value.strip().lower() not in ("0", "off", "false"):
                found.append(Finding(check_id="FSB-SVC-005", file=path, line=no, value=s))
            elif key == "bind-address" and value.strip() in ("0.0.0.0", "*", "::", "0"):
                found.append(Finding(check_id="FSB-SVC-006", file=path, line=no, value=s))
    return found


def check_postgres(fs: HostFS) -> list[Finding]:
    found = []
    for path in _expand(fs, PG_HBA):
        for no, line in fs.lines(path):
            f = line.split("#", 1)[0].split()
            if len(f) < 5 or not f[0].startswith("host"):
                continue
            addr, method = f[3], f[4]
            if "/" not in addr and len(f) >= 6 and re.match(r"^[\d.:a-fA-F]+$", addr):
                method = f[5]  # address + separate netmask form
            if method.lower() == "trust" and addr not in ("samehost",) and not is_loopback(addr.split("/")[0]):
                found.append(Finding(check_id="FSB-SVC-007", file=path, line=no, value=" ".join(f)))
    return found


def check_services(fs: HostFS) -> list[Finding]:
    """FSB-SVC-001..007."""
    out: list[Finding] = []
    for fn in (check_redis, check_mongodb, check_memcached, check_elasticsearch, check_mysql, check_postgres):
        out += fn(fs)
    return out
