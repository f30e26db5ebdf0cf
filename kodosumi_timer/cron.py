"""Cron schedules on a time zone's wall clock, with the Debian cron DST rules.

Pure: no clock is read and nothing is written; ``after`` is always an argument. The only
input from outside is the IANA time-zone database that :mod:`zoneinfo` loads.

Public entry points (other modules, the CLI and the HTTP API rely on them):

* :func:`next_fire_times` -- the next fire instants (aware UTC) strictly after ``after``;
* :func:`preview` -- the same with local times and notes on DST-shifted fires;
* :func:`describe` -- the expression in plain English;
* :func:`validate`, :func:`parse_zone`, :func:`resolve_wall_time`;
* :class:`CronError`, :class:`TimezoneError` -- ``ValueError`` subclasses with ``field``.

How fire times are found: a schedule fires at wall-clock times, but the wall clock of a
zone jumps at UTC-offset transitions. The search walks the UTC timeline in segments of
constant offset. Within a segment the wall clock is a plain shift of UTC, so the next
matching wall minute (a calendar search on day bitmasks, see :mod:`.cronfields`) gives
the next instant directly; at a transition the Debian rules decide:

* *wildcard* jobs (minute or hour field starts with ``*``) fire at every instant whose
  wall time matches: twice in a repeated hour, never in a skipped one;
* *fixed-time* jobs fire at the first occurrence of a repeated wall time only, and once
  at the instant a gap ends if one or more of their wall times fell into the gap.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from .cronfields import (
    MONTH_FULL,
    CronError,
    CronSpec,
    Field,
    ordinal,
    parse,
)

__all__ = [
    "DEBIAN",
    "CronError",
    "DstPolicy",
    "FireTime",
    "NaiveDatetimeError",
    "TimezoneError",
    "describe",
    "next_fire_times",
    "parse_zone",
    "preview",
    "resolve_wall_time",
    "transitions",
    "validate",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY = 86_400
# Probe spacing when locating offset changes. Since 1900 no zone in tzdata changes its
# UTC offset twice within 4 days (tests/unit/test_cron_dst.py checks every zone), so one
# probe a day sees every change and bisection pins it to the second.
_PROBE = _DAY
# Look-back for a fold that started just before ``after`` (no fold is longer than a day).
_FOLD_WINDOW = 2 * _DAY
_MAX_YEAR = 9998
_MIN_TS = (datetime(2, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(seconds=1)
_END_TS = (datetime(_MAX_YEAR + 1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(seconds=1)
_NO_ZONES = frozenset({"localtime", "posixrules", "Factory"})  # server-local or meaningless


class TimezoneError(ValueError):
    """An unknown or empty IANA time-zone name; ``field`` is "timezone"."""

    field = "timezone"


class NaiveDatetimeError(ValueError):
    """``after`` had no time zone; ``field`` is "after"."""

    field = "after"


@dataclass(frozen=True, slots=True)
class DstPolicy:
    """What a schedule does at DST changes, overriding the Debian rules per schedule.

    ``gap``: a wall time the clock skips fires once when the gap ends (``shift``) or not
    at all (``skip``). ``repeat``: a wall time the clock shows twice fires at its first
    occurrence only (``once``) or at both (``twice``). None keeps Debian's choice for the
    expression (fixed-time jobs: shift, once; wildcard jobs: skip, twice)."""

    gap: str | None = None  # shift | skip
    repeat: str | None = None  # once | twice

    def shifts_gap(self, spec: CronSpec) -> bool:
        return not spec.wildcard if self.gap is None else self.gap == "shift"

    def repeats(self, spec: CronSpec) -> bool:
        return spec.wildcard if self.repeat is None else self.repeat == "twice"


DEBIAN = DstPolicy()


@dataclass(frozen=True, slots=True)
class FireTime:
    """One fire time: the instant in UTC, the same instant on the zone's wall clock, and
    a note when a fixed-time job was moved to the end of a DST gap (None otherwise)."""

    utc: datetime
    local: datetime
    dst_note: str | None = None


# --------------------------------------------------------------------------- zones


@lru_cache(maxsize=1)
def _zone_keys_by_lower() -> dict[str, str]:
    return {key.lower(): key for key in sorted(available_timezones()) if key not in _NO_ZONES}


@lru_cache(maxsize=512)
def _load_zone(name: str) -> ZoneInfo:
    key = _zone_keys_by_lower().get(name.lower())
    if key is None:
        raise TimezoneError(f"unknown timezone {name!r}; use an IANA name such as Europe/Berlin")
    return ZoneInfo(key)


def parse_zone(name: str) -> ZoneInfo:
    """The :class:`ZoneInfo` for an IANA name, spelled canonically ("europe/berlin" ->
    "Europe/Berlin"); raise :class:`TimezoneError` for an empty or unknown name."""
    if not isinstance(name, str) or not name.strip():
        raise TimezoneError("timezone is empty; use an IANA name such as Europe/Berlin")
    try:
        return _load_zone(name.strip())
    except ValueError as exc:  # ZoneInfo rejects malformed keys this way
        if isinstance(exc, TimezoneError):
            raise
        raise TimezoneError(f"unknown timezone {name!r}; use an IANA name such as "
                            "Europe/Berlin") from None


def _ts(moment: datetime) -> int:
    """POSIX seconds of an aware datetime, rounded down."""
    delta = moment - _EPOCH
    return delta.days * _DAY + delta.seconds


def _utc(ts: int) -> datetime:
    return _EPOCH + timedelta(seconds=ts)


def _year_of(ts: int) -> int:
    return date.fromordinal(ts // _DAY + _EPOCH_ORDINAL).year


def _offset(zone: tzinfo, ts: int) -> int:
    try:
        local = datetime.fromtimestamp(ts, zone)
    except (OverflowError, OSError, ValueError):  # far from 1970 on some platforms
        local = _utc(ts).astimezone(zone)
    offset = local.utcoffset()
    assert offset is not None
    return offset.days * _DAY + offset.seconds


_ZoneYear = tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]


@lru_cache(maxsize=8192)
def _zone_year(zone: tzinfo, year: int) -> _ZoneYear:
    """(offset at Jan 1 00:00 UTC, then the instants of the offset changes in
    (Jan 1 of ``year``, Jan 1 of ``year + 1``] with the offsets before and after each)."""
    start = _ts(datetime(year, 1, 1, tzinfo=UTC))
    end = _ts(datetime(year + 1, 1, 1, tzinfo=UTC)) if year < 9999 else start + 364 * _DAY
    first = previous = _offset(zone, start)
    instants: list[int] = []
    before: list[int] = []
    after: list[int] = []
    low = start
    while low < end:
        high = min(low + _PROBE, end)
        offset = _offset(zone, high)
        if offset != previous:
            while high - low > 1:  # invariant: offset(low) == previous != offset(high)
                middle = (low + high) // 2
                if _offset(zone, middle) == previous:
                    low = middle
                else:
                    high = middle
            offset = _offset(zone, high)
            instants.append(high)
            before.append(previous)
            after.append(offset)
            previous = offset
        low = high
    return first, tuple(instants), tuple(before), tuple(after)


def _offset_at(zone: tzinfo, ts: int) -> int:
    first, instants, _, after = _zone_year(zone, _year_of(ts))
    index = bisect_right(instants, ts)
    return after[index - 1] if index else first


def _transition_after(zone: tzinfo, ts: int, limit: int) -> tuple[int, int, int] | None:
    """The first offset change at an instant in (ts, limit]: (instant, before, after)."""
    year, last = _year_of(ts), _year_of(limit)
    while year <= last:
        _, instants, before, after = _zone_year(zone, year)
        index = bisect_right(instants, ts)
        if index < len(instants):
            at = instants[index]
            return (at, before[index], after[index]) if at <= limit else None
        year += 1
    return None


def _fold_high_water(zone: tzinfo, ts: int) -> int | None:
    """If a backward change happened shortly before ``ts``, the wall time it went back
    from: wall times below it have already occurred once."""
    for year in sorted({_year_of(ts), _year_of(ts - _FOLD_WINDOW)}, reverse=True):
        _, instants, before, after = _zone_year(zone, year)
        index = bisect_right(instants, ts)
        if index:
            at = instants[index - 1]
            if at <= ts - _FOLD_WINDOW:
                return None
            return at + before[index - 1] if before[index - 1] > after[index - 1] else None
    return None


# --------------------------------------------------------------------------- search


def _next_wall(spec: CronSpec, low: int) -> int | None:
    """The first matching wall minute strictly after wall second ``low`` (wall seconds
    count from a naive 1970-01-01 00:00), or None beyond year 9998."""
    days, seconds = divmod(low, _DAY)
    day = date.fromordinal(days + _EPOCH_ORDINAL)
    year, month, mday = day.year, day.month, day.day
    mask = spec.day_mask(year, month)
    times = spec.times
    if mask >> mday & 1:
        index = bisect_left(times, seconds // 60 + 1)
        if index < len(times):
            return days * _DAY + times[index] * 60
    while True:
        rest = mask >> (mday + 1)
        if rest:
            mday += (rest & -rest).bit_length()
            days = date(year, month, mday).toordinal() - _EPOCH_ORDINAL
            return days * _DAY + times[0] * 60
        month = spec.next_month[month]
        if not month:
            year, month = year + 1, spec.first_month
            if year > _MAX_YEAR:
                return None
        mask = spec.day_mask(year, month)
        mday = 0


def _next_fire(spec: CronSpec, zone: tzinfo, ts: int,
               dst: DstPolicy = DEBIAN) -> tuple[int, int | None] | None:
    """The first fire instant strictly after ``ts`` as (instant, gap wall) where gap wall
    is the first skipped wall time when a job moved to a gap's end, else None."""
    shift_gap, twice = dst.shifts_gap(spec), dst.repeats(spec)
    offset = _offset_at(zone, ts)
    low = ts + offset  # candidates: wall times strictly after this
    if not twice:
        high_water = _fold_high_water(zone, ts)
        if high_water is not None:
            low = max(low, high_water - 1)
    current = ts
    while True:
        wall = _next_wall(spec, low)
        if wall is None:
            return None
        instant = wall - offset
        change = _transition_after(zone, current, instant)
        if change is None:
            return instant, None
        at, _, new_offset = change
        if new_offset > offset:  # gap: wall times [at + offset, at + new_offset) never occur
            if shift_gap and wall < at + new_offset:
                return at, wall
            low = max(low, at + new_offset - 1)
        elif twice:  # fold: the wall clock repeats from at + new_offset
            low = at + new_offset - 1
        # a job firing once keeps ``wall``: it lies beyond the repeated stretch
        offset, current = new_offset, at


