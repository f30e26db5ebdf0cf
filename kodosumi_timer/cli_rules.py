"""The richer rules in ``koco-timer`` (issue 13): the options that set them, shared by
``create``, ``edit`` and ``preview``; the option a field of the API's answer was given
as, so that an error names what the user typed; and the settings said in words for
``show``."""

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import click
from pydantic import ValidationError

from kodosumi_timer.client import ClientError
from kodosumi_timer.rules import every_text

# the API's field -> the option that sets it (the inputs are `-i NAME=VALUE`)
OPTIONS = {
    "flow_url": "--flow", "cron_expression": "--cron", "run_at": "--at", "every": "--every",
    "anchor": "--start", "text": "--when", "timezone": "--timezone", "title": "--title",
    "inputs": "--input", "catchup": "--catchup", "catchup_window": "--catchup-window",
    "overlap": "--overlap", "end_at": "--end-at", "max_runs": "--max-runs",
    "exclude_dates": "--skip-date", "dst_policy.gap": "--dst-gap",
    "dst_policy.repeat": "--dst-repeat", "dst_policy": "--dst-gap/--dst-repeat",
    "jitter": "--jitter", "timeout": "--timeout",
    "pause_after_failures": "--pause-after", "hook_inputs": "--hook-inputs",
    "start": "--from", "end": "--to",
}
# what `edit --clear NAME` clears: the option's name -> the API's field
CLEARABLE = {
    "title": "title", "end-at": "end_at", "max-runs": "max_runs", "start": "anchor",
    "skip-date": "exclude_dates", "dst-gap": "dst_policy.gap",
    "dst-repeat": "dst_policy.repeat", "jitter": "jitter", "timeout": "timeout",
    "pause-after": "pause_after_failures", "overlap": "overlap", "catchup": "catchup",
    "catchup-window": "catchup_window",
}
OVERLAPS = ("skip", "allow", "buffer_one", "replace")
OVERLAP_WORDS = {
    "skip": "a slot that comes while the last run still runs is skipped",
    "allow": "a slot runs even while the last run still runs",
    "buffer_one": "a slot that comes while the last run still runs starts when it ends "
                  "(at most one waits)",
    "replace": "a slot that comes while the last run still runs ends it through kodosumi, "
               "then starts",
}

_SECONDS = re.compile(r"^(?:\d+\s*[dhms]\s*)+$")
_UNIT = re.compile(r"(\d+)\s*([dhms])")
_UNIT_SECONDS = {"d": 86_400, "h": 3600, "m": 60, "s": 1}


def seconds(option: str, text: str | None) -> int | None:
    """Seconds from "300" or a duration ("90s", "15m", "2h", "1d", "1h30m"); the range
    is the API's to check (its 422 names the field, said as the option)."""
    if text is None:
        return None
    given = text.strip().lower()
    if given.isdigit():
        return int(given)
    if _SECONDS.match(given):
        return sum(int(n) * _UNIT_SECONDS[u] for n, u in _UNIT.findall(given))
    raise ClientError(f"{option} {text!r}: give seconds or a duration, e.g. 90s, 15m, 2h, 1d")


def duration(value: int) -> str:
    """300 -> "5m", 90 -> "90s": as the API writes ``every``."""
    return every_text(value) if value > 0 else f"{value}s"


