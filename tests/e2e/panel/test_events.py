"""The admin panel's Events page in a real browser (Debian's Chromium, Playwright), against
the service as a real process and a loopback receiver: the stored log newest first, each
filter, one event's JSON and where it was delivered, the NDJSON export, the "newer events"
notice, and an owner of one organization seeing nothing of another's.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import orjson
from playwright.sync_api import Page, expect

from tests.support import Receiver, Service, wait_until
from tests.support.panel import PHONE, SOON, WIDE, new_org, new_person, send, shot, sign_in


def person(name: str, email: str, uid: int) -> dict[str, Any]:
    return {"type": "user", "user": {"id": uid, "name": name, "email": email}}


def shown_seqs(page: Page) -> list[int]:
    found = page.locator("table.events tbody tr").evaluate_all("rows => rows.map(r => r.dataset.seq)")
    return [int(s) for s in found]


def shown_actions(page: Page) -> list[str]:
    return page.locator("table.events tbody tr th").all_inner_texts()


def stored(service: Service, org: str, action: str) -> list[dict[str, Any]]:
    """The org's events of `action`, oldest first, as the API browses them."""
    with service.admin() as admin:
        answer = admin.get("/api/v1/events", params={"org": org, "action": action, "limit": 1000})
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


def go_events(page: Page, service: Service, **filters: str) -> None:
    page.goto(service.base_url + "/admin/events")
    for label, value in filters.items():
        page.get_by_label(label, exact=True).fill(value)
    if filters:
        page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()


def test_newest_first_filters_open_one_and_export(page: Page, panel: Service, receiver: Receiver) -> None:
    org = new_org(panel)
    tag = uuid.uuid4().hex[:6]
    panel.add_destination(name="Healthy SIEM", kind="http", url=receiver.url, org=org)
    sign_in(page, panel, new_person(panel, memberships=[{"org": org, "role": "owner"}]))
    send(panel, org, action=f"document.create_{tag}", actor=person("Ann", "ann@example.com", 1))
    send(
        panel,
        org,
        action=f"document.delete_{tag}",
        actor=person("Bob", "bob@example.com", 2),
        entity={"type": "doc", "id": 9, "path": f"{org}/web/api"},
    )
    send(panel, org, action=f"user.login_{tag}", timestamp="2020-01-02T03:04:05Z")
    wait_until(lambda: len(receiver.events_where(lambda e: e["action"].endswith(tag))) == 3)

    # Newest first: the three, in the reverse of the order they were sent.
    page.get_by_role("link", name="Events").click()
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    seqs = shown_seqs(page)
    assert seqs == sorted(seqs, reverse=True) and len(seqs) >= 4  # with the destination's own events
    ours = [a for a in shown_actions(page) if a.endswith(tag)]
    assert ours == [f"user.login_{tag}", f"document.delete_{tag}", f"document.create_{tag}"]
    expect(page.locator("#f-org")).to_have_count(0)  # an owner's organization is fixed: no control
    shot(page, "events")

    # Each filter narrows.
    go_events(page, panel, Action="document.*")
    assert shown_actions(page) == [f"document.delete_{tag}", f"document.create_{tag}"]
    go_events(page, panel, Action=f"document.create_{tag}")
    assert shown_actions(page) == [f"document.create_{tag}"]
    go_events(page, panel, Actor="bob@example.com")
    assert shown_actions(page) == [f"document.delete_{tag}"]
    go_events(page, panel, **{"Entity path": f"{org}/web"})
    assert shown_actions(page) == [f"document.delete_{tag}"]
    go_events(page, panel, **{"From (UTC)": "2020-01-01T00:00", "To (UTC)": "2020-01-02T03:04"})
    assert shown_actions(page) == [f"user.login_{tag}"]
    expect(page.get_by_label("To (UTC)")).to_have_value("2020-01-02T03:04")
    shot(page, "events-filtered")
    go_events(page, panel, Action="Not An Action")
    expect(page.locator("#err-action")).to_have_text("use 'document.create' or 'document.*'")

    # Open one: its JSON, and where it was delivered.
    go_events(page, panel, Action="document.*")
    page.get_by_role("link", name=f"document.create_{tag}").click()
    created = stored(panel, org, f"document.create_{tag}")[0]
    expect(page.get_by_role("heading", name=f"Event {created['seq']}")).to_be_visible()
    expect(page.locator("pre.event-json")).to_contain_text(f'"id": "{created["event"]["id"]}"')
    expect(page.locator("pre.event-json")).to_contain_text('"name": "Ann"')
    where = page.locator('table.deliveries tr[data-destination="Healthy SIEM"]')
    expect(where.locator(".badge")).to_have_text("delivered")
    shot(page, "event")
    page.set_viewport_size(PHONE)
    shot(page, "event-phone")
    page.set_viewport_size(WIDE)

    # Export the filtered view: NDJSON, the stored bytes, newest first.
    go_events(page, panel, Action="document.*")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export NDJSON").click()
    saved = download.value
    assert re.fullmatch(r"auditrelay-events-\d{8}T\d{6}Z\.ndjson", saved.suggested_filename)
    lines = Path(saved.path()).read_bytes().splitlines()
    actions = [orjson.loads(line)["action"] for line in lines]
    assert actions == [f"document.delete_{tag}", f"document.create_{tag}"]
    assert lines[1] == orjson.dumps(created["event"])  # as stored
    answer = page.request.get(panel.base_url + "/admin/events/export?action=document.*")
    assert answer.headers["content-type"] == "application/x-ndjson"
    assert answer.headers["content-disposition"].startswith("attachment;")

    # Live: a notice of newer events, the list itself left as it is.
    expect(page.locator("#newer")).to_be_empty()
    send(panel, org, action=f"document.update_{tag}")
    expect(page.locator("#newer")).to_have_text(re.compile(r"^1 newer event\b"), timeout=SOON)
    assert shown_actions(page) == [f"document.delete_{tag}", f"document.create_{tag}"]
    shot(page, "events-newer")
    page.locator("#newer").get_by_role("link").click()
    assert shown_actions(page)[0] == f"document.update_{tag}"

    page.set_viewport_size(PHONE)
    go_events(page, panel)
    shot(page, "events-phone")
    page.locator("table.events").scroll_into_view_if_needed()
    shot(page, "events-phone-list", top=False)


