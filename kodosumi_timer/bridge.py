"""The only module that talks to kodosumi 1.1: owner tokens, launches through the
panel's proxy, execution status, the role table.

Launches always go through the panel (``/-/<flow>``) with a token minted for the
owner, never to Ray Serve directly: Serve trusts an ``x-kodosumi_user`` header and
would run as anyone.
"""

import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import aiohttp
import httpx
from jose import jwt
from sqlalchemy import Boolean, Column, MetaData, Table, Uuid, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

LaunchKind = Literal["launched", "rejected", "refused", "not_sent", "in_doubt"]
OwnerState = Literal["active", "inactive", "missing"]


@dataclass(frozen=True)
class LaunchOutcome:
    """``launched`` with a fid; ``rejected`` (input errors, not retried); ``refused``
    (kodosumi answered and started nothing; ``retryable`` says whether to try again);
    ``not_sent`` (never reached kodosumi: retryable); ``in_doubt`` (may have reached
    kodosumi: never sent again before kodosumi is asked, ``Launcher.find_launch``)."""

    kind: LaunchKind
    fid: str | None = None
    reason: str | None = None
    errors: dict[str, Any] = field(default_factory=dict)
    retryable: bool = False


@dataclass(frozen=True)
class Reconciled:
    """What kodosumi shows of a launch that was in doubt."""

    kind: Literal["found", "absent", "cannot_tell"]
    fid: str | None = None
    reason: str | None = None


class Launcher(Protocol):
    async def launch(self, flow_url: str, owner: str, inputs: dict[str, Any], *,
                     marker: str) -> LaunchOutcome: ...

    async def find_launch(self, flow_url: str, owner: str, inputs: dict[str, Any], *,
                          marker: str, sent_at: datetime) -> Reconciled: ...

    async def status(self, fid: str, owner: str) -> str | None: ...

    async def error_reason(self, fid: str, owner: str) -> str | None: ...

    async def close(self) -> None: ...


class Roles(Protocol):
    async def owner_state(self, owner: str) -> OwnerState: ...

    async def owner_states(self, owners: Iterable[str]) -> dict[str, OwnerState]: ...

    async def is_operator(self, owner: str) -> bool: ...

    async def close(self) -> None: ...


TOKEN_ALGORITHM = "HS256"  # kodosumi.const.ALGORITHM


def mint_token(subject: str, ttl_seconds: int, secret: str) -> str:
    """A kodosumi panel token for ``subject`` (a role id, or the timer user), short-lived.

    Signed like kodosumi's own (``kodosumi.service.jwt``) with ``KODO_SECRET_KEY``, which
    the timer must share with the panel. Never stored, never logged.
    """
    issued = time.time()
    claims = {"exp": issued + ttl_seconds, "iat": issued, "sub": subject}
    return str(jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM))


def flow_path(flow_url: str) -> str:
    """The panel path of a flow: ``/-/host/port/app/-/`` (a full URL is cut to its path)."""
    if "://" in flow_url:
        flow_url = httpx.URL(flow_url).path
    return "/" + flow_url.strip("/") + "/"


def outcome_of(status_code: int, text: str, flow_url: str) -> LaunchOutcome:
    """What the panel's answer to a launch means (pure: the HTTP client is not involved)."""
    if status_code == 404:
        return LaunchOutcome("retry", reason=f"the panel has no flow {flow_url} (not "
                             "registered, or its Serve application is gone)")
    if status_code in (401, 403):
        return LaunchOutcome("failed", reason="the panel refused the owner's token")
    # kodosumi answers a crashed flow app with a stack trace: keep only a short reason
    # the last line that says something (a trace ends in "ValueError: ...", or in a line
    # of ^ markers under it)
    lines = [line.strip() for line in text.splitlines() if re.search("[A-Za-z]", line)]
    short = f"panel answered HTTP {status_code}" + (f": {lines[-1][:200]}" if lines else "")
    if status_code >= 500:
        return LaunchOutcome("retry", reason=short)
    if status_code != 200:
        return LaunchOutcome("failed", reason=short)
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # a 200 is the panel's "launched": without its execution id nobody can tell
        return LaunchOutcome("unknown", reason="panel answered 200 without JSON; the "
                             "execution may have started")
    if body.get("errors"):
        errors = body["errors"]
        messages = [f"{name}: {'; '.join(map(str, msgs))}" if name != "_global_"
                    else "; ".join(map(str, msgs))
                    for name, msgs in errors.items() if msgs]
        return LaunchOutcome("rejected", reason="; ".join(messages) or "inputs rejected",
                             errors=errors)
    fid = body.get("result")
    if not isinstance(fid, str) or not fid:
        return LaunchOutcome("unknown", reason="panel answered 200 without an execution "
                             "id; the execution may have started")
    return LaunchOutcome("launched", fid=fid)


