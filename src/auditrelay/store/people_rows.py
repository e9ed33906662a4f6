"""SQL for people, their memberships and their sessions.

A session is stored by the SHA-256 of its cookie's value, as tokens are, and read on every
request (no cache): a person locked, removed or signed out loses access at once, on every
process. Locking a person, removing them or changing their password also ends their
sessions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from auditrelay.errors import Conflict, Forbidden, NotFound
from auditrelay.events import ValidEvent
from auditrelay.model import Membership, UserRecord
from auditrelay.security import Role, digest, new_session_secret
from auditrelay.store.clock import now_ms
from auditrelay.store.database import Database
from auditrelay.store.event_log import append_events
from auditrelay.store.org_rows import known_orgs, require_org
from auditrelay.store.tables import memberships, sessions, users

UserAudit = Callable[[UserRecord], Sequence[ValidEvent]]


@dataclass(frozen=True, slots=True)
class SignInRecord:
    """What checking a password needs (the hash never leaves the store otherwise)."""

    user_id: str
    password_hash: str | None
    locked: bool
    failed_sign_ins: int
    last_failed_at_ms: int | None


@dataclass(frozen=True, slots=True)
class SessionView:
    """A live session and the person it belongs to."""

    user: UserRecord
    csrf_token: str
    via: str
    org: str | None
    expires_at_ms: int
    last_seen_at_ms: int


_USER_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.name,
    users.c.is_admin,
    users.c.locked,
    users.c.password_hash.isnot(None).label("has_password"),
    users.c.sso_subject.isnot(None).label("sso_linked"),
    users.c.created_at_ms,
    users.c.last_sign_in_at_ms,
)


def _memberships(conn: Connection, user_ids: Sequence[str], org: str | None) -> dict[str, list[Membership]]:
    found: dict[str, list[Membership]] = {}
    if not user_ids:
        return found
    query = select(memberships).where(memberships.c.user_id.in_(list(user_ids))).order_by(memberships.c.org)
    if org is not None:
        query = query.where(memberships.c.org == org)
    for row in conn.execute(query):
        found.setdefault(row.user_id, []).append(Membership(row.org, row.role))
    return found


def _records(conn: Connection, rows: Sequence[Any], org: str | None) -> list[UserRecord]:
    member = _memberships(conn, [r.id for r in rows], org)
    return [
        UserRecord(
            id=r.id,
            email=r.email,
            name=r.name,
            is_admin=bool(r.is_admin),
            locked=bool(r.locked),
            has_password=bool(r.has_password),
            sso_linked=bool(r.sso_linked),
            created_at_ms=r.created_at_ms,
            last_sign_in_at_ms=r.last_sign_in_at_ms,
            memberships=tuple(member.get(r.id, ())),
        )
        for r in rows
    ]


def list_users(conn: Connection, org: str | None) -> list[UserRecord]:
    """Everyone (`org` None), or an organization's members with only that membership shown."""
    query = select(*_USER_COLUMNS).order_by(users.c.email)
    if org is not None:
        query = query.where(users.c.id.in_(select(memberships.c.user_id).where(memberships.c.org == org)))
    return _records(conn, conn.execute(query).all(), org)


def visible_user(conn: Connection, user_id: str, org: str | None) -> UserRecord:
    """The person, if the caller sees them (`org`: the caller's organization; its members
    only, None for everyone)."""
    query = select(*_USER_COLUMNS).where(users.c.id == user_id)
    if org is not None:
        query = query.where(users.c.id.in_(select(memberships.c.user_id).where(memberships.c.org == org)))
    found = _records(conn, conn.execute(query).all(), org)
    if not found:
        raise NotFound(f"no person with id {user_id!r}")
    return found[0]


def user_by_email(conn: Connection, email: str) -> UserRecord | None:
    rows = conn.execute(select(*_USER_COLUMNS).where(users.c.email == email.lower())).all()
    found = _records(conn, rows, None)
    return found[0] if found else None


