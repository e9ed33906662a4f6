"""Ingest over HTTP: the accepted forms, idempotency, browsing what was stored. The answers
to bad input are checked in-process, in tests/api/test_ingest_validation.py."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.support import Service, make_event


def browse(service: Service, **params: object) -> dict:
    with service.admin() as client:
        response = client.get("/api/v1/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def stored_ids(service: Service, after: int) -> list[str]:
    return [item["event"]["id"] for item in browse(service, after=after, limit=1000)["events"]]


def head(service: Service) -> int:
    return int(browse(service, limit=1)["head"])


def test_one_event_is_stored_and_answered_202_with_its_id(service: Service) -> None:
    before = head(service)
    event = make_event()
    result = service.send(event)
    assert result == {"accepted": 1, "ids": [event["id"]]}
    stored = browse(service, after=before)["events"]
    assert [item["event"] for item in stored] == [event]


def test_array_and_ndjson_bodies_are_accepted_in_order(service: Service) -> None:
    before = head(service)
    batch = [make_event(action=f"document.step{i}") for i in range(5)]
    assert service.send(batch)["ids"] == [e["id"] for e in batch]
    lines = [make_event() for _ in range(3)]
    with service.ingest() as client:
        response = client.post(
            "/api/v1/events",
            content="\n".join(json.dumps(e) for e in lines) + "\n",
            headers={"Content-Type": "application/x-ndjson"},
        )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 3
    assert stored_ids(service, before) == [e["id"] for e in batch + lines]


def test_missing_id_and_timestamp_are_filled_and_timestamp_normalised_to_utc_millis(service: Service) -> None:
    before = head(service)
    event = make_event(timestamp="2024-11-13T07:00:51+01:00")
    del event["id"]
    result = service.send(event)
    generated = result["ids"][0]
    assert uuid.UUID(generated)
    stored = browse(service, after=before)["events"][0]["event"]
    assert stored["id"] == generated
    assert stored["timestamp"] == "2024-11-13T06:00:51.000Z"
    no_time = make_event()
    del no_time["timestamp"]
    service.send(no_time)
    stamped = browse(service, after=before + 1)["events"][0]["event"]["timestamp"]
    assert stamped.endswith("Z") and len(stamped) == len("2024-11-13T06:00:51.518Z")


def test_resent_id_is_accepted_again_and_stored_once(service: Service) -> None:
    before = head(service)
    event = make_event()
    service.send(event)
    again = service.send([event, event, make_event()])
    assert again["accepted"] == 3
    ids = stored_ids(service, before)
    assert ids.count(event["id"]) == 1 and len(ids) == 2


def test_schema_is_served_and_equals_the_file_in_the_repo(service: Service) -> None:
    from pathlib import Path

    response = httpx.get(service.base_url + "/api/v1/schema/event")
    assert response.status_code == 200
    repo_file = Path(__file__).resolve().parents[2] / "src/auditrelay/schema/event.schema.json"
    assert response.json() == json.loads(repo_file.read_text())


def test_browse_filters_by_exact_and_prefix_action(service: Service) -> None:
    before = head(service)
    service.send(
        [make_event(action="user.login"), make_event(action="user.session.end"), make_event(action="doc.x")]
    )
    assert [e["event"]["action"] for e in browse(service, after=before, action="user.*")["events"]] == [
        "user.login",
        "user.session.end",
    ]
    assert [e["event"]["action"] for e in browse(service, after=before, action="doc.x")["events"]] == [
        "doc.x"
    ]
    with service.admin() as client:
        assert client.get("/api/v1/events", params={"action": "BAD ACTION"}).status_code == 422
        assert client.get("/api/v1/events", params={"limit": 0}).status_code == 422


def test_the_same_new_event_sent_concurrently_is_accepted_by_all_and_stored_once(service: Service) -> None:
    import threading

    before = head(service)
    event = make_event()
    answers: list[int] = []

    def send() -> None:
        with service.ingest() as client:
            answers.append(client.post("/api/v1/events", json=[event, make_event()]).status_code)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [202] * 12
    ids = stored_ids(service, before)
    assert ids.count(event["id"]) == 1 and len(ids) == 13
