"""Routes for organizations: listed by readers (each sees their own), created, renamed and
removed by instance admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from auditrelay.api import answers
from auditrelay.api.auth import require_manager, require_reader
from auditrelay.api.destinations import request_context
from auditrelay.security import Principal
from auditrelay.services import OrgCreate, OrgPatch, OrgService

router = APIRouter(prefix="/api/v1/orgs", tags=["organizations"])
Manager = Annotated[Principal, Depends(require_manager)]
Reader = Annotated[Principal, Depends(require_reader)]


def _service(request: Request) -> OrgService:
    service: OrgService = request.app.state.orgs
    return service


@router.get(
    "",
    summary="Organizations (an owner's or viewer's own only)",
    response_model=None,
    responses={200: {"model": answers.OrgList, "description": "The organizations the caller may see"}},
)
async def list_orgs(request: Request, principal: Reader) -> dict[str, Any]:
    return {"orgs": await _service(request).list(principal)}


@router.post(
    "",
    status_code=201,
    summary="Create an organization (instance admins)",
    response_model=None,
    responses={201: {"model": answers.Org, "description": "The organization"}},
)
async def create_org(request: Request, body: OrgCreate, principal: Manager) -> dict[str, Any]:
    return await _service(request).create(principal, body, request_context(request))


@router.get(
    "/{name}",
    summary="One organization",
    response_model=None,
    responses={200: {"model": answers.Org, "description": "The organization"}},
)
async def get_org(request: Request, name: str, principal: Reader) -> dict[str, Any]:
    return await _service(request).get(principal, name)


@router.patch(
    "/{name}",
    summary="Rename an organization (its title; the name stays)",
    response_model=None,
    responses={200: {"model": answers.Org, "description": "The organization, renamed"}},
)
async def rename_org(request: Request, name: str, body: OrgPatch, principal: Manager) -> dict[str, Any]:
    return await _service(request).rename(principal, name, body, request_context(request))


@router.delete(
    "/{name}",
    summary="Remove an organization, its destinations and memberships; revoke its tokens",
    response_model=None,
    responses={200: {"model": answers.Org, "description": "The organization as it was before removal"}},
)
async def delete_org(request: Request, name: str, principal: Manager) -> dict[str, Any]:
    return await _service(request).delete(principal, name, request_context(request))
