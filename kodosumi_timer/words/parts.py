"""What a phrase said, slot by slot, before :mod:`.rules` decides which rule it makes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from .errors import WordsError


@dataclass(frozen=True, slots=True)
class Clock:
    """A time of day; ``bare`` when written as a plain number ("at 9")."""

    hour: int
    minute: int
    bare: bool = False


@dataclass(slots=True)
class Parts:
    """What the clauses of a phrase said; None/empty where the phrase said nothing."""

    step: tuple[float, str] | None = None        # every N unit
    weekdays: frozenset[int] | None = None
    days: tuple[int, ...] | None = None          # days of the month
    last_day: bool = False
    nth: tuple[tuple[int, int], ...] = ()        # (weekday, n); n = 0 for the last one
    months: frozenset[int] | None = None
    times: tuple[Clock, ...] | None = None
    minute: int | None = None                    # minutes past the hour
    window: tuple[Clock, Clock] | None = None    # between .. and ..
    start: Clock | None = None                   # starting at
    date: date | None = None                     # a calendar date with its year
    month_day: tuple[int, int] | None = None     # (month, day) without a year
    relative: tuple[float, str] | None = None    # in N unit
    day_word: str | None = None                  # today, tomorrow, next:<weekday>
    recurring: bool = False                      # "every" or a frequency word was said
    meridiem: str | None = None                  # "pm" after night/evening, "am" after morning
    excluded: frozenset[int] = frozenset()       # weekdays after "except"
    filled: set[str] = field(default_factory=set)

    def fill(self, name: str, value: object, said: str) -> None:
        if name in self.filled:
            raise WordsError(f"the phrase says {said} twice; say it once")
        self.filled.add(name)
        setattr(self, name, value)


def with_meridiem(parts: Parts) -> Parts:
    """Bare hours 1-11 after "night"/"evening" read as pm ("every night at 10" = 22:00)."""
    if parts.meridiem != "pm" or not parts.times:
        return parts
    times = tuple(Clock(c.hour + 12, c.minute) if c.bare and 1 <= c.hour <= 11
                  else Clock(0, c.minute) if c.bare and c.hour == 12 else c
                  for c in parts.times)
    return replace(parts, times=times)
