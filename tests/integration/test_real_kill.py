"""``kill -9`` of the timer in the middle of a burst on the real stack (issue 16): a new
timer takes over what the killed one held once its lease ran out, settles with kodosumi
what it may have sent, and every run ends launched (with the fid kodosumi knows) or not
launched — ``unknown`` only where kodosumi itself cannot tell. Nothing runs twice.
"""

import os
import signal
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kodosumi_timer.fullstack import start_timer
from tests.integration.test_run_later import poll, timeline_holding

pytestmark = pytest.mark.integration

SLOTS = 12
PENDING = ("queued", "launching")


def store_runs(stack, owner: str) -> list[tuple[str, str, str | None]]:
    path = Path(stack.schedule_db.split("///", 1)[1])
    with sqlite3.connect(path) as db:
        return db.execute("SELECT schedule_id, status, fid FROM schedule_run "
                          "WHERE owner = ?", (owner,)).fetchall()


def test_kill_9_mid_burst_every_run_is_settled_and_none_runs_twice(
        stack, stack_group, new_user):
    user = new_user("kill9")
    slot = (datetime.now(UTC) + timedelta(seconds=12)).replace(microsecond=0)
    for n in range(SLOTS):
        r = user.client.post("/schedule/", json={
            "flow_url": stack.flows["quick"], "schedule_type": "once",
            "run_at": slot.isoformat(), "inputs": {"message": f"kill {n}"},
            "title": f"kill {n}"})
        assert r.status_code == 201, r.text
    timer = next(c for c in reversed(stack_group.children) if c.name == "timer")

    def sending() -> bool:  # the burst is under way: some sent, some not yet
        statuses = Counter(status for _, status, _ in store_runs(stack, user.role_id))
        return statuses["launching"] + statuses["launched"] + statuses["running"] >= 1

    poll(sending, 60, "the burst to start")
    os.kill(timer.pid, signal.SIGKILL)  # no cleanup, no last words
    timer.popen.wait(10)
    stack_group.forget(timer)
    killed_at = time.monotonic()
    left = Counter(status for _, status, _ in store_runs(stack, user.role_id))
    print("left by the killed timer:", dict(left))

    # a new timer (short lease, as an operator might set) takes over
    env = {**stack.env, "KODO_TIMER_LEASE": "5"}
    start_timer(stack_group, stack.kodo, env)

    def settled() -> list[tuple[str, str, str | None]] | None:
        rows = store_runs(stack, user.role_id)
        return rows if len(rows) == SLOTS and not any(s in PENDING for _, s, _ in rows) \
            else None

    rows = poll(settled, 240, "every run settled")
    print(f"settled {time.monotonic() - killed_at:.0f} s after the kill:",
          dict(Counter(status for _, status, _ in rows)))
    unknown = [r for r in rows if r[1] == "unknown"]
    print(f"unknown (kodosumi could not tell): {len(unknown)} of {SLOTS}")
    fids = [fid for _, status, fid in rows if fid]
    assert len(fids) == len(set(fids)), f"one execution recorded for two runs: {rows}"
    assert all(status in ("launched", "running", "finished", "error", "unknown", "missed",
                          "failed") for _, status, _ in rows), rows
    # kodosumi holds exactly one execution per launched run of this user: none twice
    launched = set(fids)
    items, lost = timeline_holding(user, launched, 300)
    # a run kodosumi lost is one we cannot have seen end
    now = store_runs(stack, user.role_id)
    assert not [r for r in now if r[2] in lost and r[1] in ("finished", "error")], now
    # what kodosumi ran beyond our recorded fids can only be runs we recorded unknown
    extra = {i["fid"] for i in items} - launched
    assert len(extra) <= len(unknown), (
        f"kodosumi ran {len(extra)} executions not recorded as launched: {rows}")
    assert len(items) <= SLOTS, f"an execution ran twice: {len(items)} for {SLOTS} slots"
