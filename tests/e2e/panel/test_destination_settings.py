"""The destination form's batching, delivery, TLS and signing settings, and the event-type
filter's suggestions, in Debian's Chromium against the service as a real process and
loopback receivers (an HTTPS one whose certificate a throwaway CA, trustme, issues).

Each page visited is saved to `docs/screenshots/`.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from playwright.sync_api import Page, expect
from standardwebhooks.webhooks import Webhook

from tests.support import Receiver, Service, wait_until
from tests.support.panel import PHONE, WIDE, new_org, new_person, row, send, shot, sign_in

SERVER_CA = trustme.CA()
SERVER_CERT = SERVER_CA.issue_cert("127.0.0.1", "localhost")


def pem(blob: trustme.Blob) -> str:
    return blob.bytes().decode()


@pytest.fixture
def tls_receiver() -> Iterator[Receiver]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    SERVER_CERT.configure_cert(context)
    r = Receiver(ssl_context=context)
    yield r
    r.close()


def owner_signed_in(page: Page, panel: Service) -> str:
    org = new_org(panel)
    sign_in(page, panel, new_person(panel, memberships=[{"org": org, "role": "owner"}]))
    return org


def destinations_of(panel: Service, org: str) -> list[dict[str, Any]]:
    with panel.admin() as admin:
        answer = admin.get("/api/v1/destinations")
    assert answer.status_code == 200, answer.text
    return [d for d in answer.json()["destinations"] if d["org"] == org]


def open_section(page: Page, name: str) -> None:
    section = page.locator("details.settings", has=page.locator("summary", has_text=name))
    if section.get_attribute("open") is None:
        section.locator("summary").click()
    expect(section).to_have_attribute("open", "")


def test_add_with_tls_a_wrong_ca_bundle_is_refused_next_to_its_field_and_the_right_ca_tests_fine(
    page: Page, panel: Service, tls_receiver: Receiver
) -> None:
    org = owner_signed_in(page, panel)
    page.get_by_role("button", name="Start streaming").click()
    page.get_by_label("Other (HTTP)").check()
    page.get_by_label("Name", exact=True).fill("SIEM over TLS")
    page.get_by_label("URL").fill(tls_receiver.url + "/audit")
    # The sections are collapsed: the common case stays short.
    for section in ("batch", "delivery", "tls", "signing"):
        expect(page.locator(f"#{section}-settings")).not_to_have_attribute("open", "")
    open_section(page, "TLS")
    not_a_certificate = "-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----"
    page.get_by_label("CA bundle (PEM)").fill(not_a_certificate)
    page.get_by_role("button", name="Add destination").click()
    # The API's words, next to the CA bundle, in a TLS section open again after the reload.
    expect(page.locator("#err-tls-ca_bundle-1")).to_contain_text("the CA bundle must be PEM certificates")
    expect(page.get_by_label("CA bundle (PEM)")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#tls-settings")).to_have_attribute("open", "")
    page.locator("#tls-settings").scroll_into_view_if_needed()
    shot(page, "add-destination-tls-error", top=False)
    assert destinations_of(panel, org) == []

    # A CA that did not issue the receiver's certificate: Test says what went wrong.
    page.get_by_label("CA bundle (PEM)").fill(pem(trustme.CA().cert_pem))
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#test-result")).to_contain_text("Test event not delivered")
    expect(page.locator("#test-result")).to_contain_text("certificate verification failed")
    assert tls_receiver.requests == []

    # The receiver's CA: Test delivers, before anything is saved.
    page.get_by_label("CA bundle (PEM)").fill(pem(SERVER_CA.cert_pem))
    page.get_by_label("Lowest TLS version").select_option("1.3")
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#test-result")).to_contain_text("Test event delivered")
    assert [e["action"] for e in tls_receiver.events()] == ["audit_stream.destination.test"]
    shot(page, "add-destination-tls-test", top=False)
    page.get_by_role("button", name="Add destination").click()
    expect(page.get_by_role("status")).to_have_text("Destination added.")
    [made] = destinations_of(panel, org)
    assert made["tls"]["ca_bundle"].strip() == pem(SERVER_CA.cert_pem).strip()
    assert made["tls"]["min_version"] == "1.3" and made["tls"]["verify"] is True
    send(panel, org, action="document.create")
    wait_until(lambda: any(e["action"] == "document.create" for e in tls_receiver.events()), what="over TLS")
    expect(row(page, "SIEM over TLS").locator(".badge")).to_have_text("healthy")


def test_batching_delivery_and_a_generated_signing_secret_shown_once_then_kept_by_an_edit(
    page: Page, panel: Service, receiver: Receiver
) -> None:
    org = owner_signed_in(page, panel)
    page.goto(panel.base_url + "/admin/log-streaming/new")
    page.get_by_label("Other (HTTP)").check()
    page.get_by_label("Name", exact=True).fill("Signed sink")
    page.get_by_label("URL").fill(receiver.url)
    open_section(page, "Batching")
    # Defaults are the placeholders, those of the kind chosen.
    expect(page.get_by_label("Max events per batch")).to_have_attribute("placeholder", "100")
    page.get_by_label("Splunk").check()
    expect(page.get_by_label("Max events per batch")).to_have_attribute("placeholder", "1000")
    page.get_by_label("Other (HTTP)").check()
    page.get_by_label("Max events per batch").fill("7")
    page.get_by_label("Max wait per batch (ms)").fill("0")
    open_section(page, "Delivery")
    expect(page.get_by_label("Max requests in flight")).to_have_attribute("placeholder", "100")
    page.get_by_label("Ordered").check()
    page.get_by_label("Max requests in flight").fill("3")
    open_section(page, "Signing")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#signing-generate-note")).to_be_visible()
    expect(page.get_by_label("Signing secret", exact=True)).to_be_disabled()
    shot(page, "add-destination-settings", top=False)
    page.set_viewport_size(PHONE)
    page.locator("#signing-settings").scroll_into_view_if_needed()
    shot(page, "add-destination-settings-phone", top=False)
    page.set_viewport_size(WIDE)
    page.get_by_role("button", name="Add destination").click()

    # The secret the service made, shown this once.
    expect(page.get_by_role("heading", name="Signing secret of “Signed sink”")).to_be_visible()
    secret = page.get_by_label("Signing secret").input_value()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret), secret
    shot(page, "signing-secret-generated")
    page.get_by_role("link", name="Continue").click()
    expect(page.get_by_role("status")).to_have_text("Destination added.")
    [made] = destinations_of(panel, org)
    assert made["batch"] == {"max_events": 7, "max_bytes": 1_000_000, "linger_ms": 0}
    assert made["delivery"] == {"ordered": True, "max_in_flight": 3}
    assert made["signing_secret"] == "********" + secret[-4:]
    assert secret not in page.content()

    send(panel, org, action="document.create")
    wait_until(lambda: receiver.events_where(lambda e: e["action"] == "document.create"), what="a delivery")
    signed = receiver.requests[-1]
    Webhook(secret).verify(signed.body, signed.headers, json_parse=False)  # raises when it does not

    # Edit, coming from another panel page: the saved values shown, the secrets masked; an
    # error of a nested field next to it; Save changes one thing and returns there.
    page.goto(f"{panel.base_url}/admin/log-streaming/{made['id']}/edit?back=/admin/events")
    open_section(page, "Batching")
    expect(page.get_by_label("Max events per batch")).to_have_value("7")
    open_section(page, "Delivery")
    expect(page.get_by_label("Ordered")).to_be_checked()
    expect(page.get_by_label("Max requests in flight")).to_have_value("3")
    open_section(page, "Signing")
    expect(page.get_by_label("Signing secret", exact=True)).to_have_value("")
    expect(page.get_by_label("Signing secret", exact=True)).to_have_attribute(
        "placeholder", f"********{secret[-4:]} (unchanged)"
    )
    assert secret not in page.content()
    page.get_by_label("Signing secret", exact=True).fill("whsec_tooshort")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#err-signing_secret-1")).to_have_text("must encode 24 to 64 random bytes, not 6")
    expect(page.locator("#signing-settings")).to_have_attribute("open", "")
    expect(page.locator("#batch-settings")).not_to_have_attribute("open", "")
    page.get_by_label("Signing secret", exact=True).fill("")
    open_section(page, "Delivery")
    page.get_by_label("Max requests in flight").fill("5")
    page.locator("#delivery-settings").scroll_into_view_if_needed()
    shot(page, "edit-destination-settings", top=False)
    page.get_by_role("button", name="Save changes").click()
    expect(page).to_have_url(re.compile(r"/admin/events\?done=saved$"))
    after = panel.destination(made["id"])
    assert after["delivery"] == {"ordered": True, "max_in_flight": 5}
    assert after["batch"] == made["batch"] and after["signing_secret"] == made["signing_secret"]
    assert after["tls"] == made["tls"]


def test_back_never_leads_off_the_panel(page: Page, panel: Service, receiver: Receiver) -> None:
    org = owner_signed_in(page, panel)
    made = panel.add_destination(name="Stays", kind="http", url=receiver.url, org=org, active=False)
    page.goto(f"{panel.base_url}/admin/log-streaming/{made['id']}/edit?back=https://evil.example/admin/")
    expect(page.get_by_role("link", name="Cancel")).to_have_attribute("href", "/admin/log-streaming")
    page.get_by_role("button", name="Save changes").click()
    expect(page).to_have_url(re.compile(r"/admin/log-streaming\?done=saved$"))


def test_the_event_type_filter_offers_the_types_seen_and_filters_by_them(
    page: Page, panel: Service, receiver: Receiver
) -> None:
    org = owner_signed_in(page, panel)
    for action in ("user.login", "document.create", "billing.charge"):
        send(panel, org, action=action)
    page.get_by_role("button", name="Start streaming").click()
    page.get_by_label("Other (HTTP)").check()
    page.get_by_label("Name", exact=True).fill("Logins and documents")
    page.get_by_label("URL").fill(receiver.url)
    offered = page.locator("#seen-event-types option").evaluate_all("(os) => os.map((o) => o.value)")
    assert {"user.login", "user.*", "document.create", "document.*", "billing.charge"} <= set(offered)
    # Choose one of the suggestions, then type a prefix.
    page.get_by_label("Event types seen so far").fill("user.login")
    page.get_by_role("button", name="Add to filter").click()
    expect(page.get_by_label("Filter by audit event type")).to_have_value("user.login")
    filter_box = page.get_by_label("Filter by audit event type")
    filter_box.fill(filter_box.input_value() + "\ndocument.*")
    page.get_by_label("Event types seen so far").fill("doc")
    shot(page, "add-destination-event-types", top=False)
    page.get_by_role("button", name="Add destination").click()
    expect(row(page, "Logins and documents")).to_contain_text("filtered")
    [made] = destinations_of(panel, org)
    assert made["event_types"] == ["user.login", "document.*"]

    send(panel, org, action="billing.charge")  # matches neither: never delivered
    send(panel, org, action="user.login")
    send(panel, org, action="document.update")

    def delivered() -> list[str]:
        return [e["action"] for e in receiver.events() if not e["action"].startswith("audit_stream.")]

    # A new destination starts at the log's head: the three sent before it are not its own.
    wait_until(lambda: delivered() == ["user.login", "document.update"], what="the filtered events")
    assert "billing.charge" not in delivered()


CLIENT_CA = trustme.CA()
CLIENT = CLIENT_CA.issue_cert("relay.client.example")


@pytest.fixture
def mtls_receiver() -> Iterator[Receiver]:
    """HTTPS that asks for a client certificate `CLIENT_CA` issued."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    SERVER_CERT.configure_cert(context)
    CLIENT_CA.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    r = Receiver(ssl_context=context)
    yield r
    r.close()


