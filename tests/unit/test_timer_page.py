"""The operators' Timer page in the real composed panel (kodosumi's app and templates,
our routers), without Ray: operators see it, with its charts; others are refused."""

import re
import time
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient

from kodosumi_timer.panel.metrics import TIMER_META_KEY
from kodosumi_timer.panel.services import STATE_KEY
from kodosumi_timer.panel.timer_page import age_words, lateness_bars, outcome_bars
from kodosumi_timer.store import RunRow
from tests.unit.conftest import ALICE, OPERATOR, token
from tests.unit.factories import T0, Clock, FakeRoles, composed_app, schedule

URL = "/admin/schedule/timer"


@pytest.fixture
async def panel(tmp_path):
    app = composed_app(tmp_path, roles=FakeRoles(operators=(OPERATOR,)), clock=Clock(T0))
    async with AsyncTestClient(app=app) as client:
        yield client


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r'<svg\b[^>]*class="chart.*?</svg>', html, re.S)]


async def test_a_user_who_is_no_operator_is_refused(panel):
    r = await panel.get(URL, headers=token(ALICE))
    assert r.status_code == 403
    assert "Operators only" in r.text and 'class="chart' not in r.text
    listing = await panel.get("/admin/schedule/", headers=token(ALICE))
    assert listing.status_code == 200 and 'id="timer-link"' not in listing.text


async def test_without_a_login_the_page_is_not_shown(panel):
    r = await panel.get(URL, follow_redirects=False)
    assert r.status_code in (302, 303, 401) and "coming-load" not in r.text


async def test_an_operator_sees_the_timer_down_and_an_empty_store(panel):
    async def no_timer():
        return None

    panel.app.state[TIMER_META_KEY] = no_timer
    r = await panel.get(URL, headers=token(OPERATOR))
    assert r.status_code == 200, r.text
    assert 'id="timer-up"' in r.text and "Down" in r.text
    assert len(svgs(r.text)) == 3
    assert "no slots in this window" in r.text
    listing = await panel.get("/admin/schedule/", headers=token(OPERATOR))
    assert 'id="timer-link"' in listing.text and 'href="/admin/schedule/timer"' in listing.text


async def test_an_operator_sees_the_timer_its_lateness_and_the_nine_oclock_spike(panel):
    async def meta():
        return {"mode": "actor", "pid": 42, "host": "node-7", "version": "9.9",
                "started": time.time() - 60, "fires": 3, "failures": 0,
                "figures": {"heartbeat": T0.timestamp() - 125, "waiting": 4,
                            "in_flight": 1, "running": 2, "store_errors": 0, "runs": {}}}

    panel.app.state[TIMER_META_KEY] = meta
    store = panel.app.state[STATE_KEY].store
    nine = T0.replace(hour=9)
    for i in range(12):
        await store.add_schedule(schedule(
            owner=f"user-{i % 2}", schedule_type="cron", cron_expression="0 9 * * *",
            next_run=nine, title=f"Report {i}"))
    first = (await store.list_schedules(None))[0][0]
    async with store.session.begin() as s:
        s.add_all([RunRow(schedule_id=first.id, owner=first.owner, attempt=1, trigger="timer",
                          slot=T0 - timedelta(minutes=m), status="finished",
                          fired_at=T0 - timedelta(minutes=m) + timedelta(milliseconds=30))
                   for m in range(1, 6)])
    r = await panel.get(URL, headers=token(OPERATOR))
    assert r.status_code == 200, r.text
    html = r.text
    assert "actor" in html and "node-7" in html and "2 minutes ago" in html
    assert "Waiting for capacity" in html
    charts = svgs(html)
    assert len(charts) == 3
    assert "5 launches" in html and "finished: 5" in html
    busiest = html[html.index('id="busiest"'):]
    assert "Mon 09:00 UTC" in busiest  # T0 is a Monday
    assert "12 slots, 2 users" in busiest and "Report" in busiest and "name of user-0" in busiest
    assert "and 4 more" in busiest


def test_figures_in_words_and_bars():
    assert age_words(3.7) == "3 seconds ago" and age_words(61) == "1 minute ago"
    assert age_words(7300) == "2 hours ago" and age_words(None) == "never"
    bars = lateness_bars([0.001, 0.004, 0.02, 120.0])
    assert bars[0].label == "≤5ms" and bars[0].value == 2 and bars[-1].value == 1
    assert bars[-1].bad and not bars[0].bad and sum(b.value for b in bars) == 4
    shown = outcome_bars({"missed": 1, "finished": 5, "weird": 2, "error": 0})
    assert [(b.label, b.value, b.bad) for b in shown] == [
        ("finished", 5, False), ("missed", 1, True), ("weird", 2, False)]
