"""Secrets stay in (over the real service): what a destination answers never brings a
secret back out (a Sumo Logic source URL repeated in a redirect's Location or an error body),
URLs are shown without their query strings, audit events say a secret changed
and show none of its characters, and headers named like credentials are secret by default."""

from __future__ import annotations

from typing import Any

from tests.support import Receiver, Service, SumoReceiver, make_event, wait_until

SUMO_CODE = "ZaVnC4dhaV1-SUMOSECRETCODE-4rk8Lq0M"


def audit_events(service: Service, destination_id: str) -> list[dict[str, Any]]:
    with service.admin() as admin:
        found = admin.get("/api/v1/events", params={"action": "audit_stream.destination.*", "limit": 1000})
    return [e["event"] for e in found.json()["events"] if e["event"]["entity"]["id"] == destination_id]


def test_a_sumo_source_repeating_its_url_does_not_leak_it(service: Service, sumo: SumoReceiver) -> None:
    url = sumo.url + "/receiver/v1/http/" + SUMO_CODE
    sumo.answer_with(
        301,
        {"Location": url + "?moved=1"},
        f"<html>moved to {url}; code {SUMO_CODE}</html>".encode(),
    )
    destination = service.add_destination(name="sumo", kind="sumo_logic", url=url, namespaces=["leak/test"])
    try:
        service.send(make_event(entity={"type": "project", "id": 1, "path": "leak/test"}))
        with service.admin() as admin:

            def failed() -> bool:
                status = admin.get(f"/api/v1/destinations/{destination['id']}").json()["status"]
                return status["last_error"] is not None

            wait_until(failed, what="the redirect recorded as a failure")
            seen = [
                admin.get(f"/api/v1/destinations/{destination['id']}").text,
                admin.get(f"/api/v1/destinations/{destination['id']}/deliveries").text,
                admin.post(f"/api/v1/destinations/{destination['id']}/test").text,
                admin.get("/api/v1/destinations").text,
            ]
        for text in seen:
            assert SUMO_CODE not in text, text
        assert "********" in seen[2], "the test answer shows what came back, masked"
        tested = [
            e
            for e in audit_events(service, destination["id"])
            if e["action"] == "audit_stream.destination.tested"
        ]
        assert tested and tested[-1]["details"]["delivered"] is False
        assert tested[-1]["details"]["status_code"] == 301
        assert tested[-1]["actor"]["token"]["name"] == "initial admin token", "the test is audited"
    finally:
        sumo.answer_normally()
        service.delete_destination(destination["id"])


def test_urls_lose_their_query_and_audit_events_no_secret_characters(
    service: Service, receiver: Receiver
) -> None:
    url = receiver.url + "/in?api_key=QUERYSECRET-5678"
    destination = service.add_destination(
        name="q",
        kind="http",
        url=url,
        active=False,
        headers=[{"name": "X-Shared", "value": "HEADERSECRET-ABCD", "secret": True}],
    )
    with service.admin() as admin:
        shown = admin.get(f"/api/v1/destinations/{destination['id']}").json()
        assert shown["url"] == receiver.url + "/in?********"
        changed = admin.patch(
            f"/api/v1/destinations/{destination['id']}",
            json={
                "url": url.replace("QUERYSECRET-5678", "QUERYSECRET-9999"),
                "headers": [{"name": "X-Shared", "value": "HEADERSECRET-WXYZ", "secret": True}],
            },
        )
        assert changed.status_code == 200, changed.text
    trail = audit_events(service, destination["id"])
    text = str(trail)
    for secret in ("QUERYSECRET", "HEADERSECRET", "ABCD", "WXYZ", "5678", "9999"):
        assert secret not in text, f"{secret} in {text}"
    update = next(e for e in trail if e["action"] == "audit_stream.destination.update")
    assert update["details"]["changes"]["url"] == "changed"
    assert update["details"]["changes"]["secret_header_values"] == "changed"
    service.delete_destination(destination["id"])


def test_credential_headers_are_secret_unless_said_otherwise(service: Service, receiver: Receiver) -> None:
    destination = service.add_destination(
        name="creds",
        kind="http",
        url=receiver.url,
        active=False,
        headers=[
            {"name": "Authorization", "value": "Bearer CUSTOM-AUTH-0001"},
            {"name": "X-Api-Key", "value": "APIKEY-0002-XXXX"},
            {"name": "X-Env", "value": "production"},
            {"name": "X-Public-Token", "value": "not-really-secret", "secret": False},
        ],
    )
    try:
        headers = {h["name"]: h for h in destination["headers"]}
        assert headers["Authorization"]["secret"] and "CUSTOM-AUTH" not in headers["Authorization"]["value"]
        assert headers["X-Api-Key"]["secret"]
        assert not headers["X-Env"]["secret"] and headers["X-Env"]["value"] == "production"
        assert not headers["X-Public-Token"]["secret"], "an explicit choice is kept"
        with service.admin() as admin:
            assert "CUSTOM-AUTH-0001" not in admin.get("/api/v1/destinations").text
    finally:
        service.delete_destination(destination["id"])
