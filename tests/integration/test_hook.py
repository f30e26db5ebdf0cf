"""A trigger URL on the real stack: made by the owner, called by a machine with no login
and inputs of its own, the execution runs in kodosumi as the owner with the merged
inputs; revoked, the URL answers 404."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.integration.test_run_later import INPUTS, RECORDED, poll, recorded_inputs

pytestmark = pytest.mark.integration


def test_a_machine_runs_a_schedule_through_its_trigger_url(stack, new_user):
    user = new_user("hooked")
    created = user.client.post("/schedule/", json={
        "flow_url": stack.flows["quick"], "schedule_type": "once", "title": "hooked echo",
        "run_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),  # never due here
        "timezone": "UTC", "inputs": INPUTS, "hook_inputs": True})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    made = user.client.post(f"/schedule/{sid}/hook")
    assert made.status_code == 201, made.text
    url, secret = made.json()["url"], made.json()["token"]
    assert url.startswith(stack.panel_url) and url.endswith(f"/schedule/hook/{secret}")

    # a plain client: no token, no cookie
    called = httpx.post(url, json={"inputs": {"message": "from the hook", "repeat": 3}},
                        timeout=30)
    assert called.status_code == 202, called.text
    run_id = called.json()["id"]
    assert called.json()["trigger"] == "hook"

    def finished():
        items = user.client.get(f"/schedule/{sid}/runs").json()["items"]
        run = next((r for r in items if r["id"] == run_id), None)
        return run if run and run["status"] in ("finished", "error", "failed",
                                                "rejected", "unknown") else None
    run = poll(finished, 90, f"hook run {run_id} to end")
    assert (run["status"], run["trigger"]) == ("finished", "hook"), run["reason"]

    # the execution is the owner's, with the stored inputs and the call's merged over them
    items = user.client.get("/timeline/list", params={"pp": 50}).json()["items"]
    mine = [i for i in items if i["fid"] == run["fid"]]
    assert mine, f"{run['fid']} not in {user.name}'s timeline"
    assert recorded_inputs(mine[0]) == {**RECORDED, "message": "from the hook", "repeat": 3}
    # the schedule keeps its own inputs for its next runs
    assert user.client.get(f"/schedule/{sid}").json()["inputs"]["message"] == INPUTS["message"]

    assert user.client.delete(f"/schedule/{sid}/hook").status_code == 204
    assert httpx.post(url, timeout=30).status_code == 404
