"""Stalls are logged: a store or panel call that takes longer than ``STALL`` seconds is
reported once while it hangs and once, with its duration, when it returns."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

log = logging.getLogger("kodosumi_timer.timer")

STALL = 5.0


@asynccontextmanager
async def watched(what: str, after: float = STALL) -> AsyncIterator[None]:
    started = time.monotonic()
    handle = asyncio.get_running_loop().call_later(
        after, lambda: log.warning("%s has not answered for %.0f s", what, after))
    try:
        yield
    finally:
        handle.cancel()
        took = time.monotonic() - started
        if took > after:
            log.warning("%s answered after %.1f s (a stall)", what, took)
