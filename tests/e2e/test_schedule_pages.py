"""The schedule pages in a real browser against the real stack: a user schedules an agent
with the rendered form, finds it in the list, pauses, resumes, runs, edits and deletes it;
other users never see it; wrong input is reported at its field."""

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from kodosumi_timer import cron
from kodosumi_timer.models import ScheduleCreate
from kodosumi_timer.schedules import FlowInfo, build_schedule
from kodosumi_timer.store import open_store

pytestmark = pytest.mark.e2e

ZONE = "Europe/Berlin"


def _choose_agent(page: Page, flow_url: str) -> None:
    page.wait_for_selector(f"#flow option[value='{flow_url}']", state="attached")
    page.select_option("#flow", flow_url)
    page.wait_for_selector("#in-message")


def _api_schedule(user, title: str) -> dict:
    r = user.client.get("/schedule/", params={"q": title})
    assert r.status_code == 200, r.text
    items = [s for s in r.json()["items"] if s["title"] == title]
    assert len(items) == 1, items
    return items[0]


def test_a_user_schedules_runs_edits_and_deletes_in_the_browser(stack, new_user, open_page):
    user = new_user("pages")
    other = new_user("other")
    page = open_page(user.name)
    page.click("nav.left a[href='/admin/schedule']")

    # a new user sees what schedules are and where to start
    expect(page.locator("#empty-state")).to_contain_text("No schedules yet")
    page.click("#new-schedule")
    page.wait_for_url("**/admin/schedule/new")

    # the browser's zone is preselected; a daily preset writes the cron
    expect(page.locator("#timezone")).to_have_value(ZONE)
    _choose_agent(page, stack.flows["quick"])
    page.fill("#title", "Morning echo")
    page.fill("#in-message", "good morning")
    page.fill("#in-repeat", "3")
    page.select_option("#in-colour", "blue")
    page.get_by_text("Echo in upper case").click()
    expect(page.locator("#in-shout")).to_be_checked()
    page.check("#kind-cron")
    page.check("input[name=preset][value=daily]")
    page.fill("#daily-time", "06:30")
    expect(page.locator("#cron")).to_have_value("30 6 * * *")
    expect(page.locator("#preview-desc")).to_have_text("At 06:30 every day")
    expect(page.locator("#preview-times li")).to_have_count(5)
    page.click("#submit-button")
    page.wait_for_url(re.compile(r".*/admin/schedule/[0-9a-f]{32}$"))
    expect(page.locator("#rule")).to_have_text("At 06:30 every day")

    # stored exactly as kodosumi's own form would post the inputs
    saved = _api_schedule(user, "Morning echo")
    assert saved["cron_expression"] == "30 6 * * *"
    assert saved["timezone"] == ZONE
    assert saved["inputs"] == {"message": "good morning", "repeat": "3", "colour": "blue",
                               "shout": "on", "day": ""}
    schedule_id = saved["id"]

    # the list shows the right next run, in the viewer's time, with the rule in words
    page.click("nav.left a[href='/admin/schedule']")
    row = page.locator(f".schedule-row[data-id='{schedule_id}']")
    expected = cron.next_fire_times("30 6 * * *", ZONE, datetime.now(UTC), 1)[0]
    shown = row.locator(".next-run time")
    assert datetime.fromisoformat(shown.get_attribute("datetime")) == expected
    expect(shown).to_contain_text("06:30")
    expect(row.locator(".rule")).to_have_text("At 06:30 every day")
    expect(row.locator(".cell-icon i")).to_have_attribute("aria-label", "Active")

    # pause and resume on the detail page
    row.locator(".title-link").click()
    page.click("#pause-button")
    expect(page.locator(".state-pill")).to_have_text(re.compile("Paused"))
    assert user.client.get(f"/schedule/{schedule_id}").json()["state"] == "paused"
    page.goto(stack.panel_url + "/admin/schedule/?show=paused")
    expect(page.locator(f".schedule-row[data-id='{schedule_id}']")).to_have_attribute(
        "data-state", "paused")
    page.goto(stack.panel_url + f"/admin/schedule/{schedule_id}")
    page.click("#resume-button")
    expect(page.locator(".state-pill")).to_have_text(re.compile("Active"))
    assert user.client.get(f"/schedule/{schedule_id}").json()["state"] == "active"

    # run it now: the run appears and follows the execution to its end
    expect(page.locator("#no-runs")).to_be_visible()
    page.click("#trigger-button")
    run = page.locator("#runs-body tr.run-row").first
    expect(run).to_be_visible()
    expect(run).to_have_attribute("data-status", "finished", timeout=60_000)
    link = run.locator("a.run-status")
    expect(link).to_have_attribute("href", re.compile(r"^/admin/status/view/.+"))
    expect(run).to_contain_text("run now")

    # another user neither lists it nor opens it
    stranger = open_page(other.name)
    stranger.goto(stack.panel_url + "/admin/schedule/")
    expect(stranger.locator("#empty-state")).to_be_visible()
    expect(stranger.locator("#own-schedules .schedule-row")).to_have_count(0)
    response = stranger.goto(stack.panel_url + f"/admin/schedule/{schedule_id}")
    assert response is not None and response.status == 404
    expect(stranger.locator("#missing")).to_contain_text("Schedule not found")
    response = stranger.goto(stack.panel_url + f"/admin/schedule/{schedule_id}/edit")
    assert response is not None and response.status == 404

    # edit: the form comes back filled in; change the time and the title
    page.click("#edit-button")
    page.wait_for_url("**/edit")
    expect(page.locator("input[name=preset][value=daily]")).to_be_checked()
    expect(page.locator("#daily-time")).to_have_value("06:30")
    expect(page.locator("#in-message")).to_have_value("good morning")
    expect(page.locator("#in-shout")).to_be_checked()
    expect(page.locator("#in-colour")).to_have_value("blue")
    page.fill("#title", "Later echo")
    page.fill("#daily-time", "07:15")
    expect(page.locator("#preview-desc")).to_have_text("At 07:15 every day")
    page.click("#submit-button")
    page.wait_for_url(f"**/admin/schedule/{schedule_id}")
    expect(page.locator("#schedule-title")).to_have_text("Later echo")
    expect(page.locator("#rule")).to_have_text("At 07:15 every day")
    edited = user.client.get(f"/schedule/{schedule_id}").json()
    assert edited["cron_expression"] == "15 7 * * *"
    assert edited["inputs"] == saved["inputs"]
    assert edited["version"] > saved["version"]

    # delete, with a confirmation that can be cancelled
    page.click("#delete-button")
    dialog = page.locator("#sched-confirm")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert user.client.get(f"/schedule/{schedule_id}").status_code == 200
    page.click("#delete-button")
    dialog.locator(".dialog-ok").click()
    page.wait_for_url("**/admin/schedule/")
    expect(page.locator(f".schedule-row[data-id='{schedule_id}']")).to_have_count(0)
    assert user.client.get(f"/schedule/{schedule_id}").status_code == 404
    assert not page.js_errors and not stranger.js_errors


