"""API tokens: the list (never a secret: its recognisable prefix and its last use),
**Create token**, **Rotate** and **Revoke** (each asked again in a dialog). Every change is
`TokenService`'s, as `/api/v1/tokens` calls it: owners manage their organization's tokens,
below admin. A new secret is shown once, on the page the change redirects to (`one_shot`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from auditrelay.errors import Forbidden, ValidationError
from auditrelay.panel import one_shot
from auditrelay.panel.fields import FieldErrors
from auditrelay.panel.forms import validated
from auditrelay.panel.web import (
    Form,
    Visitor,
    done_message,
    first,
    layout,
    page,
    panel,
    redirect,
    request_context,
)
from auditrelay.security import Role, SecretBox
from auditrelay.services import TokenCreate, TokenService
from auditrelay.store import iso_from_ms

router = APIRouter(prefix="/admin", include_in_schema=False)
LIST = one_shot.PATH
DONE = {"revoked": "Token revoked: it is refused from now on, by every process."}
ROLE_CHOICES = [
    ("ingest", "Ingest (sends events only)"),
    ("viewer", "Viewer (reads destinations, events and history)"),
    ("owner", "Owner (manages one organization)"),
    ("admin", "Admin (everything, instance-wide)"),
]
INPUTS = {"name": "name", "role": "role", "org": "org", "expires_in": "expires_in"}


@dataclass
class TokenForm:
    name: str = ""
    role: str = "ingest"
    org: str = ""
    expires_in: str = ""
    errors: FieldErrors = field(default_factory=FieldErrors)

    @classmethod
    def from_post(cls, form: Form) -> TokenForm:
        return cls(
            name=first(form, "name").strip(),
            role=first(form, "role"),
            org=first(form, "org").strip(),
            expires_in=first(form, "expires_in").strip(),
        )

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "role": self.role}
        if self.org:
            body["org"] = self.org
        if self.expires_in:
            body["expires_in"] = self.expires_in
        return body


def _tokens(request: Request) -> TokenService:
    service: TokenService = request.app.state.tokens
    return service


@router.get("/api-tokens")
@panel(manager=True)
async def api_tokens(request: Request, who: Visitor, form: Form | None) -> Response:
    sealed = request.cookies.get(one_shot.COOKIE)
    box: SecretBox = request.app.state.box
    secret = one_shot.unseal(box, who.cookie, sealed, time.time()) if sealed else None
    answer = page(
        request,
        "api_tokens.html",
        title="API tokens",
        tokens=await _tokens(request).list(who.principal),
        secret=secret,
        now=iso_from_ms(int(time.time() * 1000)),
        done=done_message(request, DONE),
        **layout(who, "api-tokens"),
    )
    if sealed:  # shown once: this answer forgets it
        answer.delete_cookie(one_shot.COOKIE, path=one_shot.PATH, secure=_secure(request), httponly=True)
    return answer


@router.get("/api-tokens/new")
@panel(manager=True)
async def new_token(request: Request, who: Visitor, form: Form | None) -> Response:
    return await _form(request, who, TokenForm(org=who.principal.org or ""))


@router.post("/api-tokens/new")
@panel(manager=True)
async def create_token(request: Request, who: Visitor, form: Form | None) -> Response:
    assert form is not None
    values = TokenForm.from_post(form)
    try:
        body = validated(TokenCreate, values.body())
        made = await _tokens(request).create(who.principal, body, request_context(request))
    except (ValidationError, Forbidden) as exc:
        # An owner's refusals name no field: the admin role, or another organization.
        values.errors.place(exc, INPUTS, about="role" if values.role == Role.ADMIN else "org")
        return await _form(request, who, values, status=exc.status)
    return _show_once(request, who, one_shot.NewSecret(made["token"], made["name"], "created"))


@router.post("/api-tokens/{token_id}/rotate")
@panel(manager=True)
async def rotate_token(request: Request, who: Visitor, form: Form | None, token_id: str) -> Response:
    made = await _tokens(request).rotate(who.principal, token_id, request_context(request))
    return _show_once(request, who, one_shot.NewSecret(made["token"], made["name"], "rotated"))


@router.post("/api-tokens/{token_id}/revoke")
@panel(manager=True)
async def revoke_token(request: Request, who: Visitor, form: Form | None, token_id: str) -> Response:
    await _tokens(request).revoke(who.principal, token_id, request_context(request))
    return redirect(LIST + "?done=revoked")


def _secure(request: Request) -> bool:
    return bool(request.app.state.settings.cookie_secure)


def _show_once(request: Request, who: Visitor, secret: one_shot.NewSecret) -> Response:
    response = redirect(LIST)
    response.set_cookie(
        one_shot.COOKIE,
        one_shot.seal(request.app.state.box, who.cookie, secret, time.time()),
        max_age=one_shot.LIFETIME_SECONDS,
        path=one_shot.PATH,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


async def _form(request: Request, who: Visitor, values: TokenForm, status: int = 200) -> Response:
    orgs = [o["name"] for o in await request.app.state.orgs.list(who.principal)]
    org_choices = (
        [(o, o) for o in orgs]
        if not who.is_admin
        else [("", "None (instance-wide)")] + [(o, o) for o in orgs]
    )
    return page(
        request,
        "token_form.html",
        status=status,
        title="Create token",
        values=values,
        errors=values.errors,
        role_choices=ROLE_CHOICES,
        org_choices=org_choices,
        **layout(who, "api-tokens"),
    )
