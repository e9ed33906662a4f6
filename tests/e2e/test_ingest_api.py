"""Ingest over HTTP: the accepted forms, idempotency, browsing what was stored. The answers
to bad input are checked in-process, in tests/api/test_ingest_validation.py."""

from __future__ import annotations

import gzip
import json
import re
import time
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
    assert result == {"accepted": 1, "stored": 1, "ids": [event["id"]], "already_stored": []}
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
    assert again["accepted"] == 3 and again["stored"] == 1
    assert again["already_stored"] == [event["id"], event["id"]], "both copies were stored before"
    assert "conflicts" not in again, "the same event sent again is no conflict"
    ids = stored_ids(service, before)
    assert ids.count(event["id"]) == 1 and len(ids) == 2


def test_a_resent_event_without_a_timestamp_is_the_same_event_not_a_conflict(service: Service) -> None:
    event = make_event()
    del event["timestamp"]
    service.send(event)
    time.sleep(0.01)  # a later time of receipt
    again = service.send(event)
    assert again["already_stored"] == [event["id"]] and "conflicts" not in again


def test_an_id_resent_with_another_body_is_reported_as_a_conflict_and_the_stored_event_kept(
    service: Service,
) -> None:
    before = head(service)
    event = make_event(action="document.create")
    service.send(event)
    changed = {**event, "action": "document.delete"}
    fresh = make_event()
    answer = service.send([fresh, changed])
    assert answer["stored"] == 1 and answer["already_stored"] == [event["id"]]
    assert answer["conflicts"] == [
        {
            "id": event["id"],
            "index": 1,
            "message": "an event with this id is already stored, with a different body; "
            "the stored event is kept and this one was not stored",
        }
    ]
    stored = [item["event"] for item in browse(service, after=before)["events"]]
    assert stored == [event, fresh], "the first body is kept"
    with service.admin() as admin:
        metrics = admin.get("/metrics").text
    assert re.search(r"^auditrelay_events_conflicting_total [1-9]", metrics, re.M)


def test_a_gzip_body_is_inflated_and_stored(service: Service) -> None:
    before = head(service)
    batch = [make_event() for _ in range(20)]
    with service.ingest() as client:
        response = client.post(
            "/api/v1/events",
            content=gzip.compress(json.dumps(batch).encode()),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    assert response.status_code == 202, response.text
    assert stored_ids(service, before) == [e["id"] for e in batch]


def test_gzip_that_inflates_past_the_request_limit_is_413_and_stores_nothing(service: Service) -> None:
    before = head(service)
    # 64 MiB of spaces after an event: a few KB compressed, far past the 5 MiB limit inflated.
    bomb = gzip.compress(json.dumps(make_event()).encode() + b" " * (64 * 1024 * 1024))
    assert len(bomb) < 200_000
    with service.ingest() as client:
        response = client.post(
            "/api/v1/events",
            content=bomb,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    assert response.status_code == 413, response.text
    assert "inflates past" in response.json()["detail"]
    assert head(service) == before


def test_broken_gzip_is_400_and_another_encoding_is_415(service: Service) -> None:
    with service.ingest() as client:
        broken = client.post(
            "/api/v1/events",
            content=gzip.compress(json.dumps(make_event()).encode())[:-12],
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        brotli = client.post(
            "/api/v1/events",
            content=b"\x1b\x00",
            headers={"Content-Type": "application/json", "Content-Encoding": "br"},
        )
        not_gzip = client.post(
            "/api/v1/events",
            content=json.dumps(make_event()).encode(),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    assert broken.status_code == 400 and "gzip" in broken.json()["detail"], broken.text
    assert not_gzip.status_code == 400 and "not valid gzip" in not_gzip.json()["detail"], not_gzip.text
    assert brotli.status_code == 415 and "'br'" in brotli.json()["detail"], brotli.text


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
