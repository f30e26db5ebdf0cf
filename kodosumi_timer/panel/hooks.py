"""Trigger URLs (issue 13; the user's design, approach 2): a secret URL that runs a
schedule now, as its owner, for machines that cannot log in (an external cron, a CI job,
another system's webhook).

The token is shown once, in the answer that makes it; the store keeps only its SHA-256,
and a call finds its schedule by that hash (an index lookup: nothing about a stored token
can be learnt from how long a wrong one takes). The URL is the credential: the route
takes no login, ignores any the caller sends, and is not behind the cross-site guard; a
foreign page that posts to it can do no more than a machine holding the URL.
"""

import hashlib
import json
import math
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import RequestBody
from litestar.params import Body, FromPath
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.types.empty import Empty
from litestar.utils.scope.state import ScopeState
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kodosumi_timer.errors import Conflict, Forbidden, InvalidInput, NotFound, TimerError
from kodosumi_timer.models import MAX_INPUTS_BYTES, ErrorBody, RunResponse
from kodosumi_timer.panel.api import (
    NOT_FOUND,
    ROW_KEY,
    ApiOperation,
    active_user_guard,
    handle_timer_error,
    json_body_guard,
    run_response,
    same_origin_guard,
    visible_schedule_guard,
)
from kodosumi_timer.panel.services import PanelServices, caller, services_from
from kodosumi_timer.schedules import checked_inputs
from kodosumi_timer.store import ScheduleRow
from kodosumi_timer.store.tables import ChangeRow

# where the schedule router is mounted, and the trigger URLs under it
HOOK_PATH = "/schedule/hook"
# what kodosumi's request log and uvicorn's access log see instead of a token
HIDDEN = "/schedule/hook/(token)"
RATE_SPAN = timedelta(minutes=1)
LIMITER_KEY = "kodosumi_timer_hook_limiter"


class HookMade(BaseModel):
    url: str = Field(description="POST here, without logging in, to run the schedule now; "
                                 "it holds the token: keep it secret")
    token: str = Field(description="the secret in the URL; shown only in this answer (the "
                                   "store keeps its SHA-256)")


class HookCall(BaseModel):
    """The optional body of a call. Other fields are ignored, so that any webhook
    sender's payload is accepted; only ``inputs`` means something."""

    model_config = ConfigDict(extra="ignore")

    inputs: dict[str, Any] | None = Field(
        None, description="merged over the schedule's stored inputs and checked like them; "
                          "only when the schedule has `hook_inputs: true`")

    @field_validator("inputs")
    @classmethod
    def _bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, default=str)) > MAX_INPUTS_BYTES:
            raise ValueError(f"inputs are larger than {MAX_INPUTS_BYTES // 1024} KB as JSON")
        return value


CallBody = Annotated[HookCall | None, Body(
    media_type=RequestEncodingType.JSON,
    description="optional: `{\"inputs\": {...}}` for a schedule with `hook_inputs: true`")]


@dataclass
class CallOperation(ApiOperation):
    """The call's body is optional (Litestar documents every body as required)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


class Paused(Conflict):
    code = "paused"


class RateLimited(TimerError):
    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, retry_after: float):
        super().__init__(detail)
        self.retry_after = max(1, math.ceil(retry_after))


def _rate_limited(request: Request[Any, Any, Any], exc: RateLimited) -> Response[Any]:
    response = handle_timer_error(request, exc)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RateWindow:
    """At most ``limit`` calls per hook in any ``span`` (a sliding window, in this
    process: several panels each allow ``limit``). Only hooks that exist are counted,
    so the keys are bounded by the hooks called within a span."""

    def __init__(self, limit: int, span: timedelta = RATE_SPAN):
        self.limit = limit
        self.span = span
        self._calls: dict[str, deque[datetime]] = {}

    def admit(self, key: str, now: datetime) -> float | None:
        """Count a call and return None, or the seconds until one would be admitted."""
        for stale in [k for k, calls in self._calls.items() if calls[-1] <= now - self.span]:
            del self._calls[stale]
        calls = self._calls.setdefault(key, deque())
        while calls and calls[0] <= now - self.span:
            calls.popleft()
        if len(calls) >= self.limit:
            return (calls[0] + self.span - now).total_seconds()
        calls.append(now)
        return None


def _limiter(state: State, services: PanelServices) -> RateWindow:
    limiter = state.get(LIMITER_KEY)
    if limiter is None:
        limiter = state[LIMITER_KEY] = RateWindow(services.settings.TIMER_HOOK_RATE)
    return limiter


def hide_token(app: ASGIApp) -> ASGIApp:
    """kodosumi's request log (and uvicorn's access log) write every request's path; the
    token must not land there. The router has taken it into the path parameters already."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        scope["path"] = HIDDEN
        scope["raw_path"] = HIDDEN.encode()
        ScopeState.from_scope(scope).url = Empty  # a URL read from the real path earlier
        await app(scope, receive, send)

    return middleware


