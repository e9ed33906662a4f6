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


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
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
        detail = "; ".join(f"{e.field or 'body'}: {e.message}" for e in errors)
        return problem(422, "Validation failed", detail, errors)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return problem(exc.status_code, title, str(exc.detail), headers=getattr(exc, "headers", None))