def test_mutual_tls_the_client_key_is_never_shown_again_and_an_edit_keeps_it(
    page: Page, panel: Service, mtls_receiver: Receiver
) -> None:
    org = owner_signed_in(page, panel)
    key = pem(CLIENT.private_key_pem)
    page.goto(panel.base_url + "/admin/log-streaming/new")
    page.get_by_label("Other (HTTP)").check()
    page.get_by_label("Name", exact=True).fill("Mutual")
    page.get_by_label("URL").fill(mtls_receiver.url)
    open_section(page, "TLS")
    page.get_by_label("CA bundle (PEM)").fill(pem(SERVER_CA.cert_pem))
    page.get_by_label("Client certificate (PEM)").fill(pem(CLIENT.cert_chain_pems[0]))
    page.get_by_label("Client key (PEM)").fill(key)
    page.get_by_label("Filter by audit event type").fill("Not An Event")
    page.get_by_role("button", name="Add destination").click()
    # Refused for another field: the key typed is not put back into the page.
    expect(page.locator("#err-event_types-1")).to_be_visible()
    expect(page.get_by_label("Client key (PEM)")).to_have_value("")
    assert "PRIVATE KEY-----\n" not in page.content()
    page.get_by_label("Filter by audit event type").fill("")
    page.get_by_role("button", name="Add destination").click()
    expect(page.locator("#err-tls-client_key-1")).to_have_text("is required with a client certificate")
    page.get_by_label("Client key (PEM)").fill(key)
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#test-result")).to_contain_text("Test event delivered")
    page.get_by_role("button", name="Add destination").click()
    expect(page.get_by_role("status")).to_have_text("Destination added.")
    [made] = destinations_of(panel, org)
    assert made["tls"]["client_key"] == "********"

    # The edit page: the key stored, shown by a placeholder only; saving keeps it.
    page.goto(f"{panel.base_url}/admin/log-streaming/{made['id']}/edit")
    open_section(page, "TLS")
    expect(page.get_by_label("Client key (PEM)")).to_have_value("")
    expect(page.get_by_label("Client key (PEM)")).to_have_attribute(
        "placeholder", "******** (stored: leave empty to keep it)"
    )
    assert "PRIVATE KEY-----\n" not in page.content()
    page.get_by_label("Name", exact=True).fill("Mutual TLS")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Changes saved.")
    with panel.admin() as admin:
        tested = admin.post(f"/api/v1/destinations/{made['id']}/test").json()
    assert tested["delivered"], tested  # the stored key still answers the receiver's request


