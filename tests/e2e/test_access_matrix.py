"""The whole authorization matrix over the real service, generated from the route table.

Every route the app serves (its OpenAPI paths, and every route kept out of the schema) has
a row in `TABLE`: what each kind of caller gets, for each target the route is tried on.
`test_every_route_has_an_expectation` fails when a route is added without a row, or a row
names a route that is not there; `test_access_matrix` then calls every route as every
caller, on every target, and lists every answer that is not the expected one.

Callers: nobody, malformed credentials, expired and revoked tokens, the instance's ingest
token, a viewer and an owner token of organization A, an owner token of B, the instance
admin token, and two people signed in with a session (owner of A, viewer of A).

Targets: routes with an id are tried on an object of A, one of B and one of the instance
(org None); creating routes with the body's org A, B or none. For a caller of one
organization, "own" is its organization's, "other" the other organization's. Routes that
remove, revoke, rotate, re-activate or change the role of their target get a fresh one,
made by the admin, for every call; the others (pause of a paused destination, a rename,
a retry, a test send, an empty replay) leave their target fit for the next rows.

Every 2xx answer to a caller of A must hold nothing of B (its name, the ids of its
destinations, tokens and people) nor ids of instance-level objects; and the other way round.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditrelay.api import create_app
from auditrelay.config import Settings
from tests.support import Receiver, Service, make_event

PASSWORD = "correct horse battery staple"
MISSING_DEAD_LETTER = 999999999
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


# -- the routes the app serves ---------------------------------------------------------------


def app_routes() -> set[tuple[str, str]]:
    """(method, path template) of every route: the OpenAPI schema's, and every route kept
    out of it (health, readiness, metrics, the docs pages), read from the router itself so
    that a route hidden from the schema cannot escape the matrix either."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp)))  # building starts nothing
        found = {
            (method.upper(), path)
            for path, operations in app.openapi()["paths"].items()
            for method in operations
            if method.upper() in HTTP_METHODS
        }
        for route in _every_route(app.routes):
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, route.path))
    return found


def _every_route(routes: list[Any]) -> Iterator[Any]:
    """The routes, and those of every router included (FastAPI keeps an included router's
    routes behind a wrapper whose `original_router` holds them)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _every_route(included.routes)
        else:
            yield route


# -- callers ---------------------------------------------------------------------------------

UNAUTH, INGEST, ADMIN, OWNER, VIEWER = "unauth", "ingest", "admin", "owner", "viewer"


@dataclass(frozen=True)
class Caller:
    key: str
    label: str
    kind: str  # UNAUTH, INGEST, ADMIN, OWNER or VIEWER
    org: str | None = None  # "A" or "B": the organization the caller acts in
    session: bool = False  # a person signed in (cookie and CSRF token), not a bearer token

    def __str__(self) -> str:
        return self.key


CALLERS = [
    Caller("nobody", "no credentials", UNAUTH),
    Caller("basic", "malformed (Basic abc)", UNAUTH),
    Caller("bearer-empty", "malformed (Bearer, no token)", UNAUTH),
    Caller("bearer-garbage", "malformed (Bearer garbage)", UNAUTH),
    Caller("expired", "expired token", UNAUTH),
    Caller("revoked", "revoked token", UNAUTH),
    Caller("ingest", "instance ingest token", INGEST),
    Caller("viewer-a", "viewer A (token)", VIEWER, "A"),
    Caller("owner-a", "owner A (token)", OWNER, "A"),
    Caller("owner-b", "owner B (token)", OWNER, "B"),
    Caller("admin", "instance admin (token)", ADMIN),
    Caller("person-owner-a", "owner A (session)", OWNER, "A", session=True),
    Caller("person-viewer-a", "viewer A (session)", VIEWER, "A", session=True),
]


# -- targets ---------------------------------------------------------------------------------

#: An object of organization A, of B, of the instance (org None).
OBJECTS = ("A", "B", "instance")
#: The body's org when creating: A, B, or left out.
BODY_ORGS = ("A", "B", "none")
#: Organizations by name.
ORG_NAMES = ("A", "B")
#: A route without a target.
NO_TARGET = ("-",)


def relation(caller: Caller, target: str) -> str:
    """The target as the caller sees it: "own" and "other" for an organization's callers;
    for instance-wide callers (and for "instance", "none", "new"...) the target itself."""
    if caller.org is not None and target in ("A", "B"):
        return "own" if target == caller.org else "other"
    return target


def target_label(caller: Caller, target: str) -> str:
    if target == "-":
        return ""
    seen = relation(caller, target)
    names = {"own": "own", "other": "other org", "A": "org A", "B": "org B", "none": "no org"}
    return names.get(seen, seen)


# -- expectations ----------------------------------------------------------------------------

#: A status for every target, or one per target (keyed by `relation`).
Outcome = int | dict[str, int]


def scoped(ok: int) -> dict[str, int]:
    """An organization's caller: `ok` on its own objects; nothing else exists for it."""
    return {"own": ok, "other": 404, "instance": 404}


