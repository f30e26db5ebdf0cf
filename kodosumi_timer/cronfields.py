"""Grammar of five-field cron expressions (Vixie/Debian dialect) and their parsed form.

Pure: no clock, no I/O. The public face is :mod:`kodosumi_timer.cron`; this module turns
text into a :class:`CronSpec` (sets of values, Vixie's day-field rule, the Debian DST
class of the job) and decides *analytically* whether an expression can ever fire, so
that rejecting ``0 0 30 2 *`` costs microseconds instead of a search to year 9999.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

MAX_LENGTH = 1000

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
FIELD_LIST = "minute hour day-of-month month day-of-week"

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN",
               "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MONTH_FULL = ("January", "February", "March", "April", "May", "June", "July",
              "August", "September", "October", "November", "December")

# (low, high) of each field as written; day-of-week allows 7 for Sunday.
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
# How many distinct values a field has: the largest step that still makes sense.
_SPANS = (60, 24, 31, 12, 7)
_NUMBER = re.compile(r"[0-9]+")
_NAME = re.compile(r"[A-Za-z]+")
_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}
_MAX_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class CronError(ValueError):
    """An invalid cron expression; ``field`` names the cron field at fault.

    ``field`` is one of "minute", "hour", "day-of-month", "month", "day-of-week" or
    "expression" (for problems of the whole text: empty, too long, wrong field count).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Item:
    """One comma-separated element of a field, kept for :func:`describe`.

    ``kind`` is "all" (``*``), "value", "range", "last" (``L`` in day-of-month),
    "nth" (``DOW#n``) or "last-dow" (``DOWL``). ``low``/``high`` are the bounds as
    written (day-of-week 7 stays 7), ``step`` is 1 unless a step was given.
    """

    kind: Literal["all", "value", "range", "last", "nth", "last-dow"]
    low: int = 0
    high: int = 0
    step: int = 1


@dataclass(frozen=True, slots=True)
class Field:
    """A parsed field: its text, its elements and the set of values it allows."""

    name: str
    text: str
    items: tuple[Item, ...]
    values: frozenset[int]

    @property
    def star(self) -> bool:
        """True when the field starts with ``*`` (Vixie's day rule, Debian's DST rule)."""
        return self.text.startswith("*")


@dataclass(frozen=True, slots=True, eq=False)
class CronSpec:
    """A valid cron expression, ready for the search in :mod:`kodosumi_timer.cron`."""

    expression: str
    fields: tuple[Field, Field, Field, Field, Field]
    times: tuple[int, ...]        # matching minutes of the day (hour * 60 + minute), sorted
    dom_bits: int                 # bit d set: day-of-month d listed
    last_dom: bool                # ``L`` in day-of-month
    month_bits: int               # bit m set: month m allowed (1-12)
    nth: tuple[tuple[int, int], ...]  # (weekday, n) for DOW#n, Sunday = 0
    last_dow: tuple[int, ...]     # weekdays written as DOWL
    days_and: bool                # Vixie: AND the day fields when either starts with *
    wildcard: bool                # Debian: minute or hour field starts with *
    next_month: tuple[int, ...]   # next_month[m]: next allowed month after m, 0 = next year
    first_month: int
    dow_masks: tuple[int, ...]    # plain-weekday day bits, by weekday of the 1st
    _masks: dict[int, int] = field(default_factory=dict, repr=False)

    def day_mask(self, year: int, month: int) -> int:
        """Bit d set when day d of ``year``-``month`` matches the day fields (0 if the
        month itself is not allowed)."""
        key = year * 12 + month
        mask = self._masks.get(key)
        if mask is None:
            mask = self._compute_day_mask(year, month)
            if len(self._masks) > 4096:
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def _compute_day_mask(self, year: int, month: int) -> int:
        if not self.month_bits >> month & 1:
            return 0
        first_weekday, length = monthrange(year, month)
        first = (first_weekday + 1) % 7  # cron numbering: Sunday = 0
        valid = (1 << (length + 1)) - 2
        dom = self.dom_bits & valid
        if self.last_dom:
            dom |= 1 << length
        dow = self.dow_masks[first] & valid
        for weekday, n in self.nth:
            day = 1 + (weekday - first) % 7 + 7 * (n - 1)
            if day <= length:
                dow |= 1 << day
        last = (first + length - 1) % 7
        for weekday in self.last_dow:
            dow |= 1 << (length - (last - weekday) % 7)
        return dom & dow if self.days_and else dom | dow


