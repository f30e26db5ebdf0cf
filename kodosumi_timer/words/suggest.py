"""The nearest form the grammar knows, for a phrase it could not read.

Deterministic: each template is scored by the words it shares with the phrase (numbers
count as one word, "#") and by difflib's similarity of the two word sequences (so that
word order counts too); the best wins, the earlier template on a tie.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from .tokens import spelling

# what the grammar reads, one of each kind (tests check that every one reads)
TEMPLATES = (
    "every weekday at 9am",
    "every day at 08:00",
    "every night at 10pm",
    "every Monday and Thursday at 7:15pm",
    "on weekends at noon",
    "every 15 minutes",
    "every 2 hours between 9 and 17 on weekdays",
    "every hour at :30",
    "every 90 minutes",
    "every 30 seconds",
    "every 3 days at 06:00",
    "every 2 weeks on Monday at 9",
    "first Monday of the month at 08:30",
    "last Friday of the month at 17:00",
    "last day of the month at 18:00",
    "on the 1st and 15th at 9",
    "every January 1st at 0:00",
    "tomorrow at 9",
    "today at 17:00",
    "in 2 hours",
    "next Friday at 17:00",
    "on 2027-01-15 at 10:00",
    "daily at 9",
    "hourly",
    "weekly on Monday at 9",
    "monthly on the 1st at 9",
    "at midnight",
)

_WORD = re.compile(r"[a-z]+|\d+")


def _words(text: str) -> list[str]:
    return ["#" if w.isdigit() else spelling(w) for w in _WORD.findall(text.lower())]


_TEMPLATE_WORDS = [(template, _words(template)) for template in TEMPLATES]


def nearest(text: str) -> str:
    """The template most like ``text``."""
    words = _words(text)[:40]
    mine = set(words)
    matcher = SequenceMatcher(autojunk=False)
    matcher.set_seq2(words)
    best, best_score = TEMPLATES[0], -1.0
    for template, theirs in _TEMPLATE_WORDS:
        both = mine | set(theirs)
        overlap = len(mine & set(theirs)) / len(both) if both else 0.0
        matcher.set_seq1(theirs)
        score = overlap + 0.5 * matcher.ratio()
        if score > best_score:
            best, best_score = template, score
    return best
