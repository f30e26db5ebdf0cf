"""Catch-up after downtime, and two timers (on two Ray clusters) sharing one store: every
slot is launched exactly once."""

import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from kodosumi_timer.devstack import (
    ProcessGroup,
    RayPorts,
    actor_alive,
    kodo_env,
    short_temp_dir,
    start_ray_head,
)
from kodosumi_timer.fullstack import start_timer
from kodosumi_timer.lock import LOCK_NAME, NAMESPACE
from tests.integration.test_recurring import runs
from tests.integration.test_run_later import poll, timeline_holding

pytestmark = pytest.mark.integration


def koco_timer(env, cwd, *args):
    return subprocess.run([sys.executable, "-m", "kodosumi_timer.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def wait_minute_boundaries(n: int) -> None:
    now = datetime.now(UTC)
    target = now.replace(second=0, microsecond=0) + timedelta(minutes=n, seconds=3)
    poll(lambda: datetime.now(UTC) >= target, (target - now).total_seconds() + 5,
         f"{n} minute boundaries")


def backdate(stack, sid: str, minutes: int) -> None:
    """Move a schedule's next slot into the past, as if the timer had been down that long."""
    import asyncio

    from kodosumi_timer.store import open_store

    async def move():
        store = await open_store(stack.schedule_db, migrate_schema=False)
        try:
            past = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes)
            await store.update_schedule(sid, {"next_run": past})
        finally:
            await store.close()
    asyncio.run(move())


def test_catch_up_once_then_two_timers_never_double_fire(stack, stack_group, new_user):
    cwd = stack.kodo.data_dir.parent
    user = new_user("twotimers")
    assert "timer stopped" in koco_timer(stack.env, cwd, "stop").stdout
    second = ProcessGroup()
    temp_dir = short_temp_dir()
    try:
        catchup = user.client.post("/schedule/", json={
            "flow_url": stack.flows["quick"], "schedule_type": "cron",
            "cron_expression": "* * * * *", "inputs": {"message": "catch up"},
            "title": "catch-up"}).json()
        # while the timer is down, three of its slots pass
        backdate(stack, catchup["id"], 3)

        # a second Ray cluster with its own timer, same store, same panel
        ports = RayPorts.free()
        env2 = kodo_env(ports.address, stack.kodo.data_dir, stack.env["KODO_SECRET_KEY"],
                        dashboard_url=ports.dashboard_url, base=stack.env)
        start_ray_head(second, temp_dir, ports, env2,
                       log_path=stack.kodo.data_dir / "logs" / "ray-head-2.log")
        env2.update({k: v for k, v in stack.env.items()
                     if k.startswith("KODO_TIMER") or k == "KODO_ADMIN_DATABASE"})
        second.start("timer-2", [sys.executable, "-m", "kodosumi_timer.cli", "start",
                                 "--block"], env2, stack.kodo.data_dir / "logs" / "timer2.out",
                     cwd=cwd)
        start_timer(stack_group, stack.kodo, stack.env)
        poll(lambda: actor_alive(ports.dashboard_url, LOCK_NAME, NAMESPACE), 60,
             "the second timer")

        # catch-up: exactly one launch for the two missed slots, each missed slot recorded once
        poll(lambda: [r for r in runs(user, catchup["id"]) if r["fid"]], 60, "catch-up fire")
        more = [user.client.post("/schedule/", json={
            "flow_url": stack.flows["quick"], "schedule_type": "cron",
            "cron_expression": "* * * * *", "inputs": {"message": f"pair {i}"},
            "overlap": "allow"}).json() for i in range(8)]
        wait_minute_boundaries(1)
        # every slot claimed so far is sent and its result recorded (a launch still
        # being sent has no fid yet, though kodosumi may already show its execution)
        poll(lambda: all(r["status"] not in ("queued", "launching")
                         for s in [catchup, *more] for r in runs(user, s["id"])),
             90, "the claimed slots recorded")
    finally:
        second.stop_all()
        shutil.rmtree(temp_dir, ignore_errors=True)

    # the stack's timer goes on firing these every-minute schedules: paused, nothing new
    # reaches kodosumi while its timeline is compared with our records below (a minute
    # boundary inside that wait made 8 new executions look unrecorded on CI)
    for s in [catchup, *more]:
        assert user.client.post(f"/schedule/{s['id']}/pause").status_code == 200
    poll(lambda: all(r["status"] not in ("queued", "launching")
                     for s in [catchup, *more] for r in runs(user, s["id"])),
         90, "the slots claimed before the pause recorded")

    history = runs(user, catchup["id"])
    missed = [r for r in history if r["status"] == "missed"]
    assert len(missed) >= 2, history
    slots = Counter(r["slot"] for r in history)
    assert max(slots.values()) == 1, f"a slot recorded twice: {slots}"
    first_fire = min(r["slot"] for r in history if r["fid"])
    assert all(r["slot"] < first_fire for r in missed)

    launched: set[str] = set()
    for s in [catchup, *more]:
        history = runs(user, s["id"])
        slots = Counter(r["slot"] for r in history)
        assert max(slots.values()) == 1, f"slot launched twice for {s['id']}: {slots}"
        fids = [r["fid"] for r in history if r["fid"]]
        assert len(fids) == len(set(fids))
        launched |= set(fids)
    assert len(launched) >= 1 + 8

    # kodosumi holds no execution for this user that we did not launch: none doubled
    items, _ = timeline_holding(user, launched, 300)
    timeline = {i["fid"] for i in items}
    assert timeline <= launched, f"executions nobody recorded: {timeline - launched}"
