"""`EventService`, as the Events page calls it: a caller of one organization reads its own
events whatever it asks for; the export is the stored bytes, newest first, capped, read a
chunk at a time across the scan window."""

from __future__ import annotations

import orjson
import pytest

from auditrelay.errors import NotFound, ValidationError
from auditrelay.events import validate_events
from auditrelay.security import Principal, Role
from auditrelay.services import EventService
from auditrelay.store import Database, EventQuery, append_events
from tests.support import make_event

pytestmark = pytest.mark.anyio

ADMIN = Principal(token_id="t-admin", name="admin", role=Role.ADMIN, org=None)
OWNER_B = Principal(token_id="t-owner", name="owner", role=Role.OWNER, org="beta")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def store(db: Database, events: list[dict[str, object]]) -> list[bytes]:
    valid = validate_events(events)
    with db.writing() as conn:
        append_events(conn, valid, None)
    return [e.body for e in valid]


async def test_an_owner_reads_its_own_organizations_events_only(db: Database) -> None:
    store(db, [make_event(org="alpha", action="secret.thing"), make_event(org="beta", action="own.thing")])
    service = EventService(db)
    page = await service.page(OWNER_B, EventQuery(org="alpha"), None)
    assert [e.action for e in page.events] == ["own.thing"]
    with pytest.raises(NotFound):
        await service.get(OWNER_B, 1)  # alpha's
    assert (await service.get(OWNER_B, 2)).action == "own.thing"
    assert (await service.get(ADMIN, 1)).action == "secret.thing"
    with pytest.raises(NotFound):
        await service.get(ADMIN, 2**63)
    with pytest.raises(ValidationError):
        await service.page(ADMIN, EventQuery(action="Not An Action"), None)


async def test_the_export_is_the_stored_bytes_newest_first_and_capped(db: Database) -> None:
    bodies = store(db, [make_event(action="bulk.one" if n % 2 else "other.one") for n in range(1_300)])
    service = EventService(db)
    wanted = [b for b in reversed(bodies) if orjson.loads(b)["action"] == "bulk.one"]
    lines = [line async for line in service.export(ADMIN, EventQuery(action="bulk.*"), cap=600)]
    assert lines == [b + b"\n" for b in wanted[:600]]  # past one chunk of 500
    everything = [line async for line in service.export(ADMIN, EventQuery(action="bulk.*"))]
    assert len(everything) == 650
