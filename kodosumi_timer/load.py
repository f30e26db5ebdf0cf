"""The coming load: how many slots fall in each minute of the next hours, across the
active schedules, and who is behind the busiest minutes (pure: ``now`` is an argument).

Each schedule's slots come from its own rule (:mod:`.rules`, the code the timer fires
by), from its ``next_run`` on, minus its jitter-free end (``end_at``, the runs left
under ``max_runs``); a slot is counted in the minute it is sent (slot + its jitter
offset), so a herd spread by jitter shows spread. The work is bounded: at most
``cap`` slots per schedule (a schedule firing more often than that in the window is
counted up to the cap and listed as capped), and identical rules are expanded once.
"""

import hashlib
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kodosumi_timer.rules import Rule

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


@dataclass
class _Expansion:
    """One rule's slots in the window, shared by every schedule with that rule: the
    slots, their seconds after the window's start and their ISO texts (what jitter
    offsets are hashed from), computed once."""

    slots: list[datetime]
    seconds: list[float]
    texts: list[str]
    capped: bool


def _expand(rule: Rule, now: datetime, until: datetime, start: datetime,
            cap: int) -> _Expansion:
    slots = rule.next_slots(now - timedelta(microseconds=1), cap + 1, until=until)
    capped = len(slots) > cap
    slots = slots[:cap]
    return _Expansion(slots, [(t - start).total_seconds() for t in slots],
                      [t.isoformat() for t in slots], capped)


def _jitter_seconds(schedule_id: str, text: str, jitter: int) -> float:
    """:func:`.rules.jitter_offset` in seconds, from the slot's ISO text already made
    (the same hash: a test holds them equal)."""
    digest = hashlib.sha256(f"{schedule_id}|{text}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") % (jitter * 1000)) / 1000


def _minutes(s: LoadSchedule, now: datetime, until: datetime, start: datetime, cap: int,
             memo: dict[tuple[object, ...], _Expansion]) -> tuple[list[int], bool]:
    """The minutes the schedule's slots are sent in, and whether it was capped. An
    overdue schedule fires once now (catch-up), then its slots after now."""
    if s.rule.schedule_type == "once":
        single = (s.next_run - start).total_seconds()
        shared = _Expansion([s.next_run], [single], [s.next_run.isoformat()], False)
        first = 0
    else:
        key = _key(s.rule)
        if key not in memo:
            memo[key] = _expand(s.rule, now, until, start, cap)
        shared = memo[key]
        first = bisect_left(shared.slots, s.next_run)
    slots, seconds, texts = shared.slots[first:], shared.seconds[first:], shared.texts[first:]
    capped = shared.capped
    if s.next_run < now:
        slots = [s.next_run, *slots[:cap - 1]]
        seconds = [0.0, *seconds[:cap - 1]]
        texts = [s.next_run.isoformat(), *texts[:cap - 1]]
    keep = len(slots)
    if s.end_at is not None:
        keep = min(keep, bisect_right(slots, s.end_at))
    if s.runs_left is not None:
        keep = min(keep, max(0, s.runs_left))
    if keep < len(slots):
        seconds, texts, capped = seconds[:keep], texts[:keep], False
    if s.jitter:
        jitter = s.jitter
        return [max(0, int((sec + _jitter_seconds(s.id, text, jitter)) // 60))
                for sec, text in zip(seconds, texts, strict=True)], capped
    return [max(0, int(sec // 60)) for sec in seconds], capped


def coming_load(schedules: Sequence[LoadSchedule], now: datetime, *,
                window: timedelta = WINDOW, cap: int = CAP,
                busiest: int = BUSIEST) -> ComingLoad:
    """Slots per minute from now (to the minute) over ``window``."""
    start = now.replace(second=0, microsecond=0)
    size = int(window.total_seconds() // 60)
    until = start + window
    memo: dict[tuple[object, ...], _Expansion] = {}
    tally: Counter[int] = Counter()
    placed: list[tuple[int, list[int]]] = []  # (schedule index, its minutes)
    load = ComingLoad(start, [])
    for index, s in enumerate(schedules):
        if s.next_run >= until:
            continue
        minutes, capped = _minutes(s, now, until, start, cap, memo)
        minutes = [m for m in minutes if m < size] if minutes and minutes[-1] >= size \
            else minutes
        if capped:
            load.capped.append(s)
        if minutes:
            tally.update(minutes)
            placed.append((index, minutes))
    load.counts = [tally.get(i, 0) for i in range(size)]
    load.schedules = len(placed)
    top = sorted(tally, key=lambda i: (-tally[i], i))[:busiest]
    behind: dict[int, Counter[int]] = {i: Counter() for i in top}
    wanted = set(top)
    for index, minutes in placed:
        for m in wanted.intersection(minutes):
            behind[m][index] = minutes.count(m)
    for i in top:
        who = behind[i].most_common()
        load.busiest.append(BusyMinute(
            at=start + timedelta(minutes=i), slots=tally[i],
            owners=len({schedules[j].owner for j in behind[i]}),
            schedules=[(schedules[j], n) for j, n in who[:NAMED]],
            more=max(0, len(who) - NAMED)))
    return load
