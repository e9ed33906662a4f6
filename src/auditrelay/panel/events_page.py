"""Events: the stored log, newest first, filtered; one event's JSON and where it was
delivered; the filtered view exported as NDJSON.

Pages go back by sequence number (`before`), never by offset. The newest page polls for a
count of newer events ("N newer events") instead of moving its rows under the reader.
Owners and viewers read their organization's events only (`EventService.scoped`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from auditrelay.errors import ValidationError
from auditrelay.model import MAX_STORED_INT
from auditrelay.panel.web import Form, Visitor, layout, page, panel, whole_number
from auditrelay.services import EXPORT_CAP, EventService, RecoveryService
from auditrelay.store import PAGE_SIZE, SCAN_WINDOW, EventQuery, LoggedEvent, iso_from_ms

router = APIRouter(prefix="/admin", include_in_schema=False)

#: How often the newest page asks how many events came since it was shown (htmx polling).
POLL_SECONDS = 3
#: The filters, as query parameters, in the order the form shows them.
FILTERS = ("action", "actor", "org", "entity_path", "from", "to")
_MAX_FILTER = 200


def _events(request: Request) -> EventService:
    service: EventService = request.app.state.events
    return service


class Filters:
    """The filter form's values as typed, the query they make, and the errors of the
    values that make none (each next to its field)."""

    def __init__(self, request: Request, who: Visitor) -> None:
        params = request.query_params
        self.values = {name: params.get(name, "").strip()[:_MAX_FILTER] for name in FILTERS}
        if not who.is_admin:
            self.values["org"] = ""  # fixed to the visitor's: not a filter of theirs
        self.errors: dict[str, str] = {}
        since = self._time("from", end=False)
        until = self._time("to", end=True)
        if since is not None and until is not None and since > until:
            self.errors["to"] = "must not be before From"
        self.query = EventQuery(
            org=self.values["org"] or None,
            action=self.values["action"] or None,
            actor=self.values["actor"] or None,
            entity_path=self.values["entity_path"] or None,
            since_ms=since,
            until_ms=until,
        )

    def _time(self, name: str, end: bool) -> int | None:
        """A `datetime-local` value, read as UTC; `end`: the last millisecond of the minute
        (or second) typed, so To includes it."""
        text = self.values[name]
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.errors[name] = "use a date and time such as 2024-11-13T06:00 (UTC)"
            return None
        ms = (
            int(moment.replace(tzinfo=UTC).timestamp() * 1000)
            if moment.tzinfo is None
            else int(moment.timestamp() * 1000)
        )
        if end:
            ms += 59_999 if len(text) <= 16 else 999
        return ms

    @property
    def active(self) -> bool:
        return any(self.values.values())

    def encoded(self, **extra: int) -> str:
        """The filters as a query string (only those set), with `extra` parameters."""
        pairs: list[tuple[str, Any]] = [(k, v) for k, v in self.values.items() if v]
        pairs += list(extra.items())
        return urlencode(pairs)

    def add(self, error: ValidationError) -> None:
        for field in error.errors:
            self.errors[field.field or "action"] = field.message


def _before(request: Request) -> int | None:
    before = whole_number(request.query_params.get("before", ""))
    return before if before is not None and 0 < before <= MAX_STORED_INT else None


@router.get("/events")
@panel()
async def events_list(request: Request, who: Visitor, form: Form | None) -> Response:
    filters = Filters(request, who)
    before = _before(request)
    rows: list[dict[str, Any]] = []
    older = head = None
    if not filters.errors:
        try:
            found = await _events(request).page(who.principal, filters.query, before)
        except ValidationError as exc:
            filters.add(exc)
        else:
            rows = [_row(e) for e in found.events]
            older, head = found.older, found.head
    return page(
        request,
        "events.html",
        status=422 if filters.errors else 200,
        title="Events",
        filters=filters,
        rows=rows,
        before=before,
        older=older,
        head=head,
        poll_seconds=POLL_SECONDS,
        export_cap=EXPORT_CAP,
        page_size=PAGE_SIZE,
        scan_window=SCAN_WINDOW,
        **layout(who, "events"),
    )


@router.get("/events/newer")
@panel()
async def events_newer(request: Request, who: Visitor, form: Form | None) -> Response:
    """How many events matching the filters were stored after `after` (polled)."""
    filters = Filters(request, who)
    after = whole_number(request.query_params.get("after", ""))
    if after is not None and after > MAX_STORED_INT:
        after = None
    count, more = (0, False)
    if after is not None and not filters.errors:
        try:
            count, more = await _events(request).newer(who.principal, filters.query, after)
        except ValidationError:
            count = 0
    return page(request, "_events_newer.html", visitor=who, count=count, more=more, filters=filters)


@router.get("/events/export")
@panel()
async def events_export(request: Request, who: Visitor, form: Form | None) -> Response:
    """The filtered view as NDJSON: the stored bytes of each event, one a line, newest
    first, at most `EXPORT_CAP` of them."""
    filters = Filters(request, who)
    if filters.errors:
        raise ValidationError("; ".join(f"{k}: {v}" for k, v in filters.errors.items()))
    service = _events(request)
    query = service.scoped(who.principal, filters.query)  # a bad filter fails here, as a page
    lines = service.export(who.principal, query)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="auditrelay-events-{stamp}.ndjson"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/events/{seq}")
@panel()
async def event_page(request: Request, who: Visitor, form: Form | None, seq: int) -> Response:
    event = await _events(request).get(who.principal, seq)  # another organization's: 404
    recovery: RecoveryService = request.app.state.recovery
    deliveries = await recovery.deliveries_of(who.principal, event)
    body = orjson.loads(event.body)
    return page(
        request,
        "event.html",
        title=f"Event {event.seq}",
        event=_row(event),
        pretty=orjson.dumps(body, option=orjson.OPT_INDENT_2).decode(),
        received=iso_from_ms(event.received_at_ms),
        token_id=event.token_id,
        deliveries=deliveries,
        **layout(who, "events"),
    )


def _row(event: LoggedEvent) -> dict[str, Any]:
    body = orjson.loads(event.body)
    return {
        "seq": event.seq,
        "id": body.get("id"),
        "org": event.org,
        "action": event.action,
        "entity_path": event.entity_path,
        "time": iso_from_ms(event.occurred_at_ms),
        "actor": _actor(body.get("actor")),
    }


def _actor(actor: Any) -> str:
    """The actor in a few words: a user's name, email or id; a service's or system's name."""
    if not isinstance(actor, dict):
        return ""
    user = actor.get("user")
    if isinstance(user, dict):
        for key in ("name", "email", "id"):
            if user.get(key) not in (None, ""):
                return str(user[key])
    for key in ("name", "id"):
        if actor.get(key) not in (None, ""):
            return str(actor[key])
    return str(actor.get("type", ""))
