"""Run history that lasts without growing for ever (issue 12): every few minutes, each
schedule keeps its newest ``keep_runs`` runs and none older than ``keep_days``; the rest
goes in small batches, with a pause between them so that the timer's own writes (claims,
launch results) never queue behind a long delete.

A batch is also kept out of the moments a launch is sent: before each, the pruner asks
the store when the next launch is due and, if it is nearer than the batch may take, waits
until just after it. Measured (bench/pruning.py, bench/RESULTS.md): without this, a
batch that happened to hold SQLite's write lock, or the process's CPU, at a slot made
that launch late, and pruning moved the isolated-fire lateness p99; with it, it does not.
Where launches come too densely for any gap, a batch goes anyway after ``max_wait``,
just after a launch."""

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from kodosumi_timer.clock import utcnow

log = logging.getLogger("kodosumi_timer.history")


class HistoryStore(Protocol):
    async def schedules_to_prune(self, older_than: datetime, keep: int) -> list[str]: ...

    async def next_launch(self, since: datetime) -> datetime | None: ...

    async def prune_runs(self, schedule_id: str, older_than: datetime, keep: int,
                         batch: int = 500) -> int: ...


def kept(keep_runs: int, keep_days: float) -> str:
    """How much history is kept, as the panel and the API say it."""
    runs = "run" if keep_runs == 1 else f"{keep_runs:,} runs"
    days = f"{keep_days:g} day" + ("" if keep_days == 1 else "s")
    return f"the newest {runs} of each schedule, none older than {days}"


def wait_before_batch(now: datetime, coming: datetime | None, ahead: float,
                      after: float) -> float:
    """Seconds to wait before a batch so that it runs while no launch is being sent: none
    when the next launch (``coming``) is more than ``ahead`` seconds away, else until
    ``after`` seconds past it (a launch due already: ``after``, then look again)."""
    if coming is None:
        return 0.0
    until = (coming - now).total_seconds()
    if until > ahead:
        return 0.0
    return max(until, 0.0) + after


class Pruner:
    def __init__(self, store: HistoryStore, keep_runs: int, keep_days: float, *,
                 every: float = 300.0, batch: int = 500, pause: float = 0.05,
                 gap: float = 0.2, after: float = 0.1, max_wait: float = 5.0,
                 clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.keep_runs = keep_runs
        self.keep_days = keep_days
        self.every = every
        self.batch = batch
        self.pause = pause
        # a batch starts only when no launch is due within gap + twice the last batch's
        # time; after a launch's slot it waits `after` more (the send's own queries)
        self.gap = gap
        self.after = after
        self.max_wait = max_wait
        self.clock = clock
        self.waited = 0.0  # seconds spent waiting for gaps, for the benchmark
        self._took = 0.0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def prune(self) -> int:
        """One pass over the schedules that may have runs to prune; returns how many
        runs went."""
        older_than = self.clock() - timedelta(days=self.keep_days)
        total = 0
        await self._wait_for_a_gap()  # its query reads every run: kept out of launches too
        for schedule_id in await self.store.schedules_to_prune(older_than, self.keep_runs):
            while not self._stopping.is_set():
                await self._wait_for_a_gap()
                started = time.monotonic()
                gone = await self.store.prune_runs(schedule_id, older_than, self.keep_runs,
                                                   self.batch)
                self._took = time.monotonic() - started
                total += gone
                if gone < self.batch:
                    break
                await self._rest(self.pause)
        return total

    async def _wait_for_a_gap(self) -> None:
        if self.max_wait <= 0:  # never waits (as first built; the benchmark's baseline)
            return
        waited = 0.0
        while not self._stopping.is_set():
            now = self.clock()
            coming = await self.store.next_launch(now - timedelta(seconds=self.after))
            delay = wait_before_batch(now, coming, self.gap + 2 * self._took, self.after)
            if delay <= 0:
                return
            await self._rest(delay)
            waited += delay
            self.waited += delay
            if waited >= self.max_wait:
                return  # launches too dense for a gap: go now, just after one of them

    async def _rest(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                gone = await self.prune()
                if gone:
                    log.info("pruned %d run(s) of history (keeping %s)", gone,
                             kept(self.keep_runs, self.keep_days))
            except Exception:  # the store may be briefly away: the next pass catches up
                log.exception("pruning run history failed; trying again later")
            await self._rest(self.every)
