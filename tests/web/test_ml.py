"""The learned web engine: normalisation, scoring, explanations, persistence, retraining."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from fsbrain.core.errors import InputError
from fsbrain.domains.web import ml


def test_normalize_decodes_and_folds():
    assert ml.normalize("%2527%20OR%201%3D1") == "' or 0=0"
    assert ml.normalize("&lt;script&gt;") == "<script>"
    assert ml.normalize("上海  88号") == "一一 00一"


def test_ngrams_have_boundaries_and_all_lengths():
    g = ml.ngrams("ab")
    assert {"a", "b", "\x02a", "ab", "b\x03", "\x02ab", "ab\x03", "\x02ab\x03"} <= g


@pytest.mark.parametrize("payload,cls", [
    ("1' or '1'='1' -- ", "sqli"),
    ("1 union select password from users", "sqli"),
    ("<img src=x onerror=alert(document.cookie)>", "xss"),
    ("../../../../etc/passwd", "lfi"),
    (";cat /etc/passwd", "rce"),
])
def test_shipped_model_flags_attacks_with_class(payload, cls):
    s = ml.WebModel.load_default().score_value(payload)
    assert s.p_attack > 0.9
    assert s.attack_class == cls
    assert s.top_ngrams and all(w > 0 for _, w in s.top_ngrams)


@pytest.mark.parametrize("value", ["招商银行 网点 营业时间", "O'Brien", "I'd like to drop the overdraft and select the basic plan",
                                   "Dinner with Mary -- split 3 ways", "how do I update my address?"])
def test_shipped_model_passes_natural_language(value):
    s = ml.WebModel.load_default().score_value(value)
    assert s.p_attack < 0.5
    assert s.attack_class == "benign" and s.top_ngrams == []


def test_plain_values_skip_the_model():
    m = ml.WebModel.load_default()
    assert ml.is_plain("2024-05-01") and ml.is_plain("张三") and not ml.is_plain("a b")
    scored = m.score_params([("ARGS_GET:d", "2024-05-01"), ("ARGS_GET:q", "1' or 1=1--")])
    assert [n for n, _ in scored] == ["ARGS_GET:q"]


def test_save_load_roundtrip(tmp_path):
    m = ml.WebModel.load_default()
    p = tmp_path / "m.json.gz"
    m.save(p)
    m2 = ml.WebModel.load(p)
    assert m2.vocab == m.vocab and np.array_equal(m2.weights, m.weights)
    assert m2.score_value("<script>alert(1)</script>").p_attack == pytest.approx(
        m.score_value("<script>alert(1)</script>").p_attack)


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        ml.WebModel.load(tmp_path / "missing.json.gz")
    bad = tmp_path / "bad.json.gz"
    with gzip.open(bad, "wt") as f:
        f.write(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match="not a web n-gram model"):
        ml.WebModel.load(bad)
    with gzip.open(bad, "wt") as f:
        f.write(json.dumps({"format": ml.MODEL_FORMAT, "version": ml.MODEL_VERSION, "ngram_range": [1, 4], "vocab": ["a"],
                            "classes": list(ml.CLASSES), "weights_f32_b64": "AAAA", "bias": [0] * 9}))
    with pytest.raises(InputError, match="corrupt web model"):
        ml.WebModel.load(bad)
    plain = tmp_path / "plain.json.gz"
    plain.write_text("not gzip")
    with pytest.raises(InputError, match="cannot read web model"):
        ml.WebModel.load(plain)


def test_request_params_cover_query_form_json_multipart():
    p = ml.request_params({"uri": "/a/b?x=1&y=%27", "headers": {"Content-Type": "application/json"},
                           "body": '{"user": {"name": "bob"}, "tags": ["t1"]}'})
    assert ("REQUEST_FILENAME", "/a/b") in p and ("ARGS_GET:y", "%27") in p
    assert ("json.user.name", "bob") in p and ("json.tags[0]", "t1") in p
    body = ('--XX\r\nContent-Disposition: form-data; name="doc"\r\n\r\nhello\r\n'
            '--XX\r\nContent-Disposition: form-data; name="f"; filename="a b.pdf"\r\n\r\n%PDF\r\n--XX--\r\n')
    p = ml.request_params({"uri": "/u", "headers": {"Content-Type": "multipart/form-data; boundary=XX"}, "body": body})
    assert ("ARGS_POST:doc", "hello") in p and ("FILES:f", "a b.pdf") in p


def test_read_value_file_formats_and_errors(tmp_path):
    f = tmp_path / "v.txt"
    f.write_text('# comment\nxss\t<b onmouseover=x>\nplain value\n{"uri": "/s?q=hi+there"}\n', encoding="utf-8")
    vals = ml.read_value_file(f, default_class="benign")
    assert ("xss", "<b onmouseover=x>") in vals and ("benign", "plain value") in vals
    assert ("benign", "hi+there") in vals
    f.write_text('ok\n{"uri": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"v.txt:2: invalid JSON"):
        ml.read_value_file(f, default_class="benign")
    f.write_text("badclass\tvalue\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown class 'badclass'"):
        ml.read_value_file(f, default_class="benign")


def test_train_model_needs_benign_and_an_attack_class():
    with pytest.raises(InputError, match="at least one attack class"):
        ml.train_model([("benign", "a b"), ("benign", "c d")])
    with pytest.raises(InputError, match="unknown training class"):
        ml.train_model([("benign", "a"), ("evil", "b")])


def test_retrain_learns_a_sites_own_benign_values(tmp_path):
    # template strings this site really sends look like server-side template injection to the shipped model
    site_values = [f"{{{{customer.{f}}}}} / {{{{order.id}}}}-{i}" for i in range(60) for f in ("name", "city")]
    before = ml.WebModel.load_default()
    probe = "{{customer.name}} / {{order.id}}-7"
    assert before.score_value(probe).p_attack > 0.5
    benign = tmp_path / "benign.txt"
    benign.write_text("\n".join(site_values) + "\n", encoding="utf-8")
    attacks = tmp_path / "attacks.txt"
    attacks.write_text("\n".join(["sqli\t1' or '1'='1", "xss\t<script>alert(1)</script>", "rce\t{{7*7}}",
                                  "rce\t${{7*7}}", "lfi\t../../etc/passwd", "rce\t;id", "sqli\tunion select 1,2"] * 5),
                       encoding="utf-8")
    out = tmp_path / "m.json.gz"
    summary = ml.retrain(benign=benign, attacks=attacks, out=out, weight=3.0)
    after = ml.WebModel.load(out)
    assert after.score_value(probe).p_attack < 0.5
    assert after.score_value("1' or '1'='1").p_attack > 0.5
    assert summary["tnr_user_heldout"]["after"] >= summary["tnr_user_heldout"]["before"]


def test_retrain_without_attacks_is_refused(tmp_path):
    benign = tmp_path / "b.txt"
    benign.write_text("hello world\n", encoding="utf-8")
    with pytest.raises(InputError, match="no attack values"):
        ml.retrain(benign=benign, out=tmp_path / "m.json.gz")


@pytest.mark.conformance
def test_heldout_libinjection_detection(shared_data):
    """Per-value detection on the libinjection lines the shipped model never saw (the heldout split)."""
    m = ml.WebModel.load_default()
    vals = [(c, v) for c, v in ml.libinjection_values(shared_data("libinjection").parent) if ml.heldout(v)]
    att = [v for c, v in vals if c != "benign"]
    hits = sum(not ml.is_plain(v) and m.score_value(v, explain=False).p_attack >= 0.5 for v in att)
    assert len(att) > 1000
    assert hits / len(att) >= 0.95


def test_cli_train_without_attack_values_names_the_problem(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from fsbrain.cli import _register, app

    _register()
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here
    benign = tmp_path / "b.txt"
    benign.write_text("hello world\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["web", "train", "--benign", str(benign), "--out", str(tmp_path / "m.json.gz")])
    assert res.exit_code != 0
    assert isinstance(res.exception, InputError) and "no attack values" in res.exception.message
    res = CliRunner().invoke(app, ["web", "train", "--benign", str(benign), "--corpus", str(tmp_path)])
    assert isinstance(res.exception, InputError) and "neither libinjection/ nor crs-regression/" in res.exception.message


def test_request_params_header_kinds_any_case():
    """Header names are classified once each (``ml._HEADER_KINDS``), whatever their case: Content-Type picks the body
    parser, Cookie gives one parameter per cookie, Host/Accept… are left to the rules, the rest are values."""
    req = {"uri": "/p", "body": "a=1", "headers": [["CONTENT-TYPE", "application/x-www-form-urlencoded"],
                                                   ["cookie", "s=1; t=2"], ["HOST", "h"], ["X-Note", "hi there"],
                                                   [7, "seven"]]}
    for _ in range(2):  # the second time from the memo
        assert ml.request_params(req, headers=True) == [
            ("REQUEST_FILENAME", "/p"), ("REQUEST_COOKIES:s", "1"), ("REQUEST_COOKIES:t", "2"),
            ("REQUEST_HEADERS:X-Note", "hi there"), ("REQUEST_HEADERS:7", "seven"), ("ARGS_POST:a", "1")]
    assert ml.request_params(req) == [("REQUEST_FILENAME", "/p"), ("ARGS_POST:a", "1")]
