"""From what a phrase said (:class:`~.grammar.Parts`) to a rule: once, cron or interval.

Pure: ``now`` is an argument. Which form a phrase becomes:

* a date, "today"/"tomorrow"/"next Friday" or "in 2 hours": ``once``, the wall time
  resolved in the schedule's zone (DST gaps as for any one-off schedule);
* a cadence that the clock repeats (every 15 minutes, every 2 hours, every day/weekday/
  Monday, the 1st, the first Monday, the last day of the month, every January 1st):
  ``cron``, built field by field and checked by :mod:`kodosumi_timer.cron`;
* a cadence the clock does not repeat (every 90 minutes, every 5 hours, every 3 days,
  every 2 weeks, every 30 seconds): ``interval``, counted in elapsed time from an anchor
  (the next of the phrase's time of day, else the moment the schedule is saved).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from kodosumi_timer import cron
from kodosumi_timer.rules import EVERY_UNITS, every_text

from .errors import WordsError
from .grammar import WEEKDAYS
from .parts import Clock, Parts

MIN_INTERVAL = 10
MAX_INTERVAL = 366 * 86_400
_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400, "week": 604_800}
_SPOKEN_UNITS = (("week", 604_800), ("day", 86_400), ("hour", 3600), ("minute", 60),
                 ("second", 1))

RuleType = Literal["once", "cron", "interval"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A schedule rule read from words, and what was understood, in words.

    ``once``: ``run_at`` (aware, UTC) and ``note`` if a DST gap moved it; ``cron``:
    ``cron_expression``; ``interval``: ``every`` ("90m", "2h", "3d", "30s") and
    ``anchor`` (aware, UTC; None: counted from when the schedule is saved).
    """

    schedule_type: RuleType
    description: str
    cron_expression: str | None = None
    run_at: datetime | None = None
    every: str | None = None
    anchor: datetime | None = None
    note: str | None = None

    def fields(self) -> dict[str, object]:
        """The rule as a schedule's fields (the other rules' fields None, so that an
        update switching from one kind of rule to another clears them)."""
        return {"schedule_type": self.schedule_type, "cron_expression": self.cron_expression,
                "run_at": self.run_at, "every": self.every, "anchor": self.anchor}

    @property
    def every_seconds(self) -> int | None:
        if self.every is None:
            return None
        return int(self.every[:-1]) * dict(EVERY_UNITS)[self.every[-1]]


def spoken(seconds: int) -> str:
    """5400 -> "90 minutes", 1209600 -> "2 weeks" (a day in elapsed time: "24 hours")."""
    if seconds == 86_400:
        return "24 hours"
    for name, size in _SPOKEN_UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"{name}" if count == 1 else f"{count} {name}s"
    raise AssertionError("1 divides every number")


def _listing(values: list[int]) -> str:
    """Cron list syntax, runs of three or more as a range: [1,2,3,4,5] -> "1-5"."""
    out: list[str] = []
    run: list[int] = []
    for value in sorted(values) + [-2]:
        if run and value == run[-1] + 1:
            run.append(value)
            continue
        if len(run) >= 3:
            out.append(f"{run[0]}-{run[-1]}")
        else:
            out.extend(str(v) for v in run)
        run = [value]
    return ",".join(out)


def _seconds(step: tuple[float, str]) -> int:
    count, unit = step
    if count <= 0:
        raise WordsError(f"every {count:g} {unit}s is not a cadence; use a positive count")
    seconds = count * _SECONDS[unit]
    if seconds != int(seconds):
        raise WordsError(f"every {count:g} {unit}s is not a whole number of seconds")
    return int(seconds)


# ------------------------------------------------------------------------ once


def _local_today(now: datetime, timezone: str) -> date:
    return now.astimezone(cron.parse_zone(timezone)).date()


def _once_at(day: date, clock: Clock, timezone: str, now: datetime, said: str) -> Rule:
    try:
        naive = datetime.combine(day, time(clock.hour, clock.minute))
        instant, note = cron.resolve_wall_time(naive, timezone)
    except (ValueError, OverflowError) as exc:
        raise WordsError(f"{said}: {exc}") from None
    local = instant.astimezone(cron.parse_zone(timezone))
    when = local.strftime("%a %Y-%m-%d at %H:%M %Z")
    if instant <= now:
        raise WordsError(f"{said} is {when}, which has passed; name a later day or time")
    return Rule("once", f"Once, on {when}", run_at=instant, note=note)


