"""The repository: every read and write of schedules and runs goes through :class:`Store`.

The store owns concurrency. A slot is claimed with a conditional UPDATE on the
schedule's ``next_run`` (a row count of 1 means "mine"; on PostgreSQL rows another
timer holds are skipped, ``FOR UPDATE SKIP LOCKED``), and the run row for it is
inserted in the same transaction, ``queued`` under a lease; the unique (schedule,
slot, attempt) key backs it. From then on a run belongs to the timer named in its
``timer_id``: every later change of it is conditional on that, so two timers never
both send it.
"""

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.elements import ColumnElement

from kodosumi_timer import reasons
from kodosumi_timer.runs import ACTIVE, FAILING, PENDING, RunStatus
from kodosumi_timer.store.due import COLUMNS as DUE_NAMES
from kodosumi_timer.store.due import BadRow, DueSchedule, decode
from kodosumi_timer.store.history import HistoryRows
from kodosumi_timer.store.migrate import upgrade
from kodosumi_timer.store.notifications import NotificationStore
from kodosumi_timer.store.pinging import ping_when_idle
from kodosumi_timer.store.system_rows import SystemRows
from kodosumi_timer.store.tables import ChangeRow, RunRow, ScheduleRow, UTCDateTime
from kodosumi_timer.store.user_defaults import UserDefaults

ACTIVE_RUN_STATES = tuple(ACTIVE)
# a run of these ended the moment it was recorded
_ENDED_AT_RECORD = (RunStatus.MISSED, RunStatus.SKIPPED, RunStatus.FAILED, RunStatus.REJECTED,
                    RunStatus.UNKNOWN)


def new_id() -> str:
    return uuid.uuid4().hex


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
    """A run this timer holds: its schedule as read when it was claimed, and the run."""

    schedule: DueSchedule
    run: RunRow


@dataclass(frozen=True)
class ClaimRequest:
    """One slot of a due batch to claim, planned by the timer."""

    schedule: DueSchedule
    slot: datetime
    next_run: datetime | None
    end_note: str | None
    missed: Sequence[tuple[datetime, str]] = ()  # slots before it, each with its reason


@dataclass
class LaunchResult:
    """What became of a launch: recorded on the run (only while this timer holds it)
    and mirrored on its schedule."""

    run: RunRow
    status: str
    at: datetime
    fid: str | None = None
    reason: str | None = None


@dataclass
class RunChange:
    """A followed execution's new status."""

    run: RunRow
    status: str
    at: datetime
    reason: str | None = None


RUNS = cast(Table, RunRow.__table__)
SCHEDULES = cast(Table, ScheduleRow.__table__)

# a schedule's count of runs in a row that ended failing (issue 13's
# pause_after_failures): up by one for each, back to 0 on a finished one
_FAILURES_AFTER = case(
    # (no IN: executemany takes no expanding parameters)
    (or_(*(bindparam("b_status") == status.value for status in FAILING)),
     SCHEDULES.c.failures_in_row + 1),
    (bindparam("b_status") == RunStatus.FINISHED.value, 0),
    else_=SCHEDULES.c.failures_in_row)
# raw values, decoded row by row (kodosumi_timer.store.due): one garbage value must not
# fail the whole due batch
RAW_DUE_COLUMNS = [type_coerce(SCHEDULES.c[name], String).label(name) for name in DUE_NAMES]

# One conditional UPDATE claims a whole due batch: a row moves on only if its next_run is
# still the one the timer read; RETURNING says which rows are ours. The batch is passed
# as arrays (PostgreSQL) or as JSON (SQLite), so the statement text never changes and is
# prepared once; building a CASE per row cost more than the update itself.
_CLAIM_SET = """next_run = v.new_next, last_run = v.slot, run_count = s.run_count + 1,
    updated = :now, state = CASE WHEN v.ended THEN 'done' ELSE s.state END,
    note = CASE WHEN v.ended THEN v.note ELSE s.note END, last_status = 'queued'"""
