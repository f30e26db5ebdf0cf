"""Request and response schemas of the ``/schedule`` API."""

import json
import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kodosumi_timer.notify.events import DEFAULT_EVENTS, EVENTS
from kodosumi_timer.rules import MAX_EVERY, MAX_JITTER, MIN_EVERY, parse_every

ScheduleType = Literal["once", "cron", "interval"]
Overlap = Literal["skip", "allow", "buffer_one", "replace"]
MAX_EXCLUDE_DATES = 1000
MAX_PAUSE_AFTER = 1000
MAX_INPUTS_BYTES = 256 * 1024
# the store keeps counts in 32-bit integer columns
MAX_RUNS = 2**31 - 1


# a date and a time at least to the minute; the offset is optional (then the time is
# read in the schedule's time zone)
_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


# what the OpenAPI says of run_at and end_at: an ISO 8601 date-time whose offset is
# optional (JSON Schema's `date-time` format would demand one)
WALL_TIME_SCHEMA: dict[str, Any] = {"one_of": [
    {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?"
                                   r"([Zz]|[+-]\d{2}:?\d{2})?$",
     "examples": ["2027-01-04T09:00:00", "2027-01-04T09:00:00+01:00"]},
    {"type": "null"}]}


def _iso_text(value: Any) -> Any:
    # pydantic would read a bare number, or a string of digits, as seconds since 1970
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE_TIME.match(value):
        raise ValueError("must be an ISO 8601 date-time string, e.g. 2027-01-04T09:00:00")
    return value


# what the OpenAPI says of `every`: seconds, or a duration in d/h/m/s
EVERY_SCHEMA: dict[str, Any] = {"one_of": [
    {"type": "integer", "minimum": MIN_EVERY, "maximum": MAX_EVERY},
    {"type": "string", "pattern": r"^\s*(\d+\s*[dhmsDHMS]?\s*)+$",
     "examples": ["90m", "2h", "1d", "1h30m", "90s"]},
    {"type": "null"}]}
EVERY_DOC = (f"interval: seconds or a duration (\"90s\", \"15m\", \"2h\", \"1d\", "
             f"\"1h30m\"), at least {MIN_EVERY} s; answered as the largest unit that "
             "divides (\"90m\")")
ANCHOR_DOC = ("interval: the first slot; slots are anchor + k·every in elapsed time, "
              "unaffected by DST; default: when the schedule is saved (its first run is "
              "then one interval later)")
OVERLAP_DOC = ("when a slot comes while this schedule's previous execution still runs: "
               "`skip` it, `allow` both, `buffer_one` (start it as soon as the running one "
               "ends; at most one waits), `replace` (end the running one through kodosumi, "
               "then start; one kodosumi does not show yet is ended as soon as it does)")


def _every(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return None if value is None else parse_every(value)


def _bounded_inputs(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, default=str)) > MAX_INPUTS_BYTES:
        raise ValueError(f"inputs are larger than {MAX_INPUTS_BYTES // 1024} KB as JSON")
    return value


class InputsProblem(BaseModel):
    """Why a schedule's stored inputs no longer fit its agent's form."""

    field: str = Field(description="`inputs.<name>`, or `flow_url` when the agent is gone")
    detail: str


