"""Log Streaming: the list of destinations, adding, testing, editing, pausing, resuming
and deleting them. Every change calls the service method the API's route calls, with the
person as the principal, so each is the same audit event."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from auditrelay.errors import ValidationError
from auditrelay.panel.advanced import DEFAULT_MAX_IN_FLIGHT, TLS_VERSIONS, batch_defaults
from auditrelay.panel.forms import (
    TOKEN_KINDS,
    DestinationForm,
    HeaderRow,
    kind_choices,
    local_back,
    option_fields,
    validated,
    with_done,
)
from auditrelay.panel.web import (
    HOME,
    Form,
    Visitor,
    done_message,
    first,
    layout,
    page,
    panel,
    redirect,
    request_context,
    whole_number,
)
from auditrelay.services import (
    MAX_HEADERS,
    DestinationCreate,
    DestinationPatch,
    DestinationService,
)
from auditrelay.store import browse, head_seq

router = APIRouter(prefix="/admin", include_in_schema=False)

#: What a change that sends back to the list says there (fixed words: nothing from the URL
#: is shown).
DONE = {
    "added": "Destination added.",
    "saved": "Changes saved.",
    "paused": "Delivery paused; its position is kept.",
    "resumed": "Delivery resumed from where it stopped.",
    "deleted": "Destination deleted.",
}
#: How often the list asks for fresh figures (htmx polling).
POLL_SECONDS = 2


def _destinations(request: Request) -> DestinationService:
    service: DestinationService = request.app.state.destinations
    return service


@router.get("/log-streaming")
@panel()
async def log_streaming(request: Request, who: Visitor, form: Form | None) -> Response:
    destinations = await _destinations(request).list(who.principal)
    done = done_message(request, DONE)
    return page(
        request,
        "log_streaming.html",
        title="Log Streaming",
        destinations=destinations,
        done=done,
        poll_seconds=POLL_SECONDS,
        kind_labels=dict(kind_choices()),
        **layout(who, "log-streaming"),
    )


@router.get("/log-streaming/status")
@panel()
async def log_streaming_status(request: Request, who: Visitor, form: Form | None) -> Response:
    """The live figures of the list (badges, lag, rate, last delivery and error), as
    out-of-band swaps of their cells: polled by the list every few seconds."""
    destinations = await _destinations(request).list(who.principal)
    return page(request, "_status.html", destinations=destinations, visitor=who)


@router.get("/log-streaming/new")
@panel(manager=True)
async def new_destination(request: Request, who: Visitor, form: Form | None) -> Response:
    values = DestinationForm(back=local_back(request.query_params.get("back")))
    return await _form_page(request, who, values, None)


@router.post("/log-streaming/new")
@panel(manager=True)
async def add_destination(request: Request, who: Visitor, form: Form | None) -> Response:
    assert form is not None
    values = DestinationForm.from_post(form)
    if _edited_rows(values, first(form, "action")):
        return await _form_page(request, who, values, None)
    try:
        body = validated(DestinationCreate, values.create_body())
        made = await _destinations(request).create(who.principal, body, request_context(request))
    except ValidationError as exc:
        values.add_errors(exc.errors, exc.detail)
        return await _form_page(request, who, values, None, status=422)
    if values.settings.signing_generate:
        return _generated_secret(request, who, made, with_done(values.back, "added"))
    return redirect(with_done(values.back, "added"))


@router.post("/log-streaming/test")
@panel(manager=True)
async def test_unsaved(request: Request, who: Visitor, form: Form | None) -> Response:
    """**Test** on the new destination's form: one test event to the settings as typed."""
    assert form is not None
    values = DestinationForm.from_post(form)
    try:
        body = validated(DestinationCreate, values.create_body())
        result: dict[str, Any] = await _destinations(request).test_unsaved(
            who.principal, body, request_context(request)
        )
    except ValidationError as exc:
        values.add_errors(exc.errors, exc.detail)
        result = {}
    return await _test_answer(request, who, values, None, result)


@router.get("/log-streaming/{destination_id}/edit")
@panel(manager=True)
async def edit_destination(
    request: Request, who: Visitor, form: Form | None, destination_id: str
) -> Response:
    current = await _destinations(request).get(who.principal, destination_id)
    values = DestinationForm.from_destination(current)
    values.back = local_back(request.query_params.get("back"))
    return await _form_page(request, who, values, current)


@router.post("/log-streaming/{destination_id}/edit")
@panel(manager=True)
async def save_destination(
    request: Request, who: Visitor, form: Form | None, destination_id: str
) -> Response:
    assert form is not None
    current = await _destinations(request).get(who.principal, destination_id)
    values = DestinationForm.from_post(form)
    values.verification_token = current["verification_token"]
    if _edited_rows(values, first(form, "action")):
        return await _form_page(request, who, values, current)
    try:
        patch = validated(DestinationPatch, values.patch_body(current))
        saved = await _destinations(request).update(
            who.principal, destination_id, patch, request_context(request)
        )
    except ValidationError as exc:
        values.add_errors(exc.errors, exc.detail)
        return await _form_page(request, who, values, current, status=422)
    if values.settings.signing_generate:
        return _generated_secret(request, who, saved, with_done(values.back, "saved"))
    return redirect(with_done(values.back, "saved"))


