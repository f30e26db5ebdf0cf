"""Property tests: random valid expressions, zones and instants against a brute-force
minute walk written here, independently of kodosumi_timer.cron's search.

The generator builds each field's text *and* the set of values it means, so the
reference never uses the parser under test. Instants are drawn near real DST
transitions most of the time (found here by scanning offsets), in 1975-2060, where
every zone's offsets are whole minutes.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kodosumi_timer.cron import CronError, describe, next_fire_times, preview, validate

ZONES = sorted(available_timezones() - {"localtime", "posixrules", "Factory"})
FAVOURITES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham",
              "America/Santiago", "UTC", "Asia/Kathmandu", "America/St_Johns",
              "Europe/Dublin", "America/Havana", "Asia/Gaza", "Pacific/Apia"]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Expr:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    doms: frozenset[int]
    dom_last: bool
    months: frozenset[int]
    dows: frozenset[int]
    nth: frozenset[tuple[int, int]]
    dow_last: frozenset[int]
    dom_star: bool
    dow_star: bool
    wildcard: bool

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        length = calendar.monthrange(day.year, day.month)[1]
        weekday = (day.weekday() + 1) % 7
        dom = day.day in self.doms or (self.dom_last and day.day == length)
        dow = (weekday in self.dows or (weekday, (day.day - 1) // 7 + 1) in self.nth
               or (weekday in self.dow_last and day.day + 7 > length))
        return (dom and dow) if (self.dom_star or self.dow_star) else (dom or dow)

    def matches(self, wall: datetime) -> bool:
        return (wall.second == 0 and wall.minute in self.minutes
                and wall.hour in self.hours and self.day_matches(wall.date()))


@st.composite
def numeric_field(draw: st.DrawFn, low: int, high: int,
                  names: list[str] | None = None, name_base: int = 0,
                  dense: bool = False) -> tuple[str, frozenset[int], bool]:
    """(text, values, starts with *) for a plain field; day-of-week passes high=7."""
    week = high == 7

    def show(value: int) -> str:
        if names and draw(st.booleans()) and not (week and value == 7):
            name = names[value - name_base]
            return draw(st.sampled_from([name, name.lower(), name.title()]))
        return str(value)

    def norm(values: range | list[int]) -> set[int]:
        return {v % 7 for v in values} if week else set(values)

    kinds = ["star", "star_step", "value", "range", "range_step", "value_step"]
    weights = [4, 3, 3, 3, 2, 1] if dense else [2, 2, 4, 3, 2, 1]
    count = draw(st.integers(1, 3))
    texts: list[str] = []
    values: set[int] = set()
    for _ in range(count):
        kind = draw(st.sampled_from([k for k, w in zip(kinds, weights, strict=True)
                                     for _ in range(w)]))
        top = 6 if week else high
        if kind == "star":
            texts.append("*")
            values |= norm(range(low, top + 1))
        elif kind == "star_step":
            step = draw(st.integers(1, top - low + 1))
            texts.append(f"*/{step}")
            values |= norm(range(low, top + 1, step))
        elif kind == "value":
            value = draw(st.integers(low, high))
            texts.append(show(value))
            values |= norm([value])
        else:
            a = draw(st.integers(low, top))
            b = draw(st.integers(a, top))
            step = draw(st.integers(1, top - low + 1))
            if kind == "range":
                texts.append(f"{show(a)}-{show(b)}")
                values |= norm(range(a, b + 1))
            elif kind == "range_step":
                texts.append(f"{show(a)}-{show(b)}/{step}")
                values |= norm(range(a, b + 1, step))
            else:
                texts.append(f"{a}/{step}")
                values |= norm(range(a, top + 1, step))
    return ",".join(texts), frozenset(values), texts[0].startswith("*")


@st.composite
def expressions(draw: st.DrawFn) -> Expr:
    minute, minutes, minute_star = draw(numeric_field(0, 59, dense=True))
    hour, hours, hour_star = draw(numeric_field(0, 23, dense=True))
    dom, doms, dom_star = draw(numeric_field(1, 31, dense=True))
    dom_last = False
    if draw(st.integers(0, 9)) == 0:
        dom_last = True
        dom = "L" if draw(st.booleans()) else dom + ",L"
        doms = frozenset() if dom == "L" else doms
        dom_star = dom.startswith("*")
    month, months, _ = draw(numeric_field(1, 12, MONTHS, 1, dense=True))
    dow, dows, dow_star = draw(numeric_field(0, 7, DAYS, 0, dense=True))
    nth: set[tuple[int, int]] = set()
    dow_last: set[int] = set()
    special = draw(st.integers(0, 5))
    if special in (0, 1):
        parts = []
        for _ in range(draw(st.integers(1, 2))):
            weekday, n = draw(st.integers(0, 7)), draw(st.integers(1, 5))
            if special == 0:
                parts.append(f"{weekday}#{n}")
                nth.add((weekday % 7, n))
            else:
                parts.append(f"{weekday}L")
                dow_last.add(weekday % 7)
        if draw(st.booleans()):
            dow, dows = ",".join(parts), frozenset()
        else:
            dow = dow + "," + ",".join(parts)
        dow_star = dow.startswith("*")
    text = " ".join([minute, hour, dom, month, dow])
    return Expr(text, minutes, hours, doms, dom_last, months, dows, frozenset(nth),
                frozenset(dow_last), dom_star, dow_star, minute_star or hour_star)


@cache
def transitions(key: str, year: int) -> tuple[datetime, ...]:
    """Offset changes in a year, by a daily scan refined to the minute."""
    zone = ZoneInfo(key)
    found = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment.year == year:
        following = moment + timedelta(days=1)
        new_offset = following.astimezone(zone).utcoffset()
        if new_offset != offset:
            step = moment
            while step.astimezone(zone).utcoffset() == offset:
                step += timedelta(minutes=1)
            found.append(step)
        moment, offset = following, new_offset
    return tuple(found)


@st.composite
def zone_and_instant(draw: st.DrawFn) -> tuple[str, datetime]:
    key = draw(st.sampled_from(FAVOURITES) | st.sampled_from(ZONES))
    year = draw(st.integers(1975, 2060))
    near = transitions(key, year)
    if near and draw(st.integers(0, 3)) > 0:  # three in four near a transition
        base = draw(st.sampled_from(near))
        moment = base + timedelta(seconds=draw(st.integers(-30 * 3600, 3 * 3600)))
    else:
        moment = datetime(year, 1, 1, tzinfo=UTC) + timedelta(
            seconds=draw(st.integers(0, 365 * 86400)))
    if draw(st.booleans()):
        moment = moment.replace(second=0)
    return key, moment + timedelta(microseconds=draw(st.sampled_from([0, 0, 1, 999_999])))


def reference(expr: Expr, key: str, after: datetime, until: datetime) -> list[datetime]:
    """Walk every UTC minute after ``after`` up to ``until`` and apply the Debian rules."""
    zone = ZoneInfo(key)
    fires = []
    moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    second = timedelta(seconds=1)
    while moment <= until:
        wall = moment.astimezone(zone).replace(tzinfo=None)
        if expr.wildcard:
            fire = expr.matches(wall)
        else:  # first occurrence of a matching wall time, or the end of a gap over one
            fire = expr.matches(wall) and \
                wall.replace(tzinfo=zone, fold=0).astimezone(UTC) == moment
            previous = (moment - second).astimezone(zone).replace(tzinfo=None)
            skipped = previous + second
            while not fire and skipped < wall:  # wall times the clock jumped over
                fire = expr.matches(skipped)
                skipped += timedelta(minutes=1) if skipped.second == 0 else second
        if fire:
            fires.append(moment)
        moment += timedelta(minutes=1)
    return fires


def possible_somewhere(expr: Expr) -> bool:
    """Is there any matching day in a whole 400-year Gregorian cycle?"""
    day, end = date(2000, 1, 1), date(2400, 1, 1)
    while day < end:
        if day.month in expr.months and expr.day_matches(day):
            return True
        day += timedelta(days=1)
    return False


def valid(expr: Expr) -> bool:
    try:
        validate(expr.text)
    except CronError as error:
        assert "never" in str(error), (expr.text, error)
        assert not possible_somewhere(expr), f"{expr.text} was rejected but can fire"
        return False
    return True


@settings(SETTINGS, max_examples=150)
@given(expressions(), zone_and_instant())
def test_agrees_with_minute_walk(expr: Expr, zone_after: tuple[str, datetime]) -> None:
    assume(valid(expr))
    key, after = zone_after
    until = after + timedelta(hours=36)
    expected = reference(expr, key, after, until)
    got = next_fire_times(expr.text, key, after, len(expected) + 1)
    assert got[:len(expected)] == expected, expr.text
    assert len(got) == len(expected) or got[len(expected)] > until


@settings(SETTINGS, max_examples=300)
@given(expressions(), zone_and_instant())
def test_increasing_after_and_matching(expr: Expr, zone_after: tuple[str, datetime]) -> None:
    assume(valid(expr))
    key, after = zone_after
    zone = ZoneInfo(key)
    fires = preview(expr.text, key, after, 6)
    assert fires, expr.text
    times = [f.utc for f in fires]
    assert times[0] > after
    assert all(a < b for a, b in zip(times, times[1:], strict=False))
    for fire in fires:
        # (== across zones is always False inside a fold, PEP 495: compare in UTC)
        assert fire.utc.tzinfo is UTC and fire.local.astimezone(UTC) == fire.utc
        assert fire.local.tzinfo is zone
        wall = fire.local.replace(tzinfo=None)
        if fire.dst_note is None:
            assert expr.matches(wall), (expr.text, fire)
            if not expr.wildcard:  # the first occurrence of that wall time
                assert wall.replace(tzinfo=zone, fold=0).astimezone(UTC) == fire.utc
        else:  # moved to the end of a gap: the instant the offset went up
            assert not expr.wildcard
            before = (fire.utc - timedelta(seconds=1)).astimezone(zone).utcoffset()
            assert before is not None and fire.local.utcoffset() is not None
            assert fire.local.utcoffset() > before  # type: ignore[operator]
    chained, moment = [], after
    for _ in times:
        (moment,) = next_fire_times(expr.text, key, moment)
        chained.append(moment)
    assert chained == times
    assert describe(expr.text)
