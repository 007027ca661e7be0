"""Alerts: round trip, batch idempotency, validation (nothing half-written) and filters."""

from __future__ import annotations

import pytest

from fsbrain.core.errors import InputError, NotFoundError
from fsbrain.core.model import Alert, Reason


def _alert(i: int = 0, **kw) -> Alert:
    base = dict(source="web.rules", labels=["web_sqli"], severity=4, score=820, title=f"SQLi from 198.51.100.{i}",
                entity_type="ip", entity=f"198.51.100.{i}",
                reasons=[Reason(source="detector", id="942100", label="web_sqli", feature="args.id",
                                value="1' OR '1'='1", weight=400)],
                action="block", start=1000.0 + i, end=1010.0 + i,
                details={"uri": "/login", "matched": ["942100"], "count": 3}, created_at=2000.0 + i)
    base.update(kw)
    return Alert(**base)


def test_round_trip(store):
    a = _alert()
    assert store.save_alerts([a]) == 1
    got = store.get_alert(a.alert_id)
    assert got.to_dict() == a.to_dict()
    with pytest.raises(NotFoundError, match="nope"):
        store.get_alert("nope")


def test_resending_a_batch_stores_nothing_twice(store):
    batch = [_alert(i) for i in range(3)]
    assert store.save_alerts(batch) == 3
    assert store.save_alerts(batch + [_alert(9)]) == 1
    assert store.save_alerts([batch[0], batch[0]]) == 0
    assert store.save_alerts([]) == 0
    assert len(store.list_alerts()) == 4


def test_one_bad_alert_writes_nothing(store):
    with pytest.raises(InputError, match=r"alerts\[1\].severity"):
        store.save_alerts([_alert(0), _alert(1, severity=9)])
    with pytest.raises(InputError, match=r"alerts\[0\].details"):
        store.save_alerts([_alert(0, details={"x": float("inf")})])
    with pytest.raises(InputError, match=r"alerts\[0\].entity"):
        store.save_alerts([_alert(0, entity_type="account", entity="13812345678")])
    assert store.list_alerts() == []


def test_filters(store):
    store.save_alerts([
        _alert(1),
        _alert(2, source="host.bruteforce", labels=["brute_force"], severity=3),
        _alert(3, source="flow.volumetric", labels=["ddos_syn_flood", "ddos"], severity=5, entity="10.0.0.1"),
        _alert(4, source="web.bot", labels=["bot"], severity=2),
    ])
    ids = lambda alerts: [a.entity for a in alerts]  # noqa: E731
    assert ids(store.list_alerts()) == ["198.51.100.4", "10.0.0.1", "198.51.100.2", "198.51.100.1"]
    assert ids(store.list_alerts(source="web.")) == ["198.51.100.4", "198.51.100.1"]
    assert ids(store.list_alerts(source="web.rules")) == ["198.51.100.1"]
    assert ids(store.list_alerts(label="ddos")) == ["10.0.0.1"]
    assert ids(store.list_alerts(min_severity=4)) == ["10.0.0.1", "198.51.100.1"]
    assert ids(store.list_alerts(entity="198.51.100.2")) == ["198.51.100.2"]
    assert ids(store.list_alerts(since=2002, until=2004)) == ["10.0.0.1", "198.51.100.2"]
    assert ids(store.list_alerts(limit=1, offset=1)) == ["10.0.0.1"]
    with pytest.raises(InputError, match="min_severity"):
        store.list_alerts(min_severity=0)
    counts = store.alert_counts()
    assert counts["total"] == 4 and counts["by_severity"]["critical"] == 1
    assert counts["by_label"]["web_sqli"] == 1 and counts["by_source"]["web.bot"] == 1
