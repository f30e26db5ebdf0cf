"""The ``/schedule`` REST API: thin handlers over :mod:`kodosumi_timer.schedules` and the store."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Litestar, Request, Response, delete, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.datastructures import ResponseHeader, State
from litestar.enums import RequestEncodingType
from litestar.exceptions import (
    ClientException,
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from litestar.exceptions.responses import create_exception_response
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Link, OpenAPIResponse, Operation
from litestar.params import Body, FromPath, FromQuery, HeaderParameter, QueryParameter

from kodosumi_timer.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    NotFound,
    TimerError,
)
from kodosumi_timer.history import kept
from kodosumi_timer.models import (
    AttentionResponse,
    BackfillRequest,
    BackfillResponse,
    ChangeList,
    ChangeResponse,
    DeliveryList,
    DeliveryResponse,
    ErrorBody,
    FieldChange,
    PreviewRequest,
    PreviewResponse,
    RunList,
    RunResponse,
    ScheduleCreate,
    ScheduleList,
    SchedulePatch,
    ScheduleResponse,
    ScheduleUpdate,
)
from kodosumi_timer.notify import guard
from kodosumi_timer.notify import settings as notify_settings
from kodosumi_timer.notify.signing import new_secret
from kodosumi_timer.panel.services import PanelServices, caller, inputs_problem, services_from
from kodosumi_timer.previews import rule_preview
from kodosumi_timer.rules import rule_of
from kodosumi_timer.schedules import (
    OWNER_ONLY,
    aware,
    build_schedule,
    canonical_flow_url,
    changed_fields,
    plan_update,
    requested_changes,
    resume_values,
    to_response,
    with_text,
)
from kodosumi_timer.store import RunRow, ScheduleRow
from kodosumi_timer.store.repository import ScheduleFilter
from kodosumi_timer.store.tables import ChangeRow, NotificationRow


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description)


# every route may answer these: no or a bad token, bad input (also bad query parameters),
# and a refused cross-site request
COMMON = {401: _spec("no valid token or session"),
          403: _spec("not allowed (cross-site request, or operators only)"),
          422: _spec("invalid input; `field` names the culprit")}
# an id that is another route's path (`preview`, or one with a `/`) meets that route:
# the router answers 405 for a method it does not take
NOT_FOUND = {**COMMON, 404: _spec("no such schedule among the ones you can see"),
             405: _spec("the path is another route's (`preview` is not a schedule id)")}
ONE = NOT_FOUND
INVALID = COMMON
EDIT = {**ONE,
        403: _spec("not allowed: cross-site request, or an operator changing what runs as "
                   "another user (flow, inputs, rule, zone, policies)"),
        409: _spec("changed meanwhile (stale `version` or If-Match), or a system schedule")}
ACT = {**NOT_FOUND, 409: _spec("not possible in the schedule's state")}
REMOVE = {**ONE, 409: _spec("changed meanwhile (If-Match), or a system schedule")}

ETAG = ResponseHeader(name="ETag", value='"1"', documentation_only=True, required=True,
                      description="the schedule's version; send it back as If-Match to write "
                                  "only if nobody changed the schedule meanwhile")
IfMatch = Annotated[str | None, HeaderParameter(
    name="If-Match", required=False, max_length=1000,
    schema_extra={"type": "string", "one_of": None},
    description="an ETag this schedule answered with (or `*`): 409 if it has changed since")]
# request bodies refuse unknown fields (the models forbid extras); say so in the schema
_STRICT = {"additional_properties": False}
CreateBody = Annotated[ScheduleCreate, Body(media_type=RequestEncodingType.JSON,
                                            schema_extra=_STRICT)]
UpdateBody = Annotated[ScheduleUpdate, Body(media_type=RequestEncodingType.JSON,
                                            schema_extra=_STRICT)]
PatchBody = Annotated[SchedulePatch, Body(media_type="application/merge-patch+json",
                                          schema_extra=_STRICT)]
PreviewBody = Annotated[PreviewRequest, Body(media_type=RequestEncodingType.JSON,
                                             schema_extra=_STRICT)]
BackfillBody = Annotated[BackfillRequest, Body(media_type=RequestEncodingType.JSON,
                                               schema_extra=_STRICT)]
MAX_BACKFILL = 1000
JSON_TYPES = ("application/json", "application/merge-patch+json")

# the routes of one schedule, and the OpenAPI links that lead there from an answer that
# carries a schedule (clients and schemathesis' stateful tests follow them)
ONE_SCHEDULE_OPERATIONS = ("getSchedule", "updateSchedule", "patchSchedule", "deleteSchedule",
                           "pauseSchedule", "resumeSchedule", "triggerSchedule",
                           "backfillSchedule",
                           "scheduleRuns", "scheduleChanges")



def _link(operation: str) -> Link:
    parameters: dict[str, Any] = {"schedule_id": "$response.body#/id"}
    if operation == "updateSchedule":
        # read-modify-write: what was read goes back as it is
        return Link(operation_id=operation, parameters=parameters,
                    request_body="$response.body")
    if operation == "patchSchedule":
        # a conditional write on what was read
        return Link(operation_id=operation, parameters=parameters,
                    request_body={"version": "$response.body#/version"})
    return Link(operation_id=operation, parameters=parameters)


@dataclass
class ApiOperation(Operation):
    """Litestar documents a 400 for every route with parameters; ours answer bad input
    with 422 (``handle_validation``), never 400."""

    def __post_init__(self) -> None:
        if self.responses:
            self.responses.pop("400", None)


@dataclass
class ScheduleOperation(ApiOperation):
    """An operation whose success answer is a schedule: links to the schedule's routes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for status, response in (self.responses or {}).items():
            if status in ("200", "201") and isinstance(response, OpenAPIResponse):
                response.links = {name: _link(name) for name in ONE_SCHEDULE_OPERATIONS}


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
    if isinstance(message, str):  # pydantic's prefix for a validator's ValueError
        message = message.removeprefix("Value error, ")
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