def _only(parts: Parts, allowed: set[str], what: str) -> None:
    extra = parts.filled - allowed
    if extra:
        said = ", ".join(sorted(name.replace("_", " ") for name in extra))
        raise WordsError(f"{what} cannot be combined with {said}")


def _one_time(parts: Parts, what: str) -> Clock:
    if not parts.times:
        raise WordsError(f"at what time {what}? e.g. \"{what} at 9\"")
    if len(parts.times) > 1:
        raise WordsError(f"{what} takes one time of day; a list of times needs a rule "
                         "that repeats, e.g. \"every day at 9 and 17\"")
    return parts.times[0]


def _once(parts: Parts, timezone: str, now: datetime) -> Rule:
    if parts.relative is not None:
        count, unit = parts.relative
        if unit in ("month", "year"):
            raise WordsError(f"\"in {count:g} {unit}s\" is not exact; name the date, e.g. "
                             "\"on 2027-01-15 at 10:00\"")
        seconds = _seconds((count, unit))
        amount = spoken(seconds)
        said = f"in {amount if amount[0].isdigit() else '1 ' + amount}"
        if parts.times and unit in ("day", "week"):
            _only(parts, {"relative", "times"}, said)
            try:
                day = _local_today(now, timezone) + timedelta(seconds=seconds)
            except OverflowError:
                raise WordsError(f"{said} is beyond the dates this timer can schedule") \
                    from None
            return _once_at(day, _one_time(parts, said), timezone, now, said)
        _only(parts, {"relative"}, said)
        try:
            instant = now.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
        except OverflowError:
            raise WordsError(f"{said} is beyond the dates this timer can schedule") from None
        local = instant.astimezone(cron.parse_zone(timezone))
        return Rule("once", f"Once, {said}: {local.strftime('%a %Y-%m-%d at %H:%M:%S %Z')}",
                    run_at=instant)
    today = _local_today(now, timezone)
    allowed = {"times", "date", "month_day", "day_word"}
    if parts.date is not None:
        said, day = f"on {parts.date.isoformat()}", parts.date
    elif parts.month_day is not None:
        month, mday = parts.month_day
        said = f"on {date(2000, month, 1).strftime('%B')} {mday}"
        clock = _one_time(parts, said)
        _only(parts, allowed, said)
        for year in range(today.year, min(today.year + 9, 9999)):
            try:
                day = date(year, month, mday)
            except ValueError:
                continue
            naive = datetime.combine(day, time(clock.hour, clock.minute))
            if cron.resolve_wall_time(naive, timezone)[0] > now:
                return _once_at(day, clock, timezone, now, said)
        raise WordsError(f"{said} does not come in the next years")
    elif parts.day_word == "today":
        said, day = "today", today
    elif parts.day_word == "tomorrow":
        said, day = "tomorrow", today + timedelta(days=1)
    else:
        weekday = int(str(parts.day_word).split(":")[1])
        ahead = (weekday - (today.isoweekday() % 7)) % 7 or 7
        said, day = f"next {WEEKDAYS[weekday].title()}", today + timedelta(days=ahead)
    if len(parts.filled & {"date", "month_day", "day_word"}) > 1:
        raise WordsError("the phrase names the day twice; name it once")
    clock = _one_time(parts, said)
    _only(parts, allowed, said)
    return _once_at(day, clock, timezone, now, said)


# ------------------------------------------------------------------------ interval


def _next_wall(clock: Clock, weekday: int | None, timezone: str, now: datetime) -> datetime:
    """The next instant after ``now`` at ``clock`` (on ``weekday`` if given), in UTC."""
    day = _local_today(now, timezone)
    for ahead in range(0, 15):
        candidate = day + timedelta(days=ahead)
        if weekday is not None and candidate.isoweekday() % 7 != weekday:
            continue
        naive = datetime.combine(candidate, time(clock.hour, clock.minute))
        instant = cron.resolve_wall_time(naive, timezone)[0]
        if instant > now:
            return instant
    raise AssertionError("a weekday comes within two weeks")