def _start(after: datetime) -> int:
    if not isinstance(after, datetime):
        raise TypeError("after must be a datetime")
    if after.tzinfo is None or after.utcoffset() is None:
        raise NaiveDatetimeError("after must be timezone-aware (e.g. 2026-11-26T09:00+00:00)")
    ts = _ts(after)
    if ts < _MIN_TS:
        raise ValueError("after must not be before the year 2")
    return ts


def _fires(expression: str, timezone: str, after: datetime, count: int,
           dst: DstPolicy = DEBIAN) -> tuple[CronSpec, ZoneInfo, list[tuple[int, int | None]]]:
    spec = parse(expression)
    zone = parse_zone(timezone)
    ts = _start(after)
    if count < 0:
        raise ValueError("count must not be negative")
    fires: list[tuple[int, int | None]] = []
    while len(fires) < count and ts < _END_TS:
        fire = _next_fire(spec, zone, ts, dst)
        if fire is None:
            break
        fires.append(fire)
        ts = fire[0]
    return spec, zone, fires


def next_fire_times(expression: str, timezone: str, after: datetime,
                    count: int = 1, dst: DstPolicy = DEBIAN) -> list[datetime]:
    """The next ``count`` fire times of ``expression`` in ``timezone`` after ``after``.

    Returns aware UTC datetimes, strictly after ``after`` and strictly increasing (fewer
    than ``count`` only past the year 9998). ``after`` must be timezone-aware. Raises
    :class:`CronError` or :class:`TimezoneError` (both ``ValueError``) for bad input.
    """
    return [_utc(ts) for ts, _ in _fires(expression, timezone, after, count, dst)[2]]


