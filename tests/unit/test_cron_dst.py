"""Fire times across DST transitions and the calendar, with every instant written out.

The transitions used (2027, from tzdata; UTC instant, wall clock before -> after):

  Europe/Berlin        03-28 01:00Z  02:00 CET    -> 03:00 CEST   (gap 02:00-03:00)
                       10-31 01:00Z  03:00 CEST   -> 02:00 CET    (02:00-03:00 twice)
  America/New_York     03-14 07:00Z  02:00 EST    -> 03:00 EDT    (gap 02:00-03:00)
                       11-07 06:00Z  02:00 EDT    -> 01:00 EST    (01:00-02:00 twice)
  Australia/Lord_Howe  04-03 15:00Z  02:00 +11    -> 01:30 +1030  (01:30-02:00 twice)
                       10-02 15:30Z  02:00 +1030  -> 02:30 +11    (gap 02:00-02:30)
  Pacific/Chatham      04-03 14:00Z  03:45 +1345  -> 02:45 +1245  (02:45-03:45 twice)
                       09-25 14:00Z  02:45 +1245  -> 03:45 +1345  (gap 02:45-03:45)
  America/Santiago     04-04 03:00Z  24:00 -03 Sat-> 23:00 -04 Sat(Sat 23:00-24:00 twice)
                       09-05 04:00Z  00:00 -04 Sun-> 01:00 -03 Sun(gap Sun 00:00-01:00)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kodosumi_timer.cron import (
    DstPolicy,
    next_fire_times,
    parse_zone,
    preview,
    resolve_wall_time,
)


def z(text: str) -> datetime:
    """'2027-03-28T01:00' -> that instant in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CASES = [
    # ---- Europe/Berlin, spring forward
    ("Europe/Berlin", "30 2 * * *", "2027-03-27T12:00",
     ["2027-03-28T01:00", "2027-03-29T00:30", "2027-03-30T00:30"]),
    ("Europe/Berlin", "0,30 2 * * *", "2027-03-27T12:00",          # two in one gap: once
     ["2027-03-28T01:00", "2027-03-29T00:00", "2027-03-29T00:30"]),
    ("Europe/Berlin", "0 2,3 * * *", "2027-03-27T12:00",           # gap end also matches
     ["2027-03-28T01:00", "2027-03-29T00:00", "2027-03-29T01:00"]),
    ("Europe/Berlin", "30 2,3 * * *", "2027-03-27T12:00",
     ["2027-03-28T01:00", "2027-03-28T01:30", "2027-03-29T00:30"]),
    ("Europe/Berlin", "0 3 * * *", "2027-03-27T12:00",
     ["2027-03-28T01:00", "2027-03-29T01:00"]),
    ("Europe/Berlin", "0 0 * * *", "2027-03-27T12:00",             # APScheduler 3 trap
     ["2027-03-27T23:00", "2027-03-28T22:00"]),
    ("Europe/Berlin", "*/30 * * * *", "2027-03-28T00:00",          # wildcard: skipped
     ["2027-03-28T00:30", "2027-03-28T01:00", "2027-03-28T01:30"]),
    ("Europe/Berlin", "30 * * * *", "2027-03-28T00:00",
     ["2027-03-28T00:30", "2027-03-28T01:30", "2027-03-28T02:30"]),
    ("Europe/Berlin", "* 2 * * *", "2027-03-27T12:00",             # hour 2 never exists
     ["2027-03-29T00:00", "2027-03-29T00:01"]),
    # ---- Europe/Berlin, fall back
    ("Europe/Berlin", "30 2 * * *", "2027-10-30T12:00",
     ["2027-10-31T00:30", "2027-11-01T01:30"]),
    ("Europe/Berlin", "30 * * * *", "2027-10-30T23:00",            # wildcard: twice
     ["2027-10-30T23:30", "2027-10-31T00:30", "2027-10-31T01:30", "2027-10-31T02:30"]),
    ("Europe/Berlin", "*/20 2 * * *", "2027-10-30T23:59",
     ["2027-10-31T00:00", "2027-10-31T00:20", "2027-10-31T00:40",
      "2027-10-31T01:00", "2027-10-31T01:20", "2027-10-31T01:40", "2027-11-01T01:00"]),
    # restart inside the repeated hour, second pass (02:10 CET)
    ("Europe/Berlin", "30 2 * * *", "2027-10-31T01:10", ["2027-11-01T01:30"]),
    ("Europe/Berlin", "0 3 * * *", "2027-10-31T01:10", ["2027-10-31T02:00"]),
    ("Europe/Berlin", "30 * * * *", "2027-10-31T01:10", ["2027-10-31T01:30", "2027-10-31T02:30"]),
    ("Europe/Berlin", "*/20 * * * *", "2027-10-31T01:10",
     ["2027-10-31T01:20", "2027-10-31T01:40", "2027-10-31T02:00"]),
    # restart inside the repeated hour, first pass (02:10 CEST)
    ("Europe/Berlin", "30 2 * * *", "2027-10-31T00:10", ["2027-10-31T00:30", "2027-11-01T01:30"]),
    ("Europe/Berlin", "0 2 * * *", "2027-10-31T00:10", ["2027-11-01T01:00"]),
    ("Europe/Berlin", "30 2 * * *", "2027-10-31T00:30", ["2027-11-01T01:30"]),  # at a fire
    ("Europe/Berlin", "*/20 * * * *", "2027-10-31T00:50",
     ["2027-10-31T01:00", "2027-10-31T01:20"]),
    # ---- America/New_York
    ("America/New_York", "30 2 * * *", "2027-03-13T12:00",
     ["2027-03-14T07:00", "2027-03-15T06:30"]),
    ("America/New_York", "0 2 * * SUN", "2027-03-13T12:00",
     ["2027-03-14T07:00", "2027-03-21T06:00"]),
    ("America/New_York", "30 1 * * *", "2027-11-06T12:00",
     ["2027-11-07T05:30", "2027-11-08T06:30"]),
    ("America/New_York", "*/30 1 * * *", "2027-11-07T04:59",
     ["2027-11-07T05:00", "2027-11-07T05:30", "2027-11-07T06:00", "2027-11-07T06:30",
      "2027-11-08T06:00"]),
    ("America/New_York", "45 1 * * *", "2027-11-07T06:10", ["2027-11-08T06:45"]),
    # ---- Australia/Lord_Howe: 30-minute DST
    ("Australia/Lord_Howe", "0 2 * * *", "2027-10-02T00:00",
     ["2027-10-02T15:30", "2027-10-03T15:00"]),
    ("Australia/Lord_Howe", "15 2 * * *", "2027-10-02T00:00",
     ["2027-10-02T15:30", "2027-10-03T15:15"]),
    ("Australia/Lord_Howe", "*/15 * * * *", "2027-10-02T15:00",
     ["2027-10-02T15:15", "2027-10-02T15:30", "2027-10-02T15:45"]),
    ("Australia/Lord_Howe", "45 1 * * *", "2027-04-03T12:00",
     ["2027-04-03T14:45", "2027-04-04T15:15"]),
    ("Australia/Lord_Howe", "*/15 * * * *", "2027-04-03T14:20",
     ["2027-04-03T14:30", "2027-04-03T14:45", "2027-04-03T15:00", "2027-04-03T15:15",
      "2027-04-03T15:30"]),
    ("Australia/Lord_Howe", "45 1 * * *", "2027-04-03T15:05", ["2027-04-04T15:15"]),
    # ---- Pacific/Chatham: +12:45 / +13:45
    ("Pacific/Chatham", "0 3 * * *", "2027-09-25T00:00",
     ["2027-09-25T14:00", "2027-09-26T13:15"]),
    ("Pacific/Chatham", "45 2 * * *", "2027-09-25T00:00",
     ["2027-09-25T14:00", "2027-09-26T13:00"]),
    ("Pacific/Chatham", "44 2 * * *", "2027-09-25T00:00", ["2027-09-25T13:59"]),
    ("Pacific/Chatham", "30 3 * * *", "2027-04-03T00:00",
     ["2027-04-03T13:45", "2027-04-04T14:45"]),
    ("Pacific/Chatham", "0 * * * *", "2027-04-03T12:00",
     ["2027-04-03T12:15", "2027-04-03T13:15", "2027-04-03T14:15", "2027-04-03T15:15"]),
    # ---- America/Santiago: transitions at midnight
    ("America/Santiago", "0 0 * * *", "2027-09-04T12:00",
     ["2027-09-05T04:00", "2027-09-06T03:00"]),
    ("America/Santiago", "30 0 * * SUN", "2027-09-04T12:00",
     ["2027-09-05T04:00", "2027-09-12T03:30"]),
    ("America/Santiago", "30 23 * * *", "2027-04-03T12:00",
     ["2027-04-04T02:30", "2027-04-05T03:30"]),
    ("America/Santiago", "30 * * * *", "2027-04-04T02:00",
     ["2027-04-04T02:30", "2027-04-04T03:30", "2027-04-04T04:30"]),
    ("America/Santiago", "0 0 * * *", "2027-04-03T12:00", ["2027-04-04T04:00"]),
    # ---- UTC and the calendar
    ("UTC", "0 0 29 2 *", "2027-01-01T00:00",
     ["2028-02-29T00:00", "2032-02-29T00:00", "2036-02-29T00:00"]),
    ("Europe/Berlin", "0 0 29 2 *", "2027-01-01T00:00", ["2028-02-28T23:00"]),
    ("UTC", "0 0 29 2 MON", "2027-01-01T00:00",                    # OR: Feb 29 or Feb Mondays
     ["2027-02-01T00:00", "2027-02-08T00:00", "2027-02-15T00:00", "2027-02-22T00:00",
      "2028-02-07T00:00", "2028-02-14T00:00", "2028-02-21T00:00", "2028-02-28T00:00",
      "2028-02-29T00:00"]),
    ("UTC", "0 0 * 2 MON#5", "2027-01-01T00:00", ["2044-02-29T00:00"]),
    ("UTC", "0 0 L * *", "2027-01-15T00:00",
     ["2027-01-31T00:00", "2027-02-28T00:00", "2027-03-31T00:00", "2027-04-30T00:00"]),
    ("UTC", "0 0 L 2 *", "2027-03-01T00:00", ["2028-02-29T00:00", "2029-02-28T00:00"]),
    ("UTC", "0 9 * * MON#1", "2027-01-01T00:00",
     ["2027-01-04T09:00", "2027-02-01T09:00", "2027-03-01T09:00"]),
    ("UTC", "0 9 * * 5#5", "2027-01-01T00:00",
     ["2027-01-29T09:00", "2027-04-30T09:00", "2027-07-30T09:00"]),
    ("UTC", "0 17 * * 5L", "2027-01-01T00:00",
     ["2027-01-29T17:00", "2027-02-26T17:00", "2027-03-26T17:00"]),
    ("UTC", "0 0 1 * MON", "2027-01-01T12:00",                     # OR
     ["2027-01-04T00:00", "2027-01-11T00:00", "2027-01-18T00:00", "2027-01-25T00:00",
      "2027-02-01T00:00", "2027-02-08T00:00"]),
    ("UTC", "0 0 13 * FRI", "2027-01-01T12:00",                    # OR
     ["2027-01-08T00:00", "2027-01-13T00:00", "2027-01-15T00:00", "2027-01-22T00:00"]),
    ("UTC", "0 0 */7 * MON", "2027-01-01T00:00",                   # AND: dom starts with *
     ["2027-02-01T00:00", "2027-02-08T00:00", "2027-02-15T00:00", "2027-02-22T00:00",
      "2027-03-01T00:00"]),
    ("UTC", "0 0 */13 * FRI", "2027-01-01T12:00", ["2027-05-14T00:00"]),
    ("UTC", "0 0 1 * */7", "2027-01-01T12:00", ["2027-08-01T00:00"]),  # AND: 1st on a Sunday
    ("UTC", "@yearly", "2027-06-01T00:00", ["2028-01-01T00:00"]),
    ("Europe/Berlin", "@yearly", "2027-06-01T00:00", ["2027-12-31T23:00"]),
    ("UTC", "@weekly", "2027-01-01T12:00", ["2027-01-03T00:00", "2027-01-10T00:00"]),
    ("Europe/Berlin", "@hourly", "2027-03-28T00:30", ["2027-03-28T01:00", "2027-03-28T02:00"]),
    ("America/New_York", "@daily", "2027-03-13T12:00", ["2027-03-14T05:00", "2027-03-15T04:00"]),
    ("UTC", "59 23 31 12 *", "2027-12-31T23:59", ["2028-12-31T23:59"]),
]


