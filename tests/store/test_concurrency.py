"""One Store shared by a thread pool (as the API server uses it): no lost writes, no lock errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fsbrain.core.model import Alert


def test_thread_pool_writes_and_reads(store, make_decision):
    def work(i: int) -> str:
        d = make_decision(f"t{i}", score=i)
        store.save_decision(d, {"n": i})
        store.save_alerts([Alert(source="web.rules", labels=["bot"], severity=2, title=f"a{i}")])
        assert store.get_decision_by_event("loan_application", f"t{i}").score == i
        store.list_version()
        return d.decision_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(work, range(80)))
    assert len(set(ids)) == 80
    assert len(store.list_decisions(limit=1000)) == 80
    assert len(store.list_alerts(limit=1000)) == 80


def test_racing_list_adds_make_one_entry(store, pseudo):
    token = pseudo.hash("phone", "13812345678")
    v0 = store.list_version()

    def add(i: int) -> str:
        return store.add_list_entry("black", "phone", token, "138****5678", f"r{i}", "manual", None, f"u{i}")[
            "entry_id"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = set(pool.map(add, range(12)))
    assert len(ids) == 1
    assert len(store.list_entries()) == 1
    assert store.list_version() == v0 + 12
    actions = [a["action"] for a in store.list_audit(object_type="list_entry", limit=100)]
    assert sorted(actions) == ["list.add"] + ["list.update"] * 11
