"""The panel's pages and forms under `/admin`.

Every page needs a person's session (else `303` to the sign-in page); every form POST
needs the session's CSRF token; every change calls the service method the API's route
calls, with the person as the principal, so each is the same audit event.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from auditrelay.errors import AuditrelayError, NotFound, TooManyAttempts, ValidationError
from auditrelay.panel.forms import (
    TOKEN_KINDS,
    DestinationForm,
    HeaderRow,
    kind_choices,
    option_fields,
    validated,
)
from auditrelay.panel.web import (
    HOME,
    SESSION_COOKIE,
    SignInNeeded,
    Visitor,
    asset,
    error_page,
    first,
    form_of,
    local_path,
    page,
    redirect,
    request_context,
    to_sign_in,
    visitor,
)
from auditrelay.security import session_cookie_attributes
from auditrelay.services import (
    MAX_HEADERS,
    DestinationCreate,
    DestinationPatch,
    DestinationService,
    SignIn,
)
from auditrelay.store import browse, choose_session_org, head_seq

router = APIRouter(prefix="/admin", include_in_schema=False)

Form = dict[str, list[str]]
Handler = Callable[..., Awaitable[Response]]

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


def panel(*, manager: bool = False) -> Callable[[Handler], Handler]:
    """A panel route: the visitor resolved (and their CSRF token checked on POST), errors
    shown as pages. `manager`: admins and owners only (viewers change nothing)."""

    def wrap(fn: Handler) -> Handler:
        async def run(request: Request, **params: Any) -> Response:
            form = await form_of(request) if request.method == "POST" else None
            who: Visitor | None = None
            try:
                who = await visitor(request, form)
                if manager:
                    who.require_manager()
                return await fn(request, who, form, **params)
            except SignInNeeded as exc:
                if request.headers.get("hx-request"):
                    return Response(status_code=200, headers={"HX-Redirect": "/admin/sign-in"})
                return to_sign_in(exc.after)
            except AuditrelayError as exc:
                return error_page(request, exc, who)

        signature = inspect.signature(fn)
        kept = [p for name, p in signature.parameters.items() if name not in ("who", "form")]
        run.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
        run.__name__ = fn.__name__
        run.__doc__ = fn.__doc__
        return run

    return wrap


def _destinations(request: Request) -> DestinationService:
    service: DestinationService = request.app.state.destinations
    return service


def _layout(who: Visitor, section: str) -> dict[str, Any]:
    return {"visitor": who, "section": section}


# -- signing in and out --------------------------------------------------------------------


@router.get("")
async def home(request: Request) -> Response:
    signed_in = bool(request.cookies.get(SESSION_COOKIE))
    return redirect(HOME if signed_in else "/admin/sign-in")


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    after = local_path(request.query_params.get("next"))
    return page(request, "sign_in.html", title="Sign in", after=after, email="", error="")


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await form_of(request)
    email, after = first(form, "email"), local_path(first(form, "next"))
    try:
        body = validated(SignIn, {"email": email, "password": first(form, "password")})
        cookie, _csrf, _user = await request.app.state.sign_in.sign_in(body, request_context(request))
    except AuditrelayError as exc:
        words = exc.detail
        if exc.errors and not isinstance(exc, TooManyAttempts):
            words = "; ".join(f"{_label(e.field)} {e.message}" for e in exc.errors)
        answer = page(
            request, "sign_in.html", status=exc.status, title="Sign in", after=after, email=email, error=words
        )
        if exc.status == 401:  # as the API's 401s say it
            answer.headers["WWW-Authenticate"] = 'Bearer realm="auditrelay"'
        return answer
    response = redirect(after)
    settings = request.app.state.settings
    response.set_cookie(  # as `POST /api/v1/session` sets it
        SESSION_COOKIE, cookie, **session_cookie_attributes(settings.cookie_secure, settings.session_hours)
    )
    return response


def _label(field: str) -> str:
    return {"email": "Email:", "password": "Password:"}.get(field, field + ":")


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    form = await form_of(request)
    try:
        who = await visitor(request, form)
    except SignInNeeded:
        return redirect("/admin/sign-in")
    except AuditrelayError as exc:
        return error_page(request, exc, None)
    await request.app.state.sign_in.sign_out(who.cookie, who.view, request_context(request))
    response = redirect("/admin/sign-in")
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=request.app.state.settings.cookie_secure, httponly=True
    )
    return response


@router.post("/org")
async def choose_org(request: Request) -> Response:
    """The organization switcher: `PUT /api/v1/session/org`'s choice, made from a form."""
    form = await form_of(request)
    try:
        who = await visitor(request, form, org=first(form, "org") or None)
    except SignInNeeded as exc:
        return to_sign_in(exc.after)
    except AuditrelayError as exc:
        return error_page(request, exc, None)
    await request.app.state.db.write(choose_session_org, who.cookie, who.principal.org)
    return redirect(HOME)