def test_rotating_the_signing_secret_and_generate_without_javascript(
    browser: Any, panel: Service, receiver: Receiver
) -> None:
    context = browser.new_context(viewport=WIDE, java_script_enabled=False)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        org = owner_signed_in(page, panel)
        made = panel.add_destination(
            name="Rotating", kind="http", url=receiver.url, org=org, signing_secret="generate"
        )
        first = made["signing_secret"]
        page.goto(f"{panel.base_url}/admin/log-streaming/{made['id']}/edit")
        # Without the script, Generate posts the form and it comes back saying what will happen.
        page.locator("#signing-settings summary").click()
        page.get_by_role("button", name="Generate").click()
        expect(page.locator("#signing-generate-note")).to_be_visible()
        expect(page.locator("#signing-settings")).to_have_attribute("open", "")
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("heading", name="Signing secret of “Rotating”")).to_be_visible()
        expect(page.get_by_role("status")).to_contain_text("shown this once")
        expect(page.locator("#generated-hint")).to_contain_text("the previous secret keeps signing")
        second = page.get_by_label("Signing secret").input_value()
        assert second.startswith("whsec_") and second != first
        rotated = panel.destination(made["id"])
        assert rotated["signing_secret"] == "********" + second[-4:]
        assert rotated["signing_secret_previous"] == "********" + first[-4:]
        page.get_by_role("link", name="Continue").click()
        expect(page.get_by_role("status")).to_have_text("Changes saved.")
        # End the rotation: only the new secret signs.
        page.goto(f"{panel.base_url}/admin/log-streaming/{made['id']}/edit")
        page.locator("#signing-settings summary").click()
        expect(page.get_by_label("Previous signing secret")).to_have_attribute(
            "placeholder", f"********{first[-4:]} (unchanged)"
        )
        page.get_by_label("Stop signing with the previous secret (end the rotation)").check()
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("status")).to_have_text("Changes saved.")
        ended = panel.destination(made["id"])
        assert ended["signing_secret"] == rotated["signing_secret"]
        assert ended["signing_secret_previous"] is None
    finally:
        context.close()


def test_edit_from_the_destinations_page_returns_there(
    page: Page, panel: Service, receiver: Receiver
) -> None:
    org = owner_signed_in(page, panel)
    made = panel.add_destination(name="Came from its page", kind="http", url=receiver.url, org=org)
    page.goto(f"{panel.base_url}/admin/log-streaming/{made['id']}")
    page.locator(".page-actions").get_by_role("button", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit “Came from its page”")).to_be_visible()
    expect(page.get_by_role("link", name="Cancel")).to_have_attribute(
        "href", f"/admin/log-streaming/{made['id']}"
    )
    open_section(page, "Batching")
    page.get_by_label("Max events per batch").fill("50")
    page.get_by_role("button", name="Save changes").click()
    expect(page).to_have_url(f"{panel.base_url}/admin/log-streaming/{made['id']}?done=saved")
    expect(page.get_by_role("heading", name="Came from its page")).to_be_visible()
    expect(page.get_by_text("Changes saved.")).to_be_visible()
    assert panel.destination(made["id"])["batch"]["max_events"] == 50
