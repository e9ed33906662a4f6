"""A destination's own page: its verification token, its live status, a chart of its last
hours, its recent delivery attempts, its dead letters (Resend, Discard), replays of a range
of the log, and Retry now while it waits to retry.

Every change calls the service method the API's route calls (`RecoveryService`,
`DestinationService.retry_now`), with the person as the principal, so each is the same
audit event; another organization's destination is not found, as in the API.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from auditrelay.errors import NotFound, ValidationError
from auditrelay.model import MAX_DEAD_LETTER_ID
from auditrelay.panel.chart import HOURS, MINUTE_MS, minutes_chart
from auditrelay.panel.forms import kind_choices, validated
from auditrelay.panel.web import (
    HOME,
    Form,
    Visitor,
    first,
    layout,
    page,
    panel,
    redirect,
    request_context,
    whole_number,
)
from auditrelay.services import DestinationService, RecoveryService, ReplayRequest, ResendRequest

router = APIRouter(prefix="/admin", include_in_schema=False)

#: Delivery attempts and dead letters shown (the newest attempts, the oldest letters).
ATTEMPTS_SHOWN = 20
DEAD_LETTERS_SHOWN = 50
#: How often the page asks for fresh status figures (htmx polling), as the list does.
POLL_SECONDS = 2
#: What a change that comes back to this page says (fixed words; only counts come from the URL).
DONE = {
    "saved": "Changes saved.",
    "paused": "Delivery paused; its position is kept.",
    "resumed": "Delivery resumed from where it stopped.",
    "retried": "Retrying now: the next attempt goes at once.",
    "discarded": "Dead letter discarded.",
    "replaying": "Replay requested: the range is sent again after what is owed now.",
}


def _destinations(request: Request) -> DestinationService:
    service: DestinationService = request.app.state.destinations
    return service


def _recovery(request: Request) -> RecoveryService:
    service: RecoveryService = request.app.state.recovery
    return service


def _path(destination_id: str, done: str = "") -> str:
    return f"{HOME}/{destination_id}" + (f"?done={done}" if done else "")


@router.get("/log-streaming/{destination_id}")
@panel()
async def destination_page(
    request: Request, who: Visitor, form: Form | None, destination_id: str
) -> Response:
    return await _page(request, who, destination_id)


@router.get("/log-streaming/{destination_id}/status")
@panel()
async def destination_status(
    request: Request, who: Visitor, form: Form | None, destination_id: str
) -> Response:
    """The page's live figures, as out-of-band swaps: polled every few seconds."""
    destination = await _destinations(request).get(who.principal, destination_id)
    return page(request, "_destination_status.html", d=destination, visitor=who)


@router.post("/log-streaming/{destination_id}/retry")
@panel(manager=True)
async def retry_now(request: Request, who: Visitor, form: Form | None, destination_id: str) -> Response:
    await _destinations(request).retry_now(who.principal, destination_id, request_context(request))
    return redirect(_path(destination_id, "retried"))


@router.post("/log-streaming/{destination_id}/dead-letters/resend")
@panel(manager=True)
async def resend(request: Request, who: Visitor, form: Form | None, destination_id: str) -> Response:
    """**Resend** (one dead letter, its `id` in the form) or **Resend all** (no `id`)."""
    assert form is not None
    chosen = first(form, "id")
    body = validated(ResendRequest, {"ids": [chosen]} if chosen else {})
    result = await _recovery(request).resend_dead_letters(
        who.principal, destination_id, body, request_context(request)
    )
    sent = len(result["results"])
    delivered = sum(1 for r in result["results"] if r["delivered"])
    return redirect(f"{_path(destination_id, 'resent')}&sent={sent}&delivered={delivered}")


