"""Retention removes old events in bulk, but never before every destination has them,
unless they pass the hard maximum."""

from __future__ import annotations

import re
import time

from tests.support import Receiver, Service, make_event, wait_until

SECOND_IN_DAYS = 1 / 86400


HELD_BACK = "are past retention but kept until every destination has them"


def set_paused(service: Service, destination_id: str, paused: bool) -> None:
    with service.admin() as client:
        response = client.post(f"/api/v1/destinations/{destination_id}/{'pause' if paused else 'resume'}")
    assert response.status_code == 200, response.text
    assert response.json()["active"] is not paused


def stored_ids(service: Service) -> set[str]:
    ids: set[str] = set()
    after = 0
    with service.admin() as client:
        while True:
            page = client.get("/api/v1/events", params={"after": after, "limit": 1000}).json()
            if not page["events"]:
                return ids
            ids.update(item["event"]["id"] for item in page["events"])
            after = page["next_after"]


def test_expired_events_wait_for_a_paused_destination_then_go(
    fresh_service: Service, receiver: Receiver
) -> None:
    fresh_service.extra_env.update(
        {
            "AUDITRELAY_RETENTION_DAYS": str(1 * SECOND_IN_DAYS),
            "AUDITRELAY_RETENTION_HARD_MAX_DAYS": str(3600 * SECOND_IN_DAYS),
            "AUDITRELAY_RETENTION_INTERVAL_SECONDS": "0.3",
        }
    )
    service = fresh_service.start()
    destination = service.add_destination(
        name="slow", kind="http", url=receiver.url, event_types=["document.*"]
    )
    set_paused(service, destination["id"], True)
    events = [make_event() for _ in range(5)]
    service.send(events)
    stored_by = time.time()
    # Past retention (1 s) by the clock, then two more retention passes that found expired
    # events and kept them (each pass that holds events back says so in the log): the
    # second of them began after the events had expired.
    wait_until(lambda: time.time() > stored_by + 1.0, what="the events to be past retention")
    passes = service.log(whole=True).count(HELD_BACK)
    wait_until(
        lambda: service.log(whole=True).count(HELD_BACK) >= passes + 2, what="two more retention passes"
    )
    assert {e["id"] for e in events} <= stored_ids(service), "owed to a paused destination: kept"
    set_paused(service, destination["id"], False)
    wait_until(lambda: len(receiver.events()) >= 5, what="delivery after resume")
    assert sorted(e["id"] for e in receiver.events()) == sorted(e["id"] for e in events)
    wait_until(lambda: not ({e["id"] for e in events} & stored_ids(service)), timeout=10, what="purge")
    assert "retention: removed" in service.log(whole=True)


def test_the_hard_maximum_wins_over_a_destination_that_never_catches_up(
    fresh_service: Service, receiver: Receiver
) -> None:
    fresh_service.extra_env.update(
        {
            "AUDITRELAY_RETENTION_DAYS": str(1 * SECOND_IN_DAYS),
            "AUDITRELAY_RETENTION_HARD_MAX_DAYS": str(2 * SECOND_IN_DAYS),
            "AUDITRELAY_RETENTION_INTERVAL_SECONDS": "0.3",
        }
    )
    service = fresh_service.start()
    destination = service.add_destination(name="stuck", kind="http", url=receiver.url)
    set_paused(service, destination["id"], True)
    events = [make_event() for _ in range(3)]
    service.send(events)
    # A day ahead (here: at once, the hard maximum being 2 s), the status warns.
    warned = service.destination(destination["id"])["status"]
    assert warned["retention_warning"] and "will be removed" in warned["retention_warning"], warned
    wait_until(lambda: not ({e["id"] for e in events} & stored_ids(service)), timeout=10, what="hard purge")
    # The loss is never silent: counted on the status, with its range, and an audit event.
    status = wait_until(
        lambda: (s := service.destination(destination["id"])["status"])["lost_to_retention"] and s,
        what="the loss on the status",
    )
    lost = status["lost_to_retention"]
    assert lost["events"] >= 3 and lost["from_seq"] <= lost["to_seq"] and lost["at"]
    assert status["lag"] <= 2, "the cursor passed the gap"
    assert "had not received" in service.log(whole=True)
    with service.admin() as admin:
        metrics = admin.get("/metrics").text
    assert re.search(
        rf'^auditrelay_events_lost_to_retention_total{{destination="{destination["id"]}"}} [1-9]',
        metrics,
        re.M,
    )
    # What remains after the purge still flows once the destination resumes.
    later = make_event()
    set_paused(service, destination["id"], False)
    service.send(later)
    wait_until(lambda: any(e["id"] == later["id"] for e in receiver.events()), what="later event")
    told = [e for e in receiver.events() if e["action"] == "audit_stream.destination.retention_loss"]
    assert told and told[0]["details"]["destination"]["id"] == destination["id"], (
        "the gap is told in the stream"
    )
    assert told[0]["details"]["events"] >= 1


def test_hard_maximum_below_retention_is_refused_at_start(fresh_service: Service) -> None:
    fresh_service.extra_env.update(
        {"AUDITRELAY_RETENTION_DAYS": "30", "AUDITRELAY_RETENTION_HARD_MAX_DAYS": "7"}
    )
    try:
        fresh_service.start()
    except RuntimeError as exc:
        assert "retention_hard_max_days must be at least retention_days" in str(exc)
    else:
        raise AssertionError("the service started with an impossible retention")
