"""``GET /admin/schedule/timer``: the operators' Timer page (issue 12, point 4).

Is the timer up (the figures ``/metrics`` and ``koco-timer status --json`` show), how
late its launches were and how runs ended in the last day, what waits now, and the
coming load per minute for the next 24 hours with the schedules and users behind its
busiest minutes. Charts are server-side SVG (:mod:`.charts`); operators only.
"""

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.response import Template
from markupsafe import Markup

from kodosumi_timer import __version__
from kodosumi_timer.load import CAP, WINDOW, ComingLoad, coming_load
from kodosumi_timer.metrics import LATENESS_BOUNDS, Histogram, facts
from kodosumi_timer.panel.charts import Bar, column_chart, minute_chart, row_chart
from kodosumi_timer.panel.metrics import TIMER_META_KEY, TimerMeta, ray_timer_meta
from kodosumi_timer.panel.services import caller, services_from
from kodosumi_timer.runs import FAILING, RunStatus
from kodosumi_timer.store.insights import (
    LATENESS_LIMIT,
    SCAN_ROWS,
    load_schedules,
    run_figures,
    waiting,
)

# the order statuses are shown in: how runs end, then what is still under way
STATUS_ORDER = [s.value for s in (
    RunStatus.FINISHED, RunStatus.ERROR, RunStatus.FAILED, RunStatus.REJECTED,
    RunStatus.TIMED_OUT, RunStatus.UNKNOWN, RunStatus.MISSED, RunStatus.SKIPPED,
    RunStatus.REPLACED, RunStatus.QUEUED, RunStatus.BUFFERED, RunStatus.LAUNCHING,
    RunStatus.LAUNCHED, RunStatus.RUNNING)]
BAD = frozenset({*FAILING, RunStatus.UNKNOWN, RunStatus.MISSED})


def age_words(seconds: float | None) -> str:
    """3.2 → "3 seconds ago", 150 → "2 minutes ago", 7300 → "2 hours ago"."""
    if seconds is None:
        return "never"
    s = int(seconds)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if s >= size or size == 1:
            n = s // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    raise AssertionError("unreachable")


def _bound(seconds: float) -> str:
    # compact: 14 of them sit side by side under the chart
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def lateness_bars(values: Sequence[float]) -> list[Bar]:
    """The launches counted in the /metrics buckets (each bucket its own, not cumulative)."""
    histogram = Histogram(LATENESS_BOUNDS)
    for v in values:
        histogram.observe(v)
    labels = [f"≤{_bound(b)}" for b in LATENESS_BOUNDS] + [f">{_bound(LATENESS_BOUNDS[-1])}"]
    return [Bar(label, n, bad=i >= len(LATENESS_BOUNDS) - 1)
            for i, (label, n) in enumerate(zip(labels, histogram.counts, strict=True))]


def outcome_bars(outcomes: dict[str, int]) -> list[Bar]:
    known = [s for s in STATUS_ORDER if outcomes.get(s)]
    other = sorted(s for s in outcomes if s not in STATUS_ORDER and outcomes[s])
    return [Bar(s.replace("_", " "), outcomes[s], bad=s in BAD) for s in known + other]


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load_chart(load: ComingLoad) -> Markup:
    ticks = []
    for i in range(len(load.counts) - 30):  # none near the right edge: its label is cut
        at = load.start + timedelta(minutes=i)
        if at.minute == 0 and at.hour % 3 == 0:
            ticks.append((i, at.strftime("%H:%M")))
    peak = max(load.counts, default=0)
    return minute_chart(
        load.counts, ticks, marks=[int((b.at - load.start).total_seconds() // 60)
                                   for b in load.busiest],
        title="Slots per minute, next 24 hours (UTC)",
        desc=f"{load.total} slots of {load.schedules} schedules from "
             f"{load.start:%Y-%m-%d %H:%M} UTC; the busiest minute has {peak}.")


def _forbidden() -> Template:
    return Template("schedule/missing.html", status_code=403, context={
        "title": "Operators only",
        "message": "The Timer page shows every user's load; it is for operators.",
        "schedule_id": ""})


@get("/timer", include_in_schema=False)
async def timer_page(request: Request[Any, Any, Any], state: State) -> Template:
    services = services_from(state)
    if not await services.roles.is_operator(caller(request)):
        return _forbidden()
    now: datetime = services.clock()
    read_meta: TimerMeta = request.app.state.get(TIMER_META_KEY, ray_timer_meta)
    timer = facts(await read_meta(), None, now, __version__)["timer"]
    runs = await run_figures(services.store, now)
    waits = await waiting(services.store, now)
    schedules, more = await load_schedules(services.store, now + WINDOW)
    # CPU work of up to ~1 s on 10,000 schedules: keep the event loop free meanwhile
    load = await asyncio.to_thread(coming_load, schedules, now)
    names = await services.roles.names(
        {s.owner for b in load.busiest for s, _ in b.schedules})
    lateness = lateness_bars(runs.lateness)
    outcomes = outcome_bars(runs.outcomes)
    return Template("schedule/timer.html", context={
        "timer": timer, "heartbeat": age_words(timer.get("heartbeat_age_seconds")),
        "now": now, "runs": runs, "waiting": waits, "load": load, "names": names,
        "schedules_left_out": more, "cap": CAP, "lateness_limit": LATENESS_LIMIT,
        "scan_rows": SCAN_ROWS, "lateness": lateness, "outcomes": outcomes,
        "p50": _percentile(runs.lateness, 0.5), "p99": _percentile(runs.lateness, 0.99),
        "lateness_svg": column_chart(
            lateness, title="Lateness of launches, last 24 hours",
            desc=f"{len(runs.lateness)} launches by how late they were sent: "
                 + ", ".join(f"{b.label}: {b.value}" for b in lateness if b.value)),
        "outcomes_svg": row_chart(
            outcomes, title="Runs by status, last 24 hours",
            desc=", ".join(f"{b.label}: {b.value}" for b in outcomes) or "no runs"),
        "load_svg": load_chart(load),
    })
