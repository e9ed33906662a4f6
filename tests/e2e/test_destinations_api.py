"""Managing destinations: settings, masking, immutability, secrets at rest. The answers to
bad settings and bad requests are checked in-process, in tests/api/test_destination_validation.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from tests.support import Receiver, Service, make_event, wait_until

AddDestination = Callable[..., dict[str, Any]]


def test_create_returns_settings_masked_secrets_and_status(
    service: Service, add_destination: AddDestination, receiver: Receiver
) -> None:
    created = add_destination(
        name="SIEM",
        kind="http",
        url=receiver.url + "/hook",
        token="Bearer very-secret-token-1234",
        headers=[
            {"name": "X-Team", "value": "security"},
            {"name": "X-Api-Key", "value": "key-abcdef-9876", "secret": True},
        ],
        event_types=["document.*", "user.login"],
        namespaces=["acme/web"],
        content_type="application/json; charset=utf-8",
    )
    assert created["name"] == "SIEM" and created["kind"] == "http" and created["active"] is True
    assert created["token"] == "********1234"
    assert created["headers"] == [
        {"name": "X-Team", "value": "security", "secret": False},
        {"name": "X-Api-Key", "value": "********9876", "secret": True},
    ]
    assert created["filtered"] is True
    assert len(created["verification_token"]) >= 16
    status = created["status"]
    # Nothing delivered yet: pending, not healthy.
    assert status["state"] == "pending" and status["last_error"] is None
    assert status["delivered_total"] == 0 and status["consecutive_failures"] == 0
    fetched = service.destination(created["id"])
    assert fetched["verification_token"] == created["verification_token"]
    with service.admin() as client:
        listed = client.get("/api/v1/destinations").json()["destinations"]
    assert created["id"] in [d["id"] for d in listed]
    assert "very-secret-token" not in str(listed) and "key-abcdef" not in str(listed)


def test_sumo_url_is_a_secret_and_never_returned_whole(
    service: Service, add_destination: AddDestination, sumo: Receiver
) -> None:
    url = sumo.url + "/receiver/v1/http/ZaVnC4dhaV0Jdaa6trtGtxSkJtAVfV7TzNw=="
    created = add_destination(name="sumo", kind="sumo_logic", url=url)
    assert "ZaVnC4dhaV0Jdaa6" not in created["url"]
    assert created["url"].endswith("Nw==") and "****" in created["url"]
    with service.admin() as client:
        response = client.post(
            "/api/v1/destinations", json={"name": "s", "kind": "sumo_logic", "url": url, "token": "x"}
        )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "token"


def test_a_given_verification_token_is_kept_and_can_never_change(
    service: Service, add_destination: AddDestination, receiver: Receiver
) -> None:
    created = add_destination(
        name="v", kind="http", url=receiver.url, verification_token="my-own-token-0123456789"
    )
    assert created["verification_token"] == "my-own-token-0123456789"
    with service.admin() as client:
        response = client.patch(
            f"/api/v1/destinations/{created['id']}", json={"verification_token": "another-token-0123456"}
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "verification_token"
        assert "never changes" in response.json()["errors"][0]["message"]
        response = client.post(
            "/api/v1/destinations",
            json={"name": "v", "kind": "http", "url": receiver.url, "verification_token": "short"},
        )
        assert response.status_code == 422
    assert service.destination(created["id"])["verification_token"] == "my-own-token-0123456789"


def test_patch_changes_settings_keeps_secrets_and_records_an_audit_event(
    service: Service, add_destination: AddDestination, receiver: Receiver
) -> None:
    created = add_destination(
        name="before",
        kind="http",
        url=receiver.url,
        token="tok-0000-1111-2222",
        headers=[{"name": "X-Key", "value": "hidden-value-5555", "secret": True}],
    )
    with service.admin() as client:
        response = client.patch(
            f"/api/v1/destinations/{created['id']}",
            json={
                "name": "after",
                "event_types": ["user.*"],
                # A secret header sent back without its value keeps the stored value.
                "headers": [{"name": "X-Key", "secret": True}, {"name": "X-New", "value": "1"}],
            },
        )
        assert response.status_code == 200, response.text
        updated = response.json()
        assert updated["name"] == "after" and updated["event_types"] == ["user.*"]
        assert updated["token"] == "********2222"
        assert updated["headers"][0] == {"name": "X-Key", "value": "********5555", "secret": True}
        events = client.get(
            "/api/v1/events", params={"action": "audit_stream.destination.*", "limit": 1000}
        ).json()
    # The admin's own changes (the delivery's health events are about the same destination).
    mine = [
        e["event"]
        for e in events["events"]
        if e["event"]["entity"]["id"] == created["id"]
        and e["event"]["action"] != "audit_stream.destination.health"
    ]
    assert [e["action"] for e in mine] == [
        "audit_stream.destination.create",
        "audit_stream.destination.update",
    ]
    changes = mine[1]["details"]["changes"]
    assert changes["name"] == {"from": "before", "to": "after"}
    assert "hidden-value" not in str(mine) and "tok-0000" not in str(mine)


def test_delete_is_204_then_404_and_audited(service: Service, receiver: Receiver) -> None:
    created = service.add_destination(name="gone", kind="http", url=receiver.url)
    with service.admin() as client:
        assert client.delete(f"/api/v1/destinations/{created['id']}").status_code == 204
        assert client.get(f"/api/v1/destinations/{created['id']}").status_code == 404
        assert client.delete(f"/api/v1/destinations/{created['id']}").status_code == 404
        events = client.get(
            "/api/v1/events", params={"action": "audit_stream.destination.delete", "limit": 1000}
        )
    assert created["id"] in [e["event"]["entity"]["id"] for e in events.json()["events"]]


def test_test_endpoint_sends_one_event_and_reports_the_answer(
    service: Service, add_destination: AddDestination, hec: Any
) -> None:
    good = add_destination(name="hec", kind="splunk_hec", url=hec.url, token=hec.token)
    bad = add_destination(name="hec-bad", kind="splunk_hec", url=hec.url, token="wrong-token")
    with service.admin() as client:
        result = client.post(f"/api/v1/destinations/{good['id']}/test").json()
        assert result["delivered"] is True and result["status_code"] == 200
        assert '"code": 0' in result["response_body"]
        result = client.post(f"/api/v1/destinations/{bad['id']}/test").json()
        assert result["delivered"] is False and result["status_code"] == 403
        assert result["outcome"] == "unauthorized" and "Invalid token" in result["message"]
    tests = [e for e in hec.events() if e["action"] == "audit_stream.destination.test"]
    assert len(tests) == 1 and tests[0]["details"]["destination"]["id"] == good["id"]


def test_destination_changes_are_streamed_like_any_event(
    service: Service, add_destination: AddDestination, receiver: Receiver
) -> None:
    # Ordered: the order of the audit events is under test.
    watcher = add_destination(
        name="watcher",
        kind="http",
        url=receiver.url,
        event_types=["audit_stream.*"],
        delivery={"ordered": True},
    )
    other = service.add_destination(
        name="other", kind="http", url=receiver.url + "/x", event_types=["none.*"]
    )
    with service.admin() as client:
        client.post(f"/api/v1/destinations/{other['id']}/pause")
        client.post(f"/api/v1/destinations/{other['id']}/resume")
        client.delete(f"/api/v1/destinations/{other['id']}")

    def actions() -> list[str]:
        return [e["action"] for e in receiver.events() if e.get("entity", {}).get("id") == other["id"]]

    expected = ["create", "pause", "resume", "delete"]
    wait_until(lambda: len(actions()) >= 4, what="four audit events")
    assert actions() == [f"audit_stream.destination.{verb}" for verb in expected]
    assert receiver.requests[0].header("x-auditrelay-streaming-token") == watcher["verification_token"]


def test_events_are_not_sent_to_a_destination_of_another_test(service: Service, receiver: Receiver) -> None:
    # Sanity of the shared-service setup: a namespace filter keeps other tests' events out.
    destination = service.add_destination(
        name="ns", kind="http", url=receiver.url, namespaces=["nobody/else"]
    )
    try:
        service.send(make_event(entity={"type": "project", "id": 1, "path": "someone/else"}))
        service.send(make_event(entity={"type": "project", "id": 2, "path": "nobody/else/x"}))
        wait_until(lambda: receiver.events(), what="one event")
        assert [e["entity"]["path"] for e in receiver.events()] == ["nobody/else/x"]
    finally:
        service.delete_destination(destination["id"])


def test_a_new_host_or_kind_gets_the_stored_secrets_only_when_given_again(
    service: Service, receiver: Receiver
) -> None:
    """The issue's case: a PATCH of a splunk_hec destination's URL alone kept the token, and a
    following /test sent `Authorization: Splunk <token>` to the new host."""
    hec = service.add_destination(
        name="moving",
        kind="splunk_hec",
        url=receiver.url,
        token="Splunk HECTOKEN-STAYS-HOME",
        headers=[{"name": "X-Secret", "value": "HEADER-STAYS-HOME", "secret": True}],
    )
    elsewhere = Receiver()
    try:
        with service.admin() as client:
            moved = client.patch(f"/api/v1/destinations/{hec['id']}", json={"url": elsewhere.url + "/x"})
            assert moved.status_code == 422, moved.text
            assert {e["field"] for e in moved.json()["errors"]} == {"token", "headers"}
            # Only the path changes: same place, the secrets stay.
            same = client.patch(f"/api/v1/destinations/{hec['id']}", json={"url": receiver.url + "/services"})
            assert same.status_code == 200, same.text
            # Given again (or removed), they go with it.
            moved = client.patch(
                f"/api/v1/destinations/{hec['id']}",
                json={"url": elsewhere.url, "token": "Splunk NEW-TOKEN-0001", "headers": []},
            )
            assert moved.status_code == 200, moved.text
            assert client.post(f"/api/v1/destinations/{hec['id']}/test").status_code in (200, 502)
        wait_until(lambda: elsewhere.requests, what="the test request at the new host")
        sent = elsewhere.requests[0]
        assert sent.header("authorization") == "Splunk NEW-TOKEN-0001"
        assert sent.header("x-secret") is None
        assert b"HECTOKEN-STAYS-HOME" not in sent.body
    finally:
        elsewhere.close()
        service.delete_destination(hec["id"])


def test_secrets_never_leave_in_answers_audit_events_or_the_database(
    fresh_service: Service, receiver: Receiver
) -> None:
    service = fresh_service.start()
    sumo_url = receiver.url + "/receiver/v1/http/SUMOSECRETCODE0123456789"
    created = service.add_destination(
        name="s",
        kind="sumo_logic",
        url=sumo_url,
        headers=[{"name": "X-Key", "value": "HEADERSECRET-98765", "secret": True}],
    )
    hec = service.add_destination(name="h", kind="splunk_hec", url=receiver.url, token="HECTOKENSECRET-4242")
    with service.admin() as client:
        # Leaving sumo_logic needs a new URL; the old one stays masked in the audit event.
        response = client.patch(f"/api/v1/destinations/{created['id']}", json={"kind": "http"})
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "url"
        # The secret header does not follow to the new kind unless given again.
        response = client.patch(
            f"/api/v1/destinations/{created['id']}", json={"kind": "http", "url": receiver.url + "/plain"}
        )
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "headers"
        response = client.patch(
            f"/api/v1/destinations/{created['id']}",
            json={
                "kind": "http",
                "url": receiver.url + "/plain",
                "headers": [{"name": "X-Key", "value": "HEADERSECRET-98765", "secret": True}],
            },
        )
        assert response.status_code == 200, response.text
        seen = [
            client.get("/api/v1/destinations").text,
            client.get(f"/api/v1/destinations/{hec['id']}").text,
            response.text,
            client.get("/api/v1/events", params={"limit": 1000}).text,
        ]
    for text in seen:
        for secret in ("SUMOSECRETCODE", "HEADERSECRET", "HECTOKENSECRET"):
            assert secret not in text
    service.stop()
    secrets = (b"SUMOSECRETCODE", b"HEADERSECRET", b"HECTOKENSECRET")
    if not service.database_url:  # SQLite: every byte of the database and its journal files
        files = list(service.data_dir.glob("auditrelay.db*"))
        assert service.data_dir / "auditrelay.db" in files
        for path in files:
            raw = path.read_bytes()
            for secret in secrets:
                assert secret not in raw, f"{secret!r} stored in clear in {path.name}"
        return
    # PostgreSQL: the rows themselves, the destinations' secrets and config first, then
    # every value of every table.
    with psycopg.connect(service.database_url) as conn:
        rows = conn.execute("SELECT id, secrets, config FROM destinations").fetchall()
        assert {row[0] for row in rows} == {created["id"], hec["id"]}
        for destination_id, sealed, config in rows:
            assert sealed, f"no secrets stored for {destination_id}"
            for secret in secrets:
                assert secret not in bytes(sealed), f"{secret!r} in clear in destinations.secrets"
                assert secret.decode() not in config, f"{secret!r} in clear in destinations.config"
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        assert len(tables) > 1
        for (table,) in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
                    for secret in secrets:
                        assert secret not in raw, f"{secret!r} stored in clear in table {table}"


def test_patch_changing_kind_starts_from_the_new_kinds_options_and_empty_patch_changes_nothing(
    service: Service, add_destination: AddDestination, receiver: Receiver
) -> None:
    created = add_destination(
        name="k", kind="http", url=receiver.url, event_types=["never.*"], options={"batch_format": "ndjson"}
    )
    with service.admin() as client:
        response = client.patch(
            f"/api/v1/destinations/{created['id']}", json={"kind": "splunk_hec", "token": "t-1"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["options"]["sourcetype"] == "auditrelay:event"
        before = client.get(f"/api/v1/destinations/{created['id']}").json()
        same = client.patch(
            f"/api/v1/destinations/{created['id']}",
            json={"name": "k", "verification_token": before["verification_token"]},
        )
        assert same.status_code == 200, same.text
        assert same.json()["updated_at"] == before["updated_at"]
        updates = client.get(
            "/api/v1/events", params={"action": "audit_stream.destination.update", "limit": 1000}
        )
    mine = [e for e in updates.json()["events"] if e["event"]["entity"]["id"] == created["id"]]
    assert len(mine) == 1, "an empty change is not an audited change"


def test_a_masked_value_sent_back_in_a_patch_never_replaces_the_secret(
    service: Service, add_destination: AddDestination, receiver: Receiver
) -> None:
    created = add_destination(
        name="m", kind="http", url=receiver.url, token="real-token-123456789", event_types=["never.*"]
    )
    with service.admin() as client:
        for body in ({"token": created["token"]}, {"url": "http://127.0.0.1/********abcd"}):
            response = client.patch(f"/api/v1/destinations/{created['id']}", json=body)
            assert response.status_code == 422, response.text
    assert service.destination(created["id"])["token"] == "********6789"
