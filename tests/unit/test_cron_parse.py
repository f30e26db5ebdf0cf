"""Cron grammar: what parses to which values, what is rejected with which message,
describe() wording, time-zone names and argument checks. No clock is read."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from kodosumi_timer import cron, cronfields
from kodosumi_timer.cron import (
    CronError,
    NaiveDatetimeError,
    TimezoneError,
    describe,
    next_fire_times,
    parse_zone,
    validate,
)
from kodosumi_timer.cronfields import parse

AFTER = datetime(2027, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- values

@pytest.mark.parametrize(
    ("expression", "index", "values"),
    [
        ("5 * * * *", 0, {5}),
        ("05 * * * *", 0, {5}),
        ("*/15 * * * *", 0, {0, 15, 30, 45}),
        ("1-10/3 * * * *", 0, {1, 4, 7, 10}),
        ("5/20 * * * *", 0, {5, 25, 45}),
        ("0-59/60 * * * *", 0, {0}),
        ("7-7 * * * *", 0, {7}),                # croniter reads a-a as *
        ("0,30,59 * * * *", 0, {0, 30, 59}),
        ("0 9-17 * * *", 1, set(range(9, 18))),
        ("0 */6 * * *", 1, {0, 6, 12, 18}),
        ("0 0 1,15,31 * *", 2, {1, 15, 31}),
        ("0 0 */10 * *", 2, {1, 11, 21, 31}),
        ("0 0 1 jan,Jul,DEC *", 3, {1, 7, 12}),
        ("0 0 1 FEB-apr *", 3, {2, 3, 4}),
        ("0 0 1 */3 *", 3, {1, 4, 7, 10}),
        ("0 0 * * 0", 4, {0}),
        ("0 0 * * 7", 4, {0}),                  # Sunday is 0 or 7
        ("0 0 * * 5-7", 4, {5, 6, 0}),
        ("0 0 * * 0-7", 4, set(range(7))),
        ("0 0 * * mon-FRI", 4, {1, 2, 3, 4, 5}),
        ("0 0 * * FRI-SUN", 4, {5, 6, 0}),      # a Sunday named last closes the week
        ("0 0 * * */2", 4, {0, 2, 4, 6}),
        ("0 0 * * 1/2", 4, {1, 3, 5}),
        ("0 0 * * sat,sun", 4, {6, 0}),
    ],
)
def test_field_values(expression: str, index: int, values: set[int]) -> None:
    assert set(parse(expression).fields[index].values) == values


def test_specials_and_rules() -> None:
    spec = parse("0 9 L * *")
    assert spec.last_dom and not spec.fields[2].values
    assert parse("0 9 * * MON#2").nth == ((1, 2),)
    assert parse("0 9 * * 7#1").nth == ((0, 1),)
    assert parse("0 9 * * 5L").last_dow == (5,)
    assert parse("0 9 * * friL").last_dow == (5,)
    assert parse("0 9 1 * MON").days_and is False       # neither starts with *: OR
    assert parse("0 9 * * MON").days_and is True        # AND (dom is *)
    assert parse("0 9 */2 * MON").days_and is True      # Vixie: "starts with *"
    assert parse("0 9 1 * */2").days_and is True
    assert parse("* 9 * * *").wildcard and parse("0 */2 * * *").wildcard
    assert not parse("0 9 * * *").wildcard and not parse("0-59 0-23 * * *").wildcard


@pytest.mark.parametrize(
    ("alias", "expansion"),
    [("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
     ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
     ("@hourly", "0 * * * *"), ("@DAILY", "0 0 * * *")],
)
def test_aliases(alias: str, expansion: str) -> None:
    for zone in ("UTC", "Europe/Berlin"):
        assert next_fire_times(alias, zone, AFTER, 5) == next_fire_times(expansion, zone, AFTER, 5)


def test_surrounding_whitespace_and_tabs() -> None:
    assert next_fire_times("  0\t9 * *  MON  ", "UTC", AFTER) == \
        next_fire_times("0 9 * * MON", "UTC", AFTER)


# --------------------------------------------------------------------------- rejections

REJECTIONS = [
    ("", "expression", "expression is empty"),
    ("   ", "expression", "expression is empty"),
    ("* * * *", "expression",
     "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
    ("0 0 9 * * MON", "expression",
     "expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
    ("@fortnightly", "expression", "unknown alias '@fortnightly'"),
    ("61 * * * *", "minute", "minute 61 is out of range 0-59"),
    ("* 24 * * *", "hour", "hour 24 is out of range 0-23"),
    ("0 0 0 * *", "day-of-month", "day-of-month 0 is out of range 1-31"),
    ("0 0 32 * *", "day-of-month", "day-of-month 32 is out of range 1-31"),
    ("0 0 1 13 *", "month", "month 13 is out of range 1-12"),
    ("0 0 1 0 *", "month", "month 0 is out of range 1-12"),
    ("0 0 * * 8", "day-of-week", "day-of-week 8 is out of range 0-7"),
    ("5-1 * * * *", "minute", "minute range 5-1 is reversed"),
    ("0 0 * * FRI-MON", "day-of-week", "day-of-week range FRI-MON is reversed"),
    ("*/0 * * * *", "minute", "minute step 0 in '*/0' is out of range 1-60"),
    ("0 1-5/0 * * *", "hour", "hour step 0 in '1-5/0' is out of range 1-24"),
    ("*/61 * * * *", "minute", "minute step 61 in '*/61' is out of range 1-60"),
    ("*/x * * * *", "minute", "minute step 'x' in '*/x' is not a number"),
    ("0 0 30 2 *", "day-of-month", "day-of-month 30 never occurs in February"),
    ("0 0 30,31 2 *", "day-of-month", "day-of-month 30,31 never occurs in February"),
    ("0 0 31 4,6 *", "day-of-month", "day-of-month 31 never occurs in April or June"),
    ("0 0 31 APR,JUN,SEP,NOV *", "day-of-month",
     "day-of-month 31 never occurs in April, June, September or November"),
    ("0 0 */30 * MON#2", "day-of-week",
     "day-of-week MON#2 never falls on day-of-month */30"),
    ("0 0 * * MON#6", "day-of-week", "day-of-week 'MON#6': occurrence 6 is out of range 1-5"),
    ("0 0 * * MON#0", "day-of-week", "day-of-week 'MON#0': occurrence 0 is out of range 1-5"),
    ("0 0 * * MON#x", "day-of-week", "the part after # must be a number 1-5"),
    ("0 0 * * L", "day-of-week", "day-of-week 'L' needs a weekday before it"),
    ("0 0 * * FOO", "day-of-week", "day-of-week name 'FOO' is not known (use SUN-SAT or 0-7)"),
    ("0 0 1 FOO *", "month", "month name 'FOO' is not known (use JAN-DEC or 1-12)"),
    ("MON * * * *", "minute", "minute value 'MON' is not a number"),
    ("0 0 1 * 1,,2", "day-of-week", "day-of-week has an empty list element"),
    ("0 0 1-2-3 * *", "day-of-month", "day-of-month range '1-2-3' is not valid"),
    ("0 0 15W * *", "day-of-month", "day-of-month value '15W' is not a number"),
    ("0 0 ? * MON", "day-of-month", "day-of-month value '?' is not a number"),
    ("0 0 L-2 * *", "day-of-month", "day-of-month value 'L' is not a number"),
    ("-1 * * * *", "minute", "minute -1 is out of range 0-59"),
    ("1- * * * *", "minute", "minute range '1-' is not valid"),
    ("\u0663 * * * *", "minute", "is not a number"),                  # Arabic-Indic digit
    ("x" * 1001, "expression", "expression is 1001 characters long; at most 1000 allowed"),
]


@pytest.mark.parametrize(("expression", "field", "message"), REJECTIONS)
def test_rejections(expression: str, field: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        validate(expression)
    assert caught.value.field == field
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(CronError):
        next_fire_times(expression, "UTC", AFTER)
    with pytest.raises(CronError):
        describe(expression)


def test_message_names_the_field() -> None:
    for expression, field, _ in REJECTIONS:
        with pytest.raises(CronError) as caught:
            validate(expression)
        if field != "expression":  # whole-expression messages name the fields they expect
            assert str(caught.value).startswith(field)


def test_impossibility_is_decided_without_searching(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_search(*_: object) -> None:
        raise AssertionError("validation must not search the calendar")

    monkeypatch.setattr(cron, "_next_wall", no_search)
    monkeypatch.setattr(cronfields.CronSpec, "day_mask", no_search)
    parse.cache_clear()
    for expression in ("0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 */30 * MON#2"):
        with pytest.raises(CronError, match="never"):
            validate(expression)
    validate("0 0 29 2 *")          # leap day: possible, still decided without a search
    validate("0 0 * 2 MON#5")       # a fifth Monday in February needs a leap year
    validate("0 0 */20 * MON#3")    # 21st
    parse.cache_clear()


def _median_seconds(function: object, repeats: int = 5) -> float:
    assert callable(function)
    samples = []
    for _ in range(repeats):
        parse.cache_clear()
        started = time.perf_counter()  # a duration, not a date: allowed
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


@pytest.mark.parametrize(
    "expression",
    [
        ",".join(str(i % 60) for i in range(333))[:995] + " * * * *",   # long list
        "0 0 " + ",".join(["30"] * 300)[:980] + " 2 *",                 # long and impossible
        "1" * 1000,                                                     # garbage
        "0 0 30 2 *", "0 0 31 2,4,6,9,11 *", "0 0 */30 * MON#2",
    ],
)
def test_rejection_or_validation_is_fast(expression: str) -> None:
    assert len(expression) <= 1000

    def check() -> None:
        try:
            validate(expression)
        except CronError:
            pass

    assert _median_seconds(check) < 0.05


# --------------------------------------------------------------------------- describe

@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("* * * * *", "Every minute"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("5/10 * * * *", "Every 10 minutes, starting 5 minutes past the hour"),
        ("*/7 * * * *", "At minutes 0, 7, 14, 21, 28, 35, 42, 49 and 56 past the hour"),
        ("0 0 */13 * FRI#2", "At 00:00 on the 1st, 14th and 27th of the month, if that is the "
                             "second Friday of the month"),
        ("0 0 */13 * MON,FRI#2", "At 00:00 on the 1st, 14th and 27th of the month, if that is "
                                 "a Monday or the second Friday of the month"),
        ("0 * * * *", "Every hour"),
        ("15 * * * *", "At 15 minutes past every hour"),
        ("1 * * * *", "At 1 minute past every hour"),
        ("0-29 * * * *", "At minutes 0 through 29 past the hour"),
        ("0 9 * * *", "At 09:00 every day"),
        ("30 8,17 * * *", "At 08:30 and 17:30 every day"),
        ("0 9 * * MON-FRI", "At 09:00, Monday through Friday"),
        ("0 8 * * 1", "At 08:00 on Monday"),
        ("0 8 * * MON,THU", "At 08:00 on Monday and Thursday"),
        ("0 10 * * 6,0", "At 10:00 on Saturday and Sunday"),
        ("0 9 * * FRI-SUN", "At 09:00, Friday through Sunday"),
        ("0 9 * * MON#1", "At 09:00 on the first Monday of the month"),
        ("0 17 * * 5L", "At 17:00 on the last Friday of the month"),
        ("0 0 L * *", "At 00:00 on the last day of the month"),
        ("0 0 15,L * *", "At 00:00 on the 15th and the last day of the month"),
        ("0 0 1 * *", "At 00:00 on the 1st of the month"),
        ("0 0 1,15 * *", "At 00:00 on the 1st and 15th of the month"),
        ("0 4 8-14 * *", "At 04:00 on the 8th through 14th of the month"),
        ("0 0 */2 * *", "At 00:00 on every 2nd day of the month"),
        ("0 0 29 2 *", "At 00:00 on February 29"),
        ("0 0 L 2 *", "At 00:00 on the last day of February"),
        ("5 0 * 8 *", "At 00:05 every day in August"),
        ("0 9 * 1-3 MON-FRI", "At 09:00, Monday through Friday, January through March"),
        ("0 0 1 */6 *", "At 00:00 on the 1st of the month in January and July"),
        ("0 0 1,15 * WED", "At 00:00 on the 1st and 15th of the month and on Wednesday"),
        ("0 0 */2 * MON", "At 00:00 on every 2nd day of the month, if that is a Monday"),
        ("0 0 1-31 * MON", "At 00:00 every day"),  # Vixie OR with every day of the month
        ("0 0 29 2 0-6", "At 00:00 every day in February"),  # OR with every weekday
        ("0 0 30 2 MON", "At 00:00 on the 30th of the month and on Monday in February"),
        ("0 9-17 * * *", "Every hour from 09:00 through 17:00"),
        ("30 */2 * * *", "Every 2 hours from 00:30 through 22:30"),
        ("0,30 9-17 * * MON-FRI", "Every 30 minutes between 09:00 and 17:59, Monday through "
                                  "Friday"),
        ("* 9 * * *", "Every minute between 09:00 and 09:59"),
        ("*/15 9 * * *", "At 09:00, 09:15, 09:30 and 09:45 every day"),
        ("@yearly", "At 00:00 on January 1"),
        ("@monthly", "At 00:00 on the 1st of the month"),
        ("@weekly", "At 00:00 on Sunday"),
        ("@daily", "At 00:00 every day"),
        ("@midnight", "At 00:00 every day"),
        ("@hourly", "Every hour"),
    ],
)
def test_describe(expression: str, text: str) -> None:
    assert describe(expression) == text


# --------------------------------------------------------------------------- zones, args

def test_parse_zone_canonicalises() -> None:
    assert parse_zone("Europe/Berlin").key == "Europe/Berlin"
    assert parse_zone(" europe/berlin ").key == "Europe/Berlin"
    assert parse_zone("utc").key == "UTC"
    assert parse_zone("America/Argentina/Buenos_Aires").key == "America/Argentina/Buenos_Aires"


@pytest.mark.parametrize("name", ["", "  ", "Mars/Olympus", "Europe", "../../etc/passwd",
                                  "/etc/localtime", "localtime", "Europe/Berlin\x00",
                                  "x" * 300])
def test_parse_zone_rejects(name: str) -> None:
    with pytest.raises(TimezoneError) as caught:
        parse_zone(name)
    assert caught.value.field == "timezone"
    assert isinstance(caught.value, ValueError)
    assert "timezone" in str(caught.value)


def test_unknown_zone_in_next_fire_times() -> None:
    with pytest.raises(TimezoneError, match="unknown timezone 'Nowhere/City'"):
        next_fire_times("* * * * *", "Nowhere/City", AFTER)


def test_after_must_be_aware() -> None:
    with pytest.raises(NaiveDatetimeError) as caught:
        next_fire_times("* * * * *", "UTC", datetime(2027, 1, 1))
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == "after"


def test_count() -> None:
    assert next_fire_times("* * * * *", "UTC", AFTER, 0) == []
    with pytest.raises(ValueError, match="count"):
        next_fire_times("* * * * *", "UTC", AFTER, -1)
    assert len(next_fire_times("* * * * *", "UTC", AFTER, 1000)) == 1000


def test_results_are_aware_utc_for_any_aware_after() -> None:
    after = datetime(2027, 1, 1, 9, 0, 30, 999_999, tzinfo=timezone(timedelta(hours=5)))
    (fire,) = next_fire_times("* * * * *", "Asia/Tokyo", after)
    assert fire.tzinfo is UTC
    assert fire == datetime(2027, 1, 1, 4, 1, tzinfo=UTC)


def test_ends_before_year_9999() -> None:
    fires = next_fire_times("0 0 29 2 *", "UTC", datetime(9990, 1, 1, tzinfo=UTC), 10)
    assert [f.year for f in fires] == [9992, 9996]
    end = datetime.max.replace(tzinfo=UTC)
    assert next_fire_times("* * * * *", "Pacific/Kiritimati", end, 3) == []
    assert next_fire_times("* * * * *", "Etc/GMT+12", end - timedelta(days=400), 1)


def test_early_years() -> None:
    (fire,) = next_fire_times("0 12 * * *", "Europe/Berlin", datetime(1850, 6, 1, tzinfo=UTC))
    assert fire == datetime(1850, 6, 1, 11, 6, 32, tzinfo=UTC)  # Berlin mean time +0:53:28
    with pytest.raises(ValueError, match="year 2"):
        next_fire_times("* * * * *", "UTC", datetime.min.replace(tzinfo=UTC))
