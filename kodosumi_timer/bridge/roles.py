"""kodosumi's ``roles`` table, read: whether an owner exists and is active, who is an
operator, and the names shown for role ids. The panel's JWT check never consults it."""

import uuid
from collections.abc import Iterable
from typing import Any, Literal, Protocol

from sqlalchemy import Boolean, Column, MetaData, String, Table, Uuid, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

OwnerState = Literal["active", "inactive", "missing"]


class Roles(Protocol):
    async def owner_state(self, owner: str) -> OwnerState: ...

    async def owner_states(self, owners: Iterable[str]) -> dict[str, OwnerState]: ...

    async def is_operator(self, owner: str) -> bool: ...

    async def names(self, owners: Iterable[str]) -> dict[str, str]: ...

    async def close(self) -> None: ...


def role_uuid(owner: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(owner)
    except ValueError:
        return None


# kodosumi's ``roles`` table (kodosumi.dtypes.Role), only the columns read here: importing
# kodosumi.dtypes pulls in litestar, which took 1-5 s at the timer's first fire
ROLES = Table("roles", MetaData(), Column("id", Uuid, primary_key=True),
              Column("name", String), Column("active", Boolean), Column("operator", Boolean))


class RoleTable:
    """Reads kodosumi's ``roles`` table: the panel's JWT check never consults it."""

    def __init__(self, admin_database: str, engine: AsyncEngine | None = None):
        self.engine = engine or create_async_engine(admin_database)

    async def _role(self, owner: str) -> Any:
        rid = role_uuid(owner)
        if rid is None:
            return None
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(ROLES.c.active, ROLES.c.operator).where(ROLES.c.id == rid))
            return result.first()

    async def owner_states(self, owners: Iterable[str]) -> dict[str, OwnerState]:
        """``owner_state`` of many owners in one query (a due batch's owners)."""
        ids = {owner: role_uuid(owner) for owner in owners}
        wanted = [rid for rid in ids.values() if rid is not None]
        found: dict[uuid.UUID, bool] = {}
        if wanted:
            async with self.engine.connect() as conn:
                rows = await conn.execute(
                    select(ROLES.c.id, ROLES.c.active).where(ROLES.c.id.in_(wanted)))
                found = {row.id: bool(row.active) for row in rows}
        return {owner: "missing" if rid is None or rid not in found
                else ("active" if found[rid] else "inactive")
                for owner, rid in ids.items()}

    async def owner_state(self, owner: str) -> OwnerState:
        row = await self._role(owner)
        if row is None:
            return "missing"
        return "active" if row.active else "inactive"

    async def is_operator(self, owner: str) -> bool:
        row = await self._role(owner)
        return bool(row is not None and row.active and row.operator)

    async def names(self, owners: Iterable[str]) -> dict[str, str]:
        """Role names for role ids; ids that are no role (the timer user of system
        schedules) are left out."""
        ids = {rid: owner for owner in set(owners) if (rid := role_uuid(owner)) is not None}
        if not ids:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(ROLES.c.id, ROLES.c.name).where(ROLES.c.id.in_(ids)))
            return {ids[row.id]: row.name for row in rows}

    async def close(self) -> None:
        await self.engine.dispose()
