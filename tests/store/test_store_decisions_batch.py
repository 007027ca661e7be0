"""Group commit: several decisions in one transaction, each with save_decision's semantics."""

from __future__ import annotations

import pytest

from fsbrain.core.errors import InputError
from fsbrain.core.model import Decision
from fsbrain.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    s = Store(url)
    s.migrate()
    yield s
    s.close()


def _d(eid: str, **kw) -> Decision:
    return Decision(event_id=eid, event_type="loan_application", outcome="review", score=400,
                    labels=["multi_lending"], policy="p@1", **kw)


def test_batch_inserts_replays_and_isolates_bad_items(store):
    first = store.save_decision(_d("e0"), {"x": 1})
    items = [(_d("e1"), {"x": 1}), (_d("e0"), {"x": 2}), (_d("e2"), {"phone": "13812345678"}),
             (_d("e3", shadow=True), {"x": 3})]
    out = store.save_decisions(items)
    assert out[0].event_id == "e1"
    assert out[1].decision_id == first.decision_id  # replay returns the stored one
    assert isinstance(out[2], InputError) and "raw phone" in str(out[2])
    assert out[3].shadow is True
    assert store.get_decision_by_event("loan_application", "e2") is None
    assert {d.event_id for d in store.list_decisions(label="multi_lending")} == {"e0", "e1"}


def test_duplicates_inside_one_batch(store):
    """One multi-row insert per batch: a repeated event or a repeated decision inside the batch resolves
    exactly as sequential saves would."""
    from fsbrain.core.errors import ConflictError

    a, b = _d("dup"), _d("dup")  # the same event decided twice (two decision ids)
    same = _d("twice")
    clash = _d("other", decision_id=a.decision_id)  # another event reusing a's decision id
    out = store.save_decisions([(a, {}), (b, {}), (same, {}), (same, {}), (clash, {})])
    assert out[0].decision_id == a.decision_id and out[1].decision_id == a.decision_id
    assert out[2].decision_id == same.decision_id and out[3].decision_id == same.decision_id
    assert isinstance(out[4], ConflictError)
    assert [d.event_id for d in store.list_decisions(label="multi_lending")].count("twice") == 1
    sh = [_d("dup", shadow=True), _d("dup", shadow=True)]
    out = store.save_decisions([(sh[0], {}), (sh[1], {})])
    assert out[0].decision_id == out[1].decision_id == sh[0].decision_id
