"""The week calendar of coming runs: which slots land on which of the viewer's days
(kodosumi_timer.panel.calendar_week, pure) and what the view makes of them."""

from datetime import UTC, date, datetime, timedelta

from kodosumi_timer.panel import calendar_week as cw
from kodosumi_timer.panel.calendar_view import calendar_context
from tests.unit.factories import T0, schedule

# T0 is Monday 2027-03-01 08:00 UTC


def daily(at: str = "0 9 * * *", zone: str = "UTC", next_run: datetime | None = None,
          **over):  # type: ignore[no-untyped-def]
    nxt = next_run or cw.rule_of(schedule(schedule_type="cron", cron_expression=at,
                                          timezone=zone)).next_slots(T0)[0]
    return schedule(schedule_type="cron", cron_expression=at, timezone=zone, next_run=nxt,
                    run_at=None, **over)


def slots(week: cw.Week) -> dict[date, list[str]]:
    return {d.day: [e.local.strftime("%H:%M") for e in d.entries] for d in week.days}


def test_seven_days_from_today_in_the_viewers_zone_today_first_and_marked():
    week = cw.week([daily()], "UTC", T0)
    assert [d.day for d in week.days] == [date(2027, 3, 1) + timedelta(days=i) for i in range(7)]
    assert [d.today for d in week.days] == [True] + [False] * 6
    assert all(s == ["09:00"] for s in slots(week).values())
    assert not week.empty


def test_a_slot_lands_on_the_viewers_day_not_the_schedules():
    # 23:30 UTC is 08:30 next morning in Tokyo and 18:30 the same day in New York
    row = daily("30 23 * * *", "UTC")
    tokyo = cw.week([row], "Asia/Tokyo", T0)
    # 08:00 UTC is 17:00 in Tokyo on Monday; Monday 23:30 UTC is Tuesday 08:30 there
    assert slots(tokyo)[date(2027, 3, 1)] == []
    assert slots(tokyo)[date(2027, 3, 2)] == ["08:30"]
    assert tokyo.days[0].day == date(2027, 3, 1)
    new_york = cw.week([row], "America/New_York", T0)
    assert new_york.days[0].day == date(2027, 3, 1)  # 03:00 there
    assert slots(new_york)[date(2027, 3, 1)] == ["18:30"]


def test_the_first_day_shows_only_what_is_still_to_come():
    at_noon = T0.replace(hour=12)
    week = cw.week([daily("0 9,18 * * *")], "UTC", at_noon)
    assert slots(week)[date(2027, 3, 1)] == ["18:00"]
    assert slots(week)[date(2027, 3, 2)] == ["09:00", "18:00"]


def test_a_spring_forward_day_follows_the_schedules_dst_policy():
    # Berlin skips 02:00-03:00 on Sunday 2027-03-28
    now = datetime(2027, 3, 25, 12, tzinfo=UTC)
    shift = daily("30 2 * * *", "Europe/Berlin", next_run=datetime(2027, 3, 26, 1, 30, tzinfo=UTC))
    week = cw.week([shift], "Europe/Berlin", now)
    assert slots(week)[date(2027, 3, 28)] == ["03:00"]  # the gap's end, as the timer fires it
    assert slots(week)[date(2027, 3, 29)] == ["02:30"]
    assert [e.at for e in week.days[3].entries] == [datetime(2027, 3, 28, 1, tzinfo=UTC)]
    skip = daily("30 2 * * *", "Europe/Berlin", next_run=datetime(2027, 3, 26, 1, 30, tzinfo=UTC),
                 dst_gap="skip")
    assert slots(cw.week([skip], "Europe/Berlin", now))[date(2027, 3, 28)] == []


def test_paused_and_done_schedules_have_no_coming_runs():
    rows = [daily(state="paused", next_run=None), daily(state="done", next_run=None),
            daily(state="paused")]  # even one that still carries a next_run
    week = cw.week(rows, "UTC", T0)
    assert week.empty and all(not d.entries and not d.more for d in week.days)


def test_a_once_schedule_shows_on_its_day_and_not_once_its_time_passed():
    soon = schedule(next_run=T0 + timedelta(days=2, hours=3), title="Report")
    past = schedule(next_run=T0 - timedelta(minutes=1), title="Late")
    later = schedule(next_run=T0 + timedelta(days=8), title="Next week")
    week = cw.week([soon, past, later], "UTC", T0)
    shown = [(d.day, e.title) for d in week.days for e in d.entries]
    assert shown == [(date(2027, 3, 3), "Report")]


