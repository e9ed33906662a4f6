"""The admin panel's Log Streaming section in a real browser: headless Chromium (Debian's `/usr/bin/chromium`)
driven by Playwright, against the service as a real process and loopback receivers.

Chromium is never downloaded: when `/usr/bin/chromium` is missing these tests fail (they do
not skip); `.ci/run` installs it. Every page visited is saved to `docs/screenshots/`
(1280 by 800, and the list at phone width too).
"""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.support import HecReceiver, Receiver, Service, wait_until
from tests.support.panel import PASSWORD, PHONE, SOON, WIDE, new_org, new_person, row, send, shot, sign_in


def test_sign_in_wrong_password_and_sign_out(page: Page, panel: Service) -> None:
    org = new_org(panel)
    email = new_person(panel, memberships=[{"org": org, "role": "owner"}])
    page.goto(panel.base_url + "/admin/log-streaming")
    expect(page).to_have_url(re.compile(r"/admin/sign-in"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("wrong email or password")  # the API's words
    shot(page, "sign-in")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Log Streaming")).to_be_visible()
    # The Secure session cookie was kept by Chromium over http://127.0.0.1.
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["auditrelay_session"]["secure"] and cookies["auditrelay_session"]["httpOnly"]
    nav = page.get_by_role("navigation", name="Admin Panel")
    for entry in ("Log Streaming", "Events", "Organizations", "People", "API tokens"):
        expect(nav.get_by_role("link", name=entry)).to_be_visible()
    expect(page.get_by_role("button", name="Start streaming")).to_be_visible()
    shot(page, "log-streaming-empty")
    page.get_by_role("link", name="Events").click()
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/admin/sign-in"))
    page.goto(panel.base_url + "/admin/log-streaming")
    expect(page).to_have_url(re.compile(r"/admin/sign-in"))


def test_add_http_and_splunk_destinations_and_see_events_arrive(
    page: Page, panel: Service, receiver: Receiver, hec: HecReceiver
) -> None:
    org = new_org(panel)
    sign_in(page, panel, new_person(panel, memberships=[{"org": org, "role": "owner"}]))
    page.get_by_role("button", name="Start streaming").click()
    expect(page.get_by_role("heading", name="Add destination")).to_be_visible()
    page.get_by_label("Other (HTTP)").check()
    page.get_by_label("Name", exact=True).fill("My SIEM")
    page.get_by_label("URL").fill(receiver.url)
    # Custom headers: add two, delete the second.
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header name 1").fill("X-Env")
    page.get_by_label("Header value 1").fill("demo")
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header name 2").fill("X-Api-Key")
    page.get_by_label("Header value 2").fill("will-be-deleted")
    page.get_by_role("button", name="Delete header 2").click()
    expect(page.get_by_label("Header name 2")).to_have_count(0)
    # Test before saving: what the destination answered is shown; nothing is saved.
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#test-result")).to_contain_text("Test event delivered")
    expect(page.locator("#test-result")).to_contain_text("HTTP 200")
    tested = receiver.events()
    assert [e["action"] for e in tested] == ["audit_stream.destination.test"]
    assert receiver.requests[0].header("x-env") == "demo" and receiver.requests[0].header("x-api-key") is None
    shot(page, "add-destination-http")
    shot(page, "add-destination-test-result", top=False)
    page.get_by_role("button", name="Add destination").click()
    expect(page.get_by_role("status")).to_have_text("Destination added.")
    expect(row(page, "My SIEM")).to_contain_text("Other (HTTP)")

    # Splunk: the token with its "Splunk " prefix.
    page.get_by_role("button", name="Add destination").click()
    page.get_by_label("Splunk").check()
    expect(page.get_by_text('"Splunk " followed by the HEC token')).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Splunk prod")
    page.get_by_label("URL").fill(hec.url)
    page.get_by_label("Token", exact=True).fill("Splunk " + hec.token)
    page.get_by_label("Filter by audit event type").fill("document.*")
    shot(page, "add-destination-splunk")
    page.get_by_role("button", name="Add destination").click()
    expect(row(page, "Splunk prod")).to_contain_text("filtered")

    send(panel, org)
    wait_until(lambda: len(receiver.events_where(lambda e: e["action"] == "document.create")) == 1)
    wait_until(lambda: len(hec.events()) >= 1)
    assert hec.events()[0]["action"] == "document.create"
    # The badges turn healthy without a reload (the list polls its figures).
    expect(row(page, "My SIEM").locator(".badge")).to_have_text("healthy", timeout=SOON)
    expect(row(page, "Splunk prod").locator(".badge")).to_have_text("healthy", timeout=SOON)
    expect(row(page, "Splunk prod").locator('[id^="last-"] time')).to_be_visible()
    shot(page, "log-streaming")
    page.set_viewport_size(PHONE)
    shot(page, "log-streaming-phone")
    page.set_viewport_size(WIDE)

    # What the panel did is in the log, as the API writes it, with the person as actor.
    with panel.admin() as admin:
        events = admin.get("/api/v1/events", params={"action": "audit_stream.destination.*", "org": org})
    changes = [e["event"] for e in events.json()["events"] if not e["event"]["action"].endswith(".health")]
    actions = [e["action"] for e in changes]
    assert actions == [
        "audit_stream.destination.tested",
        "audit_stream.destination.create",
        "audit_stream.destination.create",
    ]
    assert all(e["actor"]["type"] == "user" for e in changes)


def test_errors_show_next_to_their_field_and_the_header_limit(page: Page, panel: Service) -> None:
    org = new_org(panel)
    sign_in(page, panel, new_person(panel, memberships=[{"org": org, "role": "owner"}]))
    page.goto(panel.base_url + "/admin/log-streaming/new")
    page.get_by_label("Other (HTTP)").check()
    page.get_by_label("Name", exact=True).fill("Bad one")
    page.get_by_label("URL").fill("ftp://example.com/x")
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header name 1").fill("Content-Type")
    page.get_by_label("Header value 1").fill("text/plain")
    page.get_by_label("Filter by audit event type").fill("Not An Event")
    page.get_by_role("button", name="Add destination").click()
    expect(page.locator("#err-headers-0-1")).to_contain_text("is set by auditrelay and cannot be overridden")
    expect(page.locator("#err-event_types-1")).to_contain_text("is not an event type")
    expect(page.get_by_label("Filter by audit event type")).to_have_attribute("aria-invalid", "true")
    shot(page, "add-destination-errors")
    page.get_by_label("Filter by audit event type").fill("")
    page.get_by_role("button", name="Delete header 1").click()
    page.get_by_role("button", name="Add destination").click()
    expect(page.locator("#err-url-1")).to_be_visible()  # the kind's own check of the URL
    # At most 20 custom headers: the button disables at 20 and says why.
    add = page.get_by_role("button", name="Add header")
    for _ in range(20):
        add.click()
    expect(page.locator("#header-rows .header-row")).to_have_count(20)
    expect(add).to_be_disabled()
    expect(page.locator("#header-limit")).to_have_text(
        "At most 20 custom headers: delete one to add another."
    )
    page.locator("#add-header").scroll_into_view_if_needed()
    shot(page, "add-destination-header-limit", top=False)
    page.get_by_role("button", name="Delete header 3").click()
    expect(add).to_be_enabled()


def test_edit_pause_resume_and_delete_through_the_modal(
    page: Page, panel: Service, receiver: Receiver
) -> None:
    org = new_org(panel)
    with panel.admin() as admin:
        made = admin.post(
            "/api/v1/destinations",
            json={
                "name": "Audit sink",
                "kind": "http",
                "url": receiver.url + "?key=abc",
                "org": org,
                "headers": [
                    {"name": "X-Env", "value": "demo"},
                    {"name": "X-Team", "value": "sec"},
                    {"name": "X-Api-Key", "value": "k-1234-5678-6789"},
                ],
            },
        )
    assert made.status_code == 201, made.text
    sign_in(page, panel, new_person(panel, memberships=[{"org": org, "role": "owner"}]))
    sink = row(page, "Audit sink")
    expect(sink.locator("code")).to_have_text(re.sub(r"\?.*", "?********", receiver.url + "?key=abc"))
    sink.get_by_role("button", name="Edit Audit sink").click()
    expect(page.get_by_role("heading", name="Edit “Audit sink”")).to_be_visible()
    expect(page.get_by_label("Header value 3")).to_have_attribute("placeholder", re.compile(r"\*+6789"))
    page.get_by_label("Header value 1").fill("staging")
    page.get_by_role("button", name="Delete header 2").click()
    page.get_by_label("Name", exact=True).fill("Audit sink (staging)")
    shot(page, "edit-destination")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Changes saved.")
    with panel.admin() as admin:
        saved = admin.get(f"/api/v1/destinations/{made.json()['id']}").json()
    assert [(h["name"], h["value"]) for h in saved["headers"]] == [
        ("X-Env", "staging"),
        ("X-Api-Key", "********6789"),
    ]
    assert saved["url"].endswith("?********")  # the masked URL shown was left as it was

    sink = row(page, "Audit sink (staging)")
    sink.get_by_role("button", name="Pause Audit sink (staging)").click()
    expect(page.get_by_role("status")).to_have_text("Delivery paused; its position is kept.")
    expect(sink.locator(".badge")).to_have_text("paused")
    sink.get_by_role("button", name="Resume Audit sink (staging)").click()
    expect(sink.get_by_role("button", name="Pause Audit sink (staging)")).to_be_visible()
    expect(sink.locator(".badge")).not_to_have_text("paused")

    sink.get_by_role("button", name="Delete Audit sink (staging)").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete “Audit sink (staging)”?")
    shot(page, "delete-destination-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    sink.get_by_role("button", name="Delete Audit sink (staging)").click()
    page.keyboard.press("Escape")  # the keyboard closes it too
    expect(dialog).to_be_hidden()
    sink.get_by_role("button", name="Delete Audit sink (staging)").click()
    dialog.get_by_role("button", name="Delete destination").click()
    expect(page.get_by_role("status")).to_have_text("Destination deleted.")
    expect(sink).to_have_count(0)
    with panel.admin() as admin:
        events = admin.get("/api/v1/events", params={"action": "audit_stream.destination.*", "org": org})
    actions = [e["event"]["action"] for e in events.json()["events"]]
    assert [a for a in actions if not a.endswith(".health")] == [
        "audit_stream.destination.create",
        "audit_stream.destination.update",
        "audit_stream.destination.pause",
        "audit_stream.destination.resume",
        "audit_stream.destination.delete",
    ]


def test_an_owner_sees_nothing_of_another_organization(
    page: Page, panel: Service, receiver: Receiver
) -> None:
    mine, theirs = new_org(panel), new_org(panel)
    ours = panel.add_destination(name="Ours", kind="http", url=receiver.url, org=mine, active=False)
    other = panel.add_destination(
        name="Theirs, secret", kind="http", url=receiver.url, org=theirs, active=False
    )
    sign_in(page, panel, new_person(panel, memberships=[{"org": mine, "role": "owner"}]))
    expect(row(page, "Ours")).to_be_visible()
    content = page.content()
    assert "Theirs, secret" not in content and other["id"] not in content and theirs not in content
    page.goto(f"{panel.base_url}/admin/log-streaming/{other['id']}/edit")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert "Theirs, secret" not in page.content()
    # A forged change (without the CSRF token) is refused too.
    answer = page.request.post(f"{panel.base_url}/admin/log-streaming/{ours['id']}/pause")
    assert answer.status == 403
    assert panel.destination(ours["id"])["active"] is False  # as it was: nothing changed


def test_a_viewer_sees_no_control_that_changes_anything(
    page: Page, panel: Service, receiver: Receiver
) -> None:
    org = new_org(panel)
    made = panel.add_destination(name="Watched", kind="http", url=receiver.url, org=org)
    sign_in(page, panel, new_person(panel, memberships=[{"org": org, "role": "viewer"}]))
    expect(row(page, "Watched")).to_be_visible()
    buttons = [b.inner_text().strip() for b in page.get_by_role("button").all()]
    assert buttons == ["Sign out"], buttons
    assert page.locator("main form, main input, main select, main textarea").count() == 0
    nav = page.get_by_role("navigation", name="Admin Panel")
    expect(nav.get_by_role("link", name="People")).to_have_count(0)
    shot(page, "log-streaming-viewer")
    for path in ("/admin/log-streaming/new", f"/admin/log-streaming/{made['id']}/edit"):
        page.goto(panel.base_url + path)
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_the_organization_switcher(page: Page, panel: Service, receiver: Receiver) -> None:
    # A person acts in their first organization (by name) until they choose another.
    first, second = new_org(panel, "aa"), new_org(panel, "zz")
    panel.add_destination(name="First's", kind="http", url=receiver.url, org=first, active=False)
    panel.add_destination(name="Second's", kind="http", url=receiver.url, org=second, active=False)
    email = new_person(
        panel, memberships=[{"org": first, "role": "owner"}, {"org": second, "role": "viewer"}]
    )
    sign_in(page, panel, email)
    expect(row(page, "First's")).to_be_visible()
    expect(row(page, "Second's")).to_have_count(0)
    page.get_by_label("Organization").select_option(second)
    page.get_by_role("button", name="Switch").click()
    expect(row(page, "Second's")).to_be_visible()
    expect(row(page, "First's")).to_have_count(0)
    expect(page.get_by_role("button", name="Add destination")).to_have_count(0)  # a viewer there
    # The session's choice, as PUT /api/v1/session/org makes it.
    cookie = {c["name"]: c["value"] for c in page.context.cookies()}["auditrelay_session"]
    me = httpx.get(panel.base_url + "/api/v1/session", headers={"Cookie": f"auditrelay_session={cookie}"})
    assert me.json()["org"] == second and me.json()["role"] == "viewer"
