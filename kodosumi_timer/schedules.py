"""Turning validated API input into stored schedules: the rules a create must satisfy.

Kept apart from the HTTP layer so the same rules serve the API, the pages and the
system-schedule sync.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from kodosumi_timer import cron
from kodosumi_timer.errors import InvalidInput
from kodosumi_timer.models import ScheduleCreate, ScheduleResponse
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


def canonical_flow_url(flow_url: str) -> str:
    return "/" + flow_url.strip().strip("/") + "/"


def _zone(name: str) -> str:
    try:
        cron.parse_zone(name)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="timezone") from exc
    return name


def _first_fire(data: ScheduleCreate, now: datetime) -> tuple[datetime, list[str]]:
    if data.schedule_type == "once":
        if data.run_at is None:
            raise InvalidInput("run_at is required for a once schedule", field="run_at")
        if data.cron_expression:
            raise InvalidInput("a once schedule takes run_at, not cron_expression",
                               field="cron_expression")
        instant, note = cron.resolve_wall_time(data.run_at, data.timezone)
        if instant < now - PAST_TOLERANCE:
            raise InvalidInput(
                f"run_at {instant.isoformat()} is in the past (now {now.isoformat()})",
                field="run_at")
        return max(instant, now), [note] if note else []
    if not data.cron_expression:
        raise InvalidInput("cron_expression is required for a cron schedule",
                           field="cron_expression")
    if data.run_at is not None:
        raise InvalidInput("a cron schedule takes cron_expression, not run_at", field="run_at")
    try:
        times = cron.next_fire_times(data.cron_expression, data.timezone, now, 1)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="cron_expression") from exc
    if not times:
        raise InvalidInput("the cron expression never fires", field="cron_expression")
    return times[0], []


async def build_schedule(data: ScheduleCreate, owner: str, now: datetime, flows: Flows,
                         system: bool = False) -> tuple[ScheduleRow, list[str]]:
    """A new schedule row from ``data``, or InvalidInput naming the field."""
    _zone(data.timezone)
    flow = await flows.find(canonical_flow_url(data.flow_url))
    if flow is None:
        raise InvalidInput(f"flow {data.flow_url} is not registered in the panel",
                           field="flow_url")
    end_at = _aware(data.end_at, data.timezone, "end_at")
    first, notes = _first_fire(data, now)
    if end_at is not None and end_at < first:
        raise InvalidInput("end_at is before the first fire time", field="end_at")
    expose_name = data.expose_name or flow.summary or flow.url
    row = ScheduleRow(
        id=new_id(), owner=owner, system=system, expose_name=expose_name[:200],
        flow_url=flow.url, title=data.title, schedule_type=data.schedule_type,
        cron_expression=data.cron_expression if data.schedule_type == "cron" else None,
        run_at=first if data.schedule_type == "once" else None, timezone=data.timezone,
        inputs=data.inputs, state="active", catchup=data.catchup, overlap=data.overlap,
        end_at=end_at, max_runs=data.max_runs, run_count=0, next_run=first,
        version=1, created=now, updated=now,
    )
    return row, notes


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
        catchup=row.catchup, overlap=row.overlap, end_at=row.end_at, max_runs=row.max_runs,
        run_count=row.run_count, next_run=row.next_run, last_run=row.last_run,
        last_fid=row.last_fid, last_status=row.last_status, note=row.note,
        version=row.version, created=row.created, updated=row.updated, notes=notes or [],
    )


def utcnow() -> datetime:
    return datetime.now(UTC)
