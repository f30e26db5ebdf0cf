"""Issue 13 in ``koco-timer``: the richer rules on create and edit, show and ls, backfill,
the trigger URL and preview. Driven with click's CliRunner against the composed panel
served on a free port (tests/unit/test_cli_user.py): kodosumi's real login, our real API
and SQLite store; only the flow registry is a fake."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kodosumi_timer.cli_user import show_schedule
from kodosumi_timer.client import PanelClient
from tests.unit.factories import FLOW
from tests.unit.test_cli_user import _serve_panel, fails, koco, ok

BERLIN = ["--timezone", "Europe/Berlin"]


@pytest.fixture(scope="module")
def panel(tmp_path_factory) -> Iterator[str]:
    yield from _serve_panel(tmp_path_factory.mktemp("panel"))


@pytest.fixture(scope="module")
def as_admin(panel, tmp_path_factory) -> Iterator[str]:
    """Logged in once for the module (a login takes seconds)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KODO_TIMER_AUTH_FILE", str(tmp_path_factory.mktemp("cfg") / "auth.json"))
        env.delenv("KODO_TIMER_PANEL_URL", raising=False)
        ok("login", "--url", panel, "--name", "admin", "--password", "admin")
        yield panel


def made(*args: str) -> dict[str, Any]:
    """A schedule created with these options, as the API answered."""
    return json.loads(ok("create", "--flow", FLOW, *args, "--json"))  # type: ignore[no-any-return]


def shown(schedule_id: str) -> dict[str, str]:
    """`koco-timer show` as label -> value."""
    lines = ok("show", schedule_id).splitlines()
    return {line[:9].strip(): line[10:] for line in lines}


def test_an_interval_with_every_setting_of_issue_13(as_admin):
    out = ok("create", "--flow", FLOW, "--every", "90m", "--start", "2030-01-07 09:00",
             *BERLIN, "--title", "every 90", "--skip-date", "2030-01-07",
             "--skip-date", "2030-01-08", "--jitter", "5m", "--timeout", "30m",
             "--pause-after", "3", "--overlap", "buffer_one", "--hook-inputs")
    short = out.splitlines()[0].removeprefix("created ")
    item = json.loads(ok("show", short, "--json"))
    assert (item["schedule_type"], item["every"]) == ("interval", "90m")
    assert item["anchor"] == "2030-01-07T08:00:00Z"  # 09:00 in Berlin
    assert item["exclude_dates"] == ["2030-01-07", "2030-01-08"]
    assert (item["jitter"], item["timeout"], item["pause_after_failures"]) == (300, 1800, 3)
    assert item["overlap"] == "buffer_one" and item["hook_inputs"] is True
    said = shown(short)
    assert said["rule"] == ("every 90m from Mon 2030-01-07 09:00 CET, counted in elapsed "
                            "time (Europe/Berlin)")
    assert said["skips"] == "2030-01-07, 2030-01-08"
    assert said["dst"] == "- (an interval counts elapsed time: DST changes do not move it)"
    assert said["overlap"] == ("buffer_one: a slot that comes while the last run still runs "
                               "starts when it ends (at most one waits)")
    assert said["jitter"] == "each run sent up to 5m after its slot"
    assert said["timeout"] == ("an execution still running 30m after its launch is ended "
                               "(timed_out)")
    assert said["failures"] == "paused after 3 failed runs in a row"
    assert said["hook"] == (f"none (`koco-timer hook {short}` makes one; its POST may send "
                            "inputs)")
    # the first slots fall on the excluded dates: the next run is the first after them
    assert said["next run"] == "Wed 2030-01-09 00:00 CET"

    listed = ok("ls", "--type", "interval")
    row = next(r for r in listed.splitlines() if r.startswith(short))
    assert "every 90m" in row
    assert short not in ok("ls", "--type", "cron")


def test_all_four_overlaps_and_seconds_or_durations(as_admin):
    for choice in ("skip", "allow", "buffer_one", "replace"):
        assert made("--cron", "@daily", "--overlap", choice)["overlap"] == choice
    item = made("--every", "7200", "--jitter", "90", "--timeout", "1h30m")
    assert (item["every"], item["jitter"], item["timeout"]) == ("2h", 90, 5400)
    assert "Invalid value for '--overlap'" in koco("create", "--flow", FLOW, "--cron",
                                                   "@daily", "--overlap", "cancel").output


