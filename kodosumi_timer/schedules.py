"""Turning validated API input into stored schedules: the rules a create must satisfy.

Kept apart from the HTTP layer so the same rules serve the API, the pages and the
system-schedule sync (which takes its first fires from :func:`next_slot`).
"""

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from kodosumi_timer import cron, forminputs, words
from kodosumi_timer.errors import InvalidInput
from kodosumi_timer.models import (
    DstPolicySettings,
    ScheduleCreate,
    ScheduleResponse,
    ScheduleUpdate,
)
from kodosumi_timer.notify import settings as notify_settings
from kodosumi_timer.rules import Rule, every_text, parse_every, rule_of
from kodosumi_timer.store.repository import new_id
from kodosumi_timer.store.tables import ScheduleRow

# a once schedule a few seconds in the past (clock skew, slow typing) still fires now
PAST_TOLERANCE = timedelta(seconds=5)


@dataclass(frozen=True)
class FlowInfo:
    url: str
    summary: str | None


class Flows(Protocol):
    async def find(self, flow_url: str) -> FlowInfo | None: ...

    async def form(self, flow_url: str, owner: str) -> list[dict[str, Any]]:
        """The flow's input form (its ``elements``) as ``owner`` gets it; InvalidInput
        for an unknown flow, FlowUnavailable when its app does not answer."""
        ...


async def checked_inputs(flows: Flows, flow_url: str, owner: str,
                         inputs: dict[str, Any]) -> dict[str, str]:
    """``inputs`` as the agent's own form would post them (issue 17), or InvalidInput."""
    return forminputs.normalise(await flows.form(flow_url, owner), inputs)


def canonical_flow_url(flow_url: str) -> str:
    return "/" + flow_url.strip().strip("/") + "/"


def _zone(name: str) -> str:
    """The canonical spelling of an IANA zone name, or InvalidInput."""
    try:
        return cron.parse_zone(name).key
    except ValueError as exc:
        raise InvalidInput(str(exc), field="timezone") from exc


NO_DST_POLICY = DstPolicySettings(gap=None, repeat=None)
# what each kind of rule takes, and the fields of the other kinds it refuses
NEEDS = {"once": "run_at", "cron": "cron_expression", "interval": "every"}
STRAYS = {"once": ("cron_expression", "every", "anchor"),
          "cron": ("run_at", "every", "anchor"),
          "interval": ("run_at", "cron_expression")}


@dataclass(frozen=True)
class Timing:
    """A rule checked: its first slot, remarks on how it was read, its columns."""

    first: datetime
    notes: list[str]
    columns: dict[str, object]


def _timing(data: ScheduleCreate, now: datetime, after: datetime) -> Timing:
    """``data``'s rule as stored, with its first slot after ``after``; InvalidInput
    naming the field at fault."""
    kind = data.schedule_type
    if kind is None:
        raise InvalidInput("schedule_type is required (once, cron or interval), or give "
                           "the rule in words as text", field="schedule_type")
    for stray in STRAYS[kind]:
        if getattr(data, stray) not in (None, ""):
            raise InvalidInput(f"a {kind} schedule takes {NEEDS[kind]}, not {stray}",
                               field=stray)
    if kind == "once" and data.exclude_dates:
        raise InvalidInput("a once schedule has no dates to leave out: it runs at run_at",
                           field="exclude_dates")
    excluded = sorted(set(data.exclude_dates))
    policy = data.dst_policy or NO_DST_POLICY
    columns: dict[str, object] = {
        "schedule_type": kind, "timezone": data.timezone, "run_at": None,
        "cron_expression": None, "every_seconds": None, "anchor": None,
        "exclude_dates": [d.isoformat() for d in excluded] or None,
        "dst_gap": policy.gap if kind == "cron" else None,
        "dst_repeat": policy.repeat if kind == "cron" else None}
    if kind == "once":
        if data.run_at is None:
            raise InvalidInput("run_at is required for a once schedule", field="run_at")
        try:
            instant, note = cron.resolve_wall_time(data.run_at, data.timezone)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="run_at") from exc
        if instant < now - PAST_TOLERANCE:
            raise InvalidInput(f"run_at {_as_typed(data.run_at, data.timezone, now)}",
                               field="run_at")
        first = max(instant, now)
        columns["run_at"] = first
        return Timing(first, [note] if note else [], columns)
    if kind == "cron":
        if not data.cron_expression:
            raise InvalidInput("cron_expression is required for a cron schedule",
                               field="cron_expression")
        columns["cron_expression"] = data.cron_expression
    else:
        if data.every is None:
            raise InvalidInput("every is required for an interval schedule (e.g. 90m)",
                               field="every")
        columns["every_seconds"] = data.every
        columns["anchor"] = _aware(data.anchor, data.timezone, "anchor") or \
            now.replace(microsecond=0)
    rule = Rule(kind, data.timezone, data.cron_expression, data.every,
                columns["anchor"], frozenset(excluded),  # type: ignore[arg-type]
                cron.DstPolicy(policy.gap, policy.repeat))
    try:
        found = rule.next_slots(after, 1)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="cron_expression") from exc
    if not found:
        raise InvalidInput("the cron expression never fires", field="cron_expression")
    return Timing(found[0], [], columns)