@pytest.mark.parametrize(("zone", "expression", "after", "expected"), CASES)
def test_fire_times(zone: str, expression: str, after: str, expected: list[str]) -> None:
    got = next_fire_times(expression, zone, z(after), len(expected))
    assert got == [z(e) for e in expected]
    assert all(g.tzinfo is UTC for g in got)


@pytest.mark.parametrize(("zone", "expression", "after", "expected"), CASES)
def test_one_at_a_time_equals_many(zone: str, expression: str, after: str,
                                   expected: list[str]) -> None:
    chained, moment = [], z(after)
    for _ in expected:
        (moment,) = next_fire_times(expression, zone, moment)
        chained.append(moment)
    assert chained == next_fire_times(expression, zone, z(after), len(expected))


def test_after_with_microseconds_inside_a_fire_minute() -> None:
    after = z("2027-10-31T00:30") + timedelta(microseconds=1)
    assert next_fire_times("30 * * * *", "Europe/Berlin", after) == [z("2027-10-31T01:30")]
    before = z("2027-10-31T00:30") - timedelta(microseconds=1)
    assert next_fire_times("30 * * * *", "Europe/Berlin", before) == [z("2027-10-31T00:30")]


def test_after_in_another_zone_is_the_same_instant() -> None:
    after = datetime(2027, 10, 31, 2, 10, fold=1, tzinfo=ZoneInfo("Europe/Berlin"))  # CET
    assert next_fire_times("30 2 * * *", "Europe/Berlin", after) == [z("2027-11-01T01:30")]
    after = datetime(2027, 10, 31, 2, 10, fold=0, tzinfo=ZoneInfo("Europe/Berlin"))  # CEST
    assert next_fire_times("30 2 * * *", "Europe/Berlin", after) == [z("2027-10-31T00:30")]