def test_pages_go_older_by_seq(page: Page, panel: Service) -> None:
    org = new_org(panel)
    tag = uuid.uuid4().hex[:6]
    send_many = [{"action": f"bulk.e{n:02d}_{tag}"} for n in range(55)]
    for overrides in send_many:
        send(panel, org, **overrides)
    sign_in(page, panel, new_person(panel, memberships=[{"org": org, "role": "viewer"}]))
    go_events(page, panel, Action="bulk.*")
    first = shown_actions(page)
    assert len(first) == 50 and first[0] == f"bulk.e54_{tag}" and first[-1] == f"bulk.e05_{tag}"
    page.get_by_role("link", name="Older").click()
    assert shown_actions(page) == [f"bulk.e{n:02d}_{tag}" for n in range(4, -1, -1)]
    expect(page.get_by_role("link", name="Older")).to_have_count(0)
    page.get_by_role("link", name="Newest").click()
    assert shown_actions(page)[0] == f"bulk.e54_{tag}"


def test_an_owner_of_b_sees_nothing_of_a(page: Page, panel: Service) -> None:
    org_a, org_b = new_org(panel, "alpha"), new_org(panel, "beta")
    tag = uuid.uuid4().hex[:6]
    send(panel, org_a, action=f"secret.thing_{tag}")
    send(panel, org_b, action=f"own.thing_{tag}")
    seq_a = stored(panel, org_a, f"secret.thing_{tag}")[0]["seq"]
    sign_in(page, panel, new_person(panel, memberships=[{"org": org_b, "role": "owner"}]))
    page.goto(panel.base_url + f"/admin/events?org={org_a}")  # asking for A changes nothing
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    assert f"own.thing_{tag}" in shown_actions(page)
    expect(page.get_by_text(f"secret.thing_{tag}")).to_have_count(0)
    expect(page.get_by_text(org_a)).to_have_count(0)
    answer = page.goto(panel.base_url + f"/admin/events/{seq_a}")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    exported = page.request.get(panel.base_url + f"/admin/events/export?org={org_a}")
    assert exported.ok and f"own.thing_{tag}".encode() in exported.body()
    assert org_a.encode() not in exported.body()


def test_an_admin_filters_by_organization(page: Page, panel: Service) -> None:
    org_a, org_b = new_org(panel, "alpha"), new_org(panel, "beta")
    tag = uuid.uuid4().hex[:6]
    send(panel, org_a, action=f"one.thing_{tag}")
    send(panel, org_b, action=f"two.thing_{tag}")
    sign_in(page, panel, new_person(panel, admin=True))
    go_events(page, panel, Organization=org_b)
    actions = shown_actions(page)
    assert f"two.thing_{tag}" in actions and f"one.thing_{tag}" not in actions
    rows = page.locator("table.events tbody tr")
    expect(rows.first.locator('[data-label="Organization"]')).to_have_text(org_b)
    shot(page, "events-admin")
