"""What the timer reads of a due schedule, decoded from the raw row one value at a time.

A row may hold anything: SQLite keeps whatever was written into a column, and even on
PostgreSQL a JSON column can hold a list and a text column an unknown type. The timer
reads the raw values (no type processing in the query, which would fail the whole
batch on one bad value) and decodes each row here: a row that does not make a
runnable schedule becomes a :class:`BadRow` naming what is wrong, so that the timer
pauses that schedule alone and every other one still fires.
"""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from kodosumi_timer import cron
from kodosumi_timer.cron import DstPolicy
from kodosumi_timer.rules import MAX_EVERY, MAX_JITTER, MIN_EVERY, Rule

SCHEDULE_TYPES = ("once", "cron", "interval")
CATCHUP = ("once", "skip")
OVERLAP = ("skip", "allow", "buffer_one", "replace")
DST_GAP = ("shift", "skip")
DST_REPEAT = ("once", "twice")


@dataclass(frozen=True)
class DueSchedule:
    """The facts of one schedule the timer plans and launches from."""

    id: str
    owner: str
    system: bool
    flow_url: str
    schedule_type: str
    cron_expression: str | None
    timezone: str
    inputs: dict[str, Any]
    catchup: str
    catchup_window: int
    overlap: str
    end_at: datetime | None
    max_runs: int | None
    run_count: int
    next_run: datetime | None
    version: int
    every_seconds: int | None = None
    anchor: datetime | None = None
    exclude_dates: frozenset[date] = frozenset()
    dst_gap: str | None = None
    dst_repeat: str | None = None
    jitter: int | None = None
    timeout: int | None = None
    pause_after_failures: int | None = None

    @property
    def rule(self) -> Rule:
        return Rule(self.schedule_type, self.timezone, self.cron_expression,
                    self.every_seconds, self.anchor, self.exclude_dates,
                    DstPolicy(self.dst_gap, self.dst_repeat))


@dataclass(frozen=True)
class BadRow:
    """A stored schedule that cannot be run, and why (``next_run`` as far as readable)."""

    id: str
    owner: str
    next_run: datetime | None
    why: str


COLUMNS = tuple(DueSchedule.__dataclass_fields__)


class _Bad(ValueError):
    pass


def _text(name: str, value: Any, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{name} is {value!r}, not a text")
    return value


def _int(name: str, value: Any, low: int, nullable: bool = False,
         high: int | None = None) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:  # also digits int() does not take, such as "²"
            pass
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _Bad(f"{name} is {value!r}, not a whole number of at least {low}")
    if high is not None and value > high:
        raise _Bad(f"{name} is {value!r}, more than {high}")
    return value


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1"):
        return bool(int(value))
    raise _Bad(f"{name} is {value!r}, not true or false")


def _instant(name: str, value: Any) -> datetime | None:
    """SQLite hands back text (naive UTC), PostgreSQL aware datetimes."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad(f"{name} is {value!r}, not a date and time") from None
    if not isinstance(value, datetime):
        raise _Bad(f"{name} is {value!r}, not a date and time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _inputs(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            raise _Bad(f"inputs are not valid JSON ({str(value)[:40]!r})") from None
    if not isinstance(value, dict):
        raise _Bad(f"inputs are {type(value).__name__}, not an object of fields")
    return value


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _Bad(f"{name} is {value!r}, not one of {', '.join(allowed)}")
    return str(value)


def _dates(value: Any) -> frozenset[date]:
    if value is None:
        return frozenset()
    try:
        items = json.loads(value) if isinstance(value, str | bytes) else value
        if items is None:  # the API stores "no dates" as JSON null
            return frozenset()
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError
        return frozenset(date.fromisoformat(item) for item in items)
    except ValueError:
        raise _Bad(f"exclude_dates is {str(value)[:60]!r}, not a list of dates") from None


def decode(raw: Any) -> DueSchedule | BadRow:
    """One raw row (with the attributes of ``COLUMNS``) as a runnable schedule or a
    BadRow. Checks what running it needs: the rule must be readable, the zone known."""
    sid = str(raw.id)
    owner = raw.owner if isinstance(raw.owner, str) else str(raw.owner)
    try:
        next_run = _instant("next_run", raw.next_run)
    except _Bad as exc:
        return BadRow(sid, owner, None, str(exc))
    try:
        schedule_type = _choice("schedule_type", raw.schedule_type, SCHEDULE_TYPES)
        expression = _text("cron_expression", raw.cron_expression, nullable=True)
        if schedule_type == "cron":
            if expression is None:
                raise _Bad("a cron schedule without cron_expression")
            try:
                cron.validate(expression)
            except ValueError as exc:
                raise _Bad(f"cron_expression {expression!r}: {exc}") from None
        every = _int("every_seconds", raw.every_seconds, MIN_EVERY, nullable=True,
                     high=MAX_EVERY)
        anchor = _instant("anchor", raw.anchor)
        if schedule_type == "interval" and (every is None or anchor is None):
            raise _Bad("an interval schedule without every_seconds and anchor")
        zone = _text("timezone", raw.timezone)
        assert zone is not None
        try:
            cron.parse_zone(zone)
        except ValueError as exc:
            raise _Bad(str(exc)) from None
        schedule = DueSchedule(
            id=sid, owner=_text("owner", raw.owner) or "", system=_bool("system", raw.system),
            flow_url=_text("flow_url", raw.flow_url) or "", schedule_type=schedule_type,
            cron_expression=expression, timezone=zone, inputs=_inputs(raw.inputs),
            catchup=_choice("catchup", raw.catchup, CATCHUP),
            catchup_window=_int("catchup_window", raw.catchup_window, 0) or 0,
            overlap=_choice("overlap", raw.overlap, OVERLAP),
            end_at=_instant("end_at", raw.end_at),
            max_runs=_int("max_runs", raw.max_runs, 1, nullable=True),
            run_count=_int("run_count", raw.run_count, 0) or 0,
            next_run=next_run, version=_int("version", raw.version, 0) or 0,
            every_seconds=every, anchor=anchor, exclude_dates=_dates(raw.exclude_dates),
            dst_gap=_choice("dst_gap", raw.dst_gap, DST_GAP) if raw.dst_gap is not None
            else None,
            dst_repeat=_choice("dst_repeat", raw.dst_repeat, DST_REPEAT)
            if raw.dst_repeat is not None else None,
            jitter=_int("jitter", raw.jitter, 0, nullable=True, high=MAX_JITTER),
            timeout=_int("timeout", raw.timeout, 1, nullable=True),
            pause_after_failures=_int("pause_after_failures", raw.pause_after_failures, 1,
                                      nullable=True))
    except _Bad as exc:
        return BadRow(sid, owner, next_run, str(exc))
    return schedule
