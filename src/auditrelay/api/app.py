"""The ASGI application: routes, error mapping, and the lifetime of the delivery loops."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditrelay import __version__
from auditrelay.api import (
    destinations,
    docs,
    ingest,
    log_browse,
    orgs,
    problems,
    recovery,
    session,
    tokens,
    users,
)
from auditrelay.api.auth import Authenticator, require_reader
from auditrelay.cluster import DeliveryCoordinator
from auditrelay.config import Settings
from auditrelay.log import IngestCommits
from auditrelay.metrics import exposition
from auditrelay.panel import router as panel_router
from auditrelay.security import SecretBox
from auditrelay.services import (
    DestinationService,
    EventService,
    OrgService,
    RecoveryService,
    SignInService,
    SsoService,
    TokenService,
    UserService,
)
from auditrelay.store import Database, DestinationRows, ping

log = logging.getLogger(__name__)

#: Admin bodies are small; anything bigger is a mistake or an attack.
ADMIN_BODY_LIMIT = 256 * 1024


class AdminBodyLimit:
    """Refuse oversized bodies on every route but ingest (which enforces its own limit).

    Admin bodies are small, so the whole body is read here first, declared length or not;
    past the limit the answer is 413 before the application sees a byte.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/api/v1/events":
            await self.app(scope, receive, send)
            return
        too_large = problems.problem(
            413, "Payload too large", f"request bodies here are limited to {ADMIN_BODY_LIMIT} bytes"
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > ADMIN_BODY_LIMIT:
                await too_large(scope, receive, send)
                return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > ADMIN_BODY_LIMIT:
                await too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # `serve` migrated the store once before any worker started (cli.prepare).
        db = Database(settings)
        box = SecretBox.from_settings(settings.secret_key, settings.data_dir)
        rows = DestinationRows(box)
        coordinator = DeliveryCoordinator(db, rows, settings)
        wakeups = coordinator.wakeups
        app.state.settings = settings
        app.state.db = db
        app.state.ingest_commits = IngestCommits(db)
        app.state.box = box  # the panel seals a new token's secret across its redirect
        app.state.wakeups = wakeups
        app.state.auth = Authenticator(db)
        app.state.destinations = DestinationService(
            db, rows, wakeups, settings, on_change=coordinator.destinations_changed
        )
        app.state.recovery = RecoveryService(db, rows, app.state.destinations, wakeups, settings)
        app.state.events = EventService(db)
        app.state.tokens = TokenService(db)
        app.state.orgs = OrgService(db, rows, on_destinations_removed=coordinator.destinations_changed)
        app.state.users = UserService(db)
        app.state.sign_in = SignInService(db, settings)
        app.state.sso = SsoService(db, settings, box)
        await coordinator.start()
        log.info(
            "auditrelay %s ready on %s (process %d%s)",
            __version__,
            "PostgreSQL" if db.is_postgresql else "SQLite",
            os.getpid(),
            ", delivering" if coordinator.leading else "",
        )
        try:
            yield
        finally:
            await coordinator.stop()
            db.dispose()

    app = FastAPI(
        title="auditrelay",
        version=__version__,
        description="Streams audit events to SIEMs: Splunk HEC, Sumo Logic, any HTTP endpoint taking JSON.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.openapi = lambda: docs.build_openapi(app)  # type: ignore[method-assign]
    app.add_middleware(AdminBodyLimit)
    problems.install(app)
    app.include_router(ingest.router)
    app.include_router(log_browse.router)
    app.include_router(destinations.router)
    app.include_router(recovery.router)
    app.include_router(tokens.router)
    app.include_router(orgs.router)
    app.include_router(users.router)
    app.include_router(session.router)
    app.include_router(docs.router)
    app.include_router(panel_router)  # the admin panel, under /admin

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        db: Database = request.app.state.db
        try:
            await db.read(ping)
        except Exception:
            log.exception("readiness check: the database is not reachable")
            return JSONResponse({"status": "unavailable", "reason": "database unreachable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        # A reader's token (Prometheus sends it as a bearer token): the figures name every
        # destination. Instance readers get the counters of every process and every
        # destination's gauges; an organization's readers their destinations' gauges only.
        principal = await require_reader(request)
        gauges = await request.app.state.destinations.gauges(principal)
        counters = exposition() if principal.org is None else b""
        return Response(counters + gauges, media_type=CONTENT_TYPE_LATEST)

    return app
