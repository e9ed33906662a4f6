"""Every error answer is RFC 9457 problem JSON, built here and nowhere else."""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from auditrelay.errors import (
    AuditrelayError,
    FieldError,
    RetryLater,
    StoreUnavailable,
    TooManyAttempts,
    Unauthenticated,
)

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"

#: An answer's size is bounded whatever the request: a body of thousands of unknown keys
#: gets the first errors, one entry saying how many more, and what it echoes cut short.
MAX_ERRORS = 100
#: Characters of a field name (an unknown key, echoed) and of a message kept in an answer.
MAX_FIELD_CHARS = 60
MAX_MESSAGE_CHARS = 500
MAX_DETAIL_CHARS = 1000


def clip(text: str, limit: int) -> str:
    """`text`, or its first characters and an ellipsis when longer than `limit`."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_errors(errors: list[FieldError]) -> list[dict[str, object]]:
    """The first `MAX_ERRORS` errors, clipped, and an entry counting the rest if any."""
    shown = [
        FieldError(clip(e.field, MAX_FIELD_CHARS), clip(e.message, MAX_MESSAGE_CHARS), e.index).as_dict()
        for e in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        shown.append({"field": "", "message": f"and {more} more error{'s' if more > 1 else ''}, not listed"})
    return shown


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": clip(detail, MAX_DETAIL_CHARS),
    }
    if errors:
        body["errors"] = bounded_errors(errors)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(AuditrelayError)
    async def _known(_request: Request, exc: AuditrelayError) -> Response:
        headers = None
        if isinstance(exc, Unauthenticated):
            headers = {"WWW-Authenticate": 'Bearer realm="auditrelay"'}
        elif isinstance(exc, RetryLater):
            if isinstance(exc, StoreUnavailable):
                log.error("database unavailable: %s", exc.__cause__)
            # Nothing was stored: the producer must retry, and Retry-After tells it when.
            headers = {"Retry-After": "5"}
        elif isinstance(exc, TooManyAttempts):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_seconds)))}
        return problem(exc.status, exc.title, exc.detail, exc.errors, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p != "body"]
            if err.get("type") == "json_invalid":
                return problem(400, "Malformed request", f"the body is not valid JSON: {err.get('msg')}")
            message = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
            if err.get("type") == "model_attributes_type" and not loc:
                return problem(
                    422,
                    "Validation failed",
                    "the body must be a JSON object (Content-Type: application/json)",
                    [FieldError(field="", message="must be a JSON object")],
                )
            if err.get("type") == "extra_forbidden":
                message = "unknown field"
            errors.append(FieldError(field=".".join(loc), message=message))
        detail = "; ".join(f"{clip(e.field, MAX_FIELD_CHARS) or 'body'}: {e.message}" for e in errors[:5])
        if len(errors) > 5:
            detail += f"; and {len(errors) - 5} more"
        return problem(422, "Validation failed", detail, errors)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return problem(exc.status_code, title, str(exc.detail), headers=getattr(exc, "headers", None))
