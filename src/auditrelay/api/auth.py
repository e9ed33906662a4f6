"""Bearer tokens to principals, with a short cache so ingest does not hit the database per request."""

from __future__ import annotations

import time

from fastapi import Request

from auditrelay.errors import Forbidden, Unauthenticated
from auditrelay.security import Principal, Role, digest
from auditrelay.store import Database, find_principal

#: A revoked token keeps working for at most this long in a running process.
CACHE_SECONDS = 10.0


class Authenticator:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if not header:
            raise Unauthenticated("missing credentials: send 'Authorization: Bearer <token>'")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        key = digest(token)
        cached = self._cache.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        principal = await self._db.read(find_principal, token)
        if principal is None:
            raise Unauthenticated("the token is unknown or revoked")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (principal, time.monotonic() + CACHE_SECONDS)
        return principal


async def require_admin(request: Request) -> Principal:
    principal = await request.app.state.auth.principal(request)
    if principal.role is not Role.ADMIN:
        raise Forbidden("this route needs an admin token; ingest tokens can only send events")
    return principal


async def require_ingest(request: Request) -> Principal:
    principal = await request.app.state.auth.principal(request)
    if principal.role is not Role.INGEST:
        raise Forbidden("sending events needs an ingest token; admin tokens manage destinations")
    return principal
