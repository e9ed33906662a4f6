"""Bearer tokens to principals, and what each role may call.

Every request reads its token's row (one indexed lookup), so a revoked or expired token is
refused at once by every worker process, with nothing to tell them. Its last use is written
at most once a minute per process and token, off the request's path.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import Request

from auditrelay.errors import Forbidden, Unauthenticated
from auditrelay.security import Principal, Role
from auditrelay.store import Database, find_principal, touch_token

log = logging.getLogger(__name__)

#: A token's last use is written at most this often (per process).
TOUCH_SECONDS = 60.0


class Authenticator:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._touched: dict[str, float] = {}
        self._touching: set[asyncio.Task[None]] = set()

    async def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if not header:
            raise Unauthenticated("missing credentials: send 'Authorization: Bearer <token>'")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        principal = await self._db.read(find_principal, token)
        if principal is None:
            raise Unauthenticated("the token is unknown, revoked or expired")
        self._touch(principal.token_id)
        return principal

    def _touch(self, token_id: str) -> None:
        now = time.monotonic()
        if now - self._touched.get(token_id, -TOUCH_SECONDS) < TOUCH_SECONDS:
            return
        self._touched[token_id] = now
        if len(self._touched) > 10_000:
            self._touched = {token_id: now}
        task = asyncio.create_task(self._write_touch(token_id, int(time.time() * 1000)))
        self._touching.add(task)
        task.add_done_callback(self._touching.discard)

    async def _write_touch(self, token_id: str, at_ms: int) -> None:
        try:
            await self._db.write(touch_token, token_id, at_ms)
        except Exception:  # a statistic: never worth failing or logging loudly for
            log.debug("could not note the last use of token %s", token_id, exc_info=True)


async def require_manager(request: Request) -> Principal:
    """Admins, and owners within their organization: changes to destinations and tokens."""
    principal = await request.app.state.auth.principal(request)
    if not principal.role.manages:
        if principal.role is Role.VIEWER:
            raise Forbidden("viewer tokens are read-only: this change needs an admin or owner token")
        raise Forbidden("this route needs an admin or owner token; ingest tokens can only send events")
    return principal


async def require_reader(request: Request) -> Principal:
    """Admins, owners and viewers: status, events and history."""
    principal = await request.app.state.auth.principal(request)
    if not principal.role.reads:
        raise Forbidden(
            "this route needs an admin, owner or viewer token; ingest tokens can only send events"
        )
    return principal


async def require_ingest(request: Request) -> Principal:
    principal = await request.app.state.auth.principal(request)
    if principal.role is not Role.INGEST:
        raise Forbidden(
            f"sending events needs an ingest token; {principal.role.value} tokens read or manage, not send"
        )
    return principal