def _hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S" if moment.second else "%H:%M")


def _gap_note(spec: CronSpec, zone: ZoneInfo, at: int, wall: int) -> str:
    """Which matching wall times the gap ending at instant ``at`` swallowed, from ``wall``."""
    gap_end = at + _offset_at(zone, at)
    skipped: list[int] = []
    candidate: int | None = wall
    while candidate is not None and candidate < gap_end:
        skipped.append(candidate)
        candidate = _next_wall(spec, candidate)
    names = [_utc(w).strftime("%H:%M") for w in skipped[:3]]
    if len(skipped) > 3:
        names.append(f"{len(skipped) - 3} more")
    listed = _join(names)
    verb = "does not exist" if len(skipped) == 1 else "do not exist"
    local = _utc(at).astimezone(zone)
    once = "fires" if len(skipped) == 1 else "fires once"
    return (f"{listed} {verb} on {_utc(skipped[0]).date().isoformat()} (DST gap); "
            f"{once} at {_hhmm(local)} {local.tzname()}")


def preview(expression: str, timezone: str, after: datetime, count: int = 5,
            dst: DstPolicy = DEBIAN) -> list[FireTime]:
    """Like :func:`next_fire_times`, with each instant also on the zone's wall clock and
    a ``dst_note`` where a job was moved to the end of a DST gap."""
    spec, zone, fires = _fires(expression, timezone, after, count, dst)
    return [FireTime(utc=_utc(ts), local=_utc(ts).astimezone(zone),
                     dst_note=None if wall is None else _gap_note(spec, zone, ts, wall))
            for ts, wall in fires]


