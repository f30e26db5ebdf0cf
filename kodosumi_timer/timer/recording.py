"""Recording launch results: many per transaction, none lost while the store is away."""

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.exc import DataError, IntegrityError

from kodosumi_timer.store import Store
from kodosumi_timer.store.repository import LaunchResult
from kodosumi_timer.timer.stalls import watched

log = logging.getLogger("kodosumi_timer.timer")


class ResultWriter:
    def __init__(self, store: Store, timer_id: str, batch: int = 500,
                 on_release: Callable[[], None] = lambda: None):
        self.store = store
        self.timer_id = timer_id
        self.batch = batch
        self.on_release = on_release  # a buffered slot may start now
        self._results: list[LaunchResult] = []
        self._waiting = asyncio.Event()

    def add(self, result: LaunchResult) -> None:
        self._results.append(result)
        self._waiting.set()

    async def run(self) -> None:
        """Write what arrives until cancelled (a chunk being written goes back)."""
        while True:
            await self._waiting.wait()
            await asyncio.sleep(0.02)  # gather what arrives meanwhile into one transaction
            try:
                await self.flush()
            except Exception:
                log.exception("recording launch results failed; retrying in 1 s")
                self._waiting.set()
                await asyncio.sleep(1.0)

    async def flush(self) -> None:
        while self._results:
            chunk, self._results = self._results[:self.batch], self._results[self.batch:]
            try:
                async with watched("the store (recording launch results)"):
                    left = await self._record(chunk)
            except BaseException:  # cancelled included: kept for the next try
                self._results[:0] = chunk
                raise
            if left:  # the store is away or coming back: kept for the next try
                self._results[:0] = left
                raise RuntimeError(f"{len(left)} launch results could not be recorded yet")
        self._waiting.clear()

    async def _record(self, chunk: list[LaunchResult]) -> list[LaunchResult]:
        """One transaction for the chunk; if that fails, row by row. Returns the results
        still to be written. Only a row the database refuses for itself (a constraint,
        a bad value) is given up, logged with its fid; any other failure (the store away,
        or coming back while the rows are written) keeps the row for the next try."""
        try:
            if await self.store.record_launches(chunk, self.timer_id):
                self.on_release()
            return []
        except Exception as exc:
            if len(chunk) == 1 and not refused_row(exc):
                return chunk
        left = []
        for result in chunk:
            try:
                if await self.store.record_launches([result], self.timer_id):
                    self.on_release()
            except Exception as exc:
                if not refused_row(exc):
                    left.append(result)
                    continue
                log.error("launch result of schedule %s slot %s (%s, fid %s) could not be "
                          "recorded (%r)", result.run.schedule_id, result.run.slot,
                          result.status, result.fid, exc)
        return left


def refused_row(exc: Exception) -> bool:
    """Whether the database refused a row for what it holds (retrying cannot help), as
    opposed to a connection that failed."""
    return isinstance(exc, IntegrityError | DataError)
