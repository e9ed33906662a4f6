"""Who calls: a bearer token, or a person signed in with a session cookie; and what each
role may call.

Every request reads its token's or session's row (one indexed lookup), so a revoked or
expired token, an ended session or a locked person is refused at once by every worker
process, with nothing to tell them. Last uses are written at most once a minute per process,
off the request's path.

A session cookie is sent by the browser on its own, so every change made through one must
carry the session's CSRF token in the `X-CSRF-Token` header (a page of another site cannot
read it); bearer tokens are never sent on their own and need none.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from auditrelay.errors import Forbidden, Unauthenticated
from auditrelay.security import SESSION_COOKIE, Principal, Role
from auditrelay.store import Database, SessionView, find_principal, find_session, touch_session, touch_token

log = logging.getLogger(__name__)

#: A token's or session's last use is written at most this often (per process).
TOUCH_SECONDS = 60.0
CSRF_HEADER = "x-csrf-token"
#: A person in several organizations may name the one a request acts in (else the one
#: chosen for the session, else their first).
ORG_HEADER = "x-auditrelay-org"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Authenticator:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._touched: dict[str, float] = {}
        self._touching: set[asyncio.Task[None]] = set()

    async def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header:
            return await self._token_principal(header)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            view = await self.session(request, cookie)
            return person_principal(view, request.headers.get(ORG_HEADER))
        raise Unauthenticated("missing credentials: send 'Authorization: Bearer <token>', or sign in")

    async def _token_principal(self, header: str) -> Principal:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        # One statement: no transaction around it (on PostgreSQL, two round trips fewer on
        # every request).
        principal = await self._db.read_latest(find_principal, token)
        if principal is None:
            raise Unauthenticated("the token is unknown, revoked or expired")
        self._touch(principal.token_id, lambda at: self._db.write(touch_token, principal.token_id, at))
        return principal

    async def session(self, request: Request, cookie: str, check_csrf: bool = True) -> SessionView:
        """The live session of the cookie, its CSRF token checked on changes."""
        view = await self._db.read(find_session, cookie)
        if view is None:
            raise Unauthenticated("the session has ended or expired, or the account is locked: sign in again")
        if check_csrf and request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), view.csrf_token.encode()):
                raise Forbidden(
                    "changes made with a session need its CSRF token in the X-CSRF-Token header "
                    "(given at sign-in and by GET /api/v1/session)"
                )
        self._touch("session:" + cookie[:16], lambda at: self._db.write(touch_session, cookie, at))
        return view

    def _touch(self, key: str, write: Callable[[int], Awaitable[None]]) -> None:
        now = time.monotonic()
        if now - self._touched.get(key, -TOUCH_SECONDS) < TOUCH_SECONDS:
            return
        self._touched[key] = now
        if len(self._touched) > 10_000:
            self._touched = {key: now}
        task = asyncio.create_task(self._write_touch(key, write, int(time.time() * 1000)))
        self._touching.add(task)
        task.add_done_callback(self._touching.discard)

    async def _write_touch(self, key: str, write: Callable[[int], Awaitable[None]], at_ms: int) -> None:
        try:
            await write(at_ms)
        except Exception:  # a statistic: never worth failing or logging loudly for
            log.debug("could not note the last use of %s", key, exc_info=True)


def person_principal(view: SessionView, wanted_org: str | None) -> Principal:
    """What a signed-in person may do in this request: an admin everything; anyone else
    their role in one of their organizations (`wanted_org`, else the session's choice, else
    their first)."""
    user = view.user
    member_of = tuple((m.org, Role(m.role)) for m in user.memberships)
    if user.is_admin:
        return Principal("", user.email, Role.ADMIN, None, user.id, member_of)
    roles = dict(member_of)
    if not roles:
        raise Forbidden("you belong to no organization yet: ask an admin or an owner to add you")
    if wanted_org:
        if wanted_org not in roles:
            raise Forbidden(f"you are not a member of an organization named {wanted_org!r}")
        org = wanted_org
    else:
        org = view.org if view.org in roles else member_of[0][0]
    return Principal("", user.email, roles[org], org, user.id, member_of)


#: Declared for the OpenAPI document (Swagger UI's Authorize button); the checks themselves
#: are `Authenticator`'s, with its own messages.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token: `Authorization: Bearer ar_<role>_...` (`auditrelay token create`)",
)
SESSION = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="A person's session (POST /api/v1/session); changes also send X-CSRF-Token",
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
Session = Annotated[str | None, Depends(SESSION)]


async def require_manager(request: Request, _token: Bearer = None, _session: Session = None) -> Principal:
    """Admins, and owners within their organization: changes to destinations and tokens."""
    principal = await request.app.state.auth.principal(request)
    if not principal.role.manages:
        if principal.role is Role.VIEWER:
            raise Forbidden(
                "viewers are read-only (destinations, events, history): this needs an admin or an owner"
            )
        raise Forbidden("this route needs an admin or owner token; ingest tokens can only send events")
    return principal


async def require_reader(request: Request, _token: Bearer = None, _session: Session = None) -> Principal:
    """Admins, owners and viewers: status, events and history."""
    principal = await request.app.state.auth.principal(request)
    if not principal.role.reads:
        raise Forbidden(
            "this route needs an admin, owner or viewer token; ingest tokens can only send events"
        )
    return principal


async def require_ingest(request: Request, _token: Bearer = None) -> Principal:
    principal = await request.app.state.auth.principal(request)
    if principal.role is not Role.INGEST:
        raise Forbidden(
            f"sending events needs an ingest token; {principal.role.value} tokens read or manage, not send"
        )
    return principal
