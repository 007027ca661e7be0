"""Decision log: round trip, idempotency (also under a race), filters, shadow storage and comparison."""

from __future__ import annotations

import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsbrain.core.errors import ConflictError, InputError, NotFoundError
from fsbrain.store import Store
from fsbrain.store.validate import find_bad_string, find_raw_identity

EVENT = {"applicant": {"id_number": "h:" + "a" * 32, "phone": "h:" + "b" * 32}, "amount": 5000}


def test_round_trip_keeps_every_field(store, make_decision):
    d = make_decision()
    assert store.save_decision(d, EVENT) is d
    got = store.get_decision(d.decision_id)
    assert got.to_dict() == d.to_dict()
    assert got.features == d.features and got.reasons == d.reasons and got.errors == d.errors
    assert got.created_at == d.created_at and got.latency_ms == pytest.approx(1.834)
    assert store.get_event_data(d.decision_id) == EVENT
    assert store.get_decision_by_event("loan_application", "e1").decision_id == d.decision_id
    assert store.get_decision_by_event("loan_application", "nope") is None


def test_same_event_twice_returns_the_stored_decision(store, make_decision):
    first = make_decision(score=100, outcome="approve")
    second = make_decision(score=900, outcome="reject")
    store.save_decision(first, EVENT)
    again = store.save_decision(second, EVENT)
    assert again.decision_id == first.decision_id and again.outcome == "approve"
    assert len(store.list_decisions()) == 1
    with pytest.raises(NotFoundError, match=second.decision_id):
        store.get_decision(second.decision_id)


def test_same_event_id_other_type_is_another_decision(store, make_decision):
    store.save_decision(make_decision(), EVENT)
    store.save_decision(make_decision(event_type="payment"), EVENT)
    assert len(store.list_decisions()) == 2


def test_racing_threads_store_one_decision(store_url, make_decision):
    stores = [Store(store_url) for _ in range(2)]
    stores[0].migrate()
    barrier = threading.Barrier(8)
    results, errors = [], []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results.append(stores[i % 2].save_decision(make_decision("race", score=i), EVENT).decision_id)
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert len(stores[0].list_decisions(limit=10)) == 1
    for s in stores:
        s.close()


def test_decision_id_reused_for_another_event_conflicts(store, make_decision):
    d = make_decision()
    store.save_decision(d, EVENT)
    with pytest.raises(ConflictError, match=d.decision_id):
        store.save_decision(make_decision("e2", decision_id=d.decision_id), EVENT)


@pytest.mark.parametrize("payload, where", [
    ({"applicant": {"id_number": "11010519491231002X"}}, "applicant.id_number"),
    ({"contacts": [{"phone": "13812345678"}]}, r"contacts\[0\].phone"),
])
def test_raw_identity_in_event_is_refused(store, payload, where, make_decision):
    with pytest.raises(InputError, match=where):
        store.save_decision(make_decision(), payload)
    assert store.list_decisions() == []


@pytest.mark.parametrize("kw, match", [
    ({"score": 1001}, "score"), ({"score": "7"}, "score"), ({"event_id": ""}, "event_id"),
    ({"features": {"x": float("nan")}}, "features"), ({"features": {"x": object()}}, "features"),
    ({"event_type": "x" * 65}, "event_type"), ({"features": {"x": "a\x00b"}}, "features: x contains a NUL"),
    ({"event_id": "e\x00"}, "event_id: contains a NUL"), ({"labels": ["\ud800"]}, "lone surrogate"),
])
def test_bad_decisions_are_refused(store, kw, match, make_decision):
    with pytest.raises(InputError, match=match):
        store.save_decision(make_decision(**kw), EVENT)


def test_unstorable_event_strings_are_refused(store, make_decision):
    with pytest.raises(InputError, match=r"event_data: a\.b\[1\] contains a NUL"):
        store.save_decision(make_decision(), {"a": {"b": ["ok", "x\x00"]}})
    assert store.list_decisions() == []


def test_list_filters_and_paging(store, make_decision):
    for i in range(6):
        store.save_decision(make_decision(f"e{i}", outcome=("approve", "review", "reject")[i % 3],
                                          labels=["gang_fraud"] if i % 2 else [], created_at=1000.0 + i,
                                          event_type="payment" if i == 5 else "loan_application"), EVENT)
    assert [d.event_id for d in store.list_decisions()] == [f"e{i}" for i in range(5, -1, -1)]
    assert [d.event_id for d in store.list_decisions(outcome="reject")] == ["e5", "e2"]
    assert [d.event_id for d in store.list_decisions(label="gang_fraud")] == ["e5", "e3", "e1"]
    assert [d.event_id for d in store.list_decisions(event_type="payment")] == ["e5"]
    assert [d.event_id for d in store.list_decisions(since=1002, until=1004)] == ["e3", "e2"]
    assert [d.event_id for d in store.list_decisions(limit=2, offset=1)] == ["e4", "e3"]
    assert len(store.list_decisions(policy="credit-default")) == 6
    assert store.list_decisions(policy="credit-default@2") == []
    with pytest.raises(InputError, match="limit"):
        store.list_decisions(limit=0)