def test_a_rule_in_words_is_shown_as_the_panel_reads_it_before_it_is_saved(as_admin):
    out = ok("create", "--flow", FLOW, "--when", "every weekday at 9am", *BERLIN)
    first, second = out.splitlines()[:2]
    assert first == ("'every weekday at 9am' reads as: At 09:00, Monday through Friday "
                     "(cron '0 9 * * 1-5')")
    assert second.startswith("created ")
    short = second.removeprefix("created ")
    assert shown(short)["rule"] == ("0 9 * * 1-5: At 09:00, Monday through Friday "
                                    "(Europe/Berlin)")
    interval = made("--when", "every 90 minutes")
    assert (interval["schedule_type"], interval["every"]) == ("interval", "90m")
    assert fails("create", "--flow", FLOW, "--when", "every 15 minuts").startswith(
        "Error: --when: 'minuts' is not a word I know")
    assert fails("create", "--flow", FLOW, "--when", "every day", "--cron", "@daily") == \
        ("Error: give one rule: --cron, --every, --when or a time (--at/--in); the rule "
         "in words (--when) is all of it")


def test_dst_policy_in_words_with_debians_choice_where_unset(as_admin):
    item = made("--cron", "30 2 * * *", *BERLIN, "--dst-gap", "skip")
    assert item["dst_policy"] == {"gap": "skip", "repeat": None}
    assert shown(item["id"])["dst"] == (
        "gap skip: a skipped wall time does not run that day; repeat once (default): a "
        "repeated wall time runs once")
    wildcard = made("--cron", "*/15 2 * * *", *BERLIN)  # Debian cron's choices differ
    assert shown(wildcard["id"])["dst"] == (
        "gap skip (default): a skipped wall time does not run that day; repeat twice "
        "(default): a repeated wall time runs at both")


def test_edit_changes_only_what_is_given_and_clears_what_is_named(as_admin):
    item = made("--cron", "30 2 * * *", *BERLIN, "--skip-date", "2030-12-24",
                "--dst-gap", "skip", "--jitter", "60", "--title", "nightly")
    short = item["id"][:8]
    out = ok("edit", short, "--skip-date", "2030-12-31", "--dst-repeat", "twice",
             "--timeout", "10m")
    assert out.splitlines()[0] == f"edited {short} (nightly):"
    assert '  exclude_dates        ["2030-12-24"] → ["2030-12-24", "2030-12-31"]' in out
    assert "  timeout              - → 600" in out
    after = json.loads(ok("show", short, "--json"))
    assert after["exclude_dates"] == ["2030-12-24", "2030-12-31"]  # added to
    assert after["dst_policy"] == {"gap": "skip", "repeat": "twice"}  # gap kept
    assert (after["jitter"], after["timeout"], after["title"]) == (60, 600, "nightly")

    ok("edit", short, "--clear", "jitter", "--clear", "skip-date", "--clear", "dst-gap",
       "--skip-date", "2031-01-01")
    after = json.loads(ok("show", short, "--json"))
    assert after["jitter"] is None and after["exclude_dates"] == ["2031-01-01"]
    assert after["dst_policy"] == {"gap": None, "repeat": "twice"}
    ok("edit", short, "--clear", "skip-date", "--clear", "timeout", "--clear", "title")
    after = json.loads(ok("show", short, "--json"))
    assert (after["exclude_dates"], after["timeout"], after["title"]) == ([], None, None)

    # another kind of rule: the other kind's fields go
    switched = json.loads(ok("edit", short, "--every", "2h", "--start", "2030-06-01 08:00",
                             "--json"))
    assert (switched["schedule_type"], switched["every"], switched["cron_expression"]) == \
        ("interval", "2h", None)
    out = ok("edit", short, "--when", "first Monday of the month at 08:30")
    assert out.splitlines()[0] == ("'first Monday of the month at 08:30' reads as: At 08:30 "
                                   "on the first Monday of the month (cron '30 8 * * 1#1')")
    assert json.loads(ok("show", short, "--json"))["cron_expression"] == "30 8 * * 1#1"
    assert ok("edit", short, "--overlap", "replace", "--pause-after", "2",
              "--no-hook-inputs").count("→") == 2  # hook_inputs was false already
    assert ok("edit", short, "--overlap", "replace").splitlines()[0] == \
        f"edited {short} (Quick demo): nothing changed"

    assert fails("edit", short) == \
        "Error: nothing to change: give the options to change (--help lists them)"
    assert fails("edit", short, "--jitter", "5", "--clear", "jitter") == \
        "Error: --jitter and --clear jitter: give one of them"
    assert fails("edit", short, "--cron", "@daily", "--every", "1h") == \
        "Error: give one rule: --cron, --every, --when or a time (--at/--in)"