class PanelLauncher:
    """Launch and follow executions through kodosumi's panel, as the owner.

    One aiohttp session (at most ``connections`` connections): under many concurrent
    launches it is several times faster than httpx on a small machine (bench/RESULTS.md).
    An owner's token is reused for a third of its lifetime: signing it costs more than
    the request."""

    HEADER = "KODOSUMI_API_KEY"

    def __init__(self, panel_url: str, secret: str, token_ttl: int = 900,
                 timeout: float = 30.0, connections: int = 32):
        self.base = panel_url.rstrip("/")
        self.secret = secret
        self.token_ttl = token_ttl
        self.timeout = timeout
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, tuple[float, str]] = {}

    def session(self) -> aiohttp.ClientSession:
        """The shared session, made on first use inside the running loop."""
        if self._session is None:
            # idle connections are dropped before the panel's (uvicorn: 5 s) would close
            # them under a request
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=2),
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    def _headers(self, owner: str) -> dict[str, str]:
        # the wall clock, as the token's own expiry: a suspended machine wakes with
        # fresh tokens
        now = time.time()
        cached = self._tokens.get(owner)
        if cached is None or not now < cached[0]:
            cached = (now + self.token_ttl / 3, mint_token(owner, self.token_ttl, self.secret))
            self._tokens[owner] = cached
        return {self.HEADER: cached[1], "Accept": "application/json"}

    async def launch(self, flow_url: str, owner: str, inputs: dict[str, Any]) -> LaunchOutcome:
        try:
            async with self.session().post(self.base + flow_path(flow_url), json=inputs,
                                           headers=self._headers(owner)) as response:
                return outcome_of(response.status, await response.text(), flow_url)
        except aiohttp.ConnectionTimeoutError as exc:  # never connected: safe to retry
            return LaunchOutcome("retry", reason=f"panel unreachable: {exc.__class__.__name__}")
        except TimeoutError:
            # the request went out and no answer came: kodosumi may have started it, and
            # a second attempt could run it twice
            return LaunchOutcome("unknown", reason=f"the panel did not answer within "
                                 f"{self.timeout:.0f} s; the execution may have started")
        except aiohttp.ClientResponseError as exc:
            # an answer whose body could not be read (kodosumi's proxy passes on headers of
            # the Serve app behind it): judged by its status like any other answer
            return outcome_of(exc.status, f"unreadable answer: {exc.message}", flow_url)
        except aiohttp.ClientError as exc:
            return LaunchOutcome("retry", reason=f"panel unreachable: {exc.__class__.__name__}")

    async def status(self, fid: str, owner: str) -> str | None:
        """The execution's kodosumi status, or None while the panel does not know it yet."""
        try:
            async with self.session().get(f"{self.base}/outputs/status/{fid}",
                                          headers=self._headers(owner)) as response:
                if response.status != 200:
                    return None
                status = (await response.json()).get("status")
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None
        return status if isinstance(status, str) else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def role_uuid(owner: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(owner)
    except ValueError:
        return None


# kodosumi's ``roles`` table (kodosumi.dtypes.Role), only the columns read here: importing
# kodosumi.dtypes pulls in litestar, which took 1-5 s at the timer's first fire
ROLES = Table("roles", MetaData(), Column("id", Uuid, primary_key=True),
              Column("active", Boolean), Column("operator", Boolean))


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

    async def close(self) -> None:
        await self.engine.dispose()
