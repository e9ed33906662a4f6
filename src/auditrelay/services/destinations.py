"""Managing destinations: validate, store with their audit events, and tell the delivery loops.

Every change is stored together with its own audit event (`audit_stream.destination.*`)
in one transaction (`store.destination_changes`): the log can never miss a change, nor
record one that did not happen.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from auditrelay.config import Settings
from auditrelay.delivery import Attempt, HttpSender, check_url, tls_problems
from auditrelay.destinations import KINDS, kind_named
from auditrelay.errors import Conflict, FieldError, Forbidden, ValidationError
from auditrelay.events import ValidEvent, validate_events
from auditrelay.log import Wakeups
from auditrelay.model import Destination, StoredEvent
from auditrelay.security import Principal, UnsafeUrl
from auditrelay.services.audit import RequestContext, audit_event, summary
from auditrelay.services.changes import (
    batch_settings,
    delivery_settings,
    diff,
    kind_options,
    merge_headers,
    reveal_generated,
    signing_and_tls,
)
from auditrelay.services.gauges import destination_gauges
from auditrelay.services.rendering import render
from auditrelay.services.schemas import DestinationCreate, DestinationPatch
from auditrelay.store import (
    Database,
    DestinationRows,
    append_events,
    create_destination,
    delete_destination,
    list_overviews,
    load_visible_destination,
    read_overview,
    record_destination_action,
    request_retry_now,
    require_org,
    set_destination_active,
    update_destination,
)

#: The settings whose change ends a breaker hold: they decide where and how events are sent.
DELIVERY_SETTINGS = frozenset(
    {"url", "kind", "token", "headers", "secret_header_values", "options", "content_type", "batch"}
    | {"signing_secret", "signing_secret_previous", "tls", "tls_client_key"}
)


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
        views = await self._db.read(list_overviews, self._rows, principal.org)
        return [render(view, self._settings.retention_hard_max_days) for view in views]

    async def gauges(self, principal: Principal) -> bytes:
        """The gauges of the destinations `principal` may see, for /metrics."""
        views = await self._db.read(list_overviews, self._rows, principal.org)
        return destination_gauges(views)

    async def get(self, principal: Principal, destination_id: str) -> dict[str, Any]:
        view = await self._db.read(read_overview, self._rows, destination_id, principal.org)
        return render(view, self._settings.retention_hard_max_days)

    async def load_visible(self, principal: Principal, destination_id: str) -> Destination:
        """The destination with its secrets open, if `principal` may see it (else NotFound)."""
        return await self._db.read(load_visible_destination, self._rows, destination_id, principal.org)

    # -- changing ----------------------------------------------------------------------

    async def create(
        self, principal: Principal, body: DestinationCreate, ctx: RequestContext
    ) -> dict[str, Any]:
        destination = _new_destination(principal, body)
        await self._check(destination)

        def audit(d: Destination) -> list[ValidEvent]:
            return [audit_event("create", d, principal, ctx, {"destination": summary(d)})]

        view = await self._db.write(create_destination, self._rows, destination, audit)
        self._changed()
        return reveal_generated(render(view, self._settings.retention_hard_max_days), body, view.destination)

    async def update(
        self, principal: Principal, destination_id: str, patch: DestinationPatch, ctx: RequestContext
    ) -> dict[str, Any]:
        current = await self.load_visible(principal, destination_id)
        if current.secrets_unreadable:
            raise Conflict(f"this destination cannot be changed: {current.secrets_unreadable}")
        updated = _patched(current, patch)
        changes = diff(current, updated)
        if not changes:
            return await self.get(principal, destination_id)  # nothing changes: no new version, no event
        await self._check(updated)
        refuse_moving_secrets(current, updated, patch)

        def audit(d: Destination) -> list[ValidEvent]:
            events = [
                audit_event("update", d, principal, ctx, {"destination": summary(d), "changes": changes})
            ]
            if "active" in changes:
                verb = "resume" if d.active else "pause"
                events.append(audit_event(verb, d, principal, ctx, {"destination": summary(d)}))
            return events

        # An edit of where or how events are sent ends a breaker hold; a rename does not.
        resets = bool(set(changes) & DELIVERY_SETTINGS)
        view = await self._db.write(
            update_destination, self._rows, updated, current.version, principal.org, audit, resets
        )
        self._changed()
        return reveal_generated(render(view, self._settings.retention_hard_max_days), patch, view.destination)

    async def set_active(
        self, principal: Principal, destination_id: str, active: bool, ctx: RequestContext
    ) -> dict[str, Any]:
        def change(current: Destination) -> Destination | None:
            if current.active == active:
                return None
            return replace(
                current, active=active, version=current.version + 1, updated_at_ms=int(time.time() * 1000)
            )

        def audit(d: Destination) -> list[ValidEvent]:
            verb = "resume" if active else "pause"
            return [audit_event(verb, d, principal, ctx, {"destination": summary(d)})]

        view = await self._db.write(
            set_destination_active, self._rows, destination_id, principal.org, change, audit
        )
        self._changed()
        return render(view, self._settings.retention_hard_max_days)

    async def retry_now(
        self, principal: Principal, destination_id: str, ctx: RequestContext
    ) -> dict[str, Any]:
        """Wake the destination's loop: the next attempt comes at once, the backoff starts
        over and the breaker's hold ends. Audited as `audit_stream.destination.retry`."""

        def audit(d: Destination) -> list[ValidEvent]:
            return [audit_event("retry", d, principal, ctx, {"destination": summary(d)})]

        view = await self._db.write(request_retry_now, self._rows, destination_id, principal.org, audit)
        self._changed()
        return render(view, self._settings.retention_hard_max_days)

    async def delete(self, principal: Principal, destination_id: str, ctx: RequestContext) -> None:
        def audit(d: Destination) -> list[ValidEvent]:
            return [audit_event("delete", d, principal, ctx, {"destination": summary(d)})]

        await self._db.write(delete_destination, self._rows, destination_id, principal.org, audit)
        self._changed()

    async def send_test(
        self, principal: Principal, destination_id: str, ctx: RequestContext | None = None
    ) -> dict[str, Any]:
        """Send one test event now, outside the log, and report what the destination said;
        the test itself is an audit event (who sent it, and what came back)."""
        destination = await self.load_visible(principal, destination_id)
        if destination.secrets_unreadable:
            raise Conflict(f"cannot send to this destination: {destination.secrets_unreadable}")
        result, test_event = await self._send_test_event(destination)
        details = {
            "destination": summary(destination),
            "test_event_id": test_event.id,
            "delivered": result.delivered,
            "status_code": result.status,
        }

        def audit(d: Destination) -> list[ValidEvent]:
            return [audit_event("tested", d, principal, ctx, details)] if ctx is not None else []

        if result.delivered:
            # The destination answers again: its loop need not wait out a backoff.
            await self._db.write(request_retry_now, self._rows, destination.id, principal.org, audit)
            self._changed()
        elif ctx is not None:
            await self._db.write(record_destination_action, self._rows, destination.id, principal.org, audit)
        return _test_answer(result, test_event)

    async def test_unsaved(
        self, principal: Principal, body: DestinationCreate, ctx: RequestContext
    ) -> dict[str, Any]:
        """`send_test` for settings not saved yet (the admin panel's **Test** before **Add
        destination**): the settings are checked as `create` checks them, one test event is
        sent the same way, nothing is stored but the audit event of the test
        (`audit_stream.destination.tested`, with `"saved": false`)."""
        destination = _new_destination(principal, body)
        await self._db.read(require_org, destination.org)
        await self._check(destination)
        result, test_event = await self._send_test_event(destination)
        details = {
            "destination": summary(destination),
            "saved": False,
            "test_event_id": test_event.id,
            "delivered": result.delivered,
            "status_code": result.status,
        }
        event = audit_event("tested", destination, principal, ctx, details)
        await self._db.write(append_events, [event], destination.org)
        return _test_answer(result, test_event)

    async def _send_test_event(self, destination: Destination) -> tuple[Attempt, ValidEvent]:
        """One test event sent to `destination` now, outside the log, by the loop's sender."""
        kind = kind_named(destination.kind)
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
            datetime.now(UTC),
        )[0]
        stored = StoredEvent(
            0, destination.org, test_event.action, None, test_event.occurred_at_ms, test_event.body
        )
        request = next(iter(kind.requests(destination, [stored])))
        async with HttpSender.for_destination(destination, self._settings) as send:
            await refuse_unsafe_url(send)
            result = await send(request)
        return result, test_event

    # -- helpers -------------------------------------------------------------------------

    def _changed(self) -> None:
        self._wakeups.notify()
        self._on_change()

    async def _check(self, destination: Destination) -> None:
        kind = kind_named(destination.kind)
        problems = [FieldError(field, message) for field, message in kind.check(destination)]
        for header in destination.headers:
            if not header.value:
                problems.append(FieldError(f"headers.{header.name}", "a value is required"))
        try:
            await check_url(destination.url, self._settings.allow_private_destinations)
        except UnsafeUrl as exc:
            problems.append(FieldError("url", str(exc)))
        problems += [FieldError(field, message) for field, message in tls_problems(destination.tls)]
        if problems:
            raise ValidationError("; ".join(f"{p.field} {p.message}" for p in problems), problems)


