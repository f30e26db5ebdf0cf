"""The ``/schedule`` REST API: thin handlers over :mod:`kodosumi_timer.schedules` and the store."""

import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from kodosumi_timer import cron
from kodosumi_timer.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    NotFound,
    TimerError,
)
from kodosumi_timer.models import (
    ErrorBody,
    PreviewRequest,
    PreviewResponse,
    PreviewTime,
    RunList,
    RunResponse,
    ScheduleCreate,
    ScheduleList,
    ScheduleResponse,
    ScheduleUpdate,
)
from kodosumi_timer.panel.services import PanelServices, services_from
from kodosumi_timer.schedules import (
    build_schedule,
    canonical_flow_url,
    plan_update,
    resume_values,
    to_response,
)
from kodosumi_timer.store import RunRow, ScheduleRow
from kodosumi_timer.store.repository import ScheduleFilter


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description)


# every route may answer these: no or a bad token, bad input (also bad query parameters),
# and a refused cross-site request
COMMON = {401: _spec("no valid token or session"),
          403: _spec("not allowed (cross-site request, or operators only)"),
          422: _spec("invalid input; `field` names the culprit")}
# `/schedule/preview` is a route of its own (POST only): GET, PUT or DELETE of a schedule
# whose id would be "preview" get the router's 405
ONE = {**COMMON, 404: _spec("no such schedule of yours"),
       405: ResponseSpec(data_container=None,
                         description="`preview` is not a schedule id (POST-only route)")}
NOT_FOUND = {**COMMON, 404: _spec("no such schedule of yours")}
INVALID = COMMON
EDIT = {**ONE, 409: _spec("changed meanwhile (stale `version`) or not editable")}
ACT = {**NOT_FOUND, 409: _spec("not possible in the schedule's state")}


def caller(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's role id as the panel shows it (with dashes)."""
    user = str(request.user)
    try:
        return str(uuid.UUID(user))
    except ValueError:
        return user


def _error(status: int, code: str, detail: str, field: str | None = None) -> Response[Any]:
    return Response({"error": code, "detail": detail, "field": field}, status_code=status)


def handle_timer_error(_: Request[Any, Any, Any], exc: TimerError) -> Response[Any]:
    return _error(exc.status, exc.code, exc.detail, exc.field)


# query parameters whose Python name differs from their name in the URL
QUERY_NAMES = {"schedule_type": "type", "all_users": "all"}


def handle_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    first = problems[0] if problems else {}
    field = first.get("key") if isinstance(first, dict) else None
    if isinstance(first, dict) and first.get("source") == "query":
        field = QUERY_NAMES.get(str(field), field)
    message = first.get("message") if isinstance(first, dict) else None
    detail = f"{field}: {message}" if field and message else (message or "invalid input")
    if len(problems) > 1:
        detail += f" (and {len(problems) - 1} more)"
    return _error(422, "invalid_input", detail, field or None)


def handle_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, NotAuthorizedException):
        return _error(401, "not_authorized", "log in or send a KODOSUMI_API_KEY header")
    if isinstance(exc, NotFoundException):
        return _error(404, "not_found", "no such route")
    if isinstance(exc, ClientException) and exc.status_code == 400:
        # a body that is not JSON, or not the JSON we expect, is bad input
        return _error(422, "invalid_input", str(exc.detail))
    return _error(exc.status_code, "http_error", str(exc.detail))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    request.logger.exception("unexpected error on %s", request.url.path)
    return _error(500, "internal_error", "the schedule service failed; see the panel's log")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    TimerError: handle_timer_error,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}


def same_origin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Refuse cross-site requests that change state when the browser's cookie is the
    credential: a foreign page could otherwise pause or trigger someone's schedules.
    API clients send the KODOSUMI_API_KEY header, which no foreign page can add."""
    if connection.scope.get("method", "GET") in ("GET", "HEAD", "OPTIONS"):
        return
    if connection.headers.get("kodosumi_api_key"):
        return
    site = connection.headers.get("sec-fetch-site")
    origin = connection.headers.get("origin")
    host = connection.headers.get("host")
    if site not in (None, "same-origin", "none"):
        raise Forbidden("cross-site requests may not change schedules")
    if origin and host and origin.split("://", 1)[-1] != host:
        raise Forbidden("cross-site requests may not change schedules")
    content_type = connection.headers.get("content-type", "")
    if content_type and not content_type.startswith("application/json"):
        raise InvalidInput("send JSON (content-type: application/json)", field=None)


async def active_user_guard(connection: ASGIConnection[Any, Any, Any, Any],
                            _: BaseRouteHandler) -> None:
    """kodosumi's token check never looks at the role table: a deactivated or deleted
    user's token stays valid until it expires. Schedules are only for active users."""
    if "user" not in connection.scope:  # OPTIONS: no credentials, nothing to guard
        return
    roles = services_from(connection.app.state).roles
    if await roles.owner_state(caller(connection)) != "active":  # type: ignore[arg-type]
        raise NotAuthorizedException("this user is not active")


