"""People: instance admins, and organizations' owners and viewers; and their sign-in.

- Admins manage everyone. An owner adds people to their organization, changes their role
  there and removes them from it, and sees only their organization's members (and of each
  only that membership); viewers and ingest tokens manage nobody.
- Sign-in with a password (argon2id): wrong passwords in a row make the next attempt wait
  (1, 2, 4 … seconds after the fifth, at most 15 minutes), whoever sends them; the answer
  never tells whether an address has an account. Every sign-in, refusal of a known
  account and sign-out is an audit event.

Each change is an audit event (`audit_stream.user.*`) stored in the change's transaction.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from auditrelay.config import Settings
from auditrelay.errors import (
    Conflict,
    FieldError,
    Forbidden,
    TooManyAttempts,
    Unauthenticated,
    ValidationError,
)
from auditrelay.model import Membership, UserRecord
from auditrelay.security import (
    Principal,
    hash_password,
    needs_rehash,
    password_problem,
    sign_in_wait_seconds,
    verify_password,
)
from auditrelay.services.audit import RequestContext, user_audit_event
from auditrelay.services.orgs import check_org_name
from auditrelay.store import (
    Database,
    SessionView,
    create_user,
    delete_user,
    end_session,
    iso_from_ms,
    known_orgs,
    list_users,
    record_failed_sign_in,
    sign_in_record,
    start_session,
    update_user,
    user_by_email,
    visible_user,
)

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
MemberRole = Literal["owner", "viewer"]


def check_email(value: str) -> str:
    if len(value) > 320 or not EMAIL.fullmatch(value):
        raise ValueError("must be an email address such as 'ada@example.com'")
    return value.lower()


def check_password(value: str | None) -> str | None:
    if value is not None and (problem := password_problem(value)) is not None:
        raise ValueError(problem)
    return value


class MembershipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    org: str
    role: MemberRole

    _org = field_validator("org")(check_org_name)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str
    name: str | None = Field(default=None, min_length=1, max_length=200)
    #: Absent: the person signs in with single sign-on only (or is given one later).
    password: str | None = None
    admin: bool = False
    memberships: list[MembershipIn] = Field(default_factory=list, max_length=1000)
    #: For owners: the role in their organization (instead of `memberships`).
    role: MemberRole | None = None

    _email = field_validator("email")(check_email)
    _password = field_validator("password")(check_password)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    password: str | None = None
    admin: bool | None = None
    locked: bool | None = None
    #: Admins: every membership of the person (replacing them all).
    memberships: list[MembershipIn] | None = Field(default=None, max_length=1000)
    #: Owners (and admins acting in one organization): the role in the caller's organization.
    role: MemberRole | None = None

    _password = field_validator("password")(check_password)


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


def render_user(user: UserRecord) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "admin": user.is_admin,
        "locked": user.locked,
        "password": user.has_password,
        "sso": user.sso_linked,
        "memberships": [{"org": m.org, "role": m.role} for m in user.memberships],
        "created_at": iso_from_ms(user.created_at_ms),
        "last_sign_in_at": iso_from_ms(user.last_sign_in_at_ms),
    }


class UserService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self, principal: Principal) -> list[dict[str, Any]]:
        _may_manage_people(principal)
        return [render_user(u) for u in await self._db.read(list_users, principal.org)]

    async def get(self, principal: Principal, user_id: str) -> dict[str, Any]:
        _may_manage_people(principal)
        return render_user(await self._db.read(visible_user, user_id, principal.org))

    async def create(self, principal: Principal, body: UserCreate, ctx: RequestContext) -> dict[str, Any]:
        _may_manage_people(principal)
        if principal.org is not None:  # an owner adds a person to their organization
            if body.admin or body.memberships:
                raise Forbidden("an owner adds people to their own organization only: give 'role', not these")
            member_of = [Membership(principal.org, body.role or "viewer")]
        else:
            if body.role is not None:
                raise ValidationError(
                    "give the person's organizations in 'memberships'",
                    [
                        FieldError(
                            "role", "is for owners adding to their organization; admins use memberships"
                        )
                    ],
                )
            member_of = [Membership(m.org, m.role) for m in body.memberships]
            await self._require_orgs([m.org for m in member_of])
        password_hash = await _hashed(body.password)
        existing = await self._db.read(user_by_email, body.email)
        if existing is not None:
            if principal.org is None or body.password is not None or body.name is not None:
                raise Conflict(
                    f"a person with email {body.email!r} exists already"
                    + (
                        "; leave password and name out to add them to your organization"
                        if principal.org
                        else ""
                    )
                )
            # An owner adding someone who has an account elsewhere: the membership only.
            return await self._update(
                principal, existing.id, None, {}, {principal.org: member_of[0].role}, ctx
            )
        record = await self._db.write(
            create_user,
            body.email,
            body.name,
            password_hash,
            body.admin,
            member_of,
            lambda u: [user_audit_event("create", u, principal, ctx)],
        )
        return render_user(_scoped(record, principal))

    async def update(
        self, principal: Principal, user_id: str, body: UserPatch, ctx: RequestContext
    ) -> dict[str, Any]:
        _may_manage_people(principal)
        fields: dict[str, Any] = {}
        member_of: dict[str, str | None] = {}
        if principal.org is not None:
            others = [
                k
                for k in ("name", "password", "admin", "locked", "memberships")
                if k in body.model_fields_set
            ]
            if others:
                raise Forbidden(
                    f"an owner changes a person's role in their organization only, not {', '.join(others)}"
                )
            if body.role is None:
                raise ValidationError("nothing to change", [FieldError("role", "is required")])
            member_of[principal.org] = body.role
        else:
            if body.role is not None:
                raise ValidationError(
                    "give the person's organizations in 'memberships'",
                    [FieldError("role", "is for owners; admins use memberships")],
                )
            if body.name is not None:
                fields["name"] = body.name
            if body.password is not None:
                fields["password_hash"] = await _hashed(body.password)
            if body.admin is not None:
                if not body.admin and user_id == principal.user_id:
                    raise Conflict("you cannot take away your own admin role; another admin can")
                fields["is_admin"] = body.admin
            if body.locked is not None:
                if body.locked and user_id == principal.user_id:
                    raise Conflict("you cannot lock yourself out; another admin can")
                fields["locked"] = body.locked
            if body.memberships is not None:
                wanted = {m.org: m.role for m in body.memberships}
                await self._require_orgs(list(wanted))
                current = await self._db.read(visible_user, user_id, None)
                member_of = {m.org: None for m in current.memberships}
                member_of.update(wanted)
        return await self._update(principal, user_id, principal.org, fields, member_of, ctx)

    async def delete(self, principal: Principal, user_id: str, ctx: RequestContext) -> dict[str, Any]:
        """Admins remove the person; owners remove them from their organization."""
        _may_manage_people(principal)
        if principal.org is not None:
            return await self._update(principal, user_id, principal.org, {}, {principal.org: None}, ctx)
        if user_id == principal.user_id:
            raise Conflict("you cannot remove yourself; another admin can")
        record = await self._db.write(
            delete_user, user_id, lambda u: [user_audit_event("delete", u, principal, ctx)]
        )
        return render_user(record)

    async def _update(
        self,
        principal: Principal,
        user_id: str,
        scope: str | None,
        fields: dict[str, Any],
        member_of: dict[str, str | None],
        ctx: RequestContext,
    ) -> dict[str, Any]:
        """Change a person the caller reaches in `scope` (an owner: their organization's
        members; None: anyone, for admins, and for an owner adding a person by email)."""
        changes: dict[str, Any] = {k: ("changed" if k == "password_hash" else v) for k, v in fields.items()}
        if member_of:
            changes["memberships"] = member_of
        record = await self._db.write(
            update_user,
            user_id,
            scope,
            fields,
            member_of,
            lambda u: [
                user_audit_event("update", _scoped(u, principal), principal, ctx, {"changes": changes})
            ],
        )
        return render_user(_scoped(record, principal))

    async def _require_orgs(self, names: Sequence[str]) -> None:
        known = await self._db.read(known_orgs, names)
        errors = [
            FieldError(f"memberships[{i}].org", f"no organization is named {name!r}")
            for i, name in enumerate(names)
            if name not in known
        ]
        if errors:
            raise ValidationError("a membership names an unknown organization", errors)


def _scoped(user: UserRecord, principal: Principal) -> UserRecord:
    """What an owner is shown of a person: their membership of the owner's organization."""
    if principal.org is None:
        return user
    return replace(user, memberships=tuple(m for m in user.memberships if m.org == principal.org))