def body_org(ok: int) -> dict[str, int]:
    """An organization's caller creating: `ok` in its own organization (named or left out);
    another organization is refused."""
    return {"own": ok, "other": 403, "none": ok}


@dataclass(frozen=True)
class Expect:
    """What each kind of caller gets. `session`, when given, is what the two signed-in
    people get instead of their role's outcome (for the session routes)."""

    admin: Outcome
    owner: Outcome
    viewer: Outcome
    ingest: Outcome = 403
    unauth: Outcome = 401
    session: Outcome | None = None
    #: What the signed-in viewer gets instead of `session` (the panel's pages for managers).
    session_viewer: Outcome | None = None
    targets: tuple[str, ...] = NO_TARGET
    #: A fresh target per call (the route changes or removes it).
    fresh: bool = False

    def status(self, caller: Caller, target: str) -> int:
        outcome: Outcome
        if caller.session and caller.kind == VIEWER and self.session_viewer is not None:
            outcome = self.session_viewer
        elif caller.session and self.session is not None:
            outcome = self.session
        else:
            outcome = {
                UNAUTH: self.unauth,
                INGEST: self.ingest,
                ADMIN: self.admin,
                OWNER: self.owner,
                VIEWER: self.viewer,
            }[caller.kind]
        if isinstance(outcome, int):
            return outcome
        return outcome[relation(caller, target)]


def public(status: int, targets: tuple[str, ...] = NO_TARGET) -> Expect:
    """The same for every caller, credentials or not."""
    return Expect(status, status, status, status, status, targets=targets)


def readers(ok: int = 200) -> Expect:
    return Expect(admin=ok, owner=ok, viewer=ok)


def panel_page(
    owner: Outcome, viewer: Outcome, targets: tuple[str, ...] = NO_TARGET, fresh: bool = False
) -> Expect:
    """An admin panel route: a person's session only; every other caller (bearer tokens
    included) is sent to the sign-in page (303). `owner` and `viewer`: what the two
    signed-in people get."""
    return Expect(303, 303, 303, 303, 303, session=owner, session_viewer=viewer, targets=targets, fresh=fresh)


DEST = "/api/v1/destinations/{destination_id}"
PANEL = "/admin/log-streaming"
PANEL_DEST = PANEL + "/{destination_id}"
PANEL_USER = "/admin/people/{user_id}"
PANEL_TOKEN = "/admin/api-tokens/{token_id}"

