"""What the admin panel's browser tests share: signing in, people and organizations made
through the API, screenshots saved to `docs/screenshots/`."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, ViewportSize, expect

from tests.support.factories import make_event
from tests.support.service import ROOT, Service

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "correct horse battery staple"
WIDE: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
#: Milliseconds the page may take to show what the service did (the list polls every 2 s).
SOON = 10_000


def shot(page: Page, name: str, top: bool = True) -> None:
    """The page as seen (the viewport), from its top unless `top` is False."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if top:
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def new_org(service: Service, prefix: str = "acme") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    service.ensure_org(name)
    return name


def new_person(service: Service, **body: Any) -> str:
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    with service.admin() as admin:
        made = admin.post("/api/v1/users", json={"email": email, "password": PASSWORD, **body})
    assert made.status_code == 201, made.text
    return email


def sign_in(page: Page, service: Service, email: str) -> None:
    page.goto(service.base_url + "/admin")
    expect(page).to_have_url(re.compile(r"/admin/sign-in"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Log Streaming")).to_be_visible()


def send(service: Service, org: str, **overrides: Any) -> None:
    """An event of `org`, sent with the instance ingest token."""
    service.send({**make_event(**overrides), "org": org})


def row(page: Page, name: str) -> Any:
    return page.locator(f'tr[data-destination="{name}"]')
