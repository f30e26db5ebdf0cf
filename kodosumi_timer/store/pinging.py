"""Ping a pooled PostgreSQL connection before use only when it sat idle a while.

SQLAlchemy's ``pool_pre_ping`` pings on every checkout, and with asyncpg a ping is three
round trips (BEGIN, ``;``, ROLLBACK): in a burst that doubled the store's round trips for
nothing, the connections having been used a moment before. A connection that sat idle is
the one a database restart or a dropped link leaves dead; a busy one that died fails its
statement, SQLAlchemy then drops the whole pool, and the caller's retry gets a new one.
"""

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

IDLE = 5.0  # seconds in the pool after which a connection is pinged before use


def ping_when_idle(engine: AsyncEngine, idle: float = IDLE) -> None:
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool drops it and checks out another
            raise DisconnectionError(f"a pooled connection failed its ping: {exc!r}") from exc
