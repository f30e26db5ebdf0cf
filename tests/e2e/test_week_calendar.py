"""The week calendar above the schedule list, in Chromium against the real stack: the
browser's zone reaches the server in a cookie, two schedules show on their days at their
times, a busy day is bounded, an entry opens its schedule. With KODO_TIMER_SCREENSHOTS
set, screenshots into its issue-12/ directory (light, dark, phone)."""

import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

ZONE = "Europe/Berlin"  # the browser's (tests/e2e/conftest.py)
SHOTS = os.environ.get("KODO_TIMER_SCREENSHOTS")
CRON_DOW = "SUN MON TUE WED THU FRI SAT".split()


def _create(user, **body) -> dict:
    r = user.client.post("/schedule/", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _settle(page: Page) -> None:
    page.wait_for_load_state("networkidle")
    page.evaluate("""() => Promise.all(document.getAnimations()
        .filter(a => a.effect && a.effect.getTiming().iterations !== Infinity)
        .map(a => a.finished))""")


def _shoot(page: Page, name: str) -> None:
    if not SHOTS:
        return
    out = Path(SHOTS) / "issue-12"
    out.mkdir(parents=True, exist_ok=True)
    _settle(page)
    page.screenshot(path=out / f"{name}.png")


def test_two_schedules_show_on_their_days_in_the_browsers_zone(stack, new_user, open_page):
    user = new_user("calendar")
    other = new_user("calendar-other")
    quick = stack.flows["quick"]
    today = datetime.now(ZoneInfo(ZONE)).date()
    report_day, review_day = today + timedelta(days=2), today + timedelta(days=3)
    report = _create(user, flow_url=quick, schedule_type="once", timezone=ZONE,
                     run_at=f"{report_day.isoformat()}T14:00:00", title="Quarterly report",
                     inputs={"message": "Q3", "repeat": "1", "colour": "green", "day": ""})
    # weekly on the weekday three days from now, in New York: 10:00 there is 16:00 here
    # (15:00 or 17:00 in the weeks when only one of the two has changed its clock)
    dow = CRON_DOW[(review_day.isoweekday()) % 7]
    review = _create(user, flow_url=quick, schedule_type="cron", timezone="America/New_York",
                     cron_expression=f"0 10 * * {dow}", title="Weekly review",
                     inputs={"message": "review", "repeat": "1", "colour": "blue", "day": ""})
    busy = _create(user, flow_url=quick, schedule_type="cron", timezone=ZONE,
                   cron_expression="0 9-17/2 * * *", title="Inbox sweep",
                   inputs={"message": "sweep", "repeat": "1", "colour": "red", "day": ""})
    paused = _create(user, flow_url=quick, schedule_type="cron", timezone=ZONE,
                     cron_expression="0 12 * * *", title="Paused digest",
                     inputs={"message": "digest", "repeat": "1", "colour": "red", "day": ""})
    assert user.client.post(f"/schedule/{paused['id']}/pause").status_code == 200
    _create(other, flow_url=quick, schedule_type="cron", timezone=ZONE,
            cron_expression="0 8 * * *", title="Someone else's",
            inputs={"message": "hi", "repeat": "1", "colour": "red", "day": ""})

    page = open_page(user.name, width=1280, height=1000, theme="light")
    page.goto(stack.panel_url + "/admin/schedule/")
    # the first visit draws in UTC; the script sends the zone and redraws the calendar
    expect(page.locator("#cal-zone")).to_have_text(f"Times in {ZONE}")
    assert not page.js_errors  # type: ignore[attr-defined]
    days = page.locator("#week-calendar li.cal-day")
    expect(days).to_have_count(7)
    expect(days.first).to_have_attribute("data-date", today.isoformat())
    expect(page.locator("#week-calendar li.cal-day.today")).to_have_count(1)

    def entries(day, sid: str):  # type: ignore[no-untyped-def]
        return page.locator(f"li.cal-day[data-date='{day.isoformat()}'] a[data-schedule='{sid}']")

    expect(entries(report_day, report["id"])).to_have_count(1)
    expect(entries(report_day, report["id"]).locator(".cal-time")).to_have_text("14:00")
    review_at = datetime.fromisoformat(review["next_run"]).astimezone(ZoneInfo(ZONE))
    assert review_at.date() == review_day
    expect(entries(review_day, review["id"])).to_have_count(1)
    expect(entries(review_day, review["id"]).locator(".cal-time")).to_have_text(
        review_at.strftime("%H:%M"))
    for day in (today + timedelta(days=n) for n in range(7)):
        if day != report_day:
            expect(entries(day, report["id"])).to_have_count(0)
        if day != review_day:
            expect(entries(day, review["id"])).to_have_count(0)
    # five sweeps a day: three shown, the rest counted
    tomorrow = page.locator(f"li.cal-day[data-date='{(today + timedelta(days=1)).isoformat()}']")
    expect(tomorrow.locator(f"a[data-schedule='{busy['id']}']")).to_have_count(3)
    expect(tomorrow.locator(".cal-more")).to_have_text("+2 more")
    expect(page.locator("#week-calendar")).not_to_contain_text("Paused digest")
    expect(page.locator("#week-calendar")).not_to_contain_text("Someone else's")
    _shoot(page, "calendar-light")

    entries(report_day, report["id"]).click()
    page.wait_for_url(f"**/admin/schedule/{report['id']}")

    dark = open_page(user.name, width=1280, height=1000, theme="dark")
    dark.goto(stack.panel_url + "/admin/schedule/")
    expect(dark.locator("#cal-zone")).to_have_text(f"Times in {ZONE}")
    _shoot(dark, "calendar-dark")

    for theme, name in (("light", "calendar-phone"), ("dark", "calendar-phone-dark")):
        phone = open_page(user.name, width=390, height=844, theme=theme)
        phone.goto(stack.panel_url + "/admin/schedule/")
        expect(phone.locator("#cal-zone")).to_have_text(f"Times in {ZONE}")
        # stacked: each day below the one before
        first, second = (phone.locator("li.cal-day").nth(i).bounding_box() for i in (0, 1))
        assert first and second and second["y"] >= first["y"] + first["height"] - 1
        _shoot(phone, name)

    # the other user's calendar has their own schedule only
    theirs = open_page(other.name, width=1280, height=1000)
    theirs.goto(stack.panel_url + "/admin/schedule/")
    expect(theirs.locator("#cal-zone")).to_have_text(f"Times in {ZONE}")
    expect(theirs.locator("#week-calendar")).to_contain_text("Someone else's")
    expect(theirs.locator("#week-calendar")).not_to_contain_text("Quarterly report")
