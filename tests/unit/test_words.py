"""Schedule rules in words: the phrase table, the once/interval arithmetic, the errors and
their suggestions, and properties (junk raises only WordsError; every cron made is valid)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from kodosumi_timer import cron
from kodosumi_timer.words import TEMPLATES, WordsError, read_rule, upcoming
from kodosumi_timer.words.grammar import VOCABULARY
from tests.unit.conftest import ALICE, token
from tests.unit.factories import T0, composed_app

BERLIN = "Europe/Berlin"
NOW = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)  # a Thursday, 12:00 in Berlin


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CRON_TABLE = [
    ("every weekday at 9am", "0 9 * * 1-5"),
    ("Every weekday at 9 a.m.", "0 9 * * 1-5"),
    ("weekdays at 09:00", "0 9 * * 1-5"),
    ("Mon-Fri at 9", "0 9 * * 1-5"),
    ("monday through friday at 9am", "0 9 * * 1-5"),
    ("every 15 minutes", "*/15 * * * *"),
    ("every 15m", "*/15 * * * *"),
    ("every quarter hour", "*/15 * * * *"),
    ("every half hour", "*/30 * * * *"),
    ("every minute", "* * * * *"),
    ("every 60 seconds", "* * * * *"),
    ("every hour", "0 * * * *"),
    ("hourly", "0 * * * *"),
    ("every 2 hours", "0 */2 * * *"),
    ("every 2 hours at :15", "15 */2 * * *"),
    ("every 2 hours starting at 9", "0 1-23/2 * * *"),
    ("every 20 minutes starting at :05", "5-59/20 * * * *"),
    ("first Monday of the month at 08:30", "30 8 * * 1#1"),
    ("on the first monday of every month at 8:30", "30 8 * * 1#1"),
    ("every second Tuesday of the month at 10", "0 10 * * 2#2"),
    ("the 3rd Friday at 17:00", "0 17 * * 5#3"),
    ("last Friday of the month at 17:00", "0 17 * * 5L"),
    ("every 2 hours between 9 and 17 on weekdays", "0 9-17/2 * * 1-5"),
    ("every hour between 9am and 5pm", "0 9-17 * * *"),
    ("every hour from 8 to 18 on weekends", "0 8-18 * * 0,6"),
    ("every 15 minutes between 9 and 17", "*/15 9-16 * * *"),
    ("every 5 hours between 8 and 20", "0 8-20/5 * * *"),
    ("every 4 hours on weekdays", "0 */4 * * 1-5"),
    ("last day of the month at 18:00", "0 18 L * *"),
    ("on the last day of every month at 6pm", "0 18 L * *"),
    ("every day at 7", "0 7 * * *"),
    ("every day at 8:00 and 17:00", "0 8,17 * * *"),
    ("every day at 9:30, 12:30 and 15:30", "30 9,12,15 * * *"),
    ("daily", "0 0 * * *"),
    ("daily at 9", "0 9 * * *"),
    ("every night at 10", "0 22 * * *"),
    ("every night at 10:30pm", "30 22 * * *"),
    ("every evening at 7", "0 19 * * *"),
    ("every morning at 7", "0 7 * * *"),
    ("every Monday and Thursday at 7:15pm", "15 19 * * 1,4"),
    ("every mon, wed and fri at noon", "0 12 * * 1,3,5"),
    ("Fridays at 17:00", "0 17 * * 5"),
    ("on Monday at 9", "0 9 * * 1"),
    ("every friday-monday at 8", "0 8 * * 0,1,5,6"),
    ("on weekends at noon", "0 12 * * 0,6"),
    ("at midnight", "0 0 * * *"),
    ("at noon on weekdays", "0 12 * * 1-5"),
    ("every hour at :30", "30 * * * *"),
    ("every hour at 30 past", "30 * * * *"),
    ("at 30 minutes past every hour", "30 * * * *"),
    ("every hour at half past", "30 * * * *"),
    ("every hour on the hour", "0 * * * *"),
    ("hourly at :15", "15 * * * *"),
    ("on the 1st and 15th at 9", "0 9 1,15 * *"),
    ("on the 1st, 2nd and 3rd at 9", "0 9 1-3 * *"),
    ("on the 15th and the last day at 9", "0 9 15,L * *"),
    ("every January 1st at 0:00", "0 0 1 1 *"),
    ("every 1st of January at midnight", "0 0 1 1 *"),
    ("every year on March 3 at 8", "0 8 3 3 *"),
    ("yearly", "0 0 1 1 *"),
    ("weekly", "0 0 * * 0"),
    ("weekly on Monday", "0 0 * * 1"),
    ("every week on Monday at 9", "0 9 * * 1"),
    ("monthly", "0 0 1 * *"),
    ("monthly on the 15th at 9", "0 9 15 * *"),
    ("every month on the last Friday at 17", "0 17 * * 5L"),
    ("every 3 months on the 1st at 9", "0 9 1 */3 *"),
    ("every Monday in January at 9", "0 9 * 1 1"),
    ("every weekday in June, July and August at 7", "0 7 * 6-8 1-5"),
    ("every day at 9 o'clock", "0 9 * * *"),
    ("every 30 minutes during weekdays", "*/30 * * * 1-5"),
    ("every day at 9 except Sundays", "0 9 * * 1-6"),
    ("every day except weekends at 8", "0 8 * * 1-5"),
    ("every weekday but Friday at 9", "0 9 * * 1-4"),
    ("every day at 12am", "0 0 * * *"),
    ("every day at 12pm", "0 12 * * *"),
]


@pytest.mark.parametrize(("text", "expression"), CRON_TABLE)
def test_phrases_that_make_cron_rules(text, expression):
    rule = read_rule(text, BERLIN, NOW)
    assert (rule.schedule_type, rule.cron_expression) == ("cron", expression)
    assert rule.description == cron.describe(expression)
    assert rule.run_at is None and rule.every is None


INTERVAL_TABLE = [
    ("every 90 minutes", "90m", None),
    ("every 1.5 hours", "90m", None),
    ("every 45 minutes", "45m", None),
    ("every 5 hours", "5h", None),
    ("every 24 hours", "1d", None),
    ("every 30 seconds", "30s", None),
    ("every 10 seconds", "10s", None),
    ("every 2 days", "2d", None),
    ("every 3 days at 06:00", "3d", "2026-12-04T05:00"),  # 06:00 Berlin tomorrow
    ("every other day at 13:00", "2d", "2026-12-03T12:00"),  # still today
    ("every 2 weeks on Monday at 9", "14d", "2026-12-07T08:00"),
    ("every 2 weeks", "14d", None),
    ("every second day at 9", "2d", "2026-12-04T08:00"),
    ("every 2nd week on Monday", "14d", "2026-12-06T23:00"),
    ("every fortnight", "14d", None),
    ("every 90 minutes starting at 8", "90m", "2026-12-04T07:00"),
]


@pytest.mark.parametrize(("text", "every", "anchor"), INTERVAL_TABLE)
def test_phrases_that_make_intervals(text, every, anchor):
    rule = read_rule(text, BERLIN, NOW)
    assert (rule.schedule_type, rule.every) == ("interval", every)
    assert rule.anchor == (z(anchor) if anchor else None)
    assert "elapsed time" in rule.description


ONCE_TABLE = [
    ("tomorrow at 9", "2026-12-04T08:00"),
    ("tomorrow at 9pm", "2026-12-04T20:00"),
    ("today at 17:00", "2026-12-03T16:00"),
    ("tonight at 10", "2026-12-03T21:00"),
    ("in 2 hours", "2026-12-03T13:00"),
    ("in an hour", "2026-12-03T12:00"),
    ("in half an hour", "2026-12-03T11:30"),
    ("in 90 minutes", "2026-12-03T12:30"),
    ("in 3 days", "2026-12-06T11:00"),
    ("in 3 days at 9", "2026-12-06T08:00"),
    ("next Friday at 17:00", "2026-12-04T16:00"),
    ("next Thursday at 8", "2026-12-10T07:00"),  # today is Thursday: a week on
    ("this monday at noon", "2026-12-07T11:00"),
    ("on 2027-01-15 at 10:00", "2027-01-15T09:00"),
    ("on January 15 at 10", "2027-01-15T09:00"),
    ("on Jan 15th, 2028 at 10am", "2028-01-15T09:00"),
    ("on 15 March 2027 at 8", "2027-03-15T07:00"),
    ("on December 25 at 8", "2026-12-25T07:00"),  # still to come this year
    ("on December 1 at 8", "2027-12-01T07:00"),  # passed: next year
]


@pytest.mark.parametrize(("text", "instant"), ONCE_TABLE)
def test_phrases_that_make_one_offs(text, instant):
    rule = read_rule(text, BERLIN, NOW)
    assert (rule.schedule_type, rule.run_at) == ("once", z(instant))
    assert rule.description.startswith("Once, ")


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Kolkata",
                                  "Australia/Lord_Howe", "Pacific/Chatham", "UTC"])
def test_every_weekday_at_9am_is_exactly_the_cron_rule(zone):
    rule = read_rule("every weekday at 9am", zone, NOW)
    expected = cron.next_fire_times("0 9 * * 1-5", zone, NOW, 600)
    assert [t.utc for t in upcoming(rule, zone, NOW, 600)] == expected
    assert all(t.astimezone(cron.parse_zone(zone)).strftime("%a %H:%M")[-5:] == "09:00"
               and t.astimezone(cron.parse_zone(zone)).isoweekday() <= 5 for t in expected)


def test_zone_and_now_decide_a_one_off():
    # the same words, another zone: another instant
    assert read_rule("tomorrow at 9", "America/New_York", NOW).run_at == z("2026-12-04T14:00")
    # late on Dec 3 in UTC is already Dec 4 in Tokyo, so "tomorrow" is Dec 5 there
    late = z("2026-12-03T20:00")
    assert read_rule("tomorrow at 9", "Asia/Tokyo", late).run_at == z("2026-12-05T00:00")


def test_a_one_off_in_a_dst_gap_moves_to_its_end_and_says_so():
    now = z("2027-03-27T11:00")
    rule = read_rule("tomorrow at 2:30", BERLIN, now)
    assert rule.run_at == z("2027-03-28T01:00")  # 03:00 CEST, when the gap ends
    assert rule.note and "DST gap" in rule.note
    (fire,) = upcoming(rule, BERLIN, now, 5)
    assert fire.dst_note == rule.note and fire.local.strftime("%H:%M") == "03:00"


def test_interval_times_are_anchor_plus_k_every_in_elapsed_time():
    now = z("2027-03-27T22:10")  # Berlin springs forward at 01:00 UTC on Mar 28
    rule = read_rule("every 90 minutes", BERLIN, now)
    times = upcoming(rule, BERLIN, now, 4)
    assert [t.utc for t in times] == [now + timedelta(minutes=90 * k) for k in range(1, 5)]
    local = [t.local.strftime("%H:%M") for t in times]
    assert local == ["00:40", "03:10", "04:40", "06:10"]  # the wall clock jumps, the gaps do not
    anchored = read_rule("every 3 days at 06:00", BERLIN, NOW)
    later = upcoming(anchored, BERLIN, z("2026-12-10T12:00"), 2)
    assert [t.utc for t in later] == [z("2026-12-13T05:00"), z("2026-12-16T05:00")]
    assert upcoming(anchored, BERLIN, NOW, 1)[0].utc == anchored.anchor
    assert anchored.every_seconds == 3 * 86_400


REFUSED = [
    ("", "empty"),
    ("   ", "empty"),
    ("every", "every what"),
    ("blah", "'blah' is not a word I know"),
    ("every 15 minuts", "did you mean 'minute'"),
    ("evry weekday at 9", "did you mean 'every'"),
    ("first monday of teh month", "did you mean 'the'"),
    ("every weekend except saturday and sunday", "leaves out every day"),
    ("on the 1st except Mondays", "leaves out weekdays from a weekly rule"),
    ("every 5 seconds", "at least every 10 seconds"),
    ("every 400 days", "at most every 366 days"),
    ("at 25", "not an hour"),
    ("at 13pm", "not a time"),
    ("at 9:75", "not a time of day"),
    ("on 2027-02-30 at 9", "not a date"),
    ("every weekday at 9:15 and 17:30", "share their minutes"),
    ("every 45 minutes on weekdays", "interval"),
    ("every 90 minutes between 9 and 17", "interval"),
    ("every 3 days on weekdays", "cannot be limited"),
    ("today at 9", "has passed"),
    ("tomorrow", "at what time"),
    ("tomorrow at 9 and 17", "one time of day"),
    ("every day at 9 at 10", "twice"),
    ("every tomorrow at 9", "every"),
    ("between 9 and 17", "needs a cadence"),
    ("every 2 hours between 9:30 and 17", "whole hours"),
    ("every 2 hours between 17 and 9", "ends before it starts"),
    ("on the 31st of February at 9", "February has no day 31"),
    ("every 30th of February", "February has no day 30"),
    ("on the 31st at 9 in April", "never occurs"),
    ("on the 1st and on Mondays at 9", "not both"),
    ("the last weekday of the month", "beyond"),
    ("the 6th Monday of the month", "at most five"),
    ("every 5 months", "2, 3, 4 or 6"),
    ("in 2 months", "name the date"),
    ("every 0 minutes", "positive"),
    ("every weekday at 9 $", "character"),
    ("x" * 201, "at most 200"),
]


@pytest.mark.parametrize(("text", "says"), REFUSED)
def test_what_it_cannot_read_is_one_error_naming_text(text, says):
    with pytest.raises(WordsError) as caught:
        read_rule(text, BERLIN, NOW)
    assert caught.value.field == "text"
    assert says in str(caught.value), str(caught.value)


def test_the_error_suggests_the_nearest_form_it_knows():
    with pytest.raises(WordsError) as caught:
        read_rule("every 15 minuts", BERLIN, NOW)
    assert caught.value.suggestion == "every 15 minutes"
    assert str(caught.value).endswith('the nearest form I know: "every 15 minutes"')
    with pytest.raises(WordsError) as caught:
        read_rule("every 5 seconds", BERLIN, NOW)
    assert caught.value.suggestion == "every 30 seconds"
    with pytest.raises(WordsError) as caught:
        read_rule("first monday of teh month at 8:30", BERLIN, NOW)
    assert caught.value.suggestion == "first Monday of the month at 08:30"


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_suggested_form_reads(template):
    assert read_rule(template, BERLIN, NOW).description


def test_a_bad_zone_or_a_naive_now_is_not_blamed_on_the_text():
    with pytest.raises(cron.TimezoneError):
        read_rule("every day at 9", "Mars/Olympus", NOW)
    with pytest.raises(cron.NaiveDatetimeError):
        read_rule("every day at 9", BERLIN, datetime(2026, 12, 3))


# ------------------------------------------------------------------------ properties

_WORDS = sorted(VOCABULARY) + ["9", "17", "2", "90", "15", "1.5", "0", "31", "9am", "7:15pm",
                               ":30", "1st", "15th", "2027-01-15", "-", ",", "&", "o'clock",
                               "mondays", "weekdays", "mins", "2h", "45m", "99999", "24"]
_phrases = st.lists(st.sampled_from(_WORDS), min_size=1, max_size=9).map(" ".join)
_zones = st.sampled_from(["UTC", BERLIN, "America/New_York", "Australia/Lord_Howe"])
_instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1),
                         timezones=st.just(UTC))


def _check(text: str, zone: str, now: datetime) -> None:
    try:
        rule = read_rule(text, zone, now)
    except WordsError as exc:
        assert str(exc) and exc.field == "text"
        return
    if rule.schedule_type == "cron":
        assert rule.cron_expression is not None
        cron.validate(rule.cron_expression)  # accepted by cron.py
        assert cron.next_fire_times(rule.cron_expression, zone, now, 1)
    elif rule.schedule_type == "once":
        assert rule.run_at is not None and rule.run_at > now
    else:
        assert rule.every_seconds is not None and 10 <= rule.every_seconds <= 366 * 86_400
        assert rule.anchor is None or rule.anchor > now
    times = upcoming(rule, zone, now, 3)
    assert times and all(t.utc > now for t in times)


@settings(max_examples=500, deadline=None)
@given(_phrases, _zones, _instants)
def test_phrases_of_known_words_give_a_valid_rule_or_our_error(text, zone, now):
    _check(text, zone, now)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60), _instants)
def test_any_text_gives_a_rule_or_our_error(text, now):
    _check(text, BERLIN, now)


_n = st.integers(min_value=0, max_value=400).map(str)
_hour = st.integers(min_value=0, max_value=24).map(str)
_minute = st.integers(min_value=0, max_value=60).map(lambda m: f"{m:02d}")
_weekday = st.sampled_from(["monday", "tue", "Wednesdays", "thu", "friday", "sat", "sunday"])
_ord = st.integers(min_value=0, max_value=32).map(lambda d: f"{d}th")
_nth = st.sampled_from(["first", "second", "third", "fourth", "fifth", "last"])
_unit = st.sampled_from(["seconds", "minutes", "hours", "days", "weeks", "months", "years"])
_month = st.sampled_from(["january", "feb", "march", "june", "september", "december"])
_clause = st.one_of(
    st.builds("every {} {}".format, _n, _unit),
    st.sampled_from(["daily", "hourly", "weekly", "monthly", "yearly", "every day",
                     "every night", "every other day", "every hour", "every minute",
                     "on weekdays", "on weekends", "every weekday", "at noon", "at midnight",
                     "tomorrow", "today", "the last day of the month", "on the hour"]),
    st.builds("every {}".format, _weekday),
    st.builds("on {} and {}".format, _weekday, _weekday),
    st.builds("{}-{}".format, _weekday, _weekday),
    st.builds("except {}".format, _weekday),
    st.builds("on the {}".format, _ord),
    st.builds("on the {} and {}".format, _ord, _ord),
    st.builds("the {} {} of the month".format, _nth, _weekday),
    st.builds("in {}".format, _month),
    st.builds("every {} {}".format, _month, _ord),
    st.builds("on {} {}".format, _month, _ord),
    st.builds("next {}".format, _weekday),
    st.builds("in {} {}".format, _n, _unit),
    st.builds("at {}".format, _hour),
    st.builds("at {}:{}".format, _hour, _minute),
    st.builds("at {}{}".format, st.integers(0, 13).map(str), st.sampled_from(["am", "pm"])),
    st.builds("at :{}".format, _minute),
    st.builds("at {} and {}".format, _hour, _hour),
    st.builds("between {} and {}".format, _hour, _hour),
    st.builds("starting at {}".format, _hour),
    st.builds("on {}-{}-{}".format, st.integers(2020, 2100).map(str),
              st.integers(1, 13).map(str), st.integers(1, 32).map(str)),
)
_composed = st.lists(_clause, min_size=1, max_size=4).map(" ".join)


@settings(max_examples=500, deadline=None)
@given(_composed, _zones, _instants)
def test_phrases_made_of_clauses_give_a_valid_rule_or_our_error(text, zone, now):
    _check(text, zone, now)


# ------------------------------------------------------------------------ the API

async def test_preview_reads_text_and_answers_the_rule_and_its_times(api):
    r = await api.post("/schedule/preview", json={"text": "every weekday at 9am",
                                                  "timezone": BERLIN, "count": 30},
                       headers=token(ALICE))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rule"] == {"schedule_type": "cron", "cron_expression": "0 9 * * 1-5",
                            "run_at": None, "every": None, "anchor": None}
    assert body["description"] == "At 09:00, Monday through Friday"
    expected = cron.next_fire_times("0 9 * * 1-5", BERLIN, T0, 30)
    assert [datetime.fromisoformat(t["utc"]) for t in body["times"]] == expected
    # the same times as the cron expression's own preview
    plain = await api.post("/schedule/preview", json={"cron_expression": "0 9 * * 1-5",
                                                      "timezone": BERLIN, "count": 30},
                           headers=token(ALICE))
    assert plain.json()["times"] == body["times"] and plain.json()["rule"] is None


async def test_preview_of_an_interval_and_a_one_off(api):
    r = await api.post("/schedule/preview", json={"text": "every 90 minutes", "count": 3},
                       headers=token(ALICE))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rule"]["schedule_type"] == "interval" and body["rule"]["every"] == "90m"
    assert [datetime.fromisoformat(t["utc"]) for t in body["times"]] == [
        T0 + timedelta(minutes=90 * k) for k in (1, 2, 3)]
    r = await api.post("/schedule/preview", json={"text": "tomorrow at 9",
                                                  "timezone": BERLIN}, headers=token(ALICE))
    body = r.json()
    assert body["rule"]["schedule_type"] == "once"
    assert datetime.fromisoformat(body["rule"]["run_at"]) == z("2027-03-02T08:00")
    assert len(body["times"]) == 1 and body["description"].startswith("Once, on Tue 2027-03-02")


@pytest.mark.parametrize(("payload", "field", "says"), [
    ({"text": "evry weekday at 9"}, "text", "did you mean 'every'"),
    ({"text": "every 5 seconds"}, "text", "every 30 seconds"),
    ({"text": ""}, "text", "empty"),
    ({"text": "x" * 201}, "text", "200"),
    ({"text": "daily", "cron_expression": "0 9 * * *"}, "text", "not both"),
    ({"text": "daily", "timezone": "Mars/Base"}, "timezone", "unknown timezone"),
])
async def test_preview_refuses_unreadable_text_naming_it(api, payload, field, says):
    r = await api.post("/schedule/preview", json=payload, headers=token(ALICE))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and says in r.json()["detail"], r.text
    assert "Traceback" not in r.text


async def test_the_openapi_documents_text_and_rule(tmp_path):
    async with AsyncTestClient(app=composed_app(tmp_path)) as panel:
        spec = (await panel.get("/schema/openapi.json", headers=token(ALICE))).json()
    schemas = spec["components"]["schemas"]
    request = next(v for k, v in schemas.items() if k.endswith("PreviewRequest"))
    response = next(v for k, v in schemas.items() if k.endswith("PreviewResponse"))
    assert "every weekday at 9am" in json.dumps(request["properties"]["text"])
    assert "rule" in response["properties"]
    operation = spec["paths"]["/schedule/preview"]["post"]
    assert "`text`" in operation["description"]
