"""The only module that talks to kodosumi 1.1: owner tokens, launches through the
panel's proxy, execution status, the role table.

Launches always go through the panel (``/-/<flow>``) with a token minted for the
owner, never to Ray Serve directly: Serve trusts an ``x-kodosumi_user`` header and
would run as anyone.
"""

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
from jose import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

LaunchKind = Literal["launched", "rejected", "retry", "failed"]
OwnerState = Literal["active", "inactive", "missing"]


@dataclass(frozen=True)
class LaunchOutcome:
    """``launched`` with a fid; ``rejected`` (input errors, not retried); ``retry``
    (transient: panel or Serve unreachable, 5xx); ``failed`` (permanent, not retried)."""

    kind: LaunchKind
    fid: str | None = None
    reason: str | None = None
    errors: dict[str, Any] = field(default_factory=dict)


class Launcher(Protocol):
    async def launch(self, flow_url: str, owner: str, inputs: dict[str, Any]) -> LaunchOutcome: ...

    async def status(self, fid: str, owner: str) -> str | None: ...

    async def close(self) -> None: ...


class Roles(Protocol):
    async def owner_state(self, owner: str) -> OwnerState: ...

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
    return jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM)


def flow_path(flow_url: str) -> str:
    """The panel path of a flow: ``/-/host/port/app/-/`` (a full URL is cut to its path)."""
    if "://" in flow_url:
        flow_url = httpx.URL(flow_url).path
    return "/" + flow_url.strip("/") + "/"


def _short_reason(response: httpx.Response) -> str:
    # kodosumi answers a crashed flow app with a stack trace: keep only a short reason
    text = response.text.strip().splitlines()
    last = text[-1][:200] if text else ""
    return f"panel answered HTTP {response.status_code}" + (f": {last}" if last else "")


class PanelLauncher:
    """Launch and follow executions through kodosumi's panel, as the owner."""

    HEADER = "KODOSUMI_API_KEY"

    def __init__(self, panel_url: str, secret: str, token_ttl: int = 900,
                 timeout: float = 30.0, client: httpx.AsyncClient | None = None):
        self.secret = secret
        self.token_ttl = token_ttl
        self.client = client or httpx.AsyncClient(
            base_url=panel_url.rstrip("/"), timeout=timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )

    def _headers(self, owner: str) -> dict[str, str]:
        token = mint_token(owner, self.token_ttl, self.secret)
        return {self.HEADER: token, "Accept": "application/json"}

    async def launch(self, flow_url: str, owner: str, inputs: dict[str, Any]) -> LaunchOutcome:
        try:
            response = await self.client.post(
                flow_path(flow_url), json=inputs, headers=self._headers(owner))
        except httpx.HTTPError as exc:
            return LaunchOutcome("retry", reason=f"panel unreachable: {exc.__class__.__name__}")
        if response.status_code == 404:
            return LaunchOutcome("retry", reason=f"flow {flow_url} is not registered in the panel")
        if response.status_code in (401, 403):
            return LaunchOutcome("failed", reason="the panel refused the owner's token")
        if response.status_code >= 500:
            return LaunchOutcome("retry", reason=_short_reason(response))
        if response.status_code != 200:
            return LaunchOutcome("failed", reason=_short_reason(response))
        try:
            body = response.json()
        except ValueError:
            return LaunchOutcome("failed", reason="panel answered with no JSON")
        if body.get("errors"):
            errors = body["errors"]
            messages = [f"{name}: {'; '.join(map(str, msgs))}" if name != "_global_"
                        else "; ".join(map(str, msgs))
                        for name, msgs in errors.items() if msgs]
            return LaunchOutcome("rejected", reason="; ".join(messages) or "inputs rejected",
                                 errors=errors)
        fid = body.get("result")
        if not isinstance(fid, str) or not fid:
            return LaunchOutcome("failed", reason="panel answered without an execution id")
        return LaunchOutcome("launched", fid=fid)

    async def status(self, fid: str, owner: str) -> str | None:
        """The execution's kodosumi status, or None while the panel does not know it yet."""
        try:
            response = await self.client.get(f"/outputs/status/{fid}",
                                              headers=self._headers(owner))
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        status = response.json().get("status")
        return status if isinstance(status, str) else None

    async def close(self) -> None:
        await self.client.aclose()


def role_uuid(owner: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(owner)
    except ValueError:
        return None


class RoleTable:
    """Reads kodosumi's ``roles`` table: the panel's JWT check never consults it."""

    def __init__(self, admin_database: str, engine: AsyncEngine | None = None):
        # imported here, once, not at the first fire: it pulls in litestar (~1-2 s)
        from kodosumi.dtypes import Role

        self.role = Role
        self.engine = engine or create_async_engine(admin_database)

    async def _role(self, owner: str) -> Any:
        Role = self.role
        rid = role_uuid(owner)
        if rid is None:
            return None
        async with self.engine.connect() as conn:
            result = await conn.execute(select(Role.active, Role.operator).where(Role.id == rid))
            return result.first()

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
