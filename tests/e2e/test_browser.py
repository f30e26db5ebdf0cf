"""Debian's Chromium, driven by Playwright, against the real stack."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, sync_playwright

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-background-networking"])
        yield b
        b.close()


def login(page: Page, url: str, name: str, password: str) -> None:
    page.goto(url + "/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/flow")


def test_user_finds_schedules_in_the_nav_and_sees_theirs(stack, new_user, browser):
    user = new_user("browser")
    run_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    r = user.client.post("/schedule/", json={
        "flow_url": stack.flows["quick"], "schedule_type": "once",
        "run_at": run_at.isoformat(), "inputs": {"message": "hi"}, "title": "Seen in a browser"})
    assert r.status_code == 201, r.text
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    login(page, stack.panel_url, user.name, "secret-pw")
    page.click("nav.left a[href='/admin/schedule']")
    page.wait_for_url("**/admin/schedule")
    row = page.locator("tr.schedule-row", has_text="Seen in a browser")
    assert row.count() == 1
    assert "Quick demo agent" in row.inner_text()
    # the phone layout has the item in the bottom bar
    page.set_viewport_size({"width": 390, "height": 800})
    assert page.locator("nav.bottom a[href='/admin/schedule']").is_visible()
    page.close()
