"""`POST /api/v1/events`: validate, store durably in one transaction, then answer 202."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from auditrelay.api.auth import require_ingest
from auditrelay.errors import MalformedRequest, PayloadTooLarge
from auditrelay.events import event_schema, parse_body, validate_events
from auditrelay.metrics import EVENTS_DUPLICATE, EVENTS_INGESTED
from auditrelay.security import Principal
from auditrelay.store import store_events

router = APIRouter()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"the body is {int(declared)} bytes; at most {limit} are accepted")
        except ValueError as exc:
            raise MalformedRequest("Content-Length is not a number") from exc
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise PayloadTooLarge(f"the body passes {limit} bytes, the most accepted")
    return bytes(chunks)


@router.post(
    "/api/v1/events",
    status_code=202,
    summary="Send audit events",
    description="One event object, a JSON array of events, or NDJSON (Content-Type: application/x-ndjson). "
    "All-or-nothing: one invalid event rejects the request (422) and nothing is stored.",
)
async def ingest_events(
    request: Request, principal: Annotated[Principal, Depends(require_ingest)]
) -> Response:
    state = request.app.state
    settings = state.settings
    raw = await read_body(request, settings.max_request_bytes)
    items = parse_body(raw, request.headers.get("content-type"), settings.max_events_per_request)
    events = validate_events(items, max_event_bytes=settings.max_event_bytes)

    result = await state.db.run(store_events, state.db, events, principal.org)
    state.wakeups.notify()
    EVENTS_INGESTED.inc(result.stored)
    EVENTS_DUPLICATE.inc(result.duplicates)
    body = {"accepted": len(events), "ids": [e.id for e in events]}
    return Response(orjson.dumps(body), status_code=202, media_type="application/json")


@router.get("/api/v1/schema/event", summary="JSON Schema of the native event format")
async def get_event_schema() -> Response:
    return Response(orjson.dumps(event_schema()), media_type="application/schema+json")