def _number(field_index: int, token: str) -> int:
    """A value of the field: digits, or a month/day name where the field has names."""
    name = FIELD_NAMES[field_index]
    if _NUMBER.fullmatch(token):
        value = int(token)
    elif field_index in (3, 4) and _NAME.fullmatch(token):
        names = MONTH_NAMES if field_index == 3 else DAY_NAMES
        upper = token.upper()
        if upper not in names:
            hint = "JAN-DEC or 1-12" if field_index == 3 else "SUN-SAT or 0-7"
            raise CronError(name, f"{name} name {token!r} is not known (use {hint})")
        value = names.index(upper) + (1 if field_index == 3 else 0)
    else:
        kind = "a number or a name" if field_index in (3, 4) else "a number"
        raise CronError(name, f"{name} value {token!r} is not {kind}")
    low, high = _BOUNDS[field_index]
    if not low <= value <= high:
        raise CronError(name, f"{name} {value} is out of range {low}-{high}")
    return value


def _parse_item(field_index: int, text: str) -> Item:
    name = FIELD_NAMES[field_index]
    if not text:
        raise CronError(name, f"{name} has an empty list element")
    if field_index == 2 and text.upper() == "L":
        return Item("last")
    if field_index == 4 and text.upper() == "L":
        raise CronError(name, f"{name} 'L' needs a weekday before it, e.g. 5L (last Friday)")
    if field_index == 4 and "#" in text:
        weekday_text, _, n_text = text.partition("#")
        weekday = _number(4, weekday_text) % 7
        if not _NUMBER.fullmatch(n_text):
            raise CronError(name, f"{name} {text!r}: the part after # must be a number 1-5")
        n = int(n_text)
        if not 1 <= n <= 5:
            raise CronError(name, f"{name} {text!r}: occurrence {n} is out of range 1-5")
        return Item("nth", weekday, n)
    if field_index == 4 and len(text) > 1 and text[-1] in "Ll" and "-" not in text \
            and "/" not in text and text[:-1] != "*":
        return Item("last-dow", _number(4, text[:-1]) % 7)
    base, slash, step_text = text.partition("/")
    low_bound, high_bound = _BOUNDS[field_index]
    step = 1
    if slash:
        if not _NUMBER.fullmatch(step_text):
            raise CronError(name, f"{name} step {step_text!r} in {text!r} is not a number")
        step = int(step_text)
        if not 1 <= step <= _SPANS[field_index]:
            raise CronError(
                name, f"{name} step {step} in {text!r} is out of range 1-{_SPANS[field_index]}")
    if base == "*":
        return Item("all", low_bound, 6 if field_index == 4 else high_bound, step)
    start_text, dash, end_text = base.partition("-")
    if not dash:
        value = _number(field_index, base)
        if not slash:
            return Item("value", value, value)
        return Item("range", value, 6 if field_index == 4 and value < 7 else high_bound, step)
    if not start_text and _NUMBER.fullmatch(end_text):
        low, high = _BOUNDS[field_index]
        raise CronError(name, f"{name} -{end_text} is out of range {low}-{high}")
    if "-" in end_text or not start_text or not end_text:
        raise CronError(name, f"{name} range {base!r} is not valid")
    low = _number(field_index, start_text)
    high = _number(field_index, end_text)
    if field_index == 4 and high == 0 and low > 0 and not _NUMBER.fullmatch(end_text):
        high = 7  # FRI-SUN: a Sunday written by name closes the week
    if low > high:
        raise CronError(name, f"{name} range {base} is reversed ({low} comes after {high})")
    return Item("range", low, high, step)


def _item_values(field_index: int, item: Item) -> set[int]:
    if item.kind in ("all", "value", "range"):
        values = set(range(item.low, item.high + 1, item.step))
        return {v % 7 for v in values} if field_index == 4 else values
    return set()


def _parse_field(field_index: int, text: str) -> Field:
    items = tuple(_parse_item(field_index, part) for part in text.split(","))
    values: set[int] = set()
    for item in items:
        values |= _item_values(field_index, item)
    return Field(FIELD_NAMES[field_index], text, items, frozenset(values))


