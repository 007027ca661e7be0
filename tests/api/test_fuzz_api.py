"""Fuzzing the decision endpoint: any body gets a decision or a clear 4xx JSON error, never a 5xx."""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_scalars = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4), max_leaves=20)

FIELDS = [("applicant", "id_number"), ("applicant", "phone"), ("applicant", "bank_card"), ("applicant", "monthly_income"),
          ("applicant", "age"), ("loan", "amount"), ("loan", "term_months"), ("device", "ip"), ("device", "is_emulator"),
          ("account", "account_created_at"), (None, "timestamp"), (None, "event_id"), (None, "platform_id"),
          ("applicant", "address"), (None, "contacts")]

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(r) -> None:
    assert r.status_code < 500, r.text
    body = r.json()
    if r.status_code >= 400:
        assert body["error"] and body["message"]
    else:
        assert body["outcome"] in ("approve", "review", "reject")


@SETTINGS
@given(body=json_values)
def test_arbitrary_json_bodies(client, body):
    _check(client.post("/v1/decisions/loan_application", content=json.dumps(body)))


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes(client, raw):
    _check(client.post("/v1/decisions/loan_application", content=raw))


@SETTINGS
@given(field=st.sampled_from(FIELDS), value=json_values, n=st.integers(0, 10**9))
def test_one_field_replaced(client, application, field, value, n):
    app = copy.deepcopy(application)
    app["event_id"] = f"fz-{n}"
    block, name = field
    (app[block] if block else app)[name] = value
    _check(client.post("/v1/decisions/loan_application", json=app))