def _test_answer(result: Attempt, test_event: ValidEvent) -> dict[str, Any]:
    """What a test send reports: what the destination answered."""
    return {
        "delivered": result.delivered,
        "outcome": result.outcome.value,
        "status_code": result.status,
        "message": result.verdict.message,
        "response_body": result.answer[:2000].decode("utf-8", "replace"),
        "latency_ms": round(result.latency_ms, 1),
        "event_id": test_event.id,
    }


def _new_destination(principal: Principal, body: DestinationCreate) -> Destination:
    """The destination `body` describes, in the caller's organization (not stored)."""
    if principal.org is not None and body.org is not None and body.org != principal.org:
        raise Forbidden("an owner's token works in its own organization only; leave org out")
    org = principal.org if principal.org is not None else body.org
    now = int(time.time() * 1000)
    return Destination(
        id=str(uuid.uuid4()),
        org=org,
        name=body.name,
        kind=body.kind,
        url=body.url.strip(),
        token=body.token,
        headers=merge_headers(body.headers or [], {}),
        event_types=tuple(body.event_types or ()),
        namespaces=tuple(body.namespaces or ()),
        content_type=body.content_type,
        verification_token=body.verification_token or secrets.token_urlsafe(24),
        active=body.active,
        options=kind_options(body.kind, body.options),
        batch=batch_settings(body.kind, body.batch, None),
        delivery=delivery_settings(body.delivery, None),
        **signing_and_tls(body, None),
        version=1,
        created_at_ms=now,
        updated_at_ms=now,
    )


