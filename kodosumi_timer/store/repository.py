"""The repository: every read and write of schedules and runs goes through :class:`Store`.

The store owns concurrency. A slot is claimed with a conditional UPDATE on the
schedule's ``next_run`` (a row count of 1 means "mine"), and the run row for it is
inserted in the same transaction; the unique (schedule, slot, attempt) key backs it.
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from kodosumi_timer.store import migrate
from kodosumi_timer.store.tables import ChangeRow, RunRow, ScheduleRow, UTCDateTime

ACTIVE_RUN_STATES = ("launched", "running")
MISSED_RUN_REASON = "timer was not running at this time"
FINAL_RUN_STATES = ("finished", "error", "skipped", "missed", "rejected", "failed", "unknown")


def new_id() -> str:
    return uuid.uuid4().hex


class DueSchedule(Protocol):
    """What the timer reads of a due schedule: a row of ``DUE_COLUMNS`` (a
    ``ScheduleRow`` has all of it)."""

    id: str
    owner: str
    system: bool
    flow_url: str
    schedule_type: str
    cron_expression: str | None
    timezone: str
    inputs: dict[str, Any]
    catchup: str
    overlap: str
    end_at: datetime | None
    max_runs: int | None
    run_count: int
    next_run: datetime | None
    version: int


@dataclass(frozen=True)
class ScheduleFilter:
    """Filters of the schedule listing; None means "any"."""

    enabled: bool | None = None
    state: str | None = None
    schedule_type: str | None = None
    flow_url: str | None = None
    text: str | None = None
    system: bool | None = None

    def conditions(self) -> list[Any]:
        out: list[Any] = []
        if self.enabled is not None:
            out.append((ScheduleRow.state == "active") if self.enabled
                       else (ScheduleRow.state != "active"))
        if self.state is not None:
            out.append(ScheduleRow.state == self.state)
        if self.schedule_type is not None:
            out.append(ScheduleRow.schedule_type == self.schedule_type)
        if self.flow_url is not None:
            out.append(ScheduleRow.flow_url == self.flow_url)
        if self.system is not None:
            out.append(ScheduleRow.system.is_(self.system))
        if self.text:
            # the text matches literally: % and _ are not wildcards here
            escaped = (self.text.lower().replace("\\", "\\\\").replace("%", "\\%")
                       .replace("_", "\\_"))
            pattern = f"%{escaped}%"
            out.append(or_(func.lower(ScheduleRow.title).like(pattern, escape="\\"),
                           func.lower(ScheduleRow.expose_name).like(pattern, escape="\\"),
                           func.lower(ScheduleRow.flow_url).like(pattern, escape="\\")))
        return out


@dataclass(frozen=True)
class Claim:
    """A slot this timer won. ``run.id`` is None for a batch claim: its run is known by
    its unique key (schedule, slot, attempt)."""

    schedule: DueSchedule
    run: RunRow


@dataclass(frozen=True)
class ClaimRequest:
    """One slot of a due batch to claim, planned by the timer."""

    schedule: DueSchedule
    slot: datetime
    next_run: datetime | None
    end_note: str | None
    missed: Sequence[datetime] = ()


# A launch result to record: (run, status, when, fid, reason)
LaunchResult = tuple[RunRow, str, datetime, "str | None", "str | None"]
# A followed execution's change: (run, status, when, reason)
RunChange = tuple[RunRow, str, datetime, "str | None"]

RUNS = cast(Table, RunRow.__table__)
SCHEDULES = cast(Table, ScheduleRow.__table__)
DUE_COLUMNS = [SCHEDULES.c[name] for name in DueSchedule.__annotations__]

# One conditional UPDATE claims a whole due batch: a row moves on only if its next_run is
# still the one the timer read; RETURNING says which rows are ours. The batch is passed
# as arrays (PostgreSQL) or as JSON (SQLite), so the statement text never changes and is
# prepared once; building a CASE per row cost more than the update itself.
_CLAIM_SET = """next_run = v.new_next, last_run = v.slot, run_count = s.run_count + 1,
    updated = :now, state = CASE WHEN v.ended THEN 'done' ELSE s.state END,
    note = CASE WHEN v.ended THEN v.note ELSE s.note END"""
CLAIM_PG = text(f"""UPDATE schedule AS s SET {_CLAIM_SET}
FROM unnest(CAST(:ids AS varchar[]), CAST(:olds AS timestamptz[]),
            CAST(:news AS timestamptz[]), CAST(:slots AS timestamptz[]),
            CAST(:ended AS boolean[]), CAST(:notes AS text[]))
     AS v(id, old_next, new_next, slot, ended, note)