def read_text(text: str, zone: str, now: datetime) -> dict[str, Any]:
    """The rule fields (schedule_type, cron_expression, run_at, every, anchor) a rule
    in words gives, or InvalidInput naming ``text``."""
    try:
        rule = words.read_rule(text, _zone(zone), now)
    except words.WordsError as exc:
        raise InvalidInput(str(exc), field="text") from exc
    fields = rule.fields()
    if fields["every"] is not None:
        fields["every"] = parse_every(str(fields["every"]))
    return fields


def with_text(data: Any, zone: str, now: datetime) -> Any:
    """A create or update whose ``text`` is replaced by the rule fields it gives; text
    together with any of those fields is refused (422 naming ``text``)."""
    if data.text is None:
        return data
    fields = read_text(data.text, data.timezone or zone, now)
    for key in ("cron_expression", "run_at", "every", "anchor"):
        if getattr(data, key) is not None:
            raise InvalidInput(f"give the rule as text or as fields, not both ({key})",
                               field="text")
    if data.schedule_type not in (None, fields["schedule_type"]):
        raise InvalidInput(f"text reads as a {fields['schedule_type']} rule, not "
                           f"{data.schedule_type}", field="text")
    return data.model_copy(update={**fields, "text": None})


def next_slot(expression: str, zone: str, now: datetime,
              last_run: datetime | None = None) -> datetime | None:
    """A cron schedule's first slot after ``now``, never the one it last claimed (that
    may lie just ahead: claim-ahead); None when it never fires again."""
    after = max(now, last_run) if last_run else now
    times = cron.next_fire_times(expression, zone, after, 1)
    return times[0] if times else None


def _as_typed(run_at: datetime, zone: str, now: datetime) -> str:
    """A past run_at in the user's terms: as typed, in their zone (or offset), to the
    minute, with the time it is there now."""
    if run_at.tzinfo is None:
        where, there = zone, now.astimezone(cron.parse_zone(zone))
    else:
        where, there = _utc_offset(run_at), now.astimezone(run_at.tzinfo)
    return (f"{run_at:%Y-%m-%d %H:%M} ({where}) is in the past "
            f"(it is now {there:%Y-%m-%d %H:%M} there)")