TABLE: dict[tuple[str, str], Expect] = {
    # Public: any caller, credentials or not.
    ("GET", "/healthz"): public(200),
    ("GET", "/readyz"): public(200),
    ("GET", "/api/v1/schema/event"): public(200),
    ("GET", "/openapi.json"): public(200),
    ("GET", "/docs"): public(200),
    ("GET", "/docs/oauth2-redirect"): public(200),
    ("GET", "/docs/assets/{asset}"): public(200),
    # Readers' figures: an organization's readers get their destinations' gauges.
    ("GET", "/metrics"): readers(200),
    # Sessions: bearer tokens are not sessions.
    ("POST", "/api/v1/session"): public(401),  # a wrong password
    ("GET", "/api/v1/session/sso"): public(404),  # single sign-on is not configured
    ("GET", "/api/v1/session/sso/callback"): public(404),
    ("GET", "/api/v1/session"): Expect(401, 401, 401, 401, 401, session=200),
    ("DELETE", "/api/v1/session"): public(200),  # the people end a throwaway session of theirs
    ("PUT", "/api/v1/session/org"): Expect(
        401, 401, 401, 401, 401, session={"own": 200, "other": 403}, targets=ORG_NAMES
    ),
    # Events: sent by ingest tokens only; browsed by readers.
    ("POST", "/api/v1/events"): Expect(admin=403, owner=403, viewer=403, ingest=202),
    # Browsed by readers; `?org=` picks one organization's (instance-wide callers), and
    # another organization's is not there for an organization's callers.
    ("GET", "/api/v1/events"): Expect(
        admin=200,
        owner={"-": 200, "own": 200, "other": 404},
        viewer={"-": 200, "own": 200, "other": 404},
        targets=("-", "A", "B"),
    ),
    # Destinations.
    ("GET", "/api/v1/destinations"): readers(200),
    ("POST", "/api/v1/destinations"): Expect(admin=201, owner=body_org(201), viewer=403, targets=BODY_ORGS),
    ("GET", DEST): Expect(admin=200, owner=scoped(200), viewer=scoped(200), targets=OBJECTS),
    ("PATCH", DEST): Expect(admin=200, owner=scoped(200), viewer=403, targets=OBJECTS),
    ("DELETE", DEST): Expect(admin=204, owner=scoped(204), viewer=403, targets=OBJECTS, fresh=True),
    ("POST", DEST + "/pause"): Expect(admin=200, owner=scoped(200), viewer=403, targets=OBJECTS),
    ("POST", DEST + "/resume"): Expect(admin=200, owner=scoped(200), viewer=403, targets=OBJECTS, fresh=True),
    ("POST", DEST + "/retry"): Expect(admin=200, owner=scoped(200), viewer=403, targets=OBJECTS),
    ("POST", DEST + "/test"): Expect(admin=200, owner=scoped(200), viewer=403, targets=OBJECTS),
    ("GET", DEST + "/deliveries"): Expect(admin=200, owner=scoped(200), viewer=scoped(200), targets=OBJECTS),
    ("GET", DEST + "/dead-letters"): Expect(
        admin=200, owner=scoped(200), viewer=scoped(200), targets=OBJECTS
    ),
    ("POST", DEST + "/dead-letters/resend"): Expect(
        admin=200, owner=scoped(200), viewer=403, targets=OBJECTS
    ),
    # The dead letter is not there: 404 for whoever may reach it.
    ("DELETE", DEST + "/dead-letters/{dead_letter_id}"): Expect(
        admin=404, owner=scoped(404), viewer=403, targets=OBJECTS
    ),
    ("POST", DEST + "/replay"): Expect(admin=202, owner=scoped(202), viewer=403, targets=OBJECTS),
    ("GET", DEST + "/replays"): Expect(admin=200, owner=scoped(200), viewer=scoped(200), targets=OBJECTS),
    # Tokens: admins and owners manage them; viewers do not even list them.
    ("GET", "/api/v1/tokens"): Expect(admin=200, owner=200, viewer=403),
    ("POST", "/api/v1/tokens"): Expect(
        admin=201,
        owner={**body_org(201), "admin-role": 403},
        viewer=403,
        targets=(*BODY_ORGS, "admin-role"),
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): Expect(
        admin=200, owner=scoped(200), viewer=403, targets=OBJECTS, fresh=True
    ),
    ("POST", "/api/v1/tokens/{token_id}/rotate"): Expect(
        admin=201, owner=scoped(201), viewer=403, targets=OBJECTS, fresh=True
    ),
    # Organizations: listed by readers (their own only), changed by instance admins only.
    ("GET", "/api/v1/orgs"): readers(200),
    ("POST", "/api/v1/orgs"): Expect(
        admin={"new": 201, "A": 409, "B": 409}, owner=403, viewer=403, targets=("new", "A", "B")
    ),
    ("GET", "/api/v1/orgs/{name}"): Expect(
        admin=200, owner={"own": 200, "other": 404}, viewer={"own": 200, "other": 404}, targets=ORG_NAMES
    ),
    ("PATCH", "/api/v1/orgs/{name}"): Expect(admin=200, owner=403, viewer=403, targets=ORG_NAMES),
    # Removed: a throwaway organization, so that A and B stay.
    ("DELETE", "/api/v1/orgs/{name}"): Expect(
        admin=200, owner=403, viewer=403, targets=("throwaway",), fresh=True
    ),
    # People: admins manage everyone, owners their organization's members.
    ("GET", "/api/v1/users"): Expect(admin=200, owner=200, viewer=403),
    # Owners add people with `role` (into their organization), never with `memberships`:
    # a body naming memberships is refused (403), even one naming their own organization.
    ("POST", "/api/v1/users"): Expect(
        admin=201, owner={"own": 403, "other": 403, "none": 201}, viewer=403, targets=BODY_ORGS
    ),
    ("GET", "/api/v1/users/{user_id}"): Expect(admin=200, owner=scoped(200), viewer=403, targets=OBJECTS),
    ("PATCH", "/api/v1/users/{user_id}"): Expect(
        admin=200, owner=scoped(200), viewer=403, targets=OBJECTS, fresh=True
    ),
    ("DELETE", "/api/v1/users/{user_id}"): Expect(
        admin=200, owner=scoped(200), viewer=403, targets=OBJECTS, fresh=True
    ),
    # The admin panel (HTML pages and forms): sessions only, bearer tokens are sent to sign in.
    ("GET", "/admin"): public(303),
    ("GET", "/admin/sign-in"): public(200),
    ("POST", "/admin/sign-in"): public(401),  # a wrong password
    ("POST", "/admin/sign-out"): public(303),  # the people end a throwaway session of theirs
    ("POST", "/admin/org"): Expect(
        303, 303, 303, 303, 303, session={"own": 303, "other": 403}, targets=ORG_NAMES
    ),
    ("GET", "/admin/static/{file}"): public(200),
    ("GET", PANEL): panel_page(200, 200),
    ("GET", PANEL + "/status"): panel_page(200, 200),
    ("GET", PANEL + "/new"): panel_page(200, 403),
    ("POST", PANEL + "/new"): panel_page(303, 403),
    ("POST", PANEL + "/test"): panel_page(200, 403),
    ("GET", PANEL_DEST + "/edit"): panel_page(scoped(200), 403, OBJECTS),
    ("POST", PANEL_DEST + "/edit"): panel_page(scoped(303), 403, OBJECTS),
    ("POST", PANEL_DEST + "/test"): panel_page(scoped(200), 403, OBJECTS),
    ("POST", PANEL_DEST + "/pause"): panel_page(scoped(303), 403, OBJECTS),
    ("POST", PANEL_DEST + "/resume"): panel_page(scoped(303), 403, OBJECTS, fresh=True),
    ("POST", PANEL_DEST + "/delete"): panel_page(scoped(303), 403, OBJECTS, fresh=True),
    ("GET", "/admin/events"): panel_page(200, 200),
    ("GET", "/admin/organizations"): panel_page(200, 403),
    ("GET", "/admin/people"): panel_page(200, 403),
    ("GET", "/admin/api-tokens"): panel_page(200, 403),
    # panel-admin: Organizations, People and API tokens. Owners read their organization;
    # only admins change organizations; the services refuse what the API refuses.
    ("GET", "/admin/organizations/new"): panel_page(403, 403),
    ("POST", "/admin/organizations/new"): panel_page(403, 403),
    ("GET", "/admin/organizations/{name}/edit"): panel_page(403, 403, ORG_NAMES),
    ("POST", "/admin/organizations/{name}/edit"): panel_page(403, 403, ORG_NAMES),
    ("POST", "/admin/organizations/{name}/delete"): panel_page(403, 403, ("throwaway",), fresh=True),
    ("GET", "/admin/people/new"): panel_page(200, 403),
    ("POST", "/admin/people/new"): panel_page({"none": 303, "admin-role": 403}, 403, ("none", "admin-role")),
    ("GET", PANEL_USER + "/edit"): panel_page(scoped(200), 403, OBJECTS),
    ("POST", PANEL_USER + "/edit"): panel_page(scoped(303), 403, OBJECTS, fresh=True),
    ("POST", PANEL_USER + "/lock"): panel_page(403, 403, OBJECTS, fresh=True),
    ("POST", PANEL_USER + "/unlock"): panel_page(403, 403, OBJECTS, fresh=True),
    ("POST", PANEL_USER + "/delete"): panel_page(scoped(303), 403, OBJECTS, fresh=True),
    ("GET", "/admin/api-tokens/new"): panel_page(200, 403),
    ("POST", "/admin/api-tokens/new"): panel_page(
        {**body_org(303), "admin-role": 403}, 403, (*BODY_ORGS, "admin-role")
    ),
    ("POST", PANEL_TOKEN + "/rotate"): panel_page(scoped(303), 403, OBJECTS, fresh=True),
    ("POST", PANEL_TOKEN + "/revoke"): panel_page(scoped(303), 403, OBJECTS, fresh=True),
    # -- panel-events: the Events page (an event of A, of B, of the instance) --
    ("GET", "/admin/events/newer"): panel_page(200, 200),
    ("GET", "/admin/events/export"): panel_page(200, 200),
    ("GET", "/admin/events/{seq}"): panel_page(scoped(200), scoped(200), OBJECTS),
    # panel-destination: a destination's own page; readers see it, managers change things.
    ("GET", PANEL_DEST): panel_page(scoped(200), scoped(200), OBJECTS),
    ("GET", PANEL_DEST + "/status"): panel_page(scoped(200), scoped(200), OBJECTS),
    ("POST", PANEL_DEST + "/retry"): panel_page(scoped(303), 403, OBJECTS),
    ("POST", PANEL_DEST + "/dead-letters/resend"): panel_page(scoped(303), 403, OBJECTS),
    # The dead letter is not there: 404 for whoever may reach the destination.
    ("POST", PANEL_DEST + "/dead-letters/{dead_letter_id}/discard"): panel_page(scoped(404), 403, OBJECTS),
    ("POST", PANEL_DEST + "/replay"): panel_page(scoped(303), 403, OBJECTS),
}


