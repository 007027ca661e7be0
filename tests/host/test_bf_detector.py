"""Brute-force detections on real state backends (memory and Redis), with their thresholds."""

from __future__ import annotations

import pytest

from fsbrain.core.errors import PolicyError
from fsbrain.domains.host.bruteforce import AuthEvent, BruteForceDetector, subnet_of
from fsbrain.domains.host.jails import JailsConfig
from fsbrain.state import make_backend

T0 = 1_700_000_000.0


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request):
    if request.param == "memory":
        b = make_backend("memory", allowed_lateness=86400.0)
    else:
        url = request.getfixturevalue("redis_url")
        b = make_backend("redis", url=url, allowed_lateness=86400.0)
    yield b
    b.close()


def config(**detections):
    base = {"allowlist": ["10.0.0.0/8"],
            "jails": [{"name": "ssh", "filter": "sshd", "findtime": 600, "maxretry": 5, "bantime": 600,
                       "bantime_factor": 2, "bantime_max": 86400}],
            "detections": detections}
    return JailsConfig.from_dict(base)


def fail(det, t, host, user="root", jail="ssh"):
    return det.observe(AuthEvent(time=T0 + t, status="failure", host=host, user=user, jail=jail))


def labels(alerts):
    return sorted((a.labels[0], a.entity_type) for a in alerts)


def test_jail_findtime_maxretry_bantime(backend):
    det = BruteForceDetector(config(), backend=backend)
    out = []
    for i in range(4):
        out += fail(det, i * 200, "192.0.2.1")  # 4 failures over 600 s: below maxretry
    assert out == []
    for i in range(4):  # spread wider than findtime: never 5 inside 600 s
        out += fail(det, 2000 + i * 400, "192.0.2.2")
    assert out == []
    for i in range(5):
        out += fail(det, 5000 + i, "192.0.2.3")
    assert labels(out) == [("brute_force", "ip")]
    a = out[0]
    assert a.action == "ban" and a.details["ban_until"] == T0 + 5004 + 600
    r = a.reasons[0]
    assert (r.feature, r.value, r.threshold) == ("ssh_ip_failures_600s", 5, 5)
    assert fail(det, 5005, "192.0.2.3") == []  # banned: no second alert
    later = []
    for i in range(5):
        later += fail(det, 5700 + i, "192.0.2.3")  # ban over: banned again, twice as long
    bans = [x for x in later if x.action == "ban" and x.details.get("jail") == "ssh"]
    assert bans and bans[0].details["bantime"] == 1200


def test_recidive(backend):
    det = BruteForceDetector(config(recidive={"min_bans": 3, "window": 86400, "bantime": 7200},
                                    low_and_slow={"enabled": False}), backend=backend)
    out = []
    for round_ in range(3):
        for i in range(5):
            out += fail(det, round_ * 5000 + i, "198.51.100.4")
    rec = [a for a in out if a.details.get("jail") == "recidive"]
    assert len(rec) == 1 and rec[0].severity == 4
    assert rec[0].reasons[0].value == 3 and rec[0].reasons[0].threshold == 3


def test_subnet(backend):
    det = BruteForceDetector(config(subnet={"min_ips": 4, "min_failures": 8, "window": 3600}), backend=backend)
    out = []
    for i in range(8):
        out += fail(det, i * 30, f"203.0.113.{10 + i % 4}")  # 4 addresses, 2 each: no jail ban
    sub = [a for a in out if a.entity_type == "subnet"]
    assert [a.entity for a in sub] == ["203.0.113.0/24"]
    assert {r.feature: r.value for r in sub[0].reasons} == {"subnet_distinct_ips_3600s": 4,
                                                            "subnet_failures_3600s": 8}


def test_distributed_account(backend):
    det = BruteForceDetector(config(distributed={"min_ips": 5, "min_failures": 6}), backend=backend)
    out = []
    for i in range(6):
        out += fail(det, i * 60, f"198.51.{i}.7", user="alice")
    acc = [a for a in out if a.entity_type == "account"]
    assert len(acc) == 1 and acc[0].entity == "alice" and acc[0].severity == 4


def test_low_and_slow(backend):
    det = BruteForceDetector(config(low_and_slow={"window": 86400, "min_failures": 12}), backend=backend)
    out = []
    for i in range(12):
        out += fail(det, i * 3600, "192.0.2.99")  # one per hour: never 5 in 10 minutes
    slow = [a for a in out if a.reasons[0].id == "host.bf.low_and_slow"]
    assert len(slow) == 1 and slow[0].reasons[0].value == 12


def test_password_spraying(backend):
    det = BruteForceDetector(config(spraying={"min_accounts": 10, "max_attempts_per_account": 1.5}),
                             backend=backend)
    out = []
    for i in range(10):
        out += fail(det, i * 100, "192.0.2.50", user=f"user{i}")
    spray = [a for a in out if a.labels == ["password_spraying"]]
    assert len(spray) == 1
    # the same number of failures on ONE account is not spraying
    det2 = BruteForceDetector(config(spraying={"min_accounts": 10}), backend=make_backend("memory"))
    assert not [a for i in range(10) for a in fail(det2, i * 100, "192.0.2.51", user="root")
                if a.labels == ["password_spraying"]]


def test_compromise_after_failures(backend):
    det = BruteForceDetector(config(compromise={"min_failures": 3, "window": 3600}), backend=backend)
    for i in range(3):
        fail(det, i, "192.0.2.60", user="bob")
    out = det.observe(AuthEvent(time=T0 + 10, status="success", host="192.0.2.60", user="bob", jail="ssh"))
    assert labels(out) == [("compromise", "ip")]
    assert out[0].severity == 5 and out[0].details["user"] == "bob"
    clean = det.observe(AuthEvent(time=T0 + 20, status="success", host="192.0.2.61", user="carol", jail="ssh"))
    assert clean == []


def test_allowlist_is_never_alerted(backend):
    det = BruteForceDetector(config(), backend=backend)
    out = [a for i in range(20) for a in fail(det, i, "10.1.2.3")]
    assert out == [] and det.counts["allowlisted"] == 20


def test_subnet_of():
    assert subnet_of("192.0.2.77", 24, 64) == "192.0.2.0/24"
    assert subnet_of("2001:db8:1:2::5", 24, 64) == "2001:db8:1:2::/64"
    assert subnet_of("::ffff:192.0.2.1", 24, 64) == "192.0.2.0/24"
    assert subnet_of("example.com", 24, 64) is None


def test_jails_file_rejects_unknown_keys_and_bad_networks(tmp_path):
    p = tmp_path / "j.yaml"
    p.write_text("jails:\n  - {name: s, filter: sshd, maxrety: 3}\nallowlist: [not-an-ip]\n")
    with pytest.raises(PolicyError) as info:
        JailsConfig.load(p)
    text = str(info.value)
    assert "maxrety" in text and "allowlist" in text
    p.write_text("jails: [\n")
    with pytest.raises(PolicyError, match="YAML"):
        JailsConfig.load(p)
