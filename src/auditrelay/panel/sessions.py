"""Signing in and out of the panel, and the organization switcher."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from auditrelay.errors import AuditrelayError, TooManyAttempts
from auditrelay.panel.forms import validated
from auditrelay.panel.web import (
    HOME,
    SESSION_COOKIE,
    SignInNeeded,
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
from auditrelay.services import SignIn
from auditrelay.store import choose_session_org

router = APIRouter(prefix="/admin", include_in_schema=False)


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