def rule_options[F: Callable[..., Any]](command: F) -> F:
    """The options of issue 13's settings, on ``create`` and ``edit``."""
    options = [
        click.option("--every", default=None, metavar="DURATION",
                     help="An interval in elapsed time: 90s, 15m, 2h, 1d, 1h30m or "
                          "seconds (at least 10 s); unaffected by DST."),
        click.option("--start", "anchor", default=None, metavar="TIME",
                     help="--every: the first slot, e.g. \"2027-01-04 09:00\" in "
                          "--timezone (default: when it is saved; the first run is one "
                          "interval later)."),
        click.option("--when", "text", default=None, metavar="WORDS",
                     help='The rule in words: "every weekday at 9am", "every 90 minutes", '
                          '"first Monday of the month at 08:30", "tomorrow at 9".'),
        click.option("--skip-date", "skip_dates", multiple=True, metavar="DATE",
                     help="A date (YYYY-MM-DD, in the schedule's zone) with no runs, e.g. "
                          "a holiday (repeat for more)."),
        click.option("--dst-gap", type=click.Choice(["shift", "skip"]), default=None,
                     help="cron: a wall time the clock skips in spring runs when the gap "
                          "ends (shift) or not that day (skip); default: Debian cron's."),
        click.option("--dst-repeat", type=click.Choice(["once", "twice"]), default=None,
                     help="cron: a wall time the clock shows twice in autumn runs at the "
                          "first (once) or at both (twice); default: Debian cron's."),
        click.option("--jitter", default=None, metavar="DURATION",
                     help="Send each run up to this long after its slot (the same offset "
                          "for the same slot every time): seconds or 90s, 5m."),
        click.option("--timeout", default=None, metavar="DURATION",
                     help="End an execution still running this long after its launch, "
                          "recorded timed_out: seconds or 30m, 2h."),
        click.option("--pause-after", type=int, default=None, metavar="N",
                     help="Pause after N runs in a row ended error, failed, rejected or "
                          "timed_out."),
        click.option("--hook-inputs/--no-hook-inputs", default=None,
                     help="Whether a POST to the trigger URL may send inputs "
                          "(`koco-timer hook` makes the URL)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def rule_fields(every: str | None, anchor: str | None, text: str | None,
                skip_dates: Iterable[str], jitter: str | None, timeout: str | None,
                pause_after: int | None, hook_inputs: bool | None) -> dict[str, Any]:
    """The API's fields of the options given (dst_policy is merged by the caller)."""
    given = {"every": every, "anchor": anchor, "text": text,
             "exclude_dates": list(skip_dates) or None,
             "jitter": seconds("--jitter", jitter), "timeout": seconds("--timeout", timeout),
             "pause_after_failures": pause_after, "hook_inputs": hook_inputs}
    return {k: v for k, v in given.items() if v is not None}


def read_as(rule: Mapping[str, Any]) -> str:
    """A preview's ``rule`` (what a rule in words was read as) in a few words, its
    instants in UTC."""
    def utc(value: Any) -> str:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

    if rule.get("cron_expression"):
        return f"cron {rule['cron_expression']!r}"
    if rule.get("every"):
        return f"interval every {rule['every']}" + (
            f" from {utc(rule['anchor'])}" if rule.get("anchor") else "")
    return f"once at {utc(rule['run_at'])}"


def said_as_option(exc: ClientError, given: Iterable[str]) -> ClientError:
    """The API's error about a field the user gave as an option, said with the option's
    name ("--every: at least every 10 seconds"); other errors as they are."""
    field = exc.field
    if not field:
        return exc
    key = field if field in OPTIONS else re.split(r"[.\[]", field)[0]
    option = OPTIONS.get(key)
    if option is None or key not in set(given):
        return exc
    message = str(exc)
    for prefix in (f"{field}: ", f"{key}: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
            break
    message = message.removeprefix("Value error, ")
    if key == "inputs" and field.startswith("inputs."):
        option = f"--input {field.removeprefix('inputs.')}"
    return ClientError(f"{option}: {message}", field=field)


def validation_line(exc: ValidationError, options: Mapping[str, str]) -> str:
    """A pydantic error of a locally built request, naming the option at fault."""
    problem = exc.errors()[0]
    loc = [str(part) for part in problem["loc"]]
    field = loc[0] if loc else ""
    option = options.get(field, field)
    message = str(problem["msg"]).removeprefix("Value error, ")
    if field == "exclude_dates" and problem.get("input") is not None:
        option = f"{option} {problem['input']}"
    return f"{option}: {message}" if option else message


# -- show: the settings in words ------------------------------------------------------


def dst_words(item: Mapping[str, Any]) -> str:
    """What a cron schedule does at DST changes; Debian cron's choice where unset."""
    if item["schedule_type"] == "interval":
        return "- (an interval counts elapsed time: DST changes do not move it)"
    if item["schedule_type"] != "cron":
        return "-"
    from kodosumi_timer.cron import DstPolicy
    from kodosumi_timer.cronfields import CronError, parse

    policy = item.get("dst_policy") or {}
    gap, repeat = policy.get("gap"), policy.get("repeat")
    try:
        spec = parse(item["cron_expression"])
        shifts = DstPolicy(gap, repeat).shifts_gap(spec)
        twice = DstPolicy(gap, repeat).repeats(spec)
    except (CronError, ValueError):
        return "?"
    said_gap = ("a skipped wall time runs when the gap ends" if shifts
                else "a skipped wall time does not run that day")
    said_repeat = "a repeated wall time runs at both" if twice else \
        "a repeated wall time runs once"
    # unset: Debian cron's choice for this expression
    return (f"gap {'shift' if shifts else 'skip'}{'' if gap else ' (default)'}: {said_gap}; "
            f"repeat {'twice' if twice else 'once'}{'' if repeat else ' (default)'}: "
            f"{said_repeat}")


def settings_lines(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The settings of issue 13 as ``show`` prints them, "-" where unset."""
    dates = item.get("exclude_dates") or []
    jitter, timeout = item.get("jitter"), item.get("timeout")
    pause, row = item.get("pause_after_failures"), item.get("failures_in_row") or 0
    so_far = f" ({row} in a row now)" if row else ""
    if item.get("hook"):
        hook = ("a trigger URL is set; its POST may send inputs" if item.get("hook_inputs")
                else "a trigger URL is set; it runs with the stored inputs")
    else:
        hook = (f"none (`koco-timer hook {item['id'][:8]}` makes one"
                + ("; its POST may send inputs)" if item.get("hook_inputs") else ")"))
    overlap = item.get("overlap") or "skip"
    return [
        ("skips", ", ".join(dates) if dates else "-"),
        ("dst", dst_words(item)),
        ("overlap", f"{overlap}: {OVERLAP_WORDS.get(overlap, '?')}"),
        ("jitter", f"each run sent up to {duration(jitter)} after its slot" if jitter
         else "-"),
        ("timeout", f"an execution still running {duration(timeout)} after its launch is "
                    "ended (timed_out)" if timeout else "-"),
        ("failures", f"paused after {pause} failed runs in a row{so_far}" if pause
         else f"-{so_far}"),
        ("hook", hook),
    ]
