"""The store's part of the system-schedule sync: read the synced rows and write what
the sync planned from them, in one transaction (the plan itself is
:mod:`kodosumi_timer.system.sync`)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kodosumi_timer.store.tables import ChangeRow, RunRow, ScheduleRow


@dataclass
class SystemWrites:
    """What one sync writes: rows to add, changes of rows as read (each written only if
    the row's version is still the one read; the version is bumped), rows to remove
    with their runs and change log."""

    add: list[ScheduleRow] = field(default_factory=list)
    change: list[tuple[ScheduleRow, dict[str, Any]]] = field(default_factory=list)
    remove: list[ScheduleRow] = field(default_factory=list)


class SystemRows:
    """Mixed into :class:`~kodosumi_timer.store.repository.Store`."""

    session: async_sessionmaker[AsyncSession]

    async def sync_system(self, plan: Callable[[Sequence[ScheduleRow]], SystemWrites]
                          ) -> set[str]:
        """Hand the synced system schedules (``system`` and a ``system_source``; user
        schedules and other system rows are never read) to ``plan`` and write what it
        returns, in one transaction. Returns the ids of the changed rows that were
        written; the others were changed meanwhile (an operator's pause)."""
        async with self.session.begin() as s:
            rows = (await s.execute(
                select(ScheduleRow).where(ScheduleRow.system.is_(True),
                                          ScheduleRow.system_source.is_not(None))
            )).scalars().all()
            writes = plan(rows)
            for row in writes.remove:
                await s.execute(delete(RunRow).where(RunRow.schedule_id == row.id))
                await s.execute(delete(ChangeRow).where(ChangeRow.schedule_id == row.id))
                await s.execute(delete(ScheduleRow).where(ScheduleRow.id == row.id))
            written: set[str] = set()
            for row, values in writes.change:
                result = await s.execute(
                    update(ScheduleRow)
                    .where(ScheduleRow.id == row.id, ScheduleRow.version == row.version)
                    .values(**values, version=ScheduleRow.version + 1))
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    written.add(row.id)
            s.add_all(writes.add)
        return written
