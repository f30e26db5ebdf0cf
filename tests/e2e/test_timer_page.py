"""The operators' Timer page in Chromium against the real stack: the timer is up, a
launch the timer made shows in the lateness chart, the coming load shows a 09:00 herd
with its schedules and users, and a user who is no operator is refused. With
KODO_TIMER_SCREENSHOTS set, the page is kept as PNGs (light and dark, desktop and phone)
in that directory's ``issue-12/``."""

import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

SETTLED = """() => Promise.all(document.getAnimations()
    .filter(a => a.effect && a.effect.getTiming().iterations !== Infinity)
    .map(a => a.finished))"""


def _create(user, **body) -> dict:
    r = user.client.post("/schedule/", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _wait_for_end(user, schedule_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = user.client.get(f"/schedule/{schedule_id}/runs").json()["items"]
        if runs and runs[0]["status"] in ("finished", "error"):
            return runs[0]
        time.sleep(0.5)
    raise AssertionError(f"the run of {schedule_id} did not end in {timeout} s")


def _charts_drawn(page: Page) -> None:
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(3)
    for i in range(3):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 20, box


def test_the_timer_page_shows_the_timer_its_launches_and_the_coming_load(
        stack, new_user, open_page, tmp_path):
    alice, bob = new_user("alice"), new_user("bob")
    quick = stack.flows["quick"]
    inputs = {"message": "hi", "repeat": "1", "colour": "blue", "day": ""}
    soon = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    fired = _create(alice, flow_url=quick, schedule_type="once", run_at=soon.isoformat(),
                    timezone="UTC", title="Fires now", inputs=inputs)
    for i, user in enumerate([alice, bob] * 4):
        _create(user, flow_url=quick, schedule_type="cron", cron_expression="0 9 * * *",
                timezone="UTC", title=f"Morning report {i}", inputs=inputs)
    _create(bob, flow_url=quick, schedule_type="cron", cron_expression="*/15 * * * *",
            timezone="UTC", title="Health check", inputs=inputs)
    _create(alice, flow_url=quick, schedule_type="cron", cron_expression="30 17 * * *",
            timezone="Europe/Berlin", title="Evening digest", inputs=inputs, jitter=600)
    run = _wait_for_end(alice, fired["id"])
    assert run["trigger"] == "timer"

    refused = open_page(alice.name)
    answer = refused.goto(stack.panel_url + "/admin/schedule/timer")
    assert answer is not None and answer.status == 403
    expect(refused.locator("#missing")).to_contain_text("Operators only")
    refused.goto(stack.panel_url + "/admin/schedule/")
    expect(refused.locator("#timer-link")).to_have_count(0)

    page = open_page("admin", "admin")
    page.goto(stack.panel_url + "/admin/schedule/")
    page.click("#timer-link")
    page.wait_for_url("**/admin/schedule/timer")
    expect(page.locator("#timer-up")).to_contain_text("Up")
    expect(page.locator("#timer-heartbeat")).to_contain_text("ago")
    _charts_drawn(page)
    expect(page.locator("#lateness")).not_to_contain_text(" 0 launches")
    expect(page.locator("#outcomes svg rect.bar")).not_to_have_count(0)
    busiest = page.locator("#busiest li").first
    expect(busiest).to_contain_text("09:00 UTC")
    # alice's and bob's (and the stack's system heartbeat, run as the timer user)
    expect(busiest).to_contain_text(re.compile(r"\d+ slots, [23] users"))
    expect(busiest).to_contain_text("Morning report")
    assert page.js_errors == []  # type: ignore[attr-defined]

    out = Path(os.environ.get("KODO_TIMER_SCREENSHOTS") or tmp_path) / "issue-12"
    out.mkdir(parents=True, exist_ok=True)
    for theme in ("light", "dark"):
        shot = open_page("admin", "admin", theme=theme, width=1280, height=1600)
        shot.goto(stack.panel_url + "/admin/schedule/timer")
        _charts_drawn(shot)
        shot.wait_for_load_state("networkidle")
        shot.evaluate(SETTLED)
        shot.screenshot(path=out / f"timer-{theme}.png", full_page=True)
    # kodosumi's frame scrolls inside <main>, so a full-page shot is one tall viewport
    phone = open_page("admin", "admin", theme="dark", width=390, height=2300)
    phone.goto(stack.panel_url + "/admin/schedule/timer")
    _charts_drawn(phone)
    phone.wait_for_load_state("networkidle")
    phone.evaluate(SETTLED)
    phone.screenshot(path=out / "timer-phone.png", full_page=True)
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(stack.panel_url + "/admin/schedule/")
    expect(phone.locator("#timer-link")).to_be_visible()
    phone.screenshot(path=out / "timer-link-phone.png")
