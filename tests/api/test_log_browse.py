"""The log browser answers pages bounded by bytes as well as by count."""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import Api
from tests.support import make_event

pytestmark = pytest.mark.anyio


async def test_a_page_of_large_events_ends_early_and_next_after_continues(api: Api) -> None:
    action = f"browse.big_{uuid.uuid4().hex[:8]}"
    events = [make_event(action=action, details={"pad": "x" * 900_000}) for _ in range(12)]
    for event in events:
        assert (await api.ingest("POST", "/api/v1/events", json=event)).status_code == 202
    pages: list[list[str]] = []
    after = 0
    while True:
        response = await api.admin(
            "GET", "/api/v1/events", params={"after": after, "limit": 1000, "action": action}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        if not page["events"]:
            break
        # 8 MiB of bodies per page at most, plus the event that reaches it.
        assert len(response.content) < 8 * 1024 * 1024 + 2 * 1_000_000
        pages.append([e["event"]["id"] for e in page["events"]])
        after = page["next_after"]
    assert len(pages) == 2 and len(pages[0]) < 12, [len(p) for p in pages]
    assert [i for page in pages for i in page] == [e["id"] for e in events], "all of them, once, in order"


async def test_an_action_filter_with_a_trailing_newline_is_refused(api: Api) -> None:
    response = await api.admin("GET", "/api/v1/events", params={"action": "document.create\n"})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["action"]


async def test_after_past_64_bits_is_422_on_after(api: Api) -> None:
    for big in (2**63, 2**64):
        response = await api.admin("GET", "/api/v1/events", params={"after": big})
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["query.after"]
    response = await api.admin("GET", "/api/v1/events", params={"after": 2**63 - 1})
    assert response.status_code == 200 and response.json()["events"] == []
