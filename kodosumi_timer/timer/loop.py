"""The timer service loop: sleep until the earliest slot (or a wake-up), then move every
due slot along its path — plan and claim (planning), wait for its instant and its turn
(pacing), check and send (launching), record (recording) — and follow the executions
to their end (following). Claims carry a lease: runs of a timer that stopped, died or
stalled are taken over here, and those it may have sent are settled with kodosumi.

``stop()`` lets the step in hand finish; runs not sent yet are handed back.
"""

import asyncio
import gc
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from kodosumi_timer import policy, reasons
from kodosumi_timer.bridge import Launcher, Roles, mint_token
from kodosumi_timer.clock import utcnow
from kodosumi_timer.metrics import TimerMetrics
from kodosumi_timer.runs import RunStatus
from kodosumi_timer.store import RunRow, Store
from kodosumi_timer.store.due import BadRow, DueSchedule
from kodosumi_timer.store.repository import Claim, LaunchResult
from kodosumi_timer.timer.following import Follower
from kodosumi_timer.timer.launching import Launching, SendGate
from kodosumi_timer.timer.pacing import Pacer
from kodosumi_timer.timer.planning import Planner
from kodosumi_timer.timer.recording import ResultWriter
from kodosumi_timer.timer.stalls import watched
from kodosumi_timer.timer.waking import Waker

log = logging.getLogger("kodosumi_timer.timer")

# expired claims are looked for this often (seconds), not on every turn of the loop
RECOVER_EVERY = 2.0



class SystemSource(Protocol):
    """System schedules (kodosumi_timer.system.SystemSchedules): synced on every loop
    turn; the loop wakes at least every ``check_interval`` seconds to look."""

    check_interval: float

    async def refresh(self, now: datetime) -> object: ...


@dataclass(frozen=True)
class TimerConfig:
    """How the timer behaves (the ``KODO_TIMER_*`` settings)."""

    interval: float = 60.0  # longest sleep when nothing is due
    follow_interval: float = 2.0
    launch_attempts: int = 3
    system_user: str = "timer"
    # slots due within this many seconds are claimed now and launched at their instant
    claim_ahead: float = 0.0
    batch: int = 500
    lease: float = 30.0  # a claim is this timer's for so long, renewed while it lives
    launch_timeout: float = 30.0  # the launcher's request timeout
    max_running: int | None = None  # executions launched and not ended, at most
    max_in_flight: int = 32  # launch requests at once, at most
    latency_target: float = 2.0  # kodosumi answering slower than this is overloaded
    backoff: Callable[[int], float] = policy.retry_delay


@dataclass
class TimerStats:
    started: float = field(default_factory=time.time)
    fires: int = 0
    failures: int = 0
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    figures: dict[str, Any] = field(default_factory=dict)  # kodosumi_timer.metrics


