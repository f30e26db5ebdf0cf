"""Pure firing decisions with injected instants."""

from datetime import UTC, datetime, timedelta

import pytest

from kodosumi_timer.policy import MAX_MISSED_RECORDED, Due, plan, retry_delay

T = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)  # a Monday


def test_once_fires_and_ends():
    p = plan(Due("once", next_run=T), T + timedelta(milliseconds=3))
    assert p.fire == T and p.missed == [] and p.next_run is None and p.end_note == "ran once"


def test_not_due_is_an_error():
    with pytest.raises(ValueError):
        plan(Due("once", next_run=T), T - timedelta(seconds=1))


def test_cron_on_time_moves_to_next_slot():
    p = plan(Due("cron", next_run=T, cron_expression="*/5 * * * *"), T)
    assert p.fire == T and p.next_run == T + timedelta(minutes=5) and not p.missed


def test_catchup_once_fires_latest_and_records_missed():
    due = Due("cron", next_run=T, cron_expression="*/10 * * * *")
    now = T + timedelta(minutes=35)
    p = plan(due, now)
    assert p.fire == T + timedelta(minutes=30)
    assert p.missed == [T, T + timedelta(minutes=10), T + timedelta(minutes=20)]
    assert p.next_run == T + timedelta(minutes=40)


def test_catchup_skip_fires_nothing_when_late():
    due = Due("cron", next_run=T, cron_expression="*/10 * * * *", catchup="skip")
    p = plan(due, T + timedelta(minutes=35))
    assert p.fire is None and len(p.missed) == 4 and p.next_run == T + timedelta(minutes=40)


def test_catchup_skip_still_fires_when_on_time():
    due = Due("cron", next_run=T, cron_expression="*/10 * * * *", catchup="skip")
    assert plan(due, T + timedelta(seconds=2)).fire == T


def test_max_runs_ends():
    due = Due("cron", next_run=T, cron_expression="* * * * *", max_runs=3, run_count=2)
    p = plan(due, T)
    assert p.fire == T and p.next_run is None and "max_runs" in (p.end_note or "")


def test_end_at_ends():
    due = Due("cron", next_run=T, cron_expression="0 * * * *", end_at=T + timedelta(minutes=30))
    p = plan(due, T)
    assert p.fire == T and p.next_run is None and "end_at" in (p.end_note or "")


START = datetime(2026, 1, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize("expression, latest, now", [
    ("* * * * *", START + timedelta(days=30), START + timedelta(days=30, seconds=30)),
    ("0 9 * * *", START + timedelta(days=1000), START + timedelta(days=1000, hours=1)),
    ("0 9 1 1 *", datetime(2626, 1, 1, 9, tzinfo=UTC), datetime(2626, 1, 1, 10, tzinfo=UTC)),
])
def test_a_long_outage_fires_the_latest_slot_and_records_the_first_missed(
        expression, latest, now):
    p = plan(Due("cron", next_run=START, cron_expression=expression), now)
    assert p.fire == latest
    assert len(p.missed) == MAX_MISSED_RECORDED and p.missed_more
    assert p.missed[0] == START and p.missed == sorted(set(p.missed))
    assert p.missed[-1] < latest


def test_a_long_outage_under_skip_records_the_latest_as_missed():
    due = Due("cron", next_run=T, cron_expression="*/5 * * * *", catchup="skip")
    now = T + timedelta(days=10, minutes=2)
    p = plan(due, now)
    assert p.fire is None and p.missed_more
    assert p.missed[-1] == T + timedelta(days=10) and len(p.missed) == MAX_MISSED_RECORDED + 1


def test_retry_delay_grows_and_is_capped():
    import random

    rng = random.Random(1)
    delays = [retry_delay(a, rng=rng) for a in range(1, 8)]
    assert delays[0] <= 0.5 and delays[2] > delays[0] / 2
    assert max(delays) <= 8.0