def test_errors_name_the_option_the_user_typed(as_admin, tmp_path):
    assert fails("create", "--flow", FLOW, "--every", "5s") == \
        "Error: --every: at least every 10 seconds"
    assert fails("create", "--flow", FLOW, "--every", "soon").startswith(
        "Error: --every: 'soon' is not a duration")
    assert fails("create", "--flow", FLOW, "--cron", "@daily", "--skip-date",
                 "2030-13-01").startswith("Error: --skip-date: ")
    assert fails("create", "--flow", FLOW, "--cron", "@daily", "--timeout", "0").startswith(
        "Error: --timeout: ")
    assert fails("create", "--flow", FLOW, "--cron", "@daily", "--jitter", "2d").startswith(
        "Error: --jitter: ")
    assert fails("create", "--flow", FLOW, "--cron", "@daily", "--pause-after", "0") \
        .startswith("Error: --pause-after: ")
    assert fails("create", "--flow", FLOW, "--cron", "@daily", "--timeout", "half an hour") \
        == ("Error: --timeout 'half an hour': give seconds or a duration, e.g. 90s, 15m, "
            "2h, 1d")
    assert fails("create", "--flow", FLOW, "--cron", "@daily", "--start",
                 "2030-01-01 09:00").startswith("Error: --start: ")
    item = made("--cron", "@daily")
    assert fails("edit", item["id"], "--every", "5s") == \
        "Error: --every: at least every 10 seconds"
    # from a file, the field keeps the API's name: there is no option to name
    path = tmp_path / "s.yaml"
    path.write_text(f"flow: {FLOW}\nschedule_type: interval\nevery: 5\n")
    line = fails("create", "-f", str(path))
    assert "every" in line and "--every" not in line


