"""A rule's slots: cron and interval, excluded dates, the latest slot of a long outage,
jitter (pure, every instant written out)."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kodosumi_timer.cron import DstPolicy
from kodosumi_timer.rules import Rule, dst_effects, jitter_offset, preview

BERLIN = "Europe/Berlin"


def z(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_interval_slots_keep_their_spacing_across_a_dst_change():
    # Berlin goes from +01 to +02 at 2027-03-28 01:00Z: the wall clock jumps, slots do not
    rule = Rule("interval", BERLIN, every=90 * 60, anchor=z(2027, 3, 27, 22, 0))
    slots = rule.next_slots(z(2027, 3, 27, 22, 0), 3)
    assert slots == [z(2027, 3, 27, 23, 30), z(2027, 3, 28, 1, 0), z(2027, 3, 28, 2, 30)]
    local = [s.astimezone(ZoneInfo(BERLIN)).strftime("%H:%M") for s in slots]
    assert local == ["00:30", "03:00", "04:30"]  # the wall clock jumped an hour between


def test_an_anchor_in_the_future_is_the_first_slot():
    rule = Rule("interval", every=600, anchor=z(2027, 1, 1, 9))
    assert rule.next_slots(z(2026, 12, 1), 2) == [z(2027, 1, 1, 9), z(2027, 1, 1, 9, 10)]
    assert rule.next_slots(z(2027, 1, 1, 9), 1) == [z(2027, 1, 1, 9, 10)]  # strictly after


def test_excluded_dates_have_no_slots_in_the_schedules_zone():
    rule = Rule("cron", BERLIN, cron_expression="0 9 * * *",
                exclude_dates=frozenset({date(2027, 12, 24), date(2027, 12, 25)}))
    assert rule.next_slots(z(2027, 12, 23, 12), 2) == [z(2027, 12, 26, 8), z(2027, 12, 27, 8)]
    # 00:30 in Berlin on the 24th is the 23rd in UTC: excluded by the zone's date
    night = Rule("cron", BERLIN, cron_expression="30 0 * * *",
                 exclude_dates=frozenset({date(2027, 12, 24)}))
    assert night.next_slots(z(2027, 12, 23, 0), 2) == [z(2027, 12, 24, 23, 30),
                                                        z(2027, 12, 25, 23, 30)]


def test_an_excluded_day_of_a_minutely_rule_is_jumped_over_to_the_next_midnight():
    rule = Rule("cron", "UTC", cron_expression="* * * * *",
                exclude_dates=frozenset({date(2027, 5, 2)}))
    assert rule.next_slots(z(2027, 5, 1, 23, 58), 3) == [
        z(2027, 5, 1, 23, 59), z(2027, 5, 3, 0, 0), z(2027, 5, 3, 0, 1)]


def test_an_interval_skips_excluded_dates_and_keeps_its_grid():
    rule = Rule("interval", "UTC", every=7 * 3600, anchor=z(2027, 5, 1),
                exclude_dates=frozenset({date(2027, 5, 2)}))
    assert rule.next_slots(z(2027, 5, 1, 20), 3) == [z(2027, 5, 1, 21), z(2027, 5, 3, 1),
                                                     z(2027, 5, 3, 8)]


def test_until_bounds_the_slots():
    rule = Rule("cron", "UTC", cron_expression="0 * * * *")
    assert rule.next_slots(z(2027, 1, 1), 10, until=z(2027, 1, 1, 3)) == [
        z(2027, 1, 1, 1), z(2027, 1, 1, 2), z(2027, 1, 1, 3)]


def test_once_has_no_slot_after_its_own():
    assert Rule("once").next_slots(z(2027, 1, 1), 5) == []


@pytest.mark.parametrize("rule", [
    Rule("cron", BERLIN, cron_expression="*/7 * * * *"),
    Rule("cron", BERLIN, cron_expression="30 2 * * *", dst=DstPolicy(repeat="twice")),
    Rule("cron", "America/New_York", cron_expression="0 9 * * 1-5",
         exclude_dates=frozenset({date(2027, 3, 10), date(2027, 3, 11)})),
    Rule("interval", BERLIN, every=37 * 60, anchor=z(2027, 3, 1, 0, 5),
         exclude_dates=frozenset({date(2027, 3, 11)})),
])
@pytest.mark.parametrize("until", [z(2027, 3, 11, 12), z(2027, 3, 12, 0, 1), z(2027, 3, 20)])
def test_the_latest_slot_is_the_last_one_walked(rule, until):
    after = z(2027, 3, 1)
    walked = rule.next_slots(after, 100_000, until=until)
    assert rule.latest_slot(after, until) == (walked[-1] if walked else None)


def test_jitter_is_the_slots_own_offset_within_the_window():
    slot = z(2027, 1, 1, 9)
    offsets = [jitter_offset("s1", slot + timedelta(days=d), 300) for d in range(200)]
    assert all(timedelta(0) <= o < timedelta(seconds=300) for o in offsets)
    assert len(set(offsets)) > 150  # spread, not one value
    assert jitter_offset("s1", slot, 300) == offsets[0]  # the same every time
    assert jitter_offset("s2", slot, 300) != offsets[0]
    assert jitter_offset("s1", slot, None) == jitter_offset("s1", slot, 0) == timedelta(0)


def test_a_preview_shows_excluded_slots_skipped_and_when_each_is_sent():
    rule = Rule("cron", BERLIN, cron_expression="0 9 * * *",
                exclude_dates=frozenset({date(2027, 12, 25)}))
    shown = preview(rule, z(2027, 12, 24), 2, schedule_id="s1", jitter=600)
    assert [(p.local.strftime("%m-%d %H:%M"), p.skipped) for p in shown] == [
        ("12-24 09:00", None), ("12-25 09:00", "excluded date"), ("12-26 09:00", None)]
    for p in shown:
        assert p.send_at - p.slot == jitter_offset("s1", p.slot, 600)
        assert timedelta(0) <= p.send_at - p.slot < timedelta(minutes=10)


def test_dst_effects_say_what_each_choice_does_at_the_next_changes():
    notes = dst_effects(Rule("cron", BERLIN, cron_expression="30 2 * * *"), z(2027, 1, 1))
    assert notes == [
        "2027-03-28, the clock goes from 02:00 to 03:00: gap=shift runs at 03:00 CEST; "
        "gap=skip does not run then (this schedule: shift, cron's default)",
        "2027-10-31, the clock goes from 03:00 to 02:00: repeat=once runs once; "
        "repeat=twice also runs at 02:30 CET (this schedule: once, cron's default)"]
    chosen = Rule("cron", BERLIN, cron_expression="30 2 * * *", dst=DstPolicy(gap="skip"))
    assert dst_effects(chosen, z(2027, 1, 1))[0].endswith("(this schedule: skip)")
    # a rule the changes do not touch, and an interval, have nothing to say
    assert dst_effects(Rule("cron", BERLIN, cron_expression="0 9 * * *"), z(2027, 1, 1)) == []
    assert dst_effects(Rule("interval", BERLIN, every=3600, anchor=z(2027, 1, 1)),
                       z(2027, 1, 1)) == []