NotifyEvent = Literal["error", "failed", "rejected", "unknown", "missed", "paused", "finished"]


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _known_events(value: Any) -> Any:
    # checked here, on the whole list, so that an error names notify.events itself
    if isinstance(value, list):
        unknown = [v for v in value if v not in EVENTS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; events are {', '.join(EVENTS)}")
        return list(dict.fromkeys(value))
    return value


class NotifySettings(BaseModel):
    """Where and on what to be told about this schedule's runs (docs/NOTIFY.md)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, min_length=1, max_length=2000,
        description="receives a signed POST of JSON per event; private, loopback and "
                    "link-local addresses only if KODO_TIMER_NOTIFY_ALLOW lists them")
    events: list[NotifyEvent] | None = Field(
        None, min_length=1, max_length=7,
        description="run statuses to be told of, and `paused` (the timer paused the "
                    f"schedule); default: {', '.join(DEFAULT_EVENTS)}")
    secret: str | None = Field(
        None, max_length=128,
        description="read-only: the HMAC-SHA256 key of X-Kodosumi-Signature, generated; "
                    "shown in the create, update and rotate answers only; accepted when "
                    "unchanged")

    _url = field_validator("url")(_http_url)
    _events = field_validator("events", mode="before")(_known_events)


class NotifyResponse(BaseModel):
    url: str
    events: list[str]
    secret: str | None = Field(
        None, description="in the create, update and rotate answers only; GET and lists "
                          "leave it out (rotate it when it is lost)")


class DstPolicySettings(BaseModel):
    """What a cron schedule does at DST changes; a member left out (null) keeps Debian
    cron's choice for the expression (fixed times: shift, once; wildcards: skip, twice)."""

    model_config = ConfigDict(extra="forbid")

    gap: Literal["shift", "skip"] | None = Field(
        None, description="a wall time the clock skips in spring: run when the gap ends "
                          "(`shift`) or not that day (`skip`)")
    repeat: Literal["once", "twice"] | None = Field(
        None, description="a wall time the clock shows twice in autumn: run at the first "
                          "(`once`) or at both (`twice`)")


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow_url: str = Field(min_length=1, max_length=1000,
                          description="the flow's panel URL, e.g. /-/localhost/8001/hello/-/")
    schedule_type: ScheduleType | None = Field(
        None, description="required unless `text` gives the rule")
    text: str | None = Field(
        None, max_length=200, examples=["every weekday at 9am"],
        description="the rule in words instead of schedule_type and its fields (see "
                    "POST /schedule/preview): it sets schedule_type, cron_expression, "
                    "run_at, every and anchor")
    expose_name: str | None = Field(None, max_length=200,
                                    description="defaults to the flow's summary")
    title: str | None = Field(None, max_length=200)
    run_at: datetime | None = Field(
        None, description="once: ISO 8601; without an offset it is wall time in `timezone`",
        json_schema_extra=WALL_TIME_SCHEMA)
    cron_expression: str | None = Field(None, max_length=1000)
    timezone: str = Field("UTC", max_length=64, description="IANA time zone")
    inputs: dict[str, Any] = Field(default_factory=dict)
    catchup: Literal["once", "skip"] = "once"
    catchup_window: int = Field(
        60, ge=1, le=366 * 86400,
        description="seconds a slot may be late and still run on time; later, it is "
        "missed (catchup=skip) or runs once (catchup=once)")
    overlap: Overlap = Field("skip", description=OVERLAP_DOC)
    end_at: datetime | None = Field(None, json_schema_extra=WALL_TIME_SCHEMA)
    max_runs: int | None = Field(None, ge=1, le=MAX_RUNS)
    every: int | None = Field(None, description=EVERY_DOC, json_schema_extra=EVERY_SCHEMA)
    anchor: datetime | None = Field(None, description=ANCHOR_DOC,
                                    json_schema_extra=WALL_TIME_SCHEMA)
    exclude_dates: list[date] = Field(
        default_factory=list, max_length=MAX_EXCLUDE_DATES,
        description="dates (in `timezone`) on which no slot runs, e.g. holidays")
    dst_policy: DstPolicySettings | None = Field(
        None, description="cron: what happens at DST changes; default: Debian cron's rules")
    jitter: int | None = Field(
        None, ge=0, le=MAX_JITTER,
        description="seconds: each slot is sent at slot + an offset in [0, jitter), the "
                    "same for the same slot every time (previews show it)")
    timeout: int | None = Field(
        None, ge=1, le=MAX_EVERY,
        description="seconds: an execution still running this long after its launch is "
                    "ended through kodosumi and recorded `timed_out`")
    pause_after_failures: int | None = Field(
        None, ge=1, le=MAX_PAUSE_AFTER,
        description="pause the schedule after this many runs in a row ended error, "
                    "failed, rejected or timed_out")
    hook_inputs: bool = Field(
        False, description="a POST to the trigger URL may send {\"inputs\": {...}}, merged "
                           "over the stored inputs and checked like them")
    notify: NotifySettings | None = Field(None, description="notifications (docs/NOTIFY.md)")

    _inputs_size = field_validator("inputs")(_bounded_inputs)
    _iso = field_validator("run_at", "end_at", "anchor", mode="before")(_iso_text)
    _every = field_validator("every", mode="before")(_every)


_READ_ONLY = "read-only: accepted when equal to the current value, refused (422) when not"
_MOVED_BY_TIMER = "read-only and moved by the timer at any time: whatever is sent is ignored"


class ScheduleUpdate(BaseModel):
    """A schedule as ``GET`` returns it, or any part of it. Fields left out keep their
    value; ``null`` clears a field (or resets it to its default). Read-only fields are
    accepted when unchanged, so a client can send back what it read."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(
        None, ge=1, description="the version you read: 409 if the schedule has changed since "
        "(or send it as If-Match); without it the write goes through")
    flow_url: str | None = Field(None, min_length=1, max_length=1000)
    schedule_type: ScheduleType | None = None
    text: str | None = Field(
        None, max_length=200, description="the rule in words: sets schedule_type, "
        "cron_expression, run_at, every and anchor (never returned)")
    expose_name: str | None = Field(None, max_length=200,
                                    description="null: the flow's summary again")
    title: str | None = Field(None, max_length=200)
    run_at: datetime | None = Field(None, json_schema_extra=WALL_TIME_SCHEMA)
    cron_expression: str | None = Field(None, max_length=1000)
    timezone: str | None = Field(None, max_length=64, description="null: UTC")
    inputs: dict[str, Any] | None = None
    catchup: Literal["once", "skip"] | None = None
    catchup_window: int | None = Field(None, ge=1, le=366 * 86400)
    overlap: Overlap | None = Field(None, description="null: skip")
    end_at: datetime | None = Field(None, json_schema_extra=WALL_TIME_SCHEMA)
    max_runs: int | None = Field(None, ge=1, le=MAX_RUNS)
    every: int | None = Field(None, description=EVERY_DOC, json_schema_extra=EVERY_SCHEMA)
    anchor: datetime | None = Field(None, description=ANCHOR_DOC + "; null: now",
                                    json_schema_extra=WALL_TIME_SCHEMA)
    exclude_dates: list[date] | None = Field(None, max_length=MAX_EXCLUDE_DATES,
                                             description="null: none")
    dst_policy: DstPolicySettings | None = Field(None, description="null: Debian cron's")
    jitter: int | None = Field(None, ge=0, le=MAX_JITTER, description="null: none")
    timeout: int | None = Field(None, ge=1, le=MAX_EVERY, description="null: none")
    pause_after_failures: int | None = Field(None, ge=1, le=MAX_PAUSE_AFTER,
                                             description="null: never pause")
    hook_inputs: bool | None = Field(None, description="null: false")
    notify: NotifySettings | None = Field(
        None, description="null: no notifications; PATCH merges it member by member")
    # what GET returns besides: the server's, never changed by a write
    id: str | None = Field(None, max_length=64, description=_READ_ONLY)
    owner: str | None = Field(None, max_length=64, description=_READ_ONLY)
    system: bool | None = Field(None, description=_READ_ONLY)
    created: datetime | None = Field(None, description=_READ_ONLY)
    state: Literal["active", "paused", "done"] | None = Field(
        None, description=_READ_ONLY + "; pause and resume change it")
    enabled: bool | None = Field(None, description=_READ_ONLY + "; pause and resume change it")
    run_count: int | None = Field(None, description=_MOVED_BY_TIMER)
    next_run: datetime | None = Field(None, description=_MOVED_BY_TIMER)
    last_run: datetime | None = Field(None, description=_MOVED_BY_TIMER)
    last_fid: str | None = Field(None, description=_MOVED_BY_TIMER)
    last_status: str | None = Field(None, description=_MOVED_BY_TIMER)
    note: str | None = Field(None, description=_MOVED_BY_TIMER)
    updated: datetime | None = Field(None, description=_MOVED_BY_TIMER)
    failures_in_row: int | None = Field(None, description=_MOVED_BY_TIMER)
    hook: bool | None = Field(None, description="ignored: POST and DELETE "
                                                "/schedule/{id}/hook change it")
    notes: list[str] | None = Field(None, description="ignored: remarks on an earlier answer")
    inputs_problem: InputsProblem | None = Field(
        None, description="ignored: what GET found wrong with the stored inputs")

    _inputs_size = field_validator("inputs")(_bounded_inputs)
    _iso = field_validator("run_at", "end_at", "anchor", mode="before")(_iso_text)
    _every = field_validator("every", mode="before")(_every)


class SchedulePatch(ScheduleUpdate):
    """A JSON merge patch (RFC 7386) of a schedule: members left out keep their value,
    ``null`` removes (clears, or resets to the default), ``inputs`` merges key by key
    (``null`` removes an input)."""


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron_expression: str | None = Field(None, max_length=1000)
    run_at: datetime | None = Field(None, json_schema_extra=WALL_TIME_SCHEMA)
    every: int | None = Field(None, description=EVERY_DOC, json_schema_extra=EVERY_SCHEMA)
    anchor: datetime | None = Field(None, description=ANCHOR_DOC + " (here: now)",
                                    json_schema_extra=WALL_TIME_SCHEMA)
    text: str | None = Field(
        None, max_length=200, examples=["every weekday at 9am"],
        description="the rule in words, instead of cron_expression, run_at or every: e.g. "
        "\"every 15 minutes\", \"first Monday of the month at 08:30\", \"tomorrow at 9\"")
    timezone: str = Field("UTC", max_length=64)
    exclude_dates: list[date] = Field(default_factory=list, max_length=MAX_EXCLUDE_DATES,
                                      description="shown as skipped slots")
    dst_policy: DstPolicySettings | None = None
    jitter: int | None = Field(None, ge=0, le=MAX_JITTER,
                               description="each time's `send_at` shows its offset")
    schedule_id: str | None = Field(
        None, max_length=64, description="the schedule whose jitter offsets to show (they "
        "depend on the schedule); without it they are an example")
    count: int = Field(5, ge=1, le=100)

    _iso = field_validator("run_at", "anchor", mode="before")(_iso_text)
    _every = field_validator("every", mode="before")(_every)


class PreviewTime(BaseModel):
    utc: datetime
    local: datetime
    dst_note: str | None = None
    send_at: datetime | None = Field(None, description="with jitter: when it is sent")
    skipped: str | None = Field(None, description="why this slot does not run "
                                                  "(\"excluded date\")")


class PreviewRule(BaseModel):
    """The rule a `text` was read as, in the fields a schedule takes."""

    schedule_type: Literal["once", "cron", "interval"]
    cron_expression: str | None = None
    run_at: datetime | None = Field(None, description="once: the instant, in UTC")
    every: str | None = Field(None, description="interval: e.g. \"90m\", \"2h\", \"3d\"")
    anchor: datetime | None = Field(
        None, description="interval: the first slot, in UTC; null: when the schedule is saved")


class PreviewResponse(BaseModel):
    description: str
    timezone: str
    times: list[PreviewTime]
    rule: PreviewRule | None = Field(default=None,
                                     description="with `text`: the rule it was read as")
    dst_effects: list[str] = Field(
        default_factory=list, description="cron: what each DST choice (dst_policy) does at "
        "the zone's next gap and repeat, where it makes a difference to this rule")


class ScheduleResponse(BaseModel):
    id: str
    owner: str
    system: bool
    expose_name: str
    flow_url: str
    title: str | None
    schedule_type: ScheduleType
    cron_expression: str | None
    run_at: datetime | None
    timezone: str
    inputs: dict[str, Any]
    enabled: bool
    state: Literal["active", "paused", "done"]
    catchup: str
    catchup_window: int
    overlap: str
    end_at: datetime | None
    max_runs: int | None
    every: str | None = Field(None, description="interval: e.g. \"90m\"")
    anchor: datetime | None = Field(None, description="interval: its first slot, in UTC")
    exclude_dates: list[date] = Field(default_factory=list)
    dst_policy: DstPolicySettings = Field(
        default_factory=lambda: DstPolicySettings(gap=None, repeat=None))
    jitter: int | None = None
    timeout: int | None = None
    pause_after_failures: int | None = None
    failures_in_row: int = Field(0, description="runs in a row that ended error, failed, "
                                                "rejected or timed_out")
    hook: bool = Field(False, description="whether a trigger URL is set (its token is "
                                          "shown once, when made)")
    hook_inputs: bool = False
    run_count: int
    next_run: datetime | None
    last_run: datetime | None
    last_fid: str | None
    last_status: str | None
    note: str | None
    version: int
    created: datetime
    updated: datetime
    notes: list[str] = Field(default_factory=list,
                             description="remarks on how the input was read (DST gaps)")
    inputs_problem: InputsProblem | None = Field(
        default=None, description="only from GET of one schedule: set when the stored inputs "
        "no longer fit the agent's current form (it changed since they were saved); its "
        "next run would be rejected until the inputs are changed")
    notify: NotifyResponse | None = None


class ScheduleList(BaseModel):
    items: list[ScheduleResponse]
    total: int
    limit: int
    offset: int


class DeliveryResponse(BaseModel):
    id: int
    run_id: int | None
    event: str
    status: str = Field(description="pending | delivered | failed")
    attempts: int
    next_at: datetime | None = Field(description="the next attempt, while pending")
    last_error: str | None
    created: datetime
    delivered: datetime | None
    source: str = Field("schedule", description="where its target came from: `schedule` "
                                                "(its own notify) or `default` (its owner's)")


class RunResponse(BaseModel):
    id: int
    schedule_id: str
    slot: datetime
    attempt: int
    trigger: str
    status: str
    fired_at: datetime | None
    fid: str | None
    reason: str | None
    finished_at: datetime | None
    inputs: dict[str, Any] | None = Field(
        default=None, description="the inputs this run launched with when they were not "
                                  "its schedule's (a trigger URL call's own merged over "
                                  "them); null: the schedule's")
    notifications: list[DeliveryResponse] = Field(
        default_factory=list, description="the notifications sent of this run")


class AttentionResponse(BaseModel):
    failed: int = Field(description="your runs that ended error, failed, rejected or unknown "
                                    "since `since`")
    since: datetime = Field(description="when you last opened the Schedules page (or a day "
                                        "ago, if never)")


class DeliveryList(BaseModel):
    items: list[DeliveryResponse]
    total: int
    limit: int
    offset: int


class BackfillRequest(BaseModel):
    """A past period whose slots are run now (issue 13)."""

    model_config = ConfigDict(extra="forbid")

    start: datetime = Field(description="the first instant of the period (with its offset)")
    end: datetime = Field(description="the end of the period, not included; not in the "
                          "future")


class BackfillResponse(BaseModel):
    queued: int = Field(description="slots queued to run now, through the usual pacing")
    first: datetime
    last: datetime


class RunList(BaseModel):
    items: list[RunResponse]
    total: int
    limit: int
    offset: int
    kept: str | None = Field(None, description="how much run history is kept (older runs "
                                               "are pruned: KODO_TIMER_KEEP_RUNS, _DAYS)")


class ErrorBody(BaseModel):
    error: str = Field(description="a stable code, e.g. invalid_input, not_found")
    detail: str
    field: str | None = None


class FieldChange(BaseModel):
    field: str
    old: Any = None
    new: Any = None


class ChangeResponse(BaseModel):
    id: int
    schedule_id: str
    at: datetime
    actor: str = Field(description="the role id of who made the change")
    action: str = Field(description="create | edit | pause | resume | trigger")
    changes: list[FieldChange] = Field(description="the fields an edit changed, old → new")


class ChangeList(BaseModel):
    items: list[ChangeResponse]
    total: int
    limit: int
    offset: int
