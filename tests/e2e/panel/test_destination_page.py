"""A destination's own page in a real browser (Debian's Chromium, driven by Playwright),
against the service as a real process and loopback receivers: its verification token with
Copy, its live status, the chart of its last hours, its attempts, its dead letters (Resend,
Discard), Replay of a time range, Retry now; what a viewer and another organization see.

Every page visited is saved to `docs/screenshots/` (1280 by 800, and at phone width).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.support import Receiver, Service, wait_until
from tests.support.panel import PHONE, SOON, WIDE, new_org, new_person, row, send, shot, sign_in


def _page_of(page: Page, service: Service, destination: dict[str, Any]) -> None:
    page.goto(f"{service.base_url}/admin/log-streaming/{destination['id']}")
    expect(page.get_by_role("heading", name=destination["name"], exact=True)).to_be_visible()


def _owner(page: Page, service: Service, org: str) -> None:
    sign_in(page, service, new_person(service, memberships=[{"org": org, "role": "owner"}]))


def _added(service: Service, receiver: Receiver, name: str, org: str, **settings: Any) -> dict[str, Any]:
    """A destination to `receiver`, once its own creation's audit event (the first it is
    owed) has arrived, unless filtered out (`event_types`)."""
    made = service.add_destination(name=name, kind="http", url=receiver.url, org=org, **settings)
    if settings.get("event_types"):
        return made
    wait_until(
        lambda: receiver.events_where(lambda e: e["action"] == "audit_stream.destination.create"),
        what="the destination's creation at the receiver",
    )
    return made


def _marked(receiver: Receiver, marker: str) -> list[dict[str, Any]]:
    return receiver.events_where(lambda e: e.get("details", {}).get("marker") == marker)


def test_the_token_with_copy_and_an_event_in_the_chart_and_attempts(
    page: Page, panel: Service, receiver: Receiver
) -> None:
    org = new_org(panel)
    made = _added(panel, receiver, "Chart sink", org)
    _owner(page, panel, org)
    # From the list, by the destination's name.
    row(page, "Chart sink").get_by_role("link", name="Chart sink").click()
    expect(page.get_by_role("heading", name="Chart sink", exact=True)).to_be_visible()
    token = page.get_by_role("textbox", name="Verification token")
    expect(token).to_have_value(made["verification_token"])
    expect(token).to_have_attribute("readonly", "")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy = page.locator('button[data-copy="verification_token"]')
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == made["verification_token"]

    marker = uuid.uuid4().hex
    send(panel, org, details={"marker": marker})
    wait_until(lambda: _marked(receiver, marker), what="the event at the receiver")
    # The status is live: the badge turns healthy without a reload.
    expect(page.locator(f"#state-{made['id']} .badge")).to_have_text("healthy", timeout=SOON)
    expect(page.locator(f"#last-{made['id']} time")).to_be_visible()
    page.reload()
    # Every event it got (its creation's audit event, its health, the one sent) is charted:
    # the minutes add up to the total its status counts.
    total = panel.destination(made["id"])["status"]["delivered_total"]
    assert total >= 2
    expect(page.get_by_text(re.compile(rf"^{total} events delivered from"))).to_be_visible()
    bars = page.locator(".plot-delivered rect.bar")
    assert bars.count() >= 1
    assert "delivered" in (bars.first.locator("title").text_content() or "")
    page.get_by_text("The same figures as a table").click()
    delivered = page.locator("details table tbody td:nth-child(2)").all_inner_texts()
    assert sum(int(n) for n in delivered) == total, delivered
    attempts = page.get_by_role("table", name="delivery attempts")
    expect(attempts.locator("tbody tr").first).to_contain_text("HTTP 200")
    assert attempts.locator("tbody tr").count() <= 20
    shot(page, "destination-page")
    page.set_viewport_size(PHONE)
    shot(page, "destination-page-phone")
    page.set_viewport_size(WIDE)


def test_a_refused_event_becomes_a_dead_letter_resent_then_one_discarded(
    page: Page, panel: Service, receiver: Receiver
) -> None:
    org = new_org(panel)
    # Only the events sent here (not its own audit events, whose health changes follow).
    made = _added(panel, receiver, "Strict sink", org, event_types=["document.*"])
    receiver.answer_with(400, body=b"field x is not allowed")  # refused as it is: no retry
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    send(panel, org, details={"marker": first})
    send(panel, org, details={"marker": second})

    def letters() -> list[dict[str, Any]]:
        with panel.admin() as admin:
            answer = admin.get(f"/api/v1/destinations/{made['id']}/dead-letters")
        found: list[dict[str, Any]] = answer.json()["dead_letters"]
        return found

    wait_until(lambda: len(letters()) == 2, what="two dead letters")
    _owner(page, panel, org)
    _page_of(page, panel, made)
    table = page.get_by_role("table", name="Dead letters")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text("HTTP 400")
    table.scroll_into_view_if_needed()
    shot(page, "destination-dead-letters", top=False)

    receiver.answer_normally()  # the receiver is fixed
    oldest = letters()[0]
    page.get_by_role("button", name=f"Resend dead letter {oldest['seq']}").click()
    expect(page.get_by_role("status")).to_have_text("Re-sent 1 dead letter: 1 delivered.")
    assert _marked(receiver, oldest["event"]["details"]["marker"])
    expect(table.locator("tbody tr")).to_have_count(1)

    remaining = letters()[0]
    discard = page.get_by_role("button", name=f"Discard dead letter {remaining['seq']}")
    discard.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Discard dead letter #{remaining['seq']}?")
    shot(page, "destination-discard-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    discard.click()
    dialog.get_by_role("button", name="Discard dead letter").click()
    expect(page.get_by_role("status")).to_have_text("Dead letter discarded.")
    expect(page.get_by_text("None: every event was accepted")).to_be_visible()
    assert letters() == []
    assert not _marked(receiver, remaining["event"]["details"]["marker"]), "a discarded one is not sent"

    with panel.admin() as admin:
        events = admin.get(
            "/api/v1/events", params={"action": "audit_stream.destination.dead_letter.*", "org": org}
        )
    changes = [e["event"] for e in events.json()["events"]]
    assert [e["action"] for e in changes] == [
        "audit_stream.destination.dead_letter.resend",
        "audit_stream.destination.dead_letter.discard",
    ]
    assert all(e["actor"]["type"] == "user" for e in changes)


def test_replay_a_time_range_sends_the_events_again(page: Page, panel: Service, receiver: Receiver) -> None:
    org = new_org(panel)
    made = _added(panel, receiver, "Lossy sink", org)
    marker = uuid.uuid4().hex
    send(panel, org, details={"marker": marker})
    wait_until(lambda: len(_marked(receiver, marker)) == 1)
    _owner(page, panel, org)
    _page_of(page, panel, made)
    expect(page.get_by_text("No replays yet.")).to_be_visible()
    # An end before the start is refused, next to the form.
    now = datetime.now(UTC)
    page.get_by_label("From (UTC)").fill((now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_label("To (UTC)").fill((now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Replay", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("From comes after To: nothing to replay")
    assert len(_marked(receiver, marker)) == 1

    page.get_by_label("From (UTC)").fill((now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_label("To (UTC)").fill((now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Replay", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(
        "Replay requested: the range is sent again after what is owed now."
    )
    wait_until(lambda: len(_marked(receiver, marker)) == 2, what="the event replayed")
    replays = page.get_by_role("table", name="Replays")
    expect(replays.locator("tbody tr")).to_have_count(1)
    wait_until(lambda: panel_replays(panel, made["id"])[0]["state"] == "done", what="the replay done")
    page.reload()
    expect(replays.locator(".badge")).to_have_text("done")
    replays.scroll_into_view_if_needed()
    shot(page, "destination-replay", top=False)


def panel_replays(service: Service, destination_id: str) -> list[dict[str, Any]]:
    with service.admin() as admin:
        found: list[dict[str, Any]] = admin.get(f"/api/v1/destinations/{destination_id}/replays").json()[
            "replays"
        ]
    return found


@pytest.fixture
def slow_retries(tmp_path: Path) -> Iterator[Service]:
    """A service whose retries wait five minutes: only **Retry now** delivers sooner."""
    svc = Service(
        tmp_path / "slow",
        "",
        extra_env={"AUDITRELAY_RETRY_INITIAL_SECONDS": "300", "AUDITRELAY_RETRY_MAX_SECONDS": "600"},
    ).start()
    yield svc
    svc.stop()


def test_retry_now_when_waiting_after_the_receiver_was_down(
    page: Page, slow_retries: Service, receiver: Receiver
) -> None:
    org = new_org(slow_retries)
    made = _added(slow_retries, receiver, "Flaky sink", org)
    _owner(page, slow_retries, org)
    _page_of(page, slow_retries, made)
    expect(page.get_by_role("button", name="Retry now")).to_have_count(0)  # not waiting
    receiver.answer_with(503)  # down
    marker = uuid.uuid4().hex
    send(slow_retries, org, details={"marker": marker})
    retry = page.get_by_role("button", name="Retry now")
    expect(retry).to_be_visible(timeout=SOON)  # shown live, by the status poll
    expect(page.locator(f"#retry-{made['id']}")).to_contain_text("Waiting to retry")
    expect(page.locator(f"#state-{made['id']} .badge")).to_have_text("failing")
    shot(page, "destination-retry-now")

    # While it waits, the delivery supervisor's sample of the minute charts the lag.
    def lag_charted() -> bool:
        page.reload()
        lags = page.locator("details table tbody td:nth-child(3)").all_text_contents()
        return any(t.strip().isdigit() and int(t) >= 1 for t in lags)

    wait_until(lag_charted, timeout=75, interval=3, what="a lag sample in the chart (within a minute)")
    expect(page.locator(".plot-lag .dot, .plot-lag .line").first).to_be_attached()
    expect(page.locator("#plot-lag")).not_to_contain_text("none in these hours")
    page.locator(".plot-lag").scroll_into_view_if_needed()
    shot(page, "destination-chart-lag", top=False)
    retry = page.get_by_role("button", name="Retry now")
    receiver.answer_normally()  # back up; the next attempt would be minutes away
    time.sleep(1)
    assert not _marked(receiver, marker)
    retry.click()
    expect(page.get_by_role("status")).to_have_text("Retrying now: the next attempt goes at once.")
    wait_until(lambda: _marked(receiver, marker), timeout=10, what="the event, after Retry now")
    expect(page.locator(f"#state-{made['id']} .badge")).to_have_text("healthy", timeout=SOON)
    expect(page.get_by_role("button", name="Retry now")).to_have_count(0)


def test_pause_and_resume_come_back_to_the_page(page: Page, panel: Service, receiver: Receiver) -> None:
    org = new_org(panel)
    made = panel.add_destination(name="Paused sink", kind="http", url=receiver.url, org=org)
    _owner(page, panel, org)
    _page_of(page, panel, made)
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_have_text("Delivery paused; its position is kept.")
    expect(page.get_by_role("heading", name="Paused sink", exact=True)).to_be_visible()
    expect(page.locator(f"#state-{made['id']} .badge")).to_have_text("paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_have_text("Delivery resumed from where it stopped.")
    page.get_by_role("button", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit “Paused sink”")).to_be_visible()


def test_a_viewer_sees_the_page_without_any_control_that_changes_anything(
    page: Page, panel: Service, receiver: Receiver
) -> None:
    org = new_org(panel)
    made = _added(panel, receiver, "Viewed sink", org, event_types=["document.*"])
    receiver.answer_with(400)
    send(panel, org)  # a dead letter, which an owner could resend or discard
    wait_until(lambda: panel.destination(made["id"])["status"]["dead_letters"] == 1)
    sign_in(page, panel, new_person(panel, memberships=[{"org": org, "role": "viewer"}]))
    _page_of(page, panel, made)
    expect(page.get_by_role("table", name="Dead letters").locator("tbody tr")).to_have_count(1)
    buttons = [b.inner_text().strip() for b in page.get_by_role("button").all()]
    assert buttons == ["Sign out", "Copy"], buttons
    assert page.locator("main form, main select, main textarea").count() == 0
    assert page.locator("main input").count() == 1  # the token, read-only
    expect(page.get_by_role("textbox", name="Verification token")).to_have_attribute("readonly", "")
    shot(page, "destination-page-viewer")
    answer = page.request.post(
        f"{panel.base_url}/admin/log-streaming/{made['id']}/retry",
        headers=json.loads(page.locator("body").get_attribute("hx-headers") or "{}"),
    )
    assert answer.status == 403


def test_an_owner_of_another_organization_gets_not_found(
    page: Page, panel: Service, receiver: Receiver
) -> None:
    theirs, mine = new_org(panel), new_org(panel)
    other = panel.add_destination(
        name="Theirs, secret", kind="http", url=receiver.url, org=theirs, active=False
    )
    _owner(page, panel, mine)
    for path in ("", "/status"):
        answer = page.goto(f"{panel.base_url}/admin/log-streaming/{other['id']}{path}")
        assert answer is not None and answer.status == 404
        assert "Theirs, secret" not in page.content() and other["verification_token"] not in page.content()
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
