"""Organizations as entities (created, listed, renamed, removed by instance admins), events
sent for organizations (the `org` field of instance ingest tokens), ids unique within an
organization, and figures scoped to what the caller may see. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.support import Receiver, Service, in_ns, wait_until


@contextmanager
def client(service: Service, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=service.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=15
    ) as c:
        yield c


def new_org(service: Service, prefix: str = "org") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with service.admin() as admin:
        made = admin.post("/api/v1/orgs", json={"name": name, "title": f"{prefix.title()} Inc."})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == name
    return name


def token_for(service: Service, role: str, org: str | None) -> str:
    with service.admin() as admin:
        body: dict[str, Any] = {"name": f"{role} of {org}", "role": role}
        if org is not None:
            body["org"] = org
        made = admin.post("/api/v1/tokens", json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def audit_actions(service: Service, prefix: str) -> list[dict[str, Any]]:
    with service.admin() as admin:
        events = admin.get("/api/v1/events", params={"action": prefix, "limit": 1000}).json()["events"]
    return [e["event"] for e in events]


def test_admins_create_list_rename_and_remove_organizations(service: Service, receiver: Receiver) -> None:
    name = new_org(service, "acme")
    with service.admin() as admin:
        again = admin.post("/api/v1/orgs", json={"name": name})
        assert again.status_code == 409 and name in again.json()["detail"]
        bad = admin.post("/api/v1/orgs", json={"name": "Not A Slug!"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "name"
        listed = {o["name"]: o for o in admin.get("/api/v1/orgs").json()["orgs"]}
        assert listed[name]["title"] == "Acme Inc." and listed[name]["destinations"] == 0
        renamed = admin.patch(f"/api/v1/orgs/{name}", json={"title": "Acme Corporation"})
        assert renamed.status_code == 200 and renamed.json()["title"] == "Acme Corporation"
        assert renamed.json()["name"] == name, "the name (the key events carry) never changes"
        assert admin.patch(f"/api/v1/orgs/{name}", json={"name": "other"}).status_code == 422
        assert admin.get("/api/v1/orgs/no-such-org").status_code == 404

    owner = token_for(service, "owner", name)
    ingest = token_for(service, "ingest", name)
    with client(service, owner) as acme:
        created = acme.post(
            "/api/v1/destinations", json={"name": "acme sink", "kind": "http", "url": receiver.url}
        )
        assert created.status_code == 201, created.text
        # An owner sees their organization only, and cannot create or remove any.
        assert [o["name"] for o in acme.get("/api/v1/orgs").json()["orgs"]] == [name]
        assert acme.post("/api/v1/orgs", json={"name": "mine-" + name}).status_code == 403
        assert acme.delete(f"/api/v1/orgs/{name}").status_code == 403
    with service.admin() as admin:
        assert admin.get(f"/api/v1/orgs/{name}").json()["destinations"] == 1
        removed = admin.delete(f"/api/v1/orgs/{name}")
        assert removed.status_code == 200, removed.text
        assert admin.get(f"/api/v1/orgs/{name}").status_code == 404
        assert admin.get(f"/api/v1/destinations/{created.json()['id']}").status_code == 404
        tokens = {t["id"]: t for t in admin.get("/api/v1/tokens").json()["tokens"]}
    # Its tokens are revoked at once: refused on every request.
    with client(service, ingest) as producer:
        assert producer.post("/api/v1/events", json=in_ns("x")).status_code == 401
    assert all(t["revoked_at"] for t in tokens.values() if t["org"] == name)

    trail = [e for e in audit_actions(service, "audit_stream.org.*") if e["entity"]["id"] == name]
    assert [e["action"] for e in trail] == [
        "audit_stream.org.create",
        "audit_stream.org.rename",
        "audit_stream.org.delete",
    ]
    assert trail[0]["actor"]["token"]["name"] == "initial admin token"
    assert trail[2]["details"]["removed"]["destinations"] == 1
    deleted = [
        e
        for e in audit_actions(service, "audit_stream.destination.delete")
        if e["entity"]["id"] == created.json()["id"]
    ]
    assert deleted and deleted[0]["details"]["reason"] == "organization removed"


def test_destinations_and_tokens_need_an_existing_organization(service: Service, receiver: Receiver) -> None:
    with service.admin() as admin:
        destination = admin.post(
            "/api/v1/destinations",
            json={"name": "x", "kind": "http", "url": receiver.url, "org": "never-created"},
        )
        assert destination.status_code == 422, destination.text
        assert destination.json()["errors"][0]["field"] == "org"
        token = admin.post("/api/v1/tokens", json={"name": "x", "role": "ingest", "org": "never-created"})
        assert token.status_code == 422 and "never-created" in token.text


def test_instance_tokens_send_events_for_organizations(
    service: Service, namespace: str, add_destination: Any
) -> None:
    acme, globex = new_org(service, "acme"), new_org(service, "globex")
    acme_sink, globex_sink, instance_sink = Receiver(), Receiver(), Receiver()
    try:
        scope = {"namespaces": [namespace], "delivery": {"ordered": True}}
        add_destination(name="acme", kind="http", url=acme_sink.url, org=acme, **scope)
        add_destination(name="globex", kind="http", url=globex_sink.url, org=globex, **scope)
        add_destination(name="instance", kind="http", url=instance_sink.url, **scope)
        for_acme = in_ns(namespace, org=acme)
        for_globex = in_ns(namespace, org=globex)
        of_instance = in_ns(namespace)
        with service.ingest() as producer:
            unknown = producer.post("/api/v1/events", json=[in_ns(namespace), in_ns(namespace, org="nope")])
            assert unknown.status_code == 422, unknown.text
            assert unknown.json()["errors"] == [
                {"index": 1, "field": "org", "message": "no organization is named 'nope'"}
            ]
            sent = producer.post("/api/v1/events", json=[for_acme, for_globex, of_instance])
            assert sent.status_code == 202, sent.text
        wait_until(
            lambda: len(instance_sink.events()) == 3 and acme_sink.events() and globex_sink.events(),
            what="each organization's events at its destination, all at the instance's",
        )
        assert [e["id"] for e in acme_sink.events()] == [for_acme["id"]]
        assert [e["id"] for e in globex_sink.events()] == [for_globex["id"]]
        assert acme_sink.events()[0]["org"] == acme
        assert "org" not in instance_sink.events()[2]
        with service.admin() as admin:
            only_acme = admin.get("/api/v1/events", params={"org": acme, "limit": 1000}).json()["events"]
        assert {e["event"].get("org") for e in only_acme} == {acme}, [
            e for e in only_acme if "org" not in e["event"]
        ]
        assert for_acme["id"] in {e["event"]["id"] for e in only_acme}
        with client(service, token_for(service, "viewer", acme)) as viewer:
            assert viewer.get("/api/v1/events", params={"org": globex}).status_code == 404
            assert viewer.get("/api/v1/events", params={"org": acme}).status_code == 200

        # An organization's token sends its own organization's events only: 403, nothing stored.
        acme_ingest = token_for(service, "ingest", acme)
        with client(service, acme_ingest) as producer:
            other = producer.post("/api/v1/events", json=[in_ns(namespace), in_ns(namespace, org=globex)])
            assert other.status_code == 403, other.text
            assert other.json()["errors"][0]["index"] == 1
            own = in_ns(namespace)
            assert producer.post("/api/v1/events", json=own).status_code == 202
            named = in_ns(namespace, org=acme)
            assert producer.post("/api/v1/events", json=named).status_code == 202
        wait_until(lambda: len(acme_sink.events()) == 3, what="the org token's events")
        assert [e["org"] for e in acme_sink.events()] == [acme, acme, acme], "the org is in every body"
        assert len(globex_sink.events()) == 1
    finally:
        for sink in (acme_sink, globex_sink, instance_sink):
            sink.close()


def test_event_ids_are_unique_within_an_organization_not_across(
    service: Service, namespace: str, add_destination: Any
) -> None:
    """The issue's case: organization B sent id U; A's different event with id U is stored
    and reaches A's destinations."""
    a, b = new_org(service, "a"), new_org(service, "b")
    a_sink, b_sink = Receiver(), Receiver()
    try:
        add_destination(name="a", kind="http", url=a_sink.url, org=a, namespaces=[namespace])
        add_destination(name="b", kind="http", url=b_sink.url, org=b, namespaces=[namespace])
        shared_id = str(uuid.uuid4())
        b_event = in_ns(namespace, id=shared_id, action="document.delete")
        a_event = in_ns(namespace, id=shared_id, action="document.create")
        with client(service, token_for(service, "ingest", b)) as producer:
            first = producer.post("/api/v1/events", json=b_event).json()
            assert first["stored"] == 1
            again = producer.post("/api/v1/events", json=b_event).json()
            assert again["stored"] == 0 and again["already_stored"] == [shared_id]
        with client(service, token_for(service, "ingest", a)) as producer:
            answer = producer.post("/api/v1/events", json=a_event)
        assert answer.status_code == 202
        assert answer.json()["stored"] == 1 and answer.json()["already_stored"] == []
        # The same through an instance token naming the organization: already stored.
        with service.ingest() as producer:
            repeat = producer.post("/api/v1/events", json={**a_event, "org": a}).json()
        assert repeat["stored"] == 0 and repeat["already_stored"] == [shared_id]
        wait_until(lambda: a_sink.events() and b_sink.events(), what="both events delivered")
        assert [(e["id"], e["action"]) for e in a_sink.events()] == [(shared_id, "document.create")]
        assert [(e["id"], e["action"]) for e in b_sink.events()] == [(shared_id, "document.delete")]
    finally:
        a_sink.close()
        b_sink.close()


