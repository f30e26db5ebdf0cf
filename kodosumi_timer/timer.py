"""The timer service loop: sleep until the earliest slot (or a wake-up), claim what is
due, launch it as its owner, follow executions to their end.

Built from small steps that each do one thing; one failing schedule is logged and
pushed on, it never stalls the loop. ``stop()`` lets the step in hand finish.
"""

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from kodosumi_timer import policy
from kodosumi_timer.bridge import Launcher, LaunchOutcome, Roles
from kodosumi_timer.store import ScheduleRow, Store
from kodosumi_timer.store.repository import Claim

log = logging.getLogger("kodosumi_timer.timer")

MISSED_REASON = "the timer was not running at this time"
OVERLAP_REASON = "the previous execution was still running (overlap=skip)"
# an execution kodosumi still does not know after this long is recorded unknown
FOLLOW_GIVE_UP = timedelta(minutes=10)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Waker(Protocol):
    """Wake-ups from the panel. ``wait`` returns the newest generation seen, at the
    latest after ``timeout`` seconds; a generation newer than ``seen`` means "woken"."""

    async def wait(self, seen: int, timeout: float) -> int: ...


class SystemSource(Protocol):
    """System schedules (kodosumi_timer.system.SystemSchedules): synced on every loop
    turn; the loop wakes at least every ``check_interval`` seconds to look."""

    check_interval: float

    async def refresh(self, now: datetime) -> object: ...


class LocalWaker:
    """In-process wake-ups (tests, and a timer embedded next to its panel)."""

    def __init__(self) -> None:
        self.generation = 0
        self._changed = asyncio.Condition()

    async def wake(self) -> None:
        async with self._changed:
            self.generation += 1
            self._changed.notify_all()

    async def wait(self, seen: int, timeout: float) -> int:
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.generation > seen), timeout)
            except TimeoutError:
                pass
            return self.generation


@dataclass
class TimerStats:
    started: float = field(default_factory=time.time)
    fires: int = 0
    failures: int = 0
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)