# -- the world the matrix runs in -------------------------------------------------------------


@dataclass
class World:
    service: Service
    receiver: Receiver
    orgs: dict[str, str]  # "A" / "B" -> the organization's name
    #: The objects the routes are tried on: kind -> "A" / "B" / "instance" -> id.
    objects: dict[str, dict[str, str]]
    #: Each caller's credentials (headers); people's sessions as cookie and CSRF token.
    headers: dict[str, dict[str, str]]
    #: The people signed in: caller key -> email (for throwaway sessions).
    emails: dict[str, str]
    #: Everything of "A", "B" and "instance" that another organization's caller must not see.
    secrets: dict[str, set[str]] = field(default_factory=lambda: {"A": set(), "B": set(), "instance": set()})
    #: Made during the run, removed at the end.
    made_destinations: list[str] = field(default_factory=list)
    made_orgs: list[str] = field(default_factory=list)
    made_users: list[str] = field(default_factory=list)
    made_tokens: list[str] = field(default_factory=list)

    def org_of(self, target: str) -> str | None:
        return self.orgs.get(target)

    def admin_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.service.admin() as admin:
            made = admin.post(path, json=body)
        assert made.status_code == 201, f"POST {path}: {made.status_code} {made.text}"
        result: dict[str, Any] = made.json()
        return result

    def note(self, target: str, *values: str) -> None:
        if target in self.secrets:
            self.secrets[target].update(values)

    def new_destination(self, target: str) -> str:
        body: dict[str, Any] = {
            "name": "matrix sink",
            "kind": "http",
            "url": self.receiver.url,
            "active": False,
        }
        if self.org_of(target):
            body["org"] = self.org_of(target)
        made = self.admin_post("/api/v1/destinations", body)
        self.made_destinations.append(made["id"])
        self.note(target, made["id"])
        return str(made["id"])

    def new_token(self, target: str, role: str = "viewer") -> dict[str, Any]:
        body: dict[str, Any] = {"name": "matrix token", "role": role}
        if self.org_of(target):
            body["org"] = self.org_of(target)
        made = self.admin_post("/api/v1/tokens", body)
        self.made_tokens.append(made["id"])
        self.note(target, made["id"])
        return made

    def new_user(self, target: str, role: str = "viewer", password: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"email": f"matrix-{uuid.uuid4().hex[:10]}@example.com"}
        if password is not None:
            body["password"] = password
        if self.org_of(target):
            body["memberships"] = [{"org": self.org_of(target), "role": role}]
        else:
            body["admin"] = True
        made = self.admin_post("/api/v1/users", body)
        self.made_users.append(made["id"])
        self.note(target, made["id"])
        return made

    def new_event(self, target: str) -> str:
        """An event of the target's organization (the instance's for "instance"), its seq."""
        action = f"matrix.event_{uuid.uuid4().hex[:8]}"
        event = make_event(action=action)
        if self.org_of(target):
            event["org"] = self.org_of(target)
        self.service.send(event)
        self.note(target, event["id"])
        with self.service.admin() as admin:
            found = admin.get("/api/v1/events", params={"action": action})
        assert found.status_code == 200, found.text
        return str(found.json()["events"][0]["seq"])

    def new_org(self) -> str:
        name = f"matrix-t-{uuid.uuid4().hex[:8]}"
        self.admin_post("/api/v1/orgs", {"name": name})
        self.made_orgs.append(name)
        return name


