"""Routes for people: admins manage everyone; owners their organization's members."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from auditrelay.api import answers
from auditrelay.api.auth import require_manager
from auditrelay.api.destinations import request_context
from auditrelay.security import Principal
from auditrelay.services import UserCreate, UserPatch, UserService

router = APIRouter(prefix="/api/v1/users", tags=["people"])
Manager = Annotated[Principal, Depends(require_manager)]


def _service(request: Request) -> UserService:
    service: UserService = request.app.state.users
    return service


@router.get(
    "",
    summary="People (an owner's organization's members only)",
    response_model=None,
    responses={200: {"model": answers.UserList, "description": "The people the caller manages"}},
)
async def list_users(request: Request, principal: Manager) -> dict[str, Any]:
    return {"users": await _service(request).list(principal)}


@router.post(
    "",
    status_code=201,
    summary="Add a person (owners: to their organization)",
    response_model=None,
    responses={201: {"model": answers.User, "description": "The person"}},
)
async def create_user(request: Request, body: UserCreate, principal: Manager) -> dict[str, Any]:
    return await _service(request).create(principal, body, request_context(request))


@router.get(
    "/{user_id}",
    summary="One person",
    response_model=None,
    responses={200: {"model": answers.User, "description": "The person"}},
)
async def get_user(request: Request, user_id: str, principal: Manager) -> dict[str, Any]:
    return await _service(request).get(principal, user_id)


@router.patch(
    "/{user_id}",
    summary="Change a person (owners: their role in the organization)",
    response_model=None,
    responses={200: {"model": answers.User, "description": "The person as changed"}},
)
async def update_user(request: Request, user_id: str, body: UserPatch, principal: Manager) -> dict[str, Any]:
    return await _service(request).update(principal, user_id, body, request_context(request))


@router.delete(
    "/{user_id}",
    summary="Remove a person (owners: from their organization)",
    response_model=None,
    responses={200: {"model": answers.User, "description": "The person removed (owners: as they remain)"}},
)
async def delete_user(request: Request, user_id: str, principal: Manager) -> dict[str, Any]:
    return await _service(request).delete(principal, user_id, request_context(request))
