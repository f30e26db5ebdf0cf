"""``koco-timer preview``: a cron expression as before, or a rule in words."""

import json

from click.testing import CliRunner

from kodosumi_timer.cli import cli

AFTER = ["--after", "2026-12-03T11:00:00+00:00"]


def run(*args: str):
    return CliRunner().invoke(cli, ["preview", *args])


def test_a_cron_expression_reads_as_before():
    result = run("0 9 * * MON-FRI", "--timezone", "Europe/Berlin", "--count", "2", *AFTER)
    assert result.exit_code == 0, result.output
    assert result.output == (
        "At 09:00, Monday through Friday (Europe/Berlin)\n"
        "  Fri 2026-12-04 09:00 CET     2026-12-04 08:00 UTC\n"
        "  Mon 2026-12-07 09:00 CET     2026-12-07 08:00 UTC\n")


def test_a_phrase_shows_what_it_was_read_as_and_the_same_times():
    result = run("every weekday at 9am", "--timezone", "Europe/Berlin", "--count", "2", *AFTER)
    assert result.exit_code == 0, result.output
    assert result.output == (
        "At 09:00, Monday through Friday (Europe/Berlin)\n"
        "  read as: cron '0 9 * * 1-5'\n"
        "  Fri 2026-12-04 09:00 CET     2026-12-04 08:00 UTC\n"
        "  Mon 2026-12-07 09:00 CET     2026-12-07 08:00 UTC\n")


def test_an_interval_and_a_one_off():
    result = run("every 90 minutes", "--count", "2", *AFTER)
    assert result.exit_code == 0, result.output
    assert "read as: interval every 90m" in result.output
    assert "Thu 2026-12-03 12:30 UTC" in result.output
    assert "Thu 2026-12-03 14:00 UTC" in result.output
    once = run("tomorrow at 2:30", "--timezone", "Europe/Berlin",
               "--after", "2027-03-27T12:00:00+00:00")
    assert once.exit_code == 0, once.output
    assert "read as: once at 2027-03-28 01:00 UTC" in once.output
    assert "DST gap" in once.output


def test_json_for_a_phrase_carries_the_rule():
    result = run("first Monday of the month at 08:30", "--json", "--count", "1", *AFTER)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["rule"]["schedule_type"] == "cron"
    assert body["rule"]["cron_expression"] == "30 8 * * 1#1"
    assert body["times"][0]["utc"] == "2026-12-07T08:30:00+00:00"
    plain = json.loads(run("0 9 * * *", "--json", "--count", "1", *AFTER).output)
    assert set(plain) == {"expression", "timezone", "description", "times"}


def test_errors_are_one_line_from_cron_or_from_the_grammar():
    bad_cron = run("61 * * * *", *AFTER)
    assert bad_cron.exit_code == 1
    assert bad_cron.output == "Error: minute 61 is out of range 0-59\n"
    bad_words = run("every 15 minuts", *AFTER)
    assert bad_words.exit_code == 1 and "Traceback" not in bad_words.output
    assert bad_words.output.startswith("Error: 'minuts' is not a word I know")
    assert 'the nearest form I know: "every 15 minutes"' in bad_words.output