def _ours(path: str) -> bool:
    return path == "/schedule" or path.startswith("/schedule/")


def install_route_errors(app: Litestar) -> None:
    """The router's own 404 and 405 (no route, or a method the route does not take) come
    from the app's handlers, not from our router's: answer them in our error format for
    /schedule paths (kodosumi's handler would add a stack trace); leave the rest as it was."""
    others = dict(app.exception_handlers)

    def route_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        if not _ours(request.url.path):
            fallback = others.get(exc.status_code) or next(
                (others[cls] for cls in type(exc).__mro__ if cls in others), None)
            return fallback(request, exc) if fallback else create_exception_response(request, exc)
        if isinstance(exc, MethodNotAllowedException):
            allowed = (exc.headers or {}).get("allow", "")
            response = _error(405, "method_not_allowed",
                              f"{request.method} is not allowed on {request.url.path}; "
                              f"allowed: {allowed or 'none'}")
            response.headers["allow"] = allowed
            return response
        if isinstance(exc, NotFoundException):
            return _error(404, "not_found", "no such route")
        return handle_http(request, exc)

    app.exception_handlers[404] = route_error
    app.exception_handlers[405] = route_error


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


async def active_user_guard(connection: ASGIConnection[Any, Any, Any, Any],
                            _: BaseRouteHandler) -> None:
    """kodosumi's token check never looks at the role table: a deactivated or deleted
    user's token stays valid until it expires. Schedules are only for active users."""
    if "user" not in connection.scope:  # OPTIONS: no credentials, nothing to guard
        return
    roles = services_from(connection.app.state).roles
    if await roles.owner_state(caller(connection)) != "active":
        raise NotAuthorizedException("this user is not active")


ROW_KEY = "kodosumi_timer_schedule"


async def visible_schedule_guard(connection: ASGIConnection[Any, Any, Any, Any],
                                 _: BaseRouteHandler) -> None:
    """Load the schedule of a ``{schedule_id}`` route before anything reads the body: a
    schedule the caller may not see is the same 404 on every route, whatever was sent."""
    schedule_id = connection.path_params.get("schedule_id")
    if schedule_id is None or "user" not in connection.scope:
        return
    services = services_from(connection.app.state)
    row = await services.store.get_schedule(schedule_id)
    me = caller(connection)
    if row is None or not (row.owner == me or row.system
                           or await services.roles.is_operator(me)):
        raise NotFound(f"schedule {schedule_id} not found")
    connection.state[ROW_KEY] = row


