"""The timer and the composed panel share a Ray cluster politely: one timer per cluster,
clean start/stop/status, and stopping our panel leaves other panels working."""

import subprocess
import sys

import httpx
import pytest

from kodosumi_timer.devstack import ProcessGroup, free_port
from kodosumi_timer.fullstack import start_panel, start_timer
from tests.stack_fixtures import Panel

pytestmark = pytest.mark.integration


def koco_timer(stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kodosumi_timer.cli", *args], env=stack.env,
                          capture_output=True, text=True, timeout=timeout,
                          cwd=stack.kodo.data_dir.parent)


def test_status_shows_the_running_timer(stack):
    out = koco_timer(stack, "status")
    assert out.returncode == 0, out.stderr
    assert "timer: running as a process (pid=" in out.stdout
    assert "fires since start:" in out.stdout


def test_second_timer_on_the_cluster_is_refused(stack):
    out = koco_timer(stack, "start", "--block")
    assert out.returncode != 0
    assert "already running" in (out.stdout + out.stderr)
    assert "Traceback" not in out.stderr


def test_stopping_our_panel_leaves_other_panels_working(stack, admin):
    """kodosumi's own shutdown hook ray.kills the shared register actor; ours must not."""
    group = ProcessGroup()
    try:
        url = start_panel(group, stack.kodo, stack.env, free_port())
        second = Panel.login(url, "admin", "admin")
        assert len(second.client.get("/flow").json()["items"]) >= 3
    finally:
        group.stop_all()
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, timeout=2)
    # the session's panel still knows every flow and still launches
    items = admin.client.get("/flow", params={"pp": 100}).json()["items"]
    assert {i["url"] for i in items} >= set(stack.flows.values())
    r = admin.client.post(stack.flows["quick"], json={"message": "still here"})
    assert r.status_code == 200 and r.json().get("result"), r.text


def test_stop_then_start_in_background(stack, stack_group):
    out = koco_timer(stack, "stop")
    assert out.returncode == 0 and "timer stopped (pid=" in out.stdout, out.stdout + out.stderr
    assert "not running" in koco_timer(stack, "status").stdout
    started = koco_timer(stack, "start")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "timer started (pid=" in started.stdout
    pid = int(started.stdout.split("timer started (pid=")[1].split(")")[0])
    try:
        assert f"pid={pid}" in koco_timer(stack, "status").stdout
    finally:
        stopped = koco_timer(stack, "stop")
        assert f"pid={pid}" in stopped.stdout
    # give the session its timer back, in the session's group (stopped by pid at the end)
    start_timer(stack_group, stack.kodo, stack.env)


def test_timer_as_ray_actor_survives_its_worker_being_killed(stack, stack_group, new_user):
    """`start --actor` places the timer in the cluster; Ray restarts it after a kill -9 and
    the slot still fires exactly once."""
    import os
    import signal
    import time
    from datetime import UTC, datetime, timedelta

    from tests.integration.test_run_later import poll

    assert "timer stopped" in koco_timer(stack, "stop").stdout
    try:
        out = koco_timer(stack, "start", "--actor")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Ray actor" in out.stdout
        status = koco_timer(stack, "status").stdout
        assert "as a Ray actor" in status
        first_pid = int(status.split("pid=")[1].split(" ")[0])

        user = new_user("actor")
        run_at = datetime.now(UTC) + timedelta(seconds=12)
        created = user.client.post("/schedule/", json={
            "flow_url": stack.flows["quick"], "schedule_type": "once",
            "run_at": run_at.isoformat(), "inputs": {"message": "from the actor"}}).json()
        os.kill(first_pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def restarted():
            text = koco_timer(stack, "status").stdout
            return "as a Ray actor" in text and f"pid={first_pid} " not in text
        poll(restarted, 60, "the actor restarted by Ray")
        back_after = time.monotonic() - killed_at
        assert back_after < 60

        def finished():
            body = user.client.get(f"/schedule/{created['id']}").json()
            return body if body["last_status"] == "finished" else None
        poll(finished, 60, "the slot fired by the restarted actor")
        runs = user.client.get(f"/schedule/{created['id']}/runs").json()["items"]
        assert len(runs) == 1 and runs[0]["fid"]
    finally:
        stopped = koco_timer(stack, "stop")
        assert stopped.returncode == 0
        assert "not running" in koco_timer(stack, "status").stdout
        start_timer(stack_group, stack.kodo, stack.env)
