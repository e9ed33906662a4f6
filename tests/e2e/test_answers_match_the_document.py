"""Every successful answer is the one the OpenAPI document describes.

Schemathesis (test_schemathesis.py) generates requests from the document, but most of them
are refused (404, 422): this drives real successful calls instead, over the real service,
on each backend: destinations of each kind (created, read, changed, paused, resumed,
retried, tested against receivers), their deliveries, dead letters and replays, tokens,
organizations, people, a session, and the event log. Each 2xx body is validated against
the schema the document gives for that route and status (JSON Schema 2020-12, the
document's components resolved, formats checked), and at the end every documented JSON
answer must have been seen at least once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.support import HecReceiver, Received, Receiver, Reply, Service, SumoReceiver, in_ns, wait_until

DOCUMENT_URI = "urn:auditrelay:openapi"
PASSWORD = "correct horse battery staple"
#: Where nothing listens: every attempt fails at once, with no HTTP status.
NOWHERE = "http://127.0.0.1:9/hook"
#: RFC 3339 (jsonschema checks `date-time` only with an optional package; checked here).
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII)


class RefusesMarked(Receiver):
    """Refuses (422) any request holding `marker`, until `picky` is cleared."""

    picky = True

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        super().__init__()

    def respond(self, request: Received) -> Reply | str:
        if self.picky and self.marker in request.body:
            return 422, {}, b"schema mismatch"
        return super().respond(request)


class Document:
    """The service's OpenAPI document, checking answers against it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.registry: Registry[Any] = Registry().with_resource(
            DOCUMENT_URI, DRAFT202012.create_resource(document)
        )
        self.formats = FormatChecker()
        self.formats.checks("date-time")(
            lambda value: not isinstance(value, str) or bool(RFC3339.match(value))
        )
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, response: httpx.Response, path: str) -> Any:
        """The answer's body, after checking it against the schema of `path` (the document's
        template, e.g. /api/v1/orgs/{name}) for its method and status."""
        method = response.request.method.lower()
        status = str(response.status_code)
        assert 200 <= response.status_code < 300, (
            f"{method.upper()} {path}: {response.status_code} {response.text}"
        )
        responses = self.document["paths"][path][method]["responses"]
        assert status in responses, f"{method.upper()} {path} answered {status}, not documented: {responses}"
        content = responses[status].get("content", {})
        assert response.headers["content-type"].split(";")[0] in content, (method, path, content)
        schema = content["application/json"]["schema"]
        assert schema.get("$ref", "").startswith("#/components/schemas/"), (method, path, schema)
        body = response.json()
        errors = self.errors(method, path, status, body)
        assert not errors, f"{method.upper()} {path} ({status}) is not as documented:\n" + "\n".join(errors)
        self.seen.add((method, path, status))
        return body

    def errors(self, method: str, path: str, status: str, body: Any) -> list[str]:
        """What is wrong with `body` as the answer of `method path` with `status`."""
        escaped = path.replace("~", "~0").replace("/", "~1")
        pointer = f"#/paths/{escaped}/{method}/responses/{status}/content/application~1json/schema"
        validator = Draft202012Validator(
            {"$ref": DOCUMENT_URI + pointer}, registry=self.registry, format_checker=self.formats
        )
        found = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        return [f"- at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in found]

    def documented(self) -> set[tuple[str, str, str]]:
        """Every (method, path, status) whose 2xx answer is documented as JSON."""
        return {
            (method, path, status)
            for path, operations in self.document["paths"].items()
            for method, operation in operations.items()
            for status, answer in operation["responses"].items()
            if status.startswith("2") and "application/json" in answer.get("content", {})
        }


@pytest.fixture
def document(service: Service) -> Document:
    return Document(httpx.get(service.base_url + "/openapi.json", timeout=15).json())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def signed_in(service: Service, cookie: str, csrf: str) -> Iterator[httpx.Client]:
    """A client of a person's session (its cookie is `Secure`: sent by hand over HTTP)."""
    headers = {"Cookie": f"auditrelay_session={cookie}", "X-CSRF-Token": csrf}
    with httpx.Client(base_url=service.base_url, headers=headers, timeout=15) as client:
        yield client


def test_every_successful_answer_matches_the_document(
    service: Service,
    document: Document,
    receiver: Receiver,
    hec: HecReceiver,
    sumo: SumoReceiver,
    namespace: str,
) -> None:
    created: list[str] = []
    refusing = RefusesMarked(b"refuse-me")
    try:
        with service.admin() as admin:
            destinations(service, admin, document, created, receiver, hec, sumo, namespace)
            recovery(service, admin, document, created, refusing, namespace)
            org, owner_token = tokens_and_orgs(service, admin, document)
            people_and_session(service, admin, document, org, owner_token, receiver)
            browse(admin, document, org)
            # The check itself refuses what the document does not describe.
            one = ("get", "/api/v1/destinations/{destination_id}", "200")
            destination = document.check(admin.get(f"/api/v1/destinations/{created[0]}"), one[1])
            assert document.errors(*one, {**destination, "surprise": 1}), "an unknown key"
            assert document.errors(*one, {**destination, "name": None}), "null where never null"
            assert document.errors(*one, {**destination, "created_at": "yesterday"}), "not a time"
            del destination["status"]["lag"]
            assert document.errors(*one, destination), "a key always there, missing"
    finally:
        refusing.close()
        for destination_id in created:
            service.delete_destination(destination_id)
    missing = document.documented() - document.seen
    assert not missing, f"documented answers never checked: {sorted(missing)}"


def destinations(
    service: Service,
    admin: httpx.Client,
    document: Document,
    created: list[str],
    receiver: Receiver,
    hec: HecReceiver,
    sumo: SumoReceiver,
    namespace: str,
) -> None:
    check = document.check
    http = check(
        admin.post(
            "/api/v1/destinations",
            json={
                "name": "typed http",
                "kind": "http",
                "url": receiver.url + "/hook?key=secret-in-query",
                "token": "Bearer very-secret-token-1234",
                "headers": [
                    {"name": "X-Team", "value": "security"},
                    {"name": "X-Api-Key", "value": "key-abcdef-9876"},
                ],
                "event_types": ["document.*"],
                "namespaces": [namespace],
                "content_type": "application/json; charset=utf-8",
                "signing_secret": "generate",
                "tls": {"verify": False, "min_version": "1.3"},
                "batch": {"max_events": 10, "linger_ms": 0},
                "delivery": {"ordered": True},
            },
        ),
        "/api/v1/destinations",
    )
    created.append(http["id"])
    assert http["signing_secret"].startswith("whsec_") and http["warnings"], "shown once; verify off"
    splunk = check(
        admin.post(
            "/api/v1/destinations",
            json={
                "name": "typed hec",
                "kind": "splunk_hec",
                "url": hec.url,
                "token": hec.token,
                "namespaces": [namespace],
                "options": {"index": "main", "sourcetype": "audit"},
            },
        ),
        "/api/v1/destinations",
    )
    created.append(splunk["id"])
    sumo_logic = check(
        admin.post(
            "/api/v1/destinations",
            json={
                "name": "typed sumo",
                "kind": "sumo_logic",
                "active": False,
                "url": sumo.url + "/receiver/v1/http/ZaVnC4dhaV0Jdaa6trtGtxSkJtAVfV7TzNw==",
            },
        ),
        "/api/v1/destinations",
    )
    created.append(sumo_logic["id"])
    failing = check(
        admin.post(
            "/api/v1/destinations",
            json={"name": "typed nowhere", "kind": "http", "url": NOWHERE, "namespaces": [namespace]},
        ),
        "/api/v1/destinations",
    )
    created.append(failing["id"])

    listed = check(admin.get("/api/v1/destinations"), "/api/v1/destinations")
    assert set(created) <= {d["id"] for d in listed["destinations"]}
    one = "/api/v1/destinations/{destination_id}"
    for destination_id in created:
        check(admin.get(f"/api/v1/destinations/{destination_id}"), one)
    check(admin.patch(f"/api/v1/destinations/{http['id']}", json={"name": "typed http, renamed"}), one)
    check(admin.patch(f"/api/v1/destinations/{http['id']}", json={}), one)  # nothing changes
    check(admin.post(f"/api/v1/destinations/{http['id']}/pause"), one + "/pause")
    check(admin.post(f"/api/v1/destinations/{http['id']}/resume"), one + "/resume")
    check(admin.post(f"/api/v1/destinations/{sumo_logic['id']}/resume"), one + "/resume")
    check(admin.post(f"/api/v1/destinations/{failing['id']}/retry"), one + "/retry")

    test = one + "/test"
    for destination_id in (http["id"], splunk["id"], sumo_logic["id"]):
        result = check(admin.post(f"/api/v1/destinations/{destination_id}/test"), test)
        assert result["delivered"] is True, result
    refused = check(admin.post(f"/api/v1/destinations/{failing['id']}/test"), test)
    assert refused["delivered"] is False and refused["status_code"] is None, refused
    receiver.answer_with(503, {"Content-Type": "text/plain"}, b"down for maintenance")
    down = check(admin.post(f"/api/v1/destinations/{http['id']}/test"), test)
    assert down["status_code"] == 503, down
    receiver.answer_normally()

    # Delivered events and a failing destination: a status with successes, and a last error.
    events = [in_ns(namespace) for _ in range(3)]
    service.send(events)
    wait_until(lambda: len(hec.events()) >= 3 and len(receiver.events()) >= 3, timeout=20, what="deliveries")

    def failed() -> bool:
        status = admin.get(f"/api/v1/destinations/{failing['id']}").json()["status"]
        return status["last_error"] is not None and status["lag"] > 0

    wait_until(failed, timeout=20, what="a last error")
    for destination_id in created:
        check(admin.get(f"/api/v1/destinations/{destination_id}"), one)
    check(admin.get("/api/v1/destinations"), "/api/v1/destinations")
    for destination_id in (http["id"], failing["id"]):
        history = check(admin.get(f"/api/v1/destinations/{destination_id}/deliveries"), one + "/deliveries")
        assert history["deliveries"], destination_id


def recovery(
    service: Service,
    admin: httpx.Client,
    document: Document,
    created: list[str],
    refusing: RefusesMarked,
    namespace: str,
) -> None:
    check = document.check
    base = "/api/v1/destinations/{destination_id}"
    destination = check(
        admin.post(
            "/api/v1/destinations",
            json={"name": "typed refusing", "kind": "http", "url": refusing.url, "namespaces": [namespace]},
        ),
        "/api/v1/destinations",
    )
    created.append(destination["id"])
    path = f"/api/v1/destinations/{destination['id']}"
    service.send([in_ns(namespace, details={"note": "refuse-me"}), in_ns(namespace, details="refuse-me")])
    wait_until(
        lambda: admin.get(path + "/dead-letters").json().get("total") == 2,
        timeout=20,
        what="two dead letters",
    )
    page = check(admin.get(path + "/dead-letters"), base + "/dead-letters")
    assert page["dead_letters"][0]["status"] == 422
    check(
        admin.get(path + "/dead-letters", params={"after": page["dead_letters"][0]["id"], "limit": 1}),
        base + "/dead-letters",
    )
    check(admin.get(path + "/deliveries", params={"limit": 5}), base + "/deliveries")
    still = check(
        admin.post(path + "/dead-letters/resend", json={"ids": [page["dead_letters"][0]["id"]]}),
        base + "/dead-letters/resend",
    )
    assert still["results"][0]["delivered"] is False and still["remaining"] == 2, still
    refusing.picky = False
    resent = check(admin.post(path + "/dead-letters/resend"), base + "/dead-letters/resend")
    assert resent["remaining"] == 0 and all(r["delivered"] for r in resent["results"]), resent
    nothing = check(admin.post(path + "/dead-letters/resend", json={}), base + "/dead-letters/resend")
    assert nothing == {"results": [], "remaining": 0}

    head = admin.get("/api/v1/events", params={"limit": 1}).json()["head"]
    check(admin.get(path + "/replays"), base + "/replays")  # none yet
    job = check(admin.post(path + "/replay", json={"from_seq": 1, "to_seq": head}), base + "/replay")
    check(admin.post(path + "/replay", json={"from_time": "2000-01-01T00:00:00Z"}), base + "/replay")

    def done() -> bool:
        jobs = admin.get(path + "/replays").json()["replays"]
        return any(j["id"] == job["id"] and j["state"] == "done" for j in jobs)

    wait_until(done, timeout=30, what="the replay to finish")
    replays = check(admin.get(path + "/replays"), base + "/replays")
    assert any(j["finished_at"] for j in replays["replays"])
    check(admin.get(path + "/deliveries"), base + "/deliveries")  # replayed attempts too
    check(admin.get(path), base)


def tokens_and_orgs(service: Service, admin: httpx.Client, document: Document) -> tuple[str, str]:
    check = document.check
    org = unique("typed")
    check(admin.post("/api/v1/orgs", json={"name": org, "title": "Typed Answers"}), "/api/v1/orgs")
    check(admin.get("/api/v1/orgs"), "/api/v1/orgs")
    check(admin.get(f"/api/v1/orgs/{org}"), "/api/v1/orgs/{name}")
    check(admin.patch(f"/api/v1/orgs/{org}", json={"title": "Typed Answers, renamed"}), "/api/v1/orgs/{name}")

    owner = check(
        admin.post(
            "/api/v1/tokens", json={"name": "typed owner", "role": "owner", "org": org, "expires_in": "1d"}
        ),
        "/api/v1/tokens",
    )
    viewer = check(
        admin.post("/api/v1/tokens", json={"name": "typed viewer", "role": "viewer"}), "/api/v1/tokens"
    )
    ingest = check(
        admin.post("/api/v1/tokens", json={"name": "typed ingest", "role": "ingest", "org": org}),
        "/api/v1/tokens",
    )
    check(admin.get("/api/v1/tokens"), "/api/v1/tokens")
    rotated = check(admin.post(f"/api/v1/tokens/{ingest['id']}/rotate"), "/api/v1/tokens/{token_id}/rotate")
    assert rotated["replaces"] == ingest["id"]
    check(admin.delete(f"/api/v1/tokens/{rotated['id']}"), "/api/v1/tokens/{token_id}")
    check(admin.get("/api/v1/tokens"), "/api/v1/tokens")  # revoked ones and their times too

    # An org's own ingest token sends; its owner sees its tokens; a viewer sees no counts.
    with httpx.Client(
        base_url=service.base_url, headers={"Authorization": f"Bearer {owner['token']}"}, timeout=15
    ) as as_owner:
        sender = check(
            as_owner.post("/api/v1/tokens", json={"name": "typed org ingest", "role": "ingest"}),
            "/api/v1/tokens",
        )
        check(as_owner.get("/api/v1/tokens"), "/api/v1/tokens")
        check(as_owner.get("/api/v1/orgs"), "/api/v1/orgs")
        check(as_owner.get("/api/v1/destinations"), "/api/v1/destinations")
    with httpx.Client(
        base_url=service.base_url, headers={"Authorization": f"Bearer {sender['token']}"}, timeout=15
    ) as as_sender:
        first = in_ns(f"{org}/web")
        check(as_sender.post("/api/v1/events", json=[first, in_ns(f"{org}/web")]), "/api/v1/events")
        # Sent again, and once more with another body: already stored, and a conflict.
        again = check(
            as_sender.post("/api/v1/events", json=[first, {**first, "action": "document.delete"}]),
            "/api/v1/events",
        )
        assert again["already_stored"] and again["conflicts"], again
    with httpx.Client(
        base_url=service.base_url, headers={"Authorization": f"Bearer {viewer['token']}"}, timeout=15
    ) as as_viewer:
        orgs = check(as_viewer.get("/api/v1/orgs"), "/api/v1/orgs")
        assert all("tokens" not in o and "members" not in o for o in orgs["orgs"])
        check(as_viewer.get(f"/api/v1/orgs/{org}"), "/api/v1/orgs/{name}")

    doomed = unique("typed-doomed")
    check(admin.post("/api/v1/orgs", json={"name": doomed}), "/api/v1/orgs")
    check(admin.delete(f"/api/v1/orgs/{doomed}"), "/api/v1/orgs/{name}")
    return org, owner["token"]


def people_and_session(
    service: Service, admin: httpx.Client, document: Document, org: str, owner_token: str, receiver: Receiver
) -> None:
    check = document.check
    person = check(
        admin.post(
            "/api/v1/users",
            json={
                "email": f"{unique('typed')}@example.com",
                "name": "Ada",
                "password": PASSWORD,
                "memberships": [{"org": org, "role": "owner"}],
            },
        ),
        "/api/v1/users",
    )
    no_password = check(
        admin.post("/api/v1/users", json={"email": f"{unique('sso')}@example.com"}), "/api/v1/users"
    )
    check(admin.get("/api/v1/users"), "/api/v1/users")
    check(admin.get(f"/api/v1/users/{person['id']}"), "/api/v1/users/{user_id}")
    check(admin.patch(f"/api/v1/users/{person['id']}", json={"name": "Ada L."}), "/api/v1/users/{user_id}")
    with httpx.Client(
        base_url=service.base_url, headers={"Authorization": f"Bearer {owner_token}"}, timeout=15
    ) as as_owner:
        viewer = check(
            as_owner.post(
                "/api/v1/users", json={"email": f"{unique('viewer')}@example.com", "role": "viewer"}
            ),
            "/api/v1/users",
        )
        check(as_owner.get("/api/v1/users"), "/api/v1/users")
        check(
            as_owner.patch(f"/api/v1/users/{viewer['id']}", json={"role": "owner"}), "/api/v1/users/{user_id}"
        )
        check(as_owner.delete(f"/api/v1/users/{viewer['id']}"), "/api/v1/users/{user_id}")
    check(admin.delete(f"/api/v1/users/{no_password['id']}"), "/api/v1/users/{user_id}")

    signed = httpx.post(
        service.base_url + "/api/v1/session",
        json={"email": person["email"], "password": PASSWORD},
        timeout=15,
    )
    session = check(signed, "/api/v1/session")
    cookie = signed.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    with signed_in(service, cookie, session["csrf_token"]) as client:
        check(client.get("/api/v1/session"), "/api/v1/session")
        check(client.put("/api/v1/session/org", json={"org": org}), "/api/v1/session/org")
        orgs = check(client.get("/api/v1/orgs"), "/api/v1/orgs")
        assert [o.get("your_role") for o in orgs["orgs"]] == ["owner"]
        check(client.get(f"/api/v1/orgs/{org}"), "/api/v1/orgs/{name}")
        made = check(
            client.post(
                "/api/v1/destinations", json={"name": "typed org", "kind": "http", "url": receiver.url}
            ),
            "/api/v1/destinations",
        )
        check(client.get("/api/v1/events", params={"limit": 50}), "/api/v1/events")
        assert client.delete(f"/api/v1/destinations/{made['id']}").status_code == 204
        out = check(client.delete("/api/v1/session"), "/api/v1/session")
        assert out == {"signed_out": True}
        out = check(client.delete("/api/v1/session"), "/api/v1/session")
        assert out == {"signed_out": False}


def browse(admin: httpx.Client, document: Document, org: str) -> None:
    """The whole log, page by page: every kind of event the relay writes (its audit events of
    destinations, tokens, organizations and people) and the ones producers sent."""
    after, pages = 0, 0
    while True:
        page = document.check(
            admin.get("/api/v1/events", params={"after": after, "limit": 1000}), "/api/v1/events"
        )
        pages += 1
        if not page["events"]:
            break
        after = page["next_after"]
    assert pages > 1 and page["next_after"] == page["head"]
    for params in ({"org": org}, {"action": "audit_stream.*"}, {"action": "document.create", "limit": 5}):
        document.check(admin.get("/api/v1/events", params=params), "/api/v1/events")
