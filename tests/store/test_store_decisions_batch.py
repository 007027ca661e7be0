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
