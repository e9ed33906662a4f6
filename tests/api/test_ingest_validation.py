"""Ingest's answers to bad input, in-process: every error named, nothing stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.api.conftest import Api
from tests.support import make_event

pytestmark = pytest.mark.anyio


async def test_one_invalid_event_rejects_the_whole_request_with_every_error(api: Api) -> None:
    before = await api.head()
    good = make_event()
    bad_type = make_event(action=42)
    unknown = make_event(color="blue")
    bad_actor = make_event(actor={"type": "robot"})
    response = await api.ingest("POST", "/api/v1/events", json=[good, bad_type, unknown, bad_actor])
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert {"index": 1, "field": "action", "message": "must be a string, not a number"} in errors
    assert any(e["index"] == 2 and e["field"] == "color" and "unknown field" in e["message"] for e in errors)
    assert any(e["index"] == 3 and e["field"] == "actor.type" for e in errors)
    assert all(e["index"] != 0 for e in errors)
    assert await api.head() == before, "nothing of a rejected request may be stored"


async def test_wrong_types_in_nested_fields_are_named_precisely(api: Api) -> None:
    cases = {
        "id": make_event(id="not-a-uuid"),
        "timestamp": make_event(timestamp="yesterday"),
        "context.ip_address": make_event(context={"ip_address": "999.1.1.1"}),
        "entity.path": make_event(entity={"type": "project", "path": 7}),
        "actor.user": make_event(actor={"type": "user"}),
    }
    for field, event in cases.items():
        response = await api.ingest("POST", "/api/v1/events", json=event)
        assert response.status_code == 422, (field, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field], response.text
    response = await api.ingest("POST", "/api/v1/events", json=[1, "x"])
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"] == "an event must be a JSON object, not a number"


async def test_malformed_json_is_400_with_the_position(api: Api) -> None:
    before = await api.head()
    response = await api.ingest(
        "POST", "/api/v1/events", content=b'{"action": "x",', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]
    response = await api.ingest(
        "POST",
        "/api/v1/events",
        content=json.dumps(make_event()).encode() + b"\n{broken\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 400
    assert "line 2" in response.json()["detail"]
    response = await api.ingest(
        "POST", "/api/v1/events", content=b"", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    response = await api.ingest(
        "POST",
        "/api/v1/events",
        content=b"a=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert await api.head() == before


async def test_too_many_events_or_bytes_are_413_and_nothing_stored(api: Api) -> None:
    before = await api.head()
    response = await api.ingest("POST", "/api/v1/events", json=[make_event() for _ in range(1001)])
    assert response.status_code == 413
    assert "1000 events" in response.json()["detail"]
    huge = make_event(details={"blob": "x" * (5 * 1024 * 1024)})
    response = await api.ingest("POST", "/api/v1/events", json=huge)
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[
        bytes
    ]:  # no Content-Length: the limit must hold on a streamed body too
        yield b'{"action":"document.create","actor":{"type":"system"},"details":"'
        for _ in range(6):
            yield b"y" * (1024 * 1024)
        yield b'"}'

    response = await api.ingest(
        "POST", "/api/v1/events", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert await api.head() == before


async def test_an_event_over_the_per_event_limit_is_413_naming_it_and_nothing_is_stored(api: Api) -> None:
    before = await api.head()
    small = make_event()
    big = make_event(details={"blob": "x" * (1024 * 1024)})  # 1 MiB of details: over the 1 MiB limit
    response = await api.ingest("POST", "/api/v1/events", json=[small, big, small | {"id": None}])
    assert response.status_code == 413, response.text
    problem = response.json()
    assert problem["detail"] == "1 event larger than 1048576 bytes; nothing was stored"
    (error,) = problem["errors"]
    assert error["index"] == 1 and "at most 1048576 are accepted" in error["message"]
    assert await api.head() == before
    # Just under the limit is accepted.
    fits = make_event(details={"blob": "x" * (1024 * 1024 - 1024)})
    assert (await api.ingest("POST", "/api/v1/events", json=fits)).status_code == 202


async def test_missing_wrong_and_misused_tokens_are_refused(api: Api) -> None:
    event = make_event()
    client = api.client
    response = await client.post("/api/v1/events", json=event)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    response = await client.post("/api/v1/events", json=event, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()["detail"] == "the token is unknown, revoked or expired"
    response = await client.post(
        "/api/v1/events", json=event, headers={"Authorization": f"Basic {api.ingest_token}"}
    )
    assert response.status_code == 401
    response = await client.post("/api/v1/events", json=event, headers=api.as_admin())
    assert response.status_code == 403
    for method, path in (
        ("GET", "/api/v1/destinations"),
        ("POST", "/api/v1/destinations"),
        ("GET", "/api/v1/events"),
        ("DELETE", "/api/v1/destinations/x"),
    ):
        response = await api.ingest(method, path)
        assert response.status_code == 403, (method, path)
        assert "ingest tokens can only send events" in response.json()["detail"]


async def test_a_trailing_newline_is_refused_naming_the_field(api: Api) -> None:
    """`$` in a Python pattern matches before a final newline: every pattern must match the
    whole value, or "<uuid>\\n" slips past de-duplication and "document.create\\n" past exact
    event-type filters."""
    before = await api.head()
    event_id = "806ed0d9-7d25-4df2-9a6c-f7d2f6b8dba6"
    cases = {
        "id": make_event(id=event_id + "\n"),
        "action": make_event(action="document.create\n"),
        "timestamp": make_event(timestamp="2024-11-13T06:00:51.518Z\n"),
        "context.ip_address": make_event(context={"ip_address": "39.139.42.243\n"}),
    }
    for field, event in cases.items():
        response = await api.ingest("POST", "/api/v1/events", json=event)
        assert response.status_code == 422, (field, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field], response.text
    assert await api.head() == before


@pytest.mark.parametrize(
    "timestamp",
    [
        "9999-12-31T23:59:59-01:00",  # the year 10000 in UTC
        "0001-01-01T00:00:00+01:00",  # the year 0 in UTC
        "1969-12-31T23:59:59.999Z",
        "1970-01-01T00:30:00+01:00",
    ],
)
async def test_a_timestamp_out_of_range_in_utc_is_422_on_the_timestamp(api: Api, timestamp: str) -> None:
    before = await api.head()
    response = await api.ingest("POST", "/api/v1/events", json=make_event(timestamp=timestamp))
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "timestamp"
    assert "between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z" in error["message"]
    assert await api.head() == before


async def test_the_ends_of_the_timestamp_range_are_accepted(api: Api) -> None:
    for timestamp in ("1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59+00:00"):
        response = await api.ingest("POST", "/api/v1/events", json=make_event(timestamp=timestamp))
        assert response.status_code == 202, (timestamp, response.text)


def _nested_details(depth: int) -> bytes:
    """An event whose `details` is `depth` arrays deep (the event's own depth one more)."""
    return b'{"action":"document.create","actor":{"type":"system"},"details":%s}' % (
        b"[" * depth + b"]" * depth
    )


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
async def test_nesting_too_deep_is_a_4xx_never_a_500(api: Api, content_type: str) -> None:
    before = await api.head()
    headers = {"Content-Type": content_type}
    # 64 levels counting the event: accepted.
    response = await api.ingest("POST", "/api/v1/events", content=_nested_details(63), headers=headers)
    assert response.status_code == 202, response.text
    after = await api.head()
    # Deeper, up to what the JSON parser reads (orjson: 1024) and past what it writes (255):
    # 422 on the field.
    for depth in (64, 300, 1000):
        response = await api.ingest("POST", "/api/v1/events", content=_nested_details(depth), headers=headers)
        assert response.status_code == 422, (depth, response.text)
        (error,) = response.json()["errors"]
        assert error["field"] == "details"
        assert "more than 64 levels deep" in error["message"]
    # Deeper than the parser reads: 400, not valid JSON for us.
    response = await api.ingest("POST", "/api/v1/events", content=_nested_details(5000), headers=headers)
    assert response.status_code == 400, response.text
    assert "not valid JSON" in response.json()["detail"]
    assert after == before + 1 and await api.head() == after


async def test_thousands_of_unknown_keys_get_a_small_answer_that_says_what_is_wrong(api: Api) -> None:
    """A 422 does not amplify: the first 100 errors, one entry counting the rest, echoed keys
    cut short, and the allowed fields named once, in the detail."""
    before = await api.head()
    unknown = {f"{'k' * 100}{i:05d}": i for i in range(4000)}
    body = json.dumps([make_event(**unknown), make_event(), make_event(action="Bad Action")]).encode()
    assert len(body) > 400_000
    response = await api.ingest(
        "POST", "/api/v1/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text[:500]
    assert len(response.content) < 20_000, len(response.content)
    problem = response.json()
    assert problem["detail"].startswith("2 of 3 events invalid; nothing was stored")
    assert "the fields of an event are id, org, action, actor" in problem["detail"]
    errors = problem["errors"]
    assert len(errors) == 101
    assert all(e["index"] == 0 and e["message"] == "unknown field" for e in errors[:100])
    assert all(len(e["field"]) <= 60 and e["field"].startswith("kkkk") for e in errors[:100])
    assert errors[100] == {"field": "", "message": "and 3901 more errors, not listed"}
    assert await api.head() == before


async def test_a_few_errors_are_listed_whole(api: Api) -> None:
    response = await api.ingest("POST", "/api/v1/events", json=make_event(color="blue", size=3))
    assert response.status_code == 422
    assert [(e["field"], e["message"]) for e in response.json()["errors"]] == [
        ("color", "unknown field"),
        ("size", "unknown field"),
    ]
