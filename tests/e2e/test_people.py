"""People and their sessions over the real service (two worker processes): admins and
owners add people, people sign in with a password, the session cookie's attributes, CSRF,
sign-out, locking and removal ending access at once, wrong passwords slowed down, a person
in two organizations, and the CLI's `user create`."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.support import ROOT, Receiver, Service

PASSWORD = "correct horse battery staple"


def new_org(service: Service) -> str:
    name = f"people-{uuid.uuid4().hex[:8]}"
    service.ensure_org(name)
    return name


def new_person(service: Service, **body: Any) -> dict[str, Any]:
    body.setdefault("email", f"{uuid.uuid4().hex[:8]}@example.com")
    body.setdefault("password", PASSWORD)
    with service.admin() as admin:
        made = admin.post("/api/v1/users", json=body)
    assert made.status_code == 201, made.text
    person: dict[str, Any] = made.json()
    assert "password_hash" not in made.text and PASSWORD not in made.text
    return person


class Session:
    """A signed-in person. The cookie is `Secure`, so httpx would not send it over plain
    HTTP on its own: it is sent by hand, exactly as the server set it."""

    def __init__(self, service: Service, cookie: str, csrf: str) -> None:
        self.service, self.cookie, self.csrf = service, cookie, csrf

    @contextmanager
    def client(self, csrf: bool = True, **headers: str) -> Iterator[httpx.Client]:
        sent = {"Cookie": f"auditrelay_session={self.cookie}", **headers}
        if csrf:
            sent["X-CSRF-Token"] = self.csrf
        with httpx.Client(base_url=self.service.base_url, headers=sent, timeout=15) as c:
            yield c


def sign_in(service: Service, email: str, password: str = PASSWORD) -> Session:
    answer = httpx.post(service.base_url + "/api/v1/session", json={"email": email, "password": password})
    assert answer.status_code == 201, answer.text
    set_cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
    assert {"secure", "httponly", "samesite"} <= attributes, set_cookie
    assert "samesite=lax" in set_cookie.lower()
    cookie = set_cookie.split(";")[0].split("=", 1)[1]
    return Session(service, cookie, answer.json()["csrf_token"])


def test_a_person_signs_in_acts_with_csrf_and_signs_out(service: Service, receiver: Receiver) -> None:
    org = new_org(service)
    person = new_person(service, memberships=[{"org": org, "role": "owner"}])
    assert person["memberships"] == [{"org": org, "role": "owner"}] and person["password"] is True
    session = sign_in(service, person["email"].upper())  # an address is the same however typed
    with session.client() as owner:
        me = owner.get("/api/v1/session").json()
        assert me["user"]["id"] == person["id"] and me["role"] == "owner" and me["org"] == org
        made = owner.post("/api/v1/destinations", json={"name": "mine", "kind": "http", "url": receiver.url})
        assert made.status_code == 201, made.text
        assert made.json()["org"] == org
        listed = owner.get("/api/v1/destinations").json()["destinations"]
        assert [d["id"] for d in listed] == [made.json()["id"]]
    # A change without the CSRF token (what another site's page could send) is refused.
    with session.client(csrf=False) as forged:
        refused = forged.post("/api/v1/destinations", json={"name": "x", "kind": "http", "url": receiver.url})
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
        assert forged.get("/api/v1/destinations").status_code == 200, "reading needs no CSRF token"
    with session.client(csrf=False, **{"X-CSRF-Token": "wrong"}) as forged:
        assert forged.delete(f"/api/v1/destinations/{made.json()['id']}").status_code == 403
    # The change is the same audit event the API writes, with the person as actor.
    with service.admin() as admin:
        events = admin.get(
            "/api/v1/events", params={"action": "audit_stream.destination.create", "limit": 1000}
        ).json()["events"]
    created = next(e["event"] for e in events if e["event"]["entity"]["id"] == made.json()["id"])
    assert created["actor"] == {"type": "user", "user": {"id": person["id"], "email": person["email"]}}
    # Sign-out ends the session on the server: the same cookie is refused afterwards.
    with session.client() as owner:
        out = owner.delete("/api/v1/session")
        assert out.status_code == 200 and out.json() == {"signed_out": True}
        assert owner.get("/api/v1/destinations").status_code == 401
    with service.admin() as admin:
        admin.delete(f"/api/v1/destinations/{made.json()['id']}")


def test_wrong_passwords_are_refused_alike_and_slowed_down(service: Service) -> None:
    person = new_person(service, admin=True)
    url = service.base_url + "/api/v1/session"
    unknown = httpx.post(url, json={"email": "nobody@example.com", "password": PASSWORD})
    wrong = httpx.post(url, json={"email": person["email"], "password": "not the password"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"], "no telling whether an account exists"
    for _ in range(4):
        assert httpx.post(url, json={"email": person["email"], "password": "nope"}).status_code == 401
    # Five wrong in a row: the next attempt waits, even with the right password.
    throttled = httpx.post(url, json={"email": person["email"], "password": PASSWORD})
    assert throttled.status_code == 429, throttled.text
    assert int(throttled.headers["retry-after"]) >= 1
    with service.admin() as admin:
        trail = admin.get("/api/v1/events", params={"action": "audit_stream.user.*", "limit": 1000}).json()
    assert any(e["event"]["entity"]["id"] == person["id"] for e in trail["events"])


def test_locking_or_removing_a_person_ends_their_access_at_once(service: Service) -> None:
    locked = new_person(service, admin=True)
    removed = new_person(service, admin=True)
    locked_session, removed_session = sign_in(service, locked["email"]), sign_in(service, removed["email"])
    with service.admin() as admin:
        assert admin.patch(f"/api/v1/users/{locked['id']}", json={"locked": True}).status_code == 200
        assert admin.delete(f"/api/v1/users/{removed['id']}").status_code == 200
        assert admin.get(f"/api/v1/users/{removed['id']}").status_code == 404
    # Every worker process refuses them: several fresh connections each.
    for session in (locked_session, removed_session):
        for _ in range(6):
            with session.client() as c:
                assert c.get("/api/v1/destinations").status_code == 401
    assert (
        httpx.post(
            service.base_url + "/api/v1/session", json={"email": locked["email"], "password": PASSWORD}
        ).status_code
        == 401
    )
    with service.admin() as admin:
        assert admin.patch(f"/api/v1/users/{locked['id']}", json={"locked": False}).status_code == 200
    assert sign_in(service, locked["email"]).cookie


def test_owners_manage_their_organizations_members_and_nobody_else(service: Service) -> None:
    mine, theirs = new_org(service), new_org(service)
    owner = new_person(service, memberships=[{"org": mine, "role": "owner"}])
    stranger = new_person(service, memberships=[{"org": theirs, "role": "viewer"}])
    session = sign_in(service, owner["email"])
    with session.client() as c:
        added = c.post("/api/v1/users", json={"email": "analyst-" + owner["email"], "password": PASSWORD})
        assert added.status_code == 201, added.text
        assert added.json()["memberships"] == [{"org": mine, "role": "viewer"}]
        assert c.post("/api/v1/users", json={"email": "x@example.com", "admin": True}).status_code == 403
        listed = {u["id"] for u in c.get("/api/v1/users").json()["users"]}
        assert listed == {owner["id"], added.json()["id"]}
        # Another organization's person does not exist, as far as the owner can tell.
        assert c.get(f"/api/v1/users/{stranger['id']}").status_code == 404
        assert c.patch(f"/api/v1/users/{stranger['id']}", json={"role": "owner"}).status_code == 404
        assert c.delete(f"/api/v1/users/{stranger['id']}").status_code == 404
        # Adding someone who has an account elsewhere adds the membership only, and shows
        # nothing of their other organizations.
        joined = c.post("/api/v1/users", json={"email": stranger["email"], "role": "viewer"})
        assert joined.status_code == 201, joined.text
        assert joined.json()["memberships"] == [{"org": mine, "role": "viewer"}]
        assert c.patch(f"/api/v1/users/{stranger['id']}", json={"password": "x" * 20}).status_code == 403
        removed = c.delete(f"/api/v1/users/{stranger['id']}")
        assert removed.status_code == 200 and removed.json()["memberships"] == []
    with service.admin() as admin:
        whole = admin.get(f"/api/v1/users/{stranger['id']}").json()
    assert whole["memberships"] == [{"org": theirs, "role": "viewer"}], "the other membership is untouched"
    # A viewer manages nobody.
    viewer = sign_in(service, added.json()["email"])
    with viewer.client() as c:
        assert c.get("/api/v1/users").status_code == 403
        assert (
            c.post("/api/v1/destinations", json={"name": "x", "kind": "http", "url": "http://x"}).status_code
            == 403
        )
        assert c.get("/api/v1/destinations").status_code == 200


def test_a_person_in_two_organizations_acts_in_one_at_a_time(service: Service, receiver: Receiver) -> None:
    first, second = sorted([new_org(service), new_org(service)])
    person = new_person(
        service, memberships=[{"org": first, "role": "viewer"}, {"org": second, "role": "owner"}]
    )
    session = sign_in(service, person["email"])
    with session.client() as c:
        assert c.get("/api/v1/session").json()["org"] == first
        assert (
            c.post(
                "/api/v1/destinations", json={"name": "x", "kind": "http", "url": receiver.url}
            ).status_code
            == 403
        )
        chosen = c.put("/api/v1/session/org", json={"org": second})
        assert chosen.status_code == 200 and chosen.json()["role"] == "owner"
        made = c.post("/api/v1/destinations", json={"name": "x", "kind": "http", "url": receiver.url})
        assert made.status_code == 201 and made.json()["org"] == second
        # One request may name the organization it acts in.
        in_first = c.get("/api/v1/destinations", headers={"X-Auditrelay-Org": first}).json()["destinations"]
        assert in_first == []
        assert c.get("/api/v1/destinations", headers={"X-Auditrelay-Org": "not-mine"}).status_code == 403
        assert c.put("/api/v1/session/org", json={"org": "not-mine"}).status_code == 403
    with service.admin() as admin:
        admin.delete(f"/api/v1/destinations/{made.json()['id']}")


def test_the_cli_creates_people_with_the_password_on_standard_input(service: Service) -> None:
    org = new_org(service)
    email = f"cli-{uuid.uuid4().hex[:6]}@example.com"

    def run(*args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "auditrelay", "user", "create", *args],
            input=password + "\n",
            env=service.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
        )

    made = run(email, "--org", org, "--role", "owner")
    assert made.returncode == 0, made.stderr
    user_id = made.stdout.strip()
    assert PASSWORD not in made.stdout + made.stderr
    assert run(email, "--org", org, "--role", "owner").returncode != 0, "the email is taken"
    short = run("short@example.com", "--admin", password="short")
    assert short.returncode != 0 and "at least 12" in short.stderr
    neither = run("x@example.com")
    assert neither.returncode != 0 and "--admin" in neither.stderr
    unknown = run("y@example.com", "--org", "no-such-org", "--role", "viewer")
    assert unknown.returncode != 0 and "no-such-org" in unknown.stderr
    session = sign_in(service, email)
    with session.client() as c:
        me = c.get("/api/v1/session").json()
    assert me["user"]["id"] == user_id and me["role"] == "owner" and me["org"] == org
    listed = subprocess.run(
        [sys.executable, "-m", "auditrelay", "org", "list"],
        env=service.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    row = next(line for line in listed.stdout.splitlines() if line.startswith(org))
    assert row.split()[3] == "1", "one member"
