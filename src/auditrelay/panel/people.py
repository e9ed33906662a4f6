"""People: the list (admins: everyone; owners: their organization's members), **Add
person**, changing a person (admins: name, password, instance admin, every membership;
owners: the role in their organization), **Lock** / **Unlock** (admins) and **Remove
person** (owners: from their organization). Every change is `UserService`'s, as
`/api/v1/users` calls it; what it refuses shows next to the field it is about."""

from __future__ import annotations

from dataclasses import dataclass, field
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
from auditrelay.services import UserCreate, UserPatch, UserService

router = APIRouter(prefix="/admin", include_in_schema=False)
LIST = "/admin/people"
DONE = {
    "added": "Person added.",
    "saved": "Changes saved.",
    "locked": "Account locked: the person cannot sign in until unlocked.",
    "unlocked": "Account unlocked.",
    "removed": "Person removed.",
}
#: The roles a person is given: in an organization (owner, viewer), or instance-wide.
ROLE_CHOICES = [("viewer", "Viewer"), ("owner", "Owner"), ("admin", "Instance admin")]
MEMBER_CHOICES = [("", "Not a member"), ("viewer", "Viewer"), ("owner", "Owner")]
#: The API's fields -> the inputs of the add form.
ADD_INPUTS = {
    "email": "email",
    "name": "name",
    "password": "password",
    "role": "role",
    "admin": "role",
    "memberships": "org",
    "memberships.org": "org",
    "memberships.role": "role",
}
#: ... and of the edit form.
EDIT_INPUTS = {
    "name": "name",
    "password": "password",
    "admin": "admin",
    "role": "role",
    "memberships": "memberships",
    "memberships.org": "memberships",
    "memberships.role": "memberships",
}


@dataclass
class PersonForm:
    """What the add and edit forms hold, to show them again with their errors."""

    email: str = ""
    name: str = ""
    password: str = ""
    role: str = "viewer"
    org: str = ""
    admin: bool = False
    #: Edit (admins): the role in each organization, "" for none.
    member_roles: dict[str, str] = field(default_factory=dict)
    errors: FieldErrors = field(default_factory=FieldErrors)

    @classmethod
    def from_post(cls, form: Form, orgs: list[str]) -> PersonForm:
        return cls(
            email=first(form, "email").strip(),
            name=first(form, "name").strip(),
            password=first(form, "password"),
            role=first(form, "role") or "viewer",
            org=first(form, "org"),
            admin=bool(first(form, "admin")),
            member_roles={o: first(form, f"org-{o}") for o in orgs},
        )

    def create_body(self, who: Visitor) -> dict[str, Any]:
        body: dict[str, Any] = {"email": self.email}
        if self.name:
            body["name"] = self.name
        if self.password:
            body["password"] = self.password
        if self.role == "admin":
            body["admin"] = True  # refused to owners, in the service's words
        elif who.is_admin:
            body["memberships"] = [{"org": self.org, "role": self.role}] if self.org else []
        else:
            body["role"] = self.role
        return body

    def patch_body(self, who: Visitor) -> dict[str, Any]:
        if not who.is_admin:
            return {"role": self.role}
        body: dict[str, Any] = {
            "admin": self.admin,
            "memberships": [{"org": o, "role": r} for o, r in self.member_roles.items() if r],
        }
        if self.name:
            body["name"] = self.name
        if self.password:
            body["password"] = self.password
        return body


def _users(request: Request) -> UserService:
    service: UserService = request.app.state.users
    return service


async def _org_names(request: Request, who: Visitor) -> list[str]:
    return [o["name"] for o in await request.app.state.orgs.list(who.principal)]


@router.get("/people")
@panel(manager=True)
async def people(request: Request, who: Visitor, form: Form | None) -> Response:
    return page(
        request,
        "people.html",
        title="People",
        people=await _users(request).list(who.principal),
        done=done_message(request, DONE),
        **layout(who, "people"),
    )


@router.get("/people/new")
@panel(manager=True)
async def new_person(request: Request, who: Visitor, form: Form | None) -> Response:
    return await _form(request, who, PersonForm(org=who.principal.org or ""), None)


@router.post("/people/new")
@panel(manager=True)
async def add_person(request: Request, who: Visitor, form: Form | None) -> Response:
    assert form is not None
    values = PersonForm.from_post(form, [])
    try:
        body = validated(UserCreate, values.create_body(who))
        await _users(request).create(who.principal, body, request_context(request))
    except (ValidationError, Forbidden, Conflict) as exc:
        values.errors.place(exc, ADD_INPUTS, about="email" if isinstance(exc, Conflict) else "role")
        return await _form(request, who, values, None, status=exc.status)
    return redirect(LIST + "?done=added")


@router.get("/people/{user_id}/edit")
@panel(manager=True)
async def edit_person(request: Request, who: Visitor, form: Form | None, user_id: str) -> Response:
    current = await _users(request).get(who.principal, user_id)
    roles = {m["org"]: m["role"] for m in current["memberships"]}
    values = PersonForm(
        email=current["email"],
        name=current["name"] or "",
        role=roles.get(who.principal.org or "", "viewer"),
        admin=current["admin"],
        member_roles=roles,
    )
    return await _form(request, who, values, current)


@router.post("/people/{user_id}/edit")
@panel(manager=True)
async def save_person(request: Request, who: Visitor, form: Form | None, user_id: str) -> Response:
    assert form is not None
    current = await _users(request).get(who.principal, user_id)
    values = PersonForm.from_post(form, await _org_names(request, who) if who.is_admin else [])
    values.email = current["email"]
    try:
        patch = validated(UserPatch, values.patch_body(who))
        await _users(request).update(who.principal, user_id, patch, request_context(request))
    except (ValidationError, Forbidden, Conflict) as exc:
        values.errors.place(exc, EDIT_INPUTS, about="admin" if isinstance(exc, Conflict) else "role")
        return await _form(request, who, values, current, status=exc.status)
    return redirect(LIST + "?done=saved")


@router.post("/people/{user_id}/lock")
@panel(manager=True)
async def lock_person(request: Request, who: Visitor, form: Form | None, user_id: str) -> Response:
    return await _set_locked(request, who, user_id, True)


@router.post("/people/{user_id}/unlock")
@panel(manager=True)
async def unlock_person(request: Request, who: Visitor, form: Form | None, user_id: str) -> Response:
    return await _set_locked(request, who, user_id, False)


async def _set_locked(request: Request, who: Visitor, user_id: str, locked: bool) -> Response:
    await _users(request).update(who.principal, user_id, UserPatch(locked=locked), request_context(request))
    return redirect(LIST + ("?done=locked" if locked else "?done=unlocked"))


@router.post("/people/{user_id}/delete")
@panel(manager=True)
async def remove_person(request: Request, who: Visitor, form: Form | None, user_id: str) -> Response:
    await _users(request).delete(who.principal, user_id, request_context(request))
    return redirect(LIST + "?done=removed")


async def _form(
    request: Request, who: Visitor, values: PersonForm, current: dict[str, Any] | None, status: int = 200
) -> Response:
    orgs = await _org_names(request, who)
    return page(
        request,
        "person_form.html",
        status=status,
        title="Edit person" if current else "Add person",
        values=values,
        errors=values.errors,
        current=current,
        orgs=orgs,
        org_choices=[("", "None"), *((o, o) for o in orgs)],
        role_choices=ROLE_CHOICES,
        member_choices=MEMBER_CHOICES,
        **layout(who, "people"),
    )
