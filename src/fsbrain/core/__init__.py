"""The shared model: events, decisions, alerts, reasons, risk labels, identity handling and errors."""

from fsbrain.core.errors import (
    AuthError,
    BackendError,
    ConflictError,
    FsbrainError,
    InputError,
    NotFoundError,
    PayloadTooLargeError,
    PolicyError,
    UnknownEventTypeError,
)
from fsbrain.core.labels import RiskLabel, all_labels, get_label, is_label, register_label
from fsbrain.core.model import Alert, Decision, Event, Reason, new_id
from fsbrain.core.pii import Pseudonymizer, mask, validate_bank_card, validate_id_number, validate_phone

__all__ = [
    "Alert",
    "AuthError",
    "BackendError",
    "ConflictError",
    "Decision",
    "Event",
    "FsbrainError",
    "InputError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PolicyError",
    "Pseudonymizer",
    "Reason",
    "RiskLabel",
    "UnknownEventTypeError",
    "all_labels",
    "get_label",
    "is_label",
    "mask",
    "new_id",
    "register_label",
    "validate_bank_card",
    "validate_id_number",
    "validate_phone",
]
