"""What the schedule pages say about a schedule: its status, what happened, its times
and a past run_at in the user's terms (pure functions of kodosumi_timer.panel.pages and
kodosumi_timer.schedules)."""

from datetime import UTC, datetime

import pytest

from kodosumi_timer.errors import InvalidInput
from kodosumi_timer.models import ScheduleCreate
from kodosumi_timer.panel.pages import display_state, duration, what_happened
from kodosumi_timer.schedules import _timing
from tests.unit.factories import T0, schedule


@pytest.mark.parametrize("state, last, key, label", [
    ("active", None, "active", "Active"),
    ("active", "finished", "active", "Active"),
    ("active", "error", "failing", "Failing"),
    ("active", "queued", "active", "Active"),
    ("paused", "error", "paused", "Paused"),
    ("done", "finished", "done", "Done"),
    ("done", "error", "failed", "Failed"),
    ("done", "rejected", "failed", "Failed"),
    ("done", "missed", "missed", "Missed"),
    ("done", "skipped", "missed", "Skipped"),
    ("done", "running", "running", "Running"),
    ("done", "launching", "running", "Running"),
    ("done", None, "ended", "Ended"),
])
def test_the_status_follows_the_state_and_the_last_run(state, last, key, label):
    shown = display_state(schedule(state=state, last_status=last))
    assert (shown.key, shown.label) == (key, label)
    # only a finished last run is a green check
    assert (shown.icon == "task_alt") == (key == "done")


def test_an_errored_once_schedule_says_so_and_never_ran_once():
    row = schedule(state="done", note="ran once", last_status="error", last_run=T0,
                   timezone="Europe/Berlin")
    text, problem = what_happened(row)
    assert problem and "ended in error" in text and "finished" not in text
    assert 'data-zone="Europe/Berlin"' in text and T0.isoformat() in text


def test_a_missed_once_schedule_does_not_say_it_ran():
    row = schedule(state="done", note="ran once", last_status="missed", last_run=T0, run_count=0)
    text, problem = what_happened(row)
    assert text.startswith("Did not run") and "ran once" not in text.lower() and not problem


def test_a_missed_once_schedule_names_its_slot_once():
    # the timer records a missed slot without a last_run: the slot is the run_at
    row = schedule(state="done", note="ran once", last_status="missed", last_run=None,
                   run_at=T0, run_count=0, timezone="Europe/Berlin")
    text, _ = what_happened(row)
    assert text.count("its time") == 1 and T0.isoformat() in text


def test_a_finished_once_schedule_ran_once():
    text, problem = what_happened(schedule(state="done", note="ran once",
                                           last_status="finished", last_run=T0))
    assert text.startswith("Ran once") and "finished" in text and not problem


def test_an_ended_cron_schedule_keeps_the_timers_reason_and_tells_the_last_run():
    row = schedule(schedule_type="cron", cron_expression="0 9 * * *", state="done",
                   note="reached max_runs (3)", last_status="failed", last_run=T0)
    text, problem = what_happened(row)
    assert text.startswith("Ended: reached max_runs (3).") and "could not be launched" in text
    assert problem


def test_a_pause_by_the_timer_is_a_problem_and_other_notes_are_information():
    assert what_happened(schedule(state="paused", note="paused by the timer: owner inactive")) \
        == ("Paused by the timer: owner inactive.", True)
    assert what_happened(schedule(state="paused", note="disabled in the schedules file")) \
        == ("disabled in the schedules file", False)
    assert what_happened(schedule(state="active", note=None)) is None


def test_notes_are_escaped():
    text, _ = what_happened(schedule(state="paused", note="<b>x</b>"))
    assert "<b>" not in text


@pytest.mark.parametrize("seconds, words", [
    (1, "1 second"), (60, "1 minute"), (90, "90 seconds"), (300, "5 minutes"),
    (7200, "2 hours"), (86400, "1 day"), (3 * 86400, "3 days"),
])
def test_durations_read_in_the_largest_exact_unit(seconds, words):
    assert duration(seconds) == words


def test_a_past_run_at_is_refused_as_typed_in_the_users_zone_to_the_minute():
    now = datetime(2026, 12, 2, 19, 23, 16, 690684, tzinfo=UTC)
    data = ScheduleCreate(flow_url="/-/x/-/", schedule_type="once",
                          run_at="2026-12-01T10:00:00", timezone="Europe/Berlin")
    with pytest.raises(InvalidInput) as info:
        _timing(data, now, now)
    assert info.value.field == "run_at"
    assert info.value.detail == ("run_at 2026-12-01 10:00 (Europe/Berlin) is in the past "
                                 "(it is now 2026-12-02 20:23 there)")
    typed_with_offset = data.model_copy(update={
        "run_at": datetime(2026, 12, 1, 9, 0, tzinfo=UTC)})
    with pytest.raises(InvalidInput) as info:
        _timing(typed_with_offset, now, now)
    assert info.value.detail.startswith("run_at 2026-12-01 09:00 (UTC) is in the past")
