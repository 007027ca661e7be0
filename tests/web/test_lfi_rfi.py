"""fsbrain's own LFI / RFI rules (labels web_lfi, web_rfi): traversal in its encodings, OS and credential files
(Unix and Windows), PHP/Java stream wrappers, remote includes (trailing ``?``, null byte, fragment, include-path
parameters, user-info host tricks, UNC paths), in query, body, headers, cookies and XML, with the rules alone
(the model must not be needed) — and the ordinary values a bank's site sees that must pass."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from fsbrain.domains.web.inspector import WebInspector

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def rules_pl1():
    return WebInspector(paranoia=1, model=False)


@pytest.fixture(scope="module")
def full_pl1():
    return WebInspector(paranoia=1)


def _get(value: str, *, raw: bool = False, name: str = "file") -> dict:
    return {"method": "GET", "uri": f"/page?{name}=" + (value if raw else quote(value, safe="")),
            "headers": {"Host": "bank.example.com", "User-Agent": "Mozilla/5.0"}, "body": ""}


LFI = [
    ("../../../../etc/passwd", False), ("..%2f..%2f..%2fetc%2fpasswd", True), ("%2e%2e%2f%2e%2e%2fetc%2fpasswd", True),
    ("..%252f..%252fetc%252fpasswd", True), ("%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", True),
    ("..%u2215..%u2215etc/passwd", True), ("....//....//etc/passwd", False), ("..\\..\\..\\windows\\win.ini", False),
    ("..%5c..%5cwindows%5cwin.ini", True), ("/etc/passwd%00", True), ("../../etc/passwd%00.jpg", True),
    ("/etc/shadow", False), ("/etc/master.passwd", False), ("/etc/subuid", False), ("/sys/class/net", False),
    ("/proc/self/environ", False), ("/home/app/.aws/credentials", False), ("/root/.docker/config.json", False),
    ("C:\\Windows\\System32\\drivers\\etc\\hosts", False), ("c:/boot.ini", False),
    ("C:\\Windows\\repair\\SAM", False), ("C:\\inetpub\\wwwroot\\web.config", False), ("..;/..;/WEB-INF/web.xml", False),
    ("php://filter/convert.base64-encode/resource=index.php", False), ("php://input", False),
    ("PHP://filter/read=string.rot13/resource=config", False), ("file:///etc/passwd", False), ("file:/etc/passwd", False),
    ("url:file:///etc/hosts", False), ("file://c:/windows/win.ini", False),
    ("data://text/plain;base64,PD9waHAgc3lzdGVtKCRfR0VUWydjbWQnXSk7Pz4=", False),
    ("data:text/plain;base64,PD9waHAgcGhwaW5mbygpOz8+", False), ("expect://id", False), ("zip://shell.jpg%23payload.php", True),
    ("compress.zlib:///etc/passwd", False), ("phar://uploads/avatar.jpg/x.php", False),
]


@pytest.mark.parametrize("value,raw", LFI, ids=[v for v, _ in LFI])
def test_lfi_payloads_are_caught_by_the_rules_alone(rules_pl1, value, raw):
    v = rules_pl1.inspect(_get(value, raw=raw))
    assert v["attack"], (value, v["rules"])
    assert "web_lfi" in v["labels"], (value, v["labels"])


RFI = [
    ("http://evil.example.com/shell.txt?", False), ("http://evil.example.com/shell.txt??", False),
    ("https://attacker.io/r57.php?", False), ("ftp://evil.example.com/x.txt?", False),
    ("http://evil.example.com/shell.txt%00", True), ("http://evil.example.com/shell.txt%2500", True),
    ("http://evil.example.com/c99.php#", False), ("http://1.2.3.4/x", False),
    ("http://bank.example.com%2f:pw@evil.example.com/", True), ("\\\\evil.example.com\\share\\x.php", False),
    ("jar:http://evil.example.com/b.zip!/a", False), ("local_file:///etc/passwd", False),
]


@pytest.mark.parametrize("value,raw", RFI, ids=[v for v, _ in RFI])
def test_rfi_payloads_are_caught_by_the_rules_alone(rules_pl1, value, raw):
    v = rules_pl1.inspect(_get(value, raw=raw, name="page"))
    assert v["attack"], (value, v["rules"])
    assert {"web_rfi", "web_ssrf", "web_lfi"} & set(v["labels"]), (value, v["labels"])


def test_remote_url_in_an_include_path_parameter(rules_pl1):
    v = rules_pl1.inspect(_get("https://foo.example.net", name="_CONF[path]"))
    assert v["attack"] and 610705 in v["rules"]
    body = "mosConfig_absolute_path=http%3A%2F%2Fevil.example.com%2Fx.txt"
    v = rules_pl1.inspect({"method": "POST", "uri": "/index.php", "body": body, "headers": {
        "Host": "bank.example.com", "Content-Type": "application/x-www-form-urlencoded"}})
    assert v["attack"] and "web_rfi" in v["labels"]


@pytest.mark.parametrize("where", ["header", "cookie", "xml_text", "xml_attr", "json"])
def test_traversal_and_os_files_outside_the_query(rules_pl1, where):
    h = {"Host": "bank.example.com", "User-Agent": "Mozilla/5.0"}
    req = {"method": "GET", "uri": "/", "headers": h, "body": ""}
    if where == "header":
        h["X-File"] = "cat /root/.ssh/id_rsa"
    elif where == "cookie":
        h["Cookie"] = "tpl=..%c0%af..%c0%afetc%c0%afpasswd"
    elif where == "xml_text":
        req.update(method="POST", body='<?xml version="1.0"?><r><a>/etc/passwd</a></r>')
        h["Content-Type"] = "application/xml"
    elif where == "xml_attr":
        req.update(method="POST", body='<?xml version="1.0"?><r><a probe="0x5c0x2e.%00/"></a></r>')
        h["Content-Type"] = "application/xml"
    else:
        req.update(method="POST", body='{"doc": "../../../../etc/shadow"}')
        h["Content-Type"] = "application/json"
    v = rules_pl1.inspect(req)
    assert v["attack"] and "web_lfi" in v["labels"], (where, v["rules"])


@pytest.mark.parametrize("path", ["/.git/config", "/.env", "/.aws/credentials", "/app/.claude/settings.local.json",
                                  "/.windsurf/rules/global.md", "/.cursorignore", "/static/%2egit/HEAD"])
def test_hidden_files_in_the_path(rules_pl1, path):
    v = rules_pl1.inspect({"method": "GET", "uri": path, "headers": {"Host": "bank.example.com"}})
    assert v["attack"] and "web_lfi" in v["labels"], (path, v["rules"])


@pytest.mark.parametrize("path", ["/.well-known/security.txt", "/.well-known/openid-configuration",
                                  "/static/app.9f3a.js", "/statements/2024-05.pdf", "/api/v1/accounts/..."])
def test_ordinary_paths_pass(rules_pl1, path):
    v = rules_pl1.inspect({"method": "GET", "uri": path, "headers": {"Host": "bank.example.com"}})
    assert not ({610607, 610602, 610603} & set(v["rules"])), (path, v["rules"])


BENIGN = ["/account/statements/2024-05.pdf", "see docs/api.md", "https://www.bank.example.com/help?topic=cards",
          "https://www.google.com/search?q=bank", "https://partner.example.com/notify?order=651682",
          "http://example.com/image.png", "file.txt", "report_2024.xlsx", "Q1..Q4 results", "data: 2024 report",
          "my passwd is long", "etc. and so on", "上海市浦东新区 88号", "C:\\Users\\me\\Documents\\report.xlsx",
          "mailto:service@bank.example.com", "https://user@example.com/profile"]


@pytest.mark.parametrize("value", BENIGN)
def test_ordinary_values_pass(rules_pl1, full_pl1, value):
    assert not {"web_lfi", "web_rfi"} & set(rules_pl1.inspect(_get(value))["labels"]), value
    v = full_pl1.inspect(_get(value, name="q"))
    assert not {"web_lfi", "web_rfi"} & set(v["labels"]), (value, v["rules"])


def test_crs_lfi_rfi_training_split_detection_with_rules_alone():
    """The CRS v4 LFI/RFI regression tests of the training split (never the held-out split): fsbrain's own
    rules alone catch at least 45 of the 66 at PL1 (15 before the LFI/RFI rule work)."""
    if not (SHARED / "crs-regression").is_dir():
        pytest.skip(f"needs the CRS regression tests under {SHARED / 'crs-regression'}")
    from fsbrain.domains.web import ml

    insp = WebInspector(paranoia=1, model=False)
    n = hit = 0
    for key, _cls, req in ml.crs_attack_tests(SHARED):
        if ml.heldout(key) or key.split(":")[1][:3] not in ("930", "931"):
            continue
        h = {"Host": "localhost", **req["headers"]}
        if req["body"] and not any(k.lower() == "content-length" for k in h):
            h["Content-Length"] = str(len(req["body"].encode("utf-8", "surrogateescape")))
        n += 1
        hit += insp.inspect({**req, "headers": h})["attack"]
    assert n >= 60
    assert hit >= 45, f"{hit}/{n}"


# -- web roots and absolute server paths to scripts --------------------------------------------------------------
# PL1: web-root folders joined the OS-file list of 610602 (CRS v4 930120 lists var/www and xampp/htdocs at PL1);
# PL2: 610609, an absolute file-system path (under a system folder, not a URL path) to a server-side script.

WEBROOTS = ["/var/www/html/index.php", "/var/www/html/config.inc", "/srv/www/htdocs/app/.env.php",
            "/usr/share/nginx/html/index.html", "C:\\xampp\\htdocs\\index.php", "/opt/lampp/htdocs/dashboard/",
            "/var/www", "/usr/local/apache2/htdocs/cgi-bin/test-cgi"]


@pytest.mark.parametrize("value", WEBROOTS)
@pytest.mark.parametrize("paranoia", [1, 2])
def test_webroot_paths_are_caught_at_pl1(value, paranoia):
    v = WebInspector(paranoia=paranoia).inspect(_get(value))
    assert v["attack"] and 610602 in v["rules"] and "web_lfi" in v["labels"], (value, v["rules"])
    assert 610602 not in v["suppressed_rules"]


SCRIPT_PATHS = ["/tmp/shell.php", "/opt/app/webapps/ROOT/cmd.jsp", "/home/bob/public_html/wp-config.bak.php",
                "/usr/local/www/apache24/data/x.php", "/dev/shm/s.phtml", "D:\\sites\\shop\\upload\\x.aspx",
                "/var/lib/php/sessions/x.inc", "file:///opt/app/run.sh"]


@pytest.mark.parametrize("value", SCRIPT_PATHS)
def test_absolute_server_paths_to_scripts_are_pl2(value):
    v = WebInspector(paranoia=2).inspect(_get(value))
    assert v["attack"] and 610609 in v["rules"] and 610609 not in v["suppressed_rules"], (value, v["rules"])


def test_610609_scores_only_from_pl2(rules_pl1):
    v = rules_pl1.inspect(_get("/opt/app/webapps/ROOT/cmd.jsp"))
    assert not v["attack"] and v["rule_score"] == 0, v


URL_PATHS = ["/forum/viewtopic.php", "/index.php", "/home/index.php", "/app/login.jsp", "/account/overview.aspx",
             "/web/cart.php?id=3", "/data/export.php", "/cgi-bin/search.pl?q=x", "https://www.example.com/var/x.php",
             "/home/me/file.txt", "/tmp/report.csv", "~/scripts/build.sh"]


@pytest.mark.parametrize("value", URL_PATHS)
def test_url_paths_and_user_files_pass_610609(value):
    v = WebInspector(paranoia=2, model=False).inspect(_get(value, name="next"))
    assert 610609 not in v["rules"] and 610602 not in v["rules"], (value, v["rules"])
