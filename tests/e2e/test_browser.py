"""The "Schedules" item in kodosumi's navigation, on desktop and phone widths."""

from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.e2e


def test_user_finds_schedules_in_the_nav_and_sees_theirs(stack, new_user, open_page):
    user = new_user("browser")
    run_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    r = user.client.post("/schedule/", json={
        "flow_url": stack.flows["quick"], "schedule_type": "once",
        "run_at": run_at.isoformat(), "inputs": {"message": "hi"}, "title": "Seen in a browser"})
    assert r.status_code == 201, r.text
    page = open_page(user.name)
    page.click("nav.left a[href='/admin/schedule']")
    page.wait_for_url("**/admin/schedule")
    row = page.locator(".schedule-row", has_text="Seen in a browser")
    assert row.count() == 1
    assert "Quick demo agent" in row.inner_text()
    # the phone layout has the item in the bottom bar
    page.set_viewport_size({"width": 390, "height": 800})
    assert page.locator("nav.bottom a[href='/admin/schedule']").is_visible()
    assert not page.js_errors
