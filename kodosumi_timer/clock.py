"""The wall clock, read in one place: pure code takes ``now`` as an argument."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
