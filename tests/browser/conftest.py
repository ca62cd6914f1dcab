"""Playwright on Debian's chromium; Playwright's own browser download is never used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatlake.app.testing import CHROMIUM_ARGS


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHATLAKE_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).is_file():
        pytest.fail(
            f"no chromium at {path}; run `make test` (it installs Debian's chromium)"
        )
    return path


# Package scope, not session: Playwright's sync API keeps an asyncio loop running
# in the main thread while it lives, which would break every asyncio test after it.
@pytest.fixture(scope="package")
def browser(chromium_path):
    # Never download a browser, and never reach beyond loopback.
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()
