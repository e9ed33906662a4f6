"""Reading the stored log the way the admin panel's Events page does: newest first,
filtered, one event at a time, exported as NDJSON.

A caller of one organization reads its organization's events only, whatever it asks for:
the query's organization is replaced by its own, and another organization's event does
not exist (`NotFound`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from auditrelay.errors import FieldError, NotFound, ValidationError
from auditrelay.model import MAX_STORED_INT
from auditrelay.security import Principal
from auditrelay.services.schemas import EVENT_TYPE
from auditrelay.store import (
    PAGE_SIZE,
    Database,
    EventPage,
    EventQuery,
    LoggedEvent,
    count_newer,
    event_at,
    newest_events,
)

#: Events one export holds at most (the newest matching ones).
EXPORT_CAP = 10_000
#: Events read per transaction while exporting.
_EXPORT_CHUNK = 500
#: Sequence numbers one export looks at, at most (its filters may match few events).
_EXPORT_WINDOW = 1_000_000


class EventService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def scoped(self, principal: Principal, query: EventQuery) -> EventQuery:
        """The query as this caller may run it: its own organization's events only. A bad
        action filter is a `ValidationError` naming the field `action`."""
        if query.action and not EVENT_TYPE.fullmatch(query.action):
            raise ValidationError(
                "invalid action filter", [FieldError("action", "use 'document.create' or 'document.*'")]
            )
        return query if principal.org is None else replace(query, org=principal.org)

    async def page(self, principal: Principal, query: EventQuery, before: int | None) -> EventPage:
        found: EventPage = await self._db.read(
            newest_events, self.scoped(principal, query), before, PAGE_SIZE
        )
        return found

    async def newer(self, principal: Principal, query: EventQuery, after: int) -> tuple[int, bool]:
        """How many matching events were stored after `after`, and whether there are more."""
        counted: tuple[int, bool] = await self._db.read(count_newer, self.scoped(principal, query), after)
        return counted

    async def get(self, principal: Principal, seq: int) -> LoggedEvent:
        if not 0 < seq <= MAX_STORED_INT:
            raise NotFound(f"no event {seq}")
        found: LoggedEvent | None = await self._db.read(event_at, seq, principal.org)
        if found is None:
            raise NotFound(f"no event {seq}")
        return found

    async def export(
        self, principal: Principal, query: EventQuery, cap: int = EXPORT_CAP
    ) -> AsyncIterator[bytes]:
        """The newest `cap` matching events, newest first, one stored body per line (the
        bytes as stored), read a chunk per transaction so memory stays small."""
        scoped = self.scoped(principal, query)
        before: int | None = None
        sent = scanned = 0
        while sent < cap and scanned < _EXPORT_WINDOW:
            limit = min(_EXPORT_CHUNK, cap - sent)
            chunk: EventPage = await self._db.read(newest_events, scoped, before, limit)
            top = before - 1 if before is not None else chunk.head
            for event in chunk.events:
                yield event.body + b"\n"
            sent += len(chunk.events)
            if chunk.older is None:
                return
            scanned += top - chunk.older + 1
            before = chunk.older