def test_an_organizations_figures_count_its_own_events_only(
    service: Service, namespace: str, add_destination: Any
) -> None:
    quiet = new_org(service, "quiet")
    sink = Receiver()
    try:
        paused = add_destination(name="quiet", kind="http", url=sink.url, org=quiet, active=False)
        # Other organizations' and the instance's events do not count in its lag or head.
        service.send([in_ns(namespace) for _ in range(5)])
        with client(service, token_for(service, "ingest", quiet)) as producer:
            assert (
                producer.post("/api/v1/events", json=[in_ns(namespace), in_ns(namespace)]).status_code == 202
            )
        owner = token_for(service, "owner", quiet)
        service.send([in_ns(namespace) for _ in range(3)])
        with client(service, owner) as reader:
            status = reader.get(f"/api/v1/destinations/{paused['id']}").json()["status"]
            browsed = reader.get("/api/v1/events", params={"limit": 1000}).json()
        with service.admin() as admin:
            instance_head = admin.get("/api/v1/events", params={"limit": 1}).json()["head"]
        seqs = [e["seq"] for e in browsed["events"]]
        assert all(e["event"].get("org") == quiet for e in browsed["events"])
        assert sum(e["event"]["action"] == "document.create" for e in browsed["events"]) == 2
        # Its lag: its own events after the cursor (the two sent, and its own audit events).
        assert status["lag"] == len([s for s in seqs if s > status["cursor"]]), (status, seqs)
        assert status["head"] == max(seqs) == browsed["head"]
        assert instance_head >= status["head"] + 3, "the instance's head counts everyone's events"
    finally:
        sink.close()