# PostgreSQL: the rows are locked in id order and rows another timer holds are skipped
# (two timers sharing a burst neither wait on nor deadlock with each other)
CLAIM_PG = text(f"""WITH v AS (
  SELECT * FROM unnest(CAST(:ids AS varchar[]), CAST(:olds AS timestamptz[]),
                       CAST(:news AS timestamptz[]), CAST(:slots AS timestamptz[]),
                       CAST(:ended AS boolean[]), CAST(:notes AS text[]))
         AS v(id, old_next, new_next, slot, ended, note)),
mine AS (
  SELECT s.id FROM schedule AS s JOIN v ON s.id = v.id
  WHERE s.next_run = v.old_next AND s.state = 'active'
  ORDER BY s.id FOR UPDATE OF s SKIP LOCKED)
UPDATE schedule AS s SET {_CLAIM_SET}
FROM v WHERE s.id = v.id AND s.id IN (SELECT id FROM mine)
RETURNING s.id""").bindparams(bindparam("now", type_=UTCDateTime))
# SQLite (3.35+): RETURNING names the target's columns bare
CLAIM_SQLITE = text(f"""UPDATE schedule AS s SET {_CLAIM_SET}
FROM (SELECT value ->> 0 AS id, value ->> 1 AS old_next, value ->> 2 AS new_next,
             value ->> 3 AS slot, value ->> 4 AS ended, value ->> 5 AS note
      FROM json_each(:batch)) AS v
WHERE s.id = v.id AND s.state = 'active'
  AND strftime('%Y-%m-%d %H:%M:%f', s.next_run) = strftime('%Y-%m-%d %H:%M:%f', v.old_next)
RETURNING id""").bindparams(bindparam("now", type_=UTCDateTime))
# (SQLite keeps a time as the text it was given: compared as instants, to the
# millisecond, a next_run written without microseconds still matches the one read)


def make_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # the panel and the timer share the file: wait for locks rather than fail
        return create_async_engine(url, connect_args={"timeout": 30})
    engine = create_async_engine(url)
    ping_when_idle(engine)
    return engine


