"""Errors raised by fsbrain. Every error carries the HTTP status the API answers with.

Hierarchy::

    FsbrainError (500)
    ├── InputError (422)            malformed or invalid input: events, requests, files, log lines
    │   ├── PayloadTooLargeError (413)
    │   └── UnknownEventTypeError (404)
    ├── PolicyError (422)           an invalid policy, rule, list or filter file (file:line: problem)
    ├── NotFoundError (404)
    ├── ConflictError (409)
    ├── AuthError (401)
    └── BackendError (503)          a state or storage backend failed
"""

from __future__ import annotations

from typing import Any


class FsbrainError(Exception):
    """Root of all fsbrain errors.

    Args:
        message: what went wrong, naming the field, file or value concerned.
        detail: optional structured detail returned in API error bodies.
    """

    http_status = 500
    code = "internal_error"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return body


class InputError(FsbrainError):
    """Invalid input: a field missing, of the wrong type, or out of range."""

    http_status = 422
    code = "invalid_input"


class PayloadTooLargeError(InputError):
    http_status = 413
    code = "payload_too_large"


class UnknownEventTypeError(InputError):
    http_status = 404
    code = "unknown_event_type"


class PolicyError(FsbrainError):
    """An invalid policy (or rule, list, filter) file.

    Args:
        message: the problem.
        source: file name (or "<string>").
        line: 1-based line number where known.
        problems: every problem found, each a dict with ``line``, ``path``, ``message``, ``severity``.
    """

    http_status = 422
    code = "invalid_policy"

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        problems: list[dict[str, Any]] | None = None,
    ) -> None:
        where = source or "<policy>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}", detail={"problems": problems or []})
        self.source = source
        self.line = line
        self.problems = problems or []


class NotFoundError(FsbrainError):
    http_status = 404
    code = "not_found"


class ConflictError(FsbrainError):
    http_status = 409
    code = "conflict"


class AuthError(FsbrainError):
    http_status = 401
    code = "unauthorized"


class BackendError(FsbrainError):
    """A state or storage backend failed (Redis down, database unreachable)."""

    http_status = 503
    code = "backend_unavailable"
