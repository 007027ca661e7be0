"""Benign values shaped like attack syntax — file paths, Windows paths, document names, redirect paths, JSON and
filter expressions in parameters — pass at PL1, and attacks of the same shapes are still caught.

The benign values below are written by hand for this test: none of them is in the model's training data
(checked below), and they use folder, file and key names that ``scripts/build_web_benign.py`` does not generate.
The shipped model before the shaped training values (2026-12) flagged the reported ones at PL1
(``/home/me/file.txt`` web_rce p=0.91, ``C:\\Users\\me\\Documents\\report.xlsx`` web_xss p=0.92, ``{"a": 1}``
web_rce p=0.95) and scored many of the hand-written ones 0.5 or more.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from fsbrain.domains.web import ml
from fsbrain.domains.web.inspector import WebInspector

REPO = Path(__file__).resolve().parents[2]

BENIGN_PATHS = [
    "/home/dmitri/projects/q4-forecast.ods",
    "/Users/hana/Library/Mobile Documents/budget.numbers",
    "/srv/reports/branch-0420/daily_summary.csv",
    "~/Desktop/scan0001.pdf",
    "/mnt/nfs/loans/2025/app-118822.pdf",
    "/home/olu/Pictures/cheque front.jpg",
    "./out/settlement-20250301.txt",
]
BENIGN_WINDOWS = [
    r"C:\Users\Priya\Documents\Tax 2024\form16.pdf",
    r"D:\Work\Clients\ACME Ltd\engagement letter.docx",
    r"G:\My Drive\receipts\uber-0311.png",
    r"C:\Users\wliu\Downloads\电子回单20250102.pdf",
    "C:/Data/exports/ledger_jan.csv",
]
BENIGN_JSON = [
    '{"status": "active", "limit": 50}',
    '{"ids": [101, 102, 103]}',
    '{"range": {"from": "2024-01-01", "to": "2024-03-31"}, "currency": "CNY"}',
    '[{"field": "created_at", "dir": "desc"}]',
    '{"q":"mortgage","page":3}',
    '{"enabled": true}',
    '{"x": 10, "y": 20}',
    '{"branch":"浦东支行","open":false}',
]
BENIGN_OTHER = [  # redirect paths, document names, filter expressions
    "/account/statements?year=2023",
    "/cards/123/limits#increase",
    "Q4 Board Pack (final).pptx",
    "2024年个人所得税汇算清缴.pdf",
    "IMG_4821.HEIC",
    "price:[10 TO 20]",
    "merchant==Costa,total=lt=30",
]
BENIGN = BENIGN_PATHS + BENIGN_WINDOWS + BENIGN_JSON + BENIGN_OTHER
# short paths: a home or working folder and a generic file name (the model scored /home/me/file.txt 0.70, PL2's
# model_block, before the GENERATED short paths of build_web_benign.build_short_paths; /home/user/file.txt 0.85,
# ~/file.txt 0.91, /home/me/test.txt 0.88). Hand-written, with user, folder and file names the generator does not use.
SHORT_PATHS = ["/tmp/report.csv", "~/Downloads/x.pdf", "/home/priya/receipts/file.txt", "/home/omar/file.doc",
               "/home/kw/taxes/data.xlsx", "~/Documents/table.csv", "/Users/ines/file.png", "~/filelist.txt",
               "/home/user/file.txt", "/home/me/test.txt", "~/file.txt", "./file.json"]
# the values the task was reported with (regressions; they are not in the training data either)
REPORTED = [r"C:\Users\me\Documents\report.xlsx", "/home/me/file.txt", '{"a": 1}', '{"status":"open"}']

ATTACKS = [  # the same shapes, as attacks: (value, a label the verdict must carry)
    ("../../etc/passwd", "web_lfi"),
    ("../../../../etc/shadow", "web_lfi"),
    (r"..\..\..\Windows\win.ini", "web_lfi"),
    (r"C:\Windows\win.ini", "web_lfi"),
    ("/etc/passwd", "web_lfi"),
    ("/proc/self/environ", "web_lfi"),
    ("/var/log/apache2/access.log", "web_lfi"),
    ("file:///etc/passwd", None),
    ('{"$where": "sleep(1000)"}', None),
    ('{"username": "admin\' --", "password": "x"}', None),
    ("/bin/sh -c id", "web_rce"),
    (";cat /etc/passwd", "web_rce"),
    ("$(cat /etc/passwd)", None),
    ("{{7*7}}", None),
    ("${7*7}", None),
    ('{"__proto__": {"isAdmin": true}}', "web_rce"),
    ('{"user": {"$ne": null}}', "web_sqli"),
    ("/var/www/html/index.php", "web_lfi"),
    ("/var/www/html/../../../etc/passwd", "web_lfi"),
    ("<script>alert(document.cookie)</script>", "web_xss"),
]


def _get(value: str, param: str = "x") -> dict:
    return {"method": "GET", "uri": f"/page?{param}=" + quote(value, safe=""),
            "headers": [["Host", "bank.example"], ["User-Agent", "Mozilla/5.0"]], "body": ""}


@pytest.fixture(scope="module")
def pl1() -> WebInspector:
    return WebInspector(paranoia=1)


def _training_values() -> set[str]:
    from urllib.parse import unquote_plus

    vals = {v for _, v in ml.shipped_training_values()}
    return vals | {unquote_plus(v) for v in vals}


def test_hand_written_values_are_not_training_data():
    seen = _training_values()
    assert not [v for v in BENIGN + REPORTED + SHORT_PATHS if v in seen]


@pytest.mark.parametrize("value", REPORTED[1:2] + SHORT_PATHS)
@pytest.mark.parametrize("paranoia", [1, 2])
def test_short_unix_paths_pass_at_pl1_and_pl2(value, paranoia):
    v = WebInspector(paranoia=paranoia).inspect(_get(value, "file"))
    assert not v["attack"], (value, v["labels"], v["rules"], v["model"][:1])
    p = ml.WebModel.load_default().score_value(value, explain=False).p_attack
    assert p < 0.5, (value, p)


def test_short_paths_in_a_json_body_and_a_message_pass_at_pl2():
    body = json.dumps({"path": "/home/me/file.txt", "message": "I saved it to ~/Downloads/x.pdf but upload fails"})
    req = {"method": "POST", "uri": "/api/v1/support/tickets", "body": body,
           "headers": [["Host", "bank.example"], ["Content-Type", "application/json"]]}
    assert not WebInspector(paranoia=2).inspect(req)["attack"]


@pytest.mark.parametrize("value", BENIGN + REPORTED)
def test_benign_shapes_pass_at_pl1(pl1, value):
    v = pl1.inspect(_get(value))
    assert not v["attack"], (value, v["labels"], v["rules"], v["model"][:1])


@pytest.mark.parametrize("value", BENIGN_PATHS + BENIGN_WINDOWS + BENIGN_JSON)
def test_model_alone_scores_benign_shapes_below_the_pl1_threshold(value):
    p = ml.WebModel.load_default().score_value(value, explain=False).p_attack
    assert p < 0.5, (value, p)


def test_benign_shapes_in_json_bodies_and_upload_names(pl1):
    body = json.dumps({"export_path": BENIGN_PATHS[0], "filter": BENIGN_JSON[2], "target": BENIGN_WINDOWS[1]})
    req = {"method": "POST", "uri": "/api/v1/exports", "body": body,
           "headers": [["Host", "bank.example"], ["Content-Type", "application/json"]]}
    assert not pl1.inspect(req)["attack"]
    b = "----x7"
    mp = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{BENIGN_WINDOWS[0]}\"\r\n"
          f"Content-Type: application/pdf\r\n\r\n%PDF-1.7 ...\r\n--{b}--\r\n")
    req = {"method": "POST", "uri": "/upload", "body": mp,
           "headers": [["Host", "bank.example"], ["Content-Type", f"multipart/form-data; boundary={b}"]]}
    assert not pl1.inspect(req)["attack"]


@pytest.mark.parametrize(("value", "label"), ATTACKS)
@pytest.mark.parametrize("paranoia", [1, 2])
def test_attacks_of_the_same_shapes_are_caught(value, label, paranoia):
    v = WebInspector(paranoia=paranoia).inspect(_get(value))
    assert v["attack"], (value, v["rules"], v["model"][:1])
    if label:
        assert label in v["labels"], (value, v["labels"])


@pytest.mark.parametrize("value", ["/etc/passwd", "/proc/self/environ", "/etc/shadow", "/root/.bash_history"])
def test_the_model_does_not_clear_an_os_file_hit(pl1, value):
    """Absolute paths are benign to the model now; a sensitive OS file named by rule 610602 still counts."""
    v = pl1.inspect(_get(value, "file"))
    assert v["attack"] and 610602 in v["rules"] and 610602 not in v["suppressed_rules"], v


def test_var_log_is_an_lfi_rule_hit_not_a_model_rce(pl1):
    """``/var/log/...`` in a parameter is a classic LFI target (log poisoning; CRS v4 930120 lists ``var/log`` too):
    the OS-file rule keeps it; the model no longer adds an RCE verdict to it."""
    v = pl1.inspect(_get("/var/log/app.log"))
    assert v["attack"] and v["labels"] == ["web_lfi"], v


@pytest.mark.parametrize("value", ["25--", "417--", "9--"])
@pytest.mark.parametrize("paranoia", [1, 2])
def test_a_number_ending_in_a_sql_comment_is_not_cleared(value, paranoia):
    """Rule 610305 sees the comment; the model sees only digits (``0--``) and must not clear the hit."""
    v = WebInspector(paranoia=paranoia).inspect(_get(value, "id"))
    assert v["attack"] and "web_sqli" in v["labels"], v


def test_plain_sql_spelling():
    assert ml.plain_sql_spelling("1--") and ml.plain_sql_spelling("@@version")
    assert not ml.plain_sql_spelling("2019-05-01") and not ml.plain_sql_spelling("1' --")
    assert not ml.plain_sql_spelling("a" * 300 + "--")  # not plain: too long for the shortcut


def test_generated_shapes_carry_no_attack_markers():
    """The generator's shaped values (the end of benign_train) never spell what the attack shapes are made of."""
    sys.path.insert(0, str(REPO / "scripts"))
    import build_web_benign

    with gzip.open(ml.DATA_DIR / "benign_train.jsonl.gz", "rt", encoding="utf-8") as f:
        reqs = [json.loads(line) for line in f]
    shaped = reqs[build_web_benign.BASE_TRAIN:]
    assert len(shaped) == build_web_benign.SHAPES_TRAIN + build_web_benign.SHORT_TRAIN
    from urllib.parse import unquote_plus

    for r in shaped:
        for name, v in ml.request_params(r):
            if name.startswith(("ARGS", "FILES", "json")) and not name.endswith(":name"):
                low = unquote_plus(v).lower()
                assert not [f for f in build_web_benign._SHAPE_FORBIDDEN if f in low], (name, v)
