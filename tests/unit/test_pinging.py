"""A pooled PostgreSQL connection is pinged before use only after sitting idle: one that
died meanwhile (a database restart) is replaced unseen, without a ping on every use."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from kodosumi_timer.store.pinging import ping_when_idle
from tests.conftest import require_pg

pytestmark = pytest.mark.pg


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(url: str, pid: int) -> None:
    other = create_async_engine(url)
    async with other.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await other.dispose()


async def test_an_idle_connection_that_died_is_replaced_before_use() -> None:
    url = require_pg()
    engine = create_async_engine(url)
    ping_when_idle(engine, idle=0.0)  # every connection back in the pool counts as idle
    dead = await _backend_pid(engine)
    await _terminate(url, dead)
    assert await _backend_pid(engine) != dead  # answered, by a new connection
    await engine.dispose()


async def test_a_busy_connection_is_not_pinged_and_a_dead_one_fails_once() -> None:
    url = require_pg()
    engine = create_async_engine(url)
    ping_when_idle(engine, idle=3600.0)  # never idle long enough to be pinged
    dead = await _backend_pid(engine)
    await _terminate(url, dead)
    with pytest.raises(DBAPIError):  # not pinged: the statement meets the dead link
        await _backend_pid(engine)
    assert await _backend_pid(engine) != dead  # the pool was dropped; the retry works
    await engine.dispose()


async def test_a_ping_costs_round_trips_only_after_idling() -> None:
    url = require_pg()
    busy, idle = create_async_engine(url), create_async_engine(url)
    ping_when_idle(busy, idle=3600.0)
    ping_when_idle(idle, idle=0.0)
    for engine in (busy, idle):
        await _backend_pid(engine)  # the connection is made and back in the pool
    pings: dict[str, int] = {}
    for name, engine in (("busy", busy), ("idle", idle)):
        calls = 0
        real = engine.dialect.do_ping

        def counting(conn, real=real):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            return real(conn)

        engine.dialect.do_ping = counting  # type: ignore[method-assign]
        for _ in range(3):
            await _backend_pid(engine)
        pings[name] = calls
        await engine.dispose()
    assert pings == {"busy": 0, "idle": 3}
