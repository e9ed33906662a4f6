"""Fixtures: databases (SQLite file, PostgreSQL database of its own), the service, receivers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auditrelay.config import Settings
from auditrelay.store import Database, upgrade_to_head
from tests.support import HecReceiver, Receiver, Service, SumoReceiver

PG_ADMIN_URL = os.environ.get("AUDITRELAY_TEST_PG", "postgresql://127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


#: Set to 1 to skip the PostgreSQL tests when no PostgreSQL is at hand; without it an
#: unreachable PostgreSQL fails them, so a run never passes by silently testing less.
SKIP_POSTGRES = "AUDITRELAY_TEST_SKIP_POSTGRES"


@pytest.fixture(scope="session")
def pg_unreachable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can)."""
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc})".strip()


class Databases:
    """Creates a PostgreSQL database with a random name per use, dropped afterwards."""

    def __init__(self, tmp: Path, pg_unreachable: str | None) -> None:
        self.tmp = tmp
        self.pg_unreachable = pg_unreachable
        self.created: list[str] = []

    def url(self, backend: str) -> str:
        if backend == "sqlite":
            return ""  # the service's default: SQLite in its data directory
        if self.pg_unreachable:
            if os.environ.get(SKIP_POSTGRES) == "1":
                pytest.skip(f"{self.pg_unreachable}; skipped because {SKIP_POSTGRES}=1")
            pytest.fail(
                f"{self.pg_unreachable}. Start PostgreSQL (or point AUDITRELAY_TEST_PG at one), "
                f"or set {SKIP_POSTGRES}=1 to skip the PostgreSQL tests",
                pytrace=False,
            )
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
def databases(tmp_path_factory: pytest.TempPathFactory, pg_unreachable: str | None) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("db"), pg_unreachable)
    yield dbs
    if dbs.created:
        dbs.drop_all()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, databases: Databases, tmp_path: Path) -> Iterator[Database]:
    """A migrated store of the test's own, on each backend in turn (SQLite `NORMAL`: these
    tests read what they wrote, they do not pull the power)."""
    database = Database(
        Settings(database_url=databases.url(request.param), data_dir=tmp_path, sqlite_synchronous="NORMAL")
    )
    upgrade_to_head(database)
    yield database
    database.dispose()


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
