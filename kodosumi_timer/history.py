"""Run history that lasts without growing for ever (issue 12): every few minutes, each
schedule keeps its newest ``keep_runs`` runs and none older than ``keep_days``; the rest
goes in small batches, with a pause between them so that the timer's own writes (claims,
launch results) never queue behind a long delete."""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from kodosumi_timer.clock import utcnow

log = logging.getLogger("kodosumi_timer.history")


class HistoryStore(Protocol):
    async def schedule_ids(self) -> list[str]: ...

    async def prune_runs(self, schedule_id: str, older_than: datetime, keep: int,
                         batch: int = 500) -> int: ...


def kept(keep_runs: int, keep_days: float) -> str:
    """How much history is kept, as the panel and the API say it."""
    runs = "run" if keep_runs == 1 else f"{keep_runs:,} runs"
    days = f"{keep_days:g} day" + ("" if keep_days == 1 else "s")
    return f"the newest {runs} of each schedule, none older than {days}"


class Pruner:
    def __init__(self, store: HistoryStore, keep_runs: int, keep_days: float, *,
                 every: float = 300.0, batch: int = 500, pause: float = 0.05,
                 clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.keep_runs = keep_runs
        self.keep_days = keep_days
        self.every = every
        self.batch = batch
        self.pause = pause
        self.clock = clock
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def prune(self) -> int:
        """One pass over every schedule; returns how many runs went."""
        older_than = self.clock() - timedelta(days=self.keep_days)
        total = 0
        for schedule_id in await self.store.schedule_ids():
            while not self._stopping.is_set():
                gone = await self.store.prune_runs(schedule_id, older_than, self.keep_runs,
                                                   self.batch)
                total += gone
                if gone < self.batch:
                    break
                await asyncio.sleep(self.pause)
        return total

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                gone = await self.prune()
                if gone:
                    log.info("pruned %d run(s) of history (keeping %s)", gone,
                             kept(self.keep_runs, self.keep_days))
            except Exception:  # the store may be briefly away: the next pass catches up
                log.exception("pruning run history failed; trying again later")
            try:
                await asyncio.wait_for(self._stopping.wait(), self.every)
            except TimeoutError:
                pass
