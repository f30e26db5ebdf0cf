"""What the detail page says of issue 13's options, and the next slots it lists (pure
functions of kodosumi_timer.panel.settings_words and kodosumi_timer.panel.pages)."""

from datetime import UTC, datetime

from kodosumi_timer.panel.pages import display_state, rule_in_words, upcoming_slots
from kodosumi_timer.panel.settings_words import settings_in_words
from kodosumi_timer.schedules import to_response
from tests.unit.factories import schedule

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
BERLIN = "Europe/Berlin"


def _row(**over):
    """A stored row as the store gives it back (its column defaults filled in)."""
    values = {"catchup_window": 60, "failures_in_row": 0, "hook_inputs": False, "run_at": None,
              "timezone": BERLIN, **over}
    return schedule(**values)


def _cron(**over):
    return to_response(_row(**{"schedule_type": "cron", "cron_expression": "30 2 * * *",
                               **over}))


def _said(row) -> dict[str, str]:
    return {fact.key: fact.text for fact in settings_in_words(row)}


def test_an_interval_rule_reads_from_its_start_in_the_schedules_zone():
    row = to_response(_row(schedule_type="interval", every_seconds=5400,
                           anchor=datetime(2026, 12, 1, 7, 0, tzinfo=UTC)))
    assert rule_in_words(row) == "Every 90 minutes from Tue 01 Dec 2026 08:00 CET"
    # and from the store's row, as the list page calls it
    assert rule_in_words(_row(schedule_type="interval", every_seconds=7200,
                              anchor=datetime(2026, 12, 1, 7, 0, 30, tzinfo=UTC))) \
        == "Every 2 hours from Tue 01 Dec 2026 08:00:30 CET"


def test_every_option_set_is_said_and_none_unset():
    assert _said(_cron()) == {
        "dst": "a time the clock skips in spring runs when the gap ends (as cron does); a "
               "time it shows twice in autumn runs once (the first) (as cron does)"}
    said = _said(_cron(exclude_dates=["2026-12-25", "2026-12-24"], dst_gap="skip",
                       dst_repeat="twice", jitter=30, timeout=600, pause_after_failures=3,
                       failures_in_row=1))
    assert said["exclude-dates"] == "Not on 2026-12-24, 2026-12-25"
    assert said["dst"] == ("a time the clock skips in spring does not run that day; a time it "
                           "shows twice in autumn runs at both")
    assert said["jitter"].startswith("Jitter up to 30 s")
    assert said["timeout"].startswith("Timeout 10 min")
    assert said["pause-after"] == "Pauses after 3 failures in a row (1 so far)"


def test_a_wildcard_cron_keeps_crons_other_dst_default():
    said = _said(_cron(cron_expression="*/15 * * * *"))
    assert said["dst"].startswith("a time the clock skips in spring does not run that day")
    assert "runs at both (as cron does)" in said["dst"]


def test_many_dates_left_out_are_counted():
    dates = [f"2027-01-{d:02d}" for d in range(1, 21)]
    assert _said(_cron(exclude_dates=dates))["exclude-dates"].endswith(
        "2027-01-12 and 8 more")


def test_the_next_slots_show_skipped_dates_and_send_times():
    row = _cron(cron_expression="0 9 * * *", exclude_dates=["2026-12-05"], jitter=30)
    slots, _ = upcoming_slots(row, NOW)
    assert [s["skipped"] for s in slots[:3]] == [None, "excluded date", None]
    for slot in slots:
        assert 0 <= (slot["send_at"] - slot["utc"]).total_seconds() < 30
    # the same offsets every time for the same schedule
    assert upcoming_slots(row, NOW)[0] == slots


def test_the_next_slots_say_what_dst_choices_do_and_once_has_none():
    slots, effects = upcoming_slots(_cron(dst_gap="skip"), NOW)
    assert len([s for s in slots if not s["skipped"]]) == 5
    assert any("gap=skip" in e for e in effects)
    once = to_response(_row(schedule_type="once", run_at=datetime(2027, 1, 1, tzinfo=UTC)))
    assert upcoming_slots(once, NOW) == ([], [])


def test_a_timed_out_last_run_makes_the_schedule_failing():
    assert display_state(_cron(last_status="timed_out")).key == "failing"
    assert display_state(_cron(state="done", last_status="buffered")).key == "running"
