"""The evaluator end to end: features, lists, whitelist short-circuit, forced outcomes, rule errors."""

from __future__ import annotations

import pytest

from fsbrain.core.errors import UnknownEventTypeError
from fsbrain.engine import Engine, ListIndex, compile_policy
from fsbrain.state import MemoryStateBackend

POLICY = """\
policy: t
version: 2
event_type: loan_application
outcomes: [{name: approve, min_score: 0}, {name: review, min_score: 300}, {name: reject, min_score: 700}]
lists:
  - {field: device_id, entity_type: device_id}
  - {field: id_number, entity_type: id_number}
features:
  - {name: id_platforms_7d, agg: distinct, key: [id_number], value: platform_id, window: 7d}
  - {name: id_amount_30d, agg: sum, key: [id_number], value: loan_amount, window: 30d}
  - {name: dev_coupons, agg: count, key: [device_id], window: 1d, when: "has_coupon == true"}
  - {name: pair_count, agg: count, key: [id_number, device_id], window: 1h}
rules:
  - {id: ML-1, label: multi_lending, when: "f.id_platforms_7d >= 3", weight: 400}
  - {id: AMT, label: multi_lending, when: "f.id_amount_30d > 100000", weight: 100}
  - {id: AGE, label: forged_application, when: "id_age < 18", weight: 100, outcome: reject}
  - {id: PA, label: promotion_abuse, when: "f.dev_coupons >= 2", weight: 300}
  - {id: BL, label: blacklist, when: "l.black_any", weight: 1000}
  - {id: PAIR, label: device_risk, when: "f.pair_count >= 5", weight: 50}
"""


@pytest.fixture
def engine():
    e = Engine(state=MemoryStateBackend(), lists=ListIndex())
    e.set_policy(compile_policy(POLICY))
    return e


def ev(i, **kw):
    base = {"id_number": "h:id1", "platform_id": f"p{i}", "loan_amount": 10000, "device_id": "d1",
            "has_coupon": False, "id_age": 30}
    base.update(kw)
    return base


def test_features_accumulate_and_reasons_explain(engine):
    outs = [engine.decide("loan_application", ev(i), event_id=str(i), timestamp=1000.0 + i)[0] for i in range(3)]
    assert [o.outcome for o in outs] == ["approve", "approve", "review"]
    d = outs[-1]
    assert d.score == 400 and d.labels == ["multi_lending"]
    r = d.reasons[0]
    assert (r.id, r.feature, r.value, r.threshold, r.weight) == ("ML-1", "id_platforms_7d", 3, 3, 400)
    assert d.features["id_platforms_7d"] == 3 and d.features["id_amount_30d"] == 30000
    assert d.policy == "t@2" and d.latency_ms > 0


def test_window_expires(engine):
    for i in range(3):
        engine.decide("loan_application", ev(i), event_id=str(i), timestamp=1000.0 + i)
    later = engine.decide("loan_application", ev(9), event_id="x", timestamp=1000.0 + 8 * 86400)[0]
    assert later.features["id_platforms_7d"] == 1


def test_when_filter_counts_only_matching(engine):
    d1 = engine.decide("loan_application", ev(0, has_coupon=True), event_id="a", timestamp=10.0)[0]
    d2 = engine.decide("loan_application", ev(1, has_coupon=False), event_id="b", timestamp=11.0)[0]
    d3 = engine.decide("loan_application", ev(2, has_coupon=True), event_id="c", timestamp=12.0)[0]
    assert [d.features["dev_coupons"] for d in (d1, d2, d3)] == [1, 1, 2]
    assert "promotion_abuse" in d3.labels


def test_combined_key(engine):
    for i in range(5):
        d = engine.decide("loan_application", ev(0), event_id=str(i), timestamp=100.0 + i)[0]
    assert d.features["pair_count"] == 5
    other = engine.decide("loan_application", ev(0, device_id="d2"), event_id="o", timestamp=106.0)[0]
    assert other.features["pair_count"] == 1


def test_missing_key_field_gives_empty_feature(engine):
    d = engine.decide("loan_application", ev(0, id_number=None), event_id="n", timestamp=1.0)[0]
    assert d.features["id_platforms_7d"] == 0


def test_forced_outcome(engine):
    d = engine.decide("loan_application", ev(0, id_age=16), event_id="k", timestamp=1.0)[0]
    assert d.score == 100 and d.outcome == "reject"


