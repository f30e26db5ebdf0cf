"""Issue 13 in the browser, against the real stack: the form's Describe when box, the
Every… kind and More options (dates left out, DST, jitter, timeout, pausing after
failures, the four overlaps, inputs from the trigger URL) with their live preview; the
detail page saying every option in words, Run for a past period and the trigger URL;
editing round-trips every option. Each step checks what the API stored."""

import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from kodosumi_timer import cron

pytestmark = pytest.mark.e2e

ZONE = "Europe/Berlin"
RICH = ("schedule_type", "cron_expression", "every", "anchor", "exclude_dates", "dst_policy",
        "jitter", "timeout", "pause_after_failures", "overlap", "hook_inputs")
SHOTS = os.environ.get("KODO_TIMER_SCREENSHOTS")
BUSY = {"queued", "buffered", "launching", "unknown", "launched", "running"}


def _new_form(page: Page, stack) -> None:
    page.goto(stack.panel_url + f"/admin/schedule/new?flow={stack.flows['quick']}")
    page.wait_for_selector("#in-message")


def _saved(page: Page) -> str:
    page.wait_for_url(re.compile(r".*/admin/schedule/[0-9a-f]{32}$"))
    return page.url.rsplit("/", 1)[1]


def _choose(page: Page, name: str, value: str) -> None:
    """Pick a radio button as a user does: on its label (BeerCSS draws over the input)."""
    page.click(f"label:has(input[name={name}][value={value}])")
    expect(page.locator(f"input[name={name}][value={value}]")).to_be_checked()


def _rich(schedule: dict) -> dict:
    return {key: schedule[key] for key in RICH}


def _local_day(instant: datetime) -> str:
    return instant.astimezone(ZoneInfo(ZONE)).date().isoformat()


def _settle(page: Page) -> None:
    page.wait_for_load_state("networkidle")
    page.evaluate("""() => Promise.all(document.getAnimations()
        .filter(a => a.effect && a.effect.getTiming().iterations !== Infinity)
        .map(a => a.finished))""")
    page.evaluate("document.activeElement && document.activeElement.blur()")


def _shoot(page: Page, name: str, height: int) -> None:
    """With KODO_TIMER_SCREENSHOTS set, a screenshot into its issue-13/ directory, the
    window as tall as ``height`` (the page scrolls inside kodosumi's frame)."""
    if not SHOTS:
        return
    out = Path(SHOTS) / "issue-13"
    out.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size({"width": 1280, "height": height})
    page.evaluate("document.querySelectorAll('.snackbar.active')"
                  ".forEach(bar => bar.classList.remove('active'))")
    _settle(page)
    page.screenshot(path=out / f"{name}.png")
    if size:
        page.set_viewport_size(size)


