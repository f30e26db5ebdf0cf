"""The grammar: which clauses a schedule phrase is made of, read into :class:`Parts`.

Pure. A phrase is a sequence of clauses in any order ("every weekday", "at 9am",
"between 9 and 17", "on the 1st and 15th", "tomorrow", "in 2 hours" ...), each filling
one slot of :class:`Parts`; :mod:`.rules` then decides what rule the slots make. A
word no clause takes is an error that names it.
"""

from __future__ import annotations

import difflib
from datetime import date
from typing import NoReturn

from .errors import WordsError
from .parts import Clock, Parts
from .tokens import Token

# cron numbering: Sunday = 0
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
NTH = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}
UNITS = ("second", "minute", "hour", "day", "week", "month", "year")
_PART_OF_DAY = {"night": "pm", "evening": "pm", "afternoon": "pm", "tonight": "pm",
                "morning": "am"}
_KEYWORDS = {"minutely": "minute", "hourly": "hour", "daily": "day", "weekly": "week",
             "monthly": "month", "yearly": "year"}
_RANGE_WORDS = ("to", "through", "until")
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# every word some clause takes (for "did you mean" on a word nobody takes)
VOCABULARY = frozenset((*WEEKDAYS, *MONTHS, *NTH, *UNITS, *_PART_OF_DAY, *_KEYWORDS,
                        *_RANGE_WORDS, "every", "other", "half", "quarter", "an", "a", "of",
                        "the", "at", "on", "in", "and", "or", "between", "from", "starting",
                        "past", "after", "except", "but", "noon", "midnight", "oclock",
                        "today", "tomorrow", "fortnight", "during", "next", "this", "last",
                        "weekday", "weekend", "month", "hour"))


def close_word(word: str) -> str | None:
    """The known word nearest to ``word``, if one is near."""
    found = difflib.get_close_matches(word, sorted(VOCABULARY), n=1, cutoff=0.65)
    return found[0] if found else None


