"""Pure decisions of the timer: what one due schedule must do at ``now``.

No clock, no I/O: the timer loop hands in the schedule's facts and ``now`` and
carries out the returned plan. Catch-up, end conditions and retry backoff live
here so they can be tested with plain values.
"""

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from kodosumi_timer.cron import DEBIAN, DstPolicy
from kodosumi_timer.rules import Rule

# at most this many missed slots of one catch-up are recorded one by one
MAX_MISSED_RECORDED = 500


@dataclass(frozen=True)
class Due:
    """The facts of one schedule the plan is made from."""

    schedule_type: str  # once | cron
    next_run: datetime
    cron_expression: str | None = None
    timezone: str = "UTC"
    catchup: str = "once"  # once | skip
    catchup_window: int = 60  # seconds a slot may be late and still be on time
    end_at: datetime | None = None
    max_runs: int | None = None
    run_count: int = 0
    every: int | None = None
    anchor: datetime | None = None
    exclude_dates: frozenset[date] = frozenset()
    dst: DstPolicy = DEBIAN

    @property
    def rule(self) -> Rule:
        return Rule(self.schedule_type, self.timezone, self.cron_expression, self.every,
                    self.anchor, self.exclude_dates, self.dst)


@dataclass(frozen=True)
class Plan:
    """What to do: fire ``fire`` (if any), record ``missed`` slots, move to ``next_run``.

    ``next_run`` None means the schedule ends; ``end_note`` says why.
    """

    fire: datetime | None
    missed: list[datetime] = field(default_factory=list)
    # slots after the last of the first MAX_MISSED_RECORDED were missed too, uncounted
    missed_more: bool = False
    next_run: datetime | None = None
    end_note: str | None = None


def _next_after(due: Due, after: datetime) -> datetime | None:
    found = due.rule.next_slots(after, 1)
    return found[0] if found else None


def _end(due: Due, nxt: datetime | None, fired: int) -> tuple[datetime | None, str | None]:
    if due.schedule_type == "once":
        return None, "ran once"
    if due.max_runs is not None and due.run_count + fired >= due.max_runs:
        return None, f"reached max_runs ({due.max_runs})"
    if nxt is None:
        return None, "the rule has no further fire time"
    if due.end_at is not None and nxt > due.end_at:
        return None, f"end_at {due.end_at.isoformat()} reached"
    return nxt, None


def plan(due: Due, now: datetime) -> Plan:
    """Plan the handling of a schedule whose ``next_run`` is at or before ``now``."""
    if due.next_run > now:
        raise ValueError("plan() called for a schedule that is not due")
    if due.end_at is not None and due.next_run > due.end_at:
        return Plan(fire=None, next_run=None, end_note=f"end_at {due.end_at.isoformat()} reached")
    until = now if due.end_at is None else min(now, due.end_at)
    # the slots from next_run up to now, oldest first: after a long outage the first
    # ones and the latest, without walking every slot between
    slots = [due.next_run,
             *due.rule.next_slots(due.next_run, MAX_MISSED_RECORDED - 1, until=until)]
    more = False
    if len(slots) == MAX_MISSED_RECORDED:
        latest = due.rule.latest_slot(slots[-1], until)
        if latest is not None:
            slots.append(latest)
            more = True
    latest = slots[-1]
    if too_late(latest, now, due.catchup, due.catchup_window):
        fire = None
        missed = slots
    else:
        fire = latest
        missed = slots[:-1]
    nxt = _next_after(due, now)
    nxt, note = _end(due, nxt, 1 if fire is not None else 0)
    return Plan(fire=fire, missed=missed, missed_more=more, next_run=nxt, end_note=note)


def too_late(slot: datetime, now: datetime, catchup: str, window: int) -> bool:
    """Whether a slot sent at ``now`` is missed rather than run: later than its
    schedule's ``catchup_window`` with ``catchup=skip`` (with ``catchup=once`` a late
    slot still runs, once)."""
    return catchup == "skip" and now - slot > timedelta(seconds=window)


def retry_delay(attempt: int, base: float = 0.5, cap: float = 8.0,
                rng: random.Random | None = None) -> float:
    """Seconds to wait before launch attempt ``attempt + 1``: exponential, full jitter."""
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)
