"""A schedule's rule as one value: its slots after an instant, whatever its kind (pure).

``cron`` slots are wall-clock times in the schedule's zone (:mod:`.cron`, with the
schedule's DST policy); ``interval`` slots are ``anchor + k * every`` (k >= 0) in
absolute time, so DST changes do not move them; ``once`` has no slot after its own.
Dates in ``exclude_dates`` (in the schedule's zone) have no slots. ``jitter`` spreads a
herd: each slot is sent at slot + an offset in [0, jitter) that depends only on the
schedule and the slot.
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from kodosumi_timer.cron import DEBIAN, DstPolicy, next_fire_times, parse_zone

MIN_EVERY = 10  # seconds: the shortest interval
_CHUNK = 64  # cron slots computed at a time


@dataclass(frozen=True)
class Rule:
    schedule_type: str  # once | cron | interval
    timezone: str = "UTC"
    cron_expression: str | None = None
    every: int | None = None  # seconds (interval)
    anchor: datetime | None = None  # the interval's first slot (interval)
    exclude_dates: frozenset[date] = frozenset()
    dst: DstPolicy = DEBIAN

    def next_slots(self, after: datetime, count: int = 1,
                   until: datetime | None = None) -> list[datetime]:
        """The next ``count`` slots strictly after ``after`` (and at or before
        ``until``), excluded dates left out (jumped over a day at a time)."""
        found: list[datetime] = []
        while len(found) < count:
            for slot in self._slots(after, min(count - len(found), _CHUNK)):
                if until is not None and slot > until:
                    return found
                if self.excluded(slot):
                    after = self._end_of_day(slot)
                    break
                found.append(slot)
                if len(found) >= count:
                    return found
            else:
                return found  # no further slots
        return found

    def _end_of_day(self, slot: datetime) -> datetime:
        """Just before the next local midnight after ``slot``."""
        zone = parse_zone(self.timezone)
        day = slot.astimezone(zone).date() + timedelta(days=1)
        midnight = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
        return max(midnight - timedelta(microseconds=1), slot)

    def excluded(self, slot: datetime) -> bool:
        """Whether the slot falls on one of ``exclude_dates`` in the schedule's zone."""
        if not self.exclude_dates:
            return False
        return slot.astimezone(parse_zone(self.timezone)).date() in self.exclude_dates

    def latest_slot(self, after: datetime, until: datetime) -> datetime | None:
        """The last slot in (``after``, ``until``], found without walking every slot
        between: an interval's by arithmetic, a cron rule's in widening windows before
        ``until`` (a minutely rule in the last hour, a yearly one within a few years)."""
        if self.schedule_type == "interval":
            assert self.every is not None and self.anchor is not None
            if until < self.anchor:
                return None
            every = timedelta(seconds=self.every)
            slot = self.anchor + (until - self.anchor) // every * every
            while slot > after:
                if not self.excluded(slot):
                    return slot
                slot -= every
            return None
        for back in (timedelta(hours=1), timedelta(days=2), timedelta(days=32),
                     timedelta(days=367), timedelta(days=366 * 30)):
            start = max(after, until - back)
            latest = None
            while window := self.next_slots(start, _CHUNK, until=until):
                latest, start = window[-1], window[-1]
                if len(window) < _CHUNK:
                    break
            if latest is not None or start == after:
                return latest
        return None

    def _slots(self, after: datetime, first: int = _CHUNK) -> Iterator[datetime]:
        """Every slot strictly after ``after``, excluded dates included, in order (cron
        slots computed ``first`` at first, then a chunk at a time)."""
        if self.schedule_type == "interval":
            assert self.every is not None and self.anchor is not None
            every = timedelta(seconds=self.every)
            k = 0 if after < self.anchor else (after - self.anchor) // every + 1
            while True:
                yield self.anchor + k * every
                k += 1
        if self.schedule_type != "cron" or self.cron_expression is None:
            return
        size = first
        while chunk := next_fire_times(self.cron_expression, self.timezone, after, size,
                                       self.dst):
            yield from chunk
            if len(chunk) < size:
                return
            after, size = chunk[-1], _CHUNK


def jitter_offset(schedule_id: str, slot: datetime, jitter: int | None) -> timedelta:
    """The slot's own offset in [0, ``jitter``) seconds, in milliseconds: the same for
    the same schedule and slot on every timer and in every preview."""
    if not jitter:
        return timedelta(0)
    digest = hashlib.sha256(f"{schedule_id}|{slot.isoformat()}".encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % (jitter * 1000))
