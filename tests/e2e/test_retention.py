"""Retention removes old events in bulk, but never before every destination has them,
unless they pass the hard maximum."""

from __future__ import annotations

import time

from tests.support import Receiver, Service, make_event, wait_until

SECOND_IN_DAYS = 1 / 86400


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
    with service.admin() as client:
        client.post(f"/api/v1/destinations/{destination['id']}/pause")
    events = [make_event() for _ in range(5)]
    service.send(events)
    time.sleep(2.5)  # well past retention, several retention passes
    assert {e["id"] for e in events} <= stored_ids(service), "owed to a paused destination: kept"
    with service.admin() as client:
        client.post(f"/api/v1/destinations/{destination['id']}/resume")
    wait_until(lambda: len(receiver.events()) >= 5, what="delivery after resume")
    assert receiver.events() == events
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
    with service.admin() as client:
        client.post(f"/api/v1/destinations/{destination['id']}/pause")
    events = [make_event() for _ in range(3)]
    service.send(events)
    wait_until(lambda: not ({e["id"] for e in events} & stored_ids(service)), timeout=10, what="hard purge")
    # What remains after the purge still flows once the destination resumes.
    later = make_event()
    with service.admin() as client:
        client.post(f"/api/v1/destinations/{destination['id']}/resume")
    service.send(later)
    wait_until(lambda: any(e["id"] == later["id"] for e in receiver.events()), what="later event")


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
