"""The fail2ban filter loader: includes, interpolation, tags, options, errors; fuzzed with Hypothesis."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsbrain.core.errors import FsbrainError, InputError, PolicyError
from fsbrain.domains.host import fail2ban_regex
from fsbrain.domains.host.fail2ban import load_filter, parse_filter_spec, shipped_filters
from fsbrain.domains.host.logparse import LogFilter


def write(d: Path, name: str, text: str) -> Path:
    p = d / name
    p.write_text(text, encoding="utf-8")
    return p


def test_includes_interpolation_tags_and_init_override(tmp_path):
    write(tmp_path, "base.conf", "[DEFAULT]\n_daemon = \\S+\nprefix = ^%(_daemon)s:\n[lt_a]\nx = AAA\n")
    write(tmp_path, "demo.conf", """
[INCLUDES]
before = base.conf
after = extra.conf
[DEFAULT]
_daemon = demo
[Definition]
word-normal = bad
word-strict = worse
failregex = %(prefix)s <word-<mode>> login from <HOST>
            %(prefix)s <lt_a/x> from <HOST>
ignoreregex =
journalmatch = _COMM=demo
[Init]
mode = normal
""")
    write(tmp_path, "extra.conf", "[Definition]\nmaxlines = 1\n")
    d = load_filter("demo", [tmp_path])
    assert d.failregex == ["^demo: bad login from <HOST>", "^demo: AAA from <HOST>"]
    assert any("journalmatch" in n for n in d.notes)
    strict = load_filter("demo[mode=strict]", [tmp_path])
    assert strict.failregex[0] == "^demo: worse login from <HOST>"
    flt = LogFilter(d)
    assert flt.process(b"demo: bad login from 192.0.2.1").host == "192.0.2.1"


def test_local_override_and_known(tmp_path):
    write(tmp_path, "svc.conf", "[Definition]\nfailregex = ^fail from <HOST>$\n")
    write(tmp_path, "svc.local", "[Definition]\nfailregex = <known/failregex>\n            ^deny <HOST>$\n")
    d = load_filter("svc", [tmp_path])
    assert d.failregex == ["^fail from <HOST>$", "^deny <HOST>$"]


def test_user_dir_takes_precedence_over_shipped(tmp_path):
    write(tmp_path, "sshd.conf", "[Definition]\nfailregex = ^custom <HOST>$\n")
    assert load_filter("sshd", [tmp_path]).failregex == ["^custom <HOST>$"]
    assert len(load_filter("sshd").failregex) > 10


@pytest.mark.parametrize("files,match", [
    ({"a.conf": "[INCLUDES]\nbefore = b.conf\n[Definition]\nfailregex = x <HOST>\n",
      "b.conf": "[INCLUDES]\nbefore = a.conf\n"}, "include cycle"),
    ({"a.conf": "[INCLUDES]\nbefore = missing.conf\n[Definition]\nfailregex = x\n"}, "not found"),
    ({"a.conf": "[Definition]\nignoreregex = x\n"}, "no failregex"),
    ({"a.conf": "[Definition]\nfailregex = %(nope)s\n"}, "names no option"),
    ({"a.conf": "[Definition]\nx = <y>\ny = <x>\nfailregex = <x>\n"}, "refers to itself"),
    ({"a.conf": "no section header\n"}, "not a valid filter file"),
    ({"a.conf": "[Definition]\nfailregex = ^(unclosed <HOST>\n"}, "invalid regex"),
    ({"a.conf": "[Definition]\nfailregex = x\nmaxlines = many\n"}, "maxlines"),
])
def test_bad_filter_files_name_the_problem(tmp_path, files, match):
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(PolicyError, match=match) as info:
        LogFilter(load_filter("a", [tmp_path]))
    assert "a.conf" in str(info.value) or "conf" in str(info.value)


@pytest.mark.parametrize("spec", ["../etc/passwd", "a b", "", "x[mode]"])
def test_bad_filter_names(spec):
    with pytest.raises(InputError):
        load_filter(spec)


def test_spec_options():
    assert parse_filter_spec("sshd[mode=aggressive, publickey=invalid]") == (
        "sshd", {"mode": "aggressive", "publickey": "invalid"})


def test_pcre_only_regex_falls_back_bounded_and_is_counted(tmp_path):
    write(tmp_path, "la.conf", "[Definition]\nfailregex = ^login (?!ok)\\S+ from <HOST>$\n")
    flt = LogFilter(load_filter("la", [tmp_path]))
    assert flt.engines == {"re2": 0, "python_re": 1}
    assert flt.fallback_regexes and "(?!ok)" in flt.fallback_regexes[0]
    assert flt.process(b"login bad from 192.0.2.3").status == "failure"
    assert flt.process(b"login ok from 192.0.2.3").status == "missed"
    # bounded: the fallback never sees more than FALLBACK_MAX_LINE bytes
    long = b"login x from 192.0.2.3" + b" " * (fail2ban_regex.FALLBACK_MAX_LINE + 10) + b"tail"
    assert flt.process(long).status == "missed"


def test_every_shipped_filter_compiles_on_re2_only():
    for name in shipped_filters():
        for mode in ("normal", "aggressive"):
            flt = LogFilter(load_filter(name, options={"mode": mode}))
            assert flt.engines["python_re"] == 0, (name, flt.fallback_regexes)


_text = st.text(alphabet=string.printable + "<>%()[]{}\\/|", max_size=200)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_text, section=st.sampled_from(["Definition", "DEFAULT", "Init", "INCLUDES", "x"]))
def test_fuzz_loader_never_crashes(tmp_path, body, section):
    p = tmp_path / "fz.conf"
    p.write_text(f"[{section}]\nfailregex = {body}\nother = {body}\n", encoding="utf-8")
    try:
        LogFilter(load_filter(str(p)))
    except FsbrainError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_fuzz_loader_binary_files(tmp_path, raw):
    p = tmp_path / "bin.conf"
    p.write_bytes(raw)
    try:
        LogFilter(load_filter(str(p)))
    except FsbrainError:
        pass