class Reader:
    """Reads tokens clause by clause into :class:`Parts`."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.parts = Parts()

    # ------------------------------------------------------------ primitives

    def peek(self, ahead: int = 0) -> Token | None:
        index = self.i + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def word(self, ahead: int = 0) -> str | None:
        token = self.peek(ahead)
        return token.text if token is not None and token.kind == "word" else None

    def kind(self, ahead: int = 0) -> str | None:
        token = self.peek(ahead)
        return token.kind if token is not None else None

    def accept(self, *words: str) -> str | None:
        found = self.word()
        if found is not None and found in words:
            self.i += 1
            return found
        return None

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, reason: str) -> NoReturn:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text not in VOCABULARY:
            self.unknown()  # the word nobody knows is the better clue
        raise WordsError(reason)

    def rest(self) -> str:
        return " ".join(t.text for t in self.tokens[self.i:self.i + 3])

    # ------------------------------------------------------------ the phrase

    def read(self) -> Parts:
        clauses = (self.every, self.keyword, self.except_clause, self.in_clause, self.window,
                   self.starting, self.at, self.on, self.ordinal_days, self.day_word,
                   self.month_date, self.part_of_day, self.weekday_clause, self.clock_clause)
        while self.i < len(self.tokens):
            if self.accept("and") or self.kind() == "comma":
                if self.kind() == "comma":
                    self.i += 1
                continue
            if not any(clause() for clause in clauses):
                self.unknown()
        parts = self.parts
        if parts.excluded:
            if parts.nth or parts.days or parts.last_day:
                self.fail("\"except\" leaves out weekdays from a weekly rule, e.g. "
                          "\"every day at 9 except Sundays\"")
            kept = (parts.weekdays or frozenset(range(7))) - parts.excluded
            if not kept:
                self.fail("the phrase leaves out every day of the week")
            parts.weekdays = kept
            parts.filled.add("weekdays")
        return parts

    def unknown(self) -> NoReturn:
        token = self.tokens[self.i]
        if token.kind == "word" and token.text not in VOCABULARY:
            near = close_word(token.text)
            hint = f" (did you mean {near!r}?)" if near else ""
            raise WordsError(f"{token.text!r} is not a word I know{hint}")
        raise WordsError(f"I cannot read the phrase from {self.rest()!r} on")

    # ------------------------------------------------------------ pieces

    def number(self) -> float | None:
        """A count: a number, or "a"/"an" (one)."""
        if self.kind() == "num":
            return self.take().value
        if self.accept("a", "an"):
            return 1
        return None

    def unit(self) -> str | None:
        found = self.word()
        if found in UNITS and not (found == "second" and self.word(1) in WEEKDAYS):
            self.i += 1
            return found
        return None

    def clock(self, bare_ok: bool) -> Clock | None:
        """A time of day: 9am, 17:00, noon, midnight, or (``bare_ok``) a plain hour."""
        token = self.peek()
        if token is None:
            return None
        if token.kind == "time":
            self.i += 1
            return Clock(token.hour, token.minute)
        if self.accept("noon"):
            return Clock(12, 0)
        if self.accept("midnight"):
            return Clock(0, 0)
        if token.kind == "num" and bare_ok and self.word(1) not in UNITS \
                and self.word(1) not in ("past", "after") and self.word(1) not in MONTHS:
            if token.value != int(token.value) or not 0 <= token.value <= 23:
                self.fail(f"{token.text} is not an hour of the day (0-23)")
            self.i += 1
            self.accept("oclock")
            return Clock(int(token.value), 0, bare=True)
        return None

    def clocks(self, bare_ok: bool) -> tuple[Clock, ...] | None:
        first = self.clock(bare_ok)
        if first is None:
            return None
        found = [first]
        while self.word() == "and" or self.kind() == "comma":
            saved = self.i
            self.i += 1
            following = self.clock(bare_ok)
            if following is None:
                self.i = saved
                break
            found.append(following)
        return tuple(found)

    def weekday_item(self) -> frozenset[int] | None:
        found = self.word()
        if found == "weekday":
            self.i += 1
            return frozenset(range(1, 6))
        if found == "weekend":
            self.i += 1
            return frozenset({0, 6})
        if found not in WEEKDAYS:
            return None
        self.i += 1
        low = WEEKDAYS.index(found)
        if (self.kind() == "dash" or self.word() in _RANGE_WORDS) and self.word(1) in WEEKDAYS:
            self.i += 1
            high = WEEKDAYS.index(self.take().text)
            return frozenset((low + k) % 7 for k in range((high - low) % 7 + 1))
        return frozenset({low})

    def weekday_list(self) -> frozenset[int] | None:
        first = self.weekday_item()
        if first is None:
            return None
        days = set(first)
        while self.word() in ("and", "or") or self.kind() == "comma":
            saved = self.i
            self.i += 1
            following = self.weekday_item()
            if following is None:
                self.i = saved
                break
            days |= following
        return frozenset(days)

    def month_list(self) -> frozenset[int] | None:
        found = self.word()
        if found not in MONTHS:
            return None
        months: set[int] = set()
        while True:
            low = MONTHS.index(self.take().text) + 1
            high = low
            if (self.kind() == "dash" or self.word() in _RANGE_WORDS) \
                    and self.word(1) in MONTHS:
                self.i += 1
                high = MONTHS.index(self.take().text) + 1
            months |= {(low - 1 + k) % 12 + 1 for k in range((high - low) % 12 + 1)}
            if (self.word() in ("and", "or") or self.kind() == "comma") \
                    and self.word(1) in MONTHS:
                self.i += 1
                continue
            return frozenset(months)

    def minute_past(self) -> int | None:
        """30 past [the hour], 30 minutes past every hour, half past, quarter past."""
        if self.word() in ("half", "quarter") and self.word(1) in ("past", "after"):
            value = 30 if self.take().text == "half" else 15
        elif self.kind() == "num" and (self.word(1) in ("past", "after")
                                       or (self.word(1) == "minute"
                                           and self.word(2) in ("past", "after"))):
            number = self.take().value
            if number != int(number) or not 0 <= number <= 59:
                self.fail(f"{number:g} is not a minute of the hour (0-59)")
            value = int(number)
            self.accept("minute")
        else:
            return None
        self.i += 1  # past / after
        self.accept("the", "every")
        if self.accept("hour") is None and self.word(-1) in ("the", "every"):
            self.fail("say \"past the hour\" or \"past every hour\"")
        return value

    # ------------------------------------------------------------ clauses

    def every(self) -> bool:
        if self.accept("every") is None:
            return False
        parts = self.parts
        parts.recurring = True
        count: float | None = None
        token = self.peek()
        if self.accept("other"):
            count = 2
        elif self.accept("fortnight"):
            parts.fill("step", (2, "week"), "how often")
            return True
        elif token is not None and self.word(1) in UNITS and (
                token.kind == "ord" or token.kind == "word" and token.text in NTH):
            count = token.value if token.kind == "ord" else NTH[token.text]  # every 2nd day
            self.i += 1
        elif self.kind() == "num":
            count = self.take().value
        elif self.word() in ("half", "quarter"):
            minutes = 30 if self.take().text == "half" else 15
            self.accept("of")
            self.accept("an", "a")
            if self.accept("hour") is None:
                self.fail(f"every {'half' if minutes == 30 else 'quarter'} what? say "
                          "\"every half hour\" or \"every quarter hour\"")
            parts.fill("step", (minutes, "minute"), "how often")
            return True
        if count is not None:
            unit = self.unit()
            if unit is None:
                self.fail(f"every {count:g} what? say seconds, minutes, hours, days or weeks")
            parts.fill("step", (count, unit), "how often")
            return True
        unit = self.unit()
        if unit is not None:
            parts.fill("step", (1, unit), "how often")
            return True
        if self.word() in _PART_OF_DAY:
            parts.meridiem = _PART_OF_DAY[self.take().text]
            parts.fill("step", (1, "day"), "how often")
            return True
        if self.month_date(yearly=True) or self.ordinal_days() or self.weekday_clause():
            return True
        self.fail("every what? e.g. every day, every weekday, every Monday, every 15 minutes")

    def except_clause(self) -> bool:
        if self.accept("except", "but") is None:
            return False
        self.accept("on")
        days = self.weekday_list()
        if days is None:
            self.fail("except what? e.g. \"every day at 9 except Sundays\"")
        self.parts.fill("excluded", days, "\"except\"")
        return True

    def keyword(self) -> bool:
        found = self.accept(*_KEYWORDS)
        if found is None:
            return False
        self.parts.recurring = True
        self.parts.fill("step", (1, _KEYWORDS[found]), "how often")
        return True

    def in_clause(self) -> bool:
        if self.word() != "in":
            return False
        self.i += 1
        if self.word() == "the" and self.word(1) in _PART_OF_DAY:
            self.i += 1
            return self.part_of_day()
        months = self.month_list()
        if months is not None:
            self.parts.fill("months", months, "the months")
            return True
        if self.word() == "half" and self.word(1) in ("an", "a") and self.word(2) == "hour":
            self.i += 3
            self.parts.fill("relative", (30, "minute"), "\"in ...\"")
            return True
        count = self.number()
        unit = self.unit() if count is not None else None
        if count is None or unit is None:
            self.fail("in what? e.g. \"in 2 hours\", \"in 30 minutes\", \"in January\"")
        self.parts.fill("relative", (count, unit), "\"in ...\"")
        return True

    def window(self) -> bool:
        opener = self.accept("between", "from")
        if opener is None:
            return False
        low = self.clock(bare_ok=True)
        high = None
        if low is not None and opener == "between":
            joined = self.accept("and") is not None
        else:
            joined = self.accept(*_RANGE_WORDS) is not None or self.kind() == "dash"
            if self.kind() == "dash":
                self.i += 1
        if low is not None and joined:
            high = self.clock(bare_ok=True)
        if low is None or high is None:
            self.fail(f"say \"{opener} 9 {'and' if opener == 'between' else 'to'} 17\" "
                      "for a window of the day")
        self.parts.fill("window", (low, high), "a window of the day")
        return True

    def starting(self) -> bool:
        if self.accept("starting") is None:
            return False
        self.accept("at", "from")
        token = self.peek()
        if token is not None and token.kind == "minute":
            self.i += 1
            self.parts.fill("start", Clock(0, int(token.value)), "a start")
            return True
        start = self.clock(bare_ok=True)
        if start is None:
            self.fail("starting when? e.g. \"every 90 minutes starting at 8:00\"")
        self.parts.fill("start", start, "a start")
        return True

    def at(self) -> bool:
        if self.accept("at") is None:
            return False
        token = self.peek()
        if token is not None and token.kind == "minute":
            self.i += 1
            self.parts.fill("minute", int(token.value), "the minute")
            return True
        minute = self.minute_past()
        if minute is not None:
            self.parts.fill("minute", minute, "the minute")
            return True
        times = self.clocks(bare_ok=True)
        if times is None:
            self.fail("at what time? e.g. at 9am, at 17:30, at noon, at :30")
        self.parts.fill("times", times, "the time")
        return True

    def on(self) -> bool:
        if self.accept("on", "during") is None:
            return False
        if self.word() == "the" and self.word(1) == "hour":
            self.i += 2
            self.parts.fill("minute", 0, "the minute")
            return True
        if self.kind() == "date":
            self.parts.fill("date", self.take().day, "the date")
            return True
        if self.month_date() or self.ordinal_days() or self.weekday_clause():
            return True
        self.fail("on what? e.g. on Monday, on weekdays, on the 1st, on 2027-01-15")

    def ordinal_item(self) -> tuple[str, int, int] | None:
        """("day", n, 0) | ("nth", weekday, n) | ("last", 0, 0) | ("last-dow", weekday, 0)."""
        token = self.peek()
        if token is None:
            return None
        if token.kind == "ord":
            n = int(token.value)
        elif token.kind == "word" and token.text in NTH and (
                token.text != "second" or self.word(1) in (*WEEKDAYS, "day")):
            n = NTH[token.text]
        elif token.kind == "word" and token.text == "last" and \
                self.word(1) in (*WEEKDAYS, "day", "weekday"):
            self.i += 1
            if self.accept("weekday"):
                self.fail("the last weekday of a month is beyond what the timer's cron "
                          "rules can say; try \"last Friday of the month\"")
            if self.accept("day"):
                return ("last", 0, 0)
            return ("last-dow", WEEKDAYS.index(self.take().text), 0)
        else:
            return None
        self.i += 1
        if self.word() in WEEKDAYS:
            if not 1 <= n <= 5:
                self.fail(f"a month has at most five of each weekday, not {n}")
            return ("nth", WEEKDAYS.index(self.take().text), n)
        self.accept("day")
        if not 1 <= n <= 31:
            self.fail(f"a month has no {token.text} day")
        return ("day", n, 0)

    def ordinal_days(self) -> bool:
        saved = self.i
        self.accept("the")
        first = self.ordinal_item()
        if first is None:
            self.i = saved
            return False
        items = [first]
        while self.word() == "and" or self.kind() == "comma":
            back = self.i
            self.i += 1
            self.accept("the")
            following = self.ordinal_item()
            if following is None:
                self.i = back
                break
            items.append(following)
        if self.accept("of"):
            self.accept("the", "every")
            if self.accept("month") is None:
                months = self.month_list()
                if months is None:
                    self.fail("of what? say \"of the month\" or name a month")
                self.parts.fill("months", months, "the months")
        parts = self.parts
        days = tuple(sorted({n for kind, n, _ in items if kind == "day"}))
        nth = tuple(sorted({(a, b) for kind, a, b in items if kind in ("nth", "last-dow")}))
        if days:
            parts.fill("days", days, "the days of the month")
        if nth:
            parts.fill("nth", nth, "the weekdays of the month")
        if any(kind == "last" for kind, _, _ in items):
            parts.fill("last_day", True, "the last day")
        return True

    def day_word(self) -> bool:
        found = self.accept("today", "tonight", "tomorrow")
        if found is not None:
            if found == "tonight":
                self.parts.meridiem = "pm"
                found = "today"
            self.parts.fill("day_word", found, "the day")
            return True
        if self.word() in ("next", "this") and self.word(1) in WEEKDAYS:
            self.i += 1
            self.parts.fill("day_word", f"next:{WEEKDAYS.index(self.take().text)}", "the day")
            return True
        return False

    def month_date(self, yearly: bool = False) -> bool:
        """January 15 [2027], Jan 15th, 15 January [2027], the 15th of January."""
        saved = self.i
        month = day = None
        if self.word() in MONTHS and self.kind(1) in ("num", "ord"):
            month = MONTHS.index(self.take().text) + 1
            day = self.take().value
        else:
            self.accept("the")
            if self.kind() in ("num", "ord") and (
                    self.word(1) in MONTHS or (self.word(1) == "of" and self.word(2) in MONTHS)):
                day = self.take().value
                self.accept("of")
                month = MONTHS.index(self.take().text) + 1
        if month is None or day is None:
            self.i = saved
            return False
        if day != int(day) or not 1 <= day <= _MONTH_DAYS[month - 1]:
            self.fail(f"{MONTHS[month - 1].title()} has no day {day:g}")
        if self.kind() == "comma" and self.kind(1) == "num":
            self.i += 1
        year = None
        token = self.peek()
        if token is not None and token.kind == "num" and 1000 <= token.value <= 9999:
            year = int(self.take().value)
        if yearly:
            if year is not None:
                self.fail("every ... with a year happens once; drop \"every\" or the year")
            self.parts.fill("months", frozenset({month}), "the month")
            self.parts.fill("days", (int(day),), "the day of the month")
            return True
        if year is not None:
            try:
                self.parts.fill("date", date(year, month, int(day)), "the date")
            except ValueError:
                self.fail(f"{MONTHS[month - 1].title()} {int(day)}, {year} is not a date")
        else:
            self.parts.fill("month_day", (month, int(day)), "the date")
        return True

    def part_of_day(self) -> bool:
        found = self.accept(*_PART_OF_DAY)
        if found is None:
            return False
        self.parts.meridiem = _PART_OF_DAY[found]
        return True

    def weekday_clause(self) -> bool:
        days = self.weekday_list()
        if days is None:
            return False
        self.parts.fill("weekdays", days, "the weekdays")
        return True

    def clock_clause(self) -> bool:
        minute_first = self.minute_past()
        if minute_first is not None:
            self.parts.fill("minute", minute_first, "the minute")
            return True
        times = self.clocks(bare_ok=False)
        if times is None:
            return False
        self.parts.fill("times", times, "the time")
        return True
