"""The application in-process, for tests that only check the API's answers to bad input:
no service process, no delivery to check, so no sockets either (httpx's ASGI transport).

`create_app(Settings(...))` with its lifespan running, on each backend; the tokens come
from the CLI's prepare step, as `serve` makes them on a first start.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditrelay.api import create_app
from auditrelay.cli import prepare
from auditrelay.config import Settings
from tests.conftest import Databases

#: A destination URL that passes the URL guard when private addresses are allowed; the
#: tests here never get as far as delivering to it.
SOMEWHERE = "http://127.0.0.1:9/hook"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Api:
    """A client of the in-process app, with its tokens."""

    client: httpx.AsyncClient
    settings: Settings
    admin_token: str
    ingest_token: str

    def as_admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def as_ingest(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ingest_token}"}

    async def ingest(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(
            method, path, headers={**self.as_ingest(), **kwargs.pop("headers", {})}, **kwargs
        )

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(
            method, path, headers={**self.as_admin(), **kwargs.pop("headers", {})}, **kwargs
        )

    async def head(self) -> int:
        """The log's last sequence number."""
        response = await self.admin("GET", "/api/v1/events", params={"limit": 1})
        assert response.status_code == 200, response.text
        return int(response.json()["head"])

    async def destination_count(self) -> int:
        response = await self.admin("GET", "/api/v1/destinations")
        assert response.status_code == 200, response.text
        return len(response.json()["destinations"])


@contextlib.asynccontextmanager
async def running_app(data_dir: Path, database_url: str, allow_private: bool = True) -> AsyncIterator[Api]:
    # Every setting the tests depend on is given: none comes from the environment.
    config = Settings(
        data_dir=data_dir,
        database_url=database_url,
        allow_private_destinations=allow_private,
        sqlite_synchronous="NORMAL",
        max_events_per_request=1000,
        max_request_bytes=5 * 1024 * 1024,
        secret_key="",
        create_initial_tokens=True,
    )
    prepare(config)  # migrates, and writes admin.token and ingest.token
    app = create_app(config)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield Api(
            client,
            config,
            (data_dir / "admin.token").read_text().strip(),
            (data_dir / "ingest.token").read_text().strip(),
        )


@pytest.fixture(scope="session")
async def api(
    backend: str, databases: Databases, tmp_path_factory: pytest.TempPathFactory, anyio_backend: str
) -> AsyncIterator[Api]:
    """The app on each backend, shared by the tests of this directory."""
    async with running_app(tmp_path_factory.mktemp(f"api-{backend}"), databases.url(backend)) as running:
        yield running


@pytest.fixture(scope="session")
async def strict_api(
    backend: str, databases: Databases, tmp_path_factory: pytest.TempPathFactory, anyio_backend: str
) -> AsyncIterator[Api]:
    """The app with its default refusal of private destination addresses."""
    data_dir = tmp_path_factory.mktemp(f"strict-api-{backend}")
    async with running_app(data_dir, databases.url(backend), allow_private=False) as running:
        yield running
