"""Fixtures: databases (SQLite file, PostgreSQL database of its own), the service, receivers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import HecReceiver, Receiver, Service, SumoReceiver

PG_ADMIN_URL = os.environ.get("AUDITRELAY_TEST_PG", "postgresql://127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        if os.environ.get("CI") == "true":
            raise
        return False


class Databases:
    """Creates a PostgreSQL database with a random name per use, dropped afterwards."""

    def __init__(self, tmp: Path, pg_available: bool) -> None:
        self.tmp = tmp
        self.pg_available = pg_available
        self.created: list[str] = []

    def url(self, backend: str) -> str:
        if backend == "sqlite":
            return ""  # the service's default: SQLite in its data directory
        if not self.pg_available:
            pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (CI=true makes this a failure)")
        name = "auditrelay_test_" + uuid.uuid4().hex[:12]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    def drop_all(self) -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory, pg_available: bool) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("db"), pg_available)
    yield dbs
    if dbs.created:
        dbs.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def service(
    backend: str, databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """One running service per backend, shared by the tests that only add their own destinations."""
    svc = Service(tmp_path_factory.mktemp(f"svc-{backend}"), databases.url(backend)).start()
    yield svc
    svc.stop()


@pytest.fixture
def fresh_service(backend: str, databases: Databases, tmp_path: Path) -> Iterator[Service]:
    """A service of its own, for tests that stop, kill or reconfigure it."""
    svc = Service(tmp_path / "svc", databases.url(backend))
    yield svc
    if svc.process is not None:
        svc.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hec() -> Iterator[HecReceiver]:
    r = HecReceiver()
    yield r
    r.close()


@pytest.fixture
def sumo() -> Iterator[SumoReceiver]:
    r = SumoReceiver()
    yield r
    r.close()


@pytest.fixture
def namespace() -> str:
    """A namespace of the test's own, so its destinations see only its events."""
    return f"test/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def add_destination(service: Service) -> Iterator[Callable[..., dict[str, Any]]]:
    """Add destinations to the shared service; they are deleted when the test ends."""
    created: list[str] = []

    def add(**settings: Any) -> dict[str, Any]:
        destination = service.add_destination(**settings)
        created.append(destination["id"])
        return destination

    yield add
    for destination_id in created:
        service.delete_destination(destination_id)
