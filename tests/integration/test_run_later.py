"""Run later, end to end, on the real stack: real launches, real executions, real status."""

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.stack_fixtures import Panel

pytestmark = pytest.mark.integration

# kodosumi's checkbox takes the browser's "on" for checked (its forms post that)
INPUTS = {"message": "hello from the timer", "repeat": 2, "colour": "blue", "shout": "on",
          "day": "2027-01-04"}
RECORDED = {**INPUTS, "shout": True}


def poll(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout} s")


def timeline_holding(user: Panel, launched: set[str], timeout: float,
                     most_lost: int = 2) -> tuple[list[dict], set[str]]:
    """The user's executions in kodosumi's timeline once every ``launched`` fid is
    listed (at most ``timeout`` seconds), and the fids kodosumi lost. kodosumi lists an
    execution once its Runner actor is alive and the spooler streams it; on a loaded
    machine it sometimes answers a launch with a fid and never starts that execution
    (about 1 in 100 in bench/real_burst.py). Such a fid is then unknown to kodosumi
    altogether (its status request is no 200); at most ``most_lost`` are tolerated."""
    deadline = time.monotonic() + timeout
    while True:
        items = user.client.get("/timeline/list", params={"pp": 200}).json()["items"]
        missing = launched - {i["fid"] for i in items}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    for fid in sorted(missing):
        try:  # kodosumi 1.1 keeps the status request of an execution without status
            answer = user.client.get(f"/outputs/status/{fid}", timeout=15)  # waiting
            known = answer.status_code == 200
        except httpx.TimeoutException:
            known = False
        assert not known, f"{fid} is known but not in the timeline"
        print(f"kodosumi lost execution {fid} after answering with it")
    assert len(missing) <= most_lost, (
        f"not in kodosumi's timeline within {timeout} s: {sorted(missing)}")
    return items, missing


def schedule_once(user: Panel, flow: str, seconds: float, inputs=None, **extra) -> dict:
    run_at = datetime.now(UTC) + timedelta(seconds=seconds)
    r = user.client.post("/schedule/", json={
        "flow_url": flow, "schedule_type": "once", "run_at": run_at.isoformat(),
        "timezone": "Europe/Berlin", "inputs": INPUTS if inputs is None else inputs, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def final_state(user: Panel, sid: str, timeout: float = 45) -> dict:
    def done():
        body = user.client.get(f"/schedule/{sid}").json()
        return body if body["last_status"] in ("finished", "error", "failed", "rejected") else None
    return poll(done, timeout, f"schedule {sid} to end")


def test_user_schedules_quick_agent_and_it_runs_as_them(stack, new_user):
    user = new_user("alice")
    created = schedule_once(user, stack.flows["quick"], 10, title="echo later")
    assert created["owner"] == user.role_id
    # stored as kodosumi's own form posts them: strings, the checkbox "on"
    assert created["inputs"] == {**INPUTS, "repeat": "2"}
    slot = datetime.fromisoformat(created["next_run"])

    body = final_state(user, created["id"])
    assert body["last_status"] == "finished", body
    assert body["state"] == "done" and body["next_run"] is None
    fid = body["last_fid"]
    # fired on time: the run's fired_at is at (not before) the slot, within seconds
    runs = user.client.get(f"/schedule/{created['id']}/runs")
    assert runs.status_code == 200, runs.text
    fired = datetime.fromisoformat(runs.json()["items"][0]["fired_at"])
    assert slot <= fired < slot + timedelta(seconds=5)

    # the execution belongs to the user: their status route knows it ...
    status = user.client.get(f"/outputs/status/{fid}").json()
    assert status["status"] == "finished" and status["username"] == user.role_id
    # ... it is in their timeline with the scheduled inputs ...
    items = user.client.get("/timeline/list", params={"pp": 50}).json()["items"]
    mine = [i for i in items if i["fid"] == fid]
    assert mine, f"{fid} not in {user.name}'s timeline"
    assert recorded_inputs(mine[0]) == RECORDED
    # ... and another user cannot see it
    other = new_user("eve")
    assert other.client.get(f"/outputs/status/{fid}").status_code == 404
    assert other.client.get(f"/schedule/{created['id']}").status_code == 404
    assert other.client.delete(f"/schedule/{created['id']}").status_code == 404


def recorded_inputs(timeline_item):
    """The inputs kodosumi recorded for an execution (it serializes them as {"dict": ...})."""
    recorded = timeline_item["inputs"]
    if isinstance(recorded, str):
        recorded = json.loads(recorded)
    while isinstance(recorded, dict) and len(recorded) == 1 and "dict" in recorded:
        recorded = recorded["dict"]
    return recorded


def test_deactivated_owner_does_not_fire(stack, admin, new_user):
    user = new_user("bob")
    created = schedule_once(user, stack.flows["quick"], 4)
    r = admin.client.put(f"/role/{user.role_id}", json={"active": False})
    assert r.status_code == 200, r.text

    def paused():
        row = admin_view(stack, created["id"])
        return row if row["state"] == "paused" else None
    row = poll(paused, 30, "schedule paused for the inactive owner")
    assert "owner inactive" in row["note"]
    assert row["last_fid"] is None


def admin_view(stack, sid):
    """Read a schedule straight from the store (the owner can no longer log in)."""
    import asyncio

    from kodosumi_timer.store import open_store

    async def read():
        store = await open_store(stack.schedule_db, migrate_schema=False)
        try:
            row = await store.get_schedule(sid)
            runs, _ = await store.runs(sid)
            return {"state": row.state, "note": row.note, "last_fid": row.last_fid,
                    "runs": [(r.status, r.reason) for r in runs]}
        finally:
            await store.close()
    return asyncio.run(read())


def test_failing_agent_records_error(stack, new_user):
    user = new_user("carol")
    created = schedule_once(user, stack.flows["failing"], 2, inputs={})
    body = final_state(user, created["id"])
    assert body["last_status"] == "error", body


def test_rejected_inputs_are_recorded(stack, new_user):
    user = new_user("dave")
    # a message of blanks fills the form's required field; the agent refuses it
    created = schedule_once(user, stack.flows["quick"], 1, inputs={"message": "   "})
    body = final_state(user, created["id"])
    assert body["last_status"] == "rejected", body
    assert body["last_fid"] is None


def test_unknown_flow_is_422(stack, new_user):
    user = new_user("frank")
    r = user.client.post("/schedule/", json={
        "flow_url": "/-/127.0.0.1/1/nothing/-/", "schedule_type": "once",
        "run_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), "inputs": {}})
    assert r.status_code == 422 and r.json()["field"] == "flow_url"


def test_schedules_nav_item_on_kodosumi_pages(stack, admin):
    for page in ("/admin/flow", "/admin/timeline/view", "/admin/routes", "/admin/schedule"):
        r = admin.client.get(page)
        assert r.status_code == 200, (page, r.status_code)
        assert r.text.count('href="/admin/schedule"') == 2, page  # desktop and mobile nav
        assert "Timeline" in r.text  # kodosumi's own items are still there


def test_openapi_lists_schedule_routes(stack, admin):
    r = admin.client.get("/schema/openapi.json")
    assert r.status_code == 200, r.text[:300]
    schema = r.json()
    assert {"get", "post"} <= set(schema["paths"]["/schedule"])
    assert {"get", "delete"} <= set(schema["paths"]["/schedule/{schedule_id}"])
