"""Signing in and out: a person's session, in a cookie.

The cookie is `Secure` (unless `AUDITRELAY_COOKIE_SECURE=false`), `HttpOnly` (no script
reads it) and `SameSite=Lax` (not sent with another site's form posts; sent when the
identity provider redirects back after single sign-on). Changes made through the session
also need its CSRF token in `X-CSRF-Token` (`api.auth`).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from auditrelay.api import answers
from auditrelay.api.auth import ORG_HEADER, SESSION_COOKIE, person_principal
from auditrelay.api.destinations import request_context
from auditrelay.errors import Forbidden, Unauthenticated
from auditrelay.security import Principal, session_cookie_attributes
from auditrelay.services import FLOW_SECONDS, SignIn, SignInService, SsoService, render_session
from auditrelay.store import SessionView, choose_session_org

router = APIRouter(prefix="/api/v1/session", tags=["session"])


class OrgChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    org: str


def _service(request: Request) -> SignInService:
    service: SignInService = request.app.state.sign_in
    return service


def set_session_cookie(response: Response, request: Request, cookie: str) -> None:
    settings = request.app.state.settings
    response.set_cookie(
        SESSION_COOKIE, cookie, **session_cookie_attributes(settings.cookie_secure, settings.session_hours)
    )


async def _current(request: Request) -> tuple[str, SessionView]:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthenticated("not signed in")
    return cookie, await request.app.state.auth.session(request, cookie)


def _principal_or_none(view: SessionView, wanted: str | None) -> Principal | None:
    try:
        return person_principal(view, wanted)
    except Forbidden:
        return None


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@router.post(
    "",
    status_code=201,
    summary="Sign in with email and password",
    responses={201: {"model": answers.Session, "description": "Signed in: the session (and its cookie)"}},
)
async def sign_in(request: Request, body: SignIn) -> Response:
    cookie, _csrf, _user = await _service(request).sign_in(body, request_context(request))
    view = await request.app.state.auth.session(request, cookie, check_csrf=False)
    response = _json(render_session(view, _principal_or_none(view, None)), 201)
    set_session_cookie(response, request, cookie)
    return response


SSO_COOKIE = "auditrelay_sso"


def _sso(request: Request) -> SsoService:
    service: SsoService = request.app.state.sso
    return service


def _local_path(after: str | None) -> str:
    """Where to go after signing in: a path of this service only (no open redirect)."""
    if not after or not after.startswith("/") or after.startswith("//") or "\\" in after:
        return "/admin"
    return after[:2000]


@router.get(
    "/sso",
    summary="Sign in with single sign-on: redirects to the identity provider",
    status_code=302,
    response_class=Response,
    responses={302: {"description": "To the identity provider (`Location`), with the flow's cookie"}},
)
async def sso_start(request: Request, next: str | None = None) -> Response:
    url, sealed = await _sso(request).start(_local_path(next))
    response = Response(status_code=302, headers={"Location": url, "Cache-Control": "no-store"})
    response.set_cookie(
        SSO_COOKIE,
        sealed.decode(),
        max_age=FLOW_SECONDS,
        path="/api/v1/session/sso",
        secure=request.app.state.settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


@router.get(
    "/sso/callback",
    summary="Where the identity provider sends the person back",
    status_code=303,
    response_class=Response,
    responses={
        303: {"description": "Signed in: to the page asked for (`Location`), with the session cookie"}
    },
)
async def sso_callback(request: Request) -> Response:
    sealed = request.cookies.get(SSO_COOKIE)
    callback = _sso(request).redirect_uri + ("?" + request.url.query if request.url.query else "")
    cookie, _csrf, after, _user = await _sso(request).finish(
        sealed.encode() if sealed else None, callback, dict(request.query_params), request_context(request)
    )
    response = Response(status_code=303, headers={"Location": after, "Cache-Control": "no-store"})
    response.delete_cookie(SSO_COOKIE, path="/api/v1/session/sso")
    set_session_cookie(response, request, cookie)
    return response


@router.get(
    "",
    summary="Who is signed in, and the CSRF token for changes",
    responses={200: {"model": answers.Session, "description": "The session"}},
)
async def current_session(request: Request) -> Response:
    _cookie, view = await _current(request)
    return _json(render_session(view, _principal_or_none(view, request.headers.get(ORG_HEADER))))


@router.put(
    "/org",
    summary="Choose the organization the session acts in",
    responses={200: {"model": answers.Session, "description": "The session, acting in that organization"}},
)
async def choose_org(request: Request, body: OrgChoice) -> Response:
    cookie, view = await _current(request)
    principal = person_principal(view, body.org)
    await request.app.state.db.write(choose_session_org, cookie, principal.org)
    return _json(render_session(view, principal))


@router.delete(
    "",
    summary="Sign out: the session ends on the server",
    responses={200: {"model": answers.SignedOut, "description": "Signed out (the cookie removed)"}},
)
async def sign_out(request: Request) -> Response:
    try:
        cookie, view = await _current(request)
    except Unauthenticated:
        cookie, view = "", None
    if view is not None:
        await _service(request).sign_out(cookie, view, request_context(request))
    response = _json({"signed_out": view is not None})
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=request.app.state.settings.cookie_secure, httponly=True
    )
    return response
