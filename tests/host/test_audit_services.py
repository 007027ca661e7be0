"""Services configured to listen without authentication (未授权访问): positive and negative cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsbrain.domains.host.audit import run_audit


def write(root: Path, path: str, text: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def found(root: Path) -> list[tuple[str, str | None]]:
    return [(f.check_id, f.value) for f in run_audit(root, checks=["services"]).findings]


@pytest.mark.parametrize(("conf", "expected"), [
    ("bind 0.0.0.0\nprotected-mode yes\n", [("FSB-SVC-001", "bind 0.0.0.0")]),
    ("bind 127.0.0.1 10.1.2.3\n", [("FSB-SVC-001", "bind 127.0.0.1 10.1.2.3")]),
    ("bind 0.0.0.0\nrequirepass s3cr3t-long\n", []),
    ("bind 0.0.0.0\nuser default on >s3cr3t ~* +@all\n", []),
    ("bind 127.0.0.1 ::1\n", []),
    ("# no bind\nprotected-mode no\n", [("FSB-SVC-001", "protected-mode no")]),
    ("# no bind, protected mode on by default\n", []),
    ("bind 0.0.0.0\nrequirepass \"\"\n", [("FSB-SVC-001", "bind 0.0.0.0")]),
])
def test_redis(tmp_path, conf, expected):
    write(tmp_path, "/etc/redis/redis.conf", conf)
    assert found(tmp_path) == expected


@pytest.mark.parametrize(("conf", "expected"), [
    ("net:\n  port: 27017\n  bindIp: 0.0.0.0\n", ["bindIp: 0.0.0.0"]),
    ("net:\n  bindIpAll: true\n", ["bindIpAll: true"]),
    ("net:\n  bindIp: 0.0.0.0\nsecurity:\n  authorization: enabled\n", []),
    ("net:\n  bindIp: 127.0.0.1,::1\n", []),
    ("# legacy format\nbind_ip = 0.0.0.0\nport = 27017\n", ["bindIp: 0.0.0.0"]),
    ("bind_ip = 0.0.0.0\nauth = true\n", []),
])
def test_mongodb(tmp_path, conf, expected):
    write(tmp_path, "/etc/mongod.conf", conf)
    assert [v for c, v in found(tmp_path) if c == "FSB-SVC-002"] == expected


@pytest.mark.parametrize(("path", "conf", "expected"), [
    ("/etc/memcached.conf", "-d\n-m 64\n-p 11211\n-l 0.0.0.0\n", ["-l 0.0.0.0"]),
    ("/etc/memcached.conf", "-d\n-m 64\n-l 127.0.0.1\n", []),
    ("/etc/memcached.conf", "-d\n-m 64\n# -l 127.0.0.1\n", ["no -l option"]),
    ("/etc/memcached.conf", "-l 0.0.0.0\n-S\n", []),
    ("/etc/sysconfig/memcached", 'PORT="11211"\nOPTIONS="-l 127.0.0.1,::1"\n', []),
    ("/etc/sysconfig/memcached", 'OPTIONS="-l 192.168.1.5 -U 0"\n', ["-l 192.168.1.5"]),
])
def test_memcached(tmp_path, path, conf, expected):
    write(tmp_path, path, conf)
    assert [v for c, v in found(tmp_path) if c == "FSB-SVC-003"] == expected


@pytest.mark.parametrize(("conf", "hit"), [
    ("cluster.name: prod\nnetwork.host: 0.0.0.0\n", True),
    ("network:\n  host: 0.0.0.0\n", True),
    ("network.host: [_local_, _site_]\n", True),
    ("network.host: 0.0.0.0\nxpack.security.enabled: true\n", False),
    ("network.host: 127.0.0.1\n", False),
    ("cluster.name: dev\n", False),
])
def test_elasticsearch(tmp_path, conf, hit):
    write(tmp_path, "/etc/elasticsearch/elasticsearch.yml", conf)
    assert bool([c for c, _ in found(tmp_path) if c == "FSB-SVC-004"]) is hit


def test_mysql_includes_sections_and_values(tmp_path):
    write(tmp_path, "/etc/mysql/my.cnf", "[client]\nskip-grant-tables\n!includedir /etc/mysql/conf.d/\n")
    write(tmp_path, "/etc/mysql/conf.d/unsafe.cnf", "[mysqld]\nskip_grant_tables\nbind-address = 0.0.0.0\n")
    write(tmp_path, "/etc/mysql/conf.d/notes.txt", "[mysqld]\nskip-grant-tables\n")  # not a .cnf: ignored
    got = found(tmp_path)
    assert got == [("FSB-SVC-005", "skip_grant_tables"), ("FSB-SVC-006", "bind-address = 0.0.0.0")]


def test_mysql_safe(tmp_path):
    write(tmp_path, "/etc/my.cnf", "[mysqld]\nbind-address = 127.0.0.1\nskip-grant-tables = OFF\n")
    assert found(tmp_path) == []


def test_postgres_pg_hba_trust(tmp_path):
    write(tmp_path, "/etc/postgresql/16/main/pg_hba.conf",
          "local all postgres peer\nlocal all all trust\n"
          "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
          "host all all 10.0.0.0/8 scram-sha-256\n"
          "host all all 0.0.0.0/0 trust   # open!\n"
          "hostssl replication rep 192.168.1.0 255.255.255.0 trust\n")
    assert found(tmp_path) == [("FSB-SVC-007", "host all all 0.0.0.0/0 trust"),
                               ("FSB-SVC-007", "hostssl replication rep 192.168.1.0 255.255.255.0 trust")]
    r = run_audit(tmp_path, checks=["FSB-SVC-007"])
    assert [f.line for f in r.findings] == [6, 7]
    assert {a.labels[0] for a in r.to_alerts()} == {"unauthorized_access"}


def test_no_services_installed(tmp_path):
    (tmp_path / "etc").mkdir()
    assert found(tmp_path) == []