def test_rule_error_is_reported_not_fatal(engine):
    data = ev(0)
    del data["id_age"]
    for i in range(3):
        d = engine.decide("loan_application", {**data, "platform_id": f"p{i}"}, event_id=str(i), timestamp=5.0 + i)[0]
    assert d.outcome == "review" and "multi_lending" in d.labels
    assert d.errors and d.errors[0]["rule"] == "AGE" and "missing" in d.errors[0]["error"]
    assert engine.stats.rule_errors == 3


def test_non_numeric_value_for_sum_is_reported(engine):
    d = engine.decide("loan_application", ev(0, loan_amount="lots"), event_id="z", timestamp=1.0)[0]
    assert any(e.get("feature") == "id_amount_30d" for e in d.errors)


def test_blacklist_and_whitelist(engine):
    engine.lists.add("black", "device_id", "d1", reason="ring")
    d = engine.decide("loan_application", ev(0), event_id="b1", timestamp=1.0)[0]
    assert d.outcome == "reject" and d.labels == ["blacklist"]
    assert d.reasons[0].value == {"black": ["device_id"]}
    engine.lists.add("white", "id_number", "h:id1", reason="vip")
    d = engine.decide("loan_application", ev(1), event_id="w1", timestamp=2.0)[0]
    assert d.outcome == "approve" and d.score == 0 and d.reasons[0].source == "list"


def test_expired_list_entry_ignored(engine):
    engine.lists.add("black", "device_id", "d1", expires_at=50.0)
    assert engine.decide("loan_application", ev(0), event_id="e1", timestamp=100.0)[0].outcome == "approve"


def test_unknown_event_type(engine):
    with pytest.raises(UnknownEventTypeError, match="payment"):
        engine.decide("payment", {}, event_id="x", timestamp=1.0)


def test_shadow_shares_state_without_double_counting(engine):
    shadow = compile_policy(POLICY.replace("version: 2", "version: 3").replace(">= 3", ">= 2"))
    engine.set_shadows("loan_application", [shadow])
    live = sh = None
    for i in range(2):
        live, shs = engine.decide("loan_application", ev(i), event_id=str(i), timestamp=10.0 + i)
        sh = shs[0]
    assert live.features["id_platforms_7d"] == 2 and sh.features["id_platforms_7d"] == 2
    assert live.outcome == "approve" and sh.outcome == "review" and sh.shadow and sh.policy == "t@3"


def test_policy_swap_keeps_state(engine):
    for i in range(2):
        engine.decide("loan_application", ev(i), event_id=str(i), timestamp=10.0 + i)
    engine.set_policy(compile_policy(POLICY.replace("version: 2", "version: 9")))
    d = engine.decide("loan_application", ev(5), event_id="s", timestamp=20.0)[0]
    assert d.features["id_platforms_7d"] == 3 and d.policy == "t@9"


def test_list_key_fans_out_and_reads_the_max():
    pol = compile_policy(POLICY.replace("rules:", """\
  - {name: contact_ids_30d, agg: distinct, key: [contact_phones], value: id_number, window: 30d}
rules:
  - {id: GF-C, label: gang_fraud, when: "f.contact_ids_30d >= 3", weight: 300}"""))
    e = Engine(state=MemoryStateBackend())
    e.set_policy(pol)
    outs, decisions = [], []
    for i, contacts in enumerate([["c1", "c2"], ["c2"], ["c9", "c2", "c2"], [], None]):
        d = e.decide("loan_application", ev(i, id_number=f"h:id{i}", contact_phones=contacts),
                     event_id=str(i), timestamp=100.0 + i)[0]
        outs.append(d.features["contact_ids_30d"])
        decisions.append(d)
    assert outs == [1, 2, 3, 0, 0]
    assert "gang_fraud" in decisions[2].labels and "gang_fraud" not in decisions[1].labels


def test_values_the_expression_engine_cannot_convert_are_rule_errors(engine):
    d = engine.decide("loan_application", ev(0, id_age=4e306), event_id="huge", timestamp=1.0)[0]
    assert d.errors and all("rule" in e for e in d.errors)
    assert d.outcome in ("approve", "review", "reject")


def test_engine_stats_count_every_error_from_many_threads():
    """The server decides on several threads with remote state: no counted error may be lost."""
    import threading

    from fsbrain.engine.evaluator import EngineStats

    st = EngineStats()

    def work() -> None:
        for _ in range(20_000):
            st.add("rule_errors")
            st.add("feature_errors", 2)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (st.rule_errors, st.feature_errors, st.state_errors) == (80_000, 160_000, 0)