WHERE s.id = v.id AND s.next_run = v.old_next AND s.state = 'active'
RETURNING s.id""").bindparams(bindparam("now", type_=UTCDateTime))
# SQLite (3.35+): RETURNING names the target's columns bare
CLAIM_SQLITE = text(f"""UPDATE schedule AS s SET {_CLAIM_SET}
FROM (SELECT value ->> 0 AS id, value ->> 1 AS old_next, value ->> 2 AS new_next,
             value ->> 3 AS slot, value ->> 4 AS ended, value ->> 5 AS note
      FROM json_each(:batch)) AS v
WHERE s.id = v.id AND s.next_run = v.old_next AND s.state = 'active'
RETURNING id""").bindparams(bindparam("now", type_=UTCDateTime))


def make_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # the panel and the timer share the file: wait for locks rather than fail
        return create_async_engine(url, connect_args={"timeout": 30})
    return create_async_engine(url, pool_pre_ping=True)


class Store:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.session = async_sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def close(self) -> None:
        await self.engine.dispose()

    # ---- schedules -------------------------------------------------------------

    async def add_schedule(self, row: ScheduleRow) -> ScheduleRow:
        async with self.session.begin() as s:
            s.add(row)
        return row

    async def get_schedule(self, schedule_id: str, owner: str | None = None) -> ScheduleRow | None:
        query = select(ScheduleRow).where(ScheduleRow.id == schedule_id)
        if owner is not None:
            query = query.where(ScheduleRow.owner == owner)
        async with self.session() as s:
            return (await s.execute(query)).scalar_one_or_none()

    async def list_schedules(
        self, owner: str | None, limit: int = 50, offset: int = 0,
        filters: "ScheduleFilter | None" = None,
    ) -> tuple[Sequence[ScheduleRow], int]:
        """Schedules of ``owner`` (None: everyone's), soonest next run first, filtered."""
        conditions: list[Any] = []
        if owner is not None:
            conditions.append(ScheduleRow.owner == owner)
        if filters is not None:
            conditions.extend(filters.conditions())
        query = select(ScheduleRow).where(*conditions)
        count = select(func.count()).select_from(ScheduleRow).where(*conditions)
        # soonest first; schedules without a next run (paused, done) last
        query = query.order_by(
            ScheduleRow.next_run.is_(None), ScheduleRow.next_run, ScheduleRow.created
        ).limit(limit).offset(offset)
        async with self.session() as s:
            rows = (await s.execute(query)).scalars().all()
            total = (await s.execute(count)).scalar_one()
        return rows, total

    async def update_versioned(self, schedule_id: str, owner: str | None, version: int,
                               values: dict[str, Any]) -> ScheduleRow | None:
        """Apply ``values`` if the row still has ``version``; bumps the version.

        Returns the updated row, or None when the row is missing, not the owner's, or
        was changed meanwhile (the caller tells these apart with get_schedule)."""
        conditions = [ScheduleRow.id == schedule_id, ScheduleRow.version == version]
        if owner is not None:
            conditions.append(ScheduleRow.owner == owner)
        async with self.session.begin() as s:
            result = await s.execute(
                update(ScheduleRow).where(*conditions)
                .values(**values, version=ScheduleRow.version + 1))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
        return await self.get_schedule(schedule_id)

    async def count_schedules(self, owner: str) -> int:
        query = select(func.count()).select_from(ScheduleRow).where(ScheduleRow.owner == owner)
        async with self.session() as s:
            return int((await s.execute(query)).scalar_one())

    async def delete_schedule(self, schedule_id: str, owner: str | None = None) -> bool:
        """Delete a schedule and its run history (documented: history goes with it)."""
        query = delete(ScheduleRow).where(ScheduleRow.id == schedule_id)
        if owner is not None:
            query = query.where(ScheduleRow.owner == owner)
        async with self.session.begin() as s:
            result = await s.execute(query)
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            await s.execute(delete(RunRow).where(RunRow.schedule_id == schedule_id))
        return True

    async def update_schedule(self, schedule_id: str, values: dict[str, Any]) -> None:
        async with self.session.begin() as s:
            await s.execute(
                update(ScheduleRow).where(ScheduleRow.id == schedule_id).values(**values)
            )

    # ---- the timer's view ------------------------------------------------------

    async def due(self, until: datetime, limit: int = 100) -> Sequence[DueSchedule]:
        """Active schedules whose next_run is at or before ``until``, soonest first: rows
        of the columns the timer reads (no ORM objects: a third of the time at 100 rows,
        bench/RESULTS.md)."""
        query = (
            select(*DUE_COLUMNS)
            .where(ScheduleRow.next_run <= until, ScheduleRow.state == "active")
            .order_by(ScheduleRow.next_run)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return cast(Sequence[DueSchedule], (await conn.execute(query)).all())

    async def earliest_next_run(self) -> datetime | None:
        query = select(func.min(ScheduleRow.next_run)).where(ScheduleRow.state == "active")
        async with self.session() as s:
            value = (await s.execute(query)).scalar_one_or_none()
        if value is None:
            return None
        # min() bypasses the column type on some dialects: normalise to aware UTC
        column_type = ScheduleRow.__table__.c.next_run.type
        return column_type.process_result_value(value, self.engine.dialect)  # type: ignore[no-any-return]

    async def claim(
        self,
        schedule: DueSchedule,
        slot: datetime,
        now: datetime,
        next_run: datetime | None,
        end_note: str | None,
        missed: Sequence[datetime] = (),
        trigger: str = "timer",
        timer_id: str | None = None,
    ) -> Claim | None:
        """Claim ``schedule``'s slot for launching, or None if another timer got it first.

        One transaction: the schedule moves on (only if its next_run is still the one we
        read), missed slots are recorded, and the run row is inserted in state
        ``unknown`` until the launch result is known.
        """
        values: dict[str, Any] = {
            "next_run": next_run,
            "last_run": slot,
            "run_count": ScheduleRow.run_count + 1,
            "updated": now,
        }
        if next_run is None:
            values["state"] = "done"
            values["note"] = end_note
        try:
            async with self.session.begin() as s:
                if not await self._advance(s, schedule, values):
                    return None
                for missed_slot in missed:
                    s.add(self._run(schedule, missed_slot, "missed", now, timer_id,
                                    reason="timer was not running at this time"))
                run = self._run(schedule, slot, "unknown", now, timer_id, trigger=trigger)
                s.add(run)
        except IntegrityError:
            # the unique (schedule, slot, attempt) key: this slot is recorded already (it
            # was claimed ahead, then the schedule was resumed or re-timed onto it). The
            # transaction was rolled back as a whole; move the schedule past the slot
            # without a second record, so that it neither fires twice nor stalls here.
            moved: dict[str, Any] = {"next_run": next_run, "updated": now}
            if next_run is None:
                moved.update(state="done", note=end_note)
            async with self.session.begin() as s:
                await self._advance(s, schedule, moved)
            return None
        return Claim(schedule=schedule, run=run)

    async def claim_many(self, requests: Sequence[ClaimRequest], now: datetime,
                         timer_id: str | None = None) -> list[Claim]:
        """Claim a batch of slots in one transaction; the slots another timer moved on
        are left out. Falls back to one ``claim`` each if the batch hits the unique key."""
        if not requests:
            return []
        try:
            return await self._claim_batch(requests, now, timer_id)
        except IntegrityError:
            claims = []
            for r in requests:
                claim = await self.claim(r.schedule, r.slot, now, r.next_run, r.end_note,
                                         missed=r.missed, timer_id=timer_id)
                if claim is not None:
                    claims.append(claim)
            return claims

    async def _claim_batch(self, requests: Sequence[ClaimRequest], now: datetime,
                           timer_id: str | None) -> list[Claim]:
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                result = await conn.execute(CLAIM_PG, {
                    "now": now, "ids": [r.schedule.id for r in requests],
                    "olds": [r.schedule.next_run for r in requests],
                    "news": [r.next_run for r in requests],
                    "slots": [r.slot for r in requests],
                    "ended": [r.next_run is None for r in requests],
                    "notes": [r.end_note for r in requests]})
            else:
                dialect = self.engine.dialect
                stamp = SCHEDULES.c.next_run.type.dialect_impl(dialect).bind_processor(dialect)
                assert stamp is not None
                batch = json.dumps([[r.schedule.id, stamp(r.schedule.next_run),
                                     stamp(r.next_run), stamp(r.slot), r.next_run is None,
                                     r.end_note] for r in requests])
                result = await conn.execute(CLAIM_SQLITE, {"now": now, "batch": batch})
            mine = {row[0] for row in result}
            won = [r for r in requests if r.schedule.id in mine]
            if not won:
                return []
            rows: list[dict[str, Any]] = []
            for r in won:
                for missed_slot in r.missed:
                    rows.append(self._run_values(r.schedule, missed_slot, "missed", now,
                                                 timer_id, reason=MISSED_RUN_REASON))
                rows.append(self._run_values(r.schedule, r.slot, "unknown", now, timer_id))
            await conn.execute(insert(RUNS), rows)  # one executemany, no RETURNING
        return [Claim(schedule=r.schedule,
                      run=RunRow(**self._run_values(r.schedule, r.slot, "unknown", now,
                                                    timer_id)))
                for r in won]

    @staticmethod
    def _run_values(schedule: DueSchedule, slot: datetime, status: str, now: datetime,
                    timer_id: str | None, reason: str | None = None) -> dict[str, Any]:
        return dict(schedule_id=schedule.id, owner=schedule.owner, slot=slot, attempt=1,
                    trigger="timer", status=status,
                    fired_at=now if status == "unknown" else None, fid=None, reason=reason,
                    timer_id=timer_id,
                    finished_at=now if status in ("missed", "skipped", "failed") else None)

    async def unlaunched_claims(self, timer_id: str, keys: Sequence[tuple[str, datetime]]
                                ) -> dict[tuple[str, datetime], RunRow]:
        """Of these (schedule, slot) pairs, the runs this timer claimed and has not
        launched yet (``unknown``, no fid)."""
        if not keys:
            return {}
        wanted = set(keys)
        query = select(RunRow).where(
            RunRow.timer_id == timer_id, RunRow.status == "unknown", RunRow.fid.is_(None),
            RunRow.schedule_id.in_({sid for sid, _ in keys}))
        async with self.session() as s:
            rows = (await s.execute(query)).scalars().all()
        return {(r.schedule_id, r.slot): r for r in rows if (r.schedule_id, r.slot) in wanted}

    async def schedules_by_id(self, ids: Sequence[str]) -> dict[str, ScheduleRow]:
        """The current rows of these schedules (missing: deleted), in one query."""
        if not ids:
            return {}
        async with self.session() as s:
            rows = (await s.execute(select(ScheduleRow).where(ScheduleRow.id.in_(ids))))
            return {row.id: row for row in rows.scalars()}

    async def active_schedule_ids(self, schedule_ids: Sequence[str]) -> set[str]:
        """Which of these schedules still have an execution running (``has_active_run``
        for a whole batch)."""
        if not schedule_ids:
            return set()
        query = select(RUNS.c.schedule_id).where(
            RUNS.c.schedule_id.in_(schedule_ids),
            RUNS.c.status.in_((*ACTIVE_RUN_STATES, "queued"))).distinct()
        async with self.engine.connect() as conn:
            return {row[0] for row in await conn.execute(query)}

    async def record_launches(self, results: Sequence[LaunchResult]) -> None:
        """``record_launch`` for many runs in one transaction; runs are found by their
        unique key, so batch claims (whose run has no id yet) are recorded too."""
        if not results:
            return
        run_rows, schedule_rows = [], []
        for run, status, at, fid, reason in results:
            done = status not in ACTIVE_RUN_STATES
            run_rows.append({"b_schedule": run.schedule_id, "b_slot": run.slot,
                             "b_attempt": run.attempt, "b_status": status, "b_fid": fid,
                             "b_reason": reason, "b_at": at,
                             "b_finished": at if done else None})
            schedule_rows.append({"b_schedule": run.schedule_id, "b_fid": fid,
                                  "b_status": status, "b_at": at})
        async with self.engine.begin() as conn:
            await conn.execute(
                update(RUNS).where(RUNS.c.schedule_id == bindparam("b_schedule"),
                                   RUNS.c.slot == bindparam("b_slot"),
                                   RUNS.c.attempt == bindparam("b_attempt")).values(
                    status=bindparam("b_status"), fid=bindparam("b_fid"),
                    reason=bindparam("b_reason"), fired_at=bindparam("b_at"),
                    finished_at=bindparam("b_finished")), run_rows)
            await conn.execute(
                update(SCHEDULES).where(SCHEDULES.c.id == bindparam("b_schedule")).values(
                    last_fid=bindparam("b_fid"), last_status=bindparam("b_status"),
                    updated=bindparam("b_at")), schedule_rows)
        for run, status, at, fid, reason in results:
            run.status, run.fid, run.reason, run.fired_at = status, fid, reason, at

    async def finish_runs(self, changes: Sequence[RunChange]) -> None:
        """``finish_run`` for many runs in one transaction."""
        if not changes:
            return
        run_rows, schedule_rows = [], []
        for run, status, at, reason in changes:
            done = status not in ACTIVE_RUN_STATES
            run_rows.append({"b_id": run.id, "b_status": status,
                             "b_reason": reason if reason is not None else run.reason,
                             "b_finished": at if done else run.finished_at})
            schedule_rows.append({"b_schedule": run.schedule_id, "b_fid": run.fid,
                                  "b_status": status})
        async with self.engine.begin() as conn:
            await conn.execute(
                update(RUNS).where(RUNS.c.id == bindparam("b_id")).values(
                    status=bindparam("b_status"), reason=bindparam("b_reason"),
                    finished_at=bindparam("b_finished")), run_rows)
            await conn.execute(
                update(SCHEDULES).where(
                    SCHEDULES.c.id == bindparam("b_schedule"),
                    or_(SCHEDULES.c.last_fid == bindparam("b_fid"),
                        SCHEDULES.c.last_fid.is_(None))).values(
                    last_status=bindparam("b_status")), schedule_rows)

    async def skip_slots(
        self,
        schedule: DueSchedule,
        records: Sequence[tuple[datetime, str, str]],
        now: datetime,
        next_run: datetime | None,
        end_note: str | None = None,
        pause: bool = False,
        timer_id: str | None = None,
    ) -> bool:
        """Record slots as (slot, status, reason) without launching, and move the
        schedule on (only if nobody else did)."""
        values: dict[str, Any] = {"next_run": next_run, "updated": now}
        if pause:
            values.update(state="paused", next_run=None, note=end_note)
        elif next_run is None:
            values.update(state="done", note=end_note)
        if records:
            values["last_status"] = records[-1][1]
        async with self.session.begin() as s:
            if not await self._advance(s, schedule, values):
                return False
            for slot, status, reason in records:
                s.add(self._run(schedule, slot, status, now, timer_id, reason=reason))
        return True

    @staticmethod
    async def _advance(s: AsyncSession, schedule: DueSchedule, values: dict[str, Any]) -> bool:
        """Move the schedule on, only if its next_run is still the one the timer read
        (the exactly-once guard shared by claiming and skipping slots)."""
        result = await s.execute(
            update(ScheduleRow)
            .where(ScheduleRow.id == schedule.id, ScheduleRow.next_run == schedule.next_run,
                   ScheduleRow.state == "active")
            .values(**values))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    @staticmethod
    def _run(schedule: DueSchedule, slot: datetime, status: str, now: datetime,
             timer_id: str | None, trigger: str = "timer", reason: str | None = None) -> RunRow:
        return RunRow(
            schedule_id=schedule.id, owner=schedule.owner, slot=slot, attempt=1,
            trigger=trigger, status=status, fired_at=now if status == "unknown" else None,
            reason=reason, timer_id=timer_id,
            finished_at=now if status in ("missed", "skipped", "failed") else None,
        )

    async def record_launch(
        self, run: RunRow, status: str, now: datetime, fid: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Store the launch result of a claimed run and mirror it on the schedule."""
        run_values: dict[str, Any] = {"status": status, "fid": fid, "reason": reason,
                                      "fired_at": now}
        if status not in ACTIVE_RUN_STATES:
            run_values["finished_at"] = now
        async with self.session.begin() as s:
            await s.execute(update(RunRow).where(RunRow.id == run.id).values(**run_values))
            await s.execute(
                update(ScheduleRow)
                .where(ScheduleRow.id == run.schedule_id)
                .values(last_fid=fid, last_status=status, updated=now)
            )
        for key, value in run_values.items():
            setattr(run, key, value)

    async def pause(self, schedule_id: str, note: str, now: datetime) -> None:
        await self.update_schedule(
            schedule_id, {"state": "paused", "next_run": None, "note": note, "updated": now}
        )

    async def has_active_run(self, schedule_id: str) -> bool:
        """True while an execution launched for this schedule has not ended."""
        query = select(RunRow.id).where(
            RunRow.schedule_id == schedule_id,
            RunRow.status.in_((*ACTIVE_RUN_STATES, "queued"))).limit(1)
        async with self.session() as s:
            return (await s.execute(query)).first() is not None

    async def queue_manual_run(self, schedule: ScheduleRow, now: datetime) -> RunRow:
        """A "run now" request; the timer claims and launches it."""
        run = RunRow(schedule_id=schedule.id, owner=schedule.owner, slot=now, attempt=1,
                     trigger="manual", status="queued")
        async with self.session.begin() as s:
            s.add(run)
        return run

    async def queued_runs(self, limit: int = 100) -> Sequence[RunRow]:
        query = select(RunRow).where(RunRow.status == "queued").order_by(RunRow.id).limit(limit)
        async with self.session() as s:
            return (await s.execute(query)).scalars().all()

    async def claim_queued(self, run: RunRow, now: datetime, timer_id: str | None,
                           count_run: bool = True) -> bool:
        """Take a queued manual run for launching (exactly one timer wins)."""
        async with self.session.begin() as s:
            result = await s.execute(
                update(RunRow).where(RunRow.id == run.id, RunRow.status == "queued")
                .values(status="unknown", fired_at=now, timer_id=timer_id))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            if count_run:
                await s.execute(
                    update(ScheduleRow).where(ScheduleRow.id == run.schedule_id)
                    .values(last_run=now, run_count=ScheduleRow.run_count + 1, updated=now))
        run.status, run.fired_at, run.timer_id = "unknown", now, timer_id
        return True

    async def active_runs(self, limit: int = 200, after: int = 0) -> Sequence[RunRow]:
        """Runs whose execution has not ended, by id from ``after`` on (a page of them:
        the follow loop walks them round-robin)."""
        query = (
            select(RunRow).where(RunRow.status.in_(ACTIVE_RUN_STATES), RunRow.id > after)
            .order_by(RunRow.id).limit(limit)
        )
        async with self.session() as s:
            return (await s.execute(query)).scalars().all()

    async def finish_run(self, run: RunRow, status: str, now: datetime,
                         reason: str | None = None) -> None:
        """Record an execution's later status; the schedule mirrors its latest run."""
        values: dict[str, Any] = {"status": status}
        if reason is not None:
            values["reason"] = reason
        if status not in ACTIVE_RUN_STATES:
            values["finished_at"] = now
        async with self.session.begin() as s:
            await s.execute(update(RunRow).where(RunRow.id == run.id).values(**values))
            await s.execute(
                update(ScheduleRow)
                .where(ScheduleRow.id == run.schedule_id,
                       or_(ScheduleRow.last_fid == run.fid, ScheduleRow.last_fid.is_(None)))
                .values(last_status=status)
            )

    async def runs(self, schedule_id: str, limit: int = 50, offset: int = 0
                   ) -> tuple[Sequence[RunRow], int]:
        query = (
            select(RunRow).where(RunRow.schedule_id == schedule_id)
            .order_by(RunRow.slot.desc(), RunRow.id.desc()).limit(limit).offset(offset)
        )
        count = select(func.count()).select_from(RunRow).where(RunRow.schedule_id == schedule_id)
        async with self.session() as s:
            rows = (await s.execute(query)).scalars().all()
            total = (await s.execute(count)).scalar_one()
        return rows, total

    async def count_due_before(self, until: datetime) -> int:
        """Active schedules due at or before ``until`` (overdue ones included)."""
        query = select(func.count()).select_from(ScheduleRow).where(
            ScheduleRow.next_run <= until, ScheduleRow.state == "active")
        async with self.session() as s:
            return int((await s.execute(query)).scalar_one())


    # ---- change log ------------------------------------------------------------

    async def add_schedule_logged(self, row: ScheduleRow, change: ChangeRow) -> ScheduleRow:
        """``add_schedule`` and its first change-log entry, in one transaction."""
        async with self.session.begin() as s:
            s.add(row)
            s.add(change)
        return row

    async def update_logged(self, schedule_id: str, version: int, values: dict[str, Any],
                            change: ChangeRow) -> ScheduleRow | None:
        """``update_versioned`` (no owner filter) and the change that says so, in one
        transaction; None when the row is missing or its version moved on."""
        async with self.session.begin() as s:
            result = await s.execute(
                update(ScheduleRow)
                .where(ScheduleRow.id == schedule_id, ScheduleRow.version == version)
                .values(**values, version=ScheduleRow.version + 1))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            s.add(change)
        return await self.get_schedule(schedule_id)

    async def log_change(self, change: ChangeRow) -> None:
        async with self.session.begin() as s:
            s.add(change)

    async def changes(self, schedule_id: str, limit: int = 50, offset: int = 0
                      ) -> tuple[Sequence[ChangeRow], int]:
        """A schedule's change log, newest first."""
        query = (select(ChangeRow).where(ChangeRow.schedule_id == schedule_id)
                 .order_by(ChangeRow.id.desc()).limit(limit).offset(offset))
        count = (select(func.count()).select_from(ChangeRow)
                 .where(ChangeRow.schedule_id == schedule_id))
        async with self.session() as s:
            rows = (await s.execute(query)).scalars().all()
            total = (await s.execute(count)).scalar_one()
        return rows, total

    async def queue_manual_run_logged(self, schedule: ScheduleRow, now: datetime,
                                      change: ChangeRow) -> RunRow | None:
        """``queue_manual_run`` and its change-log entry; None when a run of this schedule
        is recorded for this very instant already (the unique slot key)."""
        run = RunRow(schedule_id=schedule.id, owner=schedule.owner, slot=now, attempt=1,
                     trigger="manual", status="queued")
        try:
            async with self.session.begin() as s:
                s.add(run)
                s.add(change)
        except IntegrityError:
            return None
        return run

    async def delete_schedule_logged(self, schedule_id: str) -> bool:
        """Delete a schedule with its run history and its change log."""
        async with self.session.begin() as s:
            result = await s.execute(delete(ScheduleRow).where(ScheduleRow.id == schedule_id))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            await s.execute(delete(RunRow).where(RunRow.schedule_id == schedule_id))
            await s.execute(delete(ChangeRow).where(ChangeRow.schedule_id == schedule_id))
        return True

async def open_store(url: str, migrate_schema: bool = True) -> Store:
    """Open the store at ``url`` and apply pending migrations (idempotent)."""
    engine = make_engine(url)
    if migrate_schema:
        await migrate.upgrade(engine)
    return Store(engine)
