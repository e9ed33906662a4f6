"""Fixtures of the admin panel's browser tests: the service, Debian's Chromium, a page.

Chromium is never downloaded: when `/usr/bin/chromium` is missing these tests fail (they do
not skip); `.ci/run` installs it. Each test module gets a service of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright import sync_api as playwright_api
from playwright.sync_api import Page

from tests.support import Service
from tests.support.panel import CHROMIUM, SOON, WIDE


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service on SQLite, for the browser. Its session cookie stays `Secure` (the
    default): Chromium keeps Secure cookies set by http://127.0.0.1, a secure context."""
    svc = Service(tmp_path_factory.mktemp("panel"), "").start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; "
            ".ci/run does); the panel's browser tests never download a browser",
            pytrace=False,
        )
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport=WIDE)
    context.set_default_timeout(SOON)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    # Script errors and refusals by the Content-Security-Policy; not the answers with an
    # error status the tests ask for (a wrong password's 401, a viewer's 403).
    opened.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield opened
    context.close()
    assert not errors, f"the page reported errors: {errors}"
