"""`POST /api/v1/events`: validate, store durably (one transaction, shared with the requests
arriving meanwhile: `log.IngestCommits`), then answer 202."""

from __future__ import annotations

import zlib
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.responses import Response

from auditrelay.api.auth import require_ingest
from auditrelay.errors import FieldError, Forbidden, MalformedRequest, PayloadTooLarge, UnsupportedMediaType
from auditrelay.events import ValidEvent, event_schema, parse_body, refuse_reserved, validate_events
from auditrelay.metrics import EVENTS_CONFLICTING, EVENTS_DUPLICATE, EVENTS_INGESTED
from auditrelay.security import Principal

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


def decode_body(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before any `Content-Encoding`: gzip is inflated, to at most `limit`
    bytes (a small body must not inflate to gigabytes); other encodings are refused."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        return raw
    if coding not in ("gzip", "x-gzip"):
        raise UnsupportedMediaType(f"Content-Encoding {coding!r} is not accepted; send gzip or no encoding")
    out = bytearray()
    rest = raw
    try:
        while rest:  # several gzip members one after another make one stream (RFC 1952)
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += inflater.decompress(rest, limit + 1 - len(out))
            if len(out) > limit or inflater.unconsumed_tail:
                raise PayloadTooLarge(f"the body inflates past {limit} bytes, the most accepted")
            if not inflater.eof:
                raise MalformedRequest("the gzip body is cut short")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise MalformedRequest(f"the body is not valid gzip: {exc}") from exc
    return bytes(out)


def refuse_other_orgs(events: list[ValidEvent], own: str) -> None:
    """An organization's token sends its own organization's events only (403, naming them)."""
    others = [
        FieldError("org", f"this token sends events of organization {own!r} only", index)
        for index, event in enumerate(events)
        if event.org != own
    ]
    if others:
        raise Forbidden(
            f"{len(others)} event(s) name another organization than the token's; nothing was stored",
            others,
        )


class Conflict(BaseModel):
    id: str
    index: int
    message: str


class IngestAnswer(BaseModel):
    """What ingest answers once the events are durable."""

    accepted: int
    stored: int
    ids: list[str]
    already_stored: list[str]
    conflicts: list[Conflict] | None = None


_EVENT = {"$ref": "#/components/schemas/AuditEvent"}
INGEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [_EVENT, {"type": "array", "items": _EVENT, "minItems": 1, "maxItems": 1000}]
                }
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one event (an AuditEvent) per line"}
            },
        },
    }
}


@router.post(
    "/api/v1/events",
    status_code=202,
    responses={202: {"model": IngestAnswer, "description": "Stored durably"}},
    openapi_extra=INGEST_BODY,
    summary="Send audit events",
    description="One event object, a JSON array of events, or NDJSON (Content-Type: application/x-ndjson), "
    "optionally gzip-encoded (Content-Encoding: gzip). All-or-nothing: one invalid event rejects the "
    "request (422) and nothing is stored. The answer lists the ids already stored (sent before) and, "
    "among them, those whose stored event differs from the one sent (`conflicts`: the stored one is kept).",
)
async def ingest_events(
    request: Request, principal: Annotated[Principal, Depends(require_ingest)]
) -> Response:
    state = request.app.state
    settings = state.settings
    raw = await read_body(request, settings.max_request_bytes)
    raw = decode_body(raw, request.headers.get("content-encoding"), settings.max_request_bytes)
    items = parse_body(raw, request.headers.get("content-type"), settings.max_events_per_request)
    events = validate_events(items, max_event_bytes=settings.max_event_bytes, sender_org=principal.org)
    refuse_reserved(events)
    if principal.org is not None:
        refuse_other_orgs(events, principal.org)

    # Durable before the answer: the commit holding these events (shared with the requests
    # arriving meanwhile) has returned.
    result = await state.ingest_commits.store(events, principal.org, principal.token_id)
    state.wakeups.notify()
    EVENTS_INGESTED.inc(result.stored)
    EVENTS_DUPLICATE.inc(result.duplicates)
    EVENTS_CONFLICTING.inc(len(result.conflicts))
    body: dict[str, object] = {
        "accepted": len(events),
        "stored": result.stored,
        "ids": [e.id for e in events],
        "already_stored": list(result.already_stored),
    }
    if result.conflicts:
        index: dict[str, list[int]] = {}
        for position, event in enumerate(events):
            index.setdefault(event.id, []).append(position)
        body["conflicts"] = [
            {
                "id": event_id,
                # The position of the re-sent copy (not the first, if it was sent twice here).
                "index": index[event_id][-1],
                "message": "an event with this id is already stored, with a different body; "
                "the stored event is kept and this one was not stored",
            }
            for event_id in dict.fromkeys(result.conflicts)
        ]
    return Response(orjson.dumps(body), status_code=202, media_type="application/json")


@router.get(
    "/api/v1/schema/event",
    summary="JSON Schema of the native event format",
    response_class=Response,
    responses={200: {"description": "The JSON Schema", "content": {"application/schema+json": {}}}},
)
async def get_event_schema() -> Response:
    return Response(orjson.dumps(event_schema()), media_type="application/schema+json")
