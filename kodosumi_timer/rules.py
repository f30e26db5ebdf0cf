"""A schedule's rule as one value: its slots after an instant, whatever its kind (pure).

``cron`` slots are wall-clock times in the schedule's zone (:mod:`.cron`, with the
schedule's DST policy); ``interval`` slots are ``anchor + k * every`` (k >= 0) in
absolute time, so DST changes do not move them; ``once`` has no slot after its own.
Dates in ``exclude_dates`` (in the schedule's zone) have no slots. ``jitter`` spreads a
herd: each slot is sent at slot + an offset in [0, jitter) that depends only on the
schedule and the slot.
"""

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from kodosumi_timer.cron import DEBIAN, DstPolicy, next_fire_times, parse_zone, transitions
from kodosumi_timer.cronfields import parse

MIN_EVERY = 10  # seconds: the shortest interval
MAX_EVERY = 366 * 86_400  # seconds: the longest interval
MAX_JITTER = 86_400  # seconds: a slot is sent at most a day after it
_CHUNK = 64  # cron slots computed at a time
EVERY_UNITS = (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1))
_EVERY = re.compile(r"(\d+)\s*([dhms])")


def parse_every(value: int | str) -> int:
    """An interval in seconds from seconds or a duration ("90s", "15m", "2h", "1d",
    "1h30m"); ValueError saying what is accepted, or that it is out of bounds."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be seconds or a duration like 90s, 15m, 2h or 1d")
    if isinstance(value, int):
        seconds = value
    else:
        text = value.strip().lower().replace(" ", "")
        if text.isdigit():
            seconds = int(text)
        elif text and _EVERY.sub("", text) == "":
            seconds = sum(int(n) * dict(EVERY_UNITS)[unit] for n, unit in _EVERY.findall(text))
        else:
            raise ValueError(f"{value!r} is not a duration: give seconds or e.g. 90s, 15m, "
                             "2h, 1d, 1h30m")
    if seconds < MIN_EVERY:
        raise ValueError(f"at least every {MIN_EVERY} seconds")
    if seconds > MAX_EVERY:
        raise ValueError(f"at most every {MAX_EVERY // 86_400} days")
    return seconds


def every_text(seconds: int) -> str:
    """3600 -> "1h", 5400 -> "90m", 90 -> "90s": the largest unit that divides."""
    for suffix, size in EVERY_UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    raise AssertionError("1 divides every number")


@dataclass(frozen=True)
class Rule:
    schedule_type: str  # once | cron | interval
    timezone: str = "UTC"
    cron_expression: str | None = None
    every: int | None = None  # seconds (interval)
    anchor: datetime | None = None  # the interval's first slot (interval)
    exclude_dates: frozenset[date] = frozenset()
    dst: DstPolicy = DEBIAN

    def next_slots(self, after: datetime, count: int = 1,
                   until: datetime | None = None) -> list[datetime]:
        """The next ``count`` slots strictly after ``after`` (and at or before
        ``until``), excluded dates left out (jumped over a day at a time)."""
        found: list[datetime] = []
        while len(found) < count:
            for slot in self._slots(after, min(count - len(found), _CHUNK)):
                if until is not None and slot > until:
                    return found
                if self.excluded(slot):
                    after = self._end_of_day(slot)
                    break
                found.append(slot)
                if len(found) >= count:
                    return found
            else:
                return found  # no further slots
        return found

    def _end_of_day(self, slot: datetime) -> datetime:
        """Just before the next local midnight after ``slot``."""
        zone = parse_zone(self.timezone)
        day = slot.astimezone(zone).date() + timedelta(days=1)
        midnight = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
        return max(midnight - timedelta(microseconds=1), slot)

    def excluded(self, slot: datetime) -> bool:
        """Whether the slot falls on one of ``exclude_dates`` in the schedule's zone."""
        if not self.exclude_dates:
            return False
        return slot.astimezone(parse_zone(self.timezone)).date() in self.exclude_dates

    def latest_slot(self, after: datetime, until: datetime) -> datetime | None:
        """The last slot in (``after``, ``until``], found without walking every slot
        between: an interval's by arithmetic, a cron rule's in widening windows before
        ``until`` (a minutely rule in the last hour, a yearly one within a few years)."""
        if self.schedule_type == "interval":
            assert self.every is not None and self.anchor is not None
            if until < self.anchor:
                return None
            every = timedelta(seconds=self.every)
            slot = self.anchor + (until - self.anchor) // every * every
            while slot > after:
                if not self.excluded(slot):
                    return slot
                slot -= every
            return None
        for back in (timedelta(hours=1), timedelta(days=2), timedelta(days=32),
                     timedelta(days=367), timedelta(days=366 * 30)):
            start = max(after, until - back)
            latest = None
            while window := self.next_slots(start, _CHUNK, until=until):
                latest, start = window[-1], window[-1]
                if len(window) < _CHUNK:
                    break
            if latest is not None or start == after:
                return latest
        return None

    def _slots(self, after: datetime, first: int = _CHUNK) -> Iterator[datetime]:
        """Every slot strictly after ``after``, excluded dates included, in order (cron
        slots computed ``first`` at first, then a chunk at a time)."""
        if self.schedule_type == "interval":
            assert self.every is not None and self.anchor is not None
            every = timedelta(seconds=self.every)
            k = 0 if after < self.anchor else (after - self.anchor) // every + 1
            while True:
                yield self.anchor + k * every
                k += 1
        if self.schedule_type != "cron" or self.cron_expression is None:
            return
        size = first
        while chunk := next_fire_times(self.cron_expression, self.timezone, after, size,
                                       self.dst):
            yield from chunk
            if len(chunk) < size:
                return
            after, size = chunk[-1], _CHUNK


