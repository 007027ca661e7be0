"""Event types the API accepts: each maps to a domain pack's schema and its event-data builder.

A domain module registered here provides ``parse(payload) -> model`` (raising InputError naming the field)
and ``to_event_data(model, pseudonymizer, now=...) -> dict`` (identity fields validated, then replaced by
keyed-hash tokens). Modules are imported only when their event type is first used.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any

from fsbrain.core.errors import InputError, UnknownEventTypeError
from fsbrain.core.model import new_id
from fsbrain.core.pii import Pseudonymizer

EVENT_TYPE_MODULES: dict[str, tuple[str, str, str]] = {
    # event type: (module, parse function, model class)
    "loan_application": ("fsbrain.domains.credit.schema", "parse_application", "LoanApplication"),
}


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    event_id: str
    event_type: str
    timestamp: float
    data: dict[str, Any]


def event_model(event_type: str) -> Any:
    """The pydantic model class of an event type (for OpenAPI)."""
    mod, _, cls = _entry(event_type)
    return getattr(importlib.import_module(mod), cls)


def _entry(event_type: str) -> tuple[str, str, str]:
    try:
        return EVENT_TYPE_MODULES[event_type]
    except KeyError:
        raise UnknownEventTypeError(
            f"unknown event type {event_type!r} (known: {sorted(EVENT_TYPE_MODULES)})") from None


def prepare_event(event_type: str, payload: Any, pseudonymizer: Pseudonymizer,
                  *, now: float | None = None) -> PreparedEvent:
    """Validate a raw payload and turn it into pseudonymised event data.

    Raises:
        UnknownEventTypeError: the event type has no schema.
        InputError: the payload is invalid (the message names the field).
    """
    mod_name, parse_name, _ = _entry(event_type)
    mod = importlib.import_module(mod_name)
    if not isinstance(payload, dict):
        raise InputError(f"{event_type}: the body must be a JSON object")
    model = getattr(mod, parse_name)(payload)
    now = time.time() if now is None else now
    data = mod.to_event_data(model, pseudonymizer, now=now)
    event_id = getattr(model, "event_id", None) or data.get("event_id") or new_id("e")
    ts = data.get("timestamp") or getattr(model, "timestamp", None) or now
    try:
        ts = float(ts)
    except (TypeError, ValueError):
        raise InputError(f"{event_type}: timestamp {ts!r} is not a time") from None
    data["event_id"] = str(event_id)
    return PreparedEvent(event_id=str(event_id), event_type=event_type, timestamp=ts, data=data)
