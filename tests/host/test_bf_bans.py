"""Ban list (JSON file and platform store), allow-list guard, and generated firewall commands."""

from __future__ import annotations

import json

import pytest

from fsbrain.core.errors import ConflictError, InputError, NotFoundError
from fsbrain.core.model import Alert
from fsbrain.domains.host import firewall as fw
from fsbrain.domains.host.bans import Ban, BanList, normalise_target

NOW = 1_700_000_000.0


@pytest.fixture(params=["json", "store"])
def bans(request, tmp_path):
    if request.param == "json":
        return lambda: BanList(allowlist=["127.0.0.0/8"], backend="json", path=tmp_path / "bans.json")
    from fsbrain.store import Store

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    return lambda: BanList(allowlist=["127.0.0.0/8"], backend="store", store=store)


def test_add_list_remove_persist(bans):
    bl = bans()
    bl.add("192.0.2.1", seconds=60, reason="test", now=NOW)
    bl.add("2001:db8::/64", reason="net", now=NOW)
    again = bans()  # a new process sees the same bans
    assert {b.target for b in again.active(NOW)} == {"192.0.2.1", "2001:db8::/64"}
    assert again.is_banned("2001:db8::7", NOW) and again.is_banned("192.0.2.1", NOW + 59)
    assert not again.is_banned("192.0.2.1", NOW + 61)  # expired
    again.remove("192.0.2.1")
    assert {b.target for b in bans().active(NOW)} == {"2001:db8::/64"}
    with pytest.raises(NotFoundError):
        again.remove("192.0.2.1")


def test_allowlist_cannot_be_banned(bans):
    with pytest.raises(ConflictError, match="allow-list"):
        bans().add("127.0.0.5", seconds=60)


@pytest.mark.parametrize("value", ["not-an-ip", "300.1.1.1", "1.2.3.4; rm -rf /", "", "1.2.3.4/99"])
def test_junk_targets_are_refused(value):
    with pytest.raises(InputError):
        normalise_target(value)


def test_normalisation():
    assert normalise_target("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalise_target("192.0.2.77/24") == "192.0.2.0/24"
    assert normalise_target("192.0.2.77/32") == "192.0.2.77"


def test_apply_alerts_bans_ips_and_subnets(tmp_path):
    bl = BanList(allowlist=["10.0.0.0/8"], backend="json", path=tmp_path / "b.json")
    alerts = [
        Alert(source="host.bruteforce", labels=["brute_force"], severity=3, title="t", entity_type="ip",
              entity="192.0.2.9", action="ban", end=NOW, details={"ban_until": NOW + 600, "jail": "sshd"}),
        Alert(source="host.bruteforce", labels=["brute_force"], severity=3, title="t", entity_type="subnet",
              entity="198.51.100.0/24", action="ban", end=NOW, details={"ban_until": NOW + 600}),
        Alert(source="host.bruteforce", labels=["brute_force"], severity=3, title="t", entity_type="ip",
              entity="10.0.0.1", action="ban", end=NOW, details={"ban_until": NOW + 600}),
        Alert(source="host.bruteforce", labels=["compromise"], severity=5, title="t", entity_type="ip",
              entity="192.0.2.10", action="review", end=NOW),
    ]
    made = bl.apply_alerts(alerts)
    assert sorted(b.target for b in made) == ["192.0.2.9", "198.51.100.0/24"]
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["version"] == 1 and len(data["bans"]) == 2


def test_corrupt_ban_file_is_a_clear_error(tmp_path):
    p = tmp_path / "b.json"
    p.write_text("{not json")
    with pytest.raises(InputError, match="unreadable ban file"):
        BanList(backend="json", path=p)


def test_nft_commands():
    bans = [Ban(target="192.0.2.1", until=NOW + 100), Ban(target="2001:db8::/64", until=None)]
    cmds = fw.firewall_commands(bans, "nft", now=NOW)
    text = fw.render(cmds)
    assert "add set inet fsbrain banned4 '{ type ipv4_addr; flags interval, timeout; }'" in text
    assert ["nft", "add", "element", "inet", "fsbrain", "banned4", "{ 192.0.2.1 timeout 100s }"] in cmds
    assert ["nft", "add", "element", "inet", "fsbrain", "banned6", "{ 2001:db8::/64 }"] in cmds


def test_iptables_commands():
    cmds = fw.firewall_commands([Ban(target="192.0.2.0/24", until=NOW + 50)], "iptables", now=NOW)
    assert ["ipset", "add", "fsbrain4", "192.0.2.0/24", "timeout", "50", "-exist"] in cmds
    assert ["iptables", "-I", "INPUT", "-m", "set", "--match-set", "fsbrain4", "src", "-j", "DROP"] in cmds


def test_firewall_refuses_junk_and_unknown_backend():
    with pytest.raises(InputError):
        fw.firewall_commands([Ban(target="1.2.3.4;reboot", until=None)], "nft")
    with pytest.raises(InputError, match="unknown firewall backend"):
        fw.firewall_commands([], "pf")


def test_apply_without_the_tool_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(InputError, match="not installed"):
        fw.apply([["nft", "list", "ruleset"]])


def test_apply_runs_each_command_without_a_shell(tmp_path, monkeypatch):
    """--apply path with stand-in nft/ipset/iptables binaries that record their arguments."""
    log = tmp_path / "calls.log"
    for tool in ("nft", "ipset", "iptables", "ip6tables"):
        script = tmp_path / tool
        rc = "1" if tool.endswith("iptables") else "0"  # "-C" says the rule is missing; inserts succeed
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n'
                          f'case "$1" in -C) exit {rc};; esac\nexit 0\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    bans = [Ban(target="192.0.2.1", until=NOW + 100)]
    res = fw.apply(fw.firewall_commands(bans, "nft", now=NOW))
    assert all(r["ok"] for r in res)
    calls = log.read_text().splitlines()
    assert "nft add element inet fsbrain banned4 { 192.0.2.1 timeout 100s }" in calls
    log.write_text("")
    res = fw.apply(fw.firewall_commands(bans, "iptables", now=NOW))
    calls = log.read_text().splitlines()
    assert "iptables -C INPUT -m set --match-set fsbrain4 src -j DROP" in calls
    assert "iptables -I INPUT -m set --match-set fsbrain4 src -j DROP" in calls
    assert "ipset add fsbrain4 192.0.2.1 timeout 100 -exist" in calls
