"""Where one stored event stands at each destination (the panel's event page): derived
from the destination's filters, cursor, dead letters (and the audit events of discarded
ones) and replays, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from auditrelay.config import Settings
from auditrelay.errors import NotFound
from auditrelay.events import validate_events
from auditrelay.log import Wakeups
from auditrelay.security import Principal, Role
from auditrelay.security.secrets import SecretBox
from auditrelay.services import DestinationCreate, DestinationService, RecoveryService, RequestContext
from auditrelay.store import Database, DestinationRows, LoggedEvent, append_events, event_at
from auditrelay.store.delivery_rows import add_dead_letter, advance_replay, commit_progress, create_replay
from tests.support import make_event

pytestmark = pytest.mark.anyio

ADMIN = Principal(token_id="t-admin", name="admin", role=Role.ADMIN, org=None)
CTX = RequestContext(ip_address="127.0.0.1", user_agent="test")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class World:
    def __init__(self, db: Database) -> None:
        settings = Settings(data_dir=Path("."), allow_private_destinations=True)
        self.db = db
        rows = DestinationRows(SecretBox(Fernet.generate_key()))
        self.destinations = DestinationService(db, rows, Wakeups(), settings)
        self.recovery = RecoveryService(db, rows, self.destinations, Wakeups(), settings)

    async def destination(self, name: str, **settings: object) -> str:
        body = DestinationCreate(name=name, kind="http", url="http://127.0.0.1:9/hook", **settings)  # type: ignore[arg-type]
        made = await self.destinations.create(ADMIN, body, CTX)
        return str(made["id"])

    def store(self, action: str = "document.create") -> LoggedEvent:
        with self.db.writing() as conn:
            seq = append_events(conn, validate_events([make_event(action=action)]), None).head
            found = event_at(conn, seq, None)
        assert found is not None
        return found

    async def where(self, event: LoggedEvent) -> dict[str, tuple[str, str]]:
        found = await self.recovery.deliveries_of(ADMIN, event)
        return {d["destination"]["name"]: (d["state"], d["detail"]) for d in found}


async def test_an_event_reads_as_where_it_stands_at_each_destination(db: Database) -> None:
    world = World(db)
    before = world.store()
    everything = await world.destination("everything")
    await world.destination("users only", event_types=["user.*"])
    event = world.store()
    where = await world.where(event)
    assert where["everything"][0] == "pending"
    assert where["users only"] == ("not sent", where["users only"][1])
    assert "filtered out" in where["users only"][1]
    assert (await world.where(before))["everything"] == (
        "not sent",
        "stored before the destination was added",
    )

    with db.writing() as conn:
        commit_progress(conn, everything, event.seq, 1)
    assert (await world.where(event))["everything"] == ("delivered", "accepted by the destination")

    # Set aside as a dead letter, then discarded: never reads as delivered, though the
    # cursor is past it and the dead letter's row is gone.
    refused = world.store()
    with db.writing() as conn:
        add_dead_letter(conn, everything, refused.seq, "x", refused.body, 3, 400, "bad event")
        commit_progress(conn, everything, refused.seq, 0)
    state, detail = (await world.where(refused))["everything"]
    assert state == "set aside" and "HTTP 400: bad event" in detail
    letters = await world.recovery.dead_letters(ADMIN, everything, 0, 10)
    assert await world.recovery.discard_dead_letter(ADMIN, everything, letters["dead_letters"][0]["id"], CTX)
    assert (await world.where(refused))["everything"][0] == "discarded"
    # The discard names its event only: the one delivered before still reads delivered.
    assert (await world.where(event))["everything"][0] == "delivered"

    # Replayed: an event stored before the destination existed, then replayed to it.
    with db.writing() as conn:
        job = create_replay(conn, everything, before.seq, before.seq)
    assert (await world.where(before))["everything"][0] == "replaying"
    with db.writing() as conn:
        advance_replay(conn, job.id, before.seq, 1, True)
    assert (await world.where(before))["everything"][0] == "delivered"

    # Paused, with an event after its cursor.
    await world.destinations.set_active(ADMIN, everything, False, CTX)
    later = world.store()
    assert (await world.where(later))["everything"] == ("pending", "waiting: the destination is paused")


async def test_another_organizations_event_does_not_exist_for_an_owner(db: Database) -> None:
    world = World(db)
    event = world.store()  # the instance's own event
    owner = Principal(token_id="t-owner", name="owner", role=Role.OWNER, org="acme")
    with pytest.raises(NotFound):
        await world.recovery.deliveries_of(owner, event)
