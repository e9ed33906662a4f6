"""Every control of every page has a name a screen reader announces, and the keyboard alone
signs in.

A form field's name is its `<label>` (or `aria-label` / `aria-labelledby`); a button's or a
link's is its text (or `aria-label`). The pages are walked as an admin, who sees every
control there is, with a destination, a dead letter and events in place.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.support import Receiver, Service, wait_until
from tests.support.panel import PASSWORD, new_org, new_person, send, sign_in

#: The controls of the page that no assistive technology could name, as short HTML.
UNNAMED = """() => {
  const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const named = el => {
    if ((el.getAttribute('aria-label') || '').trim()) return true;
    const by = el.getAttribute('aria-labelledby');
    const text = id => (document.getElementById(id)?.textContent || '').trim();
    if (by && by.split(/\\s+/).some(text)) return true;
    if (['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName)) {
      if (el.type === 'submit' || el.type === 'button') return !!(el.value || '').trim();
      return [...(el.labels || [])].some(label => label.textContent.trim());
    }
    return !!(el.textContent || '').trim() || !!el.querySelector('img[alt]:not([alt=""]), svg[aria-label]');
  };
  return [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
    .filter(visible).filter(el => !named(el)).map(el => el.outerHTML.slice(0, 160));
}"""


def assert_named(page: Page, where: str) -> None:
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # closed ones too
    unnamed = page.evaluate(UNNAMED)
    assert not unnamed, f"{where}: controls without a name: {unnamed}"


def test_every_control_of_every_page_has_a_name(page: Page, panel: Service, receiver: Receiver) -> None:
    org = new_org(panel)
    receiver.answer_with(400)  # refused: the event becomes a dead letter, with its Resend/Discard
    made = panel.add_destination(name="Labelled", kind="http", url=receiver.url, org=org)
    send(panel, org, action="document.create")

    def letters() -> list[dict[str, Any]]:
        with panel.admin() as admin:
            found: list[dict[str, Any]] = admin.get(f"/api/v1/destinations/{made['id']}/dead-letters").json()[
                "dead_letters"
            ]
        return found

    wait_until(letters, what="a dead letter")
    with panel.admin() as admin:
        seq = admin.get("/api/v1/events", params={"org": org}).json()["events"][-1]["seq"]
    sign_in(page, panel, new_person(panel, admin=True))
    page.goto(panel.base_url + "/admin/log-streaming/new")
    for kind in ("Splunk", "Sumo Logic", "Other (HTTP)"):  # each kind shows fields of its own
        page.get_by_label(kind).check()
        assert_named(page, f"Add destination, {kind}")
    for path in (
        "/admin/log-streaming",
        f"/admin/log-streaming/{made['id']}",
        f"/admin/log-streaming/{made['id']}/edit",
        "/admin/events",
        f"/admin/events/{seq}",
        "/admin/organizations",
        "/admin/organizations/new",
        "/admin/people",
        "/admin/people/new",
        "/admin/api-tokens",
        "/admin/api-tokens/new",
    ):
        page.goto(panel.base_url + path)
        page.wait_for_load_state("networkidle")
        assert_named(page, path)


def test_the_keyboard_alone_signs_in(page: Page, panel: Service) -> None:
    email = new_person(panel, admin=True)
    page.goto(panel.base_url + "/admin/sign-in")
    page.get_by_label("Email").focus()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Log Streaming")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/admin/log-streaming$"))


def test_the_check_finds_what_has_no_name(page: Page) -> None:
    """The check above can fail: a bare field, an empty button and an icon-only link."""
    page.set_content(
        '<label for="a">Named</label><input id="a"><input id="b"><button></button>'
        '<button aria-label="Close"></button><a href="/x"></a><a href="/y">Events</a>'
        '<input type="hidden" name="csrf_token">'
    )
    unnamed = page.evaluate(UNNAMED)
    assert unnamed == ['<input id="b">', "<button></button>", '<a href="/x"></a>']
