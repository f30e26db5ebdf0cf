"""Following launched executions to their end by asking kodosumi for their status."""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from kodosumi_timer import reasons
from kodosumi_timer.bridge import Launcher, NoAnswerInTime, Unanswered
from kodosumi_timer.runs import RunStatus
from kodosumi_timer.store import RunRow, Store
from kodosumi_timer.store.repository import RunChange
from kodosumi_timer.timer.pacing import Pacer

log = logging.getLogger("kodosumi_timer.timer")

# an execution kodosumi answers it does not know after this long is recorded unknown
# (while kodosumi cannot be asked at all, nothing is concluded)
FOLLOW_GIVE_UP = timedelta(minutes=10)
# a follow round polls at most this many executions; more are walked round-robin
FOLLOW_PAGE = 200
# an execution running for a while is polled less often: every tenth of its age, at
# most this many seconds apart (a day-long run needs no status request every 2 s)
FOLLOW_MAX_SPACING = 60.0
# while launches are being sent following waits, but at most this many seconds
FOLLOW_AT_LEAST = 10.0
# status requests of one round in flight at once
FOLLOW_CONCURRENCY = 16
UNANSWERED = "(no answer)"
HUNG = "(taken, not answered)"
# an execution id no execution has: kodosumi answers 404 at once while it answers at all
PROBE_FID = "0" * 24


def poll_spacing(age: float) -> float:
    """Seconds until an execution that has run ``age`` seconds is polled again (0: at
    the next round)."""
    return min(FOLLOW_MAX_SPACING, age / 10)


