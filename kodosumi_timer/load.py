"""The coming load: how many slots fall in each minute of the next hours, across the
active schedules, and who is behind the busiest minutes (pure: ``now`` is an argument).

Each schedule's slots come from its own rule (:mod:`.rules`, the code the timer fires
by), from its ``next_run`` on, minus its jitter-free end (``end_at``, the runs left
under ``max_runs``); a slot is counted in the minute it is sent (slot + its jitter
offset), so a herd spread by jitter shows spread. The work is bounded: at most
``cap`` slots per schedule (a schedule firing more often than that in the window is
counted up to the cap and listed as capped), and identical rules are expanded once.
"""

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kodosumi_timer.rules import Rule, jitter_offset

CAP = 1440  # slots per schedule: every minute of a day
WINDOW = timedelta(hours=24)
BUSIEST = 5  # minutes listed under the chart
NAMED = 8  # schedules named per busy minute


@dataclass(frozen=True)
class LoadSchedule:
    """What the load needs of one active schedule."""

    id: str
    owner: str
    title: str
    rule: Rule
    next_run: datetime
    end_at: datetime | None = None
    runs_left: int | None = None  # under max_runs; None: no limit
    jitter: int | None = None


@dataclass(frozen=True)
class BusyMinute:
    at: datetime  # the minute's start
    slots: int
    owners: int  # distinct users behind it
    schedules: list[tuple[LoadSchedule, int]]  # the biggest contributors, with their slots
    more: int  # schedules behind it not named


@dataclass
class ComingLoad:
    start: datetime  # minute 0 (now, to the minute); overdue slots count here
    counts: list[int]
    busiest: list[BusyMinute] = field(default_factory=list)
    capped: list[LoadSchedule] = field(default_factory=list)
    schedules: int = 0  # schedules with a slot in the window

    @property
    def total(self) -> int:
        return sum(self.counts)


def _key(rule: Rule) -> tuple[object, ...]:
    return (rule.schedule_type, rule.timezone, rule.cron_expression, rule.every,
            rule.anchor, rule.exclude_dates, rule.dst)


def _slots(s: LoadSchedule, until: datetime, cap: int,
           memo: dict[tuple[object, ...], list[datetime]], now: datetime) -> list[datetime]:
    """The schedule's slots from its next_run to ``until`` (at most ``cap + 1``, to tell
    a capped schedule). An overdue schedule fires once now (catch-up), then its slots
    after now."""
    if s.rule.schedule_type == "once":
        return [s.next_run]
    key = _key(s.rule)
    if s.next_run >= now:  # the common case: expand the rule once, from the window start
        if key not in memo:
            memo[key] = s.rule.next_slots(now - timedelta(microseconds=1), cap + 1,
                                          until=until)
        found = [t for t in memo[key] if t >= s.next_run]
        if len(memo[key]) > cap and len(found) <= cap:
            # the shared expansion stopped early; this schedule's own tail is needed
            found = s.rule.next_slots(s.next_run - timedelta(microseconds=1), cap + 1,
                                      until=until)
    else:  # overdue: its next_run, then the rule's slots after it
        found = [s.next_run, *s.rule.next_slots(now, cap, until=until)]
    return found


def coming_load(schedules: Sequence[LoadSchedule], now: datetime, *,
                window: timedelta = WINDOW, cap: int = CAP,
                busiest: int = BUSIEST) -> ComingLoad:
    """Slots per minute from now (to the minute) over ``window``."""
    start = now.replace(second=0, microsecond=0)
    minutes = int(window.total_seconds() // 60)
    until = start + window
    counts = [0] * minutes
    behind: dict[int, Counter[int]] = defaultdict(Counter)
    memo: dict[tuple[object, ...], list[datetime]] = {}
    load = ComingLoad(start, counts)
    for index, s in enumerate(schedules):
        if s.next_run >= until:
            continue
        slots = _slots(s, until, cap, memo, now)
        if s.end_at is not None:
            slots = [t for t in slots if t <= s.end_at]
        if s.runs_left is not None:
            slots = slots[:max(0, s.runs_left)]
        if len(slots) > cap:
            load.capped.append(s)
            slots = slots[:cap]
        placed = False
        for slot in slots:
            sent = slot + jitter_offset(s.id, slot, s.jitter)
            minute = max(0, int((sent - start).total_seconds() // 60))
            if minute < minutes:
                counts[minute] += 1
                behind[minute][index] += 1
                placed = True
        load.schedules += placed
    top = sorted((i for i in range(minutes) if counts[i]), key=lambda i: (-counts[i], i))
    for i in top[:busiest]:
        who = behind[i].most_common()
        load.busiest.append(BusyMinute(
            at=start + timedelta(minutes=i), slots=counts[i],
            owners=len({schedules[j].owner for j in behind[i]}),
            schedules=[(schedules[j], n) for j, n in who[:NAMED]],
            more=max(0, len(who) - NAMED)))
    return load
