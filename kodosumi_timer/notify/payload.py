"""The JSON body of a delivery: what happened, to which schedule and run, and where to
look at it in the panel."""

import json
from datetime import datetime
from typing import Any

from kodosumi_timer.store.tables import RunRow, ScheduleRow


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def body(event: str, schedule: ScheduleRow, run: RunRow | None, panel_url: str,
         now: datetime, source: str = "schedule") -> str:
    """The body as it is sent (and signed): compact JSON with sorted keys.
    ``notify_source``: the schedule's own notify ("schedule") or its owner's default."""
    base = panel_url.rstrip("/")
    fid = run.fid if run is not None else None
    data: dict[str, Any] = {
        "event": event,
        "schedule_id": schedule.id,
        "title": schedule.title or schedule.expose_name,
        "owner": schedule.owner,
        "flow_url": schedule.flow_url,
        "run_id": run.id if run is not None else None,
        "slot": _iso(run.slot) if run is not None else None,
        "trigger": run.trigger if run is not None else None,
        "status": run.status if run is not None else schedule.state,
        "reason": run.reason if run is not None else None,
        "fid": fid,
        "note": schedule.note if event == "paused" else None,
        "queued_at": _iso(now),
        "notify_source": source,
        "links": {
            "schedule": f"{base}/admin/schedule/{schedule.id}",
            "execution": f"{base}/admin/exec/{fid}" if fid else None,
        },
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
