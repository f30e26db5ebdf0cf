"""A user's default notification: where their schedules without a ``notify`` of their own
send their deliveries (issue 12). One ``user_settings`` row per owner.

Mixed into :class:`kodosumi_timer.store.Store`.
"""

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kodosumi_timer.store.tables import UserSettingsRow


class UserDefaults:
    engine: AsyncEngine
    session: async_sessionmaker[AsyncSession]

    async def notify_default(self, owner: str) -> UserSettingsRow | None:
        """The owner's default, or None when they have none."""
        async with self.session() as s:
            row = await s.get(UserSettingsRow, owner)
        return row if row is not None and row.notify_url else None

    async def set_notify_default(self, owner: str, url: str, events: str, secret: str | None,
                                 now: datetime) -> UserSettingsRow:
        """Set the owner's default url and events (stored as ``",error,failed,"``);
        ``secret`` None keeps the current one. Returns the row as stored."""
        values: dict[str, object] = {"notify_url": url, "notify_events": events,
                                     "updated_at": now}
        if secret is not None:
            values["notify_secret"] = secret
        for _ in range(2):  # an insert that meets another one's row becomes an update
            async with self.session.begin() as s:
                result = await s.execute(update(UserSettingsRow)
                                         .where(UserSettingsRow.owner == owner).values(values))
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    break
            try:
                async with self.session.begin() as s:
                    s.add(UserSettingsRow(owner=owner, **values))
                break
            except IntegrityError:
                continue
        async with self.session() as s:
            row = await s.get(UserSettingsRow, owner)
        assert row is not None
        return row

    async def remove_notify_default(self, owner: str) -> bool:
        """Forget the owner's default (and its secret); False when there was none."""
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(UserSettingsRow)
                                        .where(UserSettingsRow.owner == owner))
        return bool(result.rowcount)

    async def notify_defaults(self, owners: list[str]) -> dict[str, UserSettingsRow]:
        """The defaults of these owners (those who have one), by owner."""
        if not owners:
            return {}
        async with self.session() as s:
            rows = (await s.execute(select(UserSettingsRow).where(
                UserSettingsRow.owner.in_(owners), UserSettingsRow.notify_url.is_not(None))
            )).scalars().all()
        return {r.owner: r for r in rows}
