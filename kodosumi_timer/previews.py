"""What a rule will do, for ``POST /schedule/preview``: its description and next slots,
with excluded dates shown skipped, each slot's send time under jitter, the DST notes of
cron rules and what each DST choice would do at the next transitions (pure: ``now`` is
an argument)."""

from datetime import date, datetime

from kodosumi_timer import cron, words
from kodosumi_timer.errors import InvalidInput
from kodosumi_timer.models import PreviewRequest, PreviewResponse, PreviewRule, PreviewTime
from kodosumi_timer.rules import Rule, dst_effects, preview
from kodosumi_timer.words.rules import spoken


def rule_preview(data: PreviewRequest, now: datetime) -> PreviewResponse:
    """The preview ``data`` asks for, or InvalidInput naming the field at fault."""
    try:
        zone = cron.parse_zone(data.timezone)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="timezone") from exc
    shown: PreviewRule | None = None
    description: str | None = None
    said_note: str | None = None  # a one-off in words says itself if it fell in a DST gap
    kind, expression, run_at, every, anchor = _given_rule(data)
    if data.text is not None:
        try:
            said = words.read_rule(data.text, data.timezone, now)
        except words.WordsError as exc:
            raise InvalidInput(str(exc), field="text") from exc
        shown = PreviewRule.model_validate(said.fields())
        description = said.description
        kind, expression, run_at = said.schedule_type, said.cron_expression, said.run_at
        every, anchor = said.every_seconds, said.anchor
        said_note = said.note
    if kind == "once":
        assert run_at is not None
        try:
            instant, note = cron.resolve_wall_time(run_at, data.timezone)
            local = instant.astimezone(zone)
        except (ValueError, OverflowError) as exc:
            raise InvalidInput(str(exc), field="run_at") from exc
        return PreviewResponse(
            description=description or f"Once, at {local.strftime('%Y-%m-%d %H:%M %Z')}",
            timezone=data.timezone, rule=shown,
            times=[PreviewTime(utc=instant, local=local, dst_note=note or said_note,
                               send_at=None, skipped=None)])
    if kind == "interval":
        assert every is not None
        anchor = _anchor(anchor, data.timezone, now)
        description = description or (
            f"Every {spoken(every)} from {anchor.astimezone(zone):%a %Y-%m-%d %H:%M:%S %Z} "
            "(elapsed time, unaffected by DST)")
    else:
        assert expression is not None
        try:
            description = description or cron.describe(expression)
            cron.validate(expression)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="cron_expression") from exc
    policy = data.dst_policy
    rule = Rule(kind, data.timezone, expression, every, anchor, frozenset(data.exclude_dates),
                cron.DstPolicy(policy.gap, policy.repeat) if policy else cron.DEBIAN)
    slots = preview(rule, now, data.count, data.schedule_id or "", data.jitter)
    notes = _gap_notes(rule, now, len(slots))
    return PreviewResponse(
        description=description + _extras(data), timezone=data.timezone, rule=shown,
        times=[PreviewTime(utc=s.slot, local=s.local, dst_note=notes.get(s.slot),
                           send_at=s.send_at if data.jitter else None, skipped=s.skipped)
               for s in slots],
        dst_effects=_dst_effects(rule, now))


def _given_rule(data: PreviewRequest
                ) -> tuple[str, str | None, datetime | None, int | None, datetime | None]:
    """The kind of rule the request's fields give (when it has no text)."""
    given = [key for key in ("cron_expression", "run_at", "every")
             if getattr(data, key) not in (None, "")]
    if data.text is not None:
        if given or data.anchor is not None:
            raise InvalidInput("give text, or cron_expression, run_at or every, not both",
                               field="text")
        return "once", None, None, None, None  # replaced by what the text says
    if len(given) != 1:
        raise InvalidInput("give one of cron_expression, run_at or every (or text)",
                           field=given[1] if len(given) > 1 else "cron_expression")
    kind = {"cron_expression": "cron", "run_at": "once", "every": "interval"}[given[0]]
    if data.anchor is not None and kind != "interval":
        raise InvalidInput("anchor belongs to an interval rule (every)", field="anchor")
    return kind, data.cron_expression, data.run_at, data.every, data.anchor


def _anchor(anchor: datetime | None, zone: str, now: datetime) -> datetime:
    if anchor is None:
        return now.replace(microsecond=0)
    try:
        return cron.resolve_wall_time(anchor, zone)[0] if anchor.tzinfo is None else anchor
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(str(exc), field="anchor") from exc


def _gap_notes(rule: Rule, now: datetime, count: int) -> dict[datetime, str]:
    """Cron slots moved to the end of a DST gap, with the note saying so."""
    if rule.schedule_type != "cron" or rule.cron_expression is None or not count:
        return {}
    times = cron.preview(rule.cron_expression, rule.timezone, now, count, rule.dst)
    return {t.utc: t.dst_note for t in times if t.dst_note}


def _dst_effects(rule: Rule, now: datetime) -> list[str]:
    try:
        return dst_effects(rule, now)
    except (ValueError, OverflowError):
        return []  # near the end of the calendar: nothing to say


def _extras(data: PreviewRequest) -> str:
    """The description's tail: dates left out and jitter."""
    extras = []
    if data.exclude_dates:
        extras.append(_dates(data.exclude_dates))
    if data.jitter:
        extras.append(f"each sent up to {data.jitter} s after its slot (jitter)")
    return "".join(f"; {e}" for e in extras)


def _dates(dates: list[date]) -> str:
    listed = sorted(set(dates))
    names = ", ".join(d.isoformat() for d in listed[:3])
    more = f" and {len(listed) - 3} more" if len(listed) > 3 else ""
    return f"not on {names}{more}"