class Store(SystemRows, NotificationStore, HistoryRows, UserDefaults):
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

    # ---- the timer's view: due schedules and claims ---------------------------

    async def due(self, until: datetime, limit: int = 100) -> list[DueSchedule | BadRow]:
        """Active schedules whose next_run is at or before ``until``, soonest first,
        decoded row by row: a row that cannot be run is a BadRow, not an error."""
        query = (
            select(*RAW_DUE_COLUMNS)
            .where(ScheduleRow.next_run <= until, ScheduleRow.state == "active")
            .order_by(ScheduleRow.next_run)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [decode(row) for row in await conn.execute(query)]

    async def due_by_id(self, ids: Iterable[str]) -> dict[str, DueSchedule | BadRow]:
        """These schedules as the timer reads them (missing: deleted), in one query."""
        wanted = list(set(ids))
        if not wanted:
            return {}
        query = select(*RAW_DUE_COLUMNS).where(SCHEDULES.c.id.in_(wanted))
        async with self.engine.connect() as conn:
            return {str(row.id): decode(row) for row in await conn.execute(query)}

    async def earliest_next_run(self) -> datetime | None:
        query = select(func.min(ScheduleRow.next_run)).where(ScheduleRow.state == "active")
        async with self.session() as s:
            value = (await s.execute(query)).scalar_one_or_none()
        if value is None:
            return None
        # min() bypasses the column type on some dialects: normalise to aware UTC
        column_type = ScheduleRow.__table__.c.next_run.type
        try:
            return column_type.process_result_value(  # type: ignore[attr-defined, no-any-return]
                value if not isinstance(value, str) else datetime.fromisoformat(value),
                self.engine.dialect)
        except ValueError:  # garbage in a next_run: the due query decodes and pauses it
            return None

    async def claim(
        self,
        schedule: DueSchedule,
        slot: datetime,
        now: datetime,
        next_run: datetime | None,
        end_note: str | None,
        missed: Sequence[tuple[datetime, str]] = (),
        trigger: str = "timer",
        timer_id: str | None = None,
        lease_until: datetime | None = None,
    ) -> Claim | None:
        """Claim ``schedule``'s slot for launching, or None if another timer got it first.

        One transaction: the schedule moves on (only if its next_run is still the one we
        read), missed slots are recorded, and the run row is inserted ``queued``, held
        by ``timer_id`` until ``lease_until``.
        """
        values: dict[str, Any] = {
            "next_run": next_run,
            "last_run": slot,
            "run_count": ScheduleRow.run_count + 1,
            "last_status": RunStatus.QUEUED.value,
            "updated": now,
        }
        if next_run is None:
            values["state"] = "done"
            values["note"] = end_note
        try:
            async with self.session.begin() as s:
                if not await self._advance(s, schedule, values):
                    return None
                for missed_slot, why in missed:
                    s.add(RunRow(**self._run_values(schedule, missed_slot, RunStatus.MISSED, now,
                                                    timer_id, reason=why)))
                run = RunRow(**self._run_values(schedule, slot, "queued", now, timer_id,
                                                trigger=trigger, lease_until=lease_until))
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
                         timer_id: str | None = None,
                         lease_until: datetime | None = None) -> list[Claim]:
        """Claim a batch of slots in one transaction; the slots another timer moved on
        (or holds) are left out. Falls back to one ``claim`` each if the batch hits the
        unique key."""
        if not requests:
            return []
        try:
            return await self._claim_batch(requests, now, timer_id, lease_until)
        except IntegrityError:
            claims = []
            for r in requests:
                claim = await self.claim(r.schedule, r.slot, now, r.next_run, r.end_note,
                                         missed=r.missed, timer_id=timer_id,
                                         lease_until=lease_until)
                if claim is not None:
                    claims.append(claim)
            return claims

    async def _claim_batch(self, requests: Sequence[ClaimRequest], now: datetime,
                           timer_id: str | None, lease_until: datetime | None) -> list[Claim]:
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
            missed_rows = [self._run_values(r.schedule, slot, RunStatus.MISSED, now, timer_id,
                                            reason=why)
                           for r in won for slot, why in r.missed]
            if missed_rows:
                await conn.execute(insert(RUNS), missed_rows)
            rows = [self._run_values(r.schedule, r.slot, "queued", now, timer_id,
                                     lease_until=lease_until) for r in won]
            # one multi-row INSERT ... RETURNING: the runs' ids, in the order given
            ids = (await conn.execute(
                insert(RUNS).returning(RUNS.c.id, sort_by_parameter_order=True),
                rows)).scalars().all()
        return [Claim(schedule=r.schedule, run=RunRow(id=run_id, **row))
                for r, row, run_id in zip(won, rows, ids, strict=True)]

    @staticmethod
    def _run_values(schedule: DueSchedule | BadRow, slot: datetime, status: str,
                    now: datetime, timer_id: str | None, reason: str | None = None,
                    trigger: str = "timer", lease_until: datetime | None = None
                    ) -> dict[str, Any]:
        return dict(schedule_id=schedule.id, owner=schedule.owner, slot=slot, attempt=1,
                    trigger=trigger, status=status, fired_at=None, fid=None, reason=reason,
                    timer_id=timer_id, lease_until=lease_until,
                    finished_at=now if status in _ENDED_AT_RECORD else None)

    async def unlaunched_claims(self, timer_id: str, keys: Sequence[tuple[str, datetime]]
                                ) -> dict[tuple[str, datetime], RunRow]:
        """Of these (schedule, slot) pairs, the runs this timer claimed and has not
        sent yet (``queued``)."""
        if not keys:
            return {}
        wanted = set(keys)
        query = select(RunRow).where(
            RunRow.timer_id == timer_id, RunRow.status == "queued",
            RunRow.schedule_id.in_({sid for sid, _ in keys}))
        async with self.session() as s:
            rows = (await s.execute(query)).scalars().all()
        return {(r.schedule_id, r.slot): r for r in rows if (r.schedule_id, r.slot) in wanted}

    async def quarantine(self, bad: BadRow, now: datetime, timer_id: str | None) -> bool:
        """Pause a schedule whose stored row cannot be run, with a note and a ``failed``
        run saying why; only the timer that pauses it records the run."""
        why = reasons.BAD_ROW.format(why=bad.why)[:1000]
        async with self.session.begin() as s:
            result = await s.execute(
                update(SCHEDULES).where(SCHEDULES.c.id == bad.id, SCHEDULES.c.state == "active")
                .values(state="paused", next_run=None, updated=now, last_status="failed",
                        note=reasons.PAUSED_BY_TIMER.format(why=why)[:1000]))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            await s.execute(insert(RUNS).values(**self._run_values(
                bad, bad.next_run or now, "failed", now, timer_id, reason=why)))
        return True

    async def schedules_by_id(self, ids: Sequence[str]) -> dict[str, ScheduleRow]:
        """The current rows of these schedules (missing: deleted), in one query."""
        if not ids:
            return {}
        async with self.session() as s:
            rows = (await s.execute(select(ScheduleRow).where(ScheduleRow.id.in_(ids))))
            return {row.id: row for row in rows.scalars()}

    async def active_schedule_ids(self, schedule_ids: Sequence[str]) -> set[str]:
        """Which of these schedules have a run that has not ended (queued, being sent,
        or running in kodosumi): ``has_active_run`` for a whole batch."""
        if not schedule_ids:
            return set()
        query = select(RUNS.c.schedule_id).where(
            RUNS.c.schedule_id.in_(schedule_ids), RUNS.c.status.in_(PENDING)).distinct()
        async with self.engine.connect() as conn:
            return {row[0] for row in await conn.execute(query)}

    # ---- the timer's view: holding, sending and recording runs -----------------

    async def take_manual(self, timer_id: str, now: datetime, lease_until: datetime,
                          limit: int = 100) -> list[RunRow]:
        """Take "run now" requests nobody holds yet (exactly one timer gets each)."""
        query = select(RUNS.c.id).where(RUNS.c.status == "queued", RUNS.c.timer_id.is_(None)
                                        ).order_by(RUNS.c.id).limit(limit)
        async with self.session.begin() as s:
            ids = (await s.execute(query)).scalars().all()
            if not ids:
                return []
            taken = (await s.execute(
                update(RunRow).where(RunRow.id.in_(ids), RunRow.status == "queued",
                                     RunRow.timer_id.is_(None))
                .values(timer_id=timer_id, lease_until=lease_until)
                .returning(RunRow.id))).scalars().all()
            if not taken:
                return []
            rows = (await s.execute(select(RunRow).where(RunRow.id.in_(taken))
                                    .order_by(RunRow.id))).scalars().all()
            await s.execute(
                update(ScheduleRow).where(ScheduleRow.id.in_({r.schedule_id for r in rows}))
                .values(last_run=now, run_count=ScheduleRow.run_count + 1, updated=now,
                        last_status="queued"))
        return list(rows)

    async def start_sending(self, timer_id: str, run_ids: Sequence[int], now: datetime,
                            lease_until: datetime) -> set[int]:
        """Move these ``queued`` runs to ``launching``, only those this timer still holds:
        the atomic check before a request goes out. Returns the ids that may be sent."""
        async with self.engine.begin() as conn:
            return await _start_sending(conn, timer_id, dict.fromkeys(run_ids, now),
                                        lease_until)

    async def start_sending_checked(
            self, timer_id: str, schedule_ids: Iterable[str],
            decide: Callable[[dict[str, tuple[str, int]]], Sequence[tuple[int, datetime]]],
            lease_until: datetime) -> set[int]:
        """The check every launch passes, in one transaction: the (state, version) of
        these schedules is read (missing: deleted), and the runs ``decide`` picks by
        them, each with its ``fired_at``, move to ``launching`` as ``start_sending``
        does."""
        async with self.engine.begin() as conn:
            picked = dict(decide(await _versions(conn, schedule_ids)))
            return await _start_sending(conn, timer_id, picked, lease_until)

    async def renew_leases(self, timer_id: str, run_ids: Iterable[int],
                           lease_until: datetime) -> int:
        """Extend the lease of these runs this timer holds (queued or being sent), never
        shortening one: a run being sent is held for its request's whole time."""
        ids = list(run_ids)
        if not ids:
            return 0
        # rows locked in id order, and one being written right now (checked before
        # sending, recorded) is left to the next renewal, a third of a lease later:
        # never a deadlock with the timer's other writes (seen with three timers)
        mine = select(RUNS.c.id).where(
            RUNS.c.id.in_(ids), RUNS.c.timer_id == timer_id,
            RUNS.c.status.in_(("queued", "launching")), RUNS.c.lease_until < lease_until
        ).order_by(RUNS.c.id).with_for_update(skip_locked=True)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(RUNS).where(RUNS.c.id.in_(mine.scalar_subquery()))
                .values(lease_until=lease_until))
            return int(result.rowcount)

    async def release_queued(self, timer_id: str, now: datetime) -> int:
        """Let go of the runs this timer holds but has not sent (on stop): their lease
        ends now, so the next timer takes them over at once."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(RUNS).where(RUNS.c.timer_id == timer_id, RUNS.c.status == "queued")
                .values(lease_until=now))
            return int(result.rowcount)

    async def expired_claims(self, now: datetime, limit: int = 500) -> list[RunRow]:
        """Runs held by a timer whose lease ran out (it stopped, died or stalled):
        ``queued`` ones were never sent, ``launching`` ones may have been."""
        query = select(RunRow).where(
            RunRow.status.in_(("queued", "launching")), RunRow.timer_id.is_not(None),
            RunRow.lease_until < now).order_by(RunRow.id).limit(limit)
        async with self.session() as s:
            return list((await s.execute(query)).scalars().all())

    async def take_over(self, runs: Sequence[RunRow], timer_id: str, now: datetime,
                        lease_until: datetime) -> list[RunRow]:
        """Take runs whose lease expired from the timers that held them, in one statement
        per 500 (one taker wins each: a run renewed, taken or recorded meanwhile has a
        lease in the future or none). Returns those taken, in their current status."""
        by_id = {run.id: run for run in runs}
        ids, taken = list(by_id), []
        for start in range(0, len(ids), 500):
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    update(RUNS).where(RUNS.c.id.in_(ids[start:start + 500]),
                                       RUNS.c.status.in_(("queued", "launching")),
                                       RUNS.c.lease_until < now)
                    .values(timer_id=timer_id, lease_until=lease_until)
                    .returning(RUNS.c.id, RUNS.c.status))
                for run_id, status in result.all():
                    run = by_id[run_id]
                    run.timer_id, run.lease_until, run.status = timer_id, lease_until, status
                    taken.append(run)
        return taken

    async def requeue(self, run: RunRow, timer_id: str) -> bool:
        """A run found not to have reached kodosumi goes back to ``queued`` (still held
        by this timer), to be judged and sent like any waiting run."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(RUNS).where(RUNS.c.id == run.id, RUNS.c.timer_id == timer_id,
                                   RUNS.c.status == "launching")
                .values(status="queued", fired_at=None))
            if result.rowcount != 1:
                return False
        run.status, run.fired_at = "queued", None
        return True

    async def record_launches(self, results: Sequence[LaunchResult], timer_id: str) -> int:
        """Record launch results in one transaction: a run is only changed while this
        timer still holds it (a timer that stalled past its lease and was taken over
        writes nothing); its schedule mirrors the result."""
        if not results:
            return 0
        run_rows, schedule_rows = [], []
        # rows written in id order (runs, then schedules), as in every multi-row write:
        # no deadlock between the timer's writes or timers (a schedule's last run last)
        results = sorted(results, key=lambda r: (r.run.schedule_id, r.run.id))
        for r in sorted(results, key=lambda r: r.run.id):
            # a run that was never sent (skipped, missed at its last check) has no fired_at
            fired = None if r.status in (RunStatus.SKIPPED, RunStatus.MISSED) else r.at
            run_rows.append({"b_id": r.run.id, "b_of": r.run.schedule_id,
                             "b_status": r.status, "b_fid": r.fid,
                             "b_reason": r.reason, "b_fired": fired,
                             "b_finished": None if r.status in ACTIVE_RUN_STATES else r.at})
        for r in results:
            schedule_rows.append({"b_schedule": r.run.schedule_id, "b_fid": r.fid,
                                  "b_status": r.status, "b_at": r.at, "b_run": r.run.id})
        # the schedule mirrors only results that were written: its run is this timer's,
        # now in the result's status with no lease left
        written = select(RUNS.c.id).where(
            RUNS.c.id == bindparam("b_run"), RUNS.c.timer_id == timer_id,
            RUNS.c.status == bindparam("b_status"), RUNS.c.lease_until.is_(None)).exists()
        async with self.engine.begin() as conn:
            await conn.execute(
                # (no IN list: executemany takes no expanding parameters)
                # (its schedule too: SQLite gives a deleted run's id to the next row)
                update(RUNS).where(RUNS.c.id == bindparam("b_id"),
                                   RUNS.c.schedule_id == bindparam("b_of"),
                                   RUNS.c.timer_id == timer_id,
                                   or_(RUNS.c.status == "queued",
                                       RUNS.c.status == "launching")).values(
                    status=bindparam("b_status"), fid=bindparam("b_fid"),
                    reason=bindparam("b_reason"),
                    fired_at=func.coalesce(RUNS.c.fired_at,
                                           bindparam("b_fired", type_=UTCDateTime)),
                    finished_at=bindparam("b_finished"), lease_until=None), run_rows)
            await conn.execute(
                update(SCHEDULES).where(SCHEDULES.c.id == bindparam("b_schedule"),
                                        written).values(
                    last_fid=func.coalesce(bindparam("b_fid"), SCHEDULES.c.last_fid),
                    last_status=bindparam("b_status"), updated=bindparam("b_at"),
                    failures_in_row=_FAILURES_AFTER),
                schedule_rows)
            await self._pause_failing(
                conn, {r.run.schedule_id for r in results if r.status in FAILING},
                max(r.at for r in results))
            released = await self._release_buffered(
                conn, {r.run.schedule_id for r in results if r.status not in ACTIVE})
        for r in results:
            r.run.status, r.run.fid, r.run.reason = r.status, r.fid, r.reason
            if r.status not in (RunStatus.SKIPPED, RunStatus.MISSED):
                r.run.fired_at = r.run.fired_at or r.at
        return released

    @staticmethod
    async def _release_buffered(conn: AsyncConnection, schedule_ids: set[str]) -> int:
        """A slot buffered behind a running execution (overlap=buffer_one) becomes a
        waiting run once its schedule has nothing pending: the timer takes it like a
        "run now" request. Returns how many were released."""
        if not schedule_ids:
            return 0
        pending = select(RUNS.c.schedule_id).where(
            RUNS.c.schedule_id.in_(schedule_ids),
            RUNS.c.status.in_([status.value for status in PENDING]))
        result = await conn.execute(
            update(RUNS).where(RUNS.c.schedule_id.in_(schedule_ids),
                               RUNS.c.status == RunStatus.BUFFERED.value,
                               RUNS.c.schedule_id.not_in(pending))
            .values(status=RunStatus.QUEUED.value, timer_id=None, lease_until=None))
        return int(result.rowcount)

    async def buffered_schedule_ids(self, schedule_ids: Sequence[str]) -> set[str]:
        """Which of these schedules have a slot buffered already (at most one waits)."""
        if not schedule_ids:
            return set()
        query = select(RUNS.c.schedule_id).where(
            RUNS.c.schedule_id.in_(schedule_ids), RUNS.c.status == RunStatus.BUFFERED.value)
        async with self.engine.connect() as conn:
            return {str(sid) for sid in (await conn.execute(query)).scalars()}

    async def running_runs_of(self, schedule_id: str) -> list[RunRow]:
        """The runs of a schedule whose execution kodosumi is running (overlap=replace
        ends them)."""
        query = select(RunRow).where(RunRow.schedule_id == schedule_id,
                                     RunRow.status.in_([status.value for status in ACTIVE]),
                                     RunRow.fid.is_not(None))
        async with self.session() as s:
            return list((await s.execute(query)).scalars().all())

    @staticmethod
    async def _pause_failing(conn: AsyncConnection, schedule_ids: set[str],
                             now: datetime) -> None:
        """Pause the schedules among these whose last runs failed ``pause_after_failures``
        times in a row (issue 13), with a note saying so."""
        if not schedule_ids:
            return
        failing = (await conn.execute(
            select(SCHEDULES.c.id, SCHEDULES.c.failures_in_row).where(
                SCHEDULES.c.id.in_(schedule_ids), SCHEDULES.c.state == "active",
                SCHEDULES.c.pause_after_failures.is_not(None),
                SCHEDULES.c.failures_in_row >= SCHEDULES.c.pause_after_failures)
            .order_by(SCHEDULES.c.id))).all()
        for schedule_id, count in failing:
            await conn.execute(
                update(SCHEDULES).where(SCHEDULES.c.id == schedule_id,
                                        SCHEDULES.c.state == "active")
                .values(state="paused", next_run=None, updated=now,
                        note=reasons.PAUSED_BY_TIMER.format(
                            why=reasons.FAILED_IN_ROW.format(count=count))))

    async def finish_runs(self, changes: Sequence[RunChange]) -> int:
        """A followed execution's new status for many runs, in one transaction; the
        schedule mirrors its latest run. Returns how many buffered slots were released
        (their schedule has nothing running now)."""
        if not changes:
            return 0
        run_rows, schedule_rows = [], []
        # in id order (runs, then schedules), as in every multi-row write: no deadlock
        for c in sorted(changes, key=lambda c: c.run.id):
            done = c.status not in ACTIVE_RUN_STATES
            run_rows.append({"b_id": c.run.id, "b_fid": c.run.fid, "b_status": c.status,
                             "b_reason": c.reason if c.reason is not None else c.run.reason,
                             "b_finished": c.at if done else c.run.finished_at})
        for c in sorted(changes, key=lambda c: (c.run.schedule_id, c.run.id)):
            schedule_rows.append({"b_schedule": c.run.schedule_id, "b_fid": c.run.fid,
                                  "b_status": c.status})
        async with self.engine.begin() as conn:
            await conn.execute(
                # the same run, not just its id: SQLite gives a deleted run's id to the
                # next row, and a follow round may hold the deleted one (seen in CI: a
                # skipped slot turned "running" for ever)
                update(RUNS).where(RUNS.c.id == bindparam("b_id"),
                                   RUNS.c.fid == bindparam("b_fid")).values(
                    status=bindparam("b_status"), reason=bindparam("b_reason"),
                    finished_at=bindparam("b_finished")), run_rows)
            await conn.execute(
                update(SCHEDULES).where(
                    SCHEDULES.c.id == bindparam("b_schedule"),
                    or_(SCHEDULES.c.last_fid == bindparam("b_fid"),
                        SCHEDULES.c.last_fid.is_(None))).values(
                    last_status=bindparam("b_status")), schedule_rows)
            # only an end counts (a run now running changes nothing in a row)
            counted = [row for row in schedule_rows
                       if row["b_status"] in FAILING or row["b_status"] == RunStatus.FINISHED]
            if counted:
                await conn.execute(
                    update(SCHEDULES).where(SCHEDULES.c.id == bindparam("b_schedule")).values(
                        failures_in_row=_FAILURES_AFTER), counted)
            await self._pause_failing(
                conn, {c.run.schedule_id for c in changes if c.status in FAILING},
                max(c.at for c in changes))
            return await self._release_buffered(
                conn, {c.run.schedule_id for c in changes if c.status not in ACTIVE})

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
                s.add(RunRow(**self._run_values(
                    schedule, slot, status, now, timer_id, reason=reason,
                    trigger="buffer" if status == RunStatus.BUFFERED else "timer")))
        return True

    async def _advance(self, s: AsyncSession, schedule: DueSchedule,
                       values: dict[str, Any]) -> bool:
        """Move the schedule on, only if its next_run is still the one the timer read
        (the exactly-once guard shared by claiming and skipping slots)."""
        same: ColumnElement[bool] = ScheduleRow.next_run == schedule.next_run
        if self.dialect == "sqlite":  # as instants, whatever text the row holds
            stamp = "%Y-%m-%d %H:%M:%f"
            same = func.strftime(stamp, ScheduleRow.next_run) == func.strftime(
                stamp, bindparam("read_next_run", schedule.next_run, type_=UTCDateTime))
        result = await s.execute(
            update(ScheduleRow)
            .where(ScheduleRow.id == schedule.id, same, ScheduleRow.state == "active")
            .values(**values))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def pause(self, schedule_id: str, note: str, now: datetime) -> None:
        await self.update_schedule(
            schedule_id, {"state": "paused", "next_run": None, "note": note, "updated": now}
        )

    async def has_active_run(self, schedule_id: str) -> bool:
        """True while a run of this schedule has not ended (waiting, being sent, or its
        execution running)."""
        return bool(await self.active_schedule_ids([schedule_id]))

    async def queue_manual_run(self, schedule: ScheduleRow, now: datetime) -> RunRow:
        """A "run now" request; a timer takes it (``take_manual``) and launches it."""
        run = RunRow(schedule_id=schedule.id, owner=schedule.owner, slot=now, attempt=1,
                     trigger="manual", status="queued")
        async with self.session.begin() as s:
            s.add(run)
        return run

    async def queue_backfill(self, schedule: ScheduleRow, slots: Sequence[datetime],
                             change: ChangeRow) -> int:
        """Runs for past slots (issue 13's backfill), waiting like "run now" requests and
        taken by a timer through the same pacing; a slot already recorded gets its next
        attempt. With its change-log entry, in one transaction. Returns how many."""
        if not slots:
            return 0
        async with self.session.begin() as s:
            tried = dict((await s.execute(
                select(RunRow.slot, func.max(RunRow.attempt))
                .where(RunRow.schedule_id == schedule.id, RunRow.slot.in_(slots))
                .group_by(RunRow.slot))).all())
            s.add_all(RunRow(schedule_id=schedule.id, owner=schedule.owner, slot=slot,
                             attempt=tried.get(slot, 0) + 1, trigger="backfill",
                             status=RunStatus.QUEUED.value) for slot in slots)
            s.add(change)
        return len(slots)

    async def active_runs(self, limit: int = 200, after: int = 0) -> Sequence[RunRow]:
        """Runs whose execution has not ended, by id from ``after`` on (a page of them:
        the follow loop walks them round-robin)."""
        query = (
            select(RunRow).where(RunRow.status.in_(ACTIVE_RUN_STATES), RunRow.id > after)
            .order_by(RunRow.id).limit(limit)
        )
        async with self.session() as s:
            return (await s.execute(query)).scalars().all()

    async def timeouts(self, schedule_ids: Iterable[str]) -> dict[str, int]:
        """The run timeouts (seconds) of those of these schedules that have one."""
        wanted = list(set(schedule_ids))
        if not wanted:
            return {}
        query = select(SCHEDULES.c.id, SCHEDULES.c.timeout).where(
            SCHEDULES.c.id.in_(wanted), SCHEDULES.c.timeout.is_not(None))
        async with self.engine.connect() as conn:
            return {str(sid): int(seconds) for sid, seconds in await conn.execute(query)}

    async def latest_launches(self, schedule_ids: Iterable[str]
                              ) -> dict[str, tuple[datetime, datetime]]:
        """(fired_at, slot) of the latest launched run of each of these schedules that
        has ``overlap=replace``: an execution of theirs launched before it is replaced."""
        wanted = list(set(schedule_ids))
        if not wanted:
            return {}
        latest = select(RUNS.c.schedule_id, func.max(RUNS.c.fired_at).label("fired_at")).join(
            SCHEDULES, SCHEDULES.c.id == RUNS.c.schedule_id).where(
            SCHEDULES.c.overlap == "replace", RUNS.c.schedule_id.in_(wanted),
            RUNS.c.fid.is_not(None)).group_by(RUNS.c.schedule_id).subquery()
        query = select(RUNS.c.schedule_id, RUNS.c.fired_at, RUNS.c.slot).join(
            latest, and_(RUNS.c.schedule_id == latest.c.schedule_id,
                         RUNS.c.fired_at == latest.c.fired_at))
        async with self.engine.connect() as conn:
            return {str(sid): (fired, slot) for sid, fired, slot in await conn.execute(query)}

    async def known_fids(self, owner: str, since: datetime, until: datetime) -> set[str]:
        """The executions other runs of ``owner`` were launched as in this window (a
        launch in doubt is never taken for one of them)."""
        query = select(RUNS.c.fid).where(RUNS.c.owner == owner, RUNS.c.fid.is_not(None),
                                         RUNS.c.fired_at >= since, RUNS.c.fired_at <= until)
        async with self.engine.connect() as conn:
            return {str(fid) for fid in (await conn.execute(query)).scalars()}

    async def active_runs_by_owner(self) -> dict[str, int]:
        """Executions launched by any timer that have not ended, by owner (the running
        cap)."""
        query = select(RUNS.c.owner, func.count()).where(
            RUNS.c.status.in_(ACTIVE_RUN_STATES)).group_by(RUNS.c.owner)
        async with self.engine.connect() as conn:
            return {str(owner): int(n) for owner, n in await conn.execute(query)}

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

    # ---- trigger URLs (issue 13) -------------------------------------------------

    async def schedule_by_hook(self, hook_hash: str) -> ScheduleRow | None:
        """The schedule whose trigger URL's token has this SHA-256 (hex), if any."""
        async with self.session() as s:
            query = select(ScheduleRow).where(ScheduleRow.hook_hash == hook_hash)
            return (await s.execute(query)).scalar_one_or_none()

    async def queue_hook_run(self, schedule: ScheduleRow, now: datetime,
                             inputs: dict[str, Any] | None) -> RunRow | None:
        """A trigger URL's call: a "run now" request (trigger ``hook``) launched with
        ``inputs`` when given, else with the schedule's; None when a run of this
        schedule is recorded for this very instant already."""
        run = RunRow(schedule_id=schedule.id, owner=schedule.owner, slot=now, attempt=1,
                     trigger="hook", status="queued", inputs=inputs)
        try:
            async with self.session.begin() as s:
                s.add(run)
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

