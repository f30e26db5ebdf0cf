"""When a failed delivery is tried again: exponential backoff for about ten minutes."""

from datetime import datetime, timedelta

FIRST_DELAY = 5.0
MAX_DELAY = 120.0
# a delivery is given up when its next attempt would be later than this after it was queued
RETRY_FOR = timedelta(minutes=10)


def next_attempt(created: datetime, attempts: int, now: datetime) -> datetime | None:
    """After ``attempts`` failed attempts (at ``now``), when to try again; None: give up."""
    delay = min(FIRST_DELAY * 2 ** max(attempts - 1, 0), MAX_DELAY)
    at = now + timedelta(seconds=delay)
    return at if at <= created + RETRY_FOR else None
