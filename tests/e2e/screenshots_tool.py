"""The screenshots in docs/screenshots: list, form and detail in light and dark mode, and
the list on a phone. Taken from the real stack with realistic schedules. A tool, not a
test: pytest does not collect this file by itself; run it by name with
KODO_TIMER_SCREENSHOTS naming the directory to write (``docs/screenshots``)."""

import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.environ.get("KODO_TIMER_SCREENSHOTS"),
                       reason="set KODO_TIMER_SCREENSHOTS=docs/screenshots to refresh them"),
]

ZONE = "Europe/Berlin"
SETTLED = """() => Promise.all(document.getAnimations()
    .filter(a => a.effect && a.effect.getTiming().iterations !== Infinity)
    .map(a => a.finished))"""


def _settle(page: Page) -> None:
    """Wait for BeerCSS's fade-in (and every other finite animation) to end."""
    page.wait_for_load_state("networkidle")
    page.evaluate(SETTLED)


def _create(user, **body) -> dict:
    r = user.client.post("/schedule/", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _wait_for_runs(user, schedule_ids: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    busy = {"queued", "launching", "unknown", "launched", "running"}
    while time.monotonic() < deadline:
        runs = [r for sid in schedule_ids
                for r in user.client.get(f"/schedule/{sid}/runs").json()["items"]]
        if runs and not any(r["status"] in busy for r in runs):
            return
        time.sleep(0.5)
    raise AssertionError(f"runs of {schedule_ids} did not finish in {timeout} s")


def test_screenshots(stack, new_user, open_page):
    out = Path(os.environ["KODO_TIMER_SCREENSHOTS"])
    out.mkdir(parents=True, exist_ok=True)
    user = new_user("demo")
    quick, slow, failing = stack.flows["quick"], stack.flows["slow"], stack.flows["failing"]
    briefing = _create(user, flow_url=quick, schedule_type="cron", cron_expression="0 9 * * 1-5",
                       timezone=ZONE, title="Morning briefing",
                       inputs={"message": "Good morning, team", "repeat": "2", "colour": "blue",
                               "shout": "on", "day": ""})
    _create(user, flow_url=slow, schedule_type="cron", cron_expression="*/15 * * * *",
            timezone="UTC", title="Health check", inputs={"seconds": "3"})
    later = (datetime.now(ZoneInfo(ZONE)) + timedelta(days=2)).replace(
        hour=14, minute=0, second=0, microsecond=0)
    _create(user, flow_url=quick, schedule_type="once", run_at=later.replace(tzinfo=None).isoformat(),
            timezone=ZONE, title="Quarterly report",
            inputs={"message": "Q3 numbers", "repeat": "1", "colour": "green", "day": ""})
    cleanup = _create(user, flow_url=failing, schedule_type="cron", cron_expression="0 8 * * MON",
                      timezone="America/New_York", title="Weekly cleanup", inputs={})
    digest = _create(user, flow_url=quick, schedule_type="cron", cron_expression="30 7 L * *",
                     timezone="Europe/London", title="Monthly digest",
                     inputs={"message": "digest", "repeat": "1", "colour": "red", "day": ""})
    assert user.client.post(f"/schedule/{digest['id']}/pause").status_code == 200
    for sid in (briefing["id"], cleanup["id"]):
        assert user.client.post(f"/schedule/{sid}/trigger").status_code == 202
    _wait_for_runs(user, [briefing["id"], cleanup["id"]])
    assert user.client.post(f"/schedule/{briefing['id']}/trigger").status_code == 202
    _wait_for_runs(user, [briefing["id"]])

    for theme in ("light", "dark"):
        page = open_page(user.name, theme=theme, width=1280, height=1010)
        page.goto(stack.panel_url + "/admin/schedule/")
        expect(page.locator("#own-schedules .schedule-row")).to_have_count(5)
        _settle(page)
        page.screenshot(path=out / f"schedule-list-{theme}.png")

        page.set_viewport_size({"width": 1280, "height": 1180})
        page.goto(stack.panel_url + f"/admin/schedule/new?flow={quick}")
        page.wait_for_selector("#in-message")
        page.fill("#title", "Stand-up reminder")
        page.fill("#in-message", "Stand-up in 15 minutes")
        page.check("#kind-cron")
        page.check("input[name=preset][value=weekly]")
        for day in ("3", "5"):
            page.check(f"input[name=weekday][value='{day}']")
        page.fill("#weekly-time", "09:45")
        expect(page.locator("#preview-times li")).to_have_count(5)
        page.evaluate("document.activeElement.blur()")
        _settle(page)
        page.screenshot(path=out / f"schedule-form-{theme}.png")

        page.set_viewport_size({"width": 1280, "height": 960})
        page.goto(stack.panel_url + f"/admin/schedule/{briefing['id']}")
        expect(page.locator("#runs-body tr.run-row")).to_have_count(2)
        _settle(page)
        page.screenshot(path=out / f"schedule-detail-{theme}.png")

    phone = open_page(user.name, theme="dark", width=390, height=844)
    phone.goto(stack.panel_url + "/admin/schedule/")
    expect(phone.locator("#own-schedules .schedule-row")).to_have_count(5)
    _settle(phone)
    phone.screenshot(path=out / "schedule-list-phone.png")
