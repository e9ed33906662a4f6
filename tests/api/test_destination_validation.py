"""The destinations API's answers to bad settings and bad requests, in-process: the field
named, problem JSON, nothing created."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.conftest import SOMEWHERE, Api

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"headers": [{"name": f"X-H{i}", "value": "v"} for i in range(21)]}, "headers"),
        ({"headers": [{"name": "X-Bad\r\nInjected", "value": "v"}]}, "headers.0.name"),
        ({"headers": [{"name": "X-Ok", "value": "v\r\nX-Injected: 1"}]}, "headers.0.value"),
        ({"headers": [{"name": "Bad Name", "value": "v"}]}, "headers.0.name"),
        # `$` matches before a final newline: every pattern must match the whole value.
        ({"headers": [{"name": "X-Ok\n", "value": "v"}]}, "headers.0.name"),
        ({"verification_token": "a" * 16 + "\n"}, "verification_token"),
        ({"event_types": ["document.create\n"]}, "event_types"),
        ({"content_type": "application/json\n"}, "content_type"),
        ({"content_type": "applicätion/json"}, "content_type"),
        ({"headers": [{"name": "Content-Length", "value": "1"}]}, "headers.0.name"),
        ({"headers": [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]}, "headers"),
        ({"event_types": ["Document Create"]}, "event_types"),
        ({"namespaces": ["  "]}, "namespaces"),
        ({"content_type": "not a type"}, "content_type"),
        ({"kind": "kafka"}, "kind"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "http://user:pw@127.0.0.1/x"}, "url"),
        ({"unknown": 1}, "unknown"),
        ({"options": {"batch_format": "xml"}}, "options.batch_format"),
        ({"batch": {"max_events": 0}}, "batch.max_events"),
    ],
)
async def test_bad_settings_are_422_naming_the_field(api: Api, settings: dict[str, Any], field: str) -> None:
    body = {"name": "bad", "kind": "http", "url": SOMEWHERE, **settings}
    before = await api.destination_count()
    response = await api.admin("POST", "/api/v1/destinations", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]], response.text
    assert await api.destination_count() == before


async def test_malformed_and_oversized_admin_bodies(api: Api) -> None:
    response = await api.admin(
        "POST", "/api/v1/destinations", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    response = await api.admin("POST", "/api/v1/destinations", json=[1, 2])
    assert response.status_code == 422
    response = await api.admin(
        "POST",
        "/api/v1/destinations",
        content=b'{"name":"' + b"x" * 400_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert (await api.admin("PATCH", "/api/v1/destinations/nope", json={"name": "x"})).status_code == 404
    assert (await api.admin("POST", "/api/v1/destinations/nope/pause")).status_code == 404


async def test_splunk_hec_needs_a_token(api: Api) -> None:
    response = await api.admin(
        "POST", "/api/v1/destinations", json={"name": "h", "kind": "splunk_hec", "url": SOMEWHERE}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "token"


async def test_private_destination_urls_are_refused_by_default(strict_api: Api) -> None:
    for url in (SOMEWHERE, "http://10.0.0.8/x", "http://169.254.169.254/latest", "http://[::1]:9/x"):
        response = await strict_api.admin(
            "POST", "/api/v1/destinations", json={"name": "p", "kind": "http", "url": url}
        )
        assert response.status_code == 422, url
        assert response.json()["errors"][0]["field"] == "url"
        assert "AUDITRELAY_ALLOW_PRIVATE_DESTINATIONS" in response.json()["errors"][0]["message"]
    assert await strict_api.destination_count() == 0


async def test_unknown_routes_and_methods_are_problem_json(api: Api) -> None:
    response = await api.client.get("/api/v1/nothing")
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    response = await api.client.put("/api/v1/events")
    assert response.status_code == 405


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"headers": [{"name": "X-Team", "value": "café"}]}, "headers.0.value"),
        ({"headers": [{"name": "Content-Type", "value": "text/plain"}]}, "headers.0.name"),
        ({"token": "t-1234567890", "headers": [{"name": "Authorization", "value": "x"}]}, "headers"),
        ({"token": "********abcd"}, "token"),
        ({"token": "   "}, "token"),
        ({"url": "http://127.0.0.1/********abcd"}, "url"),
    ],
)
async def test_values_that_cannot_travel_in_headers_or_are_masked_are_refused(
    api: Api, settings: dict[str, Any], field: str
) -> None:
    body = {"name": "bad", "kind": "http", "url": SOMEWHERE, **settings}
    response = await api.admin("POST", "/api/v1/destinations", json=body)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]], response.text


async def test_sumo_options_with_line_breaks_and_splunk_tokens_that_are_only_a_prefix(api: Api) -> None:
    response = await api.admin(
        "POST",
        "/api/v1/destinations",
        json={"name": "s", "kind": "sumo_logic", "url": SOMEWHERE, "options": {"category": "a\r\nX-Evil: 1"}},
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "options.category"
    response = await api.admin(
        "POST",
        "/api/v1/destinations",
        json={"name": "h", "kind": "splunk_hec", "url": SOMEWHERE, "token": "Splunk "},
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "token"


async def test_a_streamed_oversized_admin_body_is_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name":"'
        for _ in range(40):
            yield b"x" * 10_000
        yield b'"}'

    response = await api.admin(
        "POST", "/api/v1/destinations", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


async def test_integers_past_64_bits_are_4xx_not_500(api: Api) -> None:
    """Past what a database column holds (sequence numbers: signed 64 bits; dead letter ids:
    32 bits on PostgreSQL): a path id names no dead letter (404, as any unknown id); a query
    or body value is the field's 422."""
    created = await api.admin(
        "POST", "/api/v1/destinations", json={"name": "big-ints", "kind": "http", "url": SOMEWHERE}
    )
    assert created.status_code == 201, created.text
    base = f"/api/v1/destinations/{created.json()['id']}"
    for big in (2**31, 2**63, 2**64, 10**30):
        response = await api.admin("DELETE", f"{base}/dead-letters/{big}")
        assert response.status_code == 404, response.text
        assert f"no dead letter {big}" in response.json()["detail"]
        checks = [
            (await api.admin("GET", f"{base}/dead-letters", params={"after": big}), "query.after"),
            (await api.admin("POST", f"{base}/dead-letters/resend", json={"ids": [1, big]}), "ids.1"),
        ]
        if big >= 2**63:
            checks += [
                (await api.admin("POST", f"{base}/replay", json={"from_seq": 1, "to_seq": big}), "to_seq"),
                (await api.admin("POST", f"{base}/replay", json={"from_seq": big}), "from_seq"),
            ]
        for response, field in checks:
            assert response.status_code == 422, (field, response.text)
            assert [e["field"] for e in response.json()["errors"]] == [field], response.text
    # The largest id that can exist is still looked up: an unknown one is a 404.
    response = await api.admin("DELETE", f"{base}/dead-letters/{2**31 - 1}")
    assert response.status_code == 404
    response = await api.admin("GET", f"{base}/dead-letters", params={"after": 2**31 - 1})
    assert response.status_code == 200, response.text
    response = await api.admin("POST", f"{base}/dead-letters/resend", json={"ids": [2**31 - 1]})
    assert response.status_code == 404, response.text
    response = await api.admin("POST", f"{base}/replay", json={"from_seq": 2**63 - 1})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "", response.text


