"""Organization scope: org tokens write their org's events; an org's owner sees and manages
only its org's destinations, which receive only that org's events."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.support import ROOT, Receiver, Service, make_event, wait_until


def token(service: Service, role: str, org: str | None = None) -> str:
    args = [sys.executable, "-m", "auditrelay", "token", "create", "--role", role]
    if org:
        args += ["--org", org]
    done = subprocess.run(args, env=service.env(), cwd=ROOT, capture_output=True, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "the token alone on stdout, for scripts"
    return lines[0]


def test_org_tokens_scope_events_and_destinations(fresh_service: Service) -> None:
    service = fresh_service.start()
    for name in ("acme", "globex"):
        made = subprocess.run(
            [sys.executable, "-m", "auditrelay", "org", "create", name],
            env=service.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert made.stdout.strip() == name
    acme_admin, acme_ingest = token(service, "owner", "acme"), token(service, "ingest", "acme")
    globex_ingest = token(service, "ingest", "globex")
    acme_sink, instance_sink = Receiver(), Receiver()
    try:
        instance = service.add_destination(
            name="all", kind="http", url=instance_sink.url, event_types=["document.*"]
        )
        with httpx.Client(
            base_url=service.base_url, headers={"Authorization": f"Bearer {acme_admin}"}
        ) as acme:
            # An owner cannot place a destination in another org: 403, nothing created.
            elsewhere = acme.post(
                "/api/v1/destinations",
                json={"name": "x", "kind": "http", "url": acme_sink.url, "org": "globex"},
            )
            assert elsewhere.status_code == 403, elsewhere.text
            created = acme.post(
                "/api/v1/destinations",
                json={"name": "acme", "kind": "http", "url": acme_sink.url, "event_types": ["document.*"]},
            )
            assert created.status_code == 201, created.text
            assert created.json()["org"] == "acme"
            listed = [d["id"] for d in acme.get("/api/v1/destinations").json()["destinations"]]
            assert listed == [created.json()["id"]]
            assert acme.get(f"/api/v1/destinations/{instance['id']}").status_code == 404
            assert acme.delete(f"/api/v1/destinations/{instance['id']}").status_code == 404
        acme_event, globex_event = make_event(), make_event()
        for secret, event in ((acme_ingest, acme_event), (globex_ingest, globex_event)):
            response = httpx.post(
                service.base_url + "/api/v1/events", json=event, headers={"Authorization": f"Bearer {secret}"}
            )
            assert response.status_code == 202
        wait_until(lambda: len(instance_sink.events()) >= 2 and acme_sink.events(), what="scoped delivery")
        assert [e["id"] for e in acme_sink.events()] == [acme_event["id"]]
        assert {e["id"] for e in instance_sink.events()} == {acme_event["id"], globex_event["id"]}
        with httpx.Client(
            base_url=service.base_url, headers={"Authorization": f"Bearer {acme_admin}"}
        ) as acme:
            seen = [
                e["event"]["id"] for e in acme.get("/api/v1/events", params={"limit": 1000}).json()["events"]
            ]
        assert globex_event["id"] not in seen and acme_event["id"] in seen
    finally:
        acme_sink.close()
        instance_sink.close()
