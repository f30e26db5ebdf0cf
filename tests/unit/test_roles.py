"""kodosumi's role table read by the bridge: kodosumi's own table on a temporary
SQLite file, rows written with kodosumi's own model."""

import uuid

import pytest
from kodosumi.dtypes import Base, Role
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from kodosumi_timer.bridge import RoleTable


@pytest.fixture
async def roles(tmp_path):
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/admin.db")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    ids = {name: uuid.uuid4() for name in ("ada", "bob", "cy")}
    async with async_sessionmaker(engine).begin() as s:
        s.add_all([
            Role(id=ids["ada"], name="ada", email="ada@x", password="-", operator=True),
            Role(id=ids["bob"], name="bob", email="bob@x", password="-", active=False),
            Role(id=ids["cy"], name="cy", email="cy@x", password="-"),
        ])
    table = RoleTable("unused", engine=engine)
    yield table, {name: str(rid) for name, rid in ids.items()}
    await table.close()


async def test_states_operators_and_names(roles):
    table, ids = roles
    gone = str(uuid.uuid4())
    assert await table.owner_states([ids["ada"], ids["bob"], gone, "timer"]) == {
        ids["ada"]: "active", ids["bob"]: "inactive", gone: "missing", "timer": "missing"}
    assert await table.owner_state(ids["cy"]) == "active"
    assert await table.is_operator(ids["ada"]) and not await table.is_operator(ids["cy"])
    # names by the id as given (with dashes); the timer user and unknown ids left out
    assert await table.names([ids["ada"], ids["cy"], ids["cy"], gone, "timer"]) == {
        ids["ada"]: "ada", ids["cy"]: "cy"}
    assert await table.names(["timer"]) == {}
