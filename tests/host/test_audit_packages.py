"""Debian version comparison (with dpkg itself as the oracle), dpkg status parsing, advisory files."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.core.errors import InputError, PolicyError
from fsbrain.domains.host.audit import Version, compare, load_advisories, run_audit

KNOWN = [
    ("1.0", "1.0", 0), ("1.0", "1.0-0", 0), ("0:1.0", "1.0", 0), ("1.00", "1.0", 0), ("1.0a0", "1.0a", 0),
    ("1.0~rc1", "1.0", -1), ("1.0~~", "1.0~", -1), ("1.0~", "1.0", -1), ("1.0", "1.0+b1", -1),
    ("1.0", "1.0.1", -1), ("1.0a", "1.0", 1), ("1.0-1", "1.0", 1), ("1:0.1", "9.9", 1),
    ("2:1.0", "1:9.9", 1), ("1.2.3-4ubuntu1", "1.2.3-4", 1), ("9.2p1-2+deb12u2", "9.2p1-2+deb12u3", -1),
    ("5.6.1+really5.4.5-1", "5.6.1-1", 1), ("1.9.5p2-1", "1.9.5p1-1", 1), ("1.8.27-1+deb10u3", "1.8.27-1", 1),
    ("0.105-31+deb11u1", "0.105-31", 1), ("1.0-1~bpo1", "1.0-1", -1), ("10", "9", 1), ("a", "b", -1),
    ("1.0.", "1.0", 1), ("1.0+", "1.0.", -1),
]


@pytest.mark.parametrize(("a", "b", "want"), KNOWN)
def test_known_comparisons(a, b, want):
    assert compare(a, b) == want
    assert compare(b, a) == -want


@pytest.mark.parametrize("bad", ["", " ", "1.0 beta", "x:1.0", "1.0/2", ":1.0", "1:-1"])
def test_invalid_versions_rejected(bad):
    with pytest.raises(InputError, match="invalid Debian version"):
        Version.parse(bad)


_chunk = st.text(alphabet="0123456789", min_size=1, max_size=3)
_sep = st.sampled_from([".", "+", "~", "", "a", "b", "p", "rc", "really"])
_upstream = st.builds(lambda head, parts: head + "".join(s + c for s, c in parts),
                      _chunk, st.lists(st.tuples(_sep, _chunk), max_size=4))
versions = st.builds(
    lambda epoch, up, rev: (f"{epoch}:" if epoch is not None else "") + up + (f"-{rev}" if rev else ""),
    st.one_of(st.none(), st.integers(0, 3)), _upstream, st.one_of(st.none(), _upstream))


@given(versions, versions, versions)
@settings(max_examples=300, deadline=None)
def test_order_properties(a, b, c):
    va, vb, vc = Version.parse(a), Version.parse(b), Version.parse(c)
    assert compare(a, a) == 0
    assert compare(a, b) == -compare(b, a)
    if va <= vb and vb <= vc:
        assert va <= vc
    if va == vb:
        assert hash(va) == hash(vb)
    assert Version.parse(str(va)) == va


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed (used as the oracle)")
@given(versions, versions)
@settings(max_examples=150, deadline=None)
def test_matches_dpkg_compare_versions(a, b):
    def dpkg(op: str) -> bool:
        return subprocess.run(["dpkg", "--compare-versions", a, op, b], capture_output=True).returncode == 0
    want = 0 if dpkg("eq") else (-1 if dpkg("lt") else 1)
    assert compare(a, b) == want


def write(root: Path, path: str, text: str) -> Path:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


STATUS = """Package: openssh-server
Status: install ok installed
Priority: optional
Architecture: amd64
Source: openssh
Version: 1:9.2p1-2+deb12u2
Description: secure shell (SSH) server
 multi-line description that mentions Version: 0.0
 .

Package: sudo
Status: install ok installed
Version: 1.9.13p3-1+deb12u1

Package: liblzma5
Status: install ok installed
Source: xz-utils (5.6.1-1)
Version: 5.6.1-1

Package: policykit-1
Status: deinstall ok config-files
Version: 0.105-31

