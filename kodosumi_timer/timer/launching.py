"""Launching one claimed run: wait for its instant, wait for its turn, check that it
is still this timer's to send, send it, and find out what became of it.

At most once: a request is sent again only when it provably did not reach kodosumi
(``not_sent``), or when kodosumi answered and certainly started nothing (``refused``,
retryable), or when kodosumi, asked after an answer that leaves it in doubt, shows no
execution for this run. Everything else ends the run with what is known.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kodosumi_timer import policy, reasons
from kodosumi_timer.bridge import Launcher, LaunchOutcome, Reconciled, Unanswered
from kodosumi_timer.metrics import TimerMetrics
from kodosumi_timer.rules import jitter_offset
from kodosumi_timer.runs import RunStatus
from kodosumi_timer.store import RunRow, Store
from kodosumi_timer.store.repository import Claim, LaunchResult, RunChange
from kodosumi_timer.timer.pacing import Pacer, Ticket
from kodosumi_timer.timer.recording import ResultWriter
from kodosumi_timer.timer.stalls import watched

log = logging.getLogger("kodosumi_timer.timer")

# other runs' executions in this window around a launch in doubt are never taken for it
# (kodosumi's panel may start a flow up to 60 s after the request)
RECONCILE_BEFORE = timedelta(seconds=5)
RECONCILE_AFTER = timedelta(seconds=70)
# a timer run that will have room to go at once is checked (SendGate) this long before its
# instant, so the store's write is not spent after it (SQLite: 5-7 ms of every isolated
# fire); it is stamped as fired at its instant, when its request goes out
CHECK_AHEAD = timedelta(seconds=0.2)


def run_marker(run: RunRow) -> str:
    """The run's own key, carried with its launch so that kodosumi can be asked later
    whether it started it."""
    return f"ktimer-{run.schedule_id}-{int(run.slot.timestamp() * 1000)}-{run.attempt}"


def run_inputs(claim: Claim) -> dict[str, Any]:
    """What the run launches with: its own inputs (a trigger URL's call merged some over
    the schedule's) or else its schedule's."""
    return dict(claim.run.inputs if claim.run.inputs is not None else claim.schedule.inputs)


def send_at(claim: Claim) -> datetime:
    """When a timer run is sent: its slot plus the schedule's jitter offset for it."""
    return claim.run.slot + jitter_offset(claim.schedule.id, claim.run.slot,
                                          claim.schedule.jitter)


@dataclass(frozen=True)
class Verdict:
    """Whether a claimed run is sent; if not, the status and reason it ends with (none:
    it is not this timer's any more, or its schedule is gone)."""

    send: bool
    status: str | None = None
    reason: str | None = None


SEND = Verdict(True)
DROP = Verdict(False)


class SendGate:
    """The last check before a request goes out, for all the runs due at one instant in
    one pair of statements: the schedule is still there, not paused, not changed since
    the claim, the slot not too late for its catch-up rules; then the runs move to
    ``launching`` only if this timer still holds them (atomic: a timer that stalled past
    its lease and was taken over sends nothing)."""

    def __init__(self, store: Store, timer_id: str, clock: Callable[[], datetime],
                 send_lease: timedelta):
        self.store = store
        self.timer_id = timer_id
        self.clock = clock
        self.send_lease = send_lease
        self._pending: list[tuple[Claim, datetime | None, asyncio.Future[Verdict]]] = []
        self._flushing: asyncio.Task[None] | None = None
        # how the checks went (benches print them): batches, runs judged, seconds
        self.batches = 0
        self.judged = 0
        self.seconds = 0.0

    async def admit(self, claim: Claim, sent_at: datetime | None = None) -> Verdict:
        """The verdict on ``claim``; ``sent_at``: checked ahead, its request goes out
        then (its ``fired_at``), not now."""
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._pending.append((claim, sent_at, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the other launches of this instant join the batch
        while self._pending:
            batch, self._pending = self._pending, []
            batch = [(c, at, f) for c, at, f in batch if not f.done()]
            started = time.monotonic()
            verdicts = await self._judge_until_answered([(c, at) for c, at, _ in batch])
            self.batches += 1
            self.judged += len(batch)
            self.seconds += time.monotonic() - started
            for (_, _, future), verdict in zip(batch, verdicts, strict=True):
                if not future.done():
                    future.set_result(verdict)

    async def _judge_until_answered(self, claims: list[tuple[Claim, datetime | None]]
                                    ) -> list[Verdict]:
        # never sent unchecked: while the store is away the runs wait (late, not twice)
        delay = 0.2
        while True:
            try:
                async with watched("the store (checking runs before sending)"):
                    return await self._judge(claims)
            except Exception as exc:
                log.warning("runs not checked before sending (%r); trying again in %.1f s",
                            exc, delay)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def _judge(self, claims: list[tuple[Claim, datetime | None]]) -> list[Verdict]:
        now = self.clock()
        verdicts: list[Verdict] = []
        fired = [max(now, at) if at is not None else now for _, at in claims]

        def decide(current: dict[str, tuple[str, int]]) -> list[tuple[int, datetime]]:
            verdicts[:] = [self._rule(c, current.get(c.schedule.id), now) for c, _ in claims]
            return [(c.run.id, at) for (c, _), v, at in zip(claims, verdicts, fired,
                                                             strict=True) if v.send]

        allowed = await self.store.start_sending_checked(
            self.timer_id, (c.schedule.id for c, _ in claims), decide,
            now + self.send_lease)
        for i, (claim, _) in enumerate(claims):
            if verdicts[i].send and claim.run.id not in allowed:
                log.info("schedule %s slot %s: held by another timer now; not sent here",
                         claim.schedule.id, claim.run.slot)
                verdicts[i] = DROP
            elif verdicts[i].send:
                claim.run.status, claim.run.fired_at = RunStatus.LAUNCHING, fired[i]
        return verdicts

    @staticmethod
    def _rule(claim: Claim, current: tuple[str, int] | None, now: datetime) -> Verdict:
        schedule, run = claim.schedule, claim.run
        if current is None:  # deleted: its runs went with it
            return DROP
        if run.trigger not in ("timer", "buffer"):  # "run now" runs whatever the state
            return SEND
        state, version = current
        if state == "paused":
            return Verdict(False, RunStatus.SKIPPED, reasons.PAUSED)
        if version != schedule.version:
            return Verdict(False, RunStatus.SKIPPED, reasons.CHANGED)
        instant = send_at(claim)  # late is measured from when it was meant to go
        if run.trigger == "timer" and policy.too_late(instant, now, schedule.catchup,
                                                      schedule.catchup_window):
            late = (now - instant).total_seconds()
            return Verdict(False, RunStatus.MISSED, reasons.MISSED_LATE.format(
                late=late, window=schedule.catchup_window))
        return SEND


@dataclass
class Launching:
    """The launch of every claimed run, each its own task."""

    store: Store
    launcher: Launcher
    pacer: Pacer
    gate: SendGate
    writer: ResultWriter
    clock: Callable[[], datetime]
    sleep: Callable[[float], Awaitable[None]]
    attempts: int
    backoff: Callable[[int], float]
    system_user: str
    in_send: set[int] = field(default_factory=set)  # runs whose request may be going out
    failures: int = 0
    waiting: list[datetime] = field(default_factory=list)  # instants launches sleep to
    metrics: TimerMetrics = field(default_factory=TimerMetrics)

    def busy(self, clearance: float = 0.5) -> bool:
        """Whether requests are being sent or one is due in less than ``clearance`` s."""
        now = self.clock()
        return bool(self.in_send) or any(
            (slot - now).total_seconds() < clearance for slot in self.waiting)

    async def launch(self, claim: Claim) -> None:
        """One claimed run, from its instant to its recorded result."""
        try:
            await self._launch(claim)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave the run without a reason
            log.exception("schedule %s slot %s: the launch task failed",
                          claim.schedule.id, claim.run.slot)
            self.failures += 1
            self.writer.add(LaunchResult(claim.run, RunStatus.UNKNOWN, self.clock(), None,
                                         reasons.TIMER_ERROR.format(error=repr(exc))[:300]))

    async def _launch(self, claim: Claim) -> None:
        run, schedule = claim.run, claim.schedule
        owner = self.system_user if schedule.system else schedule.owner
        ticket: Ticket | None = None
        verdict: Verdict | None = None
        launched = False
        try:
            if run.trigger == "timer":
                instant = send_at(claim)
                self.waiting.append(instant)
                try:
                    await self.until(instant - CHECK_AHEAD)
                    # one that has room now takes its turn and is checked ahead; one that
                    # would wait is checked when its turn comes (a pause meanwhile counts)
                    ticket = self.pacer.try_turn(owner, schedule.flow_url)
                    if ticket is not None:
                        verdict = await self.gate.admit(claim, sent_at=instant)
                    await self.until(instant)
                finally:
                    self.waiting.remove(instant)
            if ticket is None:
                ticket = await self.pacer.turn(owner, schedule.flow_url)
            if verdict is None:
                verdict = await self.gate.admit(claim)
            if not verdict.send:
                self._not_sent(claim, verdict)
                return
            if schedule.overlap == "replace":
                await self.replace_running(claim)
            self.in_send.add(run.id)
            if run.trigger == "timer":  # lateness: from its instant to its request
                self.metrics.fired((self.clock() - send_at(claim)).total_seconds())
            try:
                result = await self.send(claim, ticket)
                launched = result.status == RunStatus.LAUNCHED
            finally:
                self.in_send.discard(run.id)
        finally:  # a launched execution counts as running before its turn is given back
            if ticket is not None:
                self.pacer.done(ticket, launched=launched)
        if result.status != RunStatus.LAUNCHED:
            self.failures += 1
            log.warning("schedule %s slot %s %s: %s", schedule.id, run.slot, result.status,
                        result.reason)
        else:  # each launch is in the run history
            log.debug("schedule %s slot %s launched %s", schedule.id, run.slot, result.fid)
        self.writer.add(result)

    def _not_sent(self, claim: Claim, verdict: Verdict) -> None:
        if verdict.status is not None:
            log.info("schedule %s slot %s %s: %s", claim.schedule.id, claim.run.slot,
                     verdict.status, verdict.reason)
            self.writer.add(LaunchResult(claim.run, verdict.status, self.clock(), None,
                                         verdict.reason))

    async def replace_running(self, claim: Claim) -> None:
        """overlap=replace: end the schedule's running executions through kodosumi and
        record them ``replaced``; the slot starts anyway. One that cannot be ended now
        (kodosumi away, or not showing it yet) the follower ends once it can."""
        ended = []
        for run in await self.store.running_runs_of(claim.schedule.id):
            assert run.fid is not None
            try:
                status = await self.launcher.status(run.fid, run.owner)
                if status in (RunStatus.FINISHED, RunStatus.ERROR):
                    continue  # ended meanwhile: followed to its end, not deleted
                if status is None and run.status == RunStatus.LAUNCHED:
                    # kodosumi answers 404 until its spooler writes the execution: a
                    # DELETE now would end nothing and the Runner would start later
                    raise Unanswered("kodosumi does not show it yet")
                await self.launcher.end(run.fid, run.owner)
            except Unanswered as exc:
                log.warning("schedule %s: run %s (%s) not ended yet for the slot %s: %s",
                            claim.schedule.id, run.id, run.fid, claim.run.slot, exc)
                continue
            ended.append(RunChange(run, RunStatus.REPLACED, self.clock(),
                                   reasons.REPLACED.format(slot=claim.run.slot.isoformat())))
        await self.store.finish_runs(ended)
        for change in ended:
            self.pacer.ended(change.run.owner)

    async def find(self, claim: Claim, sent_at: datetime) -> Reconciled:
        """Ask kodosumi whether it started this run, never taking another run's
        execution for it."""
        schedule = claim.schedule
        try:
            others = await self.store.known_fids(schedule.owner, sent_at - RECONCILE_BEFORE,
                                                 sent_at + RECONCILE_AFTER)
            return await self.launcher.find_launch(
                schedule.flow_url, schedule.owner, run_inputs(claim),
                marker=run_marker(claim.run), sent_at=sent_at, exclude=others)
        except Exception as exc:
            return Reconciled("cannot_tell", reason=f"kodosumi could not be asked: {exc!r}"[:200])

    async def until(self, instant: datetime) -> None:
        """Sleep until ``instant`` on the wall clock the slots are on: never early."""
        while (remaining := (instant - self.clock()).total_seconds()) > 0:
            await self.sleep(remaining)

    async def send(self, claim: Claim, ticket: Ticket | None = None) -> LaunchResult:
        """Send the run's launch request, retrying only what is safe to retry."""
        schedule, run = claim.schedule, claim.run
        marker = run_marker(run)
        outcome = LaunchOutcome("not_sent", reason="not attempted")
        for attempt in range(1, self.attempts + 1):
            sent_at = self.clock()  # this attempt's: kodosumi is asked about this one
            try:
                async with watched(f"the panel (launching {schedule.flow_url})"):
                    outcome = await self.launcher.launch(
                        schedule.flow_url, schedule.owner, run_inputs(claim), marker=marker)
            except Exception as exc:  # whatever it was, the request may have gone out
                outcome = LaunchOutcome("in_doubt", reason=f"launch error: {exc!r}"[:300])
            answered_in = (self.clock() - sent_at).total_seconds()
            self.metrics.answered(answered_in)
            if ticket is not None:
                self.pacer.observe(ticket, overloaded=outcome.kind in ("in_doubt", "not_sent")
                                   or (outcome.kind == "refused" and outcome.retryable),
                                   seconds=answered_in)
            last = attempt == self.attempts
            if outcome.kind == "launched":
                return LaunchResult(run, RunStatus.LAUNCHED, self.clock(), outcome.fid)
            if outcome.kind == "rejected":
                return LaunchResult(run, RunStatus.REJECTED, self.clock(), None, outcome.reason)
            if outcome.kind == "in_doubt":
                found = await self.find(claim, sent_at)
                if found.kind == "found":
                    log.info("schedule %s slot %s: %s, but kodosumi started it (%s)",
                             schedule.id, run.slot, outcome.reason, found.fid)
                    return LaunchResult(run, RunStatus.LAUNCHED, self.clock(), found.fid,
                                        reasons.RECONCILED.format(answer=outcome.reason,
                                                                  how=found.reason or "marker"))
                if found.kind == "cannot_tell":
                    return LaunchResult(run, RunStatus.UNKNOWN, self.clock(), None,
                                        reasons.IN_DOUBT.format(
                                            answer=outcome.reason,
                                            why=found.reason or "no answer")[:500])
                if last:  # kodosumi answered and shows none: it did not run
                    return LaunchResult(run, RunStatus.FAILED, self.clock(), None,
                                        reasons.NOT_STARTED.format(answer=outcome.reason))
            elif last or outcome.kind == "refused" and not outcome.retryable:
                return LaunchResult(run, RunStatus.FAILED, self.clock(), None, outcome.reason)
            delay = self.backoff(attempt)
            log.info("schedule %s slot %s: attempt %d of %d not launched (%s); trying again "
                     "in %.1f s", schedule.id, run.slot, attempt, self.attempts,
                     outcome.reason, delay)
            await self.sleep(delay)
        return LaunchResult(run, RunStatus.FAILED, self.clock(), None, outcome.reason)
