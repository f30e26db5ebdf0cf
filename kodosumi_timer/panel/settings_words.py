"""A schedule's options in words for its detail page (issue 13): the interval rule, dates
left out, DST behaviour, jitter, timeout, pausing after failures, overlap (pure)."""

from dataclasses import dataclass

from kodosumi_timer import cron, cronfields
from kodosumi_timer.models import ScheduleResponse
from kodosumi_timer.rules import parse_every
from kodosumi_timer.words.rules import spoken

DATES_SHOWN = 12  # dates left out named on the page; the rest are counted

OVERLAP_WORDS = {
    "skip": "skip a run while the previous one still runs",
    "allow": "allowed: runs may overlap",
    "buffer_one": "wait: a run due while the previous one runs starts when it ends "
                  "(at most one waits)",
    "replace": "replace: the running execution is ended through kodosumi, then the new "
               "run starts",
}


@dataclass(frozen=True)
class Fact:
    """One line of the detail page's facts: its label, the id of its <dd>, the words."""

    label: str
    key: str
    text: str


def interval_words(row: ScheduleResponse) -> str:
    """"Every 90 minutes from Tue 01 Dec 2026 08:00 CET"."""
    try:
        every = spoken(parse_every(row.every or ""))
    except ValueError:
        return f"Every {row.every}"
    if row.anchor is None:
        return f"Every {every}"
    local = row.anchor.astimezone(cron.parse_zone(row.timezone))
    seconds = ":%S" if local.second else ""
    return f"Every {every} from {local.strftime(f'%a %d %b %Y %H:%M{seconds} %Z')}"


def dates_words(row: ScheduleResponse) -> str | None:
    """"Not on 2026-12-24, 2026-12-25" (and how many more)."""
    if not row.exclude_dates:
        return None
    dates = sorted(row.exclude_dates)
    named = ", ".join(d.isoformat() for d in dates[:DATES_SHOWN])
    more = f" and {len(dates) - DATES_SHOWN} more" if len(dates) > DATES_SHOWN else ""
    return f"Not on {named}{more}"


def dst_words(row: ScheduleResponse) -> str | None:
    """What a cron schedule does in the spring gap and the autumn repeat."""
    if row.schedule_type != "cron" or not row.cron_expression:
        return None
    try:
        spec = cronfields.parse(row.cron_expression)
    except ValueError:
        return None
    chosen = cron.DstPolicy(row.dst_policy.gap, row.dst_policy.repeat)
    gap = ("runs when the gap ends" if chosen.shifts_gap(spec)
           else "does not run that day")
    repeat = "runs at both" if chosen.repeats(spec) else "runs once (the first)"
    default = " (as cron does)"
    return (f"a time the clock skips in spring {gap}"
            f"{default if row.dst_policy.gap is None else ''}; "
            f"a time it shows twice in autumn {repeat}"
            f"{default if row.dst_policy.repeat is None else ''}")


def settings_in_words(row: ScheduleResponse) -> list[Fact]:
    """The options a schedule sets beyond its rule, each as a sentence."""
    facts: list[Fact] = []
    dates = dates_words(row)
    if dates:
        facts.append(Fact("Dates left out", "exclude-dates", dates))
    dst = dst_words(row)
    if dst:
        facts.append(Fact("DST", "dst", dst))
    if row.jitter:
        facts.append(Fact("Jitter", "jitter", f"Jitter up to {row.jitter} s: each run is "
                                              "sent up to that long after its time"))
    if row.timeout:
        facts.append(Fact("Timeout", "timeout",
                          f"Timeout {_short(row.timeout)}: a run still going then is ended "
                          "through kodosumi and recorded timed out"))
    if row.pause_after_failures:
        n = row.pause_after_failures
        facts.append(Fact("Failures", "pause-after",
                          f"Pauses after {n} failure{'s' if n != 1 else ''} in a row "
                          f"({row.failures_in_row} so far)"))
    return facts


def _short(seconds: int) -> str:
    """600 -> "10 min", 90 -> "90 s", 7200 -> "2 h": the largest exact unit."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
