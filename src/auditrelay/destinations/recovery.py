"""What an admin does after trouble: read the attempt history, re-send or discard dead
letters, and replay a range of the log to a destination that lost data."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from auditrelay.config import Settings
from auditrelay.delivery.sender import attempt, new_client
from auditrelay.destinations import KINDS
from auditrelay.destinations.service import DestinationService, RequestContext, summary
from auditrelay.errors import FieldError, ValidationError
from auditrelay.log import StoredEvent, Wakeups, head_seq
from auditrelay.security.tokens import Principal
from auditrelay.security.url_guard import UnsafeUrl, check_destination_url
from auditrelay.store import Database
from auditrelay.store import delivery_rows as dr
from auditrelay.store.clock import iso_from_ms

#: Dead letters re-sent by one call at most (each is one request).
MAX_RESEND = 100


class ReplayRequest(BaseModel):
    """A range of the log, by sequence numbers or by the time events were stored."""

    model_config = ConfigDict(extra="forbid")
    from_seq: int | None = Field(default=None, ge=1)
    to_seq: int | None = Field(default=None, ge=1)
    from_time: datetime | None = None
    to_time: datetime | None = None

    @model_validator(mode="after")
    def _one_kind_of_range(self) -> ReplayRequest:
        by_seq = self.from_seq is not None or self.to_seq is not None
        by_time = self.from_time is not None or self.to_time is not None
        if by_seq == by_time:
            raise ValueError(
                "give a range either by sequence (from_seq, to_seq) or by time (from_time, to_time)"
            )
        for moment in (self.from_time, self.to_time):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("times need a UTC offset, e.g. 2024-11-13T06:00:00Z")
        return self


class ResendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Dead letters to re-send; the oldest ones (up to 100) when absent.
    ids: list[int] | None = Field(default=None, max_length=MAX_RESEND)


class RecoveryService:
    def __init__(
        self, db: Database, destinations: DestinationService, wakeups: Wakeups, settings: Settings
    ) -> None:
        self._db = db
        self._destinations = destinations
        self._wakeups = wakeups
        self._settings = settings

    async def deliveries(self, principal: Principal, destination_id: str, limit: int) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self._db.read() as conn:
                self._destinations.visible(conn, principal, destination_id)
                rows = dr.list_attempts(conn, destination_id, limit)
            return [
                {
                    "at": iso_from_ms(r["at_ms"]),
                    "events": r["events"],
                    "bytes": r["bytes"],
                    "status": r["http_status"],
                    "latency_ms": r["latency_ms"],
                    "outcome": r["outcome"],
                    "error": r["error"],
                    "replay": bool(r["replay"]),
                }
                for r in rows
            ]

        return await self._db.run(read)

    async def dead_letters(
        self, principal: Principal, destination_id: str, after: int, limit: int
    ) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            with self._db.read() as conn:
                self._destinations.visible(conn, principal, destination_id)
                rows = dr.list_dead_letters(conn, destination_id, after, limit)
                total = dr.count_dead_letters(conn, destination_id)
            return {"dead_letters": [self._render_dead_letter(r) for r in rows], "total": total}

        return await self._db.run(read)

    async def discard_dead_letter(
        self, principal: Principal, destination_id: str, dead_letter_id: int, ctx: RequestContext
    ) -> bool:
        def write() -> bool:
            with self._db.write() as conn:
                destination = self._destinations.visible(conn, principal, destination_id)
                removed = dr.remove_dead_letters(conn, destination_id, [dead_letter_id]) > 0
                if removed:
                    self._destinations.audit(
                        conn,
                        "dead_letter.discard",
                        destination,
                        principal,
                        ctx,
                        {"destination": summary(destination), "dead_letter_id": dead_letter_id},
                    )
                return removed

        removed = await self._db.run(write)
        if removed:
            self._wakeups.notify()
        return removed

    async def resend_dead_letters(
        self, principal: Principal, destination_id: str, body: ResendRequest, ctx: RequestContext
    ) -> dict[str, Any]:
        """Send dead letters again, one request each; accepted ones leave the list."""
        destination = await self._db.run(self._destinations.load_visible, principal, destination_id)
        try:
            await asyncio.to_thread(
                check_destination_url, destination.url, self._settings.allow_private_destinations
            )
        except UnsafeUrl as exc:
            raise ValidationError(f"url {exc}", [FieldError("url", str(exc))]) from exc

        def read() -> list[dict[str, Any]]:
            with self._db.read() as conn:
                return dr.list_dead_letters(conn, destination_id, 0, MAX_RESEND, body.ids)

        letters = await self._db.run(read)
        if not letters:
            return {"results": [], "remaining": await self._db.run(self._count, destination_id)}
        kind = KINDS[destination.kind]
        results = []
        timeout = self._settings.request_timeout_seconds + self._settings.connect_timeout_seconds
        async with new_client(
            self._settings.connect_timeout_seconds,
            self._settings.request_timeout_seconds,
            self._settings.allow_private_destinations,
        ) as c:
            for letter in letters:
                event = StoredEvent(letter["seq"], destination.org, "", None, 0, bytes(letter["body"]))
                event = _with_time(event)
                request = next(iter(kind.requests(destination, [event])))
                result = await attempt(c, kind, request, timeout)
                delivered = result.verdict.outcome.value == "delivered"
                results.append(
                    {
                        "id": letter["id"],
                        "event_id": letter["event_id"],
                        "delivered": delivered,
                        "status": result.status,
                        "message": result.verdict.message,
                    }
                )

        def write() -> int:
            with self._db.write() as conn:
                done = [r["id"] for r in results if r["delivered"]]
                if done:
                    dr.remove_dead_letters(conn, destination_id, done)
                for r in results:
                    if not r["delivered"]:
                        dr.note_dead_letter_retry(conn, r["id"], r["status"], r["message"])
                self._destinations.audit(
                    conn,
                    "dead_letter.resend",
                    destination,
                    principal,
                    ctx,
                    {"destination": summary(destination), "resent": len(results), "delivered": len(done)},
                )
                return dr.count_dead_letters(conn, destination_id)

        remaining = await self._db.run(write)
        self._wakeups.notify()
        return {"results": results, "remaining": remaining}

    def _count(self, destination_id: str) -> int:
        with self._db.read() as conn:
            return dr.count_dead_letters(conn, destination_id)

    async def replay(
        self, principal: Principal, destination_id: str, body: ReplayRequest, ctx: RequestContext
    ) -> dict[str, Any]:
        def write() -> dict[str, Any]:
            with self._db.write() as conn:
                destination = self._destinations.visible(conn, principal, destination_id)
                head = head_seq(conn)
                if body.from_time is not None or body.to_time is not None:
                    first, last = dr.seq_range_for_times(
                        conn,
                        int(body.from_time.timestamp() * 1000) if body.from_time else None,
                        int(body.to_time.timestamp() * 1000) if body.to_time else None,
                    )
                    from_seq = first if body.from_time is not None else 1
                    to_seq = last if body.to_time is not None else head
                else:
                    from_seq, to_seq = body.from_seq or 1, body.to_seq or head
                if from_seq is None or to_seq is None or from_seq > to_seq or from_seq > head:
                    raise ValidationError(
                        "the range holds no stored events",
                        [
                            FieldError(
                                "", f"no events in that range (the log holds sequence numbers up to {head})"
                            )
                        ],
                    )
                to_seq = min(to_seq, head)
                job = dr.create_replay(conn, destination_id, from_seq, to_seq)
                self._destinations.audit(
                    conn,
                    "replay",
                    destination,
                    principal,
                    ctx,
                    {"destination": summary(destination), "from_seq": from_seq, "to_seq": to_seq},
                )
                return _render_replay(job)

        result = await self._db.run(write)
        self._wakeups.notify()
        return result

    async def replays(self, principal: Principal, destination_id: str) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self._db.read() as conn:
                self._destinations.visible(conn, principal, destination_id)
                return [_render_replay(job) for job in dr.list_replays(conn, destination_id)]

        return await self._db.run(read)

    @staticmethod
    def _render_dead_letter(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "seq": row["seq"],
            "event_id": row["event_id"],
            "failed_at": iso_from_ms(row["failed_at_ms"]),
            "attempts": row["attempts"],
            "status": row["http_status"],
            "error": row["error"],
            "event": orjson.loads(row["body"]),
        }


def _with_time(event: StoredEvent) -> StoredEvent:
    """Restore the event's time for renderers that need it (HEC's `time`)."""
    stamp = orjson.loads(event.body).get("timestamp")
    millis = int(datetime.fromisoformat(stamp).timestamp() * 1000) if isinstance(stamp, str) else 0
    return StoredEvent(event.seq, event.org, event.action, event.entity_path, millis, event.body)


def _render_replay(job: dr.ReplayJob) -> dict[str, Any]:
    span = max(1, job.to_seq - job.from_seq + 1)
    return {
        "id": job.id,
        "from_seq": job.from_seq,
        "to_seq": job.to_seq,
        "state": job.state,
        "progress": round(min(1.0, max(0, job.cursor - job.from_seq + 1) / span), 4),
        "delivered": job.delivered,
        "created_at": iso_from_ms(job.created_at_ms),
        "finished_at": iso_from_ms(job.finished_at_ms),
    }
