"""Policy loading and validation: every problem is reported with file:line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbrain.core.errors import PolicyError
from fsbrain.engine.policy import compile_policy, default_policy_path, load_policy

BASE = """\
policy: t
version: 1
event_type: loan_application
outcomes: [{name: approve, min_score: 0}, {name: review, min_score: 300}, {name: reject, min_score: 700}]
features:
  - {name: id_platforms_7d, agg: distinct, key: [id_number], value: platform_id, window: 7d}
rules:
  - {id: ML-1, label: multi_lending, when: "f.id_platforms_7d >= 3", weight: 400}
"""


def test_shipped_policy_is_valid_and_big_enough():
    pol = load_policy(default_policy_path())
    assert pol.event_type == "loan_application"
    assert len(pol.rules) >= 40
    assert len(pol.features) >= 15
    assert pol.ref.startswith("credit-default@")


def test_minimal_policy_compiles():
    pol = compile_policy(BASE)
    assert pol.ref == "t@1"
    assert pol.rules[0].feature == "id_platforms_7d" and pol.rules[0].threshold == 3
    assert pol.outcome_for(0) == "approve" and pol.outcome_for(300) == "review" and pol.outcome_for(999) == "reject"


def test_all_problems_reported_with_lines():
    text = BASE.replace("version: 1", "version: 0") + "  - {id: X, label: nope, when: 'f.x >', weight: 1, bogus: 2}\n"
    with pytest.raises(PolicyError, match=r"<string>:2: version") as ei:
        compile_policy(text)
    lines = {p["line"] for p in ei.value.problems}
    assert 2 in lines and 9 in lines
    assert any("unknown key 'bogus'" in p["message"] for p in ei.value.problems)


def test_semantic_problems():
    text = BASE + """\
  - {id: ML-1, label: no_such_label, when: "f.missing_feature > 1 and", weight: 10, outcome: block}
"""
    with pytest.raises(PolicyError) as ei:
        compile_policy(text)
    msgs = " | ".join(p["message"] for p in ei.value.problems)
    assert "duplicate rule id 'ML-1'" in msgs
    assert "unknown risk label 'no_such_label'" in msgs
    assert "no feature has that name" in msgs
    assert "invalid expression" in msgs
    assert "outcome 'block'" in msgs
    assert all(p["line"] == 9 for p in ei.value.problems)


@pytest.mark.parametrize("bad, fragment", [
    ("window: 7d", "window: 0.5"),
    ("window: 7d", "window: 500d"),
    ("window: 7d", "window: soon"),
    ("agg: distinct", "agg: median"),
    ("{name: approve, min_score: 0}, {name: review, min_score: 300}", "{name: approve, min_score: 10}, {name: review, min_score: 300}"),
    ("min_score: 300}, {name: reject, min_score: 700}", "min_score: 700}, {name: reject, min_score: 300}"),
])
def test_invalid_fields(bad, fragment):
    with pytest.raises(PolicyError):
        compile_policy(BASE.replace(bad, fragment))


def test_yaml_syntax_error_has_line():
    with pytest.raises(PolicyError, match=r"x.yaml:3: YAML syntax error"):
        compile_policy("policy: a\nversion: 1\nrules: {id: [}\nfoo: 1\n", source="x.yaml")


def test_not_a_mapping():
    with pytest.raises(PolicyError, match="must be a YAML mapping"):
        compile_policy("- 1\n- 2\n")


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "nope.yaml")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text_never_crashes(text):
    try:
        compile_policy(text)
    except PolicyError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="fe.x ><=!()&|+-*/0123456789abcdtrulsn'\"?[]", max_size=60))
def test_fuzz_rule_expressions(expr):
    text = BASE.replace('"f.id_platforms_7d >= 3"', repr(expr).replace("\\\\", "\\"))
    try:
        compile_policy(text)
    except PolicyError:
        pass


@pytest.mark.parametrize("expr", ["has_coupon == true", "has_coupon != true", "x == null", "x != null",
                                  "n == 3", "n != 3", "s == 'a'", 's != "a"', "has_coupon == false"])
@pytest.mark.parametrize("data", [{"has_coupon": True, "x": None, "n": 3, "s": "a"},
                                  {"has_coupon": False, "x": 1, "n": 3.0, "s": "b"},
                                  {"has_coupon": 1, "n": "3", "s": 3}, {}])
def test_native_filters_agree_with_zen(expr, data):
    import zen

    from fsbrain.engine.evaluator import _matches
    from fsbrain.engine.policy import _native_filter

    native = _native_filter(expr)
    assert native is not None
    field, eq, lit = native
    try:
        expected = zen.evaluate_expression(expr, data) is True
    except RuntimeError:
        expected = False
    assert (_matches(data.get(field), lit) is eq) == expected


def test_referenced_names_are_whole_identifiers():
    """A keyword or function name before '(' is not read as a shorter field name ('and (' is not 'an')."""
    from fsbrain.engine.policy import referenced_names

    got = referenced_names('f.x > 3 and (id_age < 18 or startsWith(phone, "13")) and not (ip_type == "vpn")')
    assert got == {"id_age", "phone", "ip_type"}