def create_user(
    conn: Connection,
    email: str,
    name: str | None,
    password_hash: str | None,
    is_admin: bool,
    member_of: Sequence[Membership],
    audit: UserAudit,
    sso_subject: str | None = None,
) -> UserRecord:
    email = email.lower()
    for membership in member_of:
        require_org(conn, membership.org)
    if conn.execute(select(users.c.id).where(users.c.email == email)).first() is not None:
        raise Conflict(f"a person with email {email!r} exists already")
    user_id = _insert_user(conn, email, name, password_hash, is_admin, sso_subject)
    for membership in member_of:
        conn.execute(insert(memberships).values(user_id=user_id, org=membership.org, role=membership.role))
    record = visible_user(conn, user_id, None)
    append_events(conn, audit(record))
    return record


def _insert_user(
    conn: Connection,
    email: str,
    name: str | None,
    password_hash: str | None,
    is_admin: bool,
    sso_subject: str | None,
) -> str:
    user_id = str(uuid.uuid4())
    conn.execute(
        insert(users).values(
            id=user_id,
            email=email,
            name=name,
            password_hash=password_hash,
            is_admin=is_admin,
            locked=False,
            sso_subject=sso_subject,
            failed_sign_ins=0,
            created_at_ms=now_ms(),
        )
    )
    return user_id


def update_user(
    conn: Connection,
    user_id: str,
    scope: str | None,
    fields: dict[str, Any],
    member_of: dict[str, str | None],
    audit: UserAudit,
) -> UserRecord:
    """Change a person: `fields` of their row (password_hash, is_admin, locked, name) and
    `member_of` their role per organization (None: no longer a member). Ends their sessions
    when the change takes access away (locked, new password, admin or a membership lost)."""
    before = visible_user(conn, user_id, scope)
    if fields:
        conn.execute(update(users).where(users.c.id == user_id).values(**fields))
    for org, role in member_of.items():
        conn.execute(delete(memberships).where(memberships.c.user_id == user_id, memberships.c.org == org))
        if role is not None:
            conn.execute(insert(memberships).values(user_id=user_id, org=org, role=role))
    after = visible_user(conn, user_id, None)
    kept = {m.org: m.role for m in after.memberships}
    took_away = (
        fields.get("locked") is True
        or "password_hash" in fields
        or (before.is_admin and not after.is_admin)
        or any(
            m.org not in kept or (m.role == "owner" and kept[m.org] != "owner") for m in before.memberships
        )
    )
    if took_away:
        end_sessions_of(conn, user_id)
    append_events(conn, audit(after))
    return after


def delete_user(conn: Connection, user_id: str, audit: UserAudit) -> UserRecord:
    """Remove a person: their sessions and memberships go with them."""
    record = visible_user(conn, user_id, None)
    end_sessions_of(conn, user_id)
    conn.execute(delete(memberships).where(memberships.c.user_id == user_id))
    conn.execute(delete(users).where(users.c.id == user_id))
    append_events(conn, audit(record))
    return record


# Signing in.


def sign_in_record(conn: Connection, email: str) -> SignInRecord | None:
    row = conn.execute(
        select(
            users.c.id,
            users.c.password_hash,
            users.c.locked,
            users.c.failed_sign_ins,
            users.c.last_failed_at_ms,
        ).where(users.c.email == email.lower())
    ).first()
    if row is None:
        return None
    return SignInRecord(
        row.id, row.password_hash, bool(row.locked), row.failed_sign_ins, row.last_failed_at_ms
    )


def record_failed_sign_in(conn: Connection, user_id: str) -> None:
    conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(failed_sign_ins=users.c.failed_sign_ins + 1, last_failed_at_ms=now_ms())
    )


def start_session(
    conn: Connection,
    user_id: str,
    via: str,
    lifetime_ms: int,
    audit: Sequence[ValidEvent],
    new_hash: str | None = None,
) -> tuple[str, str]:
    """A new session for the person (their failed attempts forgotten; `new_hash` stored when
    the password's hash needed an upgrade); returns the cookie's value and the CSRF token."""
    now = now_ms()
    cookie, csrf = new_session_secret(), new_session_secret()
    values: dict[str, Any] = {"failed_sign_ins": 0, "last_failed_at_ms": None, "last_sign_in_at_ms": now}
    if new_hash is not None:
        values["password_hash"] = new_hash
    conn.execute(update(users).where(users.c.id == user_id).values(**values))
    conn.execute(delete(sessions).where(sessions.c.expires_at_ms <= now))  # the long expired go
    conn.execute(
        insert(sessions).values(
            id_sha256=digest(cookie),
            user_id=user_id,
            csrf_token=csrf,
            via=via,
            org=None,
            created_at_ms=now,
            expires_at_ms=now + lifetime_ms,
            last_seen_at_ms=now,
        )
    )
    append_events(conn, audit)
    return cookie, csrf