class ScheduleController(Controller):
    tags = ["Schedules"]
    guards = [same_origin_guard, active_user_guard]

    @post("/", summary="Create a schedule", status_code=201,
          description="Schedule a flow to run once (`run_at`) or regularly (`cron_expression`) "
                      "as the caller, with the given inputs.",
          responses=INVALID)
    async def create(self, request: Request[Any, Any, Any], state: State,
                     data: JSONBody[ScheduleCreate]) -> ScheduleResponse:
        services = services_from(state)
        owner = caller(request)
        if await services.store.count_schedules(owner) >= services.settings.TIMER_MAX_SCHEDULES:
            raise LimitExceeded(
                f"you have {services.settings.TIMER_MAX_SCHEDULES} schedules, the most allowed")
        row, notes = await build_schedule(data, owner, services.clock(), services.flows)
        await services.store.add_schedule(row)
        services.wake()
        return to_response(row, notes)

    @get("/", summary="List schedules", responses=COMMON,
         description="The caller's schedules, soonest next run first. Operators see "
                     "everyone's with `all=true`; `system=true` lists the system schedules "
                     "every user can see.")
    async def list_schedules(
        self, request: Request[Any, Any, Any], state: State,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000_000)] = 0,
        enabled: FromQuery[bool | None] = None,
        schedule_type: Annotated[Literal["once", "cron"] | None,
                                 QueryParameter(name="type")] = None,
        flow_url: FromQuery[str | None] = None,
        q: Annotated[str | None, QueryParameter(max_length=200)] = None,
        all_users: Annotated[bool, QueryParameter(name="all")] = False,
        system: FromQuery[bool | None] = None,
    ) -> ScheduleList:
        services = services_from(state)
        me = caller(request)
        owner: str | None = me
        if system:
            owner = None  # everyone sees the system schedules
        elif all_users:
            if not await services.roles.is_operator(me):
                raise Forbidden("only operators may list everyone's schedules", field="all")
            owner = None
        filters = ScheduleFilter(
            enabled=enabled, schedule_type=schedule_type,
            flow_url=canonical_flow_url(flow_url) if flow_url else None, text=q,
            system=True if system else (False if system is False else None))
        rows, total = await services.store.list_schedules(owner, limit, offset, filters)
        return ScheduleList(items=[to_response(r) for r in rows], total=total,
                            limit=limit, offset=offset)

    @post("/preview", summary="Preview a rule", status_code=200,
          description="The rule in words and its next fire times, with DST shifts marked.",
          responses=INVALID)
    async def preview(self, state: State, data: JSONBody[PreviewRequest]) -> PreviewResponse:
        services = services_from(state)
        now = services.clock()
        try:
            cron.parse_zone(data.timezone)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="timezone") from exc
        if data.cron_expression and data.run_at is None:
            try:
                text = cron.describe(data.cron_expression)
                times = cron.preview(data.cron_expression, data.timezone, now, data.count)
            except ValueError as exc:
                raise InvalidInput(str(exc), field="cron_expression") from exc
            return PreviewResponse(description=text, timezone=data.timezone, times=[
                PreviewTime(utc=t.utc, local=t.local, dst_note=t.dst_note) for t in times])
        if data.run_at is not None and not data.cron_expression:
            try:
                instant, note = cron.resolve_wall_time(data.run_at, data.timezone)
                local = instant.astimezone(cron.parse_zone(data.timezone))
            except (ValueError, OverflowError) as exc:
                raise InvalidInput(str(exc), field="run_at") from exc
            return PreviewResponse(
                description=f"Once, at {local.strftime('%Y-%m-%d %H:%M %Z')}",
                timezone=data.timezone,
                times=[PreviewTime(utc=instant, local=local, dst_note=note)])
        raise InvalidInput("give either cron_expression or run_at", field="cron_expression")

    @get("/{schedule_id:str}", summary="Get a schedule", responses=ONE)
    async def get_schedule(self, request: Request[Any, Any, Any], state: State,
                           schedule_id: FromPath[str]) -> ScheduleResponse:
        return to_response(await _visible(services_from(state), request, schedule_id))

    @put("/{schedule_id:str}", summary="Update a schedule", responses=EDIT,
         description="Change any field; send the `version` you read (409 if it is stale).")
    async def update_schedule(self, request: Request[Any, Any, Any], state: State,
                              schedule_id: FromPath[str],
                              data: JSONBody[ScheduleUpdate]) -> ScheduleResponse:
        services = services_from(state)
        row = await _visible(services, request, schedule_id)
        _not_system(row, "edited")
        values, notes = await plan_update(row, data, services.clock(), services.flows)
        updated = await services.store.update_versioned(row.id, None, data.version, values)
        if updated is None:
            raise Conflict(f"schedule {row.id} was changed meanwhile (version is now "
                           f"{(await _visible(services, request, schedule_id)).version}); "
                           "reload and try again", field="version")
        services.wake()
        return to_response(updated, notes)

    @delete("/{schedule_id:str}", summary="Delete a schedule", status_code=204,
            description="Deletes the schedule and its run history.", responses=ONE)
    async def delete_schedule(self, request: Request[Any, Any, Any], state: State,
                              schedule_id: FromPath[str]) -> None:
        services = services_from(state)
        row = await _visible(services, request, schedule_id)
        _not_system(row, "deleted")
        if not await services.store.delete_schedule(row.id):
            raise NotFound(f"schedule {schedule_id} not found")

    @post("/{schedule_id:str}/pause", summary="Pause a schedule", status_code=200,
          responses=ACT)
    async def pause(self, request: Request[Any, Any, Any], state: State,
                    schedule_id: FromPath[str]) -> ScheduleResponse:
        services = services_from(state)
        row = await _actionable(services, request, schedule_id)
        if row.state != "active":
            raise Conflict(f"schedule {row.id} is {row.state}, not active", field=None)
        values = {"state": "paused", "next_run": None, "note": None,
                  "updated": services.clock()}
        return to_response(await _apply(services, row, values))

    @post("/{schedule_id:str}/resume", summary="Resume a schedule", status_code=200,
          description="Active again from now: the next slot after now, no burst of missed "
                      "ones.", responses=ACT)
    async def resume(self, request: Request[Any, Any, Any], state: State,
                     schedule_id: FromPath[str]) -> ScheduleResponse:
        services = services_from(state)
        row = await _actionable(services, request, schedule_id)
        if row.state == "active":
            raise Conflict(f"schedule {row.id} is already active")
        if row.state == "done" and row.schedule_type == "once":
            raise Conflict(f"schedule {row.id} has run; give it a new run_at with PUT")
        updated = await _apply(services, row, resume_values(row, services.clock()))
        services.wake()
        return to_response(updated)

    @post("/{schedule_id:str}/trigger", summary="Run a schedule now", status_code=202,
          description="Launch now with the schedule's inputs, without moving `next_run`. "
                      "Respects `overlap` unless `force=true`.", responses=ACT)
    async def trigger(self, request: Request[Any, Any, Any], state: State,
                      schedule_id: FromPath[str], force: FromQuery[bool] = False) -> RunResponse:
        services = services_from(state)
        row = await _actionable(services, request, schedule_id)
        if not force and row.overlap == "skip" and await services.store.has_active_run(row.id):
            raise Conflict(f"schedule {row.id} still has an execution running "
                           "(overlap=skip); use force=true to run anyway", field="force")
        run = await services.store.queue_manual_run(row, services.clock())
        services.wake()
        return run_response(run)

    @get("/{schedule_id:str}/runs", summary="Run history of a schedule", responses=NOT_FOUND)
    async def runs(self, request: Request[Any, Any, Any], state: State,
                   schedule_id: FromPath[str],
                   limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
                   offset: Annotated[int, QueryParameter(ge=0, le=1_000_000_000)] = 0) -> RunList:
        services = services_from(state)
        row = await _visible(services, request, schedule_id)
        rows, total = await services.store.runs(row.id, limit, offset)
        return RunList(items=[run_response(r) for r in rows], total=total, limit=limit,
                       offset=offset)