# -- Log Streaming ----------------------------------------------------------------------------


@router.get("/log-streaming")
@panel()
async def log_streaming(request: Request, who: Visitor, form: Form | None) -> Response:
    destinations = await _destinations(request).list(who.principal)
    done = DONE.get(request.query_params.get("done", ""), "")
    return page(
        request,
        "log_streaming.html",
        title="Log Streaming",
        destinations=destinations,
        done=done,
        poll_seconds=POLL_SECONDS,
        kind_labels=dict(kind_choices()),
        **_layout(who, "log-streaming"),
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
    return await _form_page(request, who, DestinationForm(), None)


@router.post("/log-streaming/new")
@panel(manager=True)
async def add_destination(request: Request, who: Visitor, form: Form | None) -> Response:
    assert form is not None
    values = DestinationForm.from_post(form)
    if _edited_rows(values, first(form, "action")):
        return await _form_page(request, who, values, None)
    try:
        body = validated(DestinationCreate, values.create_body())
        await _destinations(request).create(who.principal, body, request_context(request))
    except ValidationError as exc:
        values.add_errors(exc.errors, exc.detail)
        return await _form_page(request, who, values, None, status=422)
    return redirect(HOME + "?done=added")


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
    return await _form_page(request, who, DestinationForm.from_destination(current), current)


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
        patch = validated(DestinationPatch, values.patch_body(current["kind"]))
        await _destinations(request).update(who.principal, destination_id, patch, request_context(request))
    except ValidationError as exc:
        values.add_errors(exc.errors, exc.detail)
        return await _form_page(request, who, values, current, status=422)
    return redirect(HOME + "?done=saved")


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
    return redirect(HOME + "?done=paused")


@router.post("/log-streaming/{destination_id}/resume")
@panel(manager=True)
async def resume(request: Request, who: Visitor, form: Form | None, destination_id: str) -> Response:
    await _destinations(request).set_active(who.principal, destination_id, True, request_context(request))
    return redirect(HOME + "?done=resumed")


@router.post("/log-streaming/{destination_id}/delete")
@panel(manager=True)
async def delete(request: Request, who: Visitor, form: Form | None, destination_id: str) -> Response:
    await _destinations(request).delete(who.principal, destination_id, request_context(request))
    return redirect(HOME + "?done=deleted")


def _edited_rows(values: DestinationForm, action: str) -> bool:
    """The header table's buttons without JavaScript: **Add header** and a row's
    **Delete** post the form, which comes back with the row added or removed."""
    if action == "add-header":
        if len(values.headers) < MAX_HEADERS:
            values.headers.append(HeaderRow())
        return True
    if action.startswith("remove-header-") and action.removeprefix("remove-header-").isdigit():
        index = int(action.removeprefix("remove-header-"))
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
        orgs=orgs,
        seen_event_types=await _seen_event_types(request, who),
        test_result=test_result,
        **_layout(who, "log-streaming"),
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


# -- the other sections (placeholders in this slice) -----------------------------------------

PLACEHOLDERS = {
    "events": ("Events", "Audit Logs", False),
    "organizations": ("Organizations", "Administration", True),
    "people": ("People", "Administration", True),
    "api-tokens": ("API tokens", "Administration", True),
}


def _placeholder(section: str) -> Handler:
    title, group, managers_only = PLACEHOLDERS[section]

    @panel(manager=managers_only)
    async def show(request: Request, who: Visitor, form: Form | None) -> Response:
        return page(request, "placeholder.html", title=title, group=group, **_layout(who, section))

    show.__name__ = "placeholder_" + section.replace("-", "_")
    return show


for _section in PLACEHOLDERS:
    router.add_api_route(f"/{_section}", _placeholder(_section), methods=["GET"])


@router.get("/static/{file}")
async def static(file: str) -> Response:
    found = asset(file)
    if found is None:  # only the files named: nothing else of the package is served
        raise NotFound(f"no asset {file!r}")
    return found