async def _may_change_hook(services: PanelServices, request: Request[Any, Any, Any],
                           row: ScheduleRow) -> None:
    me = caller(request)
    if row.system:
        if not await services.roles.is_operator(me):
            raise Forbidden("only operators make or revoke the trigger URL of a system "
                            "schedule")
    elif row.owner != me:
        raise Forbidden("only the schedule's owner makes or revokes its trigger URL (it "
                        "runs the schedule as them)")


async def _set_hook(services: PanelServices, request: Request[Any, Any, Any],
                    row: ScheduleRow, hook_hash: str | None, action: str) -> None:
    now = services.clock()
    # the log says that it happened, never the token nor its hash
    change = ChangeRow(schedule_id=row.id, at=now, actor=caller(request), action=action,
                       fields={})
    if await services.store.update_logged(row.id, row.version,
                                          {"hook_hash": hook_hash, "updated": now},
                                          change) is None:
        raise Conflict(f"schedule {row.id} was changed meanwhile; try again")


HOOK_RESPONSES = {**NOT_FOUND,
                  403: ResponseSpec(data_container=ErrorBody, description=(
                      "cross-site request, or not the owner (operators: system schedules "
                      "only)")),
                  409: ResponseSpec(data_container=ErrorBody,
                                    description="the schedule changed meanwhile; try again")}


class HookController(Controller):
    """Making and revoking a schedule's trigger URL: like every other schedule route."""

    tags = ["Schedules"]
    guards = [same_origin_guard, active_user_guard, visible_schedule_guard, json_body_guard]

    @post("/{schedule_id:str}/hook", summary="Make a trigger URL", status_code=201,
          operation_id="makeHook", operation_class=ApiOperation, responses=HOOK_RESPONSES,
          description="A new secret URL that runs the schedule now, as its owner, when "
                      "anything POSTs to it, no login needed. The answer is the only "
                      "place its token is shown (the store keeps its SHA-256); making one "
                      "again replaces it, and the old URL answers 404 from then on. Only "
                      "the owner; for a system schedule, operators.")
    async def make_hook(self, request: Request[Any, Any, Any], state: State,
                        schedule_id: FromPath[str]) -> Response[HookMade]:
        services = services_from(state)
        row: ScheduleRow = request.state[ROW_KEY]
        await _may_change_hook(services, request, row)
        token = secrets.token_urlsafe(32)
        await _set_hook(services, request, row, token_hash(token), "hook")
        url = f"{str(request.base_url).rstrip('/')}{HOOK_PATH}/{token}"
        return Response(HookMade(url=url, token=token), status_code=201,
                        headers={"Cache-Control": "no-store"})

    @delete("/{schedule_id:str}/hook", summary="Revoke the trigger URL", status_code=204,
            operation_id="revokeHook", operation_class=ApiOperation, responses=HOOK_RESPONSES,
            description="The trigger URL answers 404 from now on. A schedule without one "
                        "answers 204 as well. Only the owner; for a system schedule, "
                        "operators.")
    async def revoke_hook(self, request: Request[Any, Any, Any], state: State,
                          schedule_id: FromPath[str]) -> None:
        services = services_from(state)
        row: ScheduleRow = request.state[ROW_KEY]
        await _may_change_hook(services, request, row)
        if row.hook_hash is not None:
            await _set_hook(services, request, row, None, "unhook")