def token_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_in(service: Service, email: str) -> dict[str, str]:
    """A new session of the person, as the headers that carry it (see test_people.Session:
    the cookie is `Secure`, so it is sent by hand over plain HTTP)."""
    answer = httpx.post(
        service.base_url + "/api/v1/session", json={"email": email, "password": PASSWORD}, timeout=15
    )
    assert answer.status_code == 201, answer.text
    cookie = answer.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    return {"Cookie": f"auditrelay_session={cookie}", "X-CSRF-Token": answer.json()["csrf_token"]}


@pytest.fixture(scope="module")
def world(service: Service) -> Iterator[World]:
    receiver = Receiver()
    suffix = uuid.uuid4().hex[:8]
    orgs = {"A": f"matrix-a-{suffix}", "B": f"matrix-b-{suffix}"}
    for name in orgs.values():
        service.ensure_org(name)
    w = World(service, receiver, orgs, {}, {}, {})
    w.note("A", orgs["A"])
    w.note("B", orgs["B"])
    with service.admin() as admin:
        expiring = admin.post(
            "/api/v1/tokens",
            json={"name": "matrix expiring", "role": "owner", "org": orgs["A"], "expires_in": "1s"},
        )
        assert expiring.status_code == 201, expiring.text
        expires = time.monotonic() + 1
        revoked = w.new_token("A", "owner")
        assert admin.delete(f"/api/v1/tokens/{revoked['id']}").status_code == 200
    w.objects = {
        "destination": {t: w.new_destination(t) for t in OBJECTS},
        "token": {t: str(w.new_token(t)["id"]) for t in OBJECTS},
        "user": {t: str(w.new_user(t)["id"]) for t in OBJECTS},
        "org": dict(orgs),
        "event": {t: w.new_event(t) for t in OBJECTS},
    }
    owner_person = w.new_user("A", "owner", PASSWORD)
    viewer_person = w.new_user("A", "viewer", PASSWORD)
    w.emails = {"person-owner-a": owner_person["email"], "person-viewer-a": viewer_person["email"]}
    w.headers = {
        "nobody": {},
        "basic": {"Authorization": "Basic abc"},
        "bearer-empty": {"Authorization": "Bearer"},
        "bearer-garbage": token_headers("ar_owner_this-is-not-a-token"),
        "expired": token_headers(expiring.json()["token"]),
        "revoked": token_headers(revoked["token"]),
        "ingest": token_headers(service.ingest_token),
        "viewer-a": token_headers(w.new_token("A", "viewer")["token"]),
        "owner-a": token_headers(w.new_token("A", "owner")["token"]),
        "owner-b": token_headers(w.new_token("B", "owner")["token"]),
        "admin": token_headers(service.admin_token),
        **{key: sign_in(service, email) for key, email in w.emails.items()},
    }
    # The log holds events to replay, whoever replays first.
    service.send(make_event())
    time.sleep(max(0.0, expires + 1 - time.monotonic()))  # expired by now, by a second
    try:
        yield w
    finally:
        receiver.close()
        with service.admin() as admin:
            for destination_id in w.made_destinations:
                admin.delete(f"/api/v1/destinations/{destination_id}")
            for token_id in w.made_tokens:
                admin.delete(f"/api/v1/tokens/{token_id}")
            for user_id in w.made_users:
                admin.delete(f"/api/v1/users/{user_id}")
            for name in [*orgs.values(), *w.made_orgs]:
                admin.delete(f"/api/v1/orgs/{name}")


