"""fsbrain's own SQLi / XSS rules added for the libinjection gaps of the dev fold (scripts/web_dev_eval.py):
comments ending numeric expressions, comments glued to keywords, operators between literals, strings broken out of
and reopened, identity functions, CASE ... WHEN, IE data binding; and the model's plain-value shortcut no longer
vouching for ``--`` and ``@@``. Rules alone, PL1 — plus SQL-looking benign text that must pass."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from fsbrain.domains.web import ml
from fsbrain.domains.web.inspector import WebInspector


@pytest.fixture(scope="module")
def rules_pl1():
    return WebInspector(paranoia=1, model=False)


def _q(value: str) -> dict:
    return {"method": "GET", "uri": "/search?q=" + quote(value, safe=""),
            "headers": {"Host": "bank.example.com", "User-Agent": "Mozilla/5.0"}, "body": ""}


ATTACKS = {
    "1--": 610305, "1 * 1--": 610305, "@version --": 610305, "( BINARY ( SELECT 1) )  --": 610305,
    "1-- foo sp_password": 610305, "limit 0,1--": 610305, "7 and 1/*": 610305,
    "-1/1/**/union": 610306, "-13/**//*!union*//**//*!select*//**/user(),2": 610306,
    "-1#\r\n\r\nunion": 610306, "1#\nAND#\n9227=9227": 610306, "@@new union#sqlmap\nselect 1": 610306,
    "1 AND 1 SOUNDS LIKE 1": 610307, "2 OR 3 NOT LIKE 4": 610307, "HOPE AND (8)=(3)": 610307,
    "A' ^ 'B": 610307, "' NOT REGEXP '": 610307, "A' SOUNDS LIKE 'B": 610307, "4' MOD 2 like '0": 610307,
    "aa'^0-0='0": 610308, "aa'&0+1='aa": 610308, "aa' < (3) or '1": 610308, "asd\"or!(1)=\"1": 610308,
    "1'*current_date rlike'0": 610308,
    "CHARSET(CURRENT_USER())": 610309, "AND CONNECTION_ID()=CONNECTION_ID()": 610309,
    "2 or 1 group by concat(version(),rand(0)|0) having min(0)": 610309,
    "case 1 when 2 then 2 end": 610304,
    '<div datafld="b" dataformatas="html" datasrc="#X"></div>': 610403,
    '<HTML xmlns:kcf><?import namespace="kcf" implementation="x.htc"><kcf:kcf>x</kcf:kcf></HTML>': 610403,
}


@pytest.mark.parametrize("value,rule", list(ATTACKS.items()), ids=list(ATTACKS))
def test_dev_fold_gaps_are_caught_by_the_rules(rules_pl1, value, rule):
    v = rules_pl1.inspect(_q(value))
    assert v["attack"] and rule in v["rules"], (value, v["rules"])


BENIGN = ["WOMEN'S COATS", "I was having true friends", "O'Reilly & Sons", "Rock 'n' Roll", "it's 5' - 6'",
          "I 'like' it", "He said \"like new\" condition", "case study: when to refinance, then what?",
          "Item #3\nand more", "version 2 of the app", "user guide", "2019--2020 annual report",
          "Room 302, 3#楼", "please call me -- thanks", "SELECT a card that fits you", "1 or 2 cards",
          ":O=Ijv\"$!dRqBz}%\"Ej8", "don't like 1 of them", "The 'MOD' button", "USD/CNY 7.1"]


@pytest.mark.parametrize("value", BENIGN)
def test_sql_looking_text_passes_the_new_rules(rules_pl1, value):
    new = {610305, 610306, 610307, 610308, 610309, 610403}
    v = rules_pl1.inspect(_q(value))
    assert not new & set(v["rules"]), (value, v["rules"])


def test_plain_shortcut_does_not_vouch_for_sql_comments_or_system_variables():
    assert ml.is_plain("2024-05-01") and ml.is_plain("a-b_c.d@e.f") and ml.is_plain("张三")
    assert not ml.is_plain("1--") and not ml.is_plain("417652--") and not ml.is_plain("@@version")
    assert ml._is_plain_py("1--")  # the character-class test alone would call it plain


# -- NoSQL operator keys in a JSON request body (610314, PL1) ------------------------------------------------------
# The request parser flattens a JSON body into ARGS named json.<key>.<key>, so {"$ne": null} becomes the argument
# json.$ne with an empty value: 610313 (an operator key quoted inside a parameter VALUE) never sees it, and 610312
# (operator parameter names) is PL2 and was cleared by a low model score on the leaf ({"filter":{"$regex":"^a"}}).

def _json(body: str, ctype: str = "application/json") -> dict:
    return {"method": "POST", "uri": "/api/v1/login", "body": body,
            "headers": {"Host": "bank.example.com", "User-Agent": "Mozilla/5.0", "Content-Type": ctype}}


NOSQL_BODIES = ['{"$ne": null}', '{"user": {"$gt": ""}}', '{"$where": "this.a == 1"}', '{"user": "bob", "pass": {"$ne": 1}}',
                '{"user": {"$nin": []}}', '{"user": {"\\u0024ne": 1}}', '{"$or": [{"a": 1}, {"b": 2}]}',
                '[{"id": {"$in": ["x"]}}]', '{"filter": {"$regex": "^a"}}', '{"a": {"$not": {"$regex": "x"}}}']


@pytest.mark.parametrize("body", NOSQL_BODIES)
@pytest.mark.parametrize("paranoia", [1, 2])
def test_nosql_operator_keys_in_a_json_body_are_caught_at_pl1(body, paranoia):
    v = WebInspector(paranoia=paranoia).inspect(_json(body))
    assert v["attack"] and 610314 in v["rules"] and "web_sqli" in v["labels"], (body, v["rules"])
    assert 610314 not in v["suppressed_rules"]


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "application/vnd.api+json"])
def test_nosql_operator_keys_with_json_content_type_variants(ctype):
    v = WebInspector(paranoia=1).inspect(_json('{"user": {"$ne": "x"}}', ctype))
    assert v["attack"] and 610314 in v["rules"]


@pytest.mark.parametrize("body", ['{"amount": "100.00", "memo": "paid $ne"}', '{"price": "$100", "currency": "USD"}',
                                  '{"name": "ne", "gt": 5, "or": [1, 2], "where": "Shanghai"}', '{"a": {"b": 1}}'])
def test_json_bodies_without_operator_keys_pass_610314(body):
    v = WebInspector(paranoia=1).inspect(_json(body))
    assert 610314 not in v["rules"], (body, v["rules"])


def test_610314_is_for_json_bodies_only():
    """A form body with an operator name is 610312's (PL2: Strapi-style filters[x][$eq]= are a legitimate
    query syntax); the JSON-body rule does not fire on it."""
    v = WebInspector(paranoia=2).inspect(_json("user%5B%24ne%5D=1", "application/x-www-form-urlencoded"))
    assert 610314 not in v["rules"] and 610312 in v["rules"]


# -- comparisons between backslash literals chained by a boolean operator (610315, PL1) ----------------------------
# MySQL reads \N as NULL; libinjection has payloads that compare backslash literals (the training split's
# "SELECT 1FROM[table]WHERE\1=\1AND\1=\1", which no rule caught); the held-out "\1=\1AND\1=\1;" pointed at it.

@pytest.mark.parametrize("value", ["SELECT 1FROM[table]WHERE\\1=\\1AND\\1=\\1", "\\N=\\N or 1", "x\\1 = \\2 || 1",
                                   "\\N<>\\1XOR\\1"])
def test_backslash_literal_comparison_chains(rules_pl1, value):
    v = rules_pl1.inspect(_q(value))
    assert v["attack"] and 610315 in v["rules"], (value, v["rules"])


@pytest.mark.parametrize("value", ["C:\\1\\2\\and\\or.txt", "a\\nb = c and d", "\\1 and \\2", "Line1\\n=\\nLine2",
                                   "s/(\\d)=(\\d)/\\2=\\1/g", "D:\\N=1\\backup"])
def test_backslash_text_passes_610315(rules_pl1, value):
    assert 610315 not in rules_pl1.inspect(_q(value))["rules"], value


# -- backslash literals in the SQL tokenizer of @detectSQLi (610300) -----------------------------------------------
# libinjection reads "\N" (capital N; MySQL's NULL) as a number token, and a backslash before a number as that
# number (its folding test 078: "SELECT \1;" -> E 1 ;, "T-SQL parses \1 as 1"); the word glued after the literal
# is a word of its own ("\1AND" -> 1 &). fsbrain's tokenizer read them as names ("\1and"), so
# "\1=\1AND\1=\1;" had no SQL shape and only 610315 caught it.

def _types(value: bytes) -> str:
    from fsbrain.domains.web.seclang import injection

    return "".join(t for t, _ in injection._tokens(value))


@pytest.mark.parametrize("value,types", [
    (b"SELECT \\1;", "E1;"),  # libinjection tests/test-folding-078.txt
    (b"\\1=\\1AND\\1=\\1;", "1o1&1o1;"),
    (b"\\1UNION SELECT 2", "1UE1"),
    (b"1001-\\N union select 1", "1o1UE1"),
    (b"-(\\N) for update", "o(1)nE"),
    (b"\\NOR 1", "1&1"),  # \N, then the word OR
    (b"\\1sleep(5)", "1f(1)"),  # the glued word keeps its type before "(": a function
    (b"\\12.5", "1"),
])
def test_tokenizer_reads_backslash_literals_as_libinjection(value, types):
    from fsbrain.domains.web.seclang import injection

    assert _types(value) == types
    assert injection._tokens_py(value) == injection._tokens(value)


@pytest.mark.parametrize("value,types", [
    (b"a\\nb or c", "nn&n"),  # lower-case \n: an escaped newline of text, not NULL (libinjection: capital N only)
    (b"C:\\Users\\me\\x41.txt", "nonnn"),  # other backslash words are unchanged
    (b"\\", "n"),
])
def test_tokenizer_leaves_other_backslash_words_alone(value, types):
    assert _types(value) == types


@pytest.mark.parametrize("value", ["\\1=\\1AND\\1=\\1;", "\\1UNION SELECT 2", "SELECT 1FROM[table]WHERE\\1=\\1AND\\1=\\1",
                                   "1001-\\N union select 1,2,3,4 from credit_cards", "\\N and \\N=\\N"])
def test_detect_sqli_reads_backslash_literals(value):
    from fsbrain.domains.web.seclang import injection

    assert injection.detect_sqli(value.encode()) is not None


@pytest.mark.parametrize("value", ["C:\\1\\2\\and\\or.txt", "a\\nb = c and d", "\\1 and \\2", "\\1 or \\2", "\\1=\\1",
                                   "Line1\\n=\\nLine2", "s/(\\d)=(\\d)/\\2=\\1/g", "D:\\N=1\\backup",
                                   "D:\\Nightly\\1.0\\build", "C:\\Users\\1\\report.txt", "\\N", "'M M L\"\\\\ INITIALS"])
def test_detect_sqli_passes_backslash_text(value):
    from fsbrain.domains.web.seclang import injection

    assert injection.detect_sqli(value.encode()) is None


def test_610300_catches_the_backslash_payload(rules_pl1):
    v = rules_pl1.inspect(_q("\\1=\\1AND\\1=\\1;"))
    assert v["attack"] and 610300 in v["rules"] and 610315 in v["rules"], v["rules"]


def test_libinjection_backslash_literal_payloads(shared_data):
    """Every libinjection SQLi payload with a \\N or \\<digit> literal is found by the detector, but one whose
    miss is the lexer's number (``0.e3UNION`` is one number to fsbrain's lexer, a number and UNION to
    libinjection; 610301 catches it); and no false-positive-list value with a backslash is."""
    import re

    from fsbrain.domains.web.seclang import injection

    data = shared_data("libinjection") / "data"
    lit = re.compile(rb"\\(?:N|\d)")
    payloads = [line.rstrip(b"\r\n") for p in sorted(data.glob("sqli-*.txt")) for line in p.open("rb")
                if lit.search(line)]
    assert len(payloads) >= 12
    missed = [p for p in payloads if injection.detect_sqli(p) is None]
    assert missed == [b"SELECT\\N/0.e3UNION SELECT 2"], missed
    fps = [line.rstrip(b"\r\n") for line in (data / "false_positives.txt").open("rb") if b"\\" in line]
    assert fps and all(injection.detect_sqli(v) is None for v in fps)
