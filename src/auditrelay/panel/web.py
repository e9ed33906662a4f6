"""Who is signed in to the panel, CSRF on every form, and rendering pages.

The panel works with a person's session only (the `auditrelay_session` cookie set by
signing in, here or with `POST /api/v1/session`); bearer tokens are for the API. The
session and the principal are resolved by the app's `Authenticator` (`app.state.auth`),
the same code the API runs: the CSRF token a form carries in its hidden `csrf_token` field
(or htmx in the `X-CSRF-Token` header, from the page's meta tag) is handed to its check.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from auditrelay.errors import AuditrelayError, Forbidden, Unauthenticated
from auditrelay.security import SESSION_COOKIE, Principal, Role
from auditrelay.services import RequestContext
from auditrelay.store import SessionView

CSRF_HEADER = "x-csrf-token"
ORG_HEADER = "x-auditrelay-org"
CSRF_FIELD = "csrf_token"
SIGN_IN = "/admin/sign-in"
HOME = "/admin/log-streaming"

#: What every page may load: its own service only (no CDN, no fonts, no inline script).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("auditrelay.panel", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class SignInNeeded(Exception):
    """No live session: the answer is a redirect to the sign-in page."""

    def __init__(self, after: str) -> None:
        super().__init__(after)
        self.after = after


@dataclass(frozen=True)
class Visitor:
    """A signed-in person in this request: their session and what they may do."""

    cookie: str
    view: SessionView
    principal: Principal

    @property
    def manages(self) -> bool:
        return self.principal.role.manages

    @property
    def is_admin(self) -> bool:
        return self.principal.role is Role.ADMIN

    @property
    def csrf(self) -> str:
        return self.view.csrf_token

    def require_manager(self) -> None:
        if not self.manages:
            raise Forbidden(
                "viewers may read destinations, events and history only: this needs an admin or an owner"
            )


async def form_of(request: Request) -> dict[str, list[str]]:
    """The urlencoded form of a POST (every value of each field, in order)."""
    body = await request.body()
    fields: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, []).append(value)
    return fields


def first(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""


async def visitor(
    request: Request, form: dict[str, list[str]] | None = None, org: str | None = None
) -> Visitor:
    """The person signed in, their CSRF token checked on changes (`form` is the POST's
    form); `org` asks to act in that organization (the switcher). `SignInNeeded` without a
    live session; `Forbidden` on a change without the session's CSRF token."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or request.headers.get("authorization"):
        raise SignInNeeded(_here(request))
    headers = [
        (k, v) for k, v in request.scope["headers"] if k not in (b"authorization", ORG_HEADER.encode())
    ]
    if request.method not in ("GET", "HEAD"):
        sent = request.headers.get(CSRF_HEADER) or (first(form, CSRF_FIELD) if form is not None else "")
        headers = [(k, v) for k, v in headers if k != CSRF_HEADER.encode()]
        headers.append((CSRF_HEADER.encode(), sent.encode()))
    if org is not None:
        headers.append((ORG_HEADER.encode(), org.encode()))
    checked = Request({**request.scope, "headers": headers}, request.receive)
    auth = request.app.state.auth
    try:
        view = await auth.session(checked, cookie, check_csrf=False)
        principal = await auth.principal(checked)  # the API's own CSRF check and org choice
    except Unauthenticated:
        raise SignInNeeded(_here(request)) from None
    return Visitor(cookie, view, principal)


def _here(request: Request) -> str:
    return request.url.path if request.method == "GET" else HOME


def request_context(request: Request) -> RequestContext:
    return RequestContext(
        ip_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    who: Visitor | None = context.setdefault("visitor", None)
    context.setdefault("section", "")
    orgs = [m.org for m in who.view.user.memberships] if who is not None else []
    context.setdefault("org", who.principal.org if who is not None else None)
    context.setdefault(
        "switchable_orgs", orgs if who is not None and not who.is_admin and len(orgs) > 1 else []
    )
    context.setdefault(
        "sso_enabled", bool(getattr(request.app.state, "sso", None) and request.app.state.sso.enabled)
    )
    html = _templates.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers=_headers())


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }


def redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def to_sign_in(after: str) -> Response:
    query = "" if after in ("/admin", HOME) else "?next=" + quote(after, safe="/")
    return redirect(SIGN_IN + query)


def error_page(request: Request, error: AuditrelayError, who: Visitor | None) -> Response:
    if isinstance(error, Unauthenticated) and who is None:
        return to_sign_in(_here(request))
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict"}
    return page(
        request,
        "error.html",
        status=error.status,
        visitor=who,
        title=titles.get(error.status, error.title),
        message=error.detail,
    )


def local_path(after: str | None) -> str:
    """Where to go after signing in: a panel path of this service only (no open redirect)."""
    if not after or not after.startswith("/admin") or "\\" in after or after.startswith("//"):
        return HOME
    return after[:2000]


ASSETS = {
    "htmx.min.js": ("htmx/htmx.min.js", "text/javascript; charset=utf-8"),
    "panel.js": ("panel.js", "text/javascript; charset=utf-8"),
    "panel.css": ("panel.css", "text/css; charset=utf-8"),
}


def asset(name: str) -> Response | None:
    found = ASSETS.get(name)
    if found is None:
        return None
    path, media_type = found
    content = resources.files("auditrelay.panel").joinpath("static", path).read_bytes()
    return Response(content, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"})


#: A POST's urlencoded form: every value of each field, in order.
Form = dict[str, list[str]]
Handler = Callable[..., Awaitable[Response]]


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


def layout(who: Visitor, section: str) -> dict[str, Any]:
    """The context every page of a section needs: who is signed in, which nav entry is lit."""
    return {"visitor": who, "section": section}


def whole_number(text: str) -> int | None:
    """`text` as a non-negative integer when it is ASCII digits only, else None.

    Not `str.isdigit()` alone: it is true of "²" and other digits `int()` refuses, which
    would turn a crafted query parameter into a 500.
    """
    return int(text) if text.isascii() and text.isdigit() else None


def done_message(request: Request, messages: dict[str, str]) -> str:
    """What the page says after the change a redirect named in its `done` parameter (no
    message for a value it does not know: the parameter is the visitor's to type)."""
    return messages.get(request.query_params.get("done", ""), "")