CALL_RESPONSES = {
    404: ResponseSpec(data_container=ErrorBody,
                      description="no such trigger URL (never made, replaced or revoked)"),
    409: ResponseSpec(data_container=ErrorBody, description=(
        "`paused`: the schedule is paused; `conflict`: its last execution is still "
        "running (overlap=skip), or a run for this very instant exists")),
    403: ResponseSpec(data_container=ErrorBody,
                      description="the schedule's owner is not an active user"),
    422: ResponseSpec(data_container=ErrorBody, description=(
        "a body that is not JSON, `inputs` to a hook that takes none, or inputs the "
        "agent's form refuses (`field`: `inputs.<name>`)")),
    429: ResponseSpec(data_container=ErrorBody, description=(
        "more calls within a minute than KODO_TIMER_HOOK_RATE allows; `Retry-After` "
        "says in how many seconds one is taken again")),
    503: ResponseSpec(data_container=ErrorBody,
                      description="the agent's form cannot be read now to check the inputs"),
}


@post(f"{HOOK_PATH.removeprefix('/schedule')}/{{token:str}}", summary="Call a trigger URL",
      status_code=202, operation_id="callHook", operation_class=CallOperation,
      response_description="the run, queued: the timer launches it at once",
      opt={"no_auth": True}, middleware=[hide_token], tags=["Schedules"],
      responses=CALL_RESPONSES,
      exception_handlers={RateLimited: _rate_limited},
      description="Runs the schedule now as its owner, recorded with trigger `hook`; no "
                  "login (the URL is the credential; a token or cookie sent along is "
                  "ignored). Respects `overlap=skip` (409 while the last execution runs); a "
                  "paused schedule answers 409 `paused`. With `hook_inputs: true` on the "
                  "schedule, a JSON body `{\"inputs\": {...}}` is merged over its stored "
                  "inputs for this run and checked against the agent's form like them. "
                  "At most KODO_TIMER_HOOK_RATE calls (default 6) per minute per URL; more "
                  "are 429 with Retry-After.")
async def call_hook(state: State, token: FromPath[str], data: CallBody = None
                    ) -> Response[RunResponse]:
    services = services_from(state)
    hashed = token_hash(token)
    row = await services.store.schedule_by_hook(hashed)
    if row is None:
        raise NotFound("no such trigger URL (it may have been replaced or revoked)")
    now = services.clock()
    wait = _limiter(state, services).admit(hashed, now)
    if wait is not None:
        raise RateLimited(f"this trigger URL takes {services.settings.TIMER_HOOK_RATE} "
                          f"calls a minute; try again in {math.ceil(wait)} s", wait)
    if row.state == "paused":
        raise Paused(f"schedule {row.id} is paused; its owner resumes it to run it again")
    if not row.system and await services.roles.owner_state(row.owner) != "active":
        raise Forbidden("the schedule's owner is not an active user")
    inputs = await _call_inputs(services, row, data)
    if row.overlap == "skip" and await services.store.has_active_run(row.id):
        raise Conflict(f"schedule {row.id} still has an execution running (overlap=skip)")
    run = await services.store.queue_hook_run(row, now, inputs)
    if run is None:
        raise Conflict(f"schedule {row.id} has a run for this very instant already; try "
                       "again")
    services.wake()
    return Response(run_response(run), status_code=202)


async def _call_inputs(services: PanelServices, row: ScheduleRow,
                       data: HookCall | None) -> dict[str, Any] | None:
    """The run's own inputs (the stored ones with the call's merged over them, checked
    against the agent's form), or None: the schedule's."""
    if data is None or data.inputs is None:
        return None
    if not row.hook_inputs:
        raise InvalidInput("this schedule's hook takes no inputs (its owner may set "
                           "hook_inputs: true)", field="inputs")
    return await checked_inputs(services.flows, row.flow_url, row.owner,
                                {**(row.inputs or {}), **data.inputs})