async def refuse_unsafe_url(sender: HttpSender) -> None:
    """The URL guard before a send an admin asked for; its refusal is the admin's error."""
    try:
        await sender.check_destination()
    except UnsafeUrl as exc:
        raise ValidationError(f"url {exc}", [FieldError("url", str(exc))]) from exc


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (
        parts.scheme.lower(),
        (parts.hostname or "").lower(),
        port or DEFAULT_PORTS.get(parts.scheme.lower()),
    )


DEFAULT_PORTS = {"http": 80, "https": 443}


def refuse_moving_secrets(current: Destination, updated: Destination, patch: DestinationPatch) -> None:
    """Stored secrets (the token, secret header values) are never sent somewhere new on their
    own: when the URL's scheme, host or port or the kind changes, the request must give them
    again (or remove them), else 422 naming each. A URL edit must not be a way to take them."""
    moved = _origin(current.url) != _origin(updated.url) or current.kind != updated.kind
    if not moved:
        return
    given = patch.model_fields_set
    errors = []
    if current.token and "token" not in given:
        errors.append(FieldError("token", "give the token again for the new place, or null to send none"))
    if "headers" not in given:
        errors += [
            FieldError(
                "headers", f"give the value of the secret header {h.name!r} again, or leave the header out"
            )
            for h in current.headers
            if h.secret
        ]
    else:
        errors += [
            FieldError(f"headers.{index}.value", f"give the value of the secret header {h.name!r} again")
            for index, h in enumerate(patch.headers or [])
            if h.secret and h.value is None
        ]
    if errors:
        where = "kind" if current.kind != updated.kind else "URL's scheme, host or port"
        raise ValidationError(
            f"the destination's {where} changes: its stored secrets are not sent to the new place "
            "unless this request gives them again",
            errors,
        )


def _patched(current: Destination, patch: DestinationPatch) -> Destination:
    """The destination with the patch applied; absent fields keep their value."""
    given = patch.model_fields_set
    if "verification_token" in given and patch.verification_token != current.verification_token:
        raise ValidationError(
            "the verification token cannot change",
            [
                FieldError(
                    "verification_token", "is set once, when the destination is created, and never changes"
                )
            ],
        )
    kind = patch.kind if "kind" in given and patch.kind else current.kind
    if kind != current.kind and "url" not in given:
        secret_url_kinds = [k for k in (kind, current.kind) if KINDS[k].url_is_secret]
        if secret_url_kinds:
            name = secret_url_kinds[0]
            raise ValidationError(
                f"give the url again when changing kind to or from {name}",
                [
                    FieldError(
                        "url", f"is required when the kind changes to or from {name} (its URL is a secret)"
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
        changes["headers"] = merge_headers(patch.headers or [], {h.name.lower(): h for h in current.headers})
    if "event_types" in given:
        changes["event_types"] = tuple(patch.event_types or ())
    if "namespaces" in given:
        changes["namespaces"] = tuple(patch.namespaces or ())
    if "options" in given or kind != current.kind:
        # A new kind starts from its own defaults: the old kind's options mean nothing to it.
        source = patch.options if "options" in given else ({} if kind != current.kind else current.options)
        changes["options"] = kind_options(kind, source or {})
    if "batch" in given or kind != current.kind:
        changes["batch"] = batch_settings(kind, patch.batch, current.batch if kind == current.kind else None)
    if "delivery" in given:
        changes["delivery"] = delivery_settings(patch.delivery, current.delivery)
    changes.update(signing_and_tls(patch, current))
    return replace(current, **changes, version=current.version + 1, updated_at_ms=int(time.time() * 1000))
