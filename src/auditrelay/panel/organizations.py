"""Organizations: the list (each person sees the ones they may), and, for instance admins,
**Create organization**, renaming (the title; the name events carry never changes) and
**Delete organization**. Every change is `OrgService`'s, as `/api/v1/orgs` calls it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from auditrelay.errors import Conflict, Forbidden, ValidationError
from auditrelay.panel.fields import FieldErrors
from auditrelay.panel.forms import validated
from auditrelay.panel.web import (
    Form,
    Visitor,
    done_message,
    first,
    layout,
    page,
    panel,
    redirect,
    request_context,
)
from auditrelay.services import ORG_NAME_RULE, OrgCreate, OrgPatch, OrgService

router = APIRouter(prefix="/admin", include_in_schema=False)
LIST = "/admin/organizations"
DONE = {
    "created": "Organization created.",
    "renamed": "Organization renamed.",
    "deleted": "Organization deleted: its destinations and memberships are removed, its tokens revoked.",
}


def _orgs(request: Request) -> OrgService:
    service: OrgService = request.app.state.orgs
    return service


def _admins_only(who: Visitor, what: str) -> None:
    """The forms of changes only admins make: the service's own words for the others."""
    if not who.is_admin:
        raise Forbidden(f"only instance admins {what}")


@router.get("/organizations")
@panel(manager=True)
async def organizations(request: Request, who: Visitor, form: Form | None) -> Response:
    return page(
        request,
        "organizations.html",
        title="Organizations",
        orgs=await _orgs(request).list(who.principal),
        done=done_message(request, DONE),
        **layout(who, "organizations"),
    )


@router.get("/organizations/new")
@panel(manager=True)
async def new_organization(request: Request, who: Visitor, form: Form | None) -> Response:
    _admins_only(who, "create organizations")
    return _form(request, who, {"name": "", "title": ""}, FieldErrors(), None)


@router.post("/organizations/new")
@panel(manager=True)
async def create_organization(request: Request, who: Visitor, form: Form | None) -> Response:
    assert form is not None
    values = {"name": first(form, "name").strip(), "title": first(form, "title").strip()}
    body: dict[str, Any] = {"name": values["name"]}
    if values["title"]:
        body["title"] = values["title"]
    try:
        await _orgs(request).create(who.principal, validated(OrgCreate, body), request_context(request))
    except (ValidationError, Conflict) as exc:
        errors = FieldErrors()
        errors.place(exc, {"name": "name", "title": "title"}, about="name")
        return _form(request, who, values, errors, None, status=exc.status)
    return redirect(LIST + "?done=created")


@router.get("/organizations/{name}/edit")
@panel(manager=True)
async def edit_organization(request: Request, who: Visitor, form: Form | None, name: str) -> Response:
    _admins_only(who, "rename organizations")
    current = await _orgs(request).get(who.principal, name)
    return _form(request, who, {"name": name, "title": current["title"] or ""}, FieldErrors(), current)


@router.post("/organizations/{name}/edit")
@panel(manager=True)
async def rename_organization(request: Request, who: Visitor, form: Form | None, name: str) -> Response:
    assert form is not None
    values = {"name": name, "title": first(form, "title").strip()}
    try:
        patch = validated(OrgPatch, {"title": values["title"]})
        await _orgs(request).rename(who.principal, name, patch, request_context(request))
    except ValidationError as exc:
        errors = FieldErrors()
        errors.place(exc, {"title": "title"}, about="title")
        current = await _orgs(request).get(who.principal, name)
        return _form(request, who, values, errors, current, status=exc.status)
    return redirect(LIST + "?done=renamed")


@router.post("/organizations/{name}/delete")
@panel(manager=True)
async def delete_organization(request: Request, who: Visitor, form: Form | None, name: str) -> Response:
    await _orgs(request).delete(who.principal, name, request_context(request))
    return redirect(LIST + "?done=deleted")


def _form(
    request: Request,
    who: Visitor,
    values: dict[str, str],
    errors: FieldErrors,
    current: dict[str, Any] | None,
    status: int = 200,
) -> Response:
    return page(
        request,
        "organization_form.html",
        status=status,
        title="Rename organization" if current else "Create organization",
        values=values,
        errors=errors,
        current=current,
        name_rule=ORG_NAME_RULE,
        **layout(who, "organizations"),
    )
