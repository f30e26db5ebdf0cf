"""The events a schedule can be notified of, and how they are stored on the schedule."""

from collections.abc import Iterable

# a run ended with this status; ``paused``: the timer paused the schedule
EVENTS = ("error", "failed", "rejected", "unknown", "missed", "paused", "finished")
# what a schedule notifies of when it names no events
DEFAULT_EVENTS = ("error", "failed", "rejected", "unknown", "paused")


def encode(events: Iterable[str]) -> str:
    """``",error,failed,"``: the store matches a run's status with LIKE ``%,status,%``."""
    return "," + ",".join(sorted(set(events), key=EVENTS.index)) + ","


def decode(stored: str | None) -> list[str]:
    return [e for e in (stored or "").split(",") if e in EVENTS]