def test_words_fill_the_rule_and_every_option_is_stored_and_edited_back(stack, new_user,
                                                                        open_page):
    user = new_user("rich")
    page = open_page(user.name, theme="light", height=1300)
    _new_form(page, stack)
    page.fill("#title", "Weekday digest")
    page.fill("#in-message", "digest")

    # words the grammar cannot read: the API's 422 at the box, with the nearest form
    page.fill("#describe-text", "evry weekday at nine")
    expect(page.locator("#err-text")).to_contain_text("the nearest form I know")
    expect(page.locator("#field-text")).to_have_class(re.compile("invalid"))
    expect(page.locator("#describe-use")).to_be_disabled()
    page.click("#describe-try")
    expect(page.locator("#describe-text")).to_have_value("every weekday at 9am")
    expect(page.locator("#err-text")).to_be_empty()
    expect(page.locator("#describe-desc")).to_have_text("At 09:00, Monday through Friday")
    _shoot(page, "describe-when", 900)
    # Use this fills the rule: a cron rule, its preset and the preview
    page.click("#describe-use")
    expect(page.locator("#kind-cron")).to_be_checked()
    expect(page.locator("#cron")).to_have_value("0 9 * * 1-5")
    expect(page.locator("input[name=preset][value=weekly]")).to_be_checked()
    expect(page.locator("#preview-desc")).to_have_text("At 09:00, Monday through Friday")

    # More options: the next slot's date left out shows skipped; jitter shows send times
    page.click("#advanced summary")
    first = cron.next_fire_times("0 9 * * 1-5", ZONE, datetime.now(UTC), 1)[0]
    skipped_day = _local_day(first)
    for day in (skipped_day, "2027-12-24", "2027-12-25"):
        page.fill("#exclude-date", day)
        page.click("#exclude-add")
    page.locator("#exclude-list li[data-date='2027-12-25'] button").click()  # removed again
    expect(page.locator("#exclude-list li")).to_have_count(2)
    page.fill("#jitter", "30")
    page.select_option("#dst-gap", "skip")
    page.select_option("#dst-repeat", "twice")
    skipped = page.locator("#preview-times li").first
    expect(skipped).to_have_attribute("data-skipped", "excluded date")
    expect(skipped).to_contain_text("skipped: excluded date")
    expect(page.locator("#preview-times li").nth(1).locator(".send-note")).to_contain_text(
        re.compile(r"sent at 09:00:\d\d \(jitter\)"))
    expect(page.locator("#preview-desc")).to_contain_text(f"not on {skipped_day}")
    page.fill("#timeout", "600")
    page.fill("#pause-after", "3")
    _choose(page, "overlap", "buffer_one")
    page.click("#field-hook_inputs")                 # its label, as a user does
    expect(page.locator("#hook-inputs")).to_be_checked()
    # all four overlaps, each explained in one line
    for choice in ("skip", "allow", "buffer_one", "replace"):
        expect(page.locator(f"input[name=overlap][value={choice}] + span .muted")).not_to_be_empty()
    _shoot(page, "form-more-options", 2700)
    page.click("#submit-button")
    schedule_id = _saved(page)

    stored = user.client.get(f"/schedule/{schedule_id}").json()
    assert _rich(stored) == {
        "schedule_type": "cron", "cron_expression": "0 9 * * 1-5", "every": None,
        "anchor": None, "exclude_dates": sorted([skipped_day, "2027-12-24"]),
        "dst_policy": {"gap": "skip", "repeat": "twice"}, "jitter": 30, "timeout": 600,
        "pause_after_failures": 3, "overlap": "buffer_one", "hook_inputs": True}

    # the detail page says each option in words, and shows the skipped slot
    expect(page.locator("#exclude-dates")).to_have_text(
        f"Not on {', '.join(sorted([skipped_day, '2027-12-24']))}")
    expect(page.locator("#dst")).to_contain_text("does not run that day")
    expect(page.locator("#dst")).to_contain_text("runs at both")
    expect(page.locator("#jitter")).to_contain_text("Jitter up to 30 s")
    expect(page.locator("#timeout")).to_contain_text("Timeout 10 min")
    expect(page.locator("#pause-after")).to_have_text("Pauses after 3 failures in a row (0 so far)")
    expect(page.locator("#overlap")).to_contain_text("starts when it ends")
    expect(page.locator("#hook-fact")).to_contain_text("may send inputs")
    expect(page.locator("#upcoming li").first).to_have_attribute("data-skipped", "excluded date")
    expect(page.locator("#upcoming li").nth(1).locator(".send-note")).to_contain_text("jitter")
    _shoot(page, "detail", 1450)

    # edit: the form comes back with every option; saving it unchanged changes none
    page.click("#edit-button")
    page.wait_for_url("**/edit")
    page.wait_for_selector("#in-message")
    expect(page.locator("#advanced")).to_have_attribute("open", "")
    expect(page.locator("#exclude-list li")).to_have_count(2)
    expect(page.locator("#dst-gap")).to_have_value("skip")
    expect(page.locator("#dst-repeat")).to_have_value("twice")
    expect(page.locator("#jitter")).to_have_value("30")
    expect(page.locator("#timeout")).to_have_value("600")
    expect(page.locator("#pause-after")).to_have_value("3")
    expect(page.locator("input[name=overlap][value=buffer_one]")).to_be_checked()
    expect(page.locator("#hook-inputs")).to_be_checked()
    page.click("#submit-button")
    page.wait_for_url(f"**/admin/schedule/{schedule_id}")
    assert _rich(user.client.get(f"/schedule/{schedule_id}").json()) == _rich(stored)

    # ... and changing some changes exactly those
    page.click("#edit-button")
    page.wait_for_selector("#in-message")
    page.locator(f"#exclude-list li[data-date='{skipped_day}'] button").click()
    page.fill("#jitter", "")
    page.select_option("#dst-gap", "")
    _choose(page, "overlap", "replace")
    page.click("#field-hook_inputs")
    expect(page.locator("#hook-inputs")).not_to_be_checked()
    page.click("#submit-button")
    page.wait_for_url(f"**/admin/schedule/{schedule_id}")
    edited = user.client.get(f"/schedule/{schedule_id}").json()
    assert _rich(edited) == {**_rich(stored), "exclude_dates": ["2027-12-24"],
                             "jitter": None, "dst_policy": {"gap": None, "repeat": "twice"},
                             "overlap": "replace", "hook_inputs": False}
    expect(page.locator("#overlap")).to_contain_text("replace")
    expect(page.locator("#jitter")).to_have_count(0)
    assert not page.js_errors