def test_wrong_input_is_reported_at_its_field_and_what_was_typed_stays(stack, new_user,
                                                                        open_page):
    user = new_user("errors")
    page = open_page(user.name)
    page.goto(stack.panel_url + "/admin/schedule/new")

    # nothing chosen: the agent field says so
    page.click("#submit-button")
    expect(page.locator("#err-flow_url")).to_contain_text("Choose the agent")

    _choose_agent(page, stack.flows["quick"])
    expect(page.locator("#err-flow_url")).to_be_empty()
    page.fill("#title", "Broken rule")
    # the agent's required field is checked like kodosumi's own form would
    page.check("#kind-cron")
    page.check("input[name=preset][value=custom]")
    page.fill("#cron", "0 25 * * *")
    error = page.locator("#err-cron_expression")
    expect(error).to_contain_text("hour 25")           # from the live preview
    expect(page.locator("#field-cron_expression")).to_have_class(re.compile("invalid"))
    page.click("#submit-button")
    expect(page.locator("#err-in-message")).not_to_be_empty()
    page.fill("#in-message", "still here")
    page.click("#submit-button")
    expect(error).to_contain_text("hour 25")           # from the API's 422
    # nothing was lost
    expect(page.locator("#cron")).to_have_value("0 25 * * *")
    expect(page.locator("#title")).to_have_value("Broken rule")
    expect(page.locator("#in-message")).to_have_value("still here")
    assert user.client.get("/schedule/").json()["total"] == 0

    # fixing it clears the message; a past once-time is reported at the date
    page.fill("#cron", "0 5 * * *")
    expect(error).to_be_empty()
    page.check("#kind-once")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    page.fill("#run-date", yesterday.strftime("%Y-%m-%d"))
    page.fill("#run-time", "10:00")
    expect(page.locator("#preview-times")).to_contain_text("this time has passed")
    page.click("#submit-button")
    # in the user's terms: the time as typed, in their zone, to the minute
    expect(page.locator("#err-run_at")).to_contain_text(
        f"run_at {yesterday:%Y-%m-%d} 10:00 ({ZONE}) is in the past")

    # the JSON view is the same inputs; bad JSON is reported at the inputs
    page.click("#view-json")
    text = page.input_value("#inputs-json")
    assert '"message": "still here"' in text and '"colour": "green"' in text
    page.fill("#inputs-json", '{"message": ')
    page.click("#submit-button")
    expect(page.locator("#err-inputs")).to_contain_text("not valid JSON")
    # inputs the agent's form does not have are refused, named, before anything is saved
    page.check("#kind-cron")
    page.fill("#inputs-json", '{"message": "hi", "colr": "red"}')
    page.click("#submit-button")
    expect(page.locator("#err-inputs")).to_contain_text("inputs.colr is not an input")
    assert user.client.get("/schedule/").json()["total"] == 0
    assert not page.js_errors