# -- one call of the matrix ---------------------------------------------------------------------


@dataclass
class Call:
    path: str
    json: Any = None
    headers: dict[str, str] | None = None  # instead of the caller's own
    form: dict[str, str] | None = None  # a form post (the admin panel)


def prepare(world: World, caller: Caller, method: str, template: str, target: str, fresh: bool) -> Call:
    """The request for one row: the path filled in with the target's id (a fresh one when
    the route changes or removes it) and a valid body."""
    org = world.org_of(target)
    path = template.replace("{dead_letter_id}", str(MISSING_DEAD_LETTER)).replace("{asset}", "swagger-ui.css")
    path = path.replace("{file}", "panel.css")
    for placeholder, kind in (
        ("{destination_id}", "destination"),
        ("{token_id}", "token"),
        ("{user_id}", "user"),
        ("{name}", "org"),
        ("{seq}", "event"),
    ):
        if placeholder not in path:
            continue
        if target == "throwaway":
            object_id = world.new_org()
        elif fresh:
            object_id = {
                "destination": lambda: world.new_destination(target),
                "token": lambda: str(world.new_token(target)["id"]),
                "user": lambda: str(world.new_user(target)["id"]),
                "org": lambda: world.orgs[target],
            }[kind]()
        else:
            object_id = world.objects[kind][target]
        path = path.replace(placeholder, object_id)

    body: Any = None
    route = (method, template)
    if route == ("GET", "/api/v1/events"):
        path += f"?limit=1000&org={org}" if org else "?limit=1000"
    elif route == ("POST", "/api/v1/events"):
        body = [make_event()]
    elif route == ("POST", "/api/v1/session"):
        body = {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "not the password"}
    elif route == ("PUT", "/api/v1/session/org"):
        body = {"org": org}
    elif route == ("POST", "/api/v1/destinations"):
        body = {"name": "matrix made", "kind": "http", "url": world.receiver.url, "active": False}
        if org:
            body["org"] = org
    elif route == ("PATCH", DEST):
        body = {"name": "matrix renamed"}
    elif route == ("POST", DEST + "/replay"):
        body = {"from_seq": 1}
    elif route == ("POST", "/api/v1/tokens"):
        body = {"name": "matrix made", "role": "admin" if target == "admin-role" else "viewer"}
        if org:
            body["org"] = org
    elif route == ("POST", "/api/v1/orgs"):
        body = {"name": org or f"matrix-n-{uuid.uuid4().hex[:8]}"}
    elif route == ("PATCH", "/api/v1/orgs/{name}"):
        body = {"title": "Matrix Renamed"}
    elif route == ("POST", "/api/v1/users"):
        body = {"email": f"matrix-made-{uuid.uuid4().hex[:10]}@example.com"}
        if org:
            body["memberships"] = [{"org": org, "role": "viewer"}]
        elif caller.org is not None:
            body["role"] = "viewer"  # an owner adds into their organization
    elif route == ("PATCH", "/api/v1/users/{user_id}"):
        # Admins change the person; owners (and anyone acting in one organization) the role.
        body = {"name": "Matrix Renamed"} if caller.kind == ADMIN else {"role": "owner"}

    form = None
    if route == ("POST", "/admin/sign-in"):
        form = {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "not the password"}
    elif route == ("POST", "/admin/org"):
        form = {"org": org or ""}
    elif route in (("POST", PANEL + "/new"), ("POST", PANEL + "/test")):
        form = {"name": "matrix panel made", "kind": "http", "url": world.receiver.url}
    elif route == ("POST", PANEL_DEST + "/edit"):
        form = {"name": "matrix panel renamed", "kind": "http", "url": world.receiver.url}
    elif route == ("POST", "/admin/organizations/new"):
        form = {"name": f"matrix-p-{uuid.uuid4().hex[:8]}"}
    elif route == ("POST", "/admin/organizations/{name}/edit"):
        form = {"title": "Matrix Panel Renamed"}
    elif route == ("POST", "/admin/people/new"):
        email = f"matrix-panel-{uuid.uuid4().hex[:10]}@example.com"
        form = {"email": email, "role": "admin" if target == "admin-role" else "viewer"}
    elif route == ("POST", PANEL_USER + "/edit"):
        form = {"role": "owner"}
    elif route == ("POST", "/admin/api-tokens/new"):
        form = {"name": "matrix panel made", "role": "admin" if target == "admin-role" else "viewer"}
        if org:
            form["org"] = org
    elif route == ("POST", PANEL_DEST + "/replay"):
        form = {"from": "2020-01-01T00:00:00"}

    headers = None
    if route in (("DELETE", "/api/v1/session"), ("POST", "/admin/sign-out")) and caller.session:
        # Ending a session: a throwaway one of the same person, so the matrix's stays.
        headers = sign_in(world.service, world.emails[caller.key])
    return Call(path, body, headers, form)


