"""The tokens of a schedule phrase: numbers, clock times, ordinals, dates and words.

Pure. Lower-cases the text, splits it by one regular expression and names each piece's
kind; words are reduced to one spelling (``mondays``, ``mon`` -> ``monday``) so that the
grammar compares against a small vocabulary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from .errors import WordsError

MAX_LENGTH = 200

Kind = Literal["num", "ord", "time", "minute", "date", "word", "dash", "comma"]


@dataclass(frozen=True, slots=True)
class Token:
    """One piece of the phrase. ``value`` holds a number, an ordinal or a minute mark;
    ``hour``/``minute`` a clock time (``bare`` when written without am/pm or a colon,
    e.g. the 9 of "at 9"); ``day`` a date."""

    kind: Kind
    text: str
    value: float = 0
    hour: int = 0
    minute: int = 0
    bare: bool = False
    day: date | None = None


_PATTERN = re.compile(r"""
    (?P<date>\d{4}-\d{1,2}-\d{1,2})(?![\d])
  | (?P<t12>\d{1,2}(?::\d{2})?)\s*(?P<ampm>a\.?m\.?|p\.?m\.?)(?![a-z])
  | (?P<t24>\d{1,2}:\d{2})(?![\d:])
  | (?P<mark>:\d{2})(?![\d])
  | (?P<ord>\d{1,2})(?:st|nd|rd|th)(?![a-z])
  | (?P<dnum>\d+)(?P<dunit>s|m|h|d|w|secs?|mins?|hrs?)(?![a-z])
  | (?P<num>\d+(?:\.\d+)?)(?![\d])
  | (?P<word>[a-z]+(?:'[a-z]+)?)
  | (?P<dash>[-\u2013\u2014])
  | (?P<comma>[,;&+])
  | (?P<space>[\s.]+)
  | (?P<other>.)
""", re.VERBOSE)

_UNITS = {"s": "second", "sec": "second", "secs": "second", "m": "minute", "min": "minute",
          "mins": "minute", "h": "hour", "hr": "hour", "hrs": "hour", "d": "day",
          "w": "week"}

# one spelling per word: abbreviations, plurals and a few synonyms
_SPELLINGS: dict[str, str] = {
    **{name[:3]: name for name in ("monday", "tuesday", "wednesday", "thursday", "friday",
                                   "saturday", "sunday")},
    "tues": "tuesday", "weds": "wednesday", "thur": "thursday", "thurs": "thursday",
    **{f"{name}s": name for name in ("monday", "tuesday", "wednesday", "thursday",
                                     "friday", "saturday", "sunday", "weekday", "weekend",
                                     "second", "minute", "hour", "day", "week", "month",
                                     "year", "night", "morning", "evening", "afternoon")},
    **{name[:3]: name for name in ("january", "february", "march", "april", "june", "july",
                                   "august", "september", "october", "november",
                                   "december")},
    "sept": "september", "sec": "second", "secs": "second", "min": "minute",
    "mins": "minute", "hr": "hour", "hrs": "hour", "each": "every", "thru": "through",
    "till": "until", "til": "until", "o'clock": "oclock", "oclock": "oclock",
    "midday": "noon", "annually": "yearly", "nightly": "daily", "weekdays": "weekday",
    "workday": "weekday", "workdays": "weekday",
}
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
                 "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
                 "ninety": 90}


def spelling(word: str) -> str:
    """The one spelling of ``word`` the grammar knows it by."""
    return _SPELLINGS.get(word, word)


def _clock(text: str, ampm: str | None) -> tuple[int, int]:
    hour_text, _, minute_text = text.partition(":")
    hour, minute = int(hour_text), int(minute_text or 0)
    if ampm is not None:
        if not 1 <= hour <= 12:
            raise WordsError(f"{text}{ampm} is not a time (use 1-12 with am/pm)")
        hour = hour % 12 + (12 if ampm.startswith("p") else 0)
    if hour > 23 or minute > 59:
        raise WordsError(f"{text} is not a time of day (00:00-23:59)")
    return hour, minute


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``; raise :class:`WordsError` for a character or a time that
    is not understood."""
    if not isinstance(text, str) or not text.strip():
        raise WordsError("text is empty; describe when, e.g. \"every weekday at 9am\"")
    if len(text) > MAX_LENGTH:
        raise WordsError(f"text is {len(text)} characters long; at most {MAX_LENGTH}")
    tokens: list[Token] = []
    for match in _PATTERN.finditer(text.lower()):
        kind, piece = match.lastgroup, match.group()
        if kind == "date":
            try:
                day = date(*(int(part) for part in piece.split("-")))
            except ValueError:
                raise WordsError(f"{piece} is not a date (use YYYY-MM-DD)") from None
            tokens.append(Token("date", piece, day=day))
        elif kind == "ampm":
            hour, minute = _clock(match.group("t12"), match.group("ampm").replace(".", ""))
            tokens.append(Token("time", piece, hour=hour, minute=minute))
        elif kind == "t24":
            hour, minute = _clock(piece, None)
            tokens.append(Token("time", piece, hour=hour, minute=minute))
        elif kind == "mark":
            tokens.append(Token("minute", piece, value=int(piece[1:])))
        elif kind == "ord":
            tokens.append(Token("ord", piece, value=int(match.group("ord"))))
        elif kind == "dunit":
            tokens.append(Token("num", match.group("dnum"), value=int(match.group("dnum"))))
            tokens.append(Token("word", _UNITS[match.group("dunit")]))
        elif kind == "num":
            tokens.append(Token("num", piece, value=float(piece)))
        elif kind == "word":
            if piece in _NUMBER_WORDS:
                tokens.append(Token("num", piece, value=_NUMBER_WORDS[piece]))
            else:
                tokens.append(Token("word", spelling(piece)))
        elif kind == "dash":
            tokens.append(Token("dash", piece))
        elif kind == "comma":
            tokens.append(Token("comma", piece))
        elif kind == "other":
            raise WordsError(f"the character {piece!r} has no meaning here")
    return tokens
