"""The coming load per minute (pure; ``now`` is an argument)."""

from datetime import UTC, datetime, timedelta

from kodosumi_timer.load import LoadSchedule, coming_load
from kodosumi_timer.rules import Rule

NOW = datetime(2027, 3, 1, 8, 0, 30, tzinfo=UTC)


def cron(sid, expression, next_run, owner="u1", **kw):
    return LoadSchedule(sid, owner, f"title {sid}", Rule("cron", "UTC", expression), next_run,
                        **kw)


def test_a_nine_oclock_herd_is_the_busiest_minute_with_its_users():
    nine = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    herd = [cron(f"s{i}", "0 9 * * *", nine, owner=f"u{i % 3}") for i in range(30)]
    hourly = cron("h", "0 * * * *", nine)
    load = coming_load([*herd, hourly], NOW)
    assert load.start == NOW.replace(second=0) and len(load.counts) == 1440
    assert load.counts[60] == 31  # 09:00 is minute 60 after 08:00: 30 daily + 1 hourly (09:00 to 07:00)
    assert load.total == 30 + 23 and load.schedules == 31
    top = load.busiest[0]
    assert top.at == nine and top.slots == 31 and top.owners == 3
    assert len(top.schedules) == 8 and top.more == 23


def test_limits_end_at_and_runs_left_are_kept():
    start = datetime(2027, 3, 1, 8, 1, tzinfo=UTC)
    capped = cron("every", "* * * * *", start)
    limited = cron("max", "* * * * *", start, runs_left=3)
    ending = cron("end", "* * * * *", start, end_at=start + timedelta(minutes=9))
    load = coming_load([capped, limited, ending], NOW, cap=100)
    assert load.capped == [capped]
    assert sum(1 for c in load.counts if c) == 100
    assert load.counts[1] == 3 and load.counts[4] == 2 and load.counts[10] == 2
    assert load.counts[11] == 1


def test_overdue_and_once_slots_count_now_and_later_ones_are_left_out():
    once = LoadSchedule("o", "u", "t", Rule("once"), NOW + timedelta(hours=2))
    overdue = cron("late", "0 * * * *", NOW - timedelta(minutes=30))
    far = cron("far", "0 9 * * *", NOW + timedelta(days=2))
    load = coming_load([once, overdue, far], NOW)
    assert load.counts[120] == 1 + 1  # the once slot and the hourly at 10:00
    assert load.counts[0] == 1  # overdue: due now
    assert load.schedules == 2


def test_jitter_spreads_a_herd_over_the_minutes_it_is_sent_in():
    nine = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    herd = [cron(f"s{i}", "0 9 * * *", nine, jitter=600) for i in range(200)]
    load = coming_load(herd, NOW)
    assert load.total == 200
    assert max(load.counts) < 60 and sum(load.counts[60:70]) == 200


def test_nothing_active_is_an_empty_day():
    load = coming_load([], NOW)
    assert load.total == 0 and load.busiest == [] and load.schedules == 0


def test_the_loads_jitter_is_the_timers_jitter():
    from kodosumi_timer.load import _jitter_seconds
    from kodosumi_timer.rules import jitter_offset

    for i in range(50):
        slot = NOW + timedelta(minutes=7 * i)
        assert _jitter_seconds(f"s{i}", slot.isoformat(), 600) == \
            jitter_offset(f"s{i}", slot, 600).total_seconds()
