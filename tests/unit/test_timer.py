"""The timer loop's steps with a real store, an injected clock and fake launch/roles
(our own interfaces; the real kodosumi path is covered by the integration tests)."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from kodosumi_timer import reasons
from kodosumi_timer.bridge import LaunchOutcome, Reconciled
from kodosumi_timer.policy import MAX_MISSED_RECORDED
from kodosumi_timer.rules import jitter_offset
from kodosumi_timer.store.repository import ClaimRequest
from kodosumi_timer.timer import FOLLOW_AT_LEAST, LocalWaker, Timer, TimerConfig
from kodosumi_timer.timer.launching import CHECK_AHEAD
from tests.unit.factories import T0, Clock, FakeLauncher, FakeRoles, schedule


def make_timer(store, launcher=None, roles=None, clock=None, waker=None, sleep=None, **kw):
    """A timer with an injected clock; ``kw`` are TimerConfig fields (no backoff)."""
    config = TimerConfig(**{"backoff": lambda attempt: 0.0, **kw})
    extra = {"sleep": sleep} if sleep is not None else {}
    return Timer(store, launcher or FakeLauncher(), roles or FakeRoles(), waker or LocalWaker(),
                 config, clock=clock or Clock(T0), **extra)


async def test_due_once_schedule_fires_as_owner_with_inputs(store):
    row = await store.add_schedule(schedule(owner="alice", inputs={"text": "hi", "n": 2}))
    launcher = FakeLauncher()
    timer = make_timer(store, launcher)
    assert await timer.fire_due() == 1
    await timer.drain()
    assert launcher.calls == [(row.flow_url, "alice", {"text": "hi", "n": 2})]
    back = await store.get_schedule(row.id)
    assert back.state == "done" and back.next_run is None
    assert back.last_fid == "fid-1" and back.last_status == "launched" and back.last_run == T0
    runs, _ = await store.runs(row.id)
    assert [(r.status, r.fid, r.slot) for r in runs] == [("launched", "fid-1", T0)]


async def test_not_yet_due_is_left_alone(store):
    await store.add_schedule(schedule(next_run=T0 + timedelta(seconds=1)))
    launcher = FakeLauncher()
    timer = make_timer(store, launcher)
    assert await timer.fire_due() == 0
    assert launcher.calls == []
    assert await timer.seconds_to_next() == pytest.approx(1.0)


async def test_inactive_owner_pauses_with_note(store):
    row = await store.add_schedule(schedule(owner="bob"))
    launcher = FakeLauncher()
    timer = make_timer(store, launcher, roles=FakeRoles(bob="inactive"))
    await timer.fire_due()
    assert launcher.calls == []
    back = await store.get_schedule(row.id)
    assert back.state == "paused" and "owner inactive" in back.note
    runs, _ = await store.runs(row.id)
    assert [(r.status, r.reason) for r in runs] == [("failed", "owner inactive")]


async def test_missing_owner_is_recorded(store):
    row = await store.add_schedule(schedule(owner="ghost"))
    timer = make_timer(store, roles=FakeRoles(ghost="missing"))
    await timer.fire_due()
    runs, _ = await store.runs(row.id)
    assert runs[0].reason == "owner no longer exists"


async def test_rejected_inputs_are_not_retried(store):
    row = await store.add_schedule(schedule())
    launcher = FakeLauncher(LaunchOutcome("rejected", reason="text: must not be empty"))
    timer = make_timer(store, launcher)
    await timer.fire_due()
    await timer.drain()
    assert len(launcher.calls) == 1
    runs, _ = await store.runs(row.id)
    assert (runs[0].status, runs[0].reason) == ("rejected", "text: must not be empty")


async def test_a_launch_that_never_reached_kodosumi_is_retried(store):
    row = await store.add_schedule(schedule())
    launcher = FakeLauncher(LaunchOutcome("not_sent", reason="panel unreachable",
                                          retryable=True))
    timer = make_timer(store, launcher)
    await timer.fire_due()
    await timer.drain()
    assert len(launcher.calls) == 2
    assert (await store.runs(row.id))[0][0].status == "launched"


async def test_retries_are_bounded_then_failed(store):
    row = await store.add_schedule(schedule())
    launcher = FakeLauncher(*[LaunchOutcome("not_sent", reason="connection refused",
                                            retryable=True)] * 5)
    timer = make_timer(store, launcher, launch_attempts=3)
    await timer.fire_due()
    await timer.drain()
    assert len(launcher.calls) == 3
    run = (await store.runs(row.id))[0][0]
    assert (run.status, run.reason) == ("failed", "connection refused")
    assert timer.stats.failures == 1


async def test_follow_records_final_status(store):
    row = await store.add_schedule(schedule())
    launcher = FakeLauncher()
    clock = Clock(T0)
    timer = make_timer(store, launcher, clock=clock)
    await timer.fire_due()
    await timer.drain()
    launcher.statuses["fid-1"] = "running"
    await timer.follow()
    assert (await store.runs(row.id))[0][0].status == "running"
    launcher.statuses["fid-1"] = "error"
    clock.advance(seconds=20)
    assert await timer.follow() == 1
    run = (await store.runs(row.id))[0][0]
    assert run.status == "error" and run.finished_at == T0 + timedelta(seconds=20)
    assert (await store.get_schedule(row.id)).last_status == "error"


async def test_unknown_only_once_kodosumi_said_for_ten_minutes_it_does_not_know_it(store):
    """A panel that cannot be asked says nothing about the execution: after eleven
    minutes of no answers the run is still launched; kodosumi answering that it does not
    know the execution is what makes it unknown."""
    row = await store.add_schedule(schedule())
    launcher, clock = FakeLauncher(), Clock(T0)
    timer = make_timer(store, launcher, clock=clock)
    await timer.fire_due()
    await timer.drain()
    launcher.unanswered = True
    clock.advance(minutes=11)
    assert await timer.follow() == 0 and launcher.status_calls == 1
    assert (await store.runs(row.id))[0][0].status == "launched"
    launcher.unanswered = False  # it answers again: no such execution
    assert await make_timer(store, launcher, clock=clock).follow() == 1
    run = (await store.runs(row.id))[0][0]
    assert run.status == "unknown" and run.reason == reasons.FOLLOW_LOST


async def test_an_execution_whose_status_never_answers_is_unknown_while_kodosumi_answers(
        store):
    """kodosumi 1.1 keeps the status request of an execution it lost (no status ever
    written) waiting: unknown after ten minutes, but only while it answers others."""
    row = await store.add_schedule(schedule())
    launcher, clock = FakeLauncher(), Clock(T0)
    timer = make_timer(store, launcher, clock=clock)
    await timer.fire_due()
    await timer.drain()
    launcher.hung = {"fid-1"}
    clock.advance(minutes=5)
    await make_timer(store, launcher, clock=clock).follow()
    assert (await store.runs(row.id))[0][0].status == "launched"  # not yet
    clock.advance(minutes=6)
    launcher.unanswered = True  # and kodosumi answers nothing else either
    await make_timer(store, launcher, clock=clock).follow()
    assert (await store.runs(row.id))[0][0].status == "launched"
    launcher.unanswered = False
    await make_timer(store, launcher, clock=clock).follow()
    run = (await store.runs(row.id))[0][0]
    assert run.status == "unknown" and run.reason == reasons.FOLLOW_NO_STATUS


async def test_an_execution_past_its_timeout_is_ended_through_kodosumi(store):
    rows = [await store.add_schedule(schedule(timeout=60)) for _ in range(3)]
    launcher, clock = FakeLauncher(), Clock(T0)
    timer = make_timer(store, launcher, clock=clock)
    await timer.fire_due()
    await timer.drain()
    fids = {row.id: (await store.runs(row.id))[0][0].fid for row in rows}
    for fid in fids.values():
        launcher.statuses[fid] = "running"
    launcher.statuses[fids[rows[1].id]] = "finished"  # ended just before its timeout
    clock.advance(seconds=59)
    await make_timer(store, launcher, clock=clock).follow()
    assert launcher.ended == []  # not yet
    clock.advance(seconds=2)
    launcher.unanswered = True  # kodosumi away: nothing is concluded, tried again later
    await make_timer(store, launcher, clock=clock).follow()
    assert launcher.ended == [] and {
        (await store.runs(r.id))[0][0].status for r in rows} == {"running", "finished"}
    launcher.unanswered = False
    await make_timer(store, launcher, clock=clock).follow()
    assert sorted(launcher.ended) == sorted([fids[rows[0].id], fids[rows[2].id]])
    ended = (await store.runs(rows[0].id))[0][0]
    assert ended.status == "timed_out" and ended.reason == reasons.TIMED_OUT.format(seconds=60)
    assert (await store.runs(rows[1].id))[0][0].status == "finished"  # not killed


async def test_a_timeout_waits_until_kodosumi_shows_the_execution(store):
    # kodosumi answers 404 (status and DELETE) until its spooler writes an execution,
    # seconds after the launch on a busy cluster: a DELETE then ended nothing, the run
    # was recorded timed_out and its Runner started later and ran on
    row = await store.add_schedule(schedule(timeout=10))
    launcher, clock = FakeLauncher(), Clock(T0)
    timer = make_timer(store, launcher, clock=clock)
    await timer.fire_due()
    await timer.drain()
    clock.advance(seconds=15)
    await make_timer(store, launcher, clock=clock).follow()  # kodosumi: 404 so far
    assert launcher.ended == [] and (await store.runs(row.id))[0][0].status == "launched"
    launcher.statuses["fid-1"] = "running"
    clock.advance(seconds=2)
    await make_timer(store, launcher, clock=clock).follow()
    assert launcher.ended == ["fid-1"]
    assert (await store.runs(row.id))[0][0].status == "timed_out"


async def test_two_timers_never_double_fire(store):
    rows = [await store.add_schedule(schedule()) for _ in range(30)]
    l1, l2 = FakeLauncher(), FakeLauncher()
    t1, t2 = make_timer(store, l1), make_timer(store, l2)
    await asyncio.gather(t1.fire_due(), t2.fire_due())
    await asyncio.gather(t1.drain(), t2.drain())
    assert len(l1.calls) + len(l2.calls) == len(rows)


async def test_cron_schedule_catches_up_once(store):
    row = await store.add_schedule(schedule(schedule_type="cron", cron_expression="*/10 * * * *",
                                            run_at=None))
    launcher = FakeLauncher()
    timer = make_timer(store, launcher, clock=Clock(T0 + timedelta(minutes=25)))
    await timer.fire_due()
    await timer.drain()
    assert len(launcher.calls) == 1
    runs, _ = await store.runs(row.id)
    assert sorted((r.slot, r.status) for r in runs) == [
        (T0, "missed"), (T0 + timedelta(minutes=10), "missed"),
        (T0 + timedelta(minutes=20), "launched")]
    back = await store.get_schedule(row.id)
    assert back.next_run == T0 + timedelta(minutes=30) and back.state == "active"


async def test_a_month_long_outage_fires_the_latest_and_says_what_was_not_recorded(store):
    row = await store.add_schedule(schedule(schedule_type="cron", cron_expression="* * * * *",
                                            run_at=None))
    launcher = FakeLauncher()
    now = T0 + timedelta(days=30, seconds=5)
    timer = make_timer(store, launcher, clock=Clock(now))
    await timer.fire_due()
    await timer.drain()
    assert len(launcher.calls) == 1
    runs, total = await store.runs(row.id, limit=1000)
    assert total == MAX_MISSED_RECORDED + 1
    launched = [r for r in runs if r.status == "launched"]
    assert [r.slot for r in launched] == [T0 + timedelta(days=30)]
    missed = sorted(r.slot for r in runs if r.status == "missed")
    assert missed[0] == T0 and len(missed) == MAX_MISSED_RECORDED
    last = next(r for r in runs if r.slot == missed[-1])
    assert last.reason == reasons.MISSED_UNCOUNTED


async def test_loop_wakes_up_for_a_new_schedule(store):
    """A schedule created while the timer sleeps fires at its time, not at the next poll."""
    waker = LocalWaker()
    launcher = FakeLauncher()
    timer = make_timer(store, launcher, waker=waker, clock=lambda: datetime.now(UTC),
                       interval=60.0)
    runner = asyncio.create_task(timer.run())
    try:
        deadline = time.monotonic() + 10
        while not timer.sleeping and time.monotonic() < deadline:  # asleep on an empty store
            await asyncio.sleep(0.01)
        assert timer.sleeping
        due_at = datetime.now(UTC) + timedelta(milliseconds=300)
        await store.add_schedule(schedule(next_run=due_at))
        await waker.wake()
        deadline = time.monotonic() + 10
        while not launcher.calls and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert launcher.calls, "the woken timer did not fire"
        assert datetime.now(UTC) >= due_at
        assert datetime.now(UTC) - due_at < timedelta(seconds=5)
    finally:
        timer.stop()
        await asyncio.wait_for(runner, 10)


async def test_overlap_skip_records_skipped_while_previous_runs(store):
    row = await store.add_schedule(schedule(schedule_type="cron", cron_expression="* * * * *",
                                            run_at=None))
    launcher = FakeLauncher()
    clock = Clock(T0)
    timer = make_timer(store, launcher, clock=clock)
    await timer.fire_due()
    await timer.drain()
    clock.advance(minutes=1)  # the first execution is still "launched"
    await timer.fire_due()
    assert len(launcher.calls) == 1
    runs, _ = await store.runs(row.id)
    assert [(r.slot, r.status) for r in runs] == [
        (T0 + timedelta(minutes=1), "skipped"), (T0, "launched")]
    assert "still running" in runs[0].reason
    # once it ended, the next slot fires again
    launcher.statuses["fid-1"] = "finished"
    await timer.follow()
    clock.advance(minutes=1)
    await timer.fire_due()
    await timer.drain()
    assert len(launcher.calls) == 2


async def test_overlap_allow_launches_anyway(store):
    await store.add_schedule(schedule(schedule_type="cron", cron_expression="* * * * *",
                                      run_at=None, overlap="allow"))
    launcher = FakeLauncher()
    clock = Clock(T0)
    timer = make_timer(store, launcher, clock=clock)
    for _ in range(3):
        await timer.fire_due()
        await timer.drain()
        clock.advance(minutes=1)
    assert len(launcher.calls) == 3


async def test_overlap_buffer_one_starts_one_waiting_slot_when_the_running_one_ends(store):
    row = await store.add_schedule(schedule(schedule_type="cron", cron_expression="* * * * *",
                                            overlap="buffer_one", run_at=None))
    launcher, clock = FakeLauncher(), Clock(T0)
    timer = make_timer(store, launcher, clock=clock)

    async def turn(minutes: int = 1) -> dict:
        clock.advance(minutes=minutes)
        await timer.step()
        await timer.drain()
        runs, _ = await store.runs(row.id)
        return {r.slot: (r.status, r.trigger) for r in runs}

    await turn(0)
    launcher.statuses["fid-1"] = "running"
    await turn()  # the next slot waits for the running one
    runs = await turn()  # and a third is skipped: at most one waits
    assert runs == {T0: ("launched", "timer"), T0 + timedelta(minutes=1): ("buffered", "buffer"),
                    T0 + timedelta(minutes=2): ("skipped", "timer")}
    launcher.statuses["fid-1"] = "finished"
    clock.advance(seconds=20)
    await timer.follow()  # the end is seen: the waiting slot is released ...
    await timer.step()  # ... and taken at once
    await timer.drain()
    runs, _ = await store.runs(row.id)
    buffered = next(r for r in runs if r.slot == T0 + timedelta(minutes=1))
    assert (buffered.status, buffered.fid) == ("launched", "fid-2")
    assert len(launcher.calls) == 2


async def test_overlap_replace_ends_the_running_execution_then_starts(store):
    row = await store.add_schedule(schedule(schedule_type="cron", cron_expression="* * * * *",
                                            overlap="replace", run_at=None))
    launcher, clock = FakeLauncher(), Clock(T0)
    timer = make_timer(store, launcher, clock=clock)
    await timer.fire_due()
    await timer.drain()
    launcher.statuses["fid-1"] = "running"
    await timer.follow()
    clock.advance(minutes=1)
    await timer.fire_due()
    await timer.drain()
    assert launcher.ended == ["fid-1"] and len(launcher.calls) == 2
    runs, _ = await store.runs(row.id)
    by_slot = {r.slot: r for r in runs}
    assert by_slot[T0].status == "replaced"
    assert by_slot[T0].reason == reasons.REPLACED.format(
        slot=(T0 + timedelta(minutes=1)).isoformat())
    assert by_slot[T0 + timedelta(minutes=1)].status == "launched"


@pytest.mark.parametrize("shown", [None, "finished"])
async def test_overlap_replace_ends_only_what_kodosumi_shows_running(store, shown):
    # None: kodosumi answers 404 until its spooler writes the execution (a DELETE then
    # ends nothing: the Runner starts later); "finished": it ended before the follower
    # saw it (a DELETE would archive its result out of the user's timeline)
    row = await store.add_schedule(schedule(schedule_type="cron", cron_expression="* * * * *",
                                            overlap="replace", run_at=None))
    launcher, clock = FakeLauncher(), Clock(T0)
    timer = make_timer(store, launcher, clock=clock)
    await timer.fire_due()
    await timer.drain()
    if shown is not None:
        launcher.statuses["fid-1"] = shown
    clock.advance(minutes=1)
    await timer.fire_due()
    await timer.drain()
    assert launcher.ended == [] and len(launcher.calls) == 2  # the slot starts anyway
    runs, _ = await store.runs(row.id)
    assert {r.slot: r.status for r in runs} == {T0: "launched",
                                                T0 + timedelta(minutes=1): "launched"}
    # the follower ends the replaced execution once kodosumi shows it running
    await timer.follow()
    assert launcher.ended == []
    launcher.statuses["fid-1"] = "running" if shown is None else shown
    launcher.statuses["fid-2"] = "running"
    clock.advance(seconds=5)
    await timer.follow()
    runs, _ = await store.runs(row.id)
    by_slot = {r.slot: r for r in runs}
    assert by_slot[T0 + timedelta(minutes=1)].status == "running"
    if shown is None:
        assert launcher.ended == ["fid-1"] and by_slot[T0].status == "replaced"
        assert by_slot[T0].reason == reasons.REPLACED.format(
            slot=(T0 + timedelta(minutes=1)).isoformat())
    else:  # ended on its own: kept as it ended
        assert launcher.ended == [] and by_slot[T0].status == "finished"


async def test_overlap_allow_keeps_every_execution_running(store):
    # the follower ends an earlier execution only for overlap=replace
    allow = await store.add_schedule(schedule(schedule_type="cron", cron_expression="* * * * *",
                                              overlap="allow", run_at=None))
    launcher, clock = FakeLauncher(), Clock(T0)
    timer = make_timer(store, launcher, clock=clock)
    for _ in range(2):
        await timer.fire_due()
        await timer.drain()
        clock.advance(minutes=1)
    launcher.statuses.update({"fid-1": "running", "fid-2": "running"})
    await timer.follow()
    assert launcher.ended == []
    assert {r.status for r in (await store.runs(allow.id))[0]} == {"running"}


async def test_a_backfill_runs_each_past_slot_through_the_timer_once(store):
    from kodosumi_timer.store.tables import ChangeRow

    row = await store.add_schedule(schedule(schedule_type="cron", cron_expression="0 * * * *",
                                            run_at=None, next_run=T0 + timedelta(hours=3)))
    [done] = await store.claim_many([ClaimRequest(await store.get_schedule(row.id),
                                                  T0 + timedelta(hours=3), None, "x")],
                                    T0, "t", T0 + timedelta(seconds=30))  # a slot that ran
    slots = [T0 + timedelta(hours=h) for h in (1, 2, 3)]
    change = ChangeRow(schedule_id=row.id, at=T0, actor="owner-a", action="backfill",
                       fields={"start": [None, slots[0].isoformat()]})
    assert await store.queue_backfill(await store.get_schedule(row.id), slots, change) == 3
    launcher = FakeLauncher()
    timer = make_timer(store, launcher, clock=Clock(T0 + timedelta(hours=4)))
    await timer.fire_manual()
    await timer.drain()
    assert await timer.fire_manual() == 0  # taken once
    assert len(launcher.calls) == 3
    runs, _ = await store.runs(row.id)
    backfilled = sorted((r.slot, r.attempt, r.status) for r in runs if r.trigger == "backfill")
    assert backfilled == [(slots[0], 1, "launched"), (slots[1], 1, "launched"),
                          (slots[2], 2, "launched")]  # the slot that ran: its next attempt
    assert done.run.attempt == 1


async def test_manual_trigger_is_launched_once_without_moving_next_run(store):
    row = await store.add_schedule(schedule(next_run=T0 + timedelta(days=1)))
    await store.queue_manual_run(row, T0)
    l1, l2 = FakeLauncher(), FakeLauncher()
    t1, t2 = make_timer(store, l1), make_timer(store, l2)
    await asyncio.gather(t1.fire_due(), t2.fire_due())
    await asyncio.gather(t1.drain(), t2.drain())
    assert len(l1.calls) + len(l2.calls) == 1
    back = await store.get_schedule(row.id)
    assert back.next_run == T0 + timedelta(days=1) and back.state == "active"
    runs, _ = await store.runs(row.id)
    assert [(r.trigger, r.status) for r in runs] == [("manual", "launched")]


async def test_end_at_and_max_runs_end_the_schedule(store):
    row = await store.add_schedule(schedule(schedule_type="cron", cron_expression="* * * * *",
                                            run_at=None, max_runs=2, overlap="allow"))
    clock = Clock(T0)
    timer = make_timer(store, clock=clock)
    for _ in range(2):
        await timer.fire_due()
        await timer.drain()
        clock.advance(minutes=1)
    back = await store.get_schedule(row.id)
    assert back.state == "done" and back.next_run is None and "max_runs" in back.note
    assert back.run_count == 2


def claiming_ahead(store, clock, *, gate=None, steps=()):
    """A timer that claims 1 s ahead, and its launcher (which notes the clock's time of
    each launch). Its sleeps move the injected clock, nothing waits: by the seconds
    asked, or by the next of ``steps`` while there are any; once ``gate`` is set, if
    one is given (so that a test sees and changes things before the slot)."""
    launcher = FakeLauncher(clock=clock)
    steps = iter(steps)

    async def sleep(seconds: float) -> None:
        if gate is not None:
            await gate.wait()
        clock.advance(seconds=next(steps, seconds))

    return make_timer(store, launcher, clock=clock, claim_ahead=1.0, sleep=sleep), launcher


async def test_claimed_ahead_and_launched_at_the_slot_never_before(store):
    # issue 8: a slot within claim_ahead is claimed now; its launch waits for the slot
    slot = T0 + timedelta(seconds=0.5)
    row = await store.add_schedule(schedule(next_run=slot))
    clock = Clock(T0)
    looked = asyncio.Event()  # set once the test has seen the run queued
    timer, launcher = claiming_ahead(store, clock, gate=looked)
    assert await timer.seconds_to_next() == 0.0  # wake claim_ahead before the slot
    assert await timer.fire_due() == 1
    runs, _ = await store.runs(row.id)
    assert [r.status for r in runs] == ["queued"]  # claimed before the slot
    looked.set()
    await timer.drain()
    assert launcher.sent_at == [slot]
    runs, _ = await store.runs(row.id)
    assert [(r.status, r.slot) for r in runs] == [("launched", slot)]


async def test_a_slot_with_room_is_checked_just_before_its_instant_and_fired_at_it(store):
    # the check before sending (a store write) is spent before the instant, not after it
    slot = T0 + timedelta(seconds=0.5)
    row = await store.add_schedule(schedule(next_run=slot))
    clock = Clock(T0)
    timer, launcher = claiming_ahead(store, clock)
    checked_at = []
    real = store.start_sending_checked

    async def noting(*args):  # type: ignore[no-untyped-def]
        checked_at.append(clock())
        return await real(*args)

    store.start_sending_checked = noting
    assert await timer.fire_due() == 1
    await timer.drain()
    assert checked_at == [slot - CHECK_AHEAD]
    assert launcher.sent_at == [slot]
    runs, _ = await store.runs(row.id)
    assert [(r.status, r.fired_at) for r in runs] == [("launched", slot)]


async def test_an_interval_fires_on_its_grid_skipping_excluded_dates(store):
    every = 7 * 3600
    row = await store.add_schedule(schedule(
        schedule_type="interval", every_seconds=every, anchor=T0 - timedelta(hours=14),
        exclude_dates=[(T0 + timedelta(days=1)).date().isoformat()], run_at=None))
    clock = Clock(T0)
    timer = make_timer(store, clock=clock)
    assert await timer.fire_due() == 1
    await timer.drain()
    back = await store.get_schedule(row.id)
    # T0 (08:00) fired; 15:00, 22:00 today; none tomorrow (excluded); 02:00 the day after
    assert back.next_run == T0 + timedelta(hours=7)
    for expected in (T0 + timedelta(hours=14), T0 + timedelta(days=1, hours=18)):
        clock.now = back.next_run
        await timer.fire_due()
        await timer.drain()
        back = await store.get_schedule(row.id)
        assert back.next_run == expected, back.next_run


async def test_jitter_sends_each_slot_at_its_own_offset_and_late_is_counted_from_there(store):
    slot = T0 + timedelta(seconds=0.5)
    # a fixed id: the offset depends on it (a random id gave one within 5 s in 1 of 24)
    row = await store.add_schedule(schedule(id="jitter-test-schedule", next_run=slot,
                                            jitter=120, catchup="skip", catchup_window=5))
    timer, launcher = claiming_ahead(store, Clock(T0))
    await timer.fire_due()
    await timer.drain()
    offset = jitter_offset(row.id, slot, 120)
    assert offset > timedelta(seconds=5)  # (this id's: 71 s, beyond the catch-up window)
    assert launcher.sent_at == [slot + offset]  # sent then, not missed for being "late"
    runs, _ = await store.runs(row.id)
    assert [(r.status, r.slot) for r in runs] == [("launched", slot)]


async def test_not_claimed_when_beyond_claim_ahead(store):
    await store.add_schedule(schedule(next_run=T0 + timedelta(seconds=3)))
    launcher = FakeLauncher()
    timer = make_timer(store, launcher, claim_ahead=1.0)
    assert await timer.fire_due() == 0
    assert await timer.seconds_to_next() == pytest.approx(2.0)


async def test_wall_clock_set_back_while_waiting_for_the_slot_is_never_early(store):
    """Slots come from the store and the launch waits on the wall clock: a clock set
    back (NTP step) while the launch task sleeps makes it sleep again, never fire early."""
    slot = T0 + timedelta(seconds=0.8)
    await store.add_schedule(schedule(next_run=slot))
    # the first sleep ends with the clock 5 s earlier
    timer, launcher = claiming_ahead(store, Clock(T0), steps=[-5.0])
    assert await timer.fire_due() == 1
    await timer.drain()
    assert launcher.sent_at == [slot]


@pytest.mark.parametrize("change", ["pause", "edit", "delete"])
async def test_a_change_between_the_early_claim_and_the_slot_is_honoured(store, change):
    slot = T0 + timedelta(seconds=0.5)
    row = await store.add_schedule(schedule(next_run=slot))
    clock = Clock(T0)
    go = asyncio.Event()
    timer, launcher = claiming_ahead(store, clock, gate=go)
    assert await timer.fire_due() == 1  # claimed, not launched yet
    if change == "pause":
        await store.pause(row.id, "paused by its owner", T0)
    elif change == "edit":
        assert await store.update_versioned(row.id, None, row.version, {"title": "new"})
    else:
        assert await store.delete_schedule(row.id)
    go.set()
    await timer.drain()
    assert launcher.calls == []
    runs, _ = await store.runs(row.id)
    if change == "delete":
        assert runs == []
    else:
        reason = {"pause": "paused before this slot", "edit": "changed before this slot"}
        assert [(r.status, reason[change] in r.reason) for r in runs] == [("skipped", True)]


async def test_resume_onto_a_slot_claimed_ahead_does_not_offer_it_again(store):
    from kodosumi_timer.schedules import resume_values

    assert T0.hour == 8
    row = await store.add_schedule(schedule(schedule_type="cron", cron_expression="0 8 * * *",
                                            timezone="UTC", run_at=None, next_run=T0))
    clock = Clock(T0 - timedelta(seconds=0.5))
    go = asyncio.Event()
    timer, launcher = claiming_ahead(store, clock, gate=go)
    assert await timer.fire_due() == 1
    await store.pause(row.id, "paused", clock())
    await store.update_schedule(row.id, resume_values(await store.get_schedule(row.id),
                                                      clock()))
    back = await store.get_schedule(row.id)
    assert back.state == "active" and back.next_run == T0 + timedelta(days=1)
    go.set()
    await timer.drain()
    assert await timer.seconds_to_next() > 0  # nothing stuck at the claimed slot


async def test_results_survive_a_failing_store_and_a_cancelled_writer(store):
    rows = [await store.add_schedule(schedule()) for _ in range(2)]
    timer = make_timer(store)
    assert await timer.fire_due() == 2
    await asyncio.gather(*list(timer._launches))  # launched; results not written
    real = store.record_launches

    async def failing(results, timer_id):  # type: ignore[no-untyped-def]
        raise OSError("database away")

    store.record_launches = failing
    with pytest.raises(RuntimeError, match="2 launch results could not be recorded"):
        await timer.writer.flush()
    assert len(timer.writer._results) == 2  # kept for the next try

    async def hanging(results, timer_id):  # type: ignore[no-untyped-def]
        await asyncio.Event().wait()

    store.record_launches = hanging
    writing = asyncio.create_task(timer.writer.flush())
    await asyncio.sleep(0)
    writing.cancel()  # the timer stopping while the writer writes
    await asyncio.gather(writing, return_exceptions=True)
    assert len(timer.writer._results) == 2
    store.record_launches = real
    await timer.drain()
    for row in rows:
        runs, _ = await store.runs(row.id)
        assert [r.status for r in runs] == ["launched"]


async def test_results_are_kept_while_the_store_comes_back_and_only_refused_rows_dropped(
        store):
    """pg-restart found it: with the database coming back while results were written
    row by row, the rows that failed were logged and dropped (runs stuck unknown)."""
    from sqlalchemy.exc import IntegrityError

    rows = [await store.add_schedule(schedule()) for _ in range(3)]
    timer = make_timer(store)
    assert await timer.fire_due() == 3
    await asyncio.gather(*list(timer._launches))  # launched; results not written
    real = store.record_launches
    refused = rows[2].id

    async def flapping(results, timer_id):  # type: ignore[no-untyped-def]
        if len(results) > 1 or results[0].run.schedule_id == rows[0].id:
            raise OSError("connection reset")  # the database is coming back
        if results[0].run.schedule_id == refused:
            raise IntegrityError("update", {}, Exception("a bad row"))
        await real(results, timer_id)

    store.record_launches = flapping
    with pytest.raises(RuntimeError, match="1 launch results could not be recorded yet"):
        await timer.writer.flush()
    assert [r.run.schedule_id for r in timer.writer._results] == [rows[0].id]  # kept
    store.record_launches = real
    await timer.drain()
    statuses = [[r.status for r in (await store.runs(row.id))[0]] for row in rows]
    # the refused row is given up: its run stays as it was when sent
    assert statuses == [["launched"], ["launched"], ["launching"]]


async def test_following_is_not_starved_by_a_stream_of_launches(store):
    row = await store.add_schedule(schedule())
    launcher = FakeLauncher()
    timer = make_timer(store, launcher)
    await timer.fire_due()
    await timer.drain()
    launcher.statuses["fid-1"] = "finished"
    timer.launching.in_send.add(999)  # a launch being sent
    timer.follower._followed = time.monotonic()
    assert await timer.follow() == 0  # launching first
    timer.follower._followed -= FOLLOW_AT_LEAST + 1
    assert await timer.follow() == 1  # but not for longer than FOLLOW_AT_LEAST
    assert (await store.get_schedule(row.id)).last_status == "finished"


async def test_a_schedule_that_cannot_be_planned_is_paused_not_retried_forever(store):
    # a cron row whose zone is unknown (written around the API's validation)
    bad = await store.add_schedule(schedule(schedule_type="cron", cron_expression="* * * * *",
                                            timezone="Mars/Olympus_Mons"))
    good = await store.add_schedule(schedule())
    launcher = FakeLauncher()
    timer = make_timer(store, launcher)
    assert await timer.fire_due() == 2
    await timer.drain()
    assert len(launcher.calls) == 1  # the other schedule was launched
    row = await store.get_schedule(bad.id)
    assert row.state == "paused" and row.next_run is None
    assert "cannot be run" in row.note and "Mars/Olympus_Mons" in row.note
    runs, _ = await store.runs(bad.id)  # and its history says why
    assert [(r.status, "unknown timezone" in r.reason) for r in runs] == [("failed", True)]
    assert await timer.seconds_to_next() > 0  # nothing left due: no busy loop
    assert (await store.get_schedule(good.id)).last_status == "launched"


async def test_drain_returns_when_a_finished_launch_is_still_in_the_set(store):
    """A launch task that has finished stays in the set until its done-callback runs;
    drain must not spin on it (it did: gathering finished tasks never yields)."""
    timer = make_timer(store, FakeLauncher())
    finished = asyncio.create_task(asyncio.sleep(0))
    await finished
    timer._launches[finished] = 1  # as if its done callback had not run yet
    await asyncio.wait_for(timer.drain(), timeout=5)
    # the backlog waits for the ending task's callback (due as soon as it is tracked)
    timer._track(finished, 1)
    assert len(timer._launches) == 1
    await asyncio.wait_for(timer._backlog_below(1), timeout=5)
    assert not timer._launches


async def test_the_backlog_wait_ends_when_a_launch_ends_not_at_its_timeout(store):
    """Claiming waits while the backlog is full and goes on as soon as one launch ends."""
    timer = make_timer(store, FakeLauncher())
    gate = asyncio.Event()
    tasks = [asyncio.create_task(gate.wait()) for _ in range(3)]
    for n, task in enumerate(tasks):
        timer._track(task, n)
    waiting = asyncio.create_task(timer._backlog_below(3))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # 3 pending, limit 3
    tasks[0].cancel()
    await asyncio.wait_for(waiting, timeout=2)  # lease/3 is 10 s: the end woke it
    gate.set()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_following_walks_many_active_runs_round_robin(store, monkeypatch):
    """With more active executions than a round polls, later ones are reached too (the
    oldest page was polled over and over before)."""
    import kodosumi_timer.timer.following as following

    monkeypatch.setattr(following, "FOLLOW_PAGE", 2)
    for _ in range(5):
        await store.add_schedule(schedule())
    launcher = FakeLauncher()
    timer = make_timer(store, launcher)
    await timer.fire_due()
    await timer.drain()
    for _ in range(3):
        await timer.follow()
    assert sorted(launcher.polled) == [f"fid-{n}" for n in range(1, 6)]


def test_poll_spacing_grows_with_the_age_of_an_execution():
    from kodosumi_timer.timer.following import FOLLOW_MAX_SPACING, poll_spacing

    assert poll_spacing(0) == 0 and poll_spacing(5) == 0.5
    assert poll_spacing(300) == 30
    assert poll_spacing(86_400) == FOLLOW_MAX_SPACING


async def _one_running(store):
    """A timer on an injected clock that has launched one schedule, now running."""
    await store.add_schedule(schedule())
    launcher = FakeLauncher()
    clock = Clock(T0)
    timer = make_timer(store, launcher, clock=clock)
    await timer.fire_due()
    await timer.drain()
    launcher.statuses["fid-1"] = "running"
    return timer, launcher, clock


async def test_a_long_running_execution_is_polled_less_often(store):
    timer, launcher, clock = await _one_running(store)
    await timer.follow()  # just launched: polled, and next round again
    await timer.follow()
    assert launcher.status_calls == 2
    clock.advance(minutes=10)  # running for ten minutes: next poll in a minute
    await timer.follow()
    await timer.follow()
    assert launcher.status_calls == 3


async def test_following_keeps_clear_of_a_slot_claimed_ahead(store):
    """A follow round (status requests, a transaction) never starts just before a slot,
    nor does a launch waiting for its slot hold following up."""
    timer, launcher, clock = await _one_running(store)
    timer.follower._followed = time.monotonic()
    timer.launching.waiting.append(T0 + timedelta(seconds=0.3))
    assert await timer.follow() == 0 and launcher.status_calls == 0
    timer.launching.waiting[0] = T0 + timedelta(seconds=5)  # the next slot is far enough
    await timer.follow()
    assert launcher.status_calls == 1


async def _fire_one(store, launcher):  # type: ignore[no-untyped-def]
    """One due schedule fired by a timer with ``launcher``; its run as recorded."""
    row = await store.add_schedule(schedule())
    timer = make_timer(store, launcher)
    await timer.fire_due()
    await timer.drain()
    return (await store.runs(row.id))[0][0]


async def test_in_doubt_and_found_by_kodosumi_is_launched_and_not_sent_again(store):
    launcher = FakeLauncher(LaunchOutcome("in_doubt", reason="panel answered HTTP 502"),
                            found=(Reconciled("found", fid="fid-k", reason="by marker"),))
    run = await _fire_one(store, launcher)
    assert len(launcher.calls) == 1 and launcher.asked == launcher.markers
    assert launcher.excluded == [set()]  # no other run's execution to mistake for it
    assert (run.status, run.fid) == ("launched", "fid-k")
    assert "HTTP 502" in run.reason and "by marker" in run.reason


async def test_in_doubt_and_absent_in_kodosumi_is_sent_again_with_the_same_marker(store):
    launcher = FakeLauncher(LaunchOutcome("in_doubt", reason="panel answered HTTP 500"))
    run = await _fire_one(store, launcher)
    assert len(launcher.calls) == 2 and len(set(launcher.markers)) == 1
    assert (run.status, run.fid) == ("launched", "fid-2")


async def test_a_launch_in_doubt_is_never_taken_for_another_runs_execution(store):
    first = await store.add_schedule(schedule(owner="alice"))
    second = await store.add_schedule(schedule(owner="alice", next_run=T0 + timedelta(seconds=5)))
    clock = Clock(T0)
    launcher = FakeLauncher()
    timer = make_timer(store, launcher, clock=clock)
    await timer.fire_due()
    await timer.drain()  # the first launched as fid-1
    launcher.outcomes.append(LaunchOutcome("in_doubt", reason="panel answered HTTP 502"))
    launcher.found.append(Reconciled("cannot_tell", reason="two alike"))
    clock.advance(seconds=5)
    await timer.fire_due()
    await timer.drain()
    assert launcher.excluded == [{"fid-1"}]
    assert (await store.runs(first.id))[0][0].fid == "fid-1"
    assert (await store.runs(second.id))[0][0].status == "unknown"


async def test_in_doubt_that_kodosumi_cannot_settle_is_unknown_and_not_sent_again(store):
    launcher = FakeLauncher(LaunchOutcome("in_doubt", reason="no answer within 30 s"),
                            found=(Reconciled("cannot_tell", reason="panel unreachable"),))
    run = await _fire_one(store, launcher)
    assert len(launcher.calls) == 1 and run.status == "unknown"
    assert "no answer within 30 s" in run.reason and "panel unreachable" in run.reason


async def test_in_doubt_every_time_and_absent_every_time_is_failed_not_unknown(store):
    launcher = FakeLauncher(*[LaunchOutcome("in_doubt", reason="panel answered HTTP 500")] * 3)
    clock = Clock(T0)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds=seconds + 70)  # each attempt waits for kodosumi's answer

    row = await store.add_schedule(schedule())
    timer = make_timer(store, launcher, clock=clock, sleep=sleep)
    await timer.fire_due()
    await timer.drain()
    run = (await store.runs(row.id))[0][0]
    assert len(launcher.calls) == 3 and len(launcher.asked) == 3
    assert run.status == "failed" and "shows no execution" in run.reason


async def test_refused_for_good_is_failed_without_retry(store):
    launcher = FakeLauncher(LaunchOutcome("refused", reason="the panel refused the token"))
    run = await _fire_one(store, launcher)
    assert len(launcher.calls) == 1 and run.status == "failed"


async def test_a_claim_committed_as_the_connection_broke_is_launched_once_its_lease_ends(
        store):
    row = await store.add_schedule(schedule())
    real = store.claim_many

    async def commit_then_fail(*args, **kwargs):  # type: ignore[no-untyped-def]
        await real(*args, **kwargs)
        raise OSError("connection lost after the commit")

    store.claim_many = commit_then_fail
    launcher = FakeLauncher()
    clock = Clock(T0)
    timer = make_timer(store, launcher, clock=clock, lease=30.0)
    with pytest.raises(OSError):
        await timer.fire_due()
    assert launcher.calls == []
    store.claim_many = real
    clock.advance(seconds=31)  # its lease is over: taken over (by this same timer)
    assert await timer.step() == 1
    await timer.drain()
    assert len(launcher.calls) == 1
    runs, _ = await store.runs(row.id)
    assert [r.status for r in runs] == ["launched"]
    clock.advance(seconds=31)
    await timer.step()
    await timer.drain()
    assert len(launcher.calls) == 1  # and only once


async def test_a_store_away_just_before_the_slot_delays_the_launch_never_doubles_it(store):
    slot = T0 + timedelta(seconds=0.5)
    row = await store.add_schedule(schedule(next_run=slot))
    clock = Clock(T0)
    go = asyncio.Event()
    timer, launcher = claiming_ahead(store, clock, gate=go)
    assert await timer.fire_due() == 1
    real = store.start_sending_checked
    failures = []

    async def away(*args):  # type: ignore[no-untyped-def]
        if len(failures) < 2:
            failures.append(1)
            raise OSError("database restarting")
        return await real(*args)

    store.start_sending_checked = away
    go.set()
    await timer.drain()
    assert len(failures) == 2 and len(launcher.calls) == 1
    runs, _ = await store.runs(row.id)
    assert [r.status for r in runs] == ["launched"]


async def test_a_stalled_timer_loses_its_claims_and_sends_nothing_when_it_wakes(store):
    """A timer frozen after claiming ahead (a paused VM): another timer takes the slot
    over once the lease ended; the frozen one, thawed, finds it is not its own."""
    slot = T0 + timedelta(seconds=0.5)
    row = await store.add_schedule(schedule(next_run=slot))
    clock = Clock(T0)
    go = asyncio.Event()
    frozen, frozen_launcher = claiming_ahead(store, clock, gate=go)
    assert await frozen.fire_due() == 1
    clock.advance(seconds=40)  # frozen beyond its 30 s lease
    other_launcher = FakeLauncher()
    other = make_timer(store, other_launcher, clock=clock)
    assert await other.step() == 1
    await other.drain()
    go.set()  # the frozen timer wakes up
    await frozen.drain()
    assert frozen_launcher.calls == [] and len(other_launcher.calls) == 1
    runs, _ = await store.runs(row.id)
    assert [r.status for r in runs] == ["launched"]


@pytest.mark.parametrize(("catchup", "status"), [("skip", "missed"), ("once", "launched")])
async def test_a_slot_sent_after_its_catchup_window_follows_the_catchup_rule(
        store, catchup, status):
    slot = T0 + timedelta(seconds=0.5)
    row = await store.add_schedule(schedule(next_run=slot, catchup=catchup, catchup_window=10))
    clock = Clock(T0)
    go = asyncio.Event()
    frozen, launcher = claiming_ahead(store, clock, gate=go)
    assert await frozen.fire_due() == 1
    clock.advance(seconds=20)  # stalled: nobody else took it over (no other timer)
    go.set()
    await frozen.drain()
    runs, _ = await store.runs(row.id)
    assert [r.status for r in runs] == [status]
    assert len(launcher.calls) == (1 if status == "launched" else 0)
    if status == "missed":
        assert "catchup_window (10 s" in runs[0].reason


@pytest.mark.parametrize("answer", ["found", "absent", "cannot_tell"])
async def test_a_run_a_killed_timer_was_sending_is_settled_with_kodosumi(store, answer):

    row = await store.add_schedule(schedule())
    clock = Clock(T0)
    # a timer claimed the slot and was killed just as its request went out
    [claim] = await store.claim_many([ClaimRequest(row, T0, None, "ran once")], T0, "dead",
                                     T0 + timedelta(seconds=30))
    await store.start_sending("dead", [claim.run.id], T0, T0 + timedelta(seconds=60))
    clock.advance(seconds=61)
    found = {"found": Reconciled("found", fid="fid-k"), "absent": Reconciled("absent"),
             "cannot_tell": Reconciled("cannot_tell", reason="timeline unreadable")}[answer]
    launcher = FakeLauncher(found=(found,))
    heir = make_timer(store, launcher, clock=clock)
    assert await heir.step() == 1
    await heir.drain()
    run = (await store.runs(row.id))[0][0]
    assert len(launcher.asked) == 1
    expected = {"found": ("launched", "fid-k", 0), "absent": ("launched", "fid-1", 1),
                "cannot_tell": ("unknown", None, 0)}[answer]
    assert (run.status, run.fid, len(launcher.calls)) == expected


async def test_stop_hands_back_runs_not_sent_and_the_next_timer_takes_them_at_once(store):
    slot = T0 + timedelta(seconds=0.5)
    row = await store.add_schedule(schedule(next_run=slot))
    clock = Clock(T0)
    stopping, stopping_launcher = claiming_ahead(store, clock, gate=asyncio.Event())
    assert await stopping.fire_due() == 1
    stopping.stop()
    await stopping._hand_back()
    assert stopping_launcher.calls == []
    clock.advance(seconds=1)
    launcher = FakeLauncher()
    nxt = make_timer(store, launcher, clock=clock)
    assert await nxt.step() == 1  # taken over without waiting for the lease
    await nxt.drain()
    assert [r.status for r in (await store.runs(row.id))[0]] == ["launched"]


async def test_an_error_records_the_agents_own_reason(store):
    row = await store.add_schedule(schedule())
    launcher = FakeLauncher()
    timer = make_timer(store, launcher)
    await timer.fire_due()
    await timer.drain()
    launcher.statuses["fid-1"] = "error"
    launcher.errors["fid-1"] = "ValueError: invalid literal for int() with base 10: 'abc'"
    assert await timer.follow() == 1
    run = (await store.runs(row.id))[0][0]
    assert (run.status, run.reason) == ("error", launcher.errors["fid-1"])


async def _until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition`` (async) with a deadline."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_the_running_cap_holds_slots_queued_until_executions_end(store):
    rows = [await store.add_schedule(schedule(owner=f"o{n % 2}")) for n in range(5)]
    launcher = FakeLauncher()
    timer = make_timer(store, launcher, max_running=2)
    await timer.fire_due()

    async def statuses() -> list[str]:
        await timer.writer.flush()
        return sorted([(await store.runs(r.id))[0][0].status for r in rows])

    async def two_launched() -> bool:  # the rest wait for capacity
        return await statuses() == ["launched"] * 2 + ["queued"] * 3

    await _until(two_launched)
    assert len(launcher.calls) == 2 and timer.pacer.waiting == 3
    for fid in ("fid-1", "fid-2"):
        launcher.statuses[fid] = "finished"
    await timer.follow()  # two ended: two more go

    async def four_sent() -> bool:
        return len(launcher.calls) == 4

    await _until(four_sent)
    for fid in ("fid-3", "fid-4"):
        launcher.statuses[fid] = "finished"
    await timer.follow()
    await timer.drain()
    assert len(launcher.calls) == 5
