"""Admin routes for streaming destinations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from auditrelay.api import answers
from auditrelay.api.auth import require_manager, require_reader
from auditrelay.security import Principal
from auditrelay.services import DestinationCreate, DestinationPatch, DestinationService, RequestContext

router = APIRouter(prefix="/api/v1/destinations", tags=["destinations"])
#: Changes: admins, and owners in their organization.
Manager = Annotated[Principal, Depends(require_manager)]
#: Reading: viewers too.
Reader = Annotated[Principal, Depends(require_reader)]


def _service(request: Request) -> DestinationService:
    service: DestinationService = request.app.state.destinations
    return service


def request_context(request: Request) -> RequestContext:
    return RequestContext(
        ip_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


@router.post(
    "",
    status_code=201,
    summary="Add a destination",
    response_model=None,
    responses={201: {"model": answers.Destination, "description": "The destination, with its status"}},
)
async def create_destination(request: Request, body: DestinationCreate, principal: Manager) -> dict[str, Any]:
    return await _service(request).create(principal, body, request_context(request))


@router.get(
    "",
    summary="List destinations with their status",
    response_model=None,
    responses={
        200: {"model": answers.DestinationList, "description": "Every destination the caller may see"}
    },
)
async def list_destinations(request: Request, principal: Reader) -> dict[str, Any]:
    return {"destinations": await _service(request).list(principal)}


@router.get(
    "/{destination_id}",
    summary="One destination with its status",
    response_model=None,
    responses={200: {"model": answers.Destination, "description": "The destination"}},
)
async def get_destination(request: Request, destination_id: str, principal: Reader) -> dict[str, Any]:
    return await _service(request).get(principal, destination_id)


@router.patch(
    "/{destination_id}",
    summary="Change settings (all but the verification token)",
    response_model=None,
    responses={200: {"model": answers.Destination, "description": "The destination as changed"}},
)
async def update_destination(
    request: Request, destination_id: str, body: DestinationPatch, principal: Manager
) -> dict[str, Any]:
    return await _service(request).update(principal, destination_id, body, request_context(request))


@router.delete("/{destination_id}", status_code=204, summary="Delete a destination")
async def delete_destination(request: Request, destination_id: str, principal: Manager) -> Response:
    await _service(request).delete(principal, destination_id, request_context(request))
    return Response(status_code=204)


@router.post(
    "/{destination_id}/pause",
    summary="Pause delivery; the position is kept",
    response_model=None,
    responses={200: {"model": answers.Destination, "description": "The destination, paused"}},
)
async def pause_destination(request: Request, destination_id: str, principal: Manager) -> dict[str, Any]:
    return await _service(request).set_active(principal, destination_id, False, request_context(request))


@router.post(
    "/{destination_id}/resume",
    summary="Resume delivery from where it stopped",
    response_model=None,
    responses={200: {"model": answers.Destination, "description": "The destination, active"}},
)
async def resume_destination(request: Request, destination_id: str, principal: Manager) -> dict[str, Any]:
    return await _service(request).set_active(principal, destination_id, True, request_context(request))


@router.post(
    "/{destination_id}/retry",
    summary="Retry now: end the wait before the next attempt",
    response_model=None,
    responses={200: {"model": answers.Destination, "description": "The destination"}},
)
async def retry_destination(request: Request, destination_id: str, principal: Manager) -> dict[str, Any]:
    return await _service(request).retry_now(principal, destination_id, request_context(request))


@router.post(
    "/{destination_id}/test",
    summary="Send one test event now and report the answer",
    response_model=None,
    responses={200: {"model": answers.DestinationTestResult, "description": "What the destination answered"}},
)
async def test_destination(request: Request, destination_id: str, principal: Manager) -> dict[str, Any]:
    return await _service(request).send_test(principal, destination_id, request_context(request))