def _bits(values: frozenset[int]) -> int:
    bits = 0
    for value in values:
        bits |= 1 << value
    return bits


def _join_or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _check_possible(spec: CronSpec) -> None:
    """Raise CronError if no calendar date can ever satisfy the day and month fields.

    Exact, without searching: for a fixed month and month length every weekday occurs
    on every day number in some year, so only the day number matters for the plain
    weekdays, ``DOW#n`` pins it to a week of the month and ``DOWL`` to the last seven days.
    """
    months = [m for m in range(1, 13) if spec.month_bits >> m & 1]
    dom_possible = False
    for month in months:
        lengths = (28, 29) if month == 2 else (_MAX_MONTH_DAYS[month - 1],)
        for length in lengths:
            valid = (1 << (length + 1)) - 2
            dom = spec.dom_bits & valid | (1 << length if spec.last_dom else 0)
            dom_possible = dom_possible or dom != 0
            dow = valid if spec.dow_masks[0] else 0
            for _, n in spec.nth:
                dow |= ((1 << 7) - 1) << (7 * (n - 1) + 1) & valid
            if spec.last_dow:
                dow |= valid >> (length - 6) << (length - 6)
            if (dom & dow if spec.days_and else dom | dow):
                return
    dom_field, month_field, dow_field = spec.fields[2], spec.fields[3], spec.fields[4]
    if not dom_possible:
        names = _join_or([MONTH_FULL[m - 1] for m in months])
        raise CronError("day-of-month", f"day-of-month {dom_field.text} never occurs in {names}")
    raise CronError(
        "day-of-week",
        f"day-of-week {dow_field.text} never falls on day-of-month {dom_field.text}"
        + ("" if month_field.text == "*" else f" in month {month_field.text}"),
    )


def split_fields(expression: str) -> tuple[str, list[str]]:
    """The stripped expression and its five field texts (aliases expanded)."""
    if not isinstance(expression, str):
        raise CronError("expression", "expression must be a string")
    if len(expression) > MAX_LENGTH:
        raise CronError(
            "expression",
            f"expression is {len(expression)} characters long; at most {MAX_LENGTH} allowed")
    text = expression.strip()
    if not text:
        raise CronError("expression", "expression is empty")
    if text.startswith("@"):
        expansion = ALIASES.get(text.lower())
        if expansion is None:
            raise CronError(
                "expression",
                f"unknown alias {text!r} (use {', '.join(ALIASES)})")
        return text, expansion.split()
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            "expression", f"expected 5 fields ({FIELD_LIST}), got {len(parts)}")
    return text, parts


@lru_cache(maxsize=1024)
def parse(expression: str) -> CronSpec:
    """Parse and validate ``expression``; raise :class:`CronError` naming the field."""
    text, parts = split_fields(expression)
    minute, hour, dom, month, dow = (_parse_field(i, part) for i, part in enumerate(parts))
    nth = tuple(sorted({(i.low, i.high) for i in dow.items if i.kind == "nth"}))
    last_dow = tuple(sorted({i.low for i in dow.items if i.kind == "last-dow"}))
    month_bits = _bits(month.values)
    months = sorted(month.values)
    plain = _bits(dow.values)
    dow_masks = tuple(
        sum(1 << day for day in range(1, 32) if plain >> ((first + day - 1) % 7) & 1)
        for first in range(7))
    spec = CronSpec(
        expression=text,
        fields=(minute, hour, dom, month, dow),
        times=tuple(sorted(h * 60 + m for h in hour.values for m in minute.values)),
        dom_bits=_bits(dom.values),
        last_dom=any(i.kind == "last" for i in dom.items),
        month_bits=month_bits,
        nth=nth,
        last_dow=last_dow,
        days_and=dom.star or dow.star,
        wildcard=minute.star or hour.star,
        next_month=tuple(
            next((n for n in months if n > m), 0) for m in range(13)),
        first_month=months[0],
        dow_masks=dow_masks,
    )
    _check_possible(spec)
    return spec


def ordinal(day: int) -> str:
    """1 -> "1st", 22 -> "22nd", 13 -> "13th"."""
    suffix = "th" if 10 <= day % 100 <= 20 else _SUFFIXES.get(day % 10, "th")
    return f"{day}{suffix}"
