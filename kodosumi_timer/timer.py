"""The timer service loop: sleep until the earliest slot (or a wake-up), claim what is
due, launch it as its owner, follow executions to their end.

Built from small steps that each do one thing; one failing schedule is logged and
pushed on, it never stalls the loop. ``stop()`` lets the step in hand finish.
"""

import asyncio
import gc
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import DataError, IntegrityError

from kodosumi_timer import policy
from kodosumi_timer.bridge import Launcher, LaunchOutcome, OwnerState, Roles, mint_token
from kodosumi_timer.store import RunRow, ScheduleRow, Store
from kodosumi_timer.store.repository import (
    Claim,
    ClaimRequest,
    DueSchedule,
    LaunchResult,
    RunChange,
)

log = logging.getLogger("kodosumi_timer.timer")

MISSED_REASON = "the timer was not running at this time"
OVERLAP_REASON = "the previous execution was still running (overlap=skip)"
PAUSED_REASON = "the schedule was paused before this slot"
CHANGED_REASON = "the schedule was changed within a second of this slot; the change " \
    "applies from the next slot"
# an execution kodosumi still does not know after this long is recorded unknown
FOLLOW_GIVE_UP = timedelta(minutes=10)
# a follow round polls at most this many executions; more are walked round-robin
FOLLOW_PAGE = 200
# an execution running for a while is polled less often: every tenth of its age, at
# most this many seconds apart (a day-long run needs no status request every 2 s)
FOLLOW_MAX_SPACING = 60.0
# while launches are in flight following waits, but at most this many seconds
FOLLOW_AT_LEAST = 10.0
# nor does it start a round this close before a slot claimed ahead
FOLLOW_CLEARANCE = 0.5
# slots claimed ahead are re-read this long before the first of them
RECHECK_LEAD = timedelta(seconds=0.1)


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
        claim_ahead: float = 0.0,
        batch: int = 500,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        # slots due within claim_ahead seconds are claimed now and launched at their
        # instant, so the store's latency is spent before the slot, not after it
        self.claim_ahead = timedelta(seconds=claim_ahead)
        self.batch = batch
        self.sleep = sleep
        self._results: list[LaunchResult] = []
        self._results_waiting = asyncio.Event()
        self._stopping = asyncio.Event()
        self._launches: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._seen = 0
        self._followed = 0.0  # time.monotonic() of the last follow round
        self._follow_after = 0  # run id the next follow round starts after
        self._poll_at: dict[int, float] = {}  # run id -> time.monotonic() of its next poll
        self._sending = 0  # launch requests being sent now
        self._waiting: list[datetime] = []  # slots of launches waiting for their instant
        self._unverified: list[ClaimRequest] = []  # claims whose commit is in doubt
        self.sleeping = False  # observable by tests and status output

    def stop(self) -> None:
        self._stopping.set()

    async def drain(self) -> None:
        """Wait for the launches in flight and record their results (tests, shutdown)."""
        # judged by done(), not by the set: a task that has just finished is still in
        # it until its callback runs, and gathering only finished tasks never yields
        while pending := [task for task in self._launches if not task.done()]:
            await asyncio.wait(pending)
        await self._flush_results()

    # ---- the loop --------------------------------------------------------------

    async def run(self) -> None:
        log.info("timer %s started", self.timer_id)
        # a one-time cost (the JWT library's first signature) now, not at the first slot
        mint_token("warm-up", 1, "warm-up")
        # what is loaded by now (libraries, kodosumi, Ray) lives as long as the process:
        # kept out of the garbage collector, a full collection no longer walks it
        # (measured: a 40-70 ms pause at a fixed point of every PostgreSQL run)
        gc.collect()
        gc.freeze()
        follower = asyncio.create_task(self._follow_loop())
        writer = asyncio.create_task(self._write_results())
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
            writer.cancel()  # a chunk it was writing goes back to the queue
            await asyncio.gather(follower, writer, return_exceptions=True)
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
        wake = earliest - self.claim_ahead
        return max(0.0, min(self.interval, (wake - self.clock()).total_seconds()))

    # ---- firing ----------------------------------------------------------------

    async def fire_due(self) -> int:
        """Handle every schedule due now (or within ``claim_ahead``), a batch at a time;
        returns how many were handled."""
        handled = 0
        if self._unverified:
            await self._verify_claims()
        while not self._stopping.is_set():
            await self._backlog_below(self.batch)
            now = self.clock()
            batch = await self.store.due(now + self.claim_ahead, limit=self.batch)
            if not batch:
                break
            handled += await self.handle_batch(batch, now)
            if len(batch) < self.batch:
                break
        handled += await self.fire_manual()
        self._publish()
        return handled

    async def _verify_claims(self) -> None:
        """Launch what a claim that failed with the database connection did commit after
        all: its runs carry this timer's id and are still ``unknown`` (late, not lost)."""
        requests, self._unverified = self._unverified, []
        try:
            mine = await self.store.unlaunched_claims(
                self.timer_id, [(r.schedule.id, r.slot) for r in requests])
        except Exception:
            self._unverified[:0] = requests
            raise
        for request in requests:
            run = mine.get((request.schedule.id, request.slot))
            if run is not None:
                log.warning("schedule %s slot %s: claimed as the database went away; "
                            "launching it now", request.schedule.id, request.slot)
                self._start_launch(Claim(schedule=request.schedule, run=run))

    async def _backlog_below(self, limit: int) -> None:
        """Claim the next batch only once fewer than ``limit`` launches are pending: a
        timer killed in a burst leaves at most about two batches claimed and not
        launched (recorded ``unknown``), not the whole burst."""
        while not self._stopping.is_set():
            pending = [task for task in self._launches if not task.done()]
            if len(pending) < limit:
                return
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)

    async def handle_batch(self, batch: Sequence[DueSchedule], now: datetime) -> int:
        """Plan a due batch, check its owners and overlaps with one query each, record
        the slots that must not launch, claim the rest in one transaction, launch."""
        owners = {s.owner for s in batch if not s.system}
        states = await self.roles.owner_states(owners) if owners else {}
        busy = await self.store.active_schedule_ids(
            [s.id for s in batch if s.overlap == "skip"])
        requests: list[ClaimRequest] = []
        for schedule in batch:
            try:
                request = await self._prepare(schedule, now, states, busy)
            except Exception:  # one failing schedule is logged, never stalls the batch
                log.exception("schedule %s could not be handled", schedule.id)
                self.stats.failures += 1
                continue
            if request is not None:
                requests.append(request)
        try:
            claims = await self.store.claim_many(requests, now, self.timer_id)
        except Exception:
            # the connection broke: the claim may have been committed all the same
            self._unverified.extend(requests)
            raise
        if claims:
            log.info("claimed %d slot(s) due %s to %s", len(claims),
                     min(c.run.slot for c in claims), max(c.run.slot for c in claims))
        ahead = [c.run.slot for c in claims if c.run.slot > now + RECHECK_LEAD]
        # claimed ahead: shortly before the slot, read the schedules again (one query),
        # so that a pause, an edit or a delete in the meantime is honoured
        gate = asyncio.create_task(self._recheck(claims, min(ahead))) if ahead else None
        for claim in claims:
            self._start_launch(claim, gate)
        return len(batch)

    async def _recheck(self, claims: Sequence[Claim], first_slot: datetime
                       ) -> dict[str, ScheduleRow]:
        await self._until(first_slot - RECHECK_LEAD)
        return await self.store.schedules_by_id([c.schedule.id for c in claims])

    async def _prepare(self, schedule: DueSchedule, now: datetime,
                       states: dict[str, OwnerState], busy: set[str]) -> ClaimRequest | None:
        """The claim to make for one due schedule, or None after recording why not."""
        assert schedule.next_run is not None
        due = policy.Due(
            schedule_type=schedule.schedule_type, next_run=schedule.next_run,
            cron_expression=schedule.cron_expression, timezone=schedule.timezone,
            catchup=schedule.catchup, end_at=schedule.end_at, max_runs=schedule.max_runs,
            run_count=schedule.run_count,
        )
        try:  # a slot claimed ahead is planned as of its own instant
            plan = policy.plan(due, max(now, schedule.next_run))
        except Exception as exc:
            # a row that cannot be planned (say, a zone gone from tzdata) would stay
            # due and bring the loop straight back to it: pause it, with the reason
            log.exception("schedule %s cannot be planned; pausing it", schedule.id)
            self.stats.failures += 1
            await self.store.pause(
                schedule.id, f"paused by the timer: its next run cannot be computed "
                f"({exc!r})"[:300], now)
            return None
        missed = [(slot, "missed", MISSED_REASON) for slot in plan.missed]
        if not schedule.system:
            reason = _owner_reason(states.get(schedule.owner, "missing"))
            if reason is not None:
                fired = [(plan.fire, "failed", reason)] if plan.fire else []
                await self.store.skip_slots(
                    schedule, [*missed, *fired], now, None,
                    end_note=f"paused by the timer: {reason}", pause=True,
                    timer_id=self.timer_id)
                self.stats.failures += 1
                log.warning("schedule %s not fired: %s", schedule.id, reason)
                return None
        if plan.fire is None:
            await self.store.skip_slots(schedule, missed, now, plan.next_run,
                                        end_note=plan.end_note, timer_id=self.timer_id)
            return None
        if schedule.overlap == "skip" and schedule.id in busy:
            await self.store.skip_slots(
                schedule, [*missed, (plan.fire, "skipped", OVERLAP_REASON)], now,
                plan.next_run, end_note=plan.end_note, timer_id=self.timer_id)
            log.info("schedule %s slot %s skipped: previous execution still running",
                     schedule.id, plan.fire)
            return None
        return ClaimRequest(schedule, plan.fire, plan.next_run, plan.end_note, plan.missed)

    def _start_launch(self, claim: Claim,
                      gate: "asyncio.Task[dict[str, ScheduleRow]] | None" = None) -> None:
        self.stats.fires += 1
        task = asyncio.create_task(self._launch_guarded(claim, gate))
        self._launches.add(task)
        task.add_done_callback(self._launches.discard)

    async def fire_manual(self) -> int:
        """Launch the "run now" requests queued by the panel (their schedules and owners
        read with one query each)."""
        queued = await self.store.queued_runs()
        if not queued:
            return 0
        schedules = await self.store.schedules_by_id(list({r.schedule_id for r in queued}))
        owners = {s.owner for s in schedules.values() if not s.system}
        states = await self.roles.owner_states(owners) if owners else {}
        handled = 0
        for run in queued:
            schedule = schedules.get(run.schedule_id)
            now = self.clock()
            if schedule is None or not await self.store.claim_queued(run, now, self.timer_id):
                continue
            handled += 1
            reason = None if schedule.system else _owner_reason(
                states.get(schedule.owner, "missing"))
            if reason is not None:
                await self.store.record_launch(run, "failed", now, reason=reason)
                continue
            self._start_launch(Claim(schedule=schedule, run=run))
        return handled

    async def _until(self, instant: datetime) -> None:
        """Sleep until ``instant`` on the wall clock the slots are on: never early."""
        while (remaining := (instant - self.clock()).total_seconds()) > 0:
            await self.sleep(remaining)

    async def _launch_guarded(self, claim: Claim,
                              gate: "asyncio.Task[dict[str, ScheduleRow]] | None") -> None:
        try:
            await self._launch(claim, gate)
        except Exception as exc:  # a bug must not leave the run without a reason
            log.exception("schedule %s slot %s: the launch task failed",
                          claim.schedule.id, claim.run.slot)
            self.stats.failures += 1
            self._results.append((claim.run, "unknown", self.clock(), None,
                                  f"timer error while launching: {exc!r}"[:300]))
            self._results_waiting.set()

    async def _still_wanted(self, claim: Claim,
                            gate: "asyncio.Task[dict[str, ScheduleRow]]") -> bool:
        """Whether a slot claimed ahead is still to be launched, by the schedule as read
        again just before the slot; a slot not wanted any more is recorded why."""
        schedule = claim.schedule
        try:
            current = (await gate).get(schedule.id)
        except Exception:  # the store is away: launch what was claimed
            log.warning("schedule %s: could not read it again before its slot; launching "
                        "it as claimed", schedule.id)
            return True
        if current is None:  # deleted before its slot; its runs went with it
            log.info("schedule %s slot %s not launched: deleted before its slot",
                     schedule.id, claim.run.slot)
            return False
        if current.state != "paused" and current.version == schedule.version:
            return True
        reason = PAUSED_REASON if current.state == "paused" else CHANGED_REASON
        log.info("schedule %s slot %s skipped: %s", schedule.id, claim.run.slot, reason)
        self._results.append((claim.run, "skipped", self.clock(), None, reason))
        self._results_waiting.set()
        return False

    async def _launch(self, claim: Claim,
                      gate: "asyncio.Task[dict[str, ScheduleRow]] | None" = None) -> None:
        schedule = claim.schedule
        if claim.run.trigger == "timer":
            self._waiting.append(claim.run.slot)
            try:
                await self._until(claim.run.slot)
            finally:
                self._waiting.remove(claim.run.slot)
        if gate is not None and not await self._still_wanted(claim, gate):
            return
        async with self._slots:
            self._sending += 1
            try:
                outcome = await self._attempts(schedule)
            finally:
                self._sending -= 1
        status = {"launched": "launched", "rejected": "rejected",
                  "unknown": "unknown"}.get(outcome.kind, "failed")
        if status != "launched":
            self.stats.failures += 1
            log.warning("schedule %s slot %s %s: %s", schedule.id, claim.run.slot,
                        status, outcome.reason)
        else:  # each launch is in the run history; the log says it per batch
            log.debug("schedule %s slot %s launched %s", schedule.id, claim.run.slot,
                      outcome.fid)
        # recorded by the writer, many per transaction
        self._results.append((claim.run, status, self.clock(), outcome.fid, outcome.reason))
        self._results_waiting.set()

    async def _attempts(self, schedule: DueSchedule) -> LaunchOutcome:
        """Launch, retrying what is safe to retry, with backoff."""
        outcome = LaunchOutcome("retry", reason="not attempted")
        for attempt in range(1, self.launch_attempts + 1):
            try:
                outcome = await self.launcher.launch(
                    schedule.flow_url, schedule.owner, dict(schedule.inputs or {}))
            except Exception as exc:  # never let one launch kill the loop
                outcome = LaunchOutcome("retry", reason=f"launch error: {exc!r}"[:300])
            if outcome.kind != "retry" or attempt == self.launch_attempts:
                break
            await self.sleep(self.backoff(attempt))
        return outcome

    async def _write_results(self) -> None:
        while True:
            await self._results_waiting.wait()
            await asyncio.sleep(0.02)  # gather what arrives meanwhile into one transaction
            try:
                await self._flush_results()
            except Exception:
                log.exception("recording launch results failed; retrying in 1 s")
                self._results_waiting.set()
                await asyncio.sleep(1.0)

    async def _flush_results(self) -> None:
        while self._results:
            chunk, self._results = self._results[:self.batch], self._results[self.batch:]
            try:
                left = await self._record(chunk)
            except BaseException:  # cancelled included: kept for the next try
                self._results[:0] = chunk
                raise
            self._publish()
            if left:  # the store is away or coming back: kept for the next try
                self._results[:0] = left
                raise RuntimeError(f"{len(left)} launch results could not be recorded yet")
        self._results_waiting.clear()

    async def _record(self, chunk: list[LaunchResult]) -> list[LaunchResult]:
        """One transaction for the chunk; if that fails, row by row. Returns the results
        still to be written. Only a row the database refuses for itself (a constraint,
        a bad value) is given up, logged with its fid; any other failure (the store away,
        or coming back while the rows are written) keeps the row for the next try."""
        try:
            await self.store.record_launches(chunk)
            return []
        except Exception as exc:
            if len(chunk) == 1 and not _refused_row(exc):
                return chunk
        left = []
        for result in chunk:
            try:
                await self.store.record_launches([result])
            except Exception as exc:
                if not _refused_row(exc):
                    left.append(result)
                    continue
                run, status, _, fid, _ = result
                log.error("launch result of schedule %s slot %s (%s, fid %s) could not be "
                          "recorded (%r); the run stays unknown", run.schedule_id, run.slot,
                          status, fid, exc)
        return left

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
        """Poll kodosumi for launched executions, concurrently (within the launch
        limit); record what changed in one transaction. A round takes a page of the
        active runs (the next page the next round) and, of those, the ones whose poll is
        due (``poll_spacing``). Launching comes first: while launches are being sent
        or one is due within ``FOLLOW_CLEARANCE`` seconds, following waits for its next
        round, but never longer than ``FOLLOW_AT_LEAST`` seconds."""
        now = self.clock()
        soon = any((slot - now).total_seconds() < FOLLOW_CLEARANCE for slot in self._waiting)
        if (self._sending or soon) and time.monotonic() - self._followed < FOLLOW_AT_LEAST:
            return 0
        self._followed = mono = time.monotonic()
        page = await self.store.active_runs(FOLLOW_PAGE, after=self._follow_after)
        if len(page) == FOLLOW_PAGE:
            self._follow_after = page[-1].id
        else:  # the end of the active runs: start over, forget runs no longer seen
            self._follow_after = 0
            self._poll_at = {run_id: at for run_id, at in self._poll_at.items()
                             if at > mono - 2 * FOLLOW_MAX_SPACING}
        runs = [run for run in page
                if run.fid is not None and self._poll_at.get(run.id, 0.0) <= mono]

        async def status_of(run: RunRow) -> str | None:
            assert run.fid is not None
            async with self._slots:
                return await self.launcher.status(run.fid, run.owner)

        statuses = await asyncio.gather(*(status_of(run) for run in runs))
        now = self.clock()
        changes: list[RunChange] = []
        for run, status in zip(runs, statuses, strict=True):
            age = (now - run.fired_at).total_seconds() if run.fired_at else 0.0
            self._poll_at[run.id] = mono + poll_spacing(age)
            if status in ("finished", "error"):
                del self._poll_at[run.id]
                changes.append((run, status, now, None))
            elif status in ("starting", "running", "awaiting"):
                if run.status != "running":
                    changes.append((run, "running", now, None))
            elif status is None and run.fired_at and now - run.fired_at > FOLLOW_GIVE_UP:
                changes.append((run, "unknown", now, "kodosumi does not know this execution"))
        await self.store.finish_runs(changes)
        return sum(1 for _, status, _, _ in changes if status in ("finished", "error"))

    def _publish(self) -> None:
        if self.on_stats is not None:
            try:
                self.on_stats(self.stats)
            except Exception:
                log.debug("publishing timer stats failed", exc_info=True)


def _refused_row(exc: Exception) -> bool:
    """Whether the database refused a row for what it holds (retrying cannot help), as
    opposed to a connection that failed."""
    return isinstance(exc, IntegrityError | DataError)


def poll_spacing(age: float) -> float:
    """Seconds until an execution that has run ``age`` seconds is polled again (0: at
    the next round)."""
    return min(FOLLOW_MAX_SPACING, age / 10)


def _owner_reason(state: OwnerState) -> str | None:
    if state == "active":
        return None
    return "owner inactive" if state == "inactive" else "owner no longer exists"
