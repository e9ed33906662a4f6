"""The panel's routes under `/admin`, one module per section, composed here.

Every page needs a person's session (else `303` to the sign-in page); every form POST
needs the session's CSRF token (`web.panel`); every change calls the service method the
API's route calls, with the person as the principal, so each is the same audit event.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from auditrelay.errors import NotFound
from auditrelay.panel import (
    api_tokens,
    destination_page,
    events_page,
    log_streaming,
    organizations,
    people,
    sessions,
)
from auditrelay.panel.web import asset

router = APIRouter(include_in_schema=False)
for section in (sessions, log_streaming, destination_page, events_page, organizations, people, api_tokens):
    router.include_router(section.router)


@router.get("/admin/static/{file}")
async def static(file: str) -> Response:
    found = asset(file)
    if found is None:  # only the files named: nothing else of the package is served
        raise NotFound(f"no asset {file!r}")
    return found
