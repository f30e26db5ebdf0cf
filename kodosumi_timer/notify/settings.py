"""A schedule's ``notify`` as the API reads and shows it."""

from collections.abc import Sequence
from typing import Any

from kodosumi_timer.errors import InvalidInput
from kodosumi_timer.models import NotifyResponse, NotifySettings
from kodosumi_timer.notify import events, guard, signing
from kodosumi_timer.store.tables import ScheduleRow

OFF: dict[str, Any] = {"notify_url": None, "notify_events": None, "notify_secret": None}


def view(row: ScheduleRow, with_secret: bool = False) -> NotifyResponse | None:
    if not row.notify_url:
        return None
    return NotifyResponse(url=row.notify_url, events=events.decode(row.notify_events),
                          secret=row.notify_secret if with_secret else None)


def values(row: ScheduleRow | None, given: NotifySettings | None,
           allow: Sequence[str]) -> dict[str, Any]:
    """The schedule columns ``given`` changes (``row`` None: a new schedule); ``{}`` when
    nothing changes. Members left out keep their value (or take the default); ``null``
    turns notifications off. A new secret only when notifications are turned on."""
    current = row if row is not None and row.notify_url else None
    on = current is not None
    if given is None:
        return dict(OFF) if on else {}
    current_url = current.notify_url if current is not None else None
    if given.secret is not None and (current is None or given.secret != current.notify_secret):
        raise InvalidInput("notify.secret is read-only: it is generated, and POST "
                           "/schedule/{id}/notify/rotate makes a new one", field="notify.secret")
    url = given.url if given.url is not None else current_url
    if url is None:
        raise InvalidInput("notify.url is required to turn notifications on",
                           field="notify.url")
    if url != current_url:
        refusal = guard.literal_refusal(url, allow)
        if refusal:
            raise InvalidInput(f"notify.url {refusal}", field="notify.url")
    wanted = given.events if given.events is not None else (
        events.decode(current.notify_events) if current is not None else events.DEFAULT_EVENTS)
    out: dict[str, Any] = {}
    if url != current_url:
        out["notify_url"] = url
    stored = events.encode(wanted)
    if current is None or stored != current.notify_events:
        out["notify_events"] = stored
    if not on:
        out["notify_secret"] = signing.new_secret()
    return out