def note_made(world: World, template: str, answer: httpx.Response) -> None:
    """Remember what a call made, for the leak check and the clean-up."""
    if answer.status_code != 201 or not answer.headers.get("content-type", "").startswith("application/json"):
        return
    made = answer.json()
    if template == "/api/v1/destinations":
        world.made_destinations.append(made["id"])
    if template == "/api/v1/users":
        world.made_users.append(made["id"])
    if template.startswith("/api/v1/tokens"):
        world.made_tokens.append(made["id"])
    if template == "/api/v1/orgs":
        world.made_orgs.append(made["name"])
        return
    orgs = [made.get("org")] if "org" in made else [m["org"] for m in made.get("memberships", [])] or [None]
    for org in orgs:
        letter = next((k for k, v in world.orgs.items() if v == org), "instance" if org is None else "")
        world.note(letter, made["id"])


def check_answer(
    world: World, caller: Caller, route: tuple[str, str], target: str, answer: httpx.Response
) -> str:
    """What is wrong with a 2xx answer's content ("" when nothing): the organization a
    thing was created in, and the organizations a caller is shown."""
    own = world.orgs.get(caller.org or "")
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return ""
    data = answer.json()
    if route in (("POST", "/api/v1/destinations"), ("POST", "/api/v1/tokens")):
        wanted = own if own is not None else world.org_of(target)
        if data.get("org") != wanted:
            return f"created in org {data.get('org')!r}, expected {wanted!r}"
    if (
        route == ("POST", "/api/v1/users")
        and own is not None
        and data.get("memberships") != [{"org": own, "role": "viewer"}]
    ):
        return f"created with memberships {data.get('memberships')!r}, expected a viewer of {own!r}"
    if route == ("GET", "/api/v1/orgs"):
        names = [o["name"] for o in data["orgs"]]
        if own is not None and names != [own]:
            return f"listed orgs {names}, expected [{own!r}]"
        if own is None and not set(world.orgs.values()) <= set(names):
            return f"listed orgs {names}, missing A or B"
    if route == ("GET", "/api/v1/destinations") and own is not None:
        orgs = {d["org"] for d in data["destinations"]}
        if orgs != {own} or world.objects["destination"][caller.org or ""] not in {
            d["id"] for d in data["destinations"]
        }:
            return f"listed destinations of orgs {orgs}, expected its own (with its own destination)"
    if route == ("DELETE", "/api/v1/session") and data.get("signed_out") is not caller.session:
        return f"signed_out is {data.get('signed_out')!r}: only a session ends (the throwaway one)"
    if route == ("GET", "/api/v1/events"):
        wanted = own if own is not None else world.org_of(target)
        orgs = {e["event"].get("org") for e in data["events"]}
        if wanted is not None and orgs - {wanted}:
            return f"browsed events of orgs {sorted(map(str, orgs))}, expected {wanted!r} only"
    if route == ("GET", "/api/v1/tokens") and own is not None:
        orgs = {t["org"] for t in data["tokens"]}
        if orgs != {own}:
            return f"listed tokens of orgs {orgs}, expected {own!r} only"
    return ""


