"""Recurring schedules on the real stack. The schedules are created together at the start
of the module so their minutes run side by side instead of one after another."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_run_later import poll, recorded_inputs

pytestmark = pytest.mark.integration

EVERY_MINUTE = "* * * * *"


def runs(user, sid):
    r = user.client.get(f"/schedule/{sid}/runs", params={"limit": 100})
    assert r.status_code == 200, r.text
    return sorted(r.json()["items"], key=lambda x: (x["slot"], x["id"]))


def create(user, flow, **body):
    r = user.client.post("/schedule/", json={"flow_url": flow, "schedule_type": "cron",
                                             "cron_expression": EVERY_MINUTE,
                                             "timezone": "Europe/Berlin", **body})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def recurring(stack, new_user_module):
    user = new_user_module("cron")
    return {
        "user": user,
        "every": create(user, stack.flows["quick"], title="every minute",
                        inputs={"message": "tick", "repeat": 1}),
        "slow": create(user, stack.flows["slow"], title="slow, overlap skip",
                       inputs={"seconds": 75}, overlap="skip"),
        "paused": create(user, stack.flows["quick"], title="to be paused",
                         inputs={"message": "pause me"}),
    }


def test_fires_in_two_consecutive_minutes_with_its_inputs(recurring):
    user, sid = recurring["user"], recurring["every"]["id"]
    done = poll(lambda: [r for r in runs(user, sid) if r["status"] == "finished"][:2]
                if len([r for r in runs(user, sid) if r["status"] == "finished"]) >= 2 else None,
                200, "two finished runs")
    first, second = (datetime.fromisoformat(r["slot"]) for r in done)
    assert second - first == timedelta(minutes=1)
    assert first.second == 0 and first.microsecond == 0
    for run in done:
        fired = datetime.fromisoformat(run["fired_at"])
        slot = datetime.fromisoformat(run["slot"])
        assert slot <= fired < slot + timedelta(seconds=5), run
        assert run["trigger"] == "timer" and run["fid"]
    items = user.client.get("/timeline/list", params={"pp": 50}).json()["items"]
    fids = {r["fid"] for r in done}
    recorded = [i for i in items if i["fid"] in fids]
    assert len(recorded) == 2
    assert all(recorded_inputs(i)["message"] == "tick" for i in recorded), recorded
    body = user.client.get(f"/schedule/{sid}").json()
    assert body["run_count"] >= 2 and body["state"] == "active"


def test_overlap_skip_records_skipped_for_the_slow_agent(recurring):
    user, sid = recurring["user"], recurring["slow"]["id"]
    skipped = poll(lambda: [r for r in runs(user, sid) if r["status"] == "skipped"],
                   200, "a skipped slot while the slow agent runs")
    assert "still running" in skipped[0]["reason"]
    launched = [r for r in runs(user, sid) if r["fid"]]
    assert launched and launched[0]["slot"] < skipped[0]["slot"]


def test_pause_stops_and_resume_restarts(recurring):
    user, sid = recurring["user"], recurring["paused"]["id"]
    poll(lambda: runs(user, sid), 120, "a first run")
    r = user.client.post(f"/schedule/{sid}/pause")
    assert r.status_code == 200 and r.json()["state"] == "paused"
    count = len(runs(user, sid))
    paused_at = datetime.now(UTC)
    # let the real clock pass the next minute boundary (a slot of the paused schedule):
    # the absence of a run can only be seen after it, so this waits for time itself
    boundary = paused_at.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=5)
    time.sleep(max(0.0, (boundary - datetime.now(UTC)).total_seconds()))
    assert len(runs(user, sid)) == count
    r = user.client.post(f"/schedule/{sid}/resume")
    assert r.status_code == 200, r.text
    nxt = datetime.fromisoformat(r.json()["next_run"])
    assert nxt > datetime.now(UTC) - timedelta(seconds=1)
    poll(lambda: len(runs(user, sid)) > count, 90, "a run after resume")
    # no burst of the slot missed while paused
    after = [x for x in runs(user, sid)[count:] if x["trigger"] == "timer"]
    assert len(after) == 1 and datetime.fromisoformat(after[0]["slot"]) >= nxt


def test_trigger_runs_at_once_without_moving_next_run(stack, new_user):
    user = new_user("trigger")
    run_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = user.client.post("/schedule/", json={
        "flow_url": stack.flows["quick"], "schedule_type": "once", "run_at": run_at,
        "inputs": {"message": "now please"}}).json()
    sent = datetime.now(UTC)
    r = user.client.post(f"/schedule/{created['id']}/trigger")
    assert r.status_code == 202, r.text
    done = poll(lambda: [x for x in runs(user, created["id"]) if x["status"] == "finished"],
                45, "the triggered run to finish")
    assert done[0]["trigger"] == "manual"
    assert datetime.fromisoformat(done[0]["fired_at"]) - sent < timedelta(seconds=5)
    assert user.client.get(f"/schedule/{created['id']}").json()["next_run"] == \
        created["next_run"]


def test_stale_version_is_409_on_the_real_panel(stack, new_user):
    user = new_user("versions")
    s = create(user, stack.flows["quick"], cron_expression="0 9 * * MON",
               inputs={"message": "weekly"})
    ok = user.client.put(f"/schedule/{s['id']}", json={"version": 1, "title": "Monday 9"})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = user.client.put(f"/schedule/{s['id']}", json={"version": 1, "title": "late edit"})
    assert stale.status_code == 409 and stale.json()["error"] == "conflict"