# --------------------------------------------------------------------------- preview

def test_preview_notes_gap_shifts() -> None:
    fires = preview("30 2 * * *", "Europe/Berlin", z("2027-03-27T12:00"), 2)
    assert fires[0].utc == z("2027-03-28T01:00")
    assert fires[0].local == datetime(2027, 3, 28, 3, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert fires[0].local.tzname() == "CEST"
    assert fires[0].dst_note == "02:30 does not exist on 2027-03-28 (DST gap); fires at 03:00 CEST"
    assert fires[1].dst_note is None
    assert fires[1].local.isoformat() == "2027-03-29T02:30:00+02:00"


def test_preview_notes_several_times_in_one_gap() -> None:
    (fire,) = preview("0,30 2 * * *", "Europe/Berlin", z("2027-03-27T12:00"), 1)
    assert fire.dst_note == ("02:00 and 02:30 do not exist on 2027-03-28 (DST gap); "
                             "fires once at 03:00 CEST")
    (fire,) = preview("0-50/10 2 * * *", "Europe/Berlin", z("2027-03-27T12:00"), 1)
    assert fire.dst_note == ("02:00, 02:10, 02:20 and 3 more do not exist on 2027-03-28 "
                             "(DST gap); fires once at 03:00 CEST")


def test_preview_half_hour_zone_and_no_notes_for_wildcards() -> None:
    (fire,) = preview("0 2 * * *", "Australia/Lord_Howe", z("2027-10-02T00:00"), 1)
    assert fire.dst_note == "02:00 does not exist on 2027-10-03 (DST gap); fires at 02:30 +11"
    fires = preview("*/30 * * * *", "Europe/Berlin", z("2027-03-28T00:00"), 3)
    assert [f.dst_note for f in fires] == [None, None, None]
    fires = preview("30 2 * * *", "Europe/Berlin", z("2027-10-30T12:00"), 1)  # fold: no note
    assert fires[0].dst_note is None and fires[0].local.tzname() == "CEST"


# --------------------------------------------------------------------------- one-offs

@pytest.mark.parametrize(
    ("zone", "wall", "utc", "note"),
    [
        ("Europe/Berlin", "2027-06-01T12:00", "2027-06-01T10:00", None),
        ("Europe/Berlin", "2027-03-28T02:30", "2027-03-28T01:00",
         "02:30 does not exist on 2027-03-28 in Europe/Berlin (DST gap); "
         "using 03:00 CEST, when the gap ends"),
        ("Europe/Berlin", "2027-03-28T02:00", "2027-03-28T01:00", "DST gap"),
        ("Europe/Berlin", "2027-03-28T03:00", "2027-03-28T01:00", None),
        ("Europe/Berlin", "2027-10-31T02:30", "2027-10-31T00:30", None),   # first occurrence
        ("America/New_York", "2027-11-07T01:15", "2027-11-07T05:15", None),
        ("America/New_York", "2027-03-14T02:59:59", "2027-03-14T07:00", "DST gap"),
        ("Australia/Lord_Howe", "2027-10-03T02:15", "2027-10-02T15:30", "using 02:30 +11"),
        ("Australia/Lord_Howe", "2027-04-04T01:45", "2027-04-03T14:45", None),
        ("Pacific/Chatham", "2027-09-26T03:00", "2027-09-25T14:00", "using 03:45 +1345"),
        ("America/Santiago", "2027-09-05T00:30", "2027-09-05T04:00", "using 01:00 -03"),
        ("America/Santiago", "2027-04-03T23:30", "2027-04-04T02:30", None),
        ("UTC", "2027-03-28T02:30", "2027-03-28T02:30", None),
    ],
)
def test_resolve_wall_time(zone: str, wall: str, utc: str, note: str | None) -> None:
    instant, got_note = resolve_wall_time(datetime.fromisoformat(wall), zone)
    assert instant == z(utc) and instant.tzinfo is UTC
    if note is None:
        assert got_note is None
    else:
        assert got_note is not None and note in got_note


def test_resolve_wall_time_keeps_microseconds_and_aware_input() -> None:
    instant, note = resolve_wall_time(datetime(2027, 6, 1, 12, 0, 0, 500), "Europe/Berlin")
    assert instant == z("2027-06-01T10:00") + timedelta(microseconds=500) and note is None
    aware = datetime(2027, 3, 28, 2, 30, tzinfo=UTC)
    assert resolve_wall_time(aware, "Europe/Berlin") == (aware, None)


# --------------------------------------------------------------------------- zone data

def test_no_zone_changes_offset_twice_within_a_day_since_1900() -> None:
    """The search probes each zone once a day for offset changes (cron._PROBE); that
    sees every change only if no two come closer than that. Checked on tzdata's explicit
    transitions (the rule-based tail only yields yearly DST pairs)."""
    zoneinfo_py = pytest.importorskip("zoneinfo._zoneinfo")
    from zoneinfo import available_timezones

    from kodosumi_timer import cron

    closest = None
    for key in available_timezones():
        zone = zoneinfo_py.ZoneInfo.no_cache(key)
        instants = [t for t in zone._trans_utc if t > -2_208_988_800]  # 1900
        offsets = [datetime.fromtimestamp(t, zone).utcoffset() for t in instants]
        changes = [t for t, before, after in zip(instants[1:], offsets, offsets[1:],
                                                  strict=False) if before != after]
        for a, b in zip(changes, changes[1:], strict=False):
            if closest is None or b - a < closest[0]:
                closest = (b - a, key)
    assert closest is not None and closest[0] > 2 * cron._PROBE, closest


@pytest.mark.parametrize("key", ["Europe/Berlin", "Pacific/Chatham", "Australia/Lord_Howe",
                                 "America/Santiago", "Pacific/Apia", "Africa/Casablanca",
                                 "Asia/Gaza", "Europe/Dublin", "America/Havana"])
@pytest.mark.parametrize("year", [1996, 2011, 2027])
def test_zone_year_matches_an_hourly_scan(key: str, year: int) -> None:
    from kodosumi_timer import cron

    zone = parse_zone(key)
    start = datetime(year, 1, 1, tzinfo=UTC)
    expected = []
    moment, offset = start, start.astimezone(zone).utcoffset()
    while moment.year == year:
        following = moment + timedelta(hours=1)
        new_offset = following.astimezone(zone).utcoffset()
        if new_offset != offset:  # find the minute within the hour
            following = moment + timedelta(minutes=1)
            while following.astimezone(zone).utcoffset() == offset:
                following += timedelta(minutes=1)
            expected.append(following)
        moment, offset = following, new_offset
    _, instants, _, _ = cron._zone_year(zone, year)
    assert [cron._utc(t) for t in instants] == expected


# ---- per-schedule DST policy (issue 13): gap shift|skip, repeat once|twice -------------

def _z(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("expression, dst, expected", [
    # 02:30 does not exist on 03-28: Debian (fixed time) fires at the gap's end
    ("30 2 * * *", DstPolicy(), [_z(2027, 3, 27, 1, 30), _z(2027, 3, 28, 1, 0),
                                 _z(2027, 3, 29, 0, 30)]),
    ("30 2 * * *", DstPolicy(gap="skip"), [_z(2027, 3, 27, 1, 30), _z(2027, 3, 29, 0, 30),
                                           _z(2027, 3, 30, 0, 30)]),
    # a wildcard job skips the missing 02:00 and 02:30 by Debian; shifted, it fires once
    # at 03:00 for them and its own 03:00
    ("*/30 * * * *", DstPolicy(), [_z(2027, 3, 28, 0, 30), _z(2027, 3, 28, 1, 0),
                                   _z(2027, 3, 28, 1, 30)]),
    ("*/30 * * * *", DstPolicy(gap="shift"), [_z(2027, 3, 28, 0, 30), _z(2027, 3, 28, 1, 0),
                                              _z(2027, 3, 28, 1, 30)]),
    # 02:30 occurs twice on 10-31 (00:30Z CEST, 01:30Z CET)
    ("30 2 * * *", DstPolicy(), [_z(2027, 10, 30, 0, 30), _z(2027, 10, 31, 0, 30),
                                 _z(2027, 11, 1, 1, 30)]),
    ("30 2 * * *", DstPolicy(repeat="twice"), [_z(2027, 10, 30, 0, 30), _z(2027, 10, 31, 0, 30),
                                               _z(2027, 10, 31, 1, 30)]),
    ("*/30 * * * *", DstPolicy(), [_z(2027, 10, 31, 0, 0), _z(2027, 10, 31, 0, 30),
                                   _z(2027, 10, 31, 1, 0), _z(2027, 10, 31, 1, 30)]),
    ("*/30 * * * *", DstPolicy(repeat="once"), [_z(2027, 10, 31, 0, 0), _z(2027, 10, 31, 0, 30),
                                                _z(2027, 10, 31, 2, 0), _z(2027, 10, 31, 2, 30)]),
])
def test_a_schedules_dst_policy_overrides_the_debian_rules(expression, dst, expected):
    after = expected[0] - timedelta(seconds=1)
    assert next_fire_times(expression, "Europe/Berlin", after, len(expected), dst) == expected


def test_the_default_policy_is_debians():
    after = _z(2027, 1, 1)
    for expression in ("30 2 * * *", "*/30 * * * *", "0 2 * * 0"):
        for zone in ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe"):
            assert next_fire_times(expression, zone, after, 400, DstPolicy()) == \
                next_fire_times(expression, zone, after, 400)