def transitions(timezone: str, after: datetime, until: datetime
                ) -> list[tuple[datetime, timedelta]]:
    """The zone's UTC-offset changes in (``after``, ``until``]: each instant (UTC) and
    how far the wall clock moved (positive: forward, a gap; negative: back, a repeat)."""
    zone = parse_zone(timezone)
    ts, limit = _start(after), _start(until)
    found: list[tuple[datetime, timedelta]] = []
    while (change := _transition_after(zone, ts, limit)) is not None:
        at, before, new = change
        found.append((_utc(at), timedelta(seconds=new - before)))
        ts = at
    return found


def validate(expression: str) -> None:
    """Raise :class:`CronError` (naming the field) unless ``expression`` is a valid cron
    expression that can fire."""
    parse(expression)


def resolve_wall_time(naive: datetime, timezone: str) -> tuple[datetime, str | None]:
    """A one-off schedule's time as an aware UTC instant, and a note if it was moved.

    A naive ``naive`` is wall time in ``timezone``: a wall time that occurs twice means
    its first occurrence; one inside a DST gap means the instant the gap ends, and the
    note says so. An aware ``naive`` is simply converted to UTC (note None).
    """
    zone = parse_zone(timezone)
    try:
        if naive.tzinfo is not None and naive.utcoffset() is not None:
            return naive.astimezone(UTC), None
        naive = naive.replace(tzinfo=None)
        first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
        if first.astimezone(zone).replace(tzinfo=None) == naive:
            return first, None
        other = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    except OverflowError as exc:  # within hours of year 1 or 9999
        raise ValueError(f"{naive.isoformat()} is outside the dates this timer can "
                         "schedule") from exc
    low, high = sorted((_ts(first), _ts(other)))
    change = _transition_after(zone, low - 1, high + 1)
    assert change is not None, "a wall time that does not exist lies in a gap"
    gap_end = _utc(change[0]).astimezone(zone)
    note = (f"{naive.strftime('%H:%M')} does not exist on {naive.date().isoformat()} in "
            f"{zone.key} (DST gap); using {_hhmm(gap_end)} {gap_end.tzname()}, when the gap ends")
    return gap_end.astimezone(UTC), note


