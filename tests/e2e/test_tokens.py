"""API tokens over the real service (two worker processes): create, list, use, revoke,
rotate and expire; roles admin, owner, viewer and ingest; provenance of every stored event;
the relay's own audit_stream.* namespace reserved; the CLI's token commands."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.support import ROOT, Service, in_ns, make_event, wait_until


@contextmanager
def client(service: Service, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=service.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as c:
        yield c


def create(service: Service, **body: Any) -> dict[str, Any]:
    with service.admin() as admin:
        response = admin.post("/api/v1/tokens", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def statuses(service: Service, token: str, path: str, times: int = 8) -> set[int]:
    """The statuses of `times` fresh-connection requests: spread over the worker processes."""
    seen = set()
    for _ in range(times):
        with client(service, token) as c:
            seen.add(c.get(path).status_code)
    return seen


def test_a_token_is_shown_once_listed_by_prefix_and_its_last_use_recorded(service: Service) -> None:
    made = create(service, name="ci pipeline", role="viewer")
    secret = made["token"]
    assert secret.startswith("ar_viewer_") and secret.startswith(made["prefix"])
    assert len(made["prefix"]) < len(secret) - 20, "the prefix is far too short to use"
    with client(service, secret) as viewer:
        assert viewer.get("/api/v1/destinations").status_code == 200
    with service.admin() as admin:
        listed = admin.get("/api/v1/tokens").json()["tokens"]
    mine = next(t for t in listed if t["id"] == made["id"])
    assert set(mine) == {
        "id",
        "name",
        "role",
        "org",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    }
    assert mine["name"] == "ci pipeline" and mine["role"] == "viewer" and mine["org"] is None
    assert all(secret not in str(t) for t in listed), "a listing never holds a secret"
    wait_until(
        lambda: next(
            t
            for t in httpx.get(
                service.base_url + "/api/v1/tokens",
                headers={"Authorization": f"Bearer {service.admin_token}"},
            ).json()["tokens"]
            if t["id"] == made["id"]
        )["last_used_at"],
        what="the last use written",
    )


def test_a_revoked_token_is_refused_at_once_by_every_process(service: Service) -> None:
    made = create(service, name="leaked", role="viewer")
    assert statuses(service, made["token"], "/api/v1/destinations") == {200}
    with service.admin() as admin:
        revoked = admin.delete(f"/api/v1/tokens/{made['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert statuses(service, made["token"], "/api/v1/destinations") == {401}
    with service.admin() as admin:
        again = admin.delete(f"/api/v1/tokens/{made['id']}")
        assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
        assert admin.delete("/api/v1/tokens/no-such-token").status_code == 404


def test_rotation_gives_a_new_secret_and_refuses_the_old_one(service: Service) -> None:
    made = create(service, name="app", role="ingest")
    with service.admin() as admin:
        rotated = admin.post(f"/api/v1/tokens/{made['id']}/rotate")
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["replaces"] == made["id"] and new["name"] == "app" and new["role"] == "ingest"
    with client(service, made["token"]) as old:
        assert old.post("/api/v1/events", json=make_event()).status_code == 401
    with client(service, new["token"]) as fresh:
        assert fresh.post("/api/v1/events", json=make_event()).status_code == 202


def test_an_expired_token_is_refused(service: Service) -> None:
    made = create(service, name="short", role="viewer", expires_in="2s")
    assert made["expires_at"]
    assert statuses(service, made["token"], "/api/v1/destinations", times=2) == {200}
    time.sleep(2.2)
    assert statuses(service, made["token"], "/api/v1/destinations") == {401}
    with service.admin() as admin:
        bad = admin.post("/api/v1/tokens", json={"name": "x", "role": "viewer", "expires_in": "soon"})
    assert bad.status_code == 422 and "s, m, h or d" in bad.text


def test_a_viewer_reads_and_changes_nothing(service: Service, namespace: str) -> None:
    viewer = create(service, name="analyst", role="viewer")["token"]
    destination = service.add_destination(
        name="watched", kind="http", url="http://127.0.0.1:9/", namespaces=[namespace]
    )
    path = f"/api/v1/destinations/{destination['id']}"
    try:
        with client(service, viewer) as c:
            for readable in (
                path,
                path + "/deliveries",
                path + "/dead-letters",
                path + "/replays",
                "/api/v1/events",
            ):
                assert c.get(readable).status_code == 200, readable
            for method, changing in (
                ("POST", "/api/v1/destinations"),
                ("PATCH", path),
                ("DELETE", path),
                ("POST", path + "/pause"),
                ("POST", path + "/retry"),
                ("POST", path + "/replay"),
                ("GET", "/api/v1/tokens"),
                ("POST", "/api/v1/tokens"),
            ):
                response = c.request(method, changing, json={})
                assert response.status_code == 403, (method, changing, response.text)
            assert "read-only" in c.post(path + "/pause").json()["detail"]
            assert c.post("/api/v1/events", json=make_event()).status_code == 403
    finally:
        service.delete_destination(destination["id"])


def test_an_owner_manages_its_organizations_tokens_only(service: Service) -> None:
    service.ensure_org("acme-tokens")
    service.ensure_org("globex-tokens")
    acme = create(service, name="acme owner", role="owner", org="acme-tokens")["token"]
    other = create(service, name="globex viewer", role="viewer", org="globex-tokens")
    with client(service, acme) as owner:
        made = owner.post("/api/v1/tokens", json={"name": "acme app", "role": "ingest"})
        assert made.status_code == 201 and made.json()["org"] == "acme-tokens", made.text
        listed = owner.get("/api/v1/tokens").json()["tokens"]
        assert {t["org"] for t in listed} == {"acme-tokens"}
        assert other["id"] not in {t["id"] for t in listed}
        assert owner.delete(f"/api/v1/tokens/{other['id']}").status_code == 404, "not even whether it exists"
        assert owner.post(f"/api/v1/tokens/{other['id']}/rotate").status_code == 404
        admin = owner.post("/api/v1/tokens", json={"name": "x", "role": "admin"})
        assert admin.status_code == 403 and "admin" in admin.json()["detail"]
        elsewhere = owner.post("/api/v1/tokens", json={"name": "x", "role": "viewer", "org": "globex-tokens"})
        assert elsewhere.status_code == 403
    with service.admin() as admin:
        assert admin.post("/api/v1/tokens", json={"name": "x", "role": "owner"}).status_code == 422
        assert (
            admin.post("/api/v1/tokens", json={"name": "x", "role": "admin", "org": "a"}).status_code == 422
        )


def test_token_changes_are_audit_events_without_secrets(service: Service) -> None:
    made = create(service, name="audited", role="viewer")
    with service.admin() as admin:
        admin.delete(f"/api/v1/tokens/{made['id']}")
        page = admin.get("/api/v1/events", params={"action": "audit_stream.token.*", "limit": 1000}).json()
    mine = [e for e in page["events"] if e["event"]["entity"]["id"] == made["id"]]
    assert [e["event"]["action"] for e in mine] == ["audit_stream.token.create", "audit_stream.token.revoke"]
    assert all(made["token"] not in str(e) for e in mine)
    assert mine[0]["event"]["details"]["token"]["prefix"] == made["prefix"]
    assert mine[0]["token_id"] is not None, "the acting token is recorded"


def test_every_stored_event_names_the_token_that_sent_it(service: Service, namespace: str) -> None:
    sender = create(service, name="provenance", role="ingest")
    event = in_ns(namespace)
    with client(service, sender["token"]) as c:
        assert c.post("/api/v1/events", json=event).status_code == 202
    with service.admin() as admin:
        page = admin.get("/api/v1/events", params={"limit": 1000, "after": 0}).json()
        while not any(e["event"]["id"] == event["id"] for e in page["events"]):
            page = admin.get("/api/v1/events", params={"limit": 1000, "after": page["next_after"]}).json()
            assert page["events"], "the event is stored"
    stored = next(e for e in page["events"] if e["event"]["id"] == event["id"])
    assert stored["token_id"] == sender["id"]


def test_producers_cannot_write_the_relays_own_audit_trail(service: Service) -> None:
    forged = make_event(action="audit_stream.destination.delete")
    with service.ingest() as c:
        response = c.post("/api/v1/events", json=[make_event(), forged])
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["index"] == 1 and error["field"] == "action" and "reserved" in error["message"]


def cli(service: Service, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditrelay", "token", *args],
        env=service.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
    )


def test_the_cli_creates_lists_and_revokes_tokens(service: Service) -> None:
    created = cli(service, "create", "--role", "viewer", "--name", "from the cli", "--expires-in", "30d")
    secret = created.stdout.strip()
    assert secret.startswith("ar_viewer_") and "\n" not in secret, "the token alone on stdout"
    listing = cli(service, "list").stdout
    assert "from the cli" in listing and secret not in listing
    line = next(line for line in listing.splitlines() if "from the cli" in line)
    token_id = line.split()[0]
    assert statuses(service, secret, "/api/v1/destinations", times=2) == {200}
    revoked = cli(service, "revoke", token_id)
    assert revoked.stdout.startswith(f"revoked {token_id}")
    assert statuses(service, secret, "/api/v1/destinations") == {401}
    assert cli(service, "revoke", "no-such-id", check=False).returncode != 0
    owner_without_org = cli(service, "create", "--role", "owner", check=False)
    assert owner_without_org.returncode != 0 and "--org" in owner_without_org.stderr


def test_metrics_need_a_readers_token_and_show_only_what_it_may_see(service: Service) -> None:
    assert httpx.get(service.base_url + "/metrics").status_code == 401
    with service.ingest() as c:
        assert c.get("/metrics").status_code == 403
    service.ensure_org("metrics-org")
    owner = create(service, name="metrics owner", role="owner", org="metrics-org")["token"]
    with client(service, owner) as c:
        mine = c.post(
            "/api/v1/destinations", json={"name": "m", "kind": "http", "url": "http://127.0.0.1:9/"}
        )
        assert mine.status_code == 201, mine.text
        theirs = service.add_destination(name="instance-only", kind="http", url="http://127.0.0.1:9/")
        try:
            scoped = c.get("/metrics")
            assert scoped.status_code == 200
            assert f'destination="{mine.json()["id"]}"' in scoped.text
            assert theirs["id"] not in scoped.text, "another scope's destinations stay hidden"
            assert "auditrelay_events_ingested_total" not in scoped.text, (
                "instance counters are the instance's"
            )
            with service.admin() as admin:
                everything = admin.get("/metrics").text
            assert theirs["id"] in everything and "auditrelay_events_ingested_total" in everything
        finally:
            service.delete_destination(theirs["id"])
            c.delete(f"/api/v1/destinations/{mine.json()['id']}")
