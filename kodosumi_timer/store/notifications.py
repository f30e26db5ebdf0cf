"""The notification outbox in the store: which ended runs are to be notified, queueing
each (run, event) once, handing due deliveries to one notifier at a time, and their log.

Mixed into :class:`kodosumi_timer.store.Store`; the timer never calls any of this: it
only records runs, and the notifier reads them here.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kodosumi_timer import reasons
from kodosumi_timer.store.tables import (
    NotificationRow,
    NotifyCursorRow,
    RunRow,
    ScheduleRow,
    SeenRow,
    UserSettingsRow,
)

NOTIFICATIONS = cast(Table, NotificationRow.__table__)
# runs that ended like this count as failed in the navigation
FAILED_STATUSES = ("error", "failed", "rejected", "unknown")
# the note the timer writes when it pauses a schedule starts with this
PAUSED_BY_TIMER = reasons.PAUSED_BY_TIMER.split("{", 1)[0]


def _queued_as(event: Any) -> Any:
    """A delivery of this run for ``event`` is queued already."""
    return exists().where(NotificationRow.run_id == RunRow.id, NotificationRow.event == event)


@dataclass(frozen=True)
class Ended:
    """A run that ended in an event its schedule notifies of, not queued yet."""

    event: str
    run: RunRow
    schedule: ScheduleRow
    # "schedule": its own notify; "default": its owner's default
    source: str = "schedule"


class NotificationStore:
    engine: AsyncEngine
    session: async_sessionmaker[AsyncSession]

    async def notify_cursor(self, name: str = "runs") -> datetime | None:
        async with self.session() as s:
            row = await s.get(NotifyCursorRow, name)
            return row.at if row is not None else None

    async def set_notify_cursor(self, at: datetime, name: str = "runs") -> None:
        """Move the cursor forward (never back: two notifiers may share the store)."""
        async with self.session.begin() as s:
            result = await s.execute(
                update(NotifyCursorRow).where(NotifyCursorRow.name == name,
                                              NotifyCursorRow.at < at).values(at=at))
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return
            if await s.get(NotifyCursorRow, name) is not None:
                return
        try:
            async with self.session.begin() as s:
                s.add(NotifyCursorRow(name=name, at=at))
        except IntegrityError:  # another notifier wrote it first
            pass

    async def ended_to_notify(self, since: datetime, until: datetime, limit: int = 500
                              ) -> list[Ended]:
        """Runs that ended in (since, until] with a status their schedule notifies of,
        and failed runs with which the timer paused a schedule that notifies of
        ``paused``, none of them queued yet; oldest first, at most ``limit`` of each.
        A schedule without a ``notify`` of its own notifies by its owner's default (user
        schedules only), with the default's events."""
        own = ScheduleRow.notify_url.is_not(None)
        by_default = and_(ScheduleRow.notify_url.is_(None), ScheduleRow.system.is_(False),
                          UserSettingsRow.notify_url.is_not(None))
        wanted = type_coerce(case((own, ScheduleRow.notify_events),
                                  else_=UserSettingsRow.notify_events), String)
        source = case((own, literal("schedule")), else_=literal("default"))
        matching = wanted.contains(literal(",") + RunRow.status + literal(","))
        window = and_(RunRow.finished_at > since, RunRow.finished_at <= until,
                      or_(own, by_default))

        def ended() -> Any:
            return (select(RunRow, ScheduleRow, source)
                    .join(ScheduleRow, ScheduleRow.id == RunRow.schedule_id)
                    .outerjoin(UserSettingsRow, UserSettingsRow.owner == ScheduleRow.owner))

        by_status = (ended().where(window, matching, ~_queued_as(RunRow.status))
                     .order_by(RunRow.finished_at, RunRow.id).limit(limit))
        paused = (
            ended()
            .where(window, RunRow.status == "failed", ScheduleRow.state == "paused",
                   ScheduleRow.note.startswith(PAUSED_BY_TIMER, autoescape=True),
                   # the run recorded in the same transaction as the pause
                   ScheduleRow.updated == RunRow.finished_at,
                   wanted.contains(",paused,", autoescape=True),
                   ~_queued_as("paused"))
            .order_by(RunRow.finished_at, RunRow.id).limit(limit))
        async with self.session() as s:
            found = [Ended(run.status, run, sched, str(where))
                     for run, sched, where in (await s.execute(by_status)).all()]
            found += [Ended("paused", run, sched, str(where))
                      for run, sched, where in (await s.execute(paused)).all()]
        return found

    async def queue_notifications(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert deliveries; one already queued for its (run, event) is left alone.
        Returns how many were queued."""
        queued = 0
        for row in rows:  # one by one: a duplicate must not undo the others
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(insert(NOTIFICATIONS).values(**row))
                queued += 1
            except IntegrityError:
                pass
        return queued

    async def take_notifications(self, now: datetime, lease_until: datetime,
                                 limit: int = 50) -> list[NotificationRow]:
        """Pending deliveries due at ``now``, held until ``lease_until`` by the caller
        (another notifier skips them meanwhile; after it, they are due again)."""
        query = (select(NOTIFICATIONS.c.id)
                 .where(NOTIFICATIONS.c.status == "pending", NOTIFICATIONS.c.next_at <= now)
                 .order_by(NOTIFICATIONS.c.next_at).limit(limit))
        async with self.session.begin() as s:
            ids = (await s.execute(query)).scalars().all()
            if not ids:
                return []
            taken = (await s.execute(
                update(NotificationRow)
                .where(NotificationRow.id.in_(ids), NotificationRow.status == "pending",
                       NotificationRow.next_at <= now)
                .values(next_at=lease_until).returning(NotificationRow.id))).scalars().all()
            if not taken:
                return []
            rows = (await s.execute(select(NotificationRow).where(
                NotificationRow.id.in_(taken)).order_by(NotificationRow.id))).scalars().all()
        return list(rows)

    async def record_attempt(self, notification_id: int, status: str, attempts: int,
                             next_at: datetime | None, error: str | None,
                             delivered: datetime | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(NOTIFICATIONS).where(NOTIFICATIONS.c.id == notification_id).values(
                    status=status, attempts=attempts, next_at=next_at,
                    last_error=error[:1000] if error else None, delivered=delivered))

    async def notifications(self, schedule_id: str, run_ids: Sequence[int] | None = None,
                            limit: int = 50, offset: int = 0
                            ) -> tuple[Sequence[NotificationRow], int]:
        """A schedule's deliveries (of these runs only, if given), newest first."""
        conditions = [NotificationRow.schedule_id == schedule_id]
        if run_ids is not None:
            conditions.append(NotificationRow.run_id.in_(list(run_ids)))
        query = (select(NotificationRow).where(*conditions)
                 .order_by(NotificationRow.id.desc()).limit(limit).offset(offset))
        count = select(func.count()).select_from(NotificationRow).where(*conditions)
        async with self.session() as s:
            rows = (await s.execute(query)).scalars().all()
            total = int((await s.execute(count)).scalar_one())
        return rows, total

    async def drop_orphan_notifications(self) -> int:
        """Deliveries of schedules that were deleted go with them."""
        gone = ~exists().where(ScheduleRow.id == NotificationRow.schedule_id)
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(NOTIFICATIONS).where(gone))
            return int(result.rowcount)

    # ---- what a user has not seen yet ------------------------------------------------

    async def seen_at(self, owner: str) -> datetime | None:
        async with self.session() as s:
            row = await s.get(SeenRow, owner)
            return row.at if row is not None else None

    async def mark_seen(self, owner: str, at: datetime) -> None:
        async with self.session.begin() as s:
            result = await s.execute(update(SeenRow).where(SeenRow.owner == owner)
                                     .values(at=at))
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return
        try:
            async with self.session.begin() as s:
                s.add(SeenRow(owner=owner, at=at))
        except IntegrityError:  # two tabs at once: either instant will do
            pass

    async def failed_since(self, owner: str, since: datetime) -> int:
        """How many of ``owner``'s runs ended failed (error, failed, rejected, unknown)
        after ``since``."""
        query = select(func.count()).select_from(RunRow).where(
            RunRow.owner == owner, RunRow.finished_at > since,
            RunRow.status.in_(FAILED_STATUSES))
        async with self.session() as s:
            return int((await s.execute(query)).scalar_one())
