"""The ``/schedule`` REST API: thin handlers over :mod:`kodosumi_timer.schedules` and the store."""

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from kodosumi_timer.errors import LimitExceeded, NotFound, TimerError
from kodosumi_timer.models import ErrorBody, ScheduleCreate, ScheduleList, ScheduleResponse
from kodosumi_timer.panel.services import services_from
from kodosumi_timer.schedules import build_schedule, to_response


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description)


NOT_FOUND = {404: _spec("no such schedule of yours")}
INVALID = {422: _spec("invalid input; `field` names the culprit")}


def caller(request: Request[Any, Any, Any]) -> str:
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


def handle_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    first = problems[0] if problems else {}
    field = first.get("key") if isinstance(first, dict) else None
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


class ScheduleController(Controller):
    tags = ["Schedules"]

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

    @get("/", summary="List your schedules",
         description="The caller's schedules, soonest next run first.")
    async def list_schedules(
        self, request: Request[Any, Any, Any], state: State,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> ScheduleList:
        services = services_from(state)
        rows, total = await services.store.list_schedules(caller(request), limit, offset)
        return ScheduleList(items=[to_response(r) for r in rows], total=total,
                            limit=limit, offset=offset)

    @get("/{schedule_id:str}", summary="Get a schedule",
         responses=NOT_FOUND)
    async def get_schedule(self, request: Request[Any, Any, Any], state: State,
                           schedule_id: FromPath[str]) -> ScheduleResponse:
        row = await services_from(state).store.get_schedule(schedule_id, caller(request))
        if row is None:
            raise NotFound(f"schedule {schedule_id} not found")
        return to_response(row)

    @delete("/{schedule_id:str}", summary="Delete a schedule", status_code=204,
            description="Deletes the schedule and its run history.",
            responses=NOT_FOUND)
    async def delete_schedule(self, request: Request[Any, Any, Any], state: State,
                              schedule_id: FromPath[str]) -> None:
        if not await services_from(state).store.delete_schedule(schedule_id, caller(request)):
            raise NotFound(f"schedule {schedule_id} not found")