@router.post("/log-streaming/{destination_id}/test")
@panel(manager=True)
async def test_saved(request: Request, who: Visitor, form: Form | None, destination_id: str) -> Response:
    """**Test** on a destination's edit page: `POST .../test`, to its saved settings."""
    current = await _destinations(request).get(who.principal, destination_id)
    result = await _destinations(request).send_test(who.principal, destination_id, request_context(request))
    return await _test_answer(request, who, DestinationForm.from_destination(current), current, result)


@router.post("/log-streaming/{destination_id}/pause")
@panel(manager=True)
async def pause(request: Request, who: Visitor, form: Form | None, destination_id: str) -> Response:
    await _destinations(request).set_active(who.principal, destination_id, False, request_context(request))
    return redirect(_back(form, destination_id) + "?done=paused")


@router.post("/log-streaming/{destination_id}/resume")
@panel(manager=True)
async def resume(request: Request, who: Visitor, form: Form | None, destination_id: str) -> Response:
    await _destinations(request).set_active(who.principal, destination_id, True, request_context(request))
    return redirect(_back(form, destination_id) + "?done=resumed")


@router.post("/log-streaming/{destination_id}/delete")
@panel(manager=True)
async def delete(request: Request, who: Visitor, form: Form | None, destination_id: str) -> Response:
    await _destinations(request).delete(who.principal, destination_id, request_context(request))
    return redirect(HOME + "?done=deleted")


def _back(form: Form | None, destination_id: str) -> str:
    """Where a change goes back to: the destination's own page when started there."""
    started_on_page = form is not None and first(form, "back") == "page"
    return f"{HOME}/{destination_id}" if started_on_page else HOME


def _generated_secret(request: Request, who: Visitor, saved: dict[str, Any], then: str) -> Response:
    """The signing secret the service made on **Generate**: shown once, here (the service's
    answer to this change is the only one that holds it), then masked everywhere."""
    return page(
        request,
        "signing_secret.html",
        title="Signing secret",
        destination=saved,
        secret=saved["signing_secret"],
        then=then,
        **layout(who, "log-streaming"),
    )


def _edited_rows(values: DestinationForm, action: str) -> bool:
    """The form's buttons without JavaScript: **Add header** and a row's **Delete** post
    the form, which comes back with the row added or removed; **Generate** comes back with
    the signing secret to be made on save."""
    if action == "generate-signing-secret":
        values.settings.signing_generate = True
        values.settings.signing_secret = ""
        return True
    if action == "add-header":
        if len(values.headers) < MAX_HEADERS:
            values.headers.append(HeaderRow())
        return True
    index = (
        whole_number(action.removeprefix("remove-header-")) if action.startswith("remove-header-") else None
    )
    if index is not None:
        if index < len(values.headers):
            del values.headers[index]
        return True
    return False


async def _form_page(
    request: Request,
    who: Visitor,
    values: DestinationForm,
    current: dict[str, Any] | None,
    status: int = 200,
    test_result: dict[str, Any] | None = None,
) -> Response:
    orgs = [o["name"] for o in await request.app.state.orgs.list(who.principal)] if who.is_admin else []
    return page(
        request,
        "destination_form.html",
        status=status,
        title="Edit destination" if current else "Add destination",
        form=values,
        current=current,
        kinds=kind_choices(),
        options={k: option_fields(k) for k, _ in kind_choices()},
        token_kinds=TOKEN_KINDS,
        max_headers=MAX_HEADERS,
        batch_defaults=batch_defaults(),
        default_max_in_flight=DEFAULT_MAX_IN_FLIGHT,
        tls_versions=TLS_VERSIONS,
        orgs=orgs,
        seen_event_types=await _seen_event_types(request, who),
        test_result=test_result,
        **layout(who, "log-streaming"),
    )


async def _test_answer(
    request: Request,
    who: Visitor,
    values: DestinationForm,
    current: dict[str, Any] | None,
    result: dict[str, Any],
) -> Response:
    if request.headers.get("hx-request"):
        return page(request, "_test_result.html", test_result=result, form=values, visitor=who)
    return await _form_page(request, who, values, current, test_result=result)


#: How far back the form looks for the event types seen so far.
SEEN_WINDOW = 2000


async def _seen_event_types(request: Request, who: Visitor) -> list[str]:
    """The actions of the latest events the person may see, for the filter's suggestions."""
    db = request.app.state.db
    head = await db.read(head_seq)
    rows, _head = await db.read(
        browse, max(0, head - SEEN_WINDOW), SEEN_WINDOW, None, who.principal.org, 4 * 1024 * 1024
    )
    seen: set[str] = set()
    for _seq, _received, body, _token in rows:
        try:
            action = orjson.loads(body).get("action")
        except orjson.JSONDecodeError:
            continue
        if isinstance(action, str):
            seen.add(action)
    prefixes = {a.rsplit(".", 1)[0] + ".*" for a in seen if "." in a}
    return sorted(seen | prefixes)