@pytest.mark.parametrize("kind", ["http", "sumo_logic", "splunk_hec"])
@pytest.mark.parametrize(
    "url",
    [
        "https://[::1",
        "https://[::1]x/",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:port/",
        "http://" + "a" * 64 + ".example/",  # a DNS label is at most 63 characters
        "http://a..example/",
        "http://127.0.0.1/a\x00b",
    ],
)
async def test_a_url_that_does_not_parse_is_422_on_create_and_patch(api: Api, kind: str, url: str) -> None:
    token = {"token": "t-1234567890"} if kind == "splunk_hec" else {}
    created = await api.admin(
        "POST", "/api/v1/destinations", json={"name": "u", "kind": kind, "url": SOMEWHERE, **token}
    )
    assert created.status_code == 201, created.text
    before = created.json()
    response = await api.admin(
        "POST", "/api/v1/destinations", json={"name": "u", "kind": kind, "url": url, **token}
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["url"], response.text
    response = await api.admin("PATCH", f"/api/v1/destinations/{before['id']}", json={"url": url})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["url"], response.text
    after = (await api.admin("GET", f"/api/v1/destinations/{before['id']}")).json()
    assert (after["url"], after["updated_at"]) == (before["url"], before["updated_at"])
    await api.admin("DELETE", f"/api/v1/destinations/{before['id']}")


async def test_a_host_name_that_cannot_be_resolved_at_all_is_422_when_resolving(strict_api: Api) -> None:
    for url in ("https://" + "a" * 64 + ".example/", "https://a..example/"):
        response = await strict_api.admin(
            "POST", "/api/v1/destinations", json={"name": "n", "kind": "http", "url": url}
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "url"
        assert "not a valid host name" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("where", ["top", "options", "batch"])
async def test_thousands_of_unknown_settings_get_a_small_answer(api: Api, where: str) -> None:
    # Within the 256 KiB admin body limit; long keys to show they are cut short.
    unknown = {f"{'x' * 70}{i:05d}": 1 for i in range(3000)}
    body: dict[str, Any] = {"name": "many", "kind": "http", "url": SOMEWHERE}
    if where == "top":
        body |= unknown
    else:
        body[where] = unknown
    before = await api.destination_count()
    response = await api.admin("POST", "/api/v1/destinations", json=body)
    assert response.status_code == 422, response.text[:500]
    assert len(response.content) < 20_000, len(response.content)
    problem = response.json()
    assert len(problem["detail"]) <= 1000
    errors = problem["errors"]
    assert len(errors) == 101 and errors[-1] == {"field": "", "message": "and 2900 more errors, not listed"}
    assert all(len(e["field"]) <= 60 for e in errors)
    assert await api.destination_count() == before
