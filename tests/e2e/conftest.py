"""Browser fixtures: Debian's Chromium driven by Playwright against the session stack."""

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "secret-pw"
ZONE = "Europe/Berlin"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-background-networking"])
        yield b
        b.close()


def login(page: Page, url: str, name: str, password: str = PASSWORD) -> None:
    page.goto(url + "/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/flow")


@pytest.fixture
def open_page(browser: Browser, stack) -> Iterator[Callable[..., Page]]:
    """A logged-in page in its own context (own cookies, the browser's zone set)."""
    contexts: list[BrowserContext] = []

    def make(name: str, password: str = PASSWORD, *, width: int = 1280, height: int = 900,
             zone: str = ZONE, theme: str | None = None) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      timezone_id=zone, locale="en-GB")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors  # type: ignore[attr-defined]
        login(page, stack.panel_url, name, password)
        if theme:
            page.evaluate("theme => localStorage.setItem('theme', theme)", theme)
        return page

    yield make
    for context in contexts:
        context.close()

