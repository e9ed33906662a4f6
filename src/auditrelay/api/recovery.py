"""Admin routes after trouble: attempt history, dead letters, replay."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from auditrelay.api import answers
from auditrelay.api.auth import require_manager, require_reader
from auditrelay.api.destinations import request_context
from auditrelay.errors import NotFound
from auditrelay.model import MAX_DEAD_LETTER_ID
from auditrelay.security import Principal
from auditrelay.services import RecoveryService, ReplayRequest, ResendRequest

router = APIRouter(prefix="/api/v1/destinations/{destination_id}", tags=["delivery"])
#: Changes: admins, and owners in their organization.
Manager = Annotated[Principal, Depends(require_manager)]
#: Reading: viewers too.
Reader = Annotated[Principal, Depends(require_reader)]


def _service(request: Request) -> RecoveryService:
    service: RecoveryService = request.app.state.recovery
    return service


@router.get(
    "/deliveries",
    summary="Recent delivery attempts, newest first",
    response_model=None,
    responses={200: {"model": answers.DeliveryList, "description": "The attempts"}},
)
async def list_deliveries(
    request: Request, destination_id: str, principal: Reader, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> dict[str, Any]:
    return {"deliveries": await _service(request).deliveries(principal, destination_id, limit)}


@router.get(
    "/dead-letters",
    summary="Events the destination refused, set aside",
    response_model=None,
    responses={200: {"model": answers.DeadLetterPage, "description": "A page of dead letters"}},
)
async def list_dead_letters(
    request: Request,
    destination_id: str,
    principal: Reader,
    after: Annotated[int, Query(ge=0, le=MAX_DEAD_LETTER_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    return await _service(request).dead_letters(principal, destination_id, after, limit)


@router.post(
    "/dead-letters/resend",
    summary="Send dead letters again; accepted ones leave the list",
    response_model=None,
    responses={200: {"model": answers.ResendAnswer, "description": "What each dead letter came to"}},
)
async def resend_dead_letters(
    request: Request, destination_id: str, principal: Manager, body: ResendRequest | None = None
) -> dict[str, Any]:
    return await _service(request).resend_dead_letters(
        principal, destination_id, body or ResendRequest(), request_context(request)
    )


@router.delete("/dead-letters/{dead_letter_id}", status_code=204, summary="Discard one dead letter")
async def discard_dead_letter(
    request: Request, destination_id: str, dead_letter_id: int, principal: Manager
) -> Response:
    # An id out of the range ids take names no dead letter: 404 as for any other unknown id.
    if not 0 < dead_letter_id <= MAX_DEAD_LETTER_ID or not await _service(request).discard_dead_letter(
        principal, destination_id, dead_letter_id, request_context(request)
    ):
        raise NotFound(f"no dead letter {dead_letter_id} for this destination")
    return Response(status_code=204)


@router.post(
    "/replay",
    status_code=202,
    summary="Re-send a range of the log, apart from the live stream",
    response_model=None,
    responses={202: {"model": answers.Replay, "description": "The replay job, started"}},
)
async def replay(
    request: Request, destination_id: str, body: ReplayRequest, principal: Manager
) -> dict[str, Any]:
    return await _service(request).replay(principal, destination_id, body, request_context(request))


@router.get(
    "/replays",
    summary="Replay jobs and their progress",
    response_model=None,
    responses={200: {"model": answers.ReplayList, "description": "The replay jobs"}},
)
async def list_replays(request: Request, destination_id: str, principal: Reader) -> dict[str, Any]:
    return {"replays": await _service(request).replays(principal, destination_id)}
