"""Routes for API tokens: list, create, revoke, rotate (admins, and owners for their
organization). A token is in the answer once, when created or rotated."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from auditrelay.api import answers
from auditrelay.api.auth import require_manager
from auditrelay.api.destinations import request_context
from auditrelay.security import Principal
from auditrelay.services import TokenCreate, TokenService

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])
Manager = Annotated[Principal, Depends(require_manager)]


def _service(request: Request) -> TokenService:
    service: TokenService = request.app.state.tokens
    return service


@router.get(
    "",
    summary="API tokens (never their secrets)",
    response_model=None,
    responses={200: {"model": answers.TokenList, "description": "The tokens the caller manages"}},
)
async def list_tokens(request: Request, principal: Manager) -> dict[str, Any]:
    return {"tokens": await _service(request).list(principal)}


@router.post(
    "",
    status_code=201,
    summary="Create a token; the answer holds it, once",
    response_model=None,
    responses={201: {"model": answers.NewToken, "description": "The token, with its secret"}},
)
async def create_token(request: Request, body: TokenCreate, principal: Manager) -> dict[str, Any]:
    return await _service(request).create(principal, body, request_context(request))


@router.delete(
    "/{token_id}",
    summary="Revoke a token: refused at once, by every process",
    response_model=None,
    responses={200: {"model": answers.Token, "description": "The token, revoked"}},
)
async def revoke_token(request: Request, token_id: str, principal: Manager) -> dict[str, Any]:
    return await _service(request).revoke(principal, token_id, request_context(request))


@router.post(
    "/{token_id}/rotate",
    status_code=201,
    summary="A new secret for the token; the old one revoked",
    response_model=None,
    responses={201: {"model": answers.RotatedToken, "description": "The new token, with its secret"}},
)
async def rotate_token(request: Request, token_id: str, principal: Manager) -> dict[str, Any]:
    return await _service(request).rotate(principal, token_id, request_context(request))
