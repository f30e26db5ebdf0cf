"""The week calendar beside the schedule list as template data: the viewer's zone from
the ``kodo_timer_tz`` cookie (set by the partial's script from the browser; UTC without
it), the days and their entries with labels and links."""

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from kodosumi_timer.panel.calendar_week import CalendarSchedule, viewer_zone, week

TZ_COOKIE = "kodo_timer_tz"
CALENDAR_LIMIT = 200  # active schedules read for the calendar, soonest first


def calendar_context(rows: Iterable[CalendarSchedule], cookie: str | None, now: datetime,
                     everyone: bool, more_schedules: bool = False,
                     state_of: Callable[[CalendarSchedule], str] | None = None
                     ) -> dict[str, Any]:
    """What ``schedule/_calendar.html`` shows; ``more_schedules``: there were more active
    schedules than the calendar read."""
    known = viewer_zone(cookie)
    zone = known or "UTC"
    shown = week(rows, zone, now, state_of)
    days = []
    for d in shown.days:
        more = ""
        if d.more:
            more = f"+{d.more}{'+' if d.more_capped else ''} more"
        days.append({
            "iso": d.day.isoformat(), "today": d.today,
            "weekday": d.day.strftime("%a"), "label": f"{d.day.day} {d.day.strftime('%b')}",
            "long": d.day.strftime("%A %d %B %Y"),
            "entries": [{"time": e.local.strftime("%H:%M"), "iso": e.at.isoformat(),
                         "href": f"/admin/schedule/{e.schedule_id}", "title": e.title,
                         "state": e.state, "schedule_id": e.schedule_id}
                        for e in d.entries],
            "more": more,
        })
    return {"zone": zone, "zone_known": known is not None, "days": days,
            "empty": shown.empty, "everyone": everyone, "more_schedules": more_schedules,
            "cookie": TZ_COOKIE}
