"""One exception tree for the whole service, mapped to HTTP answers in `api.problems`.

Keeping every failure a type lets the API answer each one precisely (status, title,
field errors) in a single place instead of each route inventing its own messages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of the request; `index` is set for event batches."""

    field: str
    message: str
    index: int | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"field": self.field, "message": self.message}
        if self.index is not None:
            out = {"index": self.index, **out}
        return out


class AuditrelayError(Exception):
    """Base of every error the service raises on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class ValidationError(AuditrelayError):
    status = 422
    title = "Validation failed"


class MalformedRequest(AuditrelayError):
    status = 400
    title = "Malformed request"


class PayloadTooLarge(AuditrelayError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(AuditrelayError):
    status = 415
    title = "Unsupported media type"


class Unauthenticated(AuditrelayError):
    status = 401
    title = "Unauthorized"


class Forbidden(AuditrelayError):
    status = 403
    title = "Forbidden"


class NotFound(AuditrelayError):
    status = 404
    title = "Not found"


class Conflict(AuditrelayError):
    status = 409
    title = "Conflict"


class TooManyAttempts(AuditrelayError):
    """Wrong passwords in a row: the next attempt is checked only after a wait (429, with
    Retry-After in whole seconds)."""

    status = 429
    title = "Too many attempts"

    def __init__(self, detail: str, retry_after_seconds: float) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class RetryLater(AuditrelayError):
    """Nothing of the request was stored, and sending it again shortly should work (503,
    with Retry-After, so producers retry rather than drop)."""

    status = 503
    title = "Service unavailable"


class StoreUnavailable(RetryLater):
    """The database cannot be reached or failed."""


class ConfigurationError(AuditrelayError):
    """The service's own settings are wrong; raised at start-up, never per request."""