def test_shadow_decisions_are_separate_and_one_per_policy(store, make_decision):
    live = make_decision(score=500, outcome="review")
    store.save_decision(live, EVENT)
    cand = make_decision(score=800, outcome="reject", policy="credit-next@1", shadow=True)
    store.save_decision(cand, EVENT)
    other = make_decision(score=100, outcome="approve", policy="credit-next@2", shadow=True)
    store.save_decision(other, EVENT)
    dup = store.save_decision(make_decision(score=1, policy="credit-next@1", shadow=True), EVENT)
    assert dup.decision_id == cand.decision_id
    assert store.get_decision_by_event("loan_application", "e1").decision_id == live.decision_id
    assert store.get_decision(cand.decision_id).shadow is True
    assert [d.decision_id for d in store.list_decisions()] == [live.decision_id]
    assert {d.decision_id for d in store.list_shadow_decisions("credit-next")} == {cand.decision_id,
                                                                                   other.decision_id}


def test_shadow_comparison(store, make_decision):
    pairs = [("approve", 100, "approve", 150), ("review", 500, "reject", 900), ("review", 600, "review", 560),
             ("reject", 950, "review", 700)]
    for i, (lo, ls, so, ss) in enumerate(pairs):
        store.save_decision(make_decision(f"e{i}", outcome=lo, score=ls), EVENT)
        store.save_decision(make_decision(f"e{i}", outcome=so, score=ss, policy="cand@2", shadow=True), EVENT)
    store.save_decision(make_decision("lonely", policy="cand@2", shadow=True), EVENT)
    store.save_decision(make_decision("e0", outcome="reject", policy="other@1", shadow=True), EVENT)
    cmp = store.shadow_comparison("cand@2")
    assert cmp["compared"] == 4 and cmp["agree"] == 2 and cmp["disagree"] == 2
    assert cmp["agreement_rate"] == 0.5 and cmp["unmatched_shadow"] == 1
    assert cmp["confusion"] == {"approve": {"approve": 1}, "review": {"reject": 1, "review": 1},
                                "reject": {"review": 1}}
    assert cmp["mean_score_delta"] == pytest.approx((50 + 400 - 40 - 250) / 4)
    assert store.shadow_comparison("cand")["compared"] == 4
    empty = store.shadow_comparison("absent@1")
    assert empty["compared"] == 0 and empty["agreement_rate"] is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(features=st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=6),
       event=st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=6))
def test_any_json_features_round_trip(store, make_decision, features, event):
    d = make_decision(f"h-{uuid.uuid4().hex}", features=features)
    if any(find_raw_identity(x) or find_bad_string(x, "") for x in (features, event)):
        with pytest.raises(InputError):
            store.save_decision(d, event)
        return
    store.save_decision(d, event)
    got_features, got_event = store.get_decision(d.decision_id).features, store.get_event_data(d.decision_id)
    if store.dialect == "sqlite":
        assert (got_features, got_event) == (features, event)
    else:  # JSONB keeps numbers as exact decimals, so 1e16 (a float) reads back as the int 10000000000000000
        assert (_numbers_as_floats(got_features), _numbers_as_floats(got_event)) == (
            _numbers_as_floats(features), _numbers_as_floats(event))


def _numbers_as_floats(value):
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def test_has_decision_for_event_probe(store):
    """The hot-path probe (a dedicated driver connection) agrees with the full lookup, on both databases."""
    from fsbrain.core.model import Decision

    assert store.has_decision_for_event("loan_application", "probe-1") is False
    store.save_decision(Decision(event_id="probe-1", event_type="loan_application", outcome="approve", score=0,
                                 policy="p@1"), {})
    assert store.has_decision_for_event("loan_application", "probe-1") is True
    assert store.has_decision_for_event("payment", "probe-1") is False
    assert store.has_decision_for_event("loan_application", "probe-1'; DROP TABLE decisions; --") is False
    assert store.get_decision_by_event("loan_application", "probe-1") is not None


def test_has_decision_for_event_after_close_is_a_backend_error(store_url):
    from fsbrain.core.errors import BackendError
    from fsbrain.store import Store

    s = Store(store_url)
    s.migrate()
    s.close()
    with pytest.raises(BackendError, match="closed"):
        s.has_decision_for_event("loan_application", "x")