def _interval(parts: Parts, seconds: int, timezone: str, now: datetime) -> Rule:
    said = f"every {spoken(seconds)}"
    if seconds < MIN_INTERVAL:
        raise WordsError(f"{said} is too often; at least every {MIN_INTERVAL} seconds")
    if seconds > MAX_INTERVAL:
        raise WordsError(f"{said} is too far apart; at most every 366 days")
    weekday: int | None = None
    if parts.weekdays is not None:
        if len(parts.weekdays) != 1 or seconds % _SECONDS["week"]:
            raise WordsError(f"{said} cannot be limited to weekdays: an interval counts "
                             "elapsed time around the clock")
        weekday = next(iter(parts.weekdays))
    _only(parts, {"step", "times", "start", "weekdays"}, said)
    clock = parts.start
    if parts.times is not None:
        if clock is not None:
            raise WordsError(f"{said}: give a time or a start, not both")
        clock = _one_time(parts, said)
    if clock is None and weekday is not None:
        clock = Clock(0, 0)
    anchor = None if clock is None else _next_wall(clock, weekday, timezone, now)
    if anchor is None:
        start = ", counted from when the schedule is saved"
    else:
        local = anchor.astimezone(cron.parse_zone(timezone))
        start = f" from {local.strftime('%a %Y-%m-%d %H:%M %Z')}"
    return Rule("interval", f"Every {spoken(seconds)}{start} (elapsed time, unaffected by "
                "DST)", every=every_text(seconds), anchor=anchor)


# ------------------------------------------------------------------------ cron


def _clock_fields(parts: Parts) -> tuple[str, str]:
    """Minute and hour fields from the phrase's times of day (00:00 if none)."""
    if parts.window is not None:
        raise WordsError("a window (between .. and ..) needs a cadence, e.g. "
                         "\"every hour between 9 and 17\"")
    if parts.start is not None:
        raise WordsError("\"starting at\" goes with a cadence, e.g. \"every 2 hours "
                         "starting at 9\"")
    if parts.minute is not None:
        if parts.times is not None:
            raise WordsError("give times of day or a minute past the hour, not both")
        if parts.step is not None and parts.step[1] != "hour":
            raise WordsError("a minute past the hour goes with \"every hour\"")
        return str(parts.minute), "*"
    times = parts.times or (Clock(0, 0),)
    minutes = sorted({c.minute for c in times})
    hours = sorted({c.hour for c in times})
    if len(minutes) * len(hours) != len(set(times)):
        listed = ", ".join(f"{c.hour:02d}:{c.minute:02d}" for c in times)
        raise WordsError(f"one rule cannot fire at exactly {listed}: cron takes every "
                         "hour with every minute; use times that share their minutes")
    return _listing(minutes), _listing(hours)


def _window_hours(parts: Parts, last_inclusive: bool) -> tuple[int, int]:
    assert parts.window is not None
    low, high = parts.window
    if low.minute or high.minute:
        raise WordsError("a window of the day runs between whole hours, e.g. between 9 and 17")
    end = high.hour if last_inclusive else high.hour - 1
    if end < low.hour:
        raise WordsError(f"between {low.hour} and {high.hour}: the window ends before it "
                         "starts")
    return low.hour, end


def _restricted(parts: Parts) -> bool:
    return bool(parts.filled & {"weekdays", "days", "last_day", "nth", "months", "window"})


def _step_fields(parts: Parts, timezone: str, now: datetime) -> tuple[str, str] | Rule:
    """Minute and hour fields of a sub-daily cadence, or the interval it has to be."""
    assert parts.step is not None
    seconds = _seconds(parts.step)
    said = f"every {spoken(seconds)}"
    if parts.times is not None:
        raise WordsError(f"{said} takes no time of day; say \"starting at 9\" or "
                         "\"between 9 and 17\"")
    if seconds % 60 == 0 and seconds < 3600 and 3600 % seconds == 0:  # 1, 2, .. 20, 30 min
        if parts.minute is not None:
            raise WordsError(f"{said} takes no minute past the hour")
        n = seconds // 60
        offset = parts.start.minute % n if parts.start is not None else 0
        minute = "*" if n == 1 else (f"{offset}-59/{n}" if offset else f"*/{n}")
        if parts.window is None:
            return minute, "*"
        low, high = _window_hours(parts, last_inclusive=False)
        return minute, _listing(list(range(low, high + 1)))
    if seconds % 3600 == 0 and seconds < 86_400 and (86_400 % seconds == 0
                                                     or parts.window is not None):
        n = seconds // 3600
        minute_value = parts.minute if parts.minute is not None else (
            parts.start.minute if parts.start is not None else 0)
        if parts.window is not None:
            low, high = _window_hours(parts, last_inclusive=True)
            return str(minute_value), f"{low}-{high}" + (f"/{n}" if n > 1 else "")
        if n == 1:
            return str(minute_value), "*"
        offset = parts.start.hour % n if parts.start is not None else 0
        return str(minute_value), f"{offset}-23/{n}" if offset else f"*/{n}"
    if _restricted(parts) or parts.minute is not None:
        raise WordsError(f"{said} cannot be limited to days, months, windows or minutes: "
                         "it is an interval counted around the clock; use a cadence "
                         "that divides the hour or the day (every 30 minutes, every 2 hours)")
    return _interval(parts, seconds, timezone, now)


