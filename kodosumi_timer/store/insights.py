"""What the operators' Timer page reads from the store: the last day's lateness and
outcomes, what waits now, and the active schedules due within the load window.

Every query is bounded so that the page stays quick on a store of millions of runs:
the run queries look only at the newest :data:`SCAN_ROWS` runs (by id, the primary
key: runs are numbered as they are claimed) and lateness at the newest
:data:`LATENESS_LIMIT` launches among them; the schedules come along the next_run
index, only those due before the window ends. Works on SQLite and PostgreSQL alike.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from kodosumi_timer.load import LoadSchedule
from kodosumi_timer.rules import jitter_offset, rule_of
from kodosumi_timer.runs import RunStatus
from kodosumi_timer.store import Store
from kodosumi_timer.store.tables import RunRow, ScheduleRow

log = logging.getLogger("kodosumi_timer.store")

LATENESS_LIMIT = 20_000  # launches whose lateness is shown
SCAN_ROWS = 200_000  # newest runs the day's figures are read from
SCHEDULE_LIMIT = 50_000  # active schedules due in the window that are expanded
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class RunFigures:
    lateness: list[float]  # seconds, launch sent minus slot plus its jitter offset
    lateness_capped: bool  # LATENESS_LIMIT launches were found: older ones left out
    outcomes: dict[str, int]  # runs of the last day by status
    scanned_all: bool  # the day's runs all lay among the newest SCAN_ROWS (judged by
    # the slot of the oldest of them: runs are numbered about in slot order)


@dataclass(frozen=True)
class Waiting:
    queued: int  # runs claimed or requested and not yet sent (status queued)
    buffered: int  # runs waiting for their schedule's running execution (buffer_one)
    backlog: int  # active schedules due now that no timer has claimed
    oldest_due: datetime | None


async def _floor_id(store: Store) -> int:
    """The lowest run id among the newest SCAN_ROWS (0 on an empty table)."""
    async with store.engine.connect() as conn:
        top = (await conn.execute(select(func.max(RunRow.id)))).scalar_one_or_none()
    return max(0, int(top or 0) - SCAN_ROWS)


async def run_figures(store: Store, now: datetime) -> RunFigures:
    """Lateness of the timer's launches and the outcomes of the runs of the 24 h
    before ``now`` (by slot)."""
    since = now - DAY
    floor = await _floor_id(store)
    late = (select(RunRow.schedule_id, RunRow.slot, RunRow.fired_at, ScheduleRow.jitter)
            .outerjoin(ScheduleRow, ScheduleRow.id == RunRow.schedule_id)
            .where(RunRow.id > floor, RunRow.trigger == "timer",
                   RunRow.fired_at.is_not(None), RunRow.fired_at >= since,
                   RunRow.fired_at <= now)
            .order_by(RunRow.id.desc()).limit(LATENESS_LIMIT))
    outcomes = (select(RunRow.status, func.count())
                .where(RunRow.id > floor, RunRow.slot >= since, RunRow.slot <= now)
                .group_by(RunRow.status))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(late)).all()
        counted = {str(s): int(n) for s, n in await conn.execute(outcomes)}
        cut = None
        if floor:  # the oldest scanned run still of the day: older ones may be too
            cut = (await conn.execute(select(RunRow.slot).where(RunRow.id > floor)
                                      .order_by(RunRow.id).limit(1))).scalar_one_or_none()
    lateness = []
    for schedule_id, slot, fired_at, jitter in rows:
        if fired_at is None:  # filtered out by the query; for the type checker
            continue
        sent_for = slot + jitter_offset(schedule_id, slot, jitter)
        lateness.append(max(0.0, (fired_at - sent_for).total_seconds()))
    return RunFigures(lateness, len(rows) >= LATENESS_LIMIT, counted,
                      cut is None or cut < since)


async def waiting(store: Store, now: datetime) -> Waiting:
    """What waits now: queued and buffered runs (along the status index) and the due
    schedules no timer has claimed yet."""
    query = (select(RunRow.status, func.count())
             .where(RunRow.status.in_([RunStatus.QUEUED.value, RunStatus.BUFFERED.value]))
             .group_by(RunRow.status))
    async with store.engine.connect() as conn:
        counted = {str(s): int(n) for s, n in await conn.execute(query)}
    backlog = await store.count_due_before(now)
    oldest = await store.earliest_next_run() if backlog else None
    return Waiting(counted.get("queued", 0), counted.get("buffered", 0), backlog, oldest)


async def load_schedules(store: Store, until: datetime) -> tuple[list[LoadSchedule], bool]:
    """The active schedules due before ``until`` as the load needs them (the earliest
    SCHEDULE_LIMIT; the flag says whether more were left out). A row whose rule cannot
    be read is left out (the timer pauses it when it comes due)."""
    query = (select(ScheduleRow.id, ScheduleRow.owner, ScheduleRow.title,
                    ScheduleRow.expose_name, ScheduleRow.schedule_type,
                    ScheduleRow.timezone, ScheduleRow.cron_expression,
                    ScheduleRow.every_seconds, ScheduleRow.anchor, ScheduleRow.exclude_dates,
                    ScheduleRow.dst_gap, ScheduleRow.dst_repeat, ScheduleRow.next_run,
                    ScheduleRow.end_at, ScheduleRow.max_runs, ScheduleRow.run_count,
                    ScheduleRow.jitter)
             .where(ScheduleRow.state == "active", ScheduleRow.next_run < until)
             .order_by(ScheduleRow.next_run).limit(SCHEDULE_LIMIT + 1))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    out = []
    for r in rows[:SCHEDULE_LIMIT]:
        try:
            rule = rule_of(r)
        except (ValueError, TypeError):
            log.debug("timer page: schedule %s has an unreadable rule", r.id)
            continue
        left = None if r.max_runs is None else max(0, r.max_runs - r.run_count)
        out.append(LoadSchedule(r.id, r.owner, r.title or r.expose_name, rule, r.next_run,
                                r.end_at, left, r.jitter))
    return out, len(rows) > SCHEDULE_LIMIT