class Timer:
    def __init__(self, store: Store, launcher: Launcher, roles: Roles, waker: Waker,
                 config: TimerConfig | None = None, *,
                 clock: Callable[[], datetime] = utcnow,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 system: SystemSource | None = None,
                 on_stats: Callable[[TimerStats], None] | None = None,
                 metrics: TimerMetrics | None = None):
        self.config = config = config or TimerConfig()
        # the figures it publishes (a CountingStore may share them to count runs)
        self.metrics = metrics if metrics is not None else TimerMetrics()
        self.store = store
        self.launcher = launcher
        self.waker = waker
        self.clock = clock
        self.system = system
        self.on_stats = on_stats
        self.stats = TimerStats()
        self.timer_id = f"{self.stats.host}:{self.stats.pid}:{id(self):x}"
        self.claim_ahead = timedelta(seconds=config.claim_ahead)
        self.lease = timedelta(seconds=config.lease)
        self.pacer = Pacer(max_running=config.max_running, high=config.max_in_flight,
                           target=config.latency_target)
        # a slot buffered behind a running execution is taken at once when it ends
        self._nudged = asyncio.Event()
        self.writer = ResultWriter(store, self.timer_id, config.batch,
                                   on_release=self._nudged.set)
        # a run being sent is held long enough for its request and the check after it
        send_lease = timedelta(seconds=max(config.lease, 2 * config.launch_timeout + 15))
        self.gate = SendGate(store, self.timer_id, clock, send_lease)
        self.planner = Planner(store, roles, self.timer_id)
        self.launching = Launching(
            store=store, launcher=launcher, pacer=self.pacer, gate=self.gate,
            writer=self.writer, clock=clock, sleep=sleep, attempts=config.launch_attempts,
            backoff=config.backoff, system_user=config.system_user, metrics=self.metrics)
        self.follower = Follower(store, launcher, self.pacer, clock, self.launching.busy,
                                 on_release=self._nudged.set)
        self._stopping = asyncio.Event()
        self._launches: dict[asyncio.Task[None], int] = {}  # task -> run id
        self._launch_ended = asyncio.Event()  # set as each launch task ends
        self._renewed = 0.0
        self._recovered = -RECOVER_EVERY  # the first turn looks at once
        self._seen = 0
        self.sleeping = False  # observable by tests and status output

    def stop(self) -> None:
        self._stopping.set()

    async def drain(self) -> None:
        """Wait for the launches in flight and record their results (tests, shutdown)."""
        # judged by done(), not by the set: a task that has just finished is still in
        # it until its callback runs, and gathering only finished tasks never yields
        while pending := [task for task in self._launches if not task.done()]:
            await asyncio.wait(pending)
        await self.writer.flush()
        self._publish()

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
        helpers = [asyncio.create_task(self._follow_loop()),
                   asyncio.create_task(self.writer.run())]
        try:
            while not self._stopping.is_set():
                await self.refresh_system()
                try:
                    await self.step()
                    delay = await self.seconds_to_next()
                except Exception:  # the store may be briefly away: log, back off, go on
                    log.exception("timer step failed; retrying")
                    self.metrics.store_error()
                    self._publish()  # the heartbeat goes on while the store is away
                    delay = min(self.config.interval, 5.0)
                if self.system is not None:
                    delay = min(delay, self.system.check_interval)
                await self._sleep(min(delay, self.config.lease / 3))
        finally:
            for task in helpers:
                task.cancel()  # a chunk the writer was writing goes back to its queue
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._hand_back()
            log.info("timer %s stopped", self.timer_id)

    async def step(self) -> int:
        """One turn: keep the leases, take over what others left (both every few
        seconds: leases last tens of them), fire what is due."""
        await self.renew_leases()
        handled = 0
        mono = time.monotonic()
        if mono - self._recovered >= RECOVER_EVERY:
            self._recovered = mono
            handled += await self.recover()
        handled += await self.fire_due()
        return handled

    async def _hand_back(self) -> None:
        """On stop: runs waiting for their instant or their turn are handed back (their
        lease ends now, the next timer takes them over); requests being sent finish."""
        for task, run_id in self._launches.items():
            if run_id not in self.launching.in_send:
                task.cancel()
        await asyncio.gather(*self._launches, return_exceptions=True)
        try:
            await self.writer.flush()
            released = await self.store.release_queued(self.timer_id, self.clock())
            if released:
                log.info("handed back %d run(s) not sent yet", released)
        except Exception:
            log.exception("results or claims not handed back; their leases will expire")

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
        nudge = asyncio.ensure_future(self._nudged.wait())
        # a local sleep keeps fire times precise whatever the waker's latency
        local = asyncio.ensure_future(asyncio.sleep(delay))
        self.sleeping = True
        try:
            done, pending = await asyncio.wait({wake, stop, nudge, local},
                                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.sleeping = False
        self._nudged.clear()
        if wake in done:
            self._seen = max(self._seen, wake.result())
        for task in (stop, nudge, local):
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
            return self.config.interval
        wake = earliest - self.claim_ahead
        return max(0.0, min(self.config.interval, (wake - self.clock()).total_seconds()))

    # ---- firing ----------------------------------------------------------------

    async def fire_due(self) -> int:
        """Handle every schedule due now (or within ``claim_ahead``), a batch at a time,
        and the "run now" requests; returns how many were handled."""
        handled = 0
        batch_size = self.config.batch
        while not self._stopping.is_set():
            await self._backlog_below(batch_size)
            now = self.clock()
            async with watched("the store (reading due schedules)"):
                batch = await self.store.due(now + self.claim_ahead, limit=batch_size)
            if not batch:
                break
            requests = await self.planner.plan(batch, now)
            async with watched("the store (claiming slots)"):
                claims = await self.store.claim_many(requests, now, self.timer_id,
                                                     now + self.lease)
            if claims:
                log.info("claimed %d slot(s) due %s to %s", len(claims),
                         min(c.run.slot for c in claims), max(c.run.slot for c in claims))
            for claim in claims:
                self._start(claim)
            handled += len(batch)
            if len(batch) < batch_size:
                break
        handled += await self.fire_manual()
        self._publish()
        return handled

    async def fire_manual(self) -> int:
        """Take the "run now" requests queued by the panel and launch them."""
        now = self.clock()
        runs = await self.store.take_manual(self.timer_id, now, now + self.lease)
        if runs:
            await self._launch_held(runs, check_owner=True)
        return len(runs)

    async def _launch_held(self, runs: list[RunRow], check_owner: bool) -> None:
        """Launch runs this timer holds; their schedules (and owners) read in one query
        each. A run whose schedule cannot be run ends ``failed`` with the reason."""
        schedules = await self.store.due_by_id(r.schedule_id for r in runs)
        owners = {s.owner for s in schedules.values()
                  if isinstance(s, DueSchedule) and not s.system}
        states = await self.planner.roles.owner_states(owners) if check_owner and owners \
            else {}
        now = self.clock()
        for run in runs:
            schedule = schedules.get(run.schedule_id)
            why: str | None = None
            if isinstance(schedule, BadRow):
                why = reasons.BAD_ROW.format(why=schedule.why)
            elif schedule is not None and check_owner and not schedule.system:
                why = reasons.owner_reason(states.get(schedule.owner, "missing"))
            if why is not None:
                self.writer.add(LaunchResult(run, RunStatus.FAILED, now, None, why))
            elif isinstance(schedule, DueSchedule):
                self._start(Claim(schedule=schedule, run=run))

    def _start(self, claim: Claim) -> None:
        self.stats.fires += 1
        self._track(asyncio.create_task(self._launch(claim)), claim.run.id)

    def _track(self, task: asyncio.Task[None], run_id: int) -> None:
        self._launches[task] = run_id
        task.add_done_callback(self._untrack)

    def _untrack(self, task: asyncio.Task[None]) -> None:
        self._launches.pop(task, None)
        self._launch_ended.set()

    async def _launch(self, claim: Claim) -> None:
        await self.launching.launch(claim)

    async def _backlog_below(self, limit: int) -> None:
        """Claim the next batch only once fewer than ``limit`` launches are pending:
        what a killed timer leaves behind is at most about two batches. The leases of
        the runs held are renewed meanwhile (the loop cannot while it waits here)."""
        # an event set by each ending task, not asyncio.wait on all of them: that adds
        # and removes a callback on every pending task per ending one (10,000 launches
        # through a backlog of 500-1,000 made some ten million of them)
        while not self._stopping.is_set() and len(self._launches) >= limit:
            self._launch_ended.clear()
            try:
                await asyncio.wait_for(self._launch_ended.wait(), self.config.lease / 3)
            except TimeoutError:
                pass
            await self.renew_leases()

    # ---- leases: keeping ours, taking over what others left ---------------------

    async def renew_leases(self, force: bool = False) -> None:
        """Extend the leases of the runs this timer is launching, every third of a
        lease. Only those: a claim it holds but lost track of (its commit was cut off
        with the connection) runs out and is taken over like any other."""
        mono = time.monotonic()
        if not force and mono - self._renewed < self.config.lease / 3:
            return
        self._renewed = mono
        await self.store.renew_leases(self.timer_id, set(self._launches.values()),
                                      self.clock() + self.lease)

    async def recover(self) -> int:
        """Take over runs whose lease expired: ``queued`` ones are launched by the
        catch-up rules (they were never sent); ``launching`` ones may have reached
        kodosumi, which is asked first."""
        now = self.clock()
        mine = set(self._launches.values())
        expired = [r for r in await self.store.expired_claims(now) if r.id not in mine]
        previous = {run.id: run.timer_id for run in expired}
        taken = await self.store.take_over(expired, self.timer_id, now, now + self.lease)
        for run in taken:
            log.warning("run %s (schedule %s slot %s, %s) taken over from timer %s whose "
                        "lease expired", run.id, run.schedule_id, run.slot, run.status,
                        previous[run.id])
        queued = [r for r in taken if r.status == RunStatus.QUEUED]
        if queued:
            await self._launch_held(queued, check_owner=False)
        for run in taken:
            if run.status == RunStatus.LAUNCHING:
                self._track(asyncio.create_task(self._settle(run)), run.id)
        return len(taken)

    async def _settle(self, run: RunRow) -> None:
        """A run another timer may have sent: ask kodosumi, then record it launched,
        send it (kodosumi shows none), or record that it cannot be told."""
        schedules = await self.store.due_by_id([run.schedule_id])
        schedule = schedules.get(run.schedule_id)
        if not isinstance(schedule, DueSchedule):
            return
        found = await self.launching.find(Claim(schedule=schedule, run=run),
                                          run.fired_at or run.slot)
        now = self.clock()
        if found.kind == "found":
            self.writer.add(LaunchResult(run, RunStatus.LAUNCHED, now, found.fid,
                                         f"settled after the timer that sent it stopped: "
                                         f"{found.reason or 'found by its marker'}"))
        elif found.kind == "absent" and await self.store.requeue(run, self.timer_id):
            await self.launching.launch(Claim(schedule=schedule, run=run))
        else:
            self.writer.add(LaunchResult(
                run, RunStatus.UNKNOWN, now, None,
                f"the timer sending it stopped; whether kodosumi started it cannot be "
                f"told: {found.reason or 'kodosumi did not answer'}"[:500]))

    # ---- following executions ----------------------------------------------------

    async def _follow_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.follow()
            except Exception:
                log.exception("following executions failed; retrying")
            try:
                await asyncio.wait_for(self._stopping.wait(), self.config.follow_interval)
            except TimeoutError:
                pass

    async def follow(self) -> int:
        return await self.follower.follow()

    def _publish(self) -> None:
        self.stats.failures = self.planner.failures + self.launching.failures
        self.stats.figures = self.metrics.snapshot(
            self.clock(), waiting=self.pacer.waiting, in_flight=self.pacer.in_flight,
            running=self.pacer.running.total())
        if self.on_stats is not None:
            try:
                self.on_stats(self.stats)
            except Exception:
                log.debug("publishing timer stats failed", exc_info=True)
