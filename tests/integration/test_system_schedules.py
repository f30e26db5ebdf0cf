"""System schedules on the real stack: the heartbeat demo app's own declaration is
discovered, a schedules-file entry is picked up without a restart and fires as the
``timer`` user with its inputs, and only operators may pause it."""

import textwrap
import uuid
from pathlib import Path

import httpx
import pytest

from kodosumi_timer.bridge import mint_token
from tests.integration.test_run_later import poll, recorded_inputs

pytestmark = pytest.mark.integration

TIMER_USER = "timer"
# kodosumi's checkbox takes the browser's "on" for checked
INPUTS = {"message": "from the schedules file", "repeat": 1, "colour": "red", "shout": "on"}
# stored as the agent's own form posts them, as a user's schedule is: strings, and the
# untouched date field empty
STORED = {**INPUTS, "repeat": "1", "day": ""}
RECORDED = {**INPUTS, "shout": True, "day": None}


def system_schedules(user) -> list[dict]:
    r = user.client.get("/schedule/", params={"system": "true", "limit": 500})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def find(user, flow: str, title: str | None = None) -> dict | None:
    for item in system_schedules(user):
        if item["flow_url"] == flow and (title is None or item["title"] == title):
            return item
    return None


def as_timer(stack) -> httpx.Client:
    token = mint_token(TIMER_USER, 600, stack.env["KODO_SECRET_KEY"])
    return httpx.Client(base_url=stack.panel_url, headers={"KODOSUMI_API_KEY": token},
                        timeout=30)


@pytest.fixture
def schedules_file(stack):
    path = stack.kodo.data_dir / "config" / "schedules.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    yield path
    path.write_text("[]\n")  # leave the session's stack without file schedules


def test_flow_declared_schedule_is_discovered(stack, new_user):
    user = new_user("sees-system")
    flow = stack.flows["heartbeat"]
    row = poll(lambda: find(user, flow), 30, "the heartbeat's own schedule")
    assert row["system"] is True and row["owner"] == TIMER_USER
    assert row["cron_expression"] == "* * * * *" and row["timezone"] == "UTC"
    assert row["inputs"] == {"note": "all systems nominal"}
    assert row["title"] == "Heartbeat (flow default)"
    assert row["expose_name"] == "Heartbeat demo agent"
    assert row["state"] == "active" and row["next_run"]


def test_file_schedule_fires_as_timer_and_only_operators_pause_it(
        stack, admin, new_user, schedules_file):
    flow = stack.flows["quick"]
    title = f"system echo {uuid.uuid4().hex[:6]}"
    schedules_file.write_text(textwrap.dedent(f"""\
        # written by tests/integration/test_system_schedules.py
        - flow: {flow}
          cron: "* * * * *"
          timezone: Europe/Berlin
          title: {title}
          inputs:
            message: {INPUTS['message']}
            repeat: {INPUTS['repeat']}
            colour: {INPUTS['colour']}
            shout: "on"
    """))
    user = new_user("plain")
    # picked up without a restart, seen by every user
    row = poll(lambda: find(user, flow, title), 20, "the file's schedule in the store")
    assert row["system"] is True and row["owner"] == TIMER_USER
    assert row["inputs"] == STORED and row["timezone"] == "Europe/Berlin"
    assert find(admin, flow, title)["id"] == row["id"]

    # fires at the next minute, as the timer user, with its inputs
    def finished():
        body = user.client.get(f"/schedule/{row['id']}").json()
        return body if body["last_status"] in ("finished", "error", "failed", "rejected") \
            else None
    body = poll(finished, 100, "the system schedule's first run")
    assert body["last_status"] == "finished", body
    fid = body["last_fid"]
    with as_timer(stack) as timer:
        status = timer.get(f"/outputs/status/{fid}").json()
        assert status["status"] == "finished" and status["username"] == TIMER_USER
        items = timer.get("/timeline/list", params={"pp": 50}).json()["items"]
    mine = [i for i in items if i["fid"] == fid]
    assert mine and recorded_inputs(mine[0]) == RECORDED
    # the execution is the timer's, not the user's
    assert user.client.get(f"/outputs/status/{fid}").status_code == 404

    # only operators pause, resume and trigger; editing happens in the file
    r = user.client.post(f"/schedule/{row['id']}/pause")
    assert r.status_code == 403 and "operators" in r.json()["detail"], r.text
    assert user.client.post(f"/schedule/{row['id']}/trigger").status_code == 403
    r = admin.client.put(f"/schedule/{row['id']}", json={"version": body["version"],
                                                          "title": "edited"})
    assert r.status_code == 409 and "schedules file" in r.json()["detail"], r.text
    r = admin.client.post(f"/schedule/{row['id']}/pause")
    assert r.status_code == 200 and r.json()["state"] == "paused", r.text
    r = admin.client.post(f"/schedule/{row['id']}/resume")
    assert r.status_code == 200 and r.json()["state"] == "active", r.text

    # a broken file is rejected as a whole: the schedule keeps running unchanged
    log = Path(stack.env["KODO_TIMER_LOG_FILE"])
    seen = log.read_text().count("schedules file rejected")
    schedules_file.write_text(f"- flow: {flow}\n  cron: '99 * * * *'\n")
    out = _check_config(stack, schedules_file)
    assert out.returncode == 1 and "entry 1 (flow " in out.stderr, out.stdout + out.stderr
    assert "field 'cron': minute 99 is out of range" in out.stderr
    poll(lambda: log.read_text().count("schedules file rejected") > seen, 20,
         "the timer to reject the broken file")
    kept = find(user, flow, title)
    assert kept is not None and kept["inputs"] == STORED and kept["state"] == "active"
    # removed from the file: removed from the store
    schedules_file.write_text("[]\n")
    poll(lambda: find(user, flow, title) is None, 20, "the removed entry to go")


def test_heartbeat_runs_as_timer(stack, new_user):
    """The flow-declared schedule fires too (every minute, about a second)."""
    user = new_user("watcher")
    flow = stack.flows["heartbeat"]

    def ran():
        row = find(user, flow)
        return row if row and row["last_status"] == "finished" else None
    row = poll(ran, 130, "a finished heartbeat")
    with as_timer(stack) as timer:
        status = timer.get(f"/outputs/status/{row['last_fid']}").json()
    assert status["username"] == TIMER_USER and status["status"] == "finished"

    # koco-timer status lists it with its next run and last result
    out = _koco_timer(stack, "status")
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if flow in x)
    assert "Heartbeat (flow default) [flow]" in line and "active; next 20" in line
    assert "; last 20" in line and line.rstrip().endswith(("finished", "running", "launched"))


def _koco_timer(stack, *args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "kodosumi_timer.cli", *args],
                          env=stack.env, capture_output=True, text=True, timeout=120,
                          cwd=stack.kodo.data_dir.parent)


def _check_config(stack, path):
    return _koco_timer(stack, "check-config", str(path))