def find_session(conn: Connection, cookie: str) -> SessionView | None:
    """The live session of this cookie's value: not ended, not expired, its person not locked."""
    row = conn.execute(
        select(sessions, users.c.locked)
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.id_sha256 == digest(cookie), sessions.c.expires_at_ms > now_ms())
    ).first()
    if row is None or row.locked:
        return None
    user = visible_user(conn, row.user_id, None)
    return SessionView(user, row.csrf_token, row.via, row.org, row.expires_at_ms, row.last_seen_at_ms)


def choose_session_org(conn: Connection, cookie: str, org: str | None) -> None:
    conn.execute(update(sessions).where(sessions.c.id_sha256 == digest(cookie)).values(org=org))


def touch_session(conn: Connection, cookie: str, at_ms: int) -> None:
    conn.execute(update(sessions).where(sessions.c.id_sha256 == digest(cookie)).values(last_seen_at_ms=at_ms))


def end_session(conn: Connection, cookie: str, audit: Sequence[ValidEvent]) -> bool:
    """End one session (sign-out); False when it was not live."""
    ended = conn.execute(delete(sessions).where(sessions.c.id_sha256 == digest(cookie))).rowcount
    if ended:
        append_events(conn, audit)
    return bool(ended)


def end_sessions_of(conn: Connection, user_id: str) -> None:
    conn.execute(delete(sessions).where(sessions.c.user_id == user_id))


def role_in(user: UserRecord, org: str) -> Role | None:
    for membership in user.memberships:
        if membership.org == org:
            return Role(membership.role)
    return None


# The CLI's (blocking).


def cli_create_user(
    db: Database,
    email: str,
    password_hash: str,
    is_admin: bool,
    member_of: Sequence[Membership],
    audit: UserAudit,
) -> UserRecord:
    with db.writing() as conn:
        return create_user(conn, email, None, password_hash, is_admin, member_of, audit)


def sso_sign_in(
    conn: Connection,
    subject: str,
    email: str,
    email_verified: bool,
    name: str | None,
    granted: tuple[bool, Sequence[Membership]] | None,
    audit: Callable[[UserRecord, str], Sequence[ValidEvent]],
) -> UserRecord:
    """The person of a single sign-on identity (`subject`: issuer and sub): the one linked
    to it, else the account with its email (only when the provider verified the email: an
    unverified one must not take over an account), else a new account. `granted` (admin,
    memberships), when the provider sends roles, replaces their roles; organizations that do
    not exist are left out."""
    row = conn.execute(select(users.c.id).where(users.c.sso_subject == subject)).first()
    verb = "update"
    if row is None:
        if not email_verified:
            raise Forbidden(
                "the identity provider has not verified this email address, so it cannot be used to sign in"
            )
        row = conn.execute(select(users.c.id).where(users.c.email == email)).first()
        if row is None:
            user_id = _insert_user(conn, email, name, None, False, subject)
            verb = "create"
        else:
            user_id = row.id
            conn.execute(update(users).where(users.c.id == user_id).values(sso_subject=subject))
    else:
        user_id = row.id
    before = visible_user(conn, user_id, None)
    if granted is not None:
        is_admin, wanted = granted
        existing = known_orgs(conn, [m.org for m in wanted])
        wanted_roles = {m.org: m.role for m in wanted if m.org in existing}
        current_roles = {m.org: m.role for m in before.memberships}
        if is_admin != before.is_admin:
            conn.execute(update(users).where(users.c.id == user_id).values(is_admin=is_admin))
        if wanted_roles != current_roles:
            conn.execute(delete(memberships).where(memberships.c.user_id == user_id))
            for org, role in wanted_roles.items():
                conn.execute(insert(memberships).values(user_id=user_id, org=org, role=role))
    after = visible_user(conn, user_id, None)
    if verb == "create" or after != before:
        append_events(conn, audit(after, verb))
    return after