def _may_manage_people(principal: Principal) -> None:
    if not principal.role.manages:
        raise Forbidden(f"managing people needs an admin or an owner, not a {principal.role.value}")


async def _hashed(password: str | None) -> str | None:
    # argon2 takes tens of milliseconds of CPU: off the event loop.
    return await asyncio.to_thread(hash_password, password) if password is not None else None


class SignInService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def sign_in(self, body: SignIn, ctx: RequestContext) -> tuple[str, str, UserRecord]:
        """A new session for the person: (cookie value, CSRF token, person)."""
        record = await self._db.read(sign_in_record, body.email)
        now = int(time.time() * 1000)
        if record is not None:
            wait = sign_in_wait_seconds(record.failed_sign_ins, record.last_failed_at_ms, now)
            if wait > 0:
                raise TooManyAttempts(
                    f"too many wrong passwords for this account: try again in {int(wait) + 1} s", wait
                )
        stored_hash = record.password_hash if record is not None else None
        if not await asyncio.to_thread(verify_password, stored_hash, body.password):
            if record is not None:
                await self._db.write(record_failed_sign_in, record.user_id)
            raise Unauthenticated("wrong email or password")
        assert record is not None and stored_hash is not None
        if record.locked:
            raise Unauthenticated("this account is locked: ask an admin to unlock it")
        new_hash = (
            await asyncio.to_thread(hash_password, body.password) if needs_rehash(stored_hash) else None
        )
        user = await self._db.read(visible_user, record.user_id, None)
        cookie, csrf = await self._db.write(
            start_session,
            record.user_id,
            "password",
            self.lifetime_ms,
            [user_audit_event("sign_in", user, None, ctx, {"via": "password"})],
            new_hash,
        )
        return cookie, csrf, user

    @property
    def lifetime_ms(self) -> int:
        return int(self._settings.session_hours * 3_600_000)

    async def sign_out(self, cookie: str, view: SessionView, ctx: RequestContext) -> None:
        await self._db.write(
            end_session, cookie, [user_audit_event("sign_out", view.user, None, ctx, {"via": view.via})]
        )


def render_session(view: SessionView, principal: Principal | None) -> dict[str, Any]:
    """Who is signed in, where they act, and the CSRF token their changes must carry."""
    return {
        "user": render_user(view.user),
        "csrf_token": view.csrf_token,
        "via": view.via,
        "expires_at": iso_from_ms(view.expires_at_ms),
        "role": principal.role.value if principal else None,
        "org": principal.org if principal else None,
        "orgs": [{"org": m.org, "role": m.role} for m in view.user.memberships],
    }