def leaks(world: World, caller: Caller, answer: httpx.Response) -> list[str]:
    """What of another organization (or of the instance) a 2xx answer to an organization's
    caller holds."""
    if caller.org is None:
        return []
    text = answer.text
    others = [t for t in ("A", "B", "instance") if t != caller.org]
    return sorted(f"{t}:{value}" for t in others for value in world.secrets[t] if value in text)


def row_label(method: str, template: str, caller: Caller, target: str) -> str:
    where = target_label(caller, target)
    return f"{method} {template} [{caller.label}{' → ' + where if where else ''}]"


# -- the tests ---------------------------------------------------------------------------------


def test_every_route_has_an_expectation() -> None:
    served = app_routes()
    missing = sorted(served - TABLE.keys())
    unknown = sorted(TABLE.keys() - served)
    assert not missing and not unknown, (
        f"routes without an expectation in TABLE: {missing}; rows naming no route: {unknown}"
    )


@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_access_matrix(world: World, caller: Caller) -> None:
    mismatches: list[str] = []
    calls = 0
    with httpx.Client(base_url=world.service.base_url, timeout=15) as client:
        for (method, template), expect in TABLE.items():
            for target in expect.targets:
                expected = expect.status(caller, target)
                label = row_label(method, template, caller, target)
                call = prepare(world, caller, method, template, target, expect.fresh)
                headers = call.headers if call.headers is not None else world.headers[caller.key]
                answer = client.request(method, call.path, json=call.json, data=call.form, headers=headers)
                client.cookies.clear()  # nothing is carried from one call to the next
                calls += 1
                note_made(world, template, answer)
                got = answer.status_code
                if got != expected:
                    mismatches.append(f"{label}: expected {expected}, got {got} {answer.text[:200]}")
                    continue
                if got == 401 and "www-authenticate" not in answer.headers:
                    mismatches.append(f"{label}: 401 without a WWW-Authenticate header")
                if 200 <= got < 300:
                    if problem := check_answer(world, caller, (method, template), target, answer):
                        mismatches.append(f"{label}: {problem}")
                    if leaked := leaks(world, caller, answer):
                        mismatches.append(f"{label}: the answer holds another's data: {leaked}")
    assert calls > len(TABLE)
    if mismatches:
        listed = "\n".join(mismatches)
        pytest.fail(f"{len(mismatches)} of {calls} calls answered otherwise:\n{listed}", pytrace=False)