def test_the_title_falls_back_to_the_agent_and_entries_carry_the_schedule_id():
    row = daily(title=None, expose_name="Quick demo")
    entry = cw.week([row], "UTC", T0).days[0].entries[0]
    assert (entry.title, entry.schedule_id, entry.state) == ("Quick demo", row.id, "active")
    marked = cw.week([row], "UTC", T0, state_of=lambda r: "failing").days[0].entries[0]
    assert marked.state == "failing"


def test_end_at_max_runs_and_excluded_dates_count_as_for_the_timer():
    ends = daily(end_at=datetime(2027, 3, 3, 12, tzinfo=UTC), title="ends")
    capped = daily(max_runs=5, run_count=3, title="capped")
    holiday = daily(exclude_dates=["2027-03-02"], title="holiday")
    week = cw.week([ends, capped, holiday], "UTC", T0)
    titles = {d.day: sorted(e.title for e in d.entries) for d in week.days}
    assert titles[date(2027, 3, 1)] == ["capped", "ends", "holiday"]
    assert titles[date(2027, 3, 2)] == ["capped", "ends"]
    assert titles[date(2027, 3, 3)] == ["ends", "holiday"]
    assert titles[date(2027, 3, 4)] == ["holiday"]


def test_a_busy_schedule_is_bounded_per_day_and_counted_as_more():
    minutely = daily("*/30 * * * *", next_run=T0 + timedelta(minutes=30))
    week = cw.week([minutely], "UTC", T0)
    today, tomorrow = week.days[0], week.days[1]
    assert len(today.entries) == cw.SHOWN_PER_SCHEDULE
    assert today.more == 31 - cw.SHOWN_PER_SCHEDULE  # 08:30 .. 23:30
    assert tomorrow.more == 48 - cw.SHOWN_PER_SCHEDULE and not tomorrow.more_capped
    every_minute = daily("* * * * *", next_run=T0 + timedelta(minutes=1))
    day = cw.week([every_minute], "UTC", T0).days[1]
    assert day.more_capped and day.more == cw.COUNTED - cw.SHOWN_PER_SCHEDULE


def test_a_full_day_shows_at_most_the_day_bound_soonest_first():
    rows = [daily(f"{m} 9 * * *", title=f"s{m:02d}") for m in range(12)]
    day = cw.week(rows, "UTC", T0).days[1]
    assert [e.title for e in day.entries] == [f"s{m:02d}" for m in range(cw.SHOWN_PER_DAY)]
    assert day.more == 12 - cw.SHOWN_PER_DAY


def test_the_view_uses_the_browsers_zone_or_says_utc():
    row = daily("30 23 * * *", title="Night <b>")
    told = calendar_context([row], "Asia/Tokyo", T0, everyone=False)
    assert told["zone"] == "Asia/Tokyo" and told["zone_known"]
    tuesday = told["days"][1]
    assert tuesday["iso"] == "2027-03-02" and tuesday["weekday"] == "Tue"
    assert tuesday["entries"][0]["time"] == "08:30"
    assert tuesday["entries"][0]["href"] == f"/admin/schedule/{row.id}"
    for bad in (None, "", "Nowhere/Land", "../etc", "x" * 100):
        fallback = calendar_context([row], bad, T0, everyone=False)
        assert fallback["zone"] == "UTC" and not fallback["zone_known"]
        assert fallback["days"][0]["entries"][0]["time"] == "23:30"


def test_the_view_says_more_with_a_floor_when_counting_stopped():
    every_minute = daily("* * * * *", next_run=T0 + timedelta(minutes=1))
    day = calendar_context([every_minute], "UTC", T0, everyone=False)["days"][1]
    assert day["more"] == f"+{cw.COUNTED - cw.SHOWN_PER_SCHEDULE}+ more"
    half_hourly = daily("*/30 * * * *", next_run=T0 + timedelta(minutes=30))
    day = calendar_context([half_hourly], "UTC", T0, everyone=False)["days"][1]
    assert day["more"] == f"+{48 - cw.SHOWN_PER_SCHEDULE} more"


def test_an_interval_rule_runs_in_elapsed_time_across_the_days():
    row = schedule(schedule_type="interval", every_seconds=10 * 3600, anchor=T0,
                   next_run=T0 + timedelta(hours=10), run_at=None, timezone="Europe/Berlin")
    week = cw.week([row], "UTC", T0)
    assert slots(week)[date(2027, 3, 1)] == ["18:00"]
    assert slots(week)[date(2027, 3, 2)] == ["04:00", "14:00"]
    assert slots(week)[date(2027, 3, 3)] == ["00:00", "10:00", "20:00"]