def run_response(run: RunRow) -> RunResponse:
    return RunResponse(id=run.id, schedule_id=run.schedule_id, slot=run.slot,
                       attempt=run.attempt, trigger=run.trigger, status=run.status,
                       fired_at=run.fired_at, fid=run.fid, reason=run.reason,
                       finished_at=run.finished_at)


async def _visible(services: PanelServices, request: Request[Any, Any, Any],
                   schedule_id: str) -> ScheduleRow:
    """The schedule if the caller may see it: owner, operator, or a system schedule.
    Anything else is 404, so nobody learns that another user's schedule exists."""
    row = await services.store.get_schedule(schedule_id)
    me = caller(request)
    if row is not None and (row.owner == me or row.system
                            or await services.roles.is_operator(me)):
        return row
    raise NotFound(f"schedule {schedule_id} not found")


async def _actionable(services: PanelServices, request: Request[Any, Any, Any],
                      schedule_id: str) -> ScheduleRow:
    row = await _visible(services, request, schedule_id)
    if row.system and not await services.roles.is_operator(caller(request)):
        raise Forbidden("system schedules can be paused, resumed and triggered by operators "
                        "only")
    return row


def _not_system(row: ScheduleRow, verb: str) -> None:
    if row.system:
        raise Conflict(f"system schedule {row.id} comes from the schedules file; it is "
                       f"{verb} there, not through the API")


async def _apply(services: PanelServices, row: ScheduleRow,
                 values: dict[str, Any]) -> ScheduleRow:
    updated = await services.store.update_versioned(row.id, None, row.version, values)
    if updated is None:
        raise Conflict(f"schedule {row.id} was changed meanwhile; try again")
    return updated
