"""The tokens API's answers to bad durations, in-process: the field named, nothing created."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.anyio


async def token_ids(api: Api) -> set[str]:
    response = await api.admin("GET", "/api/v1/tokens")
    assert response.status_code == 200, response.text
    return {token["id"] for token in response.json()["tokens"]}


@pytest.mark.parametrize("expires_in", ["9" * 30 + "d", "36501d", "9" * 5000 + "s", "90d\n1", "٣d"])
async def test_a_duration_past_a_century_or_not_a_duration_is_422(api: Api, expires_in: str) -> None:
    before = await token_ids(api)
    response = await api.admin(
        "POST", "/api/v1/tokens", json={"name": "t", "role": "viewer", "expires_in": expires_in}
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["expires_in"]
    assert await token_ids(api) == before


async def test_a_century_is_the_longest_duration(api: Api) -> None:
    response = await api.admin(
        "POST", "/api/v1/tokens", json={"name": "century", "role": "viewer", "expires_in": "36500d"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["expires_at"] is not None