class StoredRule(Protocol):
    """The fields of a stored schedule that make its rule."""

    schedule_type: str
    timezone: str
    cron_expression: str | None
    every_seconds: int | None
    anchor: datetime | None
    exclude_dates: list[str] | None
    dst_gap: str | None
    dst_repeat: str | None


def rule_of(row: StoredRule) -> Rule:
    """A stored schedule's rule (its row as the API reads it)."""
    return Rule(row.schedule_type, row.timezone, row.cron_expression, row.every_seconds,
                row.anchor, frozenset(date.fromisoformat(d) for d in row.exclude_dates or ()),
                DstPolicy(row.dst_gap, row.dst_repeat))


def jitter_offset(schedule_id: str, slot: datetime, jitter: int | None) -> timedelta:
    """The slot's own offset in [0, ``jitter``) seconds, in milliseconds: the same for
    the same schedule and slot on every timer and in every preview."""
    if not jitter:
        return timedelta(0)
    digest = hashlib.sha256(f"{schedule_id}|{slot.isoformat()}".encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % (jitter * 1000))


@dataclass(frozen=True)
class PreviewSlot:
    """One slot as a preview shows it: when, on the zone's wall clock, when it is sent
    (with jitter), or why it does not run (an excluded date)."""

    slot: datetime
    local: datetime
    send_at: datetime
    skipped: str | None = None


def preview(rule: Rule, after: datetime, count: int, schedule_id: str = "",
            jitter: int | None = None) -> list[PreviewSlot]:
    """The next ``count`` slots that run, with the excluded ones between them shown
    skipped; each with the instant it is sent (slot + its jitter offset)."""
    zone = parse_zone(rule.timezone)
    shown: list[PreviewSlot] = []
    runs = 0
    for slot in Rule(rule.schedule_type, rule.timezone, rule.cron_expression, rule.every,
                     rule.anchor, frozenset(), rule.dst)._slots(after, count):
        if runs >= count or len(shown) >= 3 * count:
            break
        skipped = "excluded date" if rule.excluded(slot) else None
        runs += skipped is None
        shown.append(PreviewSlot(slot, slot.astimezone(zone),
                                 slot + jitter_offset(schedule_id, slot, jitter), skipped))
    return shown


def dst_effects(rule: Rule, after: datetime) -> list[str]:
    """What each DST choice does at the zone's next gap and next repeat within a year,
    for the preview; nothing where the choice makes no difference to this rule."""
    if rule.schedule_type != "cron" or rule.cron_expression is None:
        return []
    zone, spec = parse_zone(rule.timezone), parse(rule.cron_expression)
    notes: list[str] = []
    seen: set[bool] = set()
    for at, moved in transitions(rule.timezone, after, after + timedelta(days=366)):
        gap = moved > timedelta(0)
        if gap in seen:
            continue
        seen.add(gap)
        if gap:
            key, choices, none = "gap", ("shift", "skip"), "does not run then"
            current = "shift" if rule.dst.shifts_gap(spec) else "skip"
        else:
            key, choices, none = "repeat", ("once", "twice"), "runs once"
            current = "twice" if rule.dst.repeats(spec) else "once"
        runs = []
        for choice in choices:
            policy = DstPolicy(choice, rule.dst.repeat) if gap else \
                DstPolicy(rule.dst.gap, choice)
            variant = Rule("cron", rule.timezone, rule.cron_expression, dst=policy)
            runs.append(set(variant.next_slots(at - timedelta(days=1), 500,
                                               until=at + timedelta(days=1))))
        if runs[0] == runs[1]:
            continue
        before = (at - timedelta(microseconds=1)).astimezone(zone)
        wall = f"{(before + timedelta(microseconds=1)).strftime('%H:%M')} to " \
            f"{at.astimezone(zone).strftime('%H:%M')}"
        said = []
        for choice, own, other in ((choices[0], runs[0], runs[1]),
                                   (choices[1], runs[1], runs[0])):
            extra = ", ".join(s.astimezone(zone).strftime("%H:%M %Z")
                              for s in sorted(own - other))
            verb = "runs at" if gap else "also runs at"
            said.append(f"{key}={choice} " + (f"{verb} {extra}" if extra else none))
        default = "" if (rule.dst.gap if gap else rule.dst.repeat) else ", cron's default"
        notes.append(f"{at.astimezone(zone).date().isoformat()}, the clock goes from {wall}: "
                     f"{'; '.join(said)} (this schedule: {current}{default})")
    return notes
