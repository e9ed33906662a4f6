"""`GET /api/v1/events`: browse the stored log, oldest first, after a sequence number."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from auditrelay.api import answers
from auditrelay.api.auth import require_reader
from auditrelay.errors import FieldError, NotFound, ValidationError
from auditrelay.model import MAX_STORED_INT
from auditrelay.security import Principal
from auditrelay.services import EVENT_TYPE
from auditrelay.store import browse

router = APIRouter()

#: The bodies one page of the log browser holds at most (plus one event): a page of large
#: events ends early, and `next_after` continues from where it ended.
BROWSE_BYTES = 8 * 1024 * 1024


@router.get(
    "/api/v1/events",
    summary="Browse the event log",
    responses={200: {"model": answers.EventPage, "description": "A page of the log, oldest first"}},
)
async def browse_events(
    request: Request,
    principal: Annotated[Principal, Depends(require_reader)],
    after: Annotated[
        int, Query(ge=0, le=MAX_STORED_INT, description="return events with a larger sequence number")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: Annotated[str | None, Query(description="exact action or prefix such as 'document.*'")] = None,
    org: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="one organization's events (instance-wide callers)"),
    ] = None,
) -> Response:
    if action is not None and not EVENT_TYPE.fullmatch(action):
        raise ValidationError(
            "invalid action filter", [FieldError("action", "use 'document.create' or 'document.*'")]
        )
    if principal.org is not None and org not in (None, principal.org):
        raise NotFound(f"no organization {org!r}")  # nothing of other organizations, not even names
    db = request.app.state.db
    rows, head = await db.read(
        browse, after, limit, None if action == "*" else action, principal.org or org, BROWSE_BYTES
    )
    # Stored bytes go out as they are: no decode and re-encode of each event.
    parts = [
        b'{"seq":%d,"received_at_ms":%d,"token_id":%s,"event":%s}'
        % (seq, received, orjson.dumps(token_id), body)
        for seq, received, body, token_id in rows
    ]
    next_after = rows[-1][0] if rows else after
    payload = b'{"events":[' + b",".join(parts) + b'],"next_after":%d,"head":%d}' % (next_after, head)
    return Response(payload, media_type="application/json")
