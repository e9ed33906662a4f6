"""Managing destinations: validate, store, audit, and tell the delivery loops.

Every change is stored together with its own audit event (`audit_stream.destination.*`)
in one transaction: the log can never miss a change, nor record one that did not happen.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pydantic

from auditrelay.config import Settings
from auditrelay.delivery.sender import attempt, new_client
from auditrelay.destinations import KINDS, BatchSettings, Destination, Header
from auditrelay.destinations.settings import DestinationCreate, DestinationPatch, HeaderIn
from auditrelay.errors import Conflict, FieldError, NotFound, ValidationError
from auditrelay.events import validate_events
from auditrelay.log import StoredEvent, Wakeups, append_events, head_seq
from auditrelay.security.secrets import mask
from auditrelay.security.tokens import Principal
from auditrelay.security.url_guard import UnsafeUrl, check_destination_url
from auditrelay.store import Database
from auditrelay.store import delivery_rows as dr
from auditrelay.store.clock import iso_from_ms
from auditrelay.store.destination_rows import DeliveryStatus, DestinationRows


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where an admin request came from, recorded in the audit event it causes."""

    ip_address: str | None
    user_agent: str | None


class DestinationService:
    def __init__(
        self,
        db: Database,
        rows: DestinationRows,
        wakeups: Wakeups,
        settings: Settings,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._rows = rows
        self._wakeups = wakeups
        self._settings = settings
        self._on_change = on_change

    # -- reading ----------------------------------------------------------------------

    async def list(self, principal: Principal) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self._db.read() as conn:
                found = self._rows.list(conn, principal.org, all_orgs=principal.org is None)
                statuses = self._rows.statuses(conn)
                head = head_seq(conn)
                return [
                    render(d, statuses.get(d.id), head, read_backlog(conn, statuses.get(d.id), d.id))
                    for d in found
                ]

        return await self._db.run(read)

    async def get(self, principal: Principal, destination_id: str) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            with self._db.read() as conn:
                destination = self.visible(conn, principal, destination_id)
                status = self._rows.status(conn, destination_id)
                return render(destination, status, head_seq(conn), read_backlog(conn, status, destination_id))

        return await self._db.run(read)

    # -- changing ----------------------------------------------------------------------

    async def create(
        self, principal: Principal, body: DestinationCreate, ctx: RequestContext
    ) -> dict[str, Any]:
        org = principal.org if principal.org is not None else body.org
        now = int(time.time() * 1000)
        destination = Destination(
            id=str(uuid.uuid4()),
            org=org,
            name=body.name,
            kind=body.kind,
            url=body.url.strip(),
            token=body.token,
            headers=_headers(body.headers or [], {}),
            event_types=tuple(body.event_types or ()),
            namespaces=tuple(body.namespaces or ()),
            content_type=body.content_type,
            verification_token=body.verification_token or secrets.token_urlsafe(24),
            active=body.active,
            options=_options(body.kind, body.options),
            batch=_batch(body.kind, body.batch, None),
            version=1,
            created_at_ms=now,
            updated_at_ms=now,
        )
        await self._check(destination)

        def write() -> dict[str, Any]:
            with self._db.write() as conn:
                # The audit event of the creation takes the log lock; the destination starts
                # just before it, so it receives exactly what is stored from its creation on.
                created_seq = self.audit(
                    conn, "create", destination, principal, ctx, {"destination": summary(destination)}
                )
                self._rows.insert(conn, destination, cursor=created_seq - 1)
                return render(destination, self._rows.status(conn, destination.id), head_seq(conn))

        result = await self._db.run(write)
        self._changed()
        return result

    async def update(
        self, principal: Principal, destination_id: str, patch: DestinationPatch, ctx: RequestContext
    ) -> dict[str, Any]:
        current = await self._db.run(self.load_visible, principal, destination_id)
        given = patch.model_fields_set
        if "verification_token" in given and patch.verification_token != current.verification_token:
            raise ValidationError(
                "the verification token cannot change",
                [
                    FieldError(
                        "verification_token",
                        "is set once, when the destination is created, and never changes",
                    )
                ],
            )
        kind = patch.kind if "kind" in given and patch.kind else current.kind
        if (
            kind != current.kind
            and "url" not in given
            and (KINDS[kind].url_is_secret or KINDS[current.kind].url_is_secret)
        ):
            raise ValidationError(
                "give the url again when changing kind to or from sumo_logic",
                [
                    FieldError(
                        "url", "is required when the kind changes to or from sumo_logic (its URL is a secret)"
                    )
                ],
            )
        changes: dict[str, Any] = {}
        for field in ("name", "kind", "url", "token", "content_type", "active"):
            if field in given:
                value = getattr(patch, field)
                if field in ("name", "kind", "url", "active") and value is None:
                    raise ValidationError(
                        f"{field} cannot be null", [FieldError(field, "cannot be null; omit it to keep it")]
                    )
                changes[field] = value.strip() if field == "url" else value
        if "headers" in given:
            changes["headers"] = _headers(patch.headers or [], {h.name.lower(): h for h in current.headers})
        if "event_types" in given:
            changes["event_types"] = tuple(patch.event_types or ())
        if "namespaces" in given:
            changes["namespaces"] = tuple(patch.namespaces or ())
        if "options" in given or kind != current.kind:
            # A new kind starts from its own defaults: the old kind's options mean nothing to it.
            source = (
                patch.options if "options" in given else ({} if kind != current.kind else current.options)
            )
            changes["options"] = _options(kind, source or {})
        if "batch" in given or kind != current.kind:
            changes["batch"] = _batch(kind, patch.batch, current.batch if kind == current.kind else None)
        updated = replace(
            current, **changes, version=current.version + 1, updated_at_ms=int(time.time() * 1000)
        )
        diff = _diff(current, updated)
        if not diff:
            return await self.get(principal, destination_id)  # nothing changes: no new version, no event
        await self._check(updated)

        def write() -> dict[str, Any]:
            with self._db.write() as conn:
                # Optimistic concurrency: another change since we read it would be lost.
                latest = self.visible(conn, principal, destination_id)
                if latest.version != current.version:
                    raise Conflict("the destination changed meanwhile; read it again and retry")
                self._rows.update(conn, updated)
                self.audit(
                    conn,
                    "update",
                    updated,
                    principal,
                    ctx,
                    {"destination": summary(updated), "changes": diff},
                )
                if "active" in diff:
                    action = "resume" if updated.active else "pause"
                    self.audit(conn, action, updated, principal, ctx, {"destination": summary(updated)})
                return render(updated, self._rows.status(conn, updated.id), head_seq(conn))

        result = await self._db.run(write)
        self._changed()
        return result

    async def set_active(
        self, principal: Principal, destination_id: str, active: bool, ctx: RequestContext
    ) -> dict[str, Any]:
        def write() -> dict[str, Any]:
            with self._db.write() as conn:
                current = self.visible(conn, principal, destination_id)
                if current.active != active:
                    updated = replace(
                        current,
                        active=active,
                        version=current.version + 1,
                        updated_at_ms=int(time.time() * 1000),
                    )
                    self._rows.update(conn, updated)
                    if active:
                        self._rows.set_state(conn, updated.id, "healthy")
                    action = "resume" if active else "pause"
                    self.audit(conn, action, updated, principal, ctx, {"destination": summary(updated)})
                    current = updated
                return render(current, self._rows.status(conn, current.id), head_seq(conn))

        result = await self._db.run(write)
        self._changed()
        return result

    async def delete(self, principal: Principal, destination_id: str, ctx: RequestContext) -> None:
        def write() -> None:
            with self._db.write() as conn:
                current = self.visible(conn, principal, destination_id)
                self._rows.delete(conn, destination_id)
                self.audit(conn, "delete", current, principal, ctx, {"destination": summary(current)})

        await self._db.run(write)
        self._changed()

    async def send_test(self, principal: Principal, destination_id: str) -> dict[str, Any]:
        """Send one test event now, outside the log, and report what the destination said."""
        destination = await self._db.run(self.load_visible, principal, destination_id)
        kind = KINDS[destination.kind]
        try:
            await asyncio.to_thread(
                check_destination_url, destination.url, self._settings.allow_private_destinations
            )
        except UnsafeUrl as exc:
            raise ValidationError(f"url {exc}", [FieldError("url", str(exc))]) from exc
        now = datetime.now(UTC)
        test_event = validate_events(
            [
                {
                    "action": "audit_stream.destination.test",
                    "actor": {"type": "system"},
                    "details": {
                        "message": "Test event sent by auditrelay to check this destination",
                        "destination": summary(destination),
                    },
                    "entity": {"type": "audit_stream_destination", "id": destination.id},
                }
            ],
            now,
        )[0]
        stored = StoredEvent(
            0, destination.org, test_event.action, None, test_event.occurred_at_ms, test_event.body
        )
        request = next(iter(kind.requests(destination, [stored])))
        timeout = self._settings.request_timeout_seconds + self._settings.connect_timeout_seconds
        async with new_client(
            self._settings.connect_timeout_seconds,
            self._settings.request_timeout_seconds,
            self._settings.allow_private_destinations,
        ) as c:
            result = await attempt(c, kind, request, timeout)
        return {
            "delivered": result.verdict.outcome.value == "delivered",
            "outcome": result.verdict.outcome.value,
            "status_code": result.status,
            "message": result.verdict.message,
            "response_body": result.answer[:2000].decode("utf-8", "replace"),
            "latency_ms": round(result.latency_ms, 1),
            "event_id": test_event.id,
        }

    # -- helpers -------------------------------------------------------------------------

    def _changed(self) -> None:
        self._wakeups.notify()
        self._on_change()

    def load_visible(self, principal: Principal, destination_id: str) -> Destination:
        with self._db.read() as conn:
            return self.visible(conn, principal, destination_id)

    def visible(self, conn: Any, principal: Principal, destination_id: str) -> Destination:
        destination = self._rows.get(conn, destination_id)
        # Another organization's destination does not exist, as far as this caller knows.
        if destination is None or (principal.org is not None and destination.org != principal.org):
            raise NotFound(f"no destination with id {destination_id!r}")
        return destination

    async def _check(self, destination: Destination) -> None:
        kind = KINDS[destination.kind]
        problems = [FieldError(field, message) for field, message in kind.check(destination)]
        for header in destination.headers:
            if not header.value:
                problems.append(FieldError(f"headers.{header.name}", "a value is required"))
        try:
            await asyncio.to_thread(
                check_destination_url, destination.url, self._settings.allow_private_destinations
            )
        except UnsafeUrl as exc:
            problems.append(FieldError("url", str(exc)))
        if problems:
            raise ValidationError("; ".join(f"{p.field} {p.message}" for p in problems), problems)

    def audit(
        self,
        conn: Any,
        verb: str,
        destination: Destination,
        principal: Principal,
        ctx: RequestContext,
        details: dict[str, Any],
    ) -> int:
        """Store the audit event of a change, in the caller's transaction; returns its seq."""
        context: dict[str, Any] = {}
        if ctx.ip_address and _is_ip(ctx.ip_address):
            context["ip_address"] = ctx.ip_address
        if ctx.user_agent:
            context["user_agent"] = ctx.user_agent[:1000]
        raw = {
            "action": f"audit_stream.destination.{verb}",
            "actor": {"type": "service", "token": {"id": principal.token_id, "name": principal.name}},
            "context": context,
            "details": details,
            "entity": {
                "type": "audit_stream_destination",
                "id": destination.id,
                "path": destination.org or "",
            },
        }
        event = validate_events([raw])[0]
        return append_events(conn, [event], destination.org).head


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _headers(given: list[HeaderIn], existing: dict[str, Header]) -> tuple[Header, ...]:
    result = []
    for index, header in enumerate(given):
        value = header.value
        if value is None:
            kept = existing.get(header.name.lower())
            if not header.secret or kept is None or not kept.secret:
                raise ValidationError(
                    "a header needs a value",
                    [
                        FieldError(
                            f"headers.{index}.value",
                            "is required (only an existing secret header may omit it)",
                        )
                    ],
                )
            value = kept.value
        result.append(Header(header.name, value, header.secret))
    return tuple(result)


def _options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    try:
        model = KINDS[kind].options_model.model_validate(options)
    except pydantic.ValidationError as exc:
        errors = [
            FieldError("options." + ".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()
        ]
        raise ValidationError(f"invalid options for a {kind} destination", errors) from exc
    return model.model_dump(exclude_none=True)


def _batch(kind: str, given: Any, current: BatchSettings | None) -> BatchSettings:
    base = current or KINDS[kind].default_batch
    if given is None:
        return base
    return BatchSettings(
        max_events=given.max_events or base.max_events,
        max_bytes=given.max_bytes or base.max_bytes,
        linger_ms=base.linger_ms if given.linger_ms is None else given.linger_ms,
    )


def summary(destination: Destination) -> dict[str, Any]:
    return {"id": destination.id, "name": destination.name, "kind": destination.kind}


def _diff(before: Destination, after: Destination) -> dict[str, Any]:
    """What changed, with secrets reduced to 'changed' so the audit log never holds them."""
    secret_url = KINDS[before.kind].url_is_secret or KINDS[after.kind].url_is_secret
    old, new = _public(before, secret_url), _public(after, secret_url)
    changes: dict[str, Any] = {}
    for key in new:
        if old.get(key) != new.get(key):
            changes[key] = {"from": old.get(key), "to": new.get(key)}
    if before.token != after.token:
        changes["token"] = "changed"
    if before.url != after.url and secret_url:
        changes["url"] = "changed"
    if [h.value for h in before.headers if h.secret] != [h.value for h in after.headers if h.secret]:
        changes["secret_header_values"] = "changed"
    return changes


def _public(d: Destination, secret_url: bool = False) -> dict[str, Any]:
    return {
        "name": d.name,
        "kind": d.kind,
        "url": mask_url(d.url) if secret_url or KINDS[d.kind].url_is_secret else d.url,
        "headers": [
            {"name": h.name, "value": mask(h.value) if h.secret else h.value, "secret": h.secret}
            for h in d.headers
        ],
        "event_types": list(d.event_types),
        "namespaces": list(d.namespaces),
        "content_type": d.content_type,
        "active": d.active,
        "options": d.options,
        "batch": {
            "max_events": d.batch.max_events,
            "max_bytes": d.batch.max_bytes,
            "linger_ms": d.batch.linger_ms,
        },
    }


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/{mask(parts.path + parts.query) or ''}"


@dataclass(frozen=True, slots=True)
class Backlog:
    """Figures about how far behind a destination is, read with its status."""

    oldest_pending_ms: int | None = None
    dead_letters: int = 0


def read_backlog(conn: Any, status: DeliveryStatus | None, destination_id: str) -> Backlog:
    if status is None:
        return Backlog()
    return Backlog(
        oldest_pending_ms=dr.oldest_pending_received_at(conn, status.cursor),
        dead_letters=dr.count_dead_letters(conn, destination_id),
    )


def render(
    destination: Destination, status: DeliveryStatus | None, head: int, backlog: Backlog | None = None
) -> dict[str, Any]:
    """A destination as the API shows it: secrets masked, delivery status attached."""
    backlog = backlog or Backlog()
    body: dict[str, Any] = {
        "id": destination.id,
        "org": destination.org,
        **_public(destination),
        "token": mask(destination.token),
        "verification_token": destination.verification_token,
        "filtered": destination.filtered,
        "created_at": iso_from_ms(destination.created_at_ms),
        "updated_at": iso_from_ms(destination.updated_at_ms),
    }
    if status is not None:
        last_error = None
        if status.last_error_at_ms is not None:
            last_error = {
                "at": iso_from_ms(status.last_error_at_ms),
                "status": status.last_error_status,
                "message": status.last_error_message,
            }
        body["status"] = {
            "state": status.state if destination.active else "paused",
            "cursor": status.cursor,
            "head": head,
            "lag": max(0, head - status.cursor),
            "lag_seconds": (
                round(max(0.0, time.time() - backlog.oldest_pending_ms / 1000), 3)
                if backlog.oldest_pending_ms is not None
                else 0.0
            ),
            "dead_letters": backlog.dead_letters,
            "delivered_total": status.delivered_total,
            "last_success_at": iso_from_ms(status.last_success_at_ms),
            "last_error": last_error,
            "consecutive_failures": status.consecutive_failures,
            "next_retry_at": iso_from_ms(status.next_retry_at_ms) if destination.active else None,
        }
    return body