def _cron(parts: Parts, timezone: str, now: datetime) -> Rule:
    step = parts.step
    dom, month, dow = "*", "*", "*"
    unit = step[1] if step is not None else None
    count = step[0] if step is not None else 1
    if unit in ("second", "minute", "hour"):
        if unit == "second" and step is not None and _seconds(step) % 60:
            return _interval(parts, _seconds(step), timezone, now)
        fields = _step_fields(parts, timezone, now)
        if isinstance(fields, Rule):
            return fields
        minute, hour = fields
    else:
        if count != 1 and unit in ("day", "week"):
            assert step is not None
            limits = parts.filled & {"days", "last_day", "nth", "months", "window", "minute"}
            if limits or (unit == "day" and parts.weekdays is not None):
                raise WordsError(f"every {count:g} {unit}s cannot be limited further: it is "
                                 "an interval counted in elapsed time")
            return _interval(parts, _seconds(step), timezone, now)
        minute, hour = _clock_fields(parts)
        if unit == "week" and parts.weekdays is None and not parts.nth:
            dow = "0"  # like cron's @weekly
        if unit == "month":
            if count != 1:
                if count != int(count) or 12 % int(count):
                    raise WordsError(f"every {count:g} months does not repeat the same way "
                                     "each year; use 2, 3, 4 or 6")
                month = f"*/{int(count)}"
            if not (parts.days or parts.last_day or parts.nth):
                dom = "1"
        if unit == "year":
            if count != 1:
                raise WordsError("every few years is beyond what the timer's rules can say")
            if parts.month_day is not None:
                month, dom = str(parts.month_day[0]), str(parts.month_day[1])
            elif parts.months is None:
                month, dom = "1", "1"
    if parts.days or parts.last_day:
        dom = ",".join(filter(None, (_listing(list(parts.days or ())),
                                     "L" if parts.last_day else "")))
    plain = sorted(parts.weekdays or ())
    items = [_listing(plain) if len(plain) < 7 or parts.nth else "*"] if plain else []
    items += [f"{d}#{n}" if n else f"{d}L" for d, n in parts.nth]
    if items:
        if dom != "*":
            raise WordsError("name days of the month or weekdays, not both: cron would run "
                             "on either")
        dow = ",".join(items)
    if parts.months is not None and month == "*":
        month = _listing(list(parts.months)) if len(parts.months) < 12 else "*"
    elif parts.months is not None:
        raise WordsError("the phrase names the months twice; name them once")
    if parts.month_day is not None and unit != "year":
        raise WordsError("a date without a year repeats only with \"every year\"")
    expression = f"{minute} {hour} {dom} {month} {dow}"
    try:
        cron.validate(expression)
        description = cron.describe(expression)
    except ValueError as exc:
        raise WordsError(f"that makes the cron rule {expression!r}, which cannot be: "
                         f"{exc}") from None
    return Rule("cron", description, cron_expression=expression)


def build_rule(parts: Parts, timezone: str, now: datetime) -> Rule:
    """The rule that ``parts`` describe, for ``timezone`` and the instant ``now``."""
    if not parts.filled:
        raise WordsError("the phrase says neither when nor how often")
    once = parts.filled & {"relative", "date", "day_word"} or (
        parts.month_day is not None and not parts.recurring)
    if once:
        if parts.recurring:
            raise WordsError("\"every\" and a single day do not go together; say one")
        return _once(parts, timezone, now)
    return _cron(parts, timezone, now)
