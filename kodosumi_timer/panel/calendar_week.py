"""The coming week of a viewer's schedules as a calendar (pure: ``now`` is an argument).

Seven days from today on the viewer's wall clock, each with the slots still to come that
day: the same slots the timer fires (:func:`kodosumi_timer.rules.rule_of`, so excluded
dates, DST policies, ``end_at`` and ``max_runs`` count exactly as they do there). A day
shows a few slots of each schedule and a few entries in all; the rest is counted as
"more" (a minutely schedule is counted up to ``COUNTED`` slots a day, not walked whole).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from kodosumi_timer.cron import parse_zone
from kodosumi_timer.rules import StoredRule, rule_of

DAYS = 7
SHOWN_PER_SCHEDULE = 3  # slots of one schedule shown on one day
SHOWN_PER_DAY = 8  # entries shown on one day
COUNTED = 100  # slots of one schedule counted on one day; beyond: "97+ more"
_TICK = timedelta(microseconds=1)


class CalendarSchedule(StoredRule, Protocol):
    """The fields of a stored schedule the calendar reads."""

    id: str
    title: str | None
    expose_name: str
    state: str
    next_run: datetime | None
    end_at: datetime | None
    max_runs: int | None
    run_count: int


@dataclass(frozen=True)
class Entry:
    at: datetime  # the slot, UTC
    local: datetime  # the slot on the viewer's clock
    schedule_id: str
    title: str
    state: str


@dataclass(frozen=True)
class Day:
    day: date
    today: bool
    entries: tuple[Entry, ...]
    more: int  # slots of this day not shown
    more_capped: bool  # some schedule had more than COUNTED slots: ``more`` is a floor


@dataclass(frozen=True)
class Week:
    zone: str
    days: tuple[Day, ...]

    @property
    def empty(self) -> bool:
        return not any(d.entries for d in self.days)


def viewer_zone(value: str | None) -> str | None:
    """The IANA zone the browser sent, or None when it sent none or nonsense."""
    if not value or len(value) > 64:
        return None
    try:
        parse_zone(value)
    except ValueError:
        return None
    return value


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=parse_zone(zone)).astimezone(UTC)


def _slots(row: CalendarSchedule, start: datetime, end: datetime, count: int) -> list[datetime]:
    """Up to ``count`` of the schedule's slots in [start, end)."""
    if row.state != "active" or row.next_run is None or count <= 0:
        return []
    if row.schedule_type == "once":
        # a once schedule has one slot, its next_run, until it fires
        return [row.next_run] if start <= row.next_run < end else []
    # never before the timer's own next slot (nor before now: the caller's start)
    after = max(start, row.next_run) - _TICK
    until = end - _TICK if row.end_at is None else min(end - _TICK, row.end_at)
    if until <= after:
        return []
    try:
        return rule_of(row).next_slots(after, count, until=until)
    except (ValueError, OverflowError):  # a bad stored rule or the end of the calendar
        return []


def week(schedules: Iterable[CalendarSchedule], zone: str, now: datetime,
         state_of: Callable[[CalendarSchedule], str] | None = None) -> Week:
    """The 7 days from today in ``zone`` with the slots still to come on each.

    Paused and done schedules have none; ``state_of`` names each entry's state (the
    list's status key, say), the schedule's ``state`` without it."""
    tz = parse_zone(zone)
    today = now.astimezone(tz).date()
    rows = list(schedules)
    left = {r.id: None if r.max_runs is None else r.max_runs - r.run_count for r in rows}
    days = []
    for offset in range(DAYS):
        day = today + timedelta(days=offset)
        start = max(now, _midnight(day, zone))
        end = _midnight(day + timedelta(days=1), zone)
        candidates: list[Entry] = []
        count = 0
        capped = False
        for row in rows:
            budget = left[row.id]
            wanted = COUNTED + 1 if budget is None else min(COUNTED + 1, budget)
            # a few first (all a daily rule has), the rest only when there are more: a
            # cron rule computes as many slots as asked, even past the day's end
            found = _slots(row, start, end, min(wanted, SHOWN_PER_SCHEDULE + 1))
            if len(found) == SHOWN_PER_SCHEDULE + 1 < wanted:
                found += _slots(row, found[-1] + _TICK, end, wanted - len(found))
            if len(found) > COUNTED:
                found, capped = found[:COUNTED], True
            if budget is not None:
                left[row.id] = budget - len(found)
            count += len(found)
            title = row.title or row.expose_name
            state = state_of(row) if state_of else row.state
            candidates.extend(Entry(at, at.astimezone(tz), row.id, title, state)
                              for at in found[:SHOWN_PER_SCHEDULE])
        candidates.sort(key=lambda e: (e.at, e.title, e.schedule_id))
        shown = tuple(candidates[:SHOWN_PER_DAY])
        days.append(Day(day, offset == 0, shown, count - len(shown), capped))
    return Week(zone, tuple(days))