class Follower:
    def __init__(self, store: Store, launcher: Launcher, pacer: Pacer,
                 clock: Callable[[], datetime], launching_busy: Callable[[], bool],
                 on_release: Callable[[], None] = lambda: None):
        self.store = store
        self.on_release = on_release  # a buffered slot may start now
        self.launcher = launcher
        self.pacer = pacer
        self.clock = clock
        self.launching_busy = launching_busy
        self._followed = 0.0  # time.monotonic() of the last round
        self._after = 0  # run id the next round starts after
        self._poll_at: dict[int, float] = {}  # run id -> time.monotonic() of its next poll
        self._requests = asyncio.Semaphore(FOLLOW_CONCURRENCY)

    async def follow(self) -> int:
        """One round: poll the executions whose poll is due, of a page of the active
        runs (the next page the next round); record what changed in one transaction;
        return how many ended. Launching comes first: while launches are being sent or
        one is due in a moment, following waits, but never longer than
        ``FOLLOW_AT_LEAST`` seconds."""
        if self.launching_busy() and time.monotonic() - self._followed < FOLLOW_AT_LEAST:
            return 0
        self._followed = mono = time.monotonic()
        page = await self.store.active_runs(FOLLOW_PAGE, after=self._after)
        if len(page) == FOLLOW_PAGE:
            self._after = page[-1].id
        else:  # the end of the active runs: start over, forget runs no longer seen
            self._after = 0
            self._poll_at = {run_id: at for run_id, at in self._poll_at.items()
                             if at > mono - 2 * FOLLOW_MAX_SPACING}
            self.pacer.set_running(await self.store.active_runs_by_owner())
        now = self.clock()
        changes = await self._end_overdue(page, now)
        ended_here = {change.run.id for change in changes}
        runs = [run for run in page if run.fid is not None and run.id not in ended_here
                and self._poll_at.get(run.id, 0.0) <= mono]
        statuses = await asyncio.gather(*(self._status(run) for run in runs))
        now = self.clock()
        for run, status in zip(runs, statuses, strict=True):
            age = (now - run.fired_at).total_seconds() if run.fired_at else 0.0
            self._poll_at[run.id] = mono + poll_spacing(age)
            if status in (RunStatus.FINISHED, RunStatus.ERROR):
                del self._poll_at[run.id]
                if status == RunStatus.ERROR:  # stamped once kodosumi gave the reason
                    reason = await self._error_reason(run)
                    changes.append(RunChange(run, status, self.clock(), reason))
                else:
                    changes.append(RunChange(run, status, now))
            elif status in ("starting", "running", "awaiting"):
                if run.status != RunStatus.RUNNING:
                    changes.append(RunChange(run, RunStatus.RUNNING, now))
            elif status in (None, HUNG) and run.fired_at \
                    and now - run.fired_at > FOLLOW_GIVE_UP:
                # ten minutes on, kodosumi does not know it, or keeps its status request
                # waiting while it answers others: it lost the execution
                if status is None:
                    changes.append(RunChange(run, RunStatus.UNKNOWN, now, reasons.FOLLOW_LOST))
                elif await self._answers(run.owner):
                    changes.append(RunChange(run, RunStatus.UNKNOWN, now,
                                             reasons.FOLLOW_NO_STATUS))
        if await self.store.finish_runs(changes):
            self.on_release()
        ended = [c.run.owner for c in changes if c.status != RunStatus.RUNNING]
        for owner in ended:
            self.pacer.ended(owner)
        return len(ended)

    async def _end_overdue(self, page: Sequence[RunRow], now: datetime) -> list[RunChange]:
        """End, through kodosumi, the executions running longer than their schedule's
        ``timeout`` (``timed_out``) and those of an ``overlap=replace`` schedule that a
        later launch replaced but that kodosumi did not show yet when it was sent
        (``replaced``)."""
        timeouts = await self.store.timeouts(run.schedule_id for run in page)
        latest = await self.store.latest_launches(run.schedule_id for run in page)
        changes = []
        for run in page:
            if run.fid is None or run.fired_at is None:
                continue
            successor = latest.get(run.schedule_id)
            seconds = timeouts.get(run.schedule_id)
            if successor is not None and run.fired_at < successor[0]:
                change = RunChange(run, RunStatus.REPLACED, now, reasons.REPLACED.format(
                    slot=successor[1].isoformat()))
            elif seconds is not None and now - run.fired_at > timedelta(seconds=seconds):
                change = RunChange(run, RunStatus.TIMED_OUT, now,
                                   reasons.TIMED_OUT.format(seconds=seconds))
            else:
                continue
            if ended := await self._end(change):
                changes.append(ended)
        return changes

    async def _end(self, change: RunChange) -> RunChange | None:
        """End the run's execution through kodosumi and return ``change``; asked first,
        so one that ended meanwhile is recorded as it ended; None (tried again next
        round) while kodosumi cannot be asked or does not show the execution yet."""
        run = change.run
        assert run.fid is not None
        status = await self._status(run)
        if status in (RunStatus.FINISHED, RunStatus.ERROR):
            reason = await self._error_reason(run) if status == RunStatus.ERROR else None
            return RunChange(run, status, change.at, reason)
        if status == UNANSWERED:
            return None
        if status is None and run.status == RunStatus.LAUNCHED:
            # not written by kodosumi's spooler yet (404 for seconds on a busy cluster):
            # a DELETE would end nothing and the Runner would start later
            return None
        try:
            async with self._requests:
                await self.launcher.end(run.fid, run.owner)
        except Unanswered as exc:
            log.warning("run %s (%s) could not be ended (%s): %s",
                        run.id, run.fid, change.status, exc)
            return None
        log.info("run %s (%s) ended: %s", run.id, run.fid, change.reason)
        # ended when kodosumi confirmed it, not when the round began (seconds earlier on
        # a loaded machine: CI saw a finished_at before kodosumi's first event)
        return RunChange(run, change.status, self.clock(), change.reason)

    async def _status(self, run: RunRow) -> str | None:
        """kodosumi's status of the run's execution; None: kodosumi does not know it;
        HUNG: the request was taken but not answered in time; UNANSWERED: kodosumi could
        not be asked."""
        assert run.fid is not None
        try:
            async with self._requests:
                return await self.launcher.status(run.fid, run.owner)
        except NoAnswerInTime as exc:
            log.debug("status of %s not read: %s", run.fid, exc)
            return HUNG
        except Unanswered as exc:
            log.debug("status of %s not read: %s", run.fid, exc)
            return UNANSWERED

    async def _answers(self, owner: str) -> bool:
        """Whether kodosumi answers status requests at all now (a probe for an id no
        execution has): then one that hangs is about its own execution."""
        try:
            async with self._requests:
                return await self.launcher.status(PROBE_FID, owner) is None
        except Unanswered:
            return False

    async def _error_reason(self, run: RunRow) -> str | None:
        """The agent's own last error line, from kodosumi's events."""
        assert run.fid is not None
        try:
            async with self._requests:
                return await self.launcher.error_reason(run.fid, run.owner)
        except Exception:
            log.debug("error reason of %s not read", run.fid, exc_info=True)
            return None
