"""What an admin does after trouble: read the attempt history, re-send or discard dead
letters, and replay a range of the log to a destination that lost data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from auditrelay.config import Settings
from auditrelay.delivery import HttpSender
from auditrelay.destinations import EventFilter, kind_named
from auditrelay.errors import NotFound
from auditrelay.events import ValidEvent
from auditrelay.log import Wakeups
from auditrelay.model import DeadLetter, Destination, MinuteFigures, ReplayState, StoredEvent
from auditrelay.security import Principal
from auditrelay.services.audit import RequestContext, audit_event, summary
from auditrelay.services.destinations import DestinationService, refuse_unsafe_url
from auditrelay.services.rendering import render_attempt, render_dead_letter, render_replay
from auditrelay.services.schemas import MAX_RESEND, ReplayRequest, ResendRequest
from auditrelay.store import (
    Database,
    DeliveryFacts,
    DestinationRows,
    LoggedEvent,
    attempt_history,
    count_dead_letters,
    dead_letter_page,
    dead_letters_to_resend,
    destinations_of_event,
    discard_dead_letter,
    minute_history,
    replay_jobs,
    request_replay,
    settle_resent_dead_letters,
)


class RecoveryService:
    def __init__(
        self,
        db: Database,
        rows: DestinationRows,
        destinations: DestinationService,
        wakeups: Wakeups,
        settings: Settings,
    ) -> None:
        self._db = db
        self._rows = rows
        self._destinations = destinations
        self._wakeups = wakeups
        self._settings = settings

    async def deliveries(self, principal: Principal, destination_id: str, limit: int) -> list[dict[str, Any]]:
        records = await self._db.read(attempt_history, self._rows, destination_id, principal.org, limit)
        return [render_attempt(r) for r in records]

    async def minutes(self, principal: Principal, destination_id: str, since_ms: int) -> list[MinuteFigures]:
        """The destination's figures per minute since `since_ms`: events delivered, and its
        lag as the delivery supervisor sampled it (the history its page charts)."""
        return await self._db.read(minute_history, self._rows, destination_id, principal.org, since_ms)

    async def dead_letters(
        self, principal: Principal, destination_id: str, after: int, limit: int
    ) -> dict[str, Any]:
        page, total = await self._db.read(
            dead_letter_page, self._rows, destination_id, principal.org, after, limit
        )
        return {"dead_letters": [render_dead_letter(letter) for letter in page], "total": total}

    async def discard_dead_letter(
        self, principal: Principal, destination_id: str, dead_letter_id: int, ctx: RequestContext
    ) -> bool:
        def audit(d: Destination, letter: DeadLetter) -> list[ValidEvent]:
            details = {
                "destination": summary(d),
                "dead_letter_id": dead_letter_id,
                "event_id": letter.event_id,
                "seq": letter.seq,
            }
            return [audit_event("dead_letter.discard", d, principal, ctx, details)]

        removed = await self._db.write(
            discard_dead_letter,
            self._rows,
            destination_id,
            principal.org,
            dead_letter_id,
            audit,
        )
        if removed:
            self._wakeups.notify()
        return removed

    async def resend_dead_letters(
        self, principal: Principal, destination_id: str, body: ResendRequest, ctx: RequestContext
    ) -> dict[str, Any]:
        """Send dead letters again, one request each; accepted ones leave the list."""
        destination = await self._destinations.load_visible(principal, destination_id)
        kind = kind_named(destination.kind)
        async with HttpSender.for_destination(destination, self._settings) as send:
            await refuse_unsafe_url(send)
            letters = await self._db.read(dead_letters_to_resend, destination_id, MAX_RESEND, body.ids)
            unknown = sorted(set(body.ids or ()) - {letter.id for letter in letters})
            if unknown:
                # Nothing is re-sent: the caller named something that is not there.
                raise NotFound(
                    f"no dead letter {', '.join(map(str, unknown))} for this destination; nothing was re-sent"
                )
            if not letters:
                remaining = await self._db.read(count_dead_letters, destination_id)
                return {"results": [], "remaining": remaining}
            results: list[dict[str, Any]] = []
            delivered: list[int] = []
            refused: list[tuple[int, int | None, str]] = []
            for letter in letters:
                event = _with_time(StoredEvent(letter.seq, destination.org, "", None, 0, letter.body))
                result = await send(next(iter(kind.requests(destination, [event]))))
                results.append(
                    {
                        "id": letter.id,
                        "event_id": letter.event_id,
                        "delivered": result.delivered,
                        "status": result.status,
                        "message": result.verdict.message,
                    }
                )
                if result.delivered:
                    delivered.append(letter.id)
                else:
                    refused.append((letter.id, result.status, result.verdict.message))
        details = {
            "destination": summary(destination),
            "resent": len(results),
            "delivered": len(delivered),
            "events": [
                {"dead_letter_id": letter.id, "event_id": letter.event_id, "seq": letter.seq}
                for letter in letters
            ],
        }
        audit = [audit_event("dead_letter.resend", destination, principal, ctx, details)]
        remaining = await self._db.write(settle_resent_dead_letters, destination, delivered, refused, audit)
        self._wakeups.notify()
        return {"results": results, "remaining": remaining}

    async def replay(
        self, principal: Principal, destination_id: str, body: ReplayRequest, ctx: RequestContext
    ) -> dict[str, Any]:
        by_time = None
        if body.from_time is not None or body.to_time is not None:
            by_time = (_ms(body.from_time), _ms(body.to_time))

        def audit(d: Destination, from_seq: int, to_seq: int) -> list[ValidEvent]:
            details = {"destination": summary(d), "from_seq": from_seq, "to_seq": to_seq}
            return [audit_event("replay", d, principal, ctx, details)]

        job = await self._db.write(
            request_replay,
            self._rows,
            destination_id,
            principal.org,
            None if by_time else (body.from_seq, body.to_seq),
            by_time,
            audit,
        )
        self._wakeups.notify()
        return render_replay(job)

    async def replays(self, principal: Principal, destination_id: str) -> list[dict[str, Any]]:
        jobs = await self._db.read(replay_jobs, self._rows, destination_id, principal.org)
        return [render_replay(job) for job in jobs]

    async def deliveries_of(self, principal: Principal, event: LoggedEvent) -> list[dict[str, Any]]:
        """Where one stored event stands at each destination that could take it: those of
        its organization, and for instance-wide callers the instance's (which take every
        event). Each: `destination` (id, name, kind, org), `state` (`delivered`, `set aside`,
        `discarded`, `replaying`, `pending`, `not sent`) and `detail`, in words."""
        if principal.org is not None and event.org != principal.org:
            raise NotFound(f"no event {event.seq}")
        found = await self._db.read(destinations_of_event, self._rows, event, principal.org is None)
        return [
            {"destination": {**summary(d), "org": d.org}, **where_it_stands(d, facts, event)}
            for d, facts in found
        ]


def where_it_stands(d: Destination, facts: DeliveryFacts, event: LoggedEvent) -> dict[str, str]:
    """One event at one destination, from the destination's filters, its cursor (every
    event up to it was delivered or set aside), its dead letters, the audit events of the
    dead letters it discarded or re-sent, and its replays.

    Filters are today's: an event a since-changed filter left out reads as it would now."""
    stored = StoredEvent(
        event.seq, event.org, event.action, event.entity_path, event.occurred_at_ms, event.body
    )
    if not EventFilter(d.org, d.event_types, d.namespaces).matches(stored):
        return _stands(
            "not sent", "filtered out: the destination's event-type or namespace filters leave it out"
        )
    if facts.dead_letter is not None:
        letter = facts.dead_letter
        answer = f"HTTP {letter.http_status}: " if letter.http_status else ""
        return _stands(
            "set aside",
            f"dead letter: refused {letter.attempts} times ({answer}{letter.error}); not delivered",
        )
    if facts.discarded:
        return _stands("discarded", "set aside as a dead letter, then discarded: never delivered")
    running = [j for j in facts.replays if j.state is not ReplayState.DONE and j.cursor < event.seq]
    if running:
        return _stands(
            "replaying",
            f"replay {running[0].id} of seq {running[0].from_seq}..{running[0].to_seq} is sending it",
        )
    replayed = [j for j in facts.replays if j.cursor >= event.seq]
    if event.seq < facts.starts_at:
        if replayed:
            return _stands(
                "delivered", f"by replay {replayed[0].id} (stored before the destination was added)"
            )
        return _stands("not sent", "stored before the destination was added")
    if facts.cursor is not None and facts.cursor >= event.seq:
        how = "re-sent from the dead letters and accepted" if facts.resent else "accepted by the destination"
        return _stands("delivered", how)
    if not d.active:
        return _stands("pending", "waiting: the destination is paused")
    if facts.state in ("failing", "unauthorized", "held", "slow"):
        return _stands("pending", f"waiting: the destination is {facts.state}")
    return _stands("pending", "waiting to be sent")


def _stands(state: str, detail: str) -> dict[str, str]:
    return {"state": state, "detail": detail}


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


def _with_time(event: StoredEvent) -> StoredEvent:
    """Restore the event's time for renderers that need it (HEC's `time`)."""
    stamp = orjson.loads(event.body).get("timestamp")
    millis = int(datetime.fromisoformat(stamp).timestamp() * 1000) if isinstance(stamp, str) else 0
    return StoredEvent(event.seq, event.org, event.action, event.entity_path, millis, event.body)