def test_keyboard_alone_schedules_a_run(stack, new_user, open_page):
    user = new_user("keys")
    page = open_page(user.name, width=390, height=844)   # a phone, too
    page.goto(stack.panel_url + "/admin/schedule/new")
    page.wait_for_selector(f"#flow option[value='{stack.flows['quick']}']", state="attached")
    page.focus("#flow")
    page.keyboard.type("Quick")                          # type-ahead picks the agent
    expect(page.locator("#flow")).to_have_value(stack.flows["quick"])
    page.wait_for_selector("#in-message")
    page.focus("#kind-once")
    page.keyboard.press("ArrowRight")                    # radio group: Run regularly
    expect(page.locator("#kind-cron")).to_be_checked()
    expect(page.locator("#cron-box")).to_be_visible()
    page.keyboard.press("Tab")                           # into the presets
    page.keyboard.press("ArrowRight")                    # Daily -> Weekly
    expect(page.locator("input[name=preset][value=weekly]")).to_be_checked()
    expect(page.locator("#cron")).to_have_value("0 9 * * 1")
    page.focus("#in-message")
    page.keyboard.type("typed only")
    page.keyboard.press("Enter")                         # Enter submits, like any form
    page.wait_for_url(re.compile(r".*/admin/schedule/[0-9a-f]{32}$"))
    saved = user.client.get("/schedule/").json()["items"]
    assert [(s["cron_expression"], s["inputs"]["message"]) for s in saved] == [
        ("0 9 * * 1", "typed only")]
    # nothing is wider than the phone
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    page.goto(stack.panel_url + "/admin/schedule/")
    expect(page.locator("#own-schedules .schedule-row")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not page.js_errors


class _OneFlow:
    async def find(self, flow_url: str) -> FlowInfo | None:
        return FlowInfo(url=flow_url, summary="Quick demo agent")

    async def form(self, flow_url: str, owner: str) -> list[dict]:
        return [{"type": "text", "name": "message", "label": "Message", "required": True}]


def _in_store(stack, work):
    """Run ``work(store)`` on the stack's schedule store, beside Playwright's loop."""

    async def run():
        store = await open_store(stack.schedule_db)
        try:
            return await work(store)
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()


@pytest.fixture
def system_schedule(stack):
    """A system schedule as the sync from the schedules file stores it; removed after."""

    async def add(store):
        data = ScheduleCreate(flow_url=stack.flows["quick"], schedule_type="cron",
                              cron_expression="0 3 * * *", timezone="UTC",
                              inputs={"message": "nightly"}, title="Nightly system job")
        row, _ = await build_schedule(data, "timer", datetime.now(UTC), _OneFlow(), system=True)
        await store.add_schedule(row)
        return row.id

    schedule_id = _in_store(stack, add)
    yield schedule_id

    async def remove(store):
        await store.delete_schedule(schedule_id)

    _in_store(stack, remove)


def test_operators_see_everyone_and_system_schedules_are_read_only(stack, new_user, open_page,
                                                                   system_schedule):
    user = new_user("owner")
    title = f"Owned by {user.name}"
    r = user.client.post("/schedule/", json={
        "flow_url": stack.flows["quick"], "schedule_type": "cron", "cron_expression": "0 4 * * *",
        "timezone": "UTC", "inputs": {"message": "x"}, "title": title})
    assert r.status_code == 201, r.text
    owned = f".schedule-row[data-id='{r.json()['id']}']"
    # someone else's, so that everyone's list has more than one row to search in
    other = new_user("other").client.post("/schedule/", json={
        "flow_url": stack.flows["quick"], "schedule_type": "cron", "cron_expression": "0 5 * * *",
        "timezone": "UTC", "inputs": {"message": "y"}, "title": "Someone else's"})
    assert other.status_code == 201, other.text
    system_id = system_schedule
    system_row = f".schedule-row[data-id='{system_id}']"

    # a user: own schedules, the system section read-only, no switch to everyone's
    page = open_page(user.name)
    page.goto(stack.panel_url + "/admin/schedule/")
    expect(page.locator("#everyone-toggle")).to_have_count(0)
    system = page.locator("#system-schedules")
    expect(system.locator(system_row)).to_contain_text("Nightly system job")
    expect(system).to_contain_text("read-only")
    system.locator(f"{system_row} .title-link").click()
    page.wait_for_url(f"**/admin/schedule/{system_id}")
    for button in ("#pause-button", "#trigger-button", "#edit-button", "#delete-button"):
        expect(page.locator(button)).to_have_count(0)

    # the operator switches to all users and sees the owner's name
    boss = open_page("admin", "admin")
    boss.goto(stack.panel_url + "/admin/schedule/")
    expect(boss.locator(owned)).to_have_count(0)
    boss.click("#everyone-toggle")
    expect(boss.locator("h3")).to_have_text("All scheduled executions")
    expect(boss.locator(f"#own-schedules {owned} .owner")).to_contain_text(user.name)
    expect(boss.locator("#own-schedules .schedule-row").nth(1)).to_be_visible()
    # search narrows the list in place, and the address keeps the search
    boss.fill("#search-input", title)
    expect(boss.locator("#own-schedules .schedule-row")).to_have_count(1)
    expect(boss.locator(owned)).to_be_visible()
    expect(boss).to_have_url(re.compile(r"[?&]q="))
    # operators may pause system schedules, never edit them here
    boss.goto(stack.panel_url + f"/admin/schedule/{system_id}")
    expect(boss.locator("#pause-button")).to_be_visible()
    expect(boss.locator("#edit-button")).to_have_count(0)
    assert not page.js_errors and not boss.js_errors


def test_a_note_reads_as_a_problem_only_when_the_timer_paused_the_schedule(stack, new_user,
                                                                           open_page):
    """"ran once" is information; "paused by the timer: owner inactive" needs action."""
    user = new_user("notes")
    ids = []
    for title in ("finished one", "stopped one"):
        r = user.client.post("/schedule/", json={
            "flow_url": stack.flows["quick"], "schedule_type": "cron",
            "cron_expression": "0 9 * * *", "timezone": ZONE, "title": title,
            "inputs": {"message": title}})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    done, paused = ids

    async def set_notes(store):
        now = datetime.now(UTC)
        await store.update_schedule(done, {"state": "done", "next_run": None,
                                           "note": "ran once", "updated": now})
        await store.pause(paused, "paused by the timer: owner inactive", now)

    _in_store(stack, set_notes)
    page = open_page(user.name)
    expected = {done: ("schedule-note", "info"), paused: ("global-error", "warning")}
    for schedule_id, (css, icon) in expected.items():
        page.goto(stack.panel_url + f"/admin/schedule/{schedule_id}")
        note = page.locator("#schedule-note")
        expect(note).to_have_class(css)
        expect(note.locator("i")).to_have_text(icon)
    page.goto(stack.panel_url + "/admin/schedule/")
    expect(page.locator(f".schedule-row[data-id='{paused}'] .note")).to_have_class(
        "note problem")
    expect(page.locator(f".schedule-row[data-id='{done}'] .note")).to_have_class("note")
    assert not page.js_errors


def test_the_pages_tell_the_truth(stack, new_user, open_page):
    """Status and notes follow what the last run did; every time carries its zone (and
    the viewer's where it differs); the agent's Markdown renders as in kodosumi's form;
    the run statuses have a legend; catchup_window is shown and can be set."""
    user = new_user("truth")
    run_at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    ids = {}
    for title in ("errored once", "missed once"):
        r = user.client.post("/schedule/", json={
            "flow_url": stack.flows["quick"], "schedule_type": "once", "timezone": ZONE,
            "run_at": run_at.isoformat(), "title": title, "inputs": {"message": title}})
        assert r.status_code == 201, r.text
        ids[title] = r.json()["id"]
    slot = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)   # 10:00 in Berlin (CEST)

    async def ended(store):
        for title, status in (("errored once", "error"), ("missed once", "missed")):
            # as the timer records them: a missed slot leaves last_run empty
            await store.update_schedule(ids[title], {
                "state": "done", "next_run": None, "note": "ran once",
                "last_run": slot if status == "error" else None,
                "last_status": status, "run_count": 1 if status == "error" else 0})

    _in_store(stack, ended)
    page = open_page(user.name)

    # a once schedule whose only run ended in error: no green check, no "Done"
    page.goto(stack.panel_url + f"/admin/schedule/{ids['errored once']}")
    expect(page.locator(".state-pill")).to_have_text(re.compile("Failed"))
    expect(page.locator(".detail-title .state-icon")).not_to_have_text("task_alt")
    note = page.locator("#schedule-note")
    expect(note).to_have_class("global-error")
    expect(note).to_contain_text("ended in error")
    expect(note).to_contain_text("10:00")                 # the slot, in the schedule's zone
    expect(note).not_to_contain_text("ran once")
    # a missed one does not claim it ran
    page.goto(stack.panel_url + f"/admin/schedule/{ids['missed once']}")
    expect(page.locator(".state-pill")).to_have_text(re.compile("Missed"))
    expect(page.locator("#schedule-note")).to_contain_text("Did not run")
    expect(page.locator("#schedule-note")).not_to_contain_text("ran once")
    # ... and names its slot (the run_at), in the page and as its last run
    missed_at = run_at.astimezone(ZoneInfo(ZONE)).strftime("%H:%M")
    expect(page.locator("#schedule-note")).to_contain_text(missed_at)
    expect(page.locator("#schedule-note")).not_to_contain_text("its time, its time")
    expect(page.locator("#last-run")).to_contain_text(missed_at)
    page.goto(stack.panel_url + "/admin/schedule/")
    expect(page.locator(f".schedule-row[data-id='{ids['errored once']}']")).to_have_attribute(
        "data-state", "failed")
    expect(page.locator(f".schedule-row[data-id='{ids['missed once']}'] .note")).to_contain_text(
        "Did not run")

    # a schedule in New York seen from Berlin: its times in both zones, each named
    r = user.client.post("/schedule/", json={
        "flow_url": stack.flows["quick"], "schedule_type": "cron", "cron_expression": "0 9 * * *",
        "timezone": "America/New_York", "title": "far away", "catchup_window": 300,
        "inputs": {"message": "hello"}})
    assert r.status_code == 201, r.text
    far = r.json()
    page.goto(stack.panel_url + f"/admin/schedule/{far['id']}")
    expect(page.locator("#next-run .t-there")).to_contain_text("09:00 GMT-5")
    expect(page.locator("#next-run .t-yours")).to_contain_text("15:00 CET")
    expect(page.locator("#upcoming li").first.locator(".t-yours")).to_contain_text("CET")
    expect(page.locator("#facts")).to_contain_text("CET")  # created/changed carry a zone
    expect(page.locator("#catchup-window")).to_have_text("5 minutes")
    # run it now: the run's times carry both zones; the statuses have a legend
    page.click("#trigger-button")
    run = page.locator("#runs-body tr.run-row").first
    expect(run).to_have_attribute("data-status", "finished", timeout=60_000)
    expect(run.locator("td").first).to_contain_text("GMT-5")
    expect(run.locator("td").first.locator(".t-yours")).to_contain_text("CET")
    page.click("#status-legend summary")
    legend = page.locator("#legend-list")
    for status in ("queued", "launching", "finished", "missed"):
        expect(legend).to_contain_text(status)

    # the form: the agent's Markdown as kodosumi renders it; catchup_window in Advanced
    page.goto(stack.panel_url + f"/admin/schedule/{far['id']}/edit")
    page.wait_for_selector("#in-message")
    expect(page.locator("#agent-form .agent-md h1")).to_have_text("Quick demo agent")
    expect(page.locator("#agent-form .agent-md")).not_to_contain_text("#")
    expect(page.locator("#advanced")).to_have_attribute("open", "")
    expect(page.locator("#catchup-window")).to_have_value("300")
    page.fill("#catchup-window", "7200")
    page.click("#submit-button")
    page.wait_for_url(f"**/admin/schedule/{far['id']}")
    expect(page.locator("#catchup-window")).to_have_text("2 hours")
    assert user.client.get(f"/schedule/{far['id']}").json()["catchup_window"] == 7200
    assert not page.js_errors