@router.post("/log-streaming/{destination_id}/dead-letters/{dead_letter_id}/discard")
@panel(manager=True)
async def discard(
    request: Request, who: Visitor, form: Form | None, destination_id: str, dead_letter_id: int
) -> Response:
    removed = 0 < dead_letter_id <= MAX_DEAD_LETTER_ID and await _recovery(request).discard_dead_letter(
        who.principal, destination_id, dead_letter_id, request_context(request)
    )
    if not removed:
        await _destinations(request).get(who.principal, destination_id)  # another's: not found
        raise NotFound(f"no dead letter {dead_letter_id} for this destination")
    return redirect(_path(destination_id, "discarded"))


@router.post("/log-streaming/{destination_id}/replay")
@panel(manager=True)
async def replay(request: Request, who: Visitor, form: Form | None, destination_id: str) -> Response:
    """**Replay**: the events stored between From and To (UTC) sent again."""
    assert form is not None
    values = {"from": first(form, "from").strip(), "to": first(form, "to").strip()}
    try:
        body = _replay_request(values)
        await _recovery(request).replay(who.principal, destination_id, body, request_context(request))
    except ValidationError as exc:
        return await _page(
            request, who, destination_id, replay_form=values, replay_error=exc.detail, status=422
        )
    return redirect(_path(destination_id, "replaying"))


def _replay_request(values: dict[str, str]) -> ReplayRequest:
    """From and To as `datetime-local` fields send them (no offset: read as UTC)."""
    if not values["from"] and not values["to"]:
        raise ValidationError("give the start of the range (From), its end (To), or both")
    times: dict[str, Any] = {}
    for field, key in (("from", "from_time"), ("to", "to_time")):
        if not values[field]:
            continue
        try:
            moment = datetime.fromisoformat(values[field])
        except ValueError:
            raise ValidationError(f"{field.capitalize()} is not a date and time: {values[field]!r}") from None
        times[key] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if "from_time" in times and "to_time" in times and times["from_time"] > times["to_time"]:
        raise ValidationError("From comes after To: nothing to replay")
    request: ReplayRequest = validated(ReplayRequest, times)
    return request


def _done(request: Request) -> str:
    done = request.query_params.get("done", "")
    if done == "resent":
        sent, delivered = (_count(request, "sent"), _count(request, "delivered"))
        if not sent:
            return "No dead letters to re-send."
        refused = sent - delivered
        said = f"Re-sent {sent} dead letter{'' if sent == 1 else 's'}: {delivered} delivered"
        return said + (f", {refused} refused again (still listed)." if refused else ".")
    return DONE.get(done, "")


def _count(request: Request, name: str) -> int:
    value = request.query_params.get(name, "")
    return (whole_number(value) or 0) if len(value) < 6 else 0


async def _page(
    request: Request,
    who: Visitor,
    destination_id: str,
    replay_form: dict[str, str] | None = None,
    replay_error: str = "",
    status: int = 200,
) -> Response:
    principal = who.principal
    destination = await _destinations(request).get(principal, destination_id)
    recovery = _recovery(request)
    now = int(time.time() * 1000)
    since = now // MINUTE_MS * MINUTE_MS - (HOURS * 60 - 1) * MINUTE_MS
    figures = await recovery.minutes(principal, destination_id, since)
    letters = await recovery.dead_letters(principal, destination_id, 0, DEAD_LETTERS_SHOWN)
    return page(
        request,
        "destination.html",
        status=status,
        title=destination["name"],
        d=destination,
        kind_label=dict(kind_choices()).get(destination["kind"], destination["kind"]),
        chart=minutes_chart(figures, now),
        attempts=await recovery.deliveries(principal, destination_id, ATTEMPTS_SHOWN),
        dead_letters=letters["dead_letters"],
        dead_letters_total=letters["total"],
        replays=await recovery.replays(principal, destination_id),
        replay_form=replay_form or {"from": "", "to": ""},
        replay_error=replay_error,
        done=_done(request),
        poll_seconds=POLL_SECONDS,
        **layout(who, "log-streaming"),
    )