def _utc_offset(moment: datetime) -> str:
    minutes = int((moment.utcoffset() or timedelta(0)).total_seconds() // 60)
    return "UTC" if minutes == 0 else \
        f"UTC{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


async def build_schedule(data: ScheduleCreate, owner: str, now: datetime, flows: Flows,
                         system: bool = False) -> tuple[ScheduleRow, list[str]]:
    """A new schedule row from ``data``, or InvalidInput naming the field."""
    data = data.model_copy(update={"timezone": _zone(data.timezone)})
    data = with_text(data, data.timezone, now)
    flow = await flows.find(canonical_flow_url(data.flow_url))
    if flow is None:
        raise InvalidInput(f"flow {data.flow_url} is not registered in the panel",
                           field="flow_url")
    end_at = _aware(data.end_at, data.timezone, "end_at")
    timing = _timing(data, now, now)
    first, notes = timing.first, timing.notes
    if end_at is not None and end_at < first:
        raise InvalidInput("end_at is before the first fire time", field="end_at")
    expose_name = data.expose_name or flow.summary or flow.url
    # inputs checked against the agent's form, stored as the form would post them
    inputs = await checked_inputs(flows, flow.url, owner, data.inputs)
    row = ScheduleRow(
        id=new_id(), owner=owner, system=system, expose_name=expose_name[:200],
        flow_url=flow.url, title=data.title, inputs=inputs, state="active",
        catchup=data.catchup, catchup_window=data.catchup_window, overlap=data.overlap,
        end_at=end_at, max_runs=data.max_runs, run_count=0, next_run=first,
        jitter=data.jitter or None, timeout=data.timeout,
        pause_after_failures=data.pause_after_failures, failures_in_row=0,
        hook_inputs=data.hook_inputs, version=1, created=now, updated=now,
        **timing.columns,
    )
    return row, notes


def aware(value: datetime, zone: str, field: str) -> datetime:
    """An instant; a naive one is read in the schedule's zone (the wall time it names)."""
    result = _aware(value, zone, field)
    assert result is not None
    return result


def _aware(value: datetime | None, zone: str, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return cron.resolve_wall_time(value, zone)[0]
    except ValueError as exc:
        raise InvalidInput(str(exc), field=field) from exc


def to_response(row: ScheduleRow, notes: list[str] | None = None) -> ScheduleResponse:
    return ScheduleResponse(
        id=row.id, owner=row.owner, system=row.system, expose_name=row.expose_name,
        flow_url=row.flow_url, title=row.title,
        schedule_type=row.schedule_type,  # type: ignore[arg-type]
        cron_expression=row.cron_expression, run_at=row.run_at, timezone=row.timezone,
        inputs=row.inputs or {}, enabled=row.state == "active",
        state=row.state,  # type: ignore[arg-type]
        catchup=row.catchup, catchup_window=row.catchup_window, overlap=row.overlap,
        end_at=row.end_at, max_runs=row.max_runs,
        run_count=row.run_count, next_run=row.next_run, last_run=row.last_run,
        last_fid=row.last_fid, last_status=row.last_status, note=row.note,
        version=row.version, created=row.created, updated=row.updated, notes=notes or [],
        notify=notify_settings.view(row), **_rule_view(row),
        failures_in_row=row.failures_in_row or 0, hook=row.hook_hash is not None,
        hook_inputs=bool(row.hook_inputs),
    )


def _rule_view(row: ScheduleRow) -> dict[str, Any]:
    """The issue-13 fields of a stored schedule as the API names them."""
    return {
        "every": every_text(row.every_seconds) if row.every_seconds else None,
        "anchor": row.anchor,
        "exclude_dates": [date.fromisoformat(d) for d in row.exclude_dates or ()],
        "dst_policy": DstPolicySettings(gap=row.dst_gap, repeat=row.dst_repeat),  # type: ignore[arg-type]
        "jitter": row.jitter, "timeout": row.timeout,
        "pause_after_failures": row.pause_after_failures,
    }


def _current(row: ScheduleRow) -> dict[str, Any]:
    """The editable fields of a stored schedule as a create takes them."""
    view = _rule_view(row)
    return {
        "flow_url": row.flow_url, "schedule_type": row.schedule_type,
        "expose_name": row.expose_name, "title": row.title, "run_at": row.run_at,
        "cron_expression": row.cron_expression, "timezone": row.timezone,
        "inputs": row.inputs or {}, "catchup": row.catchup,
        "catchup_window": row.catchup_window, "overlap": row.overlap, "end_at": row.end_at,
        "max_runs": row.max_runs, "every": row.every_seconds, "anchor": row.anchor,
        "exclude_dates": view["exclude_dates"],
        "dst_policy": view["dst_policy"] if row.dst_gap or row.dst_repeat else None,
        "jitter": row.jitter, "timeout": row.timeout,
        "pause_after_failures": row.pause_after_failures,
        "hook_inputs": bool(row.hook_inputs),
    }


TIMING_FIELDS = ("schedule_type", "run_at", "cron_expression", "timezone", "end_at", "max_runs",
                 "every", "anchor", "exclude_dates", "dst_policy")
# fields stored as they come (a null resets them)
PLAIN = ("expose_name", "title", "inputs", "catchup", "catchup_window", "overlap", "jitter",
         "timeout", "pause_after_failures", "hook_inputs")
EDITABLE = ("flow_url", *PLAIN, *TIMING_FIELDS)


async def plan_update(row: ScheduleRow, changes: Mapping[str, Any], now: datetime,
                      flows: Flows) -> tuple[dict[str, object], list[str]]:
    """The column values a write changes (``requested_changes``), validated like a create.

    Timing is only re-evaluated when a timing field is given; a paused schedule stays
    paused, a done one that gets new timing becomes active again."""
    given = set(changes)
    merged = _current(row)
    merged.update(changes)
    if "schedule_type" in given and changes["schedule_type"] != row.schedule_type:
        # switching kinds: drop the other kinds' fields unless they were given too
        for stray in STRAYS[changes["schedule_type"]] + ("exclude_dates",) * (
                changes["schedule_type"] == "once"):
            if stray not in given:
                merged[stray] = [] if stray == "exclude_dates" else None
    try:
        create = ScheduleCreate.model_validate(merged)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else None
        message = str(problem["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"{field}: {message}" if field else message, field=field) from exc
    retime = bool(given & set(TIMING_FIELDS))
    notes: list[str] = []
    values: dict[str, object] = {}
    if "flow_url" in given:
        flow = await flows.find(canonical_flow_url(create.flow_url))
        if flow is None:
            raise InvalidInput(f"flow {create.flow_url} is not registered in the panel",
                               field="flow_url")
        values["flow_url"] = flow.url
    for key in PLAIN:
        if key in given:
            values[key] = getattr(create, key)
    if "jitter" in values:
        values["jitter"] = values["jitter"] or None
    if given & {"inputs", "flow_url"}:  # checked against the (new) agent's form
        values["inputs"] = await checked_inputs(
            flows, str(values.get("flow_url", row.flow_url)), row.owner, create.inputs)
    if "expose_name" in values and not values["expose_name"]:
        # cleared: the flow's summary again, as on create
        flow = await flows.find(str(values.get("flow_url", row.flow_url)))
        values["expose_name"] = ((flow.summary if flow else None) or row.flow_url)[:200]
    if retime:
        create = create.model_copy(update={"timezone": _zone(create.timezone)})
        end_at = _aware(create.end_at, create.timezone, "end_at")
        # a cron slot the timer already claimed (up to KODO_TIMER_CLAIM_AHEAD before
        # it) is not offered again
        after = max(now, row.last_run) if row.last_run and create.schedule_type != "once" \
            else now
        timing = _timing(create, now, after)
        first, notes = timing.first, timing.notes
        if end_at is not None and end_at < first:
            raise InvalidInput("end_at is before the first fire time", field="end_at")
        values.update(end_at=end_at, max_runs=create.max_runs, **timing.columns)
        if row.state == "paused":
            values["next_run"] = None
        else:
            values.update(state="active", next_run=first, note=None)
    values["updated"] = now
    return values, notes


# ---- writes as clients send them (PUT and PATCH): what a body asks to change --------

# never changed by a write: refused (422) when a body sends another value
READ_ONLY = ("id", "owner", "system", "created", "state", "enabled")
# what runs as the owner: only the owner changes these (operators may not)
OWNER_ONLY = ("flow_url", "inputs", "catchup", "catchup_window", "overlap", "jitter",
              "timeout", "pause_after_failures", "hook_inputs", *TIMING_FIELDS)
# null in a write resets these to their create defaults; other null fields are cleared
DEFAULTS: dict[str, Any] = {"timezone": "UTC", "inputs": {}, "catchup": "once",
                            "catchup_window": 60, "overlap": "skip", "exclude_dates": [],
                            "hook_inputs": False}
REQUIRED = ("flow_url", "schedule_type")
# not worth a line in the change log: they follow from the fields that changed
_DERIVED = ("updated", "next_run", "note")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge member by member, null removes a member, anything else
    replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def requested_changes(row: ScheduleRow, data: ScheduleUpdate,
                      merge: bool = False) -> dict[str, Any]:
    """The editable fields ``data`` really changes, with their new values.

    ``data`` may be the whole representation GET returned: fields equal to the current
    value are no change; read-only fields must be unchanged (InvalidInput naming the
    field); the fields the timer moves are ignored. ``merge``: PATCH, where ``inputs``
    merge into the current ones."""
    given = data.model_fields_set
    current = to_response(row)
    for key in READ_ONLY:
        if key in given and getattr(data, key) != getattr(current, key):
            hint = " (pause or resume it instead)" if key in ("state", "enabled") else ""
            raise InvalidInput(f"{key} is read-only: it is {getattr(current, key)!r} and "
                               f"cannot be changed{hint}", field=key)
    zone = row.timezone
    if "timezone" in given and data.timezone:
        try:
            zone = _zone(data.timezone)
        except InvalidInput:
            pass  # plan_update names the field
    changes: dict[str, Any] = {}
    for key in EDITABLE:
        if key not in given:
            continue
        value = getattr(data, key)
        if value is None:
            if key in REQUIRED:
                raise InvalidInput(f"{key} cannot be removed", field=key)
            value = copy.deepcopy(DEFAULTS.get(key))
        elif key == "inputs" and merge:
            value = merge_patch(row.inputs or {}, value)
        if not _unchanged(row, key, value, zone):
            changes[key] = value
    return changes


def _unchanged(row: ScheduleRow, key: str, value: Any, zone: str) -> bool:
    current = _current(row)[key]
    if key == "dst_policy":
        return bool((value or NO_DST_POLICY) == (current or NO_DST_POLICY))
    if key == "exclude_dates":
        return set(value or ()) == set(current)
    if key == "jitter":
        return bool((value or None) == current)
    if key == "flow_url":
        return bool(canonical_flow_url(value) == row.flow_url)
    if key == "timezone":
        try:
            return _zone(value) == row.timezone
        except InvalidInput:
            return False
    if key in ("run_at", "end_at", "anchor") and isinstance(value, datetime) \
            and value.tzinfo is None:
        try:
            value = cron.resolve_wall_time(value, zone)[0]
        except (ValueError, OverflowError):
            return False
    return bool(value == current)


def changed_fields(row: ScheduleRow, values: Mapping[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} of a write's column values, as JSON values, for the change log."""
    out: dict[str, list[Any]] = {}
    for key, new in values.items():
        old = getattr(row, key, None)
        if key in _DERIVED or old == new:
            continue
        out[key] = [to_jsonable_python(old), to_jsonable_python(new)]
    return out


def resume_values(row: ScheduleRow, now: datetime) -> dict[str, object]:
    """Resume from now: the next slot after now, never a burst of missed ones."""
    if row.schedule_type != "once":
        after = max(now, row.last_run) if row.last_run else now
        found = rule_of(row).next_slots(after, 1, until=row.end_at)
        if not found:
            return {"state": "done", "next_run": None, "note": "no fire time left",
                    "updated": now}
        nxt = found[0]
    else:
        # a once schedule resumed after its time runs now
        nxt = max(row.run_at or now, now)
    return {"state": "active", "next_run": nxt, "note": None, "updated": now,
            "failures_in_row": 0}
