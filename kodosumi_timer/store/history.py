"""The store's part of keeping run history bounded (issue 12): ended runs beyond the
newest ``keep`` of their schedule, or older than a cutoff, go in small batches, with
their notifications once those are delivered or given up (the loop that calls this is
:mod:`kodosumi_timer.history`)."""

from datetime import datetime

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kodosumi_timer.runs import ENDED, RunStatus
from kodosumi_timer.store.tables import NotificationRow, RunRow, ScheduleRow


class HistoryRows:
    """Mixed into :class:`~kodosumi_timer.store.repository.Store`."""

    session: async_sessionmaker[AsyncSession]

    async def schedules_to_prune(self, older_than: datetime, keep: int) -> list[str]:
        """The schedules that may have runs to prune: more than ``keep`` runs, or one
        before ``older_than``. One pass along the (schedule_id, slot) index, not four
        queries per schedule (which kept the timer busy at 45 % of a core with 10,000
        schedules, and holding every id, 130 MB more at a million)."""
        async with self.session() as s:
            return list((await s.execute(
                select(RunRow.schedule_id).group_by(RunRow.schedule_id).having(
                    or_(func.count() > keep, func.min(RunRow.slot) < older_than))
                .order_by(RunRow.schedule_id))).scalars())

    async def next_launch(self, since: datetime) -> datetime | None:
        """The earliest instant from ``since`` on at which a launch is to be sent, as far
        as the store knows: an active schedule's next slot or a claimed run's slot (two
        index lookups). A schedule's jitter may send its run up to that much later."""
        async with self.session() as s:
            upcoming = (await s.execute(
                select(ScheduleRow.next_run)
                .where(ScheduleRow.state == "active", ScheduleRow.next_run >= since)
                .order_by(ScheduleRow.next_run).limit(1))).scalar()
            claimed = (await s.execute(
                select(RunRow.slot).where(RunRow.status == RunStatus.QUEUED, RunRow.slot >= since)
                .order_by(RunRow.slot).limit(1))).scalar()
        coming = [t for t in (upcoming, claimed) if t is not None]
        return min(coming) if coming else None

    async def prune_runs(self, schedule_id: str, older_than: datetime, keep: int,
                         batch: int = 500) -> int:
        """Delete at most ``batch`` ended runs of one schedule whose slot is before
        ``older_than`` or before the newest ``keep`` slots; a run still waiting to be
        told of (a pending notification) stays. Returns how many went."""
        async with self.session.begin() as s:
            # the (keep+1)-th newest slot, along the (schedule_id, slot) index
            beyond = (await s.execute(
                select(RunRow.slot).where(RunRow.schedule_id == schedule_id)
                .order_by(RunRow.slot.desc()).offset(keep).limit(1))).scalar()
            cut = older_than if beyond is None else max(older_than, beyond)
            if beyond is not None and beyond >= older_than:
                # the (keep+1)-th itself goes too: strictly fewer than keep remain newer
                slot_test = RunRow.slot <= cut
            else:
                slot_test = RunRow.slot < cut
            pending = exists().where(NotificationRow.run_id == RunRow.id,
                                     NotificationRow.status == "pending")
            ids = list((await s.execute(
                select(RunRow.id).where(RunRow.schedule_id == schedule_id, slot_test,
                                        RunRow.status.in_(ENDED), ~pending)
                .limit(batch))).scalars())
            if ids:
                await s.execute(delete(NotificationRow).where(NotificationRow.run_id.in_(ids)))
                await s.execute(delete(RunRow).where(RunRow.id.in_(ids)))
            return len(ids)