def json_body_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A browser's form post (no CORS preflight) is never JSON: refuse it."""
    if connection.scope.get("method", "GET") in ("GET", "HEAD", "OPTIONS"):
        return
    if connection.headers.get("kodosumi_api_key"):
        return
    content_type = connection.headers.get("content-type", "")
    if content_type and not content_type.startswith(JSON_TYPES):
        raise InvalidInput("send JSON (content-type: application/json)", field=None)


class ScheduleController(Controller):
    tags = ["Schedules"]
    # in this order: cross-site 403, inactive user 401, not yours 404, then the body
    guards = [same_origin_guard, active_user_guard, visible_schedule_guard, json_body_guard]

    @post("/", summary="Create a schedule", status_code=201, operation_id="createSchedule",
          operation_class=ScheduleOperation, response_headers=[ETAG],
          description="Schedule a flow to run once (`run_at`), on a calendar "
                      "(`cron_expression`) or every so often (`every`) as the caller, with "
                      "the given inputs; or give the rule in words as `text`.",
          responses=INVALID)
    async def create(self, request: Request[Any, Any, Any], state: State,
                     data: CreateBody) -> Response[ScheduleResponse]:
        services = services_from(state)
        owner = caller(request)
        if await services.store.count_schedules(owner) >= services.settings.TIMER_MAX_SCHEDULES:
            raise LimitExceeded(
                f"you have {services.settings.TIMER_MAX_SCHEDULES} schedules, the most allowed")
        now = services.clock()
        row, notes = await build_schedule(data, owner, now, services.flows)
        for key, value in notify_settings.values(None, data.notify, _allow(services)).items():
            setattr(row, key, value)
        await services.store.add_schedule_logged(row, _change(row, owner, "create", now))
        services.wake()
        return _answer(row, notes, status_code=201, secret=True)

    @get("/", summary="List schedules", responses=COMMON, operation_id="listSchedules",
         operation_class=ApiOperation,
         description="The caller's schedules, soonest next run first. Operators see "
                     "everyone's with `all=true`; `system=true` lists the system schedules "
                     "every user can see. `q` matches title, name and flow URL literally.")
    async def list_schedules(
        self, request: Request[Any, Any, Any], state: State,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000_000)] = 0,
        enabled: FromQuery[bool | None] = None,
        schedule_type: Annotated[Literal["once", "cron", "interval"] | None,
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

    @post("/preview", summary="Preview a rule", status_code=200, operation_id="previewSchedule",
          operation_class=ApiOperation,
          description="The rule in words and its next fire times, with DST shifts marked. "
                      "Send `cron_expression`, `run_at`, `every`, or `text`: a rule in English "
                      "(\"every weekday at 9am\", \"every 90 minutes\", \"first Monday of "
                      "the month at 08:30\", \"tomorrow at 9\", \"in 2 hours\"), read by "
                      "the timer's own grammar, no network; the answer's `rule` is what it "
                      "was read as, a 422 naming `text` says what was not understood and the "
                      "nearest form it knows. An interval's times are anchor + k·every in "
                      "elapsed time (no anchor: counted from now). `exclude_dates` show as "
                      "skipped times, `jitter` as each time's `send_at`, and `dst_effects` "
                      "says what each `dst_policy` choice does at the next DST changes.",
          responses=INVALID)
    async def preview(self, state: State, data: PreviewBody) -> PreviewResponse:
        return rule_preview(data, services_from(state).clock())

    @get("/attention", summary="Your failed runs since you last looked", responses=COMMON,
         operation_id="scheduleAttention", operation_class=ApiOperation,
         description="How many of your runs ended error, failed, rejected or unknown since "
                     "you last opened the Schedules page (the count in the navigation).")
    async def attention(self, request: Request[Any, Any, Any], state: State
                        ) -> AttentionResponse:
        services = services_from(state)
        me = caller(request)
        since = await services.store.seen_at(me) or services.clock() - UNSEEN_FOR
        return AttentionResponse(failed=await services.store.failed_since(me, since),
                                 since=since)

    @get("/{schedule_id:str}", summary="Get a schedule", responses=ONE,
         operation_id="getSchedule", operation_class=ScheduleOperation, response_headers=[ETAG])
    async def get_schedule(self, request: Request[Any, Any, Any], state: State,
                           schedule_id: FromPath[str]) -> Response[ScheduleResponse]:
        row = _row(request)
        response = _answer(row)
        response.content.inputs_problem = await inputs_problem(services_from(state), row)
        return response

    @put("/{schedule_id:str}", summary="Update a schedule", responses=EDIT,
         operation_id="updateSchedule", operation_class=ScheduleOperation,
         response_headers=[ETAG],
         description="Send the schedule as GET returned it, changed where you want: fields "
                     "left out keep their value, `null` clears a field (or resets it to its "
                     "default); read-only fields are accepted unchanged. `version` (or "
                     "If-Match) makes the write conditional: 409 if the schedule changed "
                     "since you read it. Operators may change only `title` and `expose_name` "
                     "of another user's schedule.")
    async def update_schedule(self, request: Request[Any, Any, Any], state: State,
                              schedule_id: FromPath[str], data: UpdateBody,
                              if_match: IfMatch = None) -> Response[ScheduleResponse]:
        return await _write(services_from(state), request, data, if_match, merge=False)

    @patch("/{schedule_id:str}", summary="Change part of a schedule", responses=EDIT,
           operation_id="patchSchedule", operation_class=ScheduleOperation,
           response_headers=[ETAG],
           description="A JSON merge patch (RFC 7386): only the fields sent change, `null` "
                       "removes (clears or resets to the default), `inputs` merge key by key. "
                       "Conditional with `version` or If-Match like PUT.")
    async def patch_schedule(self, request: Request[Any, Any, Any], state: State,
                             schedule_id: FromPath[str], data: PatchBody,
                             if_match: IfMatch = None) -> Response[ScheduleResponse]:
        return await _write(services_from(state), request, data, if_match, merge=True)

    @delete("/{schedule_id:str}", summary="Delete a schedule", status_code=204,
            operation_id="deleteSchedule", operation_class=ApiOperation,
            description="Deletes the schedule, its run history and its change log. Operators "
                        "may delete anyone's.", responses=REMOVE)
    async def delete_schedule(self, request: Request[Any, Any, Any], state: State,
                              schedule_id: FromPath[str], if_match: IfMatch = None) -> None:
        services = services_from(state)
        row = _row(request)
        _not_system(row, "delete")
        _preconditions(row, None, if_match)
        if not await services.store.delete_schedule_logged(row.id):
            raise NotFound(f"schedule {schedule_id} not found")

    @post("/{schedule_id:str}/pause", summary="Pause a schedule", status_code=200,
          operation_id="pauseSchedule", operation_class=ScheduleOperation,
          response_headers=[ETAG], responses=ACT)
    async def pause(self, request: Request[Any, Any, Any], state: State,
                    schedule_id: FromPath[str]) -> Response[ScheduleResponse]:
        services = services_from(state)
        row = await _actionable(services, request)
        if row.state != "active":
            raise Conflict(f"schedule {row.id} is {row.state}, not active", field=None)
        values = {"state": "paused", "next_run": None, "note": None,
                  "updated": services.clock()}
        return _answer(await _apply(services, request, row, values, "pause"))

    @post("/{schedule_id:str}/resume", summary="Resume a schedule", status_code=200,
          operation_id="resumeSchedule", operation_class=ScheduleOperation,
          response_headers=[ETAG],
          description="Active again from now: the next slot after now, no burst of missed "
                      "ones.", responses=ACT)
    async def resume(self, request: Request[Any, Any, Any], state: State,
                     schedule_id: FromPath[str]) -> Response[ScheduleResponse]:
        services = services_from(state)
        row = await _actionable(services, request)
        if row.state == "active":
            raise Conflict(f"schedule {row.id} is already active")
        if row.state == "done" and row.schedule_type == "once":
            raise Conflict(f"schedule {row.id} has run; give it a new run_at with PUT")
        updated = await _apply(services, request, row, resume_values(row, services.clock()),
                               "resume")
        services.wake()
        return _answer(updated)

    @post("/{schedule_id:str}/trigger", summary="Run a schedule now", status_code=202,
          operation_id="triggerSchedule", operation_class=ApiOperation,
          description="Launch now with the schedule's inputs, without moving `next_run`. "
                      "Respects `overlap` unless `force=true`.", responses=ACT)
    async def trigger(self, request: Request[Any, Any, Any], state: State,
                      schedule_id: FromPath[str], force: FromQuery[bool] = False) -> RunResponse:
        services = services_from(state)
        row = await _actionable(services, request)
        if not force and row.overlap == "skip" and await services.store.has_active_run(row.id):
            raise Conflict(f"schedule {row.id} still has an execution running "
                           "(overlap=skip); use force=true to run anyway", field="force")
        now = services.clock()
        run = await services.store.queue_manual_run_logged(
            row, now, _change(row, caller(request), "trigger", now))
        if run is None:
            raise Conflict(f"schedule {row.id} has a run for this very instant already; "
                           "try again", field="force")
        services.wake()
        return run_response(run)

    @post("/{schedule_id:str}/backfill", summary="Run a past period", status_code=202,
          operation_id="backfillSchedule", operation_class=ApiOperation, responses=ACT,
          description="Runs every slot of the schedule's rule in [`start`, `end`) now, as "
                      "the owner, each recorded with trigger `backfill` (a slot already "
                      f"recorded gets its next attempt); at most {MAX_BACKFILL:,} slots, "
                      "through the same pacing as every other launch.")
    async def backfill(self, request: Request[Any, Any, Any], state: State,
                       schedule_id: FromPath[str], data: BackfillBody) -> BackfillResponse:
        services = services_from(state)
        row = await _actionable(services, request)
        now = services.clock()
        start, end = aware(data.start, row.timezone, "start"), \
            aware(data.end, row.timezone, "end")
        if row.schedule_type == "once":
            raise InvalidInput("a once schedule has no period to run; use trigger",
                               field="start")
        if end <= start:
            raise InvalidInput("end must be after start", field="end")
        if end > now:
            raise InvalidInput(f"end {end.isoformat()} is in the future (now "
                               f"{now.isoformat(timespec='seconds')})", field="end")
        tick = timedelta(microseconds=1)
        slots = rule_of(row).next_slots(start - tick, MAX_BACKFILL + 1, until=end - tick)
        if not slots:
            raise InvalidInput("the rule has no slot in this period", field="start")
        if len(slots) > MAX_BACKFILL:
            raise InvalidInput(f"the period holds more than {MAX_BACKFILL:,} slots of the "
                               "rule; run it in parts", field="end")
        change = _change(row, caller(request), "backfill", now)
        change.fields = {"period": [None, f"{start.isoformat()}/{end.isoformat()}"]}
        queued = await services.store.queue_backfill(row, slots, change)
        services.wake()
        return BackfillResponse(queued=queued, first=slots[0], last=slots[-1])

    @get("/{schedule_id:str}/runs", summary="Run history of a schedule", responses=NOT_FOUND,
         operation_id="scheduleRuns", operation_class=ApiOperation)
    async def runs(self, request: Request[Any, Any, Any], state: State,
                   schedule_id: FromPath[str],
                   limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
                   offset: Annotated[int, QueryParameter(ge=0, le=1_000_000_000)] = 0) -> RunList:
        services = services_from(state)
        rows, total = await services.store.runs(_row(request).id, limit, offset)
        sent, _ = await services.store.notifications(_row(request).id, [r.id for r in rows],
                                                     limit=7 * len(rows) or 1)
        items = [run_response(r) for r in rows]
        for item in items:
            item.notifications = [delivery_response(n) for n in sent if n.run_id == item.id]
        settings = services.settings
        return RunList(items=items, total=total, limit=limit, offset=offset,
                       kept=kept(settings.TIMER_KEEP_RUNS, settings.TIMER_KEEP_DAYS))

    @get("/{schedule_id:str}/changes", summary="Change log of a schedule", responses=NOT_FOUND,
         operation_id="scheduleChanges", operation_class=ApiOperation,
         description="Who created, edited, paused, resumed or triggered the schedule, when, "
                     "and which fields changed (old → new), newest first.")
    async def changes(self, request: Request[Any, Any, Any], state: State,
                      schedule_id: FromPath[str],
                      limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
                      offset: Annotated[int, QueryParameter(ge=0, le=1_000_000_000)] = 0
                      ) -> ChangeList:
        services = services_from(state)
        rows, total = await services.store.changes(_row(request).id, limit, offset)
        return ChangeList(items=[change_response(c) for c in rows], total=total, limit=limit,
                          offset=offset)

    @get("/{schedule_id:str}/notifications", summary="Notifications of a schedule",
         responses=NOT_FOUND, operation_id="scheduleNotifications",
         operation_class=ApiOperation,
         description="The notifications sent (or being sent) of this schedule's runs, with "
                     "their outcome, newest first (docs/NOTIFY.md).")
    async def notifications(self, request: Request[Any, Any, Any], state: State,
                            schedule_id: FromPath[str],
                            limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
                            offset: Annotated[int, QueryParameter(ge=0, le=1_000_000_000)] = 0
                            ) -> DeliveryList:
        services = services_from(state)
        rows, total = await services.store.notifications(_row(request).id, None, limit, offset)
        return DeliveryList(items=[delivery_response(n) for n in rows], total=total,
                            limit=limit, offset=offset)

    @post("/{schedule_id:str}/notify/rotate", summary="Make a new notification secret",
          status_code=200, operation_id="rotateNotifySecret",
          operation_class=ScheduleOperation, response_headers=[ETAG], responses=ACT,
          description="A new `notify.secret`, in the answer (and only there); deliveries "
                      "are signed with it from now on, retries included. 409 when the "
                      "schedule has no `notify`. Only the owner.")
    async def rotate_notify_secret(self, request: Request[Any, Any, Any], state: State,
                                   schedule_id: FromPath[str]) -> Response[ScheduleResponse]:
        services = services_from(state)
        row = _row(request)
        _not_system(row, "edited")
        if row.owner != caller(request):
            raise Forbidden("only the owner rotates the notification secret")
        if not row.notify_url:
            raise Conflict(f"schedule {row.id} has no notify; set one with PUT or PATCH",
                           field="notify")
        values = {"notify_secret": new_secret(), "updated": services.clock()}
        return _answer(await _apply(services, request, row, values, "edit"), secret=True)


# a user who never opened the Schedules page is told of the failures of the last day
UNSEEN_FOR = timedelta(days=1)


def delivery_response(n: NotificationRow) -> DeliveryResponse:
    return DeliveryResponse(id=n.id, run_id=n.run_id, event=n.event, status=n.status,
                            attempts=n.attempts, next_at=n.next_at, last_error=n.last_error,
                            created=n.created, delivered=n.delivered, source=n.source)


def _allow(services: PanelServices) -> list[str]:
    return guard.allow_list(services.settings.TIMER_NOTIFY_ALLOW)


def run_response(run: RunRow) -> RunResponse:
    return RunResponse(id=run.id, schedule_id=run.schedule_id, slot=run.slot,
                       attempt=run.attempt, trigger=run.trigger, status=run.status,
                       fired_at=run.fired_at, fid=run.fid, reason=run.reason,
                       finished_at=run.finished_at, inputs=run.inputs)


def change_response(change: ChangeRow) -> ChangeResponse:
    return ChangeResponse(
        id=change.id, schedule_id=change.schedule_id, at=change.at, actor=change.actor,
        action=change.action,
        changes=[FieldChange(field=key, old=pair[0], new=pair[1])
                 for key, pair in (change.fields or {}).items()])


def etag(row: ScheduleRow) -> str:
    # the version moves with every change a user makes, not when the timer fires
    return f'"{row.version}"'


def _answer(row: ScheduleRow, notes: list[str] | None = None,
            status_code: int = 200, secret: bool = False) -> Response[ScheduleResponse]:
    body = to_response(row, notes)
    if secret:  # the create, update and rotate answers show notify.secret
        body.notify = notify_settings.view(row, with_secret=True)
    return Response(body, status_code=status_code, headers={"ETag": etag(row)})


def _row(request: Request[Any, Any, Any]) -> ScheduleRow:
    """The schedule ``visible_schedule_guard`` loaded for this request."""
    return request.state[ROW_KEY]  # type: ignore[no-any-return]


def _change(row: ScheduleRow, actor: str, action: str, now: Any,
            fields: dict[str, list[Any]] | None = None) -> ChangeRow:
    fields = dict(fields or {})
    if "notify_secret" in fields:  # never in the log: that it changed is enough
        fields["notify_secret"] = ["…", "(new)"]
    return ChangeRow(schedule_id=row.id, at=now, actor=actor, action=action, fields=fields)


def _preconditions(row: ScheduleRow, version: int | None, if_match: str | None) -> None:
    """Optimistic concurrency: a `version` in the body, an If-Match header, or neither."""
    if version is not None and version != row.version:
        raise Conflict(f"schedule {row.id} was changed meanwhile: it is at version "
                       f"{row.version}, you sent {version}; reload and try again",
                       field="version")
    if if_match is None:
        return
    tags = [t.strip().removeprefix("W/") for t in if_match.split(",")]
    if "*" not in tags and etag(row) not in tags:
        raise Conflict(f"schedule {row.id} was changed meanwhile: its ETag is {etag(row)}, "
                       f"If-Match was {if_match}; reload and try again", field="If-Match")


async def _write(services: PanelServices, request: Request[Any, Any, Any],
                 data: ScheduleUpdate, if_match: str | None, merge: bool
                 ) -> Response[ScheduleResponse]:
    """PUT and PATCH: the changes ``data`` asks for, applied if still current."""
    row = _row(request)
    _not_system(row, "change")
    me = caller(request)
    for _ in range(3):
        _preconditions(row, data.version, if_match)
        changes = requested_changes(row, with_text(data, row.timezone, services.clock()),
                                    merge=merge)
        notify = notify_settings.values(row, data.notify, _allow(services)) \
            if "notify" in data.model_fields_set else {}
        theirs = [key for key in changes if key in OWNER_ONLY] + (["notify"] if notify else [])
        if theirs and row.owner != me:
            raise Forbidden(
                f"only the owner changes what runs as them ({', '.join(theirs)}); operators "
                "may change the title and name, pause, resume, trigger and delete",
                field=theirs[0])
        if not changes and not notify:
            # nothing to change: no new version, nothing to log
            return _answer(row, secret=row.owner == me)
        now = services.clock()
        values, notes = await plan_update(row, changes, now, services.flows)
        values.update(notify)
        change = _change(row, me, "edit", now, changed_fields(row, values))
        updated = await services.store.update_logged(row.id, row.version, values, change)
        if updated is not None:
            services.wake()
            return _answer(updated, notes, secret=row.owner == me)
        # changed meanwhile: a conditional write is refused above on the next round,
        # an unconditional one is planned again on the current row
        fresh = await services.store.get_schedule(row.id)
        if fresh is None:
            raise NotFound(f"schedule {row.id} not found")
        row = fresh
    raise Conflict(f"schedule {row.id} keeps changing; try again")


async def _actionable(services: PanelServices, request: Request[Any, Any, Any]) -> ScheduleRow:
    row = _row(request)
    if row.system and not await services.roles.is_operator(caller(request)):
        raise Forbidden("system schedules can be paused, resumed and triggered by operators "
                        "only")
    return row


# where a system schedule is declared, and how to change it there ({verb}: delete | change)
SYSTEM_SOURCES = {
    "file": "comes from the schedules file (KODO_TIMER_SCHEDULES): {verb} its entry there",
    "flow": "is declared by its flow (x-kodosumi-schedule in the flow's OpenAPI extras): "
            "{verb} the declaration in the flow, or set KODO_TIMER_FLOW_SCHEDULES=false to "
            "ignore such declarations",
}


def _not_system(row: ScheduleRow, verb: str) -> None:
    if row.system:
        where = SYSTEM_SOURCES.get(row.system_source or "file", SYSTEM_SOURCES["file"])
        done = {"delete": "deleted", "change": "edited"}[verb]
        raise Conflict(f"system schedule {row.id} cannot be {done} through the API; it "
                       f"{where.format(verb=verb)}")


async def _apply(services: PanelServices, request: Request[Any, Any, Any], row: ScheduleRow,
                 values: dict[str, Any], action: str) -> ScheduleRow:
    change = _change(row, caller(request), action, values["updated"],
                     changed_fields(row, values))
    updated = await services.store.update_logged(row.id, row.version, values, change)
    if updated is None:
        raise Conflict(f"schedule {row.id} was changed meanwhile; try again")
    return updated
