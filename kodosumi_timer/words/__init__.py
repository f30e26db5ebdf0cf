"""Schedule rules written in words: "every weekday at 9am" -> ``0 9 * * 1-5``.

A grammar of our own, deterministic and offline: :mod:`.tokens` splits the text,
:mod:`.grammar` reads its clauses into :mod:`.parts`, :mod:`.rules` makes the rule; what
it cannot read is a :class:`WordsError` (``field`` "text") that names the word at fault
and the nearest form it knows (:mod:`.suggest`).

* :func:`read_rule` -- a phrase as a :class:`Rule` (once, cron or interval) with a
  description of what was understood;
* :func:`upcoming` -- the next fire times of such a rule, for previews.
"""

from __future__ import annotations

from datetime import datetime

from kodosumi_timer import cron
from kodosumi_timer.rules import Rule as Slots

from .errors import WordsError
from .grammar import Reader
from .parts import with_meridiem
from .rules import MIN_INTERVAL, Rule, build_rule
from .suggest import TEMPLATES, nearest
from .tokens import tokenize

__all__ = ["MIN_INTERVAL", "TEMPLATES", "Rule", "WordsError", "read_rule", "upcoming"]


def read_rule(text: str, timezone: str, now: datetime) -> Rule:
    """The rule ``text`` describes in ``timezone``, relative to the instant ``now``
    (aware). Raises :class:`WordsError` for a phrase it cannot read and
    :class:`kodosumi_timer.cron.TimezoneError` for an unknown zone."""
    cron.parse_zone(timezone)
    if now.tzinfo is None or now.utcoffset() is None:
        raise cron.NaiveDatetimeError("now must be timezone-aware")
    try:
        parts = with_meridiem(Reader(tokenize(text)).read())
        return build_rule(parts, timezone, now)
    except WordsError as exc:
        if not isinstance(text, str) or not text.strip():
            raise
        suggestion = nearest(text)
        same = " ".join(suggestion.lower().split()) == " ".join(text.lower().split())
        raise WordsError(exc.reason, None if same else suggestion) from None


def upcoming(rule: Rule, timezone: str, now: datetime, count: int) -> list[cron.FireTime]:
    """The next ``count`` fire times of ``rule`` after ``now``.

    An interval's slots are anchor + k * every in elapsed time (anchor: ``now`` when the
    rule has none, as for a schedule saved now); a one-off's is its instant.
    """
    zone = cron.parse_zone(timezone)
    if rule.cron_expression is not None:
        return cron.preview(rule.cron_expression, timezone, now, count)
    if rule.run_at is not None:
        return [cron.FireTime(utc=rule.run_at, local=rule.run_at.astimezone(zone),
                              dst_note=rule.note)][:count]
    assert rule.every_seconds is not None, "a rule is once, cron or interval"
    slots = Slots("interval", timezone, every=rule.every_seconds,
                  anchor=rule.anchor or now).next_slots(now, count)
    return [cron.FireTime(utc=t, local=t.astimezone(zone)) for t in slots]