def _version(raw: Any) -> int:
    """A stored version as a number; garbage reads as -1 (never equal to a claim's)."""
    try:
        return int(raw)
    except (TypeError, ValueError):
        return -1


async def open_store(url: str, migrate_schema: bool = True) -> Store:
    """Open the store at ``url`` and apply pending migrations (idempotent)."""
    engine = make_engine(url)
    if migrate_schema:
        await upgrade(engine)
    return Store(engine)


async def _versions(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, tuple[str, int]]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    query = select(SCHEDULES.c.id, type_coerce(SCHEDULES.c.state, String),
                   type_coerce(SCHEDULES.c.version, String)).where(
        SCHEDULES.c.id.in_(wanted))
    return {str(row[0]): (str(row[1]), _version(row[2]))
            for row in await conn.execute(query)}


async def _start_sending(conn: AsyncConnection, timer_id: str, fired: dict[int, datetime],
                         lease_until: datetime) -> set[int]:
    """Move the runs of ``fired`` (id: its ``fired_at``) to ``launching``, those this
    timer still holds; one statement, its rows locked in id order (no deadlock with a
    lease renewal or another timer)."""
    if not fired:
        return set()
    stamps = set(fired.values())
    # mostly one stamp (the runs of one instant); else each run's own
    stamp: Any = stamps.pop() if len(stamps) == 1 else case(
        *[(RUNS.c.id == run_id, literal(at, UTCDateTime)) for run_id, at in fired.items()])
    held = select(RUNS.c.id).where(
        RUNS.c.id.in_(list(fired)), RUNS.c.timer_id == timer_id, RUNS.c.status == "queued"
    ).order_by(RUNS.c.id).with_for_update()
    result = await conn.execute(
        update(RUNS).where(RUNS.c.id.in_(held.scalar_subquery()),
                           RUNS.c.status == "queued")
        .values(status="launching", fired_at=stamp, lease_until=lease_until)
        .returning(RUNS.c.id))
    return set(result.scalars().all())
