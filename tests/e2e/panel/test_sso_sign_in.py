"""**Sign in with SSO** in Debian's Chromium: the panel's sign-in page, the real OpenID
provider the SSO tests use (panva's oidc-provider on Node, `tests/support/oidc_provider.py`),
and back to the Admin Panel signed in as that person, with the role the provider's claim gives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support import Service
from tests.support.oidc_provider import OidcAccount, OidcProvider
from tests.support.panel import shot
from tests.support.sso import service_with_sso

ACCOUNTS = (
    OidcAccount(sub="alice", email="alice@example.test", name="Alice Admin", roles=("admin",)),
    OidcAccount(sub="dave", email="dave@example.test", name="Dave Owner", roles=("sso-acme:owner",)),
)


@pytest.fixture(scope="module")
def sso_panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, OidcProvider]]:
    """The service with single sign-on through the provider, which knows `ACCOUNTS`."""
    with service_with_sso(
        Path(tmp_path_factory.mktemp("sso-panel")),
        ACCOUNTS,
        "sso-acme",
        "auditrelay-panel",
        "s3cret-of-the-panel",
    ) as pair:
        yield pair


def sign_in_at_the_provider(page: Page, idp: OidcProvider, login: str) -> None:
    """The provider's own page (a form with one field, `login`: no password there)."""
    expect(page).to_have_url(re.compile("^" + re.escape(idp.issuer) + "/interaction/"))
    expect(page.get_by_role("heading", name="Sign-in")).to_be_visible()
    page.locator("input[name=login]").fill(login)
    page.get_by_role("button", name="Sign in").click()


def test_an_admin_signs_in_with_sso_and_lands_where_they_were_going(
    page: Page, sso_panel: tuple[Service, OidcProvider]
) -> None:
    service, idp = sso_panel
    page.goto(service.base_url + "/admin/log-streaming/new")
    expect(page).to_have_url(re.compile(r"/admin/sign-in\?next="))
    sso = page.get_by_role("link", name="Sign in with SSO")
    expect(sso).to_be_visible()
    shot(page, "sign-in-sso")
    sso.click()
    sign_in_at_the_provider(page, idp, "alice")
    # Back at the panel, signed in as the provider's person, where they were going.
    expect(page).to_have_url(service.base_url + "/admin/log-streaming/new")
    expect(page.get_by_role("heading", name="Add destination")).to_be_visible()
    expect(page.locator(".top .person")).to_have_text("alice@example.test (admin)")
    page.get_by_role("navigation", name="Admin Panel").get_by_role("link", name="Log Streaming").click()
    expect(page.get_by_role("heading", name="Log Streaming")).to_be_visible()
    shot(page, "signed-in-with-sso")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["auditrelay_session"]["httpOnly"]
    # The session is the API's own, made by SSO.
    me = page.request.get(service.base_url + "/api/v1/session").json()
    assert me["user"]["email"] == "alice@example.test" and me["via"] == "sso" and me["role"] == "admin"


def test_an_owner_signs_in_with_sso_into_their_organization(
    page: Page, sso_panel: tuple[Service, OidcProvider]
) -> None:
    service, idp = sso_panel
    page.goto(service.base_url + "/admin")
    page.get_by_role("link", name="Sign in with SSO").click()
    sign_in_at_the_provider(page, idp, "dave")
    expect(page.get_by_role("heading", name="Log Streaming")).to_be_visible()
    expect(page.locator(".top .person")).to_have_text("dave@example.test (owner)")
    expect(page.locator(".top .scope")).to_have_text("Organization sso-acme")
    # Signing out ends the session: the panel asks to sign in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/admin/sign-in"))
    page.goto(service.base_url + "/admin/log-streaming")
    expect(page).to_have_url(re.compile(r"/admin/sign-in"))
