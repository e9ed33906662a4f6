"""The admin panel's Administration section in a real browser (Debian's Chromium, driven by
Playwright) against the service as a real process: Organizations, People and API tokens.

Every change is checked where it lands (the API, the audit log, a token used over HTTP),
not only on the page. Each page visited is saved to `docs/screenshots/`.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.support import Service
from tests.support.panel import PASSWORD, PHONE, WIDE, new_org, new_person, shot, sign_in


def _events(panel: Service, action: str) -> list[dict[str, Any]]:
    with panel.admin() as admin:
        answer = admin.get("/api/v1/events", params={"action": action, "limit": 1000})
    assert answer.status_code == 200, answer.text
    return [e["event"] for e in answer.json()["events"]]


def _api(panel: Service, token: str) -> int:
    answer = httpx.get(
        panel.base_url + "/api/v1/destinations", headers={"Authorization": f"Bearer {token}"}, timeout=15
    )
    return answer.status_code


def _user(panel: Service, email: str) -> dict[str, Any]:
    with panel.admin() as admin:
        people = admin.get("/api/v1/users").json()["users"]
    return next(p for p in people if p["email"] == email)


def _person_row(page: Page, email: str) -> Any:
    return page.locator(f'tr[data-person="{email}"]')


def test_an_admin_creates_renames_and_deletes_an_organization(page: Page, panel: Service) -> None:
    admin_email = new_person(panel, admin=True)
    sign_in(page, panel, admin_email)
    page.get_by_role("navigation", name="Admin Panel").get_by_role("link", name="Organizations").click()
    expect(page.get_by_role("heading", name="Organizations", exact=True)).to_be_visible()
    page.get_by_role("button", name="Create organization").click()
    # The service's rule, next to the field.
    page.get_by_label("Name", exact=True).fill("Not A Name")
    page.get_by_role("button", name="Create organization").click()
    expect(page.locator("#err-name-1")).to_contain_text("must be 1 to 63 lowercase letters")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    shot(page, "create-organization-errors")
    name = f"made-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Title (optional)").fill("Made in the panel")
    page.get_by_role("button", name="Create organization").click()
    expect(page.get_by_role("status")).to_have_text("Organization created.")
    row = page.locator(f'tr[data-org="{name}"]')
    expect(row).to_contain_text("Made in the panel")
    # The same name again: the store's refusal, next to the field.
    page.get_by_role("button", name="Create organization").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create organization").click()
    expect(page.locator("#err-name-1")).to_have_text(f"an organization named '{name}' exists already")
    page.get_by_role("link", name="Cancel").click()

    row.get_by_role("button", name="Rename").click()
    page.get_by_label("Title").fill("Renamed in the panel")
    page.get_by_role("button", name="Rename organization").click()
    expect(row).to_contain_text("Renamed in the panel")
    shot(page, "organizations")
    row.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Delete “{name}”?")
    shot(page, "delete-organization-dialog")
    dialog.get_by_role("button", name="Delete organization").click()
    expect(page.get_by_role("status")).to_contain_text("Organization deleted")
    expect(row).to_have_count(0)
    with panel.admin() as admin:
        assert admin.get(f"/api/v1/orgs/{name}").status_code == 404
    changes = [e for e in _events(panel, "audit_stream.org.*") if e["entity"]["id"] == name]
    assert sorted(e["action"] for e in changes) == [
        "audit_stream.org.create",
        "audit_stream.org.delete",
        "audit_stream.org.rename",
    ]
    assert all(e["actor"]["type"] == "user" for e in changes)


def test_an_admin_adds_a_person_changes_their_role_locks_and_removes_them(page: Page, panel: Service) -> None:
    org = new_org(panel)
    sign_in(page, panel, new_person(panel, admin=True))
    page.goto(panel.base_url + "/admin/people")
    page.get_by_role("button", name="Add person").click()
    email = f"ada-{uuid.uuid4().hex[:6]}@example.com"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Name (optional)").fill("Ada Lovelace")
    page.get_by_label("Role").select_option("owner")
    page.get_by_label("Organization").select_option(org)
    page.get_by_label("Password (optional)").fill("short")
    page.get_by_role("button", name="Add person").click()
    expect(page.locator("#err-password-1")).to_be_visible()  # the password rule, in its words
    shot(page, "add-person-errors")
    page.get_by_label("Password (optional)").fill(PASSWORD)
    page.get_by_role("button", name="Add person").click()
    expect(page.get_by_role("status")).to_have_text("Person added.")
    row = _person_row(page, email)
    expect(row).to_contain_text(f"owner of {org}")
    expect(row).to_contain_text("password")
    assert _user(panel, email)["memberships"] == [{"org": org, "role": "owner"}]

    row.get_by_role("button", name="Edit").click()
    page.get_by_label(org, exact=True).select_option("viewer")
    page.get_by_role("button", name="Save changes").click()
    expect(row).to_contain_text(f"viewer of {org}")
    assert _user(panel, email)["memberships"] == [{"org": org, "role": "viewer"}]

    row.get_by_role("button", name="Lock").click()
    expect(page.get_by_role("status")).to_contain_text("Account locked")
    expect(row.locator(".badge")).to_have_text("locked")
    session = httpx.post(
        panel.base_url + "/api/v1/session", json={"email": email, "password": PASSWORD}, timeout=15
    )
    assert session.status_code == 401 and "locked" in session.text
    shot(page, "people")
    row.get_by_role("button", name="Unlock").click()
    expect(row.locator(".badge")).to_have_text("active")

    row.get_by_role("button", name="Remove").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Remove {email}?")
    shot(page, "remove-person-dialog")
    dialog.get_by_role("button", name="Remove person").click()
    expect(page.get_by_role("status")).to_have_text("Person removed.")
    expect(row).to_have_count(0)
    changes = [e for e in _events(panel, "audit_stream.user.*") if email in str(e)]
    assert [e["action"] for e in changes if e["actor"]["type"] == "user"] == [
        "audit_stream.user.create",
        "audit_stream.user.update",
        "audit_stream.user.update",
        "audit_stream.user.update",
        "audit_stream.user.delete",
    ]


def test_an_admin_creates_a_token_sees_it_once_rotates_and_revokes_it(page: Page, panel: Service) -> None:
    org = new_org(panel)
    sign_in(page, panel, new_person(panel, admin=True))
    page.goto(panel.base_url + "/admin/api-tokens")
    page.get_by_role("button", name="Create token").click()
    page.get_by_label("Name", exact=True).fill("reporting script")
    page.get_by_label("Role").select_option("viewer")
    page.get_by_label("Organization").select_option(org)
    page.get_by_label("Expires in (optional)").fill("ninety days")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#err-expires_in-1")).to_contain_text(
        "must be a positive number followed by s, m, h or d"
    )
    shot(page, "create-token-errors")
    page.get_by_label("Expires in (optional)").fill("90d")
    page.get_by_role("button", name="Create token").click()

    # Post-redirect-get: the list, with the secret shown once and never in the URL.
    expect(page).to_have_url(re.compile(r"/admin/api-tokens$"))
    expect(page.get_by_text("you will not see it again")).to_be_visible()
    secret = page.get_by_label("The token").input_value()
    assert secret.startswith("ar_") and secret not in page.url
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    shot(page, "api-token-created")
    assert _api(panel, secret) == 200  # it works against the API
    row = page.locator('tr[data-name="reporting script"]')
    expect(row).to_contain_text(org)
    expect(row).to_contain_text("viewer")
    assert secret not in row.inner_text()
    page.reload()
    expect(page.get_by_text("you will not see it again")).to_have_count(0)
    assert secret not in page.content()
    with panel.admin() as admin:
        mine = [t for t in admin.get("/api/v1/tokens").json()["tokens"] if t["name"] == "reporting script"]
    assert len(mine) == 1  # the reload made nothing again

    row.get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Rotate “reporting script”?")
    dialog.get_by_role("button", name="Rotate token").click()
    expect(page.get_by_role("heading", name="Token rotated: reporting script")).to_be_visible()
    rotated = page.get_by_label("The token").input_value()
    assert rotated != secret
    assert _api(panel, secret) == 401 and _api(panel, rotated) == 200
    page.set_viewport_size(PHONE)
    shot(page, "api-tokens-phone")
    page.set_viewport_size(WIDE)

    live = page.locator('tr[data-name="reporting script"]').filter(
        has=page.get_by_role("button", name="Revoke")
    )
    live.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke token").click()
    expect(page.get_by_role("status")).to_contain_text("Token revoked")
    assert _api(panel, rotated) == 401
    with panel.admin() as admin:
        made = admin.post(
            "/api/v1/tokens", json={"name": "short-lived", "role": "ingest", "expires_in": "1s"}
        )
    assert made.status_code == 201, made.text
    time.sleep(1.2)
    page.reload()
    expect(page.locator('tr[data-name="short-lived"] .badge')).to_have_text("expired")
    shot(page, "api-tokens")
    actions = [e["action"] for e in _events(panel, "audit_stream.token.*") if e.get("org") == org]
    assert actions == ["audit_stream.token.create", "audit_stream.token.rotate", "audit_stream.token.revoke"]


def test_an_owner_sees_only_their_organization_and_cannot_make_an_admin(page: Page, panel: Service) -> None:
    mine, theirs = new_org(panel, "mine"), new_org(panel, "theirs")
    colleague = new_person(panel, memberships=[{"org": mine, "role": "viewer"}])
    stranger = new_person(panel, memberships=[{"org": theirs, "role": "owner"}])
    with panel.admin() as admin:
        for org, name in ((mine, "our token"), (theirs, "their token")):
            made = admin.post("/api/v1/tokens", json={"name": name, "role": "viewer", "org": org})
            assert made.status_code == 201, made.text
    sign_in(page, panel, new_person(panel, memberships=[{"org": mine, "role": "owner"}]))

    page.goto(panel.base_url + "/admin/people")
    expect(_person_row(page, colleague)).to_be_visible()
    assert stranger not in page.content() and theirs not in page.content()
    page.get_by_role("button", name="Add person").click()
    page.get_by_label("Email").fill(f"boss-{uuid.uuid4().hex[:6]}@example.com")
    page.get_by_label("Role").select_option("admin")
    page.get_by_role("button", name="Add person").click()
    expect(page.locator("#err-role-1")).to_have_text(
        "an owner adds people to their own organization only: give 'role', not these"
    )
    shot(page, "add-person-owner-refused")
    # An owner changes a member's role in their organization, and removes them from it only.
    page.goto(panel.base_url + "/admin/people")
    _person_row(page, colleague).get_by_role("button", name="Change role").click()
    page.get_by_label(f"Role in {mine}").select_option("owner")
    page.get_by_role("button", name="Save changes").click()
    expect(_person_row(page, colleague)).to_contain_text("owner")
    assert _user(panel, colleague)["memberships"] == [{"org": mine, "role": "owner"}]
    _person_row(page, colleague).get_by_role("button", name="Remove").click()
    expect(page.get_by_role("dialog")).to_contain_text(f"Remove {colleague} from {mine}?")
    page.get_by_role("dialog").get_by_role("button", name="Remove person").click()
    expect(_person_row(page, colleague)).to_have_count(0)
    assert _user(panel, colleague)["memberships"] == []  # the account stays
    expect(page.get_by_role("button", name="Lock")).to_have_count(0)  # admins lock accounts

    page.goto(panel.base_url + "/admin/api-tokens")
    expect(page.locator('tr[data-name="our token"]')).to_be_visible()
    assert "their token" not in page.content() and theirs not in page.content()
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_label("Organization").locator("option")).to_have_text([mine])
    page.get_by_label("Name", exact=True).fill("would be admin")
    page.get_by_label("Role").select_option("admin")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#err-role-1")).to_have_text(
        "an owner cannot create admin tokens; ask an instance admin"
    )

    page.goto(panel.base_url + "/admin/organizations")
    expect(page.locator(f'tr[data-org="{mine}"]')).to_be_visible()
    assert theirs not in page.content()
    for button in ("Create organization", "Rename", "Delete"):
        expect(page.get_by_role("button", name=button)).to_have_count(0)
    answer = page.goto(panel.base_url + "/admin/organizations/new")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_a_viewer_gets_the_not_allowed_page(page: Page, panel: Service) -> None:
    org = new_org(panel)
    sign_in(page, panel, new_person(panel, memberships=[{"org": org, "role": "viewer"}]))
    nav = page.get_by_role("navigation", name="Admin Panel")
    expect(nav.get_by_role("link", name="People")).to_have_count(0)
    for path in ("/admin/organizations", "/admin/people", "/admin/api-tokens", "/admin/api-tokens/new"):
        answer = page.goto(panel.base_url + path)
        assert answer is not None and answer.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    shot(page, "api-tokens-viewer")