def test_an_interval_rule_from_the_form_and_back(stack, new_user, open_page):
    user = new_user("every")
    page = open_page(user.name)
    _new_form(page, stack)
    page.fill("#in-message", "tick")
    page.fill("#title", "Every two hours")
    page.check("#kind-interval")
    expect(page.locator("#interval-box")).to_be_visible()
    expect(page.locator("#cron-box")).to_be_hidden()
    page.fill("#every-count", "2")
    page.select_option("#every-unit", "h")
    start = (datetime.now(ZoneInfo(ZONE)) + timedelta(days=1)).replace(
        hour=8, minute=0, second=0, microsecond=0)
    page.fill("#anchor", start.strftime("%Y-%m-%dT%H:%M"))
    expect(page.locator("#preview-desc")).to_contain_text("Every 2 hours from")
    expect(page.locator("#preview-desc")).to_contain_text("unaffected by DST")
    expect(page.locator("#preview-times li")).to_have_count(5)
    expect(page.locator("#preview-times li").nth(1)).to_contain_text("10:00")
    # DST choices are for cron rules; dates to leave out are for every repeating rule
    page.click("#advanced summary")
    expect(page.locator("#dst-gap")).to_be_hidden()
    expect(page.locator("#exclude-date")).to_be_visible()
    page.click("#submit-button")
    schedule_id = _saved(page)
    stored = user.client.get(f"/schedule/{schedule_id}").json()
    assert (stored["schedule_type"], stored["every"]) == ("interval", "2h")
    assert datetime.fromisoformat(stored["anchor"]) == start
    expect(page.locator("#rule")).to_have_text(
        f"Every 2 hours from {start:%a %d %b %Y %H:%M %Z}")
    expect(page.locator("#upcoming li")).to_have_count(5)

    # edited back: 45 minutes from the same start
    page.click("#edit-button")
    page.wait_for_selector("#in-message")
    expect(page.locator("#kind-interval")).to_be_checked()
    expect(page.locator("#every-count")).to_have_value("2")
    expect(page.locator("#every-unit")).to_have_value("h")
    expect(page.locator("#anchor")).to_have_value(start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#every-count", "45")
    page.select_option("#every-unit", "m")
    page.click("#submit-button")
    page.wait_for_url(f"**/admin/schedule/{schedule_id}")
    edited = user.client.get(f"/schedule/{schedule_id}").json()
    assert (edited["every"], edited["anchor"]) == ("45m", stored["anchor"])

    # words that make an interval fill the Every… fields
    page.click("#edit-button")
    page.wait_for_selector("#in-message")
    page.fill("#describe-text", "every 90 minutes")
    expect(page.locator("#describe-desc")).to_contain_text("Every 90 minutes")
    page.keyboard.press("Enter")                 # Enter in the box uses it, never submits
    expect(page.locator("#every-count")).to_have_value("90")
    expect(page.locator("#every-unit")).to_have_value("m")
    expect(page.locator("#anchor")).to_have_value("")
    assert page.url.endswith("/edit")
    # nothing wider than the window, with every option open
    page.click("#advanced summary")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert not page.js_errors


def _wait_for(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_a_past_period_and_the_trigger_url_from_the_detail_page(stack, new_user, open_page):
    user = new_user("tools")
    r = user.client.post("/schedule/", json={
        "flow_url": stack.flows["quick"], "schedule_type": "cron",
        "cron_expression": "0 3 * * *", "timezone": ZONE, "title": "Nightly",
        "inputs": {"message": "hourly"}, "hook_inputs": True})
    assert r.status_code == 201, r.text
    schedule_id = r.json()["id"]
    page = open_page(user.name, theme="light", height=1500)
    page.goto(stack.panel_url + f"/admin/schedule/{schedule_id}")

    # a period that ends in the future: the API's 422 at the field it names
    midnight = datetime.now(ZoneInfo(ZONE)).replace(hour=0, minute=0, second=0, microsecond=0)
    page.fill("#backfill-start", (midnight - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#backfill-end", (midnight + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"))
    page.click("#backfill-button")
    page.locator("#sched-confirm .dialog-ok").click()
    expect(page.locator("#err-backfill-end")).to_contain_text("is in the future")
    expect(page.locator("#field-backfill-end")).to_have_class(re.compile("invalid"))
    # three past days: three slots queued, listed as a past period
    page.fill("#backfill-end", midnight.strftime("%Y-%m-%dT%H:%M"))
    expect(page.locator("#err-backfill-end")).to_be_empty()
    page.click("#backfill-button")
    page.locator("#sched-confirm .dialog-ok").click()
    expect(page.locator("#backfill-result")).to_contain_text("Queued 3 runs")
    runs = user.client.get(f"/schedule/{schedule_id}/runs").json()["items"]
    assert sorted(datetime.fromisoformat(r["slot"]) for r in runs if r["trigger"] == "backfill") \
        == [(midnight - timedelta(days=d)).replace(hour=3) for d in (3, 2, 1)]
    expect(page.locator("#runs-body tr.run-row")).to_have_count(3)
    expect(page.locator("#runs-body tr.run-row").first).to_contain_text("past period")
    # the statuses issue 13 added are in the legend
    page.click("#status-legend summary")
    for label in ("timed out", "buffered", "replaced"):
        expect(page.locator("#legend-list")).to_contain_text(label)

    # the backfilled slots really run; the trigger URL respects overlap=skip, so wait
    def ended():
        runs = user.client.get(f"/schedule/{schedule_id}/runs").json()["items"]
        return runs if runs and not any(r["status"] in BUSY for r in runs) else None
    statuses = {r["status"] for r in _wait_for(ended, "the backfilled runs' end", 180)}
    assert "finished" in statuses, statuses

    # make: URL and token shown once, with a copy button and a curl example
    expect(page.locator("#hook-state")).to_have_attribute("data-hook", "none")
    page.click("#hook-make")
    expect(page.locator("#hook-made")).to_be_visible()
    url = page.input_value("#hook-url")
    token = page.input_value("#hook-token")
    assert url and token
    assert url in page.input_value("#hook-curl")
    expect(page.locator("#hook-revoke")).to_be_visible()
    assert user.client.get(f"/schedule/{schedule_id}").json()["hook"] is True
    _shoot(page, "detail-trigger-url", 1500)
    # the URL works from outside, without a login, with inputs (hook_inputs)
    answer = httpx.post(url, json={"inputs": {"message": "from outside"}}, timeout=30)
    assert answer.status_code == 202, answer.text
    hooked = _wait_for(lambda: [r for r in user.client.get(
        f"/schedule/{schedule_id}/runs").json()["items"] if r["trigger"] == "hook"],
        "the hook's run")
    assert len(hooked) == 1
    page.reload()
    expect(page.locator("#runs-body")).to_contain_text("trigger URL")
    # the run shows the inputs the call sent, merged over the schedule's
    expect(page.locator("#runs-body .run-inputs")).to_contain_text('message="from outside"')
    expect(page.locator("#hook-state")).to_have_attribute("data-hook", "set")
    expect(page.locator("#hook-made")).to_be_hidden()            # the token is gone
    # replace asks first; the old URL stops working
    page.click("#hook-make")
    page.locator("#sched-confirm .dialog-ok").click()
    expect(page.locator("#hook-url")).not_to_have_value(url)
    assert httpx.post(url, timeout=30).status_code == 404
    new_url = page.input_value("#hook-url")
    # revoke
    page.click("#hook-revoke")
    page.locator("#sched-confirm .dialog-ok").click()
    expect(page.locator("#hook-state")).to_have_attribute("data-hook", "none")
    expect(page.locator("#hook-made")).to_be_hidden()
    assert user.client.get(f"/schedule/{schedule_id}").json()["hook"] is False
    assert httpx.post(new_url, timeout=30).status_code == 404
    page.reload()
    expect(page.locator("#changes")).to_contain_text("made a trigger URL")
    expect(page.locator("#changes")).to_contain_text("revoked the trigger URL")
    expect(page.locator("#changes")).to_contain_text("ran a past period")
    assert not page.js_errors
