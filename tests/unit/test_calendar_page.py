"""The week calendar on the list page of the real composed panel (without Ray): whose
runs it shows, on which day, in which zone, and what an empty week says."""

import re

import pytest
from litestar.testing import AsyncTestClient

from tests.unit.conftest import ALICE, BOB, OPERATOR, once, token
from tests.unit.factories import T0, FakeRoles, composed_app

# T0 is Monday 2027-03-01 08:00 UTC


@pytest.fixture
async def panel(tmp_path):
    app = composed_app(tmp_path, roles=FakeRoles(operators=(OPERATOR,)))
    async with AsyncTestClient(app=app) as client:
        yield client


def calendar(page: str) -> str:
    start = page.index('id="week-calendar"')
    return page[start:page.index("</article>", start)]


def day(cal: str, iso: str) -> str:
    start = cal.index(f'data-date="{iso}"')
    end = cal.find('class="cal-day', start)
    return cal[start:end if end > 0 else len(cal)]


async def make(panel, who: str, **over) -> str:  # type: ignore[no-untyped-def]
    r = await panel.post("/schedule/", json=once(**over), headers=token(who))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_the_list_shows_the_viewers_week_in_the_zone_of_the_cookie(panel):
    daily = await make(panel, ALICE, schedule_type="cron", run_at=None,
                       cron_expression="30 23 * * *", title="Nightly <b>")
    paused = await make(panel, ALICE, title="Paused one")
    await panel.post(f"/schedule/{paused}/pause", headers=token(ALICE))
    await make(panel, BOB, title="Bob's")
    page = await panel.get("/admin/schedule/", headers=token(ALICE),
                           cookies={"kodo_timer_tz": "Asia/Tokyo"})
    assert page.status_code == 200, page.text
    cal = calendar(page.text)
    assert "Times in Asia/Tokyo" in cal and "Your coming runs" in cal
    # Monday 23:30 UTC is Tuesday 08:30 in Tokyo; Monday there has none left
    assert f'href="/admin/schedule/{daily}"' not in day(cal, "2027-03-01")
    tuesday = day(cal, "2027-03-02")
    assert f'href="/admin/schedule/{daily}"' in tuesday and ">08:30</span>" in tuesday
    assert "Nightly &lt;b&gt;" in tuesday and "Nightly <b>" not in cal
    assert 'aria-current="date"' in day(cal, "2027-03-01")
    assert "Paused one" not in cal and "Bob's" not in cal


async def test_without_the_cookie_the_calendar_says_it_shows_utc(panel):
    sid = await make(panel, ALICE)  # once, at T0 + 1 h
    cal = calendar((await panel.get("/admin/schedule/", headers=token(ALICE))).text)
    assert "Times in UTC (your browser&#39;s zone is not known yet)" in cal \
        or "Times in UTC (your browser's zone is not known yet)" in cal
    assert f'href="/admin/schedule/{sid}"' in day(cal, "2027-03-01")
    assert ">09:00</span>" in day(cal, "2027-03-01")
    bad = calendar((await panel.get("/admin/schedule/", headers=token(ALICE),
                                    cookies={"kodo_timer_tz": "Mars/Olympus"})).text)
    assert "Times in UTC" in bad


async def test_an_empty_week_says_so_briefly(panel):
    cal = calendar((await panel.get("/admin/schedule/", headers=token(BOB))).text)
    assert 'id="cal-empty"' in cal and "Nothing of yours is due in the next 7 days" in cal
    assert 'class="cal-days"' not in cal


async def test_operators_in_all_users_mode_see_what_the_list_shows(panel):
    alices = await make(panel, ALICE, title="Alice's")
    mine = calendar((await panel.get("/admin/schedule/", headers=token(OPERATOR))).text)
    assert alices not in mine and "Your coming runs" in mine
    everyone = calendar((await panel.get("/admin/schedule/?everyone=true",
                                         headers=token(OPERATOR))).text)
    assert f'href="/admin/schedule/{alices}"' in everyone
    assert "Coming runs of all users" in everyone and "All users switch" in everyone
    # the switch is for operators: a user asking for everyone still sees their own
    bobs = calendar((await panel.get("/admin/schedule/?everyone=true", headers=token(BOB))).text)
    assert alices not in bobs


async def test_the_calendar_has_seven_days_and_the_cookie_script(panel):
    page = (await panel.get("/admin/schedule/", headers=token(ALICE))).text
    await make(panel, ALICE)
    cal = calendar((await panel.get("/admin/schedule/", headers=token(ALICE))).text)
    assert re.findall(r'data-date="([\d-]+)"', cal) == [
        f"2027-03-0{d}" for d in range(1, 8)]
    assert "kodo_timer_tz=" in page and "resolvedOptions().timeZone" in page
    assert T0.date().isoformat() in cal
