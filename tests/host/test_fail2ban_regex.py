"""Tag translation, RE2 compilation and literal pre-checks."""

from __future__ import annotations

import pytest

from fsbrain.domains.host.fail2ban_literals import required_literals
from fsbrain.domains.host.fail2ban_regex import RegexSet, compile_bytes, compile_failregex, translate_tags


@pytest.mark.parametrize("text,group,expected", [
    (b"from 192.0.2.1 port 1", "ip4", b"192.0.2.1"),
    (b"from ::ffff:192.0.2.1 port 1", "ip4", b"192.0.2.1"),
    (b"from 2001:db8::1 port 1", "ip6", b"2001:db8::1"),
    (b"from aaaa:bbbb:cccc:1234::1:1 port 1", "ip6", b"aaaa:bbbb:cccc:1234::1:1"),
    (b"from [2001:db8::2] port 1", "ip6", b"2001:db8::2"),
    (b"from host.example.com port 1", "dns", b"host.example.com"),
])
def test_host_tag(text, group, expected):
    rx = compile_failregex(r"^from <HOST> port \d+$")
    assert rx.engine == "re2"
    assert rx.groupdict(text)[group] == expected


def test_field_tags_and_repeated_names():
    pat = translate_tags(r"^(?:a <F-USER>\w+</F-USER>|b <F-USER>\w+</F-USER>) <F-ID>\d+</F-ID>")
    assert "(?P<user>" in pat and "(?P<user__1>" in pat and "(?P<fid>" in pat
    rx = compile_bytes(pat)
    assert rx.groupdict(b"b bob 42") == {"user": b"bob", "fid": b"42"}


def test_regex_set_first_in_priority_order():
    rs = RegexSet([compile_bytes(r"b(\d)"), compile_bytes(r"a(\d)"), compile_bytes(r"(\d)")])
    idx, spans = rs.first(b"xx a1 b2")
    assert idx == 0 and spans[1] == (7, 8)
    assert rs.first(b"nothing") is None


@pytest.mark.parametrize("pattern,expected", [
    (r"^Failed \S+ for (?P<user>.*?) from x$", (b"Failed ",)),
    (r"^(?:Connection (?:closed|reset)|Disconnected) by", (b"Connection ", b"Disconnected")),
    (r"^ab?c", None),
    (r"^x(?:long optional)?y", None),
    (r"^(?i)Failed", None),
    (r"\d+ users", (b" users",)),
])
def test_required_literals(pattern, expected):
    assert required_literals(pattern) == expected


def test_required_literals_never_reject_a_match():
    # every pattern's literal must be present in any text it matches
    cases = [(r"^User (?P<u>\S+|.*?) from (?P<h>\S+) not allowed because", b"User a b from 1.2.3.4 not allowed because x"),
             (r"^(?:Accepted|Failed) \w+ for", b"Accepted password for"),
             (r"^q(?:uit|uery)+ now", b"quituery now")]
    for pat, text in cases:
        lits = required_literals(pat)
        assert compile_bytes(pat).spans(text) is not None
        assert lits is None or any(lit in text for lit in lits)


def test_python_only_spellings_are_rewritten_not_misread():
    # RE2 would read "{,3}" as literal text; fail2ban filters use it as "{0,3}"
    rx = compile_failregex(r"^errors \(\d{,3}\);$")
    assert rx.engine == "re2"
    assert rx.spans(b"errors (12);") is not None
    assert compile_failregex(r"^end\Z").spans(b"end") is not None


@pytest.mark.parametrize("pattern,expected", [
    (r"^(?:Connection (?:closed|reset)|Disconnected) by", {ord("C"), ord("D")}),
    (r"^[iI]nvalid user", {ord("i"), ord("I")}),
    (r"^(?P<nofail>Failed publickey) for", {ord("F")}),
    (r"^\s*x", None),
    (r"^(?:error: )?Failed", None),
    (r"^a?b", None),
    (r"no anchor", None),
])
def test_first_bytes(pattern, expected):
    from fsbrain.domains.host.fail2ban_literals import first_bytes

    got = first_bytes(pattern)
    assert (None if got is None else set(got)) == expected


def test_first_bytes_never_exclude_a_real_match():
    from fsbrain.domains.host.fail2ban import load_filter, shipped_filters
    from fsbrain.domains.host.fail2ban_literals import first_bytes

    texts = [b"Failed password for root from 192.0.2.1 port 22 ssh2", b"Invalid user x from 192.0.2.1",
             b"Connection closed by 192.0.2.1 port 1 [preauth]", b"Disconnected from 192.0.2.1 port 1",
             b"Accepted password for a from 192.0.2.1 port 2 ssh2", b"error: PAM: x",
             b"warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x"]
    for name in shipped_filters():
        for rx in load_filter(name, options={"mode": "aggressive"}).failregex:
            compiled = compile_failregex(rx)
            fb = first_bytes(compiled.pattern)
            for t in texts:
                if fb is not None and compiled.spans(t) is not None:
                    assert t[0] in fb, (name, rx, t)