# --------------------------------------------------------------------------- describe

_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_NTH = ("", "first", "second", "third", "fourth", "fifth")


def _join(words: list[str], conjunction: str = "and") -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + f" {conjunction} " + words[-1]


def _runs(values: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _listing(values: list[int], namer: Callable[[int], str] = str) -> str:
    """Values as English, runs of three or more as "a through b"."""
    words: list[str] = []
    for low, high in _runs(values):
        if high - low >= 2:
            words.append(f"{namer(low)} through {namer(high)}")
        else:
            words.extend(namer(v) for v in range(low, high + 1))
    return _join(words)


def _step(values: list[int], low: int, high: int) -> int | None:
    """k when values are exactly every k-th value of the field (k >= 2) from near its start."""
    if len(values) < 2:
        return None
    k = values[1] - values[0]
    if k < 2 or values[0] - low >= k or high - values[-1] >= k:
        return None
    return k if all(b - a == k for a, b in zip(values, values[1:], strict=False)) else None


def _clock(minute_of_day: int) -> str:
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"


def _time_phrase(spec: CronSpec) -> tuple[str, bool]:
    """The time-of-day part, and whether it names fixed clock times (so that "every
    day" reads naturally after it)."""
    minute, hour = spec.fields[0], spec.fields[1]
    minutes, hours = sorted(minute.values), sorted(hour.values)
    if len(minutes) < 60 and len(spec.times) <= 6:
        return "At " + _join([_clock(t) for t in spec.times]), True
    if len(minutes) == 1:
        m = minutes[0]
        if len(hours) == 24:
            if m == 0:
                return "Every hour", False
            return f"At {m} minute{'s' if m != 1 else ''} past every hour", False
        spaced = len(hours) >= 3 and len({b - a for a, b in zip(hours, hours[1:],
                                                              strict=False)}) == 1
        if spaced:
            k = hours[1] - hours[0]
            every = "Every hour" if k == 1 else f"Every {k} hours"
            return (f"{every} from {_clock(hours[0] * 60 + m)} through "
                    f"{_clock(hours[-1] * 60 + m)}"), False
        if len(spec.times) <= 12:
            return "At " + _join([_clock(t) for t in spec.times]), True
    minute_step = _step(minutes, 0, 59)
    if len(minutes) == 60:
        text = "Every minute"
    elif minute_step and 60 % minute_step == 0:  # else the cadence breaks at each hour
        text = f"Every {minute_step} minutes" + (
            f", starting {minutes[0]} minutes past the hour" if minutes[0] else "")
    else:
        plural = "minute" if len(minutes) == 1 else "minutes"
        text = f"At {plural} {_listing(minutes)} past the hour"
    if len(hours) == 24:
        return text, False
    comma = "," if text.endswith("hour") else ""
    hour_runs = _runs(hours)
    hour_step = _step(hours, 0, 23)
    if len(hour_runs) <= 3:
        windows = [f"between {a:02d}:00 and {b:02d}:59" for a, b in hour_runs]
        return f"{text}{comma} {_join(windows)}", False
    if hour_step:
        return f"{text}{comma} during every {ordinal(hour_step)} hour", False
    return f"{text}{comma} during hours {_listing(hours)}", False


def _weekday_listing(values: set[int], conjunction: str) -> str:
    # Runs on the week's circle, so that FRI-SUN and SUN-THU each read as one run.
    starts = sorted((d for d in values if (d - 1) % 7 not in values), key=lambda d: (d - 1) % 7)
    words: list[str] = []
    for start in starts:
        run = [start]
        while (run[-1] + 1) % 7 in values and len(run) < 7:
            run.append((run[-1] + 1) % 7)
        if len(run) >= 3:
            words.append(f"{_WEEKDAYS[run[0]]} through {_WEEKDAYS[run[-1]]}")
        else:
            words.extend(_WEEKDAYS[d] for d in run)
    return _join(words, conjunction)


def _dow_phrase(spec: CronSpec, dow: Field, conjunction: str) -> str:
    parts = []
    if dow.values:
        listing = _weekday_listing(set(dow.values), conjunction)
        parts.append(f"a {listing}" if conjunction == "or" else listing)
    parts += [f"the {_NTH[n]} {_WEEKDAYS[d]} of the month" for d, n in spec.nth]
    parts += [f"the last {_WEEKDAYS[d]} of the month" for d in spec.last_dow]
    return _join(parts, conjunction)


def _dom_phrase(spec: CronSpec, dom: Field) -> str:
    days = sorted(dom.values)
    k = _step(days, 1, 31)
    if k and len(days) > 3:
        start = "" if days[0] == 1 else f" from the {ordinal(days[0])}"
        return f"every {ordinal(k)} day of the month{start}"
    words = [_listing(days, ordinal)] if days else []
    if spec.last_dom:
        words.append("the last day" if days else "last day")
    return f"the {_join(words)} of the month"


def _day_and_month_phrase(spec: CronSpec) -> tuple[str, str]:
    """The day part (empty when every day matches) and the month part."""
    _, _, dom, month, dow = spec.fields
    dom_free = len(dom.values) == 31
    dow_free = len(dow.values) == 7
    months = sorted(month.values)
    single_month = MONTH_FULL[months[0] - 1] if len(months) == 1 else None
    if single_month and spec.days_and and dow_free:  # "on February 29"
        if not spec.last_dom and len(dom.values) == 1:
            return f" on {single_month} {next(iter(dom.values))}", ""
        if spec.last_dom and not dom.values:
            return f" on the last day of {single_month}", ""
    text = ""
    if not spec.days_and and (dom_free or dow_free):
        pass  # Vixie OR with a field that allows every day: every day
    elif dom_free and not dow_free:
        listing = _dow_phrase(spec, dow, "and")
        plain_run = not spec.nth and not spec.last_dow and " through " in listing \
            and "," not in listing and " and " not in listing
        text = f", {listing}" if plain_run else f" on {listing}"
    elif dow_free and not dom_free:
        text = f" on {_dom_phrase(spec, dom)}"
    elif not dom_free and not dow_free:
        if spec.days_and:
            text = f" on {_dom_phrase(spec, dom)}, if that is {_dow_phrase(spec, dow, 'or')}"
        else:
            text = f" on {_dom_phrase(spec, dom)} and on {_dow_phrase(spec, dow, 'and')}"
    if len(months) == 12:
        return text, ""
    listing = _listing(months, lambda m: MONTH_FULL[m - 1])
    if len(_runs(months)) == 1 and len(months) >= 3:
        return text, f", {listing}"
    return text, f" in {listing}"


def describe(expression: str) -> str:
    """The expression in plain English, e.g. "At 09:00, Monday through Friday"."""
    spec = parse(expression)
    time_text, clock_times = _time_phrase(spec)
    days, months = _day_and_month_phrase(spec)
    if clock_times and not days:
        days = " every day"
    return time_text + days + months