class Timer:
    def __init__(
        self,
        store: Store,
        launcher: Launcher,
        roles: Roles,
        waker: Waker,
        *,
        interval: float = 60.0,
        follow_interval: float = 2.0,
        launch_attempts: int = 3,
        system_user: str = "timer",
        clock: Callable[[], datetime] = utcnow,
        concurrency: int = 32,
        backoff: Callable[[int], float] = policy.retry_delay,
        on_stats: Callable[[TimerStats], None] | None = None,
        system: SystemSource | None = None,
    ):
        self.store = store
        self.launcher = launcher
        self.roles = roles
        self.waker = waker
        self.interval = interval
        self.follow_interval = follow_interval
        self.launch_attempts = launch_attempts
        self.system_user = system_user
        self.clock = clock
        self.stats = TimerStats()
        self.timer_id = f"{self.stats.host}:{self.stats.pid}"
        self.on_stats = on_stats
        self.backoff = backoff
        self.system = system
        self._stopping = asyncio.Event()
        self._launches: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._seen = 0
        self.sleeping = False  # observable by tests and status output

    def stop(self) -> None:
        self._stopping.set()

    async def drain(self) -> None:
        """Wait for the launches in flight (tests, shutdown)."""
        while self._launches:
            await asyncio.gather(*list(self._launches), return_exceptions=True)

    # ---- the loop --------------------------------------------------------------

    async def run(self) -> None:
        log.info("timer %s started", self.timer_id)
        follower = asyncio.create_task(self._follow_loop())
        try:
            while not self._stopping.is_set():
                await self.refresh_system()
                try:
                    await self.fire_due()
                    delay = await self.seconds_to_next()
                except Exception:  # the store may be briefly away: log, back off, go on
                    log.exception("timer step failed; retrying")
                    delay = min(self.interval, 5.0)
                if self.system is not None:
                    delay = min(delay, self.system.check_interval)
                await self._sleep(delay)
        finally:
            follower.cancel()
            await self.drain()
            log.info("timer %s stopped", self.timer_id)

    # ---- system schedules (issue 6) ----------------------------------------------

    async def refresh_system(self) -> None:
        """Sync the system schedules' sources; a failure is logged, never fatal."""
        if self.system is None:
            return
        try:
            await self.system.refresh(self.clock())
        except Exception:
            log.exception("system schedules not synced; the current set keeps running")

    async def _sleep(self, delay: float) -> None:
        if delay <= 0 or self._stopping.is_set():
            return
        wake = asyncio.ensure_future(self.waker.wait(self._seen, delay))
        stop = asyncio.ensure_future(self._stopping.wait())
        # a local sleep keeps fire times precise whatever the waker's latency
        local = asyncio.ensure_future(asyncio.sleep(delay))
        self.sleeping = True
        try:
            done, pending = await asyncio.wait({wake, stop, local},
                                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.sleeping = False
        if wake in done:
            self._seen = max(self._seen, wake.result())
        for task in (stop, local):
            task.cancel()
        if wake in pending:
            # a stale wait only reads generations; let it finish on its own
            wake.add_done_callback(self._note_generation)

    def _note_generation(self, task: "asyncio.Future[int]") -> None:
        if not task.cancelled() and task.exception() is None:
            self._seen = max(self._seen, task.result())

    async def seconds_to_next(self) -> float:
        earliest = await self.store.earliest_next_run()
        if earliest is None:
            return self.interval
        return max(0.0, min(self.interval, (earliest - self.clock()).total_seconds()))

    # ---- firing ----------------------------------------------------------------

    async def fire_due(self) -> int:
        """Handle every schedule due now; returns how many were handled."""
        handled = 0
        while not self._stopping.is_set():
            now = self.clock()
            batch = await self.store.due(now, limit=100)
            if not batch:
                break
            for schedule in batch:
                try:
                    await self.handle(schedule, now)
                except Exception:
                    log.exception("schedule %s could not be handled", schedule.id)
                    self.stats.failures += 1
                handled += 1
            if len(batch) < 100:
                break
        handled += await self.fire_manual()
        self._publish()
        return handled

    async def handle(self, schedule: ScheduleRow, now: datetime) -> None:
        assert schedule.next_run is not None
        due = policy.Due(
            schedule_type=schedule.schedule_type, next_run=schedule.next_run,
            cron_expression=schedule.cron_expression, timezone=schedule.timezone,
            catchup=schedule.catchup, end_at=schedule.end_at, max_runs=schedule.max_runs,
            run_count=schedule.run_count,
        )
        plan = policy.plan(due, now)
        missed = [(slot, "missed", MISSED_REASON) for slot in plan.missed]
        if not schedule.system:
            reason = await self._owner_problem(schedule.owner)
            if reason is not None:
                fired = [(plan.fire, "failed", reason)] if plan.fire else []
                await self.store.skip_slots(
                    schedule, [*missed, *fired], now, None,
                    end_note=f"paused by the timer: {reason}", pause=True,
                    timer_id=self.timer_id)
                self.stats.failures += 1
                log.warning("schedule %s not fired: %s", schedule.id, reason)
                return
        if plan.fire is None:
            await self.store.skip_slots(schedule, missed, now, plan.next_run,
                                        end_note=plan.end_note, timer_id=self.timer_id)
            return
        if schedule.overlap == "skip" and await self.store.has_active_run(schedule.id):
            await self.store.skip_slots(
                schedule, [*missed, (plan.fire, "skipped", OVERLAP_REASON)], now,
                plan.next_run, end_note=plan.end_note, timer_id=self.timer_id)
            log.info("schedule %s slot %s skipped: previous execution still running",
                     schedule.id, plan.fire)
            return
        claim = await self.store.claim(
            schedule, plan.fire, now, plan.next_run, plan.end_note, missed=plan.missed,
            timer_id=self.timer_id)
        if claim is None:
            return  # another timer claimed this slot first
        self._start_launch(claim)

    async def _owner_problem(self, owner: str) -> str | None:
        state = await self.roles.owner_state(owner)
        if state == "active":
            return None
        return "owner inactive" if state == "inactive" else "owner no longer exists"

    def _start_launch(self, claim: Claim) -> None:
        self.stats.fires += 1
        task = asyncio.create_task(self._launch(claim))
        self._launches.add(task)
        task.add_done_callback(self._launches.discard)

    async def fire_manual(self) -> int:
        """Launch the "run now" requests queued by the panel."""
        handled = 0
        for run in await self.store.queued_runs():
            schedule = await self.store.get_schedule(run.schedule_id)
            now = self.clock()
            if schedule is None or not await self.store.claim_queued(run, now, self.timer_id):
                continue
            handled += 1
            reason = None if schedule.system else await self._owner_problem(schedule.owner)
            if reason is not None:
                await self.store.record_launch(run, "failed", now, reason=reason)
                continue
            self._start_launch(Claim(schedule=schedule, run=run))
        return handled

    async def _launch(self, claim: Claim) -> None:
        schedule = claim.schedule
        async with self._slots:
            outcome = LaunchOutcome("retry", reason="not attempted")
            for attempt in range(1, self.launch_attempts + 1):
                try:
                    outcome = await self.launcher.launch(
                        schedule.flow_url, schedule.owner, dict(schedule.inputs or {}))
                except Exception as exc:  # never let one launch kill the loop
                    outcome = LaunchOutcome("retry", reason=f"launch error: {exc!r}"[:300])
                if outcome.kind != "retry" or attempt == self.launch_attempts:
                    break
                await asyncio.sleep(self.backoff(attempt))
            status = {"launched": "launched", "rejected": "rejected"}.get(outcome.kind, "failed")
            if status != "launched":
                self.stats.failures += 1
                log.warning("schedule %s slot %s %s: %s", schedule.id, claim.run.slot,
                            status, outcome.reason)
            else:
                log.info("schedule %s slot %s launched %s", schedule.id, claim.run.slot,
                         outcome.fid)
            await self.store.record_launch(claim.run, status, self.clock(), fid=outcome.fid,
                                           reason=outcome.reason)
        self._publish()

    # ---- following executions ----------------------------------------------------

    async def _follow_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.follow()
            except Exception:
                log.exception("following executions failed; retrying")
            try:
                await asyncio.wait_for(self._stopping.wait(), self.follow_interval)
            except TimeoutError:
                pass

    async def follow(self) -> int:
        """Poll kodosumi for every launched execution; record those that ended."""
        ended = 0
        for run in await self.store.active_runs():
            if run.fid is None:
                continue
            status = await self.launcher.status(run.fid, run.owner)
            now = self.clock()
            if status in ("finished", "error"):
                await self.store.finish_run(run, status, now)
                ended += 1
            elif status in ("starting", "running", "awaiting"):
                if run.status != "running":
                    await self.store.finish_run(run, "running", now)
            elif status is None and run.fired_at and now - run.fired_at > FOLLOW_GIVE_UP:
                await self.store.finish_run(run, "unknown", now,
                                            reason="kodosumi does not know this execution")
        return ended

    def _publish(self) -> None:
        if self.on_stats is not None:
            try:
                self.on_stats(self.stats)
            except Exception:
                log.debug("publishing timer stats failed", exc_info=True)
