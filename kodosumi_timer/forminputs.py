"""A schedule's inputs checked against the agent's form, and written as its form posts them.

kodosumi's own HTML form posts every named field as a string (a number as typed, a date
as ``YYYY-MM-DD``), a checked box as ``"on"`` and an unchecked one not at all, a select
as the name of the chosen option; the browser refuses to send a form whose required
field is empty or whose number lies outside ``min``/``max`` or off its ``step``. The
agent's Serve app then builds the ``inputs`` it hands to the agent from the form's named
elements only: any other name is dropped, so an unknown name is a typo we refuse.

Pure: the form's ``elements`` (what GET on the flow's URL answers) and the inputs in,
the inputs as the form would post them out, or :class:`InvalidInput` naming
``inputs.<name>``. The attributes are read the way kodosumi 1.1 renders them: ``min``,
``max``, ``step``, ``pattern`` and lengths only when they are truthy.
"""

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from kodosumi_timer.errors import InvalidInput

Element = Mapping[str, Any]

TEXT_KINDS = frozenset({"text", "password", "textarea"})
# kinds without a value of their own: text, layout and buttons without a name
SILENT_KINDS = frozenset({"markdown", "html", "break", "hr", "errors", "submit", "cancel",
                          "option"})
CHECKED = frozenset({"on", "true"})
UNCHECKED = frozenset({"off", "false", ""})

# the HTML standard's "valid floating-point number", and its date and time strings
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?")


def normalise(elements: Sequence[Element], inputs: Mapping[str, Any]) -> dict[str, str]:
    """``inputs`` exactly as kodosumi's form for ``elements`` would post them.

    A name the form does not have, a required field left empty, or a value its field
    cannot hold is refused with an :class:`InvalidInput` whose field is
    ``inputs.<name>``. Fields not given get what the untouched form posts: their
    default, or the selected option; an unchecked box stays out."""
    named = [e for e in elements if _name(e) and e.get("type") not in SILENT_KINDS]
    known = {_name(e) for e in named}
    unknown = [name for name in inputs if name not in known]
    if unknown:
        offered = ", ".join(sorted(n for n in known if n)) or "none"
        raise InvalidInput(
            f"{_list('inputs.', unknown)} {'is' if len(unknown) == 1 else 'are'} not "
            f"{'an input' if len(unknown) == 1 else 'inputs'} of this agent's form "
            f"(its inputs: {offered})", field=f"inputs.{unknown[0]}")
    out: dict[str, str] = {}
    actions: dict[str, list[Element]] = {}
    for element in named:
        if element.get("type") == "action":
            actions.setdefault(_name(element), []).append(element)
            continue
        name = _name(element)
        value = _field(element, inputs.get(name), name in inputs)
        if value is None:
            if element.get("required"):
                raise InvalidInput(f"{_title(element)} is required", field=f"inputs.{name}")
            continue
        if value == "" and element.get("required"):
            raise InvalidInput(f"{_title(element)} is required", field=f"inputs.{name}")
        out[name] = value
    for name, buttons in actions.items():
        if name in inputs and inputs[name] is not None:
            out[name] = _action(buttons, inputs[name])
    return out


def _name(element: Element) -> str:
    name = element.get("name")
    return name if isinstance(name, str) else ""


def _title(element: Element) -> str:
    label = element.get("label")
    name = _name(element)
    return f"inputs.{name} ({label})" if label and label != name else f"inputs.{name}"


def _list(prefix: str, names: Sequence[str]) -> str:
    return ", ".join(prefix + name for name in names)


def _bad(element: Element, what: str) -> InvalidInput:
    return InvalidInput(f"{_title(element)}: {what}", field=f"inputs.{_name(element)}")