Package: libbroken
Status: install ok installed
Version: not a version!
"""


def example() -> Path:
    return Path(str(resources.files("fsbrain.domains.host") / "data" / "advisories.example.yaml"))


def test_example_advisories_against_fake_bookworm_host(tmp_path):
    write(tmp_path, "/var/lib/dpkg/status", STATUS)
    write(tmp_path, "/etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n')
    r = run_audit(tmp_path, checks=["packages"], advisories=example())
    got = sorted((f.value, f.severity) for f in r.findings)
    assert got == [("liblzma5 5.6.1-1", "critical"), ("openssh-server 1:9.2p1-2+deb12u2", "critical")]
    ssh = next(f for f in r.findings if f.value.startswith("openssh"))
    assert "CVE-2024-6387" in ssh.title and "1:9.2p1-2+deb12u3" in ssh.remedy and ssh.line == 1
    assert any("bad version" in n for n in r.notes)
    assert {a.labels[0] for a in r.to_alerts()} == {"vulnerable_component"}


def test_fixed_versions_and_release_filter(tmp_path):
    write(tmp_path, "/var/lib/dpkg/status", STATUS.replace("deb12u2", "deb12u3").replace("5.6.1-1", "5.6.1+really5.4.5-1"))
    write(tmp_path, "/etc/os-release", "VERSION_CODENAME=bookworm\n")
    assert run_audit(tmp_path, checks=["packages"], advisories=example()).findings == []


def test_ranges_introduced_and_last_affected_json(tmp_path):
    write(tmp_path, "/var/lib/dpkg/status", STATUS)
    adv = write(tmp_path, "/adv.json", json.dumps({"format": "fsbrain-advisories/1", "advisories": [
        {"id": "A-1", "package": ["sudo"], "cves": ["CVE-2023-22809"], "severity": "medium",
         "affected": [{"introduced": "1.8.0", "last_affected": "1.9.13p3-1+deb12u1"}]},
        {"id": "A-2", "package": "sudo", "severity": "low", "affected": [{"introduced": "1.9.14"}]},
        {"id": "A-3", "package": "openssh", "release": "bullseye", "affected": [{"fixed": "1:99"}]}]}))
    # without os-release the release is unknown and release-bound entries apply (the safe side)
    r = run_audit(tmp_path, checks=["FSB-PKG-001"], advisories=adv)
    assert sorted(f.detail for f in r.findings) == ["advisory A-1", "advisory A-3"]
    write(tmp_path, "/usr/lib/os-release", "ID=debian\nVERSION_CODENAME=bookworm\n")
    r = run_audit(tmp_path, checks=["FSB-PKG-001"], advisories=adv)
    assert [(f.value, f.detail) for f in r.findings] == [("sudo 1.9.13p3-1+deb12u1", "advisory A-1")]


def test_bad_advisory_file_lists_every_problem(tmp_path):
    bad = write(tmp_path, "/bad.yaml", """format: fsbrain-advisories/1
advisories:
  - id: X
    package: sudo
    cves: [CVE-XX]
    severity: apocalyptic
    affected: [{fixed: "1.0 beta"}]
  - id: X
    affected: []
""")
    with pytest.raises(PolicyError) as info:
        load_advisories(bad)
    msgs = " | ".join(p["message"] for p in info.value.problems)
    for needle in ("CVE ids", "unknown severity", "invalid Debian version", "duplicate id", "package name",
                   "non-empty list"):
        assert needle in msgs
    assert str(bad) in info.value.message


def test_unreadable_or_wrong_format_advisories(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_advisories(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="expected 'format"):
        load_advisories(write(tmp_path, "/x.yaml", "just: a mapping\n"))
    with pytest.raises(PolicyError, match="invalid YAML"):
        load_advisories(write(tmp_path, "/y.yaml", "a: [unclosed\n"))


def test_package_check_without_advisories_is_noted(tmp_path):
    write(tmp_path, "/var/lib/dpkg/status", STATUS)
    r = run_audit(tmp_path, checks=["packages"])
    assert r.findings == [] and any("no advisory file" in n for n in r.notes)
