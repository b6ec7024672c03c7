"""Real Chromium (the Debian package) driven by Playwright; never a downloaded browser.

Where /usr/bin/chromium is missing the browser tests are skipped, saying so; under CI=true
they fail instead (.ci/run installs it).
"""

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Playwright's sync API keeps an event loop in this thread; the ORM calls of these tests
# are still plain synchronous ones.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# As root, on a machine with no outside network: no sandbox, no background connections.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium():
    """Module-scoped: Playwright's sync API runs an event loop in this thread until it is
    stopped, and the other tests call asyncio.run()."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"{CHROMIUM} not installed (Debian package chromium)"
        if os.getenv("CI") == "true":
            pytest.fail(f"{reason}, and CI must run the browser tests", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()