def _hour(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:00:00Z")


def test_backfill_queues_the_slots_of_a_past_period(as_admin):
    item = made("--cron", "0 * * * *", "--title", "hourly")
    short, now = item["id"][:8], datetime.now(UTC)
    start, end = _hour(now - timedelta(hours=5)), _hour(now - timedelta(hours=2))
    out = ok("backfill", short, "--from", start, "--to", end)
    assert out.startswith(f"queued 3 runs of {short} (hourly) for its slots from ")
    assert out.rstrip().endswith(f"`koco-timer runs {short}` shows how they go")
    runs = json.loads(ok("runs", short, "--json"))["items"]
    assert sorted(r["slot"] for r in runs if r["trigger"] == "backfill") == [
        _hour(now - timedelta(hours=h)) for h in (5, 4, 3)]

    future = _hour(now + timedelta(hours=2))
    assert fails("backfill", short, "--from", start, "--to", future).startswith(
        "Error: --to: end ")
    assert fails("backfill", short, "--from", end, "--to", start) == \
        "Error: --to: end must be after start"
    assert fails("backfill", short, "--from", "last week", "--to", end).startswith(
        "Error: --from: ")
    once = made("--in", "1h")
    assert fails("backfill", once["id"], "--from", start, "--to", end) == \
        "Error: --from: a once schedule has no period to run; use trigger"


def test_hook_makes_and_revokes_a_trigger_url(as_admin, monkeypatch):
    """POST and DELETE /schedule/{id}/hook are another part's (issue 13, point 9): their
    answers here are the contract's, given by a patched client."""
    sent: list[tuple[str, str]] = []
    real = PanelClient.json

    def answer(self: PanelClient, method: str, path: str, **kwargs: Any) -> Any:
        if path.endswith("/hook"):
            sent.append((method, path))
            return {"url": "/schedule/hook/h-123", "token": "tok-456"} \
                if method == "POST" else None
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(PanelClient, "json", answer)
    item = made("--cron", "@daily", "--title", "hooked", "--hook-inputs")
    short = item["id"][:8]
    out = ok("hook", short)
    assert out == (f"trigger URL of {short} (hooked), shown only now:\n"
                   f"  url    {as_admin}/schedule/hook/h-123\n"
                   f"  token  tok-456\n"
                   f"a POST to it runs the schedule now as you (with a JSON body "
                   f"{{\"inputs\": {{...}}}} merged over the stored inputs); making one "
                   f"again replaces it; `koco-timer hook {short} --revoke` ends it\n")
    assert json.loads(ok("hook", short, "--json")) == {"url": "/schedule/hook/h-123",
                                                       "token": "tok-456"}
    assert ok("hook", short, "--revoke") == \
        f"revoked the trigger URL of {short} (hooked): it answers 404 now\n"
    assert sent == [("POST", f"/schedule/{item['id']}/hook")] * 2 + \
        [("DELETE", f"/schedule/{item['id']}/hook")]


def test_show_says_a_set_hook_and_failures_so_far():
    item = {"id": "f" * 32, "title": "t", "expose_name": "Quick", "flow_url": FLOW,
            "owner": "o", "system": False, "schedule_type": "cron",
            "cron_expression": "0 9 * * *", "timezone": "UTC", "state": "active",
            "note": None, "next_run": None, "last_run": None, "last_status": None,
            "last_fid": None, "run_count": 4, "max_runs": None, "end_at": None,
            "catchup": "skip", "catchup_window": 60, "overlap": "replace", "inputs": {},
            "version": 1, "updated": "2026-12-03T11:38:00Z", "notes": [], "hook": True,
            "hook_inputs": False, "failures_in_row": 2, "pause_after_failures": None}
    said = {line[:9].strip(): line[10:] for line in show_schedule(item).splitlines()}
    assert said["hook"] == "a trigger URL is set; it runs with the stored inputs"
    assert said["failures"] == "- (2 in a row now)"
    assert said["catchup"] == "a slot sent over 60 s late is missed (skip)"
    assert said["overlap"] == ("replace: a slot that comes while the last run still runs "
                               "ends it through kodosumi, then starts")
    assert said["skips"] == "-" and said["jitter"] == "-" and said["timeout"] == "-"


def preview(*args: str) -> str:
    return ok("preview", *args, "--after", "2027-03-20T12:00:00+00:00")


def test_preview_shows_skipped_dates_send_times_and_what_dst_does():
    out = preview("30 2 * * *", *BERLIN, "--count", "3", "--skip-date", "2027-03-22",
                  "--jitter", "10m")
    assert out == (
        "At 02:30 every day; not on 2027-03-22; each sent up to 600 s after its slot "
        "(jitter) (Europe/Berlin)\n"
        "  Sun 2027-03-21 02:30 CET     2027-03-21 01:30 UTC  sent 02:39:05 (jitter)\n"
        "  Mon 2027-03-22 02:30 CET     2027-03-22 01:30 UTC  skipped: excluded date\n"
        "  Tue 2027-03-23 02:30 CET     2027-03-23 01:30 UTC  sent 02:31:45 (jitter)\n"
        "  Wed 2027-03-24 02:30 CET     2027-03-24 01:30 UTC  sent 02:30:41 (jitter)\n"
        "  DST 2027-03-28, the clock goes from 02:00 to 03:00: gap=shift runs at 03:00 CEST; "
        "gap=skip does not run then (this schedule: shift, cron's default)\n"
        "  DST 2027-10-31, the clock goes from 03:00 to 02:00: repeat=once runs once; "
        "repeat=twice also runs at 02:30 CET (this schedule: once, cron's default)\n")
    chosen = preview("30 2 * * *", *BERLIN, "--count", "1", "--dst-gap", "skip",
                     "--dst-repeat", "twice")
    assert "(this schedule: skip)" in chosen and "(this schedule: twice)" in chosen
    body = json.loads(preview("30 2 * * *", *BERLIN, "--count", "2", "--skip-date",
                              "2027-03-21", "--json"))
    assert body["times"][0]["skipped"] == "excluded date"
    assert len(body["dst_effects"]) == 2


def test_preview_an_interval_in_elapsed_time_across_a_dst_change():
    out = preview("--every", "90m", "--start", "2027-03-28 00:30", *BERLIN, "--count", "3")
    assert out == (
        "Every 90 minutes from Sun 2027-03-28 00:30:00 CET (elapsed time, unaffected by "
        "DST) (Europe/Berlin)\n"
        "  Sun 2027-03-28 00:30 CET     2027-03-27 23:30 UTC\n"
        "  Sun 2027-03-28 03:00 CEST    2027-03-28 01:00 UTC\n"
        "  Sun 2027-03-28 04:30 CEST    2027-03-28 02:30 UTC\n")
    body = json.loads(preview("--every", "2h", "--count", "1", "--json"))
    assert body["every"] == "2h" and body["times"][0]["utc"] == "2027-03-20T14:00:00+00:00"


def test_preview_errors_name_the_option():
    def error(*args: str) -> str:
        result = koco("preview", *args)
        assert result.exit_code == 1 and "Traceback" not in result.output
        return result.output.strip()

    assert error("--every", "5s") == "Error: --every: at least every 10 seconds"
    assert error("--every", "1h", "--skip-date", "2027-13-01").startswith(
        "Error: --skip-date 2027-13-01: ")
    assert error("--every", "1h", "--jitter", "soon") == \
        "Error: --jitter 'soon': give seconds or a duration, e.g. 90s, 15m, 2h, 1d"
    assert error("--every", "1h", "--jitter", "2d") == \
        "Error: --jitter: Input should be less than or equal to 86400"
    assert error("0 9 * * *", "--every", "1h") == "Error: give a RULE or --every, not both"
    assert error("0 9 * * *", "--start", "2027-01-01 09:00") == \
        "Error: --start: anchor belongs to an interval rule (every)"
    assert error().startswith("Error: give a RULE (")