def _text_of(element: Element, value: Any) -> str:
    """A scalar as the text a user would have typed; anything else is refused."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(element, f"must be text, not {_json_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(element, f"{value} is not a number a form can send")
    return repr(value) if isinstance(value, float) else str(value)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _default(element: Element) -> str:
    # kodosumi renders a field's value only when it is truthy
    value = element.get("value")
    return str(value) if value else ""


def _field(element: Element, value: Any, given: bool) -> str | None:
    """The posted string of one field, None when the form would leave it out."""
    kind = element.get("type")
    if kind == "boolean":
        return _checkbox(element, value)
    if kind == "select":
        return _select(element, value if given else None)
    if kind == "file":
        if given and value not in (None, ""):
            raise _bad(element, "file inputs cannot be scheduled: a schedule keeps no files")
        if element.get("required"):
            raise _bad(element, "this agent requires a file, and a schedule keeps no files")
        return None
    check = _CHECKS.get(str(kind))
    if check is None:
        # a kind kodosumi 1.1 does not render: its form never posts it; pass what is given
        return _text_of(element, value) if given and value is not None else None
    if not given or value is None:
        value = _default(element)
    text = _text_of(element, value)
    return check(element, text) if text != "" else text


def _checkbox(element: Element, value: Any) -> str | None:
    if value is True or (isinstance(value, str) and value.lower() in CHECKED):
        return "on"
    if value is None or value is False or (isinstance(value, str)
                                           and value.lower() in UNCHECKED):
        return None
    raise _bad(element, f'a checkbox is "on" (checked) or left out (unchecked), not {value!r}')


def _select(element: Element, value: Any) -> str | None:
    names = [str(o.get("name")) for o in element.get("option") or []
             if isinstance(o, Mapping) and o.get("name") is not None]
    if value is None:
        # the untouched form posts the selected option, else the first one
        chosen = [str(o.get("name")) for o in element.get("option") or []
                  if isinstance(o, Mapping) and o.get("value") is True]
        if chosen:
            return chosen[0]
        if element.get("value") and str(element["value"]) in names:
            return str(element["value"])
        return names[0] if names else None
    text = _text_of(element, value)
    if text not in names:
        raise _bad(element, f"{text!r} is not one of its options ({', '.join(names) or 'none'})")
    return text


def _action(buttons: Sequence[Element], value: Any) -> str:
    text = _text_of(buttons[0], value)
    allowed = [str(b.get("value") or "") for b in buttons]
    if text not in allowed:
        raise _bad(buttons[0], f"{text!r} is not the value of one of its buttons "
                               f"({', '.join(repr(a) for a in allowed)})")
    return text


def _check_text(element: Element, text: str) -> str:
    kind = element.get("type")
    pattern = element.get("pattern")
    if pattern and kind != "textarea":
        try:
            compiled = re.compile(str(pattern))
        except re.error:
            compiled = None  # a browser-only regular expression: the agent checks it
        if compiled is not None and not compiled.fullmatch(text):
            raise _bad(element, f"{text!r} does not match the pattern {pattern}")
    longest = _count(element, "max_length")
    if longest and len(text) > longest:
        raise _bad(element, f"is longer than {longest} characters")
    shortest = _count(element, "min_length")
    if shortest and kind == "password" and len(text) < shortest:
        raise _bad(element, f"is shorter than {shortest} characters")
    return text


def _count(element: Element, key: str) -> int | None:
    value = element.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def _check_number(element: Element, text: str) -> str:
    text = text.strip()
    number = _decimal(text) if _NUMBER.fullmatch(text) else None
    if number is None:
        raise _bad(element, f"{text!r} is not a number")
    low = _decimal(element.get("min_value")) if element.get("min_value") else None
    high = _decimal(element.get("max_value")) if element.get("max_value") else None
    if low is not None and number < low:
        raise _bad(element, f"{text} is less than its minimum {element['min_value']}")
    if high is not None and number > high:
        raise _bad(element, f"{text} is more than its maximum {element['max_value']}")
    # the browser's step: 1 unless given; counted from min, else from the default value
    step = _decimal(element.get("step")) if element.get("step") else Decimal(1)
    base = low if low is not None else (_decimal(element.get("value")) or Decimal(0))
    try:
        off_step = step is not None and step > 0 and (number - base) % step != 0
    except InvalidOperation:  # too far off the base to tell: no form could send it
        raise _bad(element, f"{text} is out of range") from None
    if off_step and step is not None:
        below = base + ((number - base) / step).to_integral_value(ROUND_FLOOR) * step
        raise _bad(element, f"{text} is not a valid value here (steps of {step} from {base}; "
                            f"the nearest are {_plain(below)} and {_plain(below + step)})")
    return text


def _plain(number: Decimal) -> str:
    return format(number.normalize(), "f")


def _check_date(element: Element, text: str) -> str:
    text = text.strip()
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise _bad(element, f"{text!r} is not a date like 2027-01-31") from None
    _in_range(element, day, date.fromisoformat, "min_date", "max_date", text)
    return text


def _parse_time(text: str) -> time:
    match = _TIME.fullmatch(text)
    if not match:
        raise ValueError(text)
    hour, minute, second, fraction = match.groups()
    return time(int(hour), int(minute), int(second or 0),
                int((fraction or "0").ljust(3, "0")) * 1000)


def _wall(element: Element, moment: time) -> str:
    """The time as the browser posts it: to the minute unless the field has a step
    below a minute (the default step is 60 s, and seconds off it cannot be sent)."""
    if moment.second or moment.microsecond:
        step = _decimal(element.get("step")) if element.get("step") else Decimal(60)
        if step is None or step >= 60:
            raise _bad(element, "takes whole minutes only (no seconds)")
        return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return moment.strftime("%H:%M")


def _check_time(element: Element, text: str) -> str:
    text = text.strip()
    try:
        moment = _parse_time(text)
    except ValueError:
        raise _bad(element, f"{text!r} is not a time like 09:30") from None
    _in_range(element, moment, _parse_time, "min_time", "max_time", text)
    return _wall(element, moment)


def _parse_local(text: str) -> datetime:
    day, _, clock = text.replace(" ", "T", 1).partition("T")
    if not _DATE.fullmatch(day):
        raise ValueError(text)
    return datetime.combine(date.fromisoformat(day), _parse_time(clock))


def _check_local(element: Element, text: str) -> str:
    text = text.strip()
    try:
        moment = _parse_local(text)
    except ValueError:
        raise _bad(element, f"{text!r} is not a date and time like 2027-01-31T09:30") \
            from None
    _in_range(element, moment, _parse_local, "min_datetime", "max_datetime", text)
    return f"{moment.date().isoformat()}T{_wall(element, moment.time())}"


def _in_range(element: Element, value: Any, parse: Callable[[str], Any], low_key: str,
              high_key: str, text: str) -> None:
    for key, earliest in ((low_key, True), (high_key, False)):
        raw = element.get(key)
        if not raw:
            continue
        try:
            bound = parse(str(raw))
        except ValueError:
            continue  # a bound the agent wrote in another form: the agent checks it
        if value < bound if earliest else value > bound:
            where = "before the earliest" if earliest else "after the latest"
            raise _bad(element, f"{text} is {where} allowed, {raw}")


_CHECKS: dict[str, Callable[[Element, str], str]] = {
    "text": _check_text, "password": _check_text, "textarea": _check_text,
    "number": _check_number, "date": _check_date, "time": _check_time,
    "datetime-local": _check_local,
}
