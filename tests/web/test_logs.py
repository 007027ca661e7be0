"""Access-log parsing and scanning: formats, bad lines with line numbers, fuzzing, alerts and summary."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fsbrain.core.errors import InputError
from fsbrain.domains.web.bots import BotDetector
from fsbrain.domains.web.cc import CCDetector
from fsbrain.domains.web.logs import LogRecord, parse_line, parse_time, scan_lines

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
T0 = 1_730_000_000


def combined(ip: str, ts: float, request: str, status: int = 200, ua: str = CHROME, ref: str = "-") -> str:
    t = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(ts))
    return f'{ip} - - [{t}] "{request}" {status} 512 "{ref}" "{ua}"'


class CountingInspector:
    """Stands in for the rules+model inspector where a test is about the scanner, not detection."""

    def __init__(self):
        self.seen = 0

    def inspect(self, req):
        self.seen += 1
        bad = "attack" in req["uri"]
        return {"attack": bad, "score": 10 if bad else 0, "labels": ["web_sqli"] if bad else [], "rules": [],
                "reasons": [{"source": "rule", "id": "1", "label": "web_sqli"}] if bad else []}


def test_parse_combined_nginx_with_extra_fields():
    line = combined("203.0.113.7", T0, "GET /a?id=1 HTTP/1.1", ua='Mozilla/5.0 \\"quoted\\"') + ' "10.0.0.1" rt=0.003'
    r = parse_line(line, 7)
    assert (r.ip, r.method, r.uri, r.status, r.line_no) == ("203.0.113.7", "GET", "/a?id=1", 200, 7)
    assert r.user_agent == 'Mozilla/5.0 "quoted"' and r.ts == T0


def test_parse_common_log_format_and_bad_request_line():
    r = parse_line('192.0.2.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326', 1)
    assert r.uri == "/apache_pb.gif" and r.user_agent == "" and r.ts == 971211336
    r = parse_line('192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "\\x16\\x03\\x01\\x00" 400 0 "-" "-"', 2)
    assert r.malformed_request and r.method == "-"


def test_parse_json_lines():
    r = parse_line(json.dumps({"remote_addr": "192.0.2.9", "time_iso8601": "2024-10-27T03:33:20+00:00",
                               "request": "POST /login HTTP/1.1", "status": "302", "http_user_agent": "curl/8",
                               "request_body": "u=a&p=b", "http_cookie": "sid=1"}), 3)
    assert (r.method, r.uri, r.status, r.body) == ("POST", "/login", 302, "u=a&p=b")
    assert r.headers["Cookie"] == "sid=1" and r.ts == 1_730_000_000
    r = parse_line(json.dumps({"ip": "192.0.2.9", "ts": 1_730_000_000_123, "method": "get", "uri": "/x",
                               "args": "q=1"}), 4)
    assert r.ts == pytest.approx(1_730_000_000.123) and r.uri == "/x?q=1" and r.method == "GET"


@pytest.mark.parametrize("line,msg", [
    ("hello world", "not a combined/common log line"),
    ("{bad json", "invalid JSON"),
    ("[1, 2]", "not a combined"),
    ('{"uri": "/"}', "needs a client address"),
    ('{"ip": "1.2.3.4", "time": "yesterday", "uri": "/"}', "unrecognised time"),
    ('{"ip": "1.2.3.4", "time": "2024-01-01T00:00:00", "uri": "/"}', "has no time zone"),
    ('{"ip": "1.2.3.4", "time": 5, "uri": "/", "status": "abc"}', "status 'abc' is not a number"),
    ('192.0.2.1 - - [99/Zzz/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1', "unrecognised time"),
])
def test_bad_lines_name_the_problem(line, msg):
    with pytest.raises(InputError, match=msg):
        parse_line(line, 1)


def test_parse_time_variants():
    assert parse_time("10/Oct/2000:13:55:36 -0700") == 971211336
    assert parse_time(971211336000) == 971211336
    assert parse_time("2000-10-10T20:55:36Z") == 971211336


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_fuzz_parse_line_only_raises_input_error(s):
    try:
        rec = parse_line(s, 1)
    except InputError:
        return
    assert isinstance(rec, LogRecord)


_field = st.text(alphabet=st.characters(blacklist_characters='"\n\r'), max_size=40)


@settings(max_examples=200, deadline=None)
@given(ip=st.ip_addresses(v=4).map(str), ts=st.integers(0, 2**31 - 1), path=_field, ua=_field,
       status=st.integers(100, 599))
def test_fuzz_generated_combined_lines_roundtrip(ip, ts, path, ua, status):
    line = combined(ip, ts, f"GET /{path.replace(' ', '%20')} HTTP/1.1", status=status, ua=ua)
    rec = parse_line(line, 1)
    assert rec.ip == ip and rec.ts == ts and rec.status == status


ATTACK_LINE = combined("192.0.2.1", T0, "GET /attack HTTP/1.1")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=120), st.just(ATTACK_LINE)), max_size=30))
def test_fuzz_scan_never_crashes_and_counts_lines(lines):
    res = scan_lines(lines, inspector=CountingInspector(), bots=BotDetector(), cc=CCDetector())
    s = res.summary
    assert s["lines"] == len(lines)
    assert s["parsed"] + s["bad_lines"] == sum(1 for x in lines if x.strip())
    assert s["attack_requests"] == lines.count(ATTACK_LINE)


def _mixed_log() -> list[str]:
    lines = []
    for i in range(300):
        lines.append(combined(f"10.0.0.{i % 40}", T0 + i, f"GET /page/{i % 25} HTTP/1.1"))
    for i in range(20):
        lines.append(combined("203.0.113.5", T0 + 50 + i, "GET /item?id=1%27%20union%20select%20password%20from%20users-- HTTP/1.1",
                              status=403, ua="sqlmap/1.7.2#stable (https://sqlmap.org)"))
    for i in range(1200):
        lines.append(combined(f"198.51.100.{i % 3}", T0 + 100 + i / 100, "POST /login HTTP/1.1",
                              ua="python-requests/2.31"))
    lines.append("not a log line")
    lines.append(combined("66.249.66.1", T0 + 200, "GET / HTTP/1.1",
                          ua="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"))
    return lines


def test_scan_alerts_and_summary_with_the_real_inspector():
    from fsbrain.domains.web.inspector import WebInspector

    res = scan_lines(_mixed_log(), inspector=WebInspector(paranoia=1), bots=BotDetector(), cc=CCDetector())
    s = res.summary
    assert s["bad_lines"] == 1 and s["bad_line_samples"] == [{"line": 1521, "error": s["bad_line_samples"][0]["error"]}]
    assert s["top_attackers"][0]["ip"] == "203.0.113.5" and s["top_attackers"][0]["attacks"] == 20
    assert "web_sqli" in s["top_attackers"][0]["labels"]
    assert s["bots"]["by_category"].get("scanner") == 1 and s["bots"]["by_category"].get("library") == 3
    assert s["bots"]["good_bot_requests"]
    assert s["floods"] and all(f["entity"].startswith("198.51.100.") for f in s["floods"])
    sources = {a.source for a in res.alerts}
    assert sources == {"web.inspector", "web.bots", "web.cc"}
    web = next(a for a in res.alerts if a.source == "web.inspector")
    assert web.entity == "203.0.113.5" and web.details["line"] == 301 and web.reasons
    assert not any(a.entity and a.entity.startswith("10.0.0.") for a in res.alerts)


def test_cli_scan_jsonl_and_table(tmp_path):
    from fsbrain.cli import _register, app

    _register()
    log = tmp_path / "access.log"
    log.write_text("\n".join(_mixed_log()) + "\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["web", "scan", str(log), "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert "summary" in rows[-1] and rows[-1]["summary"]["bad_lines"] == 1
    assert all("alert_id" in r for r in rows[:-1])
    res = CliRunner().invoke(app, ["web", "scan", str(log)])
    assert res.exit_code == 0 and "Top attackers" in res.stdout and "line 1521" in res.stdout
    res = CliRunner().invoke(app, ["web", "scan", str(tmp_path / "missing.log")])
    assert res.exit_code != 0


def test_lone_surrogate_in_a_line_is_parsed_not_crashed():
    rec = parse_line(combined("192.0.2.9", T0, "GET / HTTP/1.1", ua="\ud800bot"), 1)
    assert rec.ip == "192.0.2.9" and "bot" in rec.user_agent


def test_scan_summary_counts_requests_over_a_limit():
    from fsbrain.domains.web.inspector import WebInspector
    from fsbrain.domains.web.request import RequestLimits

    insp = WebInspector(paranoia=1, limits=RequestLimits(max_uri_bytes=200))
    lines = [combined("192.0.2.7", T0 + i, f"GET /p?q={'a' * (300 if i % 2 else 10)} HTTP/1.1") for i in range(6)]
    res = scan_lines(lines, inspector=insp)
    assert res.summary["limits_hit"] == {"max_uri_bytes": 3}
    assert scan_lines(lines[:1], inspector=insp).summary["limits_hit"] == {}
