"""The public rule-engine API other modules build on, and prefilter soundness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fsbrain.domains.web as web
from fsbrain.domains.web import HttpRequest, WebRuleEngine


def test_exported_members():
    assert set(web.__all__) == {"HttpRequest", "MatchedRule", "ParsedBody", "RequestLimits", "RuleVerdict",
                                "UploadedFile", "WebRuleEngine", "parse_raw_request"}
    for name in web.__all__:
        assert getattr(web, name) is not None


def test_from_crs_reports_missing_rules(tmp_path):
    from fsbrain.core.errors import PolicyError

    with pytest.raises(PolicyError, match="no CRS rule files"):
        WebRuleEngine.from_crs(tmp_path)


def test_from_crs_debian_like_layout(tmp_path, shared_data):
    crs = shared_data("crs-regression")
    rules = tmp_path / "usr-share-modsecurity-crs" / "rules"
    rules.mkdir(parents=True)
    for f in (crs / "rules").iterdir():
        if f.name.startswith("REQUEST-9") or f.suffix == ".data":
            (rules / f.name).write_bytes(f.read_bytes())
    # the folder's own setup wins over a system-wide /etc/modsecurity/crs one (CRS v4 refuses to run
    # without a setup: rule 901001), so the result does not depend on Debian's package being installed
    setup = next((p for p in (crs / "crs-setup.conf.example", crs / "crs-setup.conf") if p.exists()), None)
    if setup is None:
        pytest.skip("crs-regression has no crs-setup.conf(.example)")
    (rules.parent / "crs-setup.conf").write_bytes(setup.read_bytes())
    eng = WebRuleEngine.from_crs(rules.parent, paranoia=1)
    v = eng.inspect(HttpRequest.from_dict({"uri": "/?q=1%20union%20select%20pw%20from%20users",
                                           "headers": {"Host": "h", "User-Agent": "Mozilla/5.0", "Accept": "*/*"}}))
    assert v.blocked and "web_sqli" in v.labels and v.score >= 5


_ENG = WebRuleEngine.default(paranoia=2)
_ENG_NOPF = WebRuleEngine.default(paranoia=2, optimize=False)

_pieces = st.sampled_from(["union select", "<script>", "../", "etc/passwd", "' or 1=1", "%27", "%2e%2e/", "hello",
                           "${jndi:ldap://x}", "<?php", ";id", "http://127.0.0.1/", "sleep(5)", "onerror=", " ", "é"])


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(_pieces, max_size=6), body=st.lists(_pieces, max_size=4))
def test_prefilter_never_hides_a_match(parts, body):
    from urllib.parse import quote

    req = {"method": "POST", "uri": "/p?a=" + quote("".join(parts)), "headers": {
        "Host": "h", "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "".join(parts[:2])},
        "body": "b=" + quote("".join(body))}
    assert _ENG.inspect(HttpRequest.from_dict(req)).rule_ids == _ENG_NOPF.inspect(HttpRequest.from_dict(req)).rule_ids
