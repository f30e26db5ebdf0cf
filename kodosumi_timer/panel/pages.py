"""Pages under ``/admin/schedule`` in kodosumi's look (extending its ``_frame.html``).

The handlers only read: the list and the detail page are rendered from the store,
the forms and every action (create, edit, pause, resume, run now, delete, the live
preview) talk to the JSON API under ``/schedule`` from the browser, so validation and
error messages have exactly one source.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Template
from markupsafe import Markup

from kodosumi_timer import cron
from kodosumi_timer.bridge import rendered
from kodosumi_timer.errors import TimerError
from kodosumi_timer.models import PreviewRequest, PreviewTime, ScheduleResponse
from kodosumi_timer.notify import events as notify_events
from kodosumi_timer.panel.calendar_view import CALENDAR_LIMIT, TZ_COOKIE, calendar_context
from kodosumi_timer.panel.services import PanelServices, caller, inputs_problem, services_from
from kodosumi_timer.panel.settings_words import OVERLAP_WORDS, interval_words, settings_in_words
from kodosumi_timer.previews import rule_preview
from kodosumi_timer.rules import parse_every
from kodosumi_timer.runs import PENDING, RunStatus
from kodosumi_timer.schedules import canonical_flow_url, to_response
from kodosumi_timer.store import ScheduleRow
from kodosumi_timer.store.repository import ScheduleFilter

PAGE_SIZE = 50
SYSTEM_LIMIT = 100
CHANGES_SHOWN = 20  # the newest entries of the change log on the detail page
SHOW = ("all", "active", "paused", "done")
# run statuses that mean "the last execution went wrong": the list marks these as failing
FAILING = frozenset({RunStatus.ERROR, RunStatus.FAILED, RunStatus.REJECTED, RunStatus.UNKNOWN,
                     RunStatus.TIMED_OUT})


@dataclass(frozen=True)
class Viewer:
    role_id: str
    operator: bool


async def _viewer(request: Request[Any, Any, Any], services: PanelServices) -> Viewer:
    me = caller(request)
    return Viewer(me, await services.roles.is_operator(me))


def rule_in_words(row: ScheduleRow | ScheduleResponse) -> str:
    """"At 09:00, Monday through Friday" or "Once, on Fri 27 Nov 2026 at 09:00 CET"."""
    if row.schedule_type == "cron" and row.cron_expression:
        try:
            return cron.describe(row.cron_expression)
        except ValueError:
            return row.cron_expression
    if row.schedule_type == "interval":
        return interval_words(row if isinstance(row, ScheduleResponse) else to_response(row))
    if row.run_at is None:
        return "Once"
    local = row.run_at.astimezone(cron.parse_zone(row.timezone))
    return f"Once, on {local.strftime('%a %d %b %Y')} at {local.strftime('%H:%M %Z')}"


@dataclass(frozen=True)
class Display:
    """How a schedule's status is shown: its state and what its last run did."""

    key: str    # the CSS class and data-state: active, paused, failing, done, failed,
                # missed, running, ended
    icon: str   # a Material Symbols name
    label: str  # short, in the pill
    title: str  # the whole truth, for the icon's label and tooltip


# what a schedule's last run did, as the end of "its last run ..."
LAST_RUN = {
    "finished": "finished", "error": "ended in error",
    "failed": "could not be launched", "rejected": "was refused by the agent (its inputs)",
    "unknown": "may or may not have started (kodosumi could not tell)",
    "missed": "was missed", "skipped": "was skipped: the one before was still going",
    "queued": "is waiting to start", "launching": "is starting",
    "launched": "has started", "running": "is still going",
    "timed_out": "ran past its timeout and was ended",
    "buffered": "waits for the run before to end",
    "replaced": "was ended for the next run (overlap: replace)",
}
NOT_RUN = frozenset({RunStatus.MISSED, RunStatus.SKIPPED})


def display_state(row: ScheduleRow | ScheduleResponse) -> Display:
    """The status icon and label: the state, told apart by what the last run did (a
    schedule that is done because its only run failed is not shown as a success)."""
    last = row.last_status
    if row.state == "paused":
        return Display("paused", "pause_circle", "Paused", "Paused")
    if row.state == "active":
        if last in FAILING:
            return Display("failing", "error", "Failing",
                           f"Failing: its last run {LAST_RUN.get(last, last)}")
        return Display("active", "schedule", "Active", "Active")
    if last is None:
        return Display("ended", "event_busy", "Ended", "Ended without running")
    told = f"its last run {LAST_RUN.get(last, last)}"
    if last == "finished":
        return Display("done", "task_alt", "Done", f"Done: {told}")
    if last in PENDING or last == RunStatus.BUFFERED:
        return Display("running", "autorenew", "Running", f"Done firing; {told}")
    if last in NOT_RUN:
        return Display("missed", "history_toggle_off", last.capitalize(), f"Ended: {told}")
    return Display("failed", "cancel", "Failed", f"Ended: {told}")


def _moment(when: datetime, zone: str) -> Markup:
    """A <time> the pages' script shows in the schedule's zone and, if it differs, in
    the viewer's; without the script, in UTC."""
    return Markup('<time data-fmt="both" data-zone="{}" datetime="{}">{}</time>').format(
        zone, when.isoformat(), when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))


def what_happened(row: ScheduleRow | ScheduleResponse) -> tuple[Markup, bool] | None:
    """The schedule's note as a sentence about what happened, and whether it is a
    problem to act on. The timer notes "ran once" when it claims the slot, before the
    run's outcome is known: for a once schedule the last run tells the story."""
    note = row.note
    last = row.last_status
    if note and note.startswith("paused by the timer"):
        return Markup.escape(note[0].upper() + note[1:] + "."), True
    if row.state != "done":
        return (Markup.escape(note), False) if note else None
    problem = last in FAILING
    # a missed or skipped slot leaves last_run empty: a once schedule's slot is its run_at
    when = row.last_run or (row.run_at if row.schedule_type == "once" else None)
    at = _moment(when, row.timezone) if when else Markup("its time")
    if row.schedule_type == "once":
        sentences = {
            None: Markup("Ended without running."),
            "finished": Markup("Ran once, at {}: the run finished.").format(at),
            "error": Markup("Ran once, at {}: the run ended in error.").format(at),
            "failed": Markup("Did not run: the launch at {} failed.").format(at),
            "rejected": Markup("Did not run: at {} the agent refused the inputs.").format(at),
            "unknown": Markup("Fired at {}, but whether the run started is unknown.").format(at),
            "missed": Markup("Did not run: its time, {}, was missed.").format(at)
            if when else Markup("Did not run: its time was missed."),
            "skipped": Markup("Did not run at {}: the run before was still going.").format(at),
        }
        if last in sentences:
            return sentences[last], problem
        return Markup("Fired at {}; {}.").format(at, LAST_RUN.get(str(last), str(last))), False
    ended = Markup("Ended: {}.").format(note) if note else Markup("Ended.")
    if last is None:
        return ended + Markup(" It never ran."), False
    return ended + Markup(" Its last run, at {}, {}.").format(
        at, LAST_RUN.get(last, last)), problem


def duration(seconds: int) -> str:
    """60 → "1 minute", 90 → "90 seconds", 7200 → "2 hours": the largest exact unit."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _offset(moment: datetime) -> str:
    delta = moment.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def upcoming_slots(data: ScheduleResponse, now: datetime,
                   count: int = 5) -> tuple[list[dict[str, Any]], list[str]]:
    """The next slots of a repeating schedule as the API's preview tells them (skipped
    dates, send times under jitter, DST notes and clock changes) and what each DST choice
    does at the zone's next transitions."""
    if data.state != "active" or data.schedule_type == "once":
        return [], []
    policy = data.dst_policy
    request = PreviewRequest(
        cron_expression=data.cron_expression if data.schedule_type == "cron" else None,
        run_at=None, text=None,
        every=parse_every(data.every) if data.every else None,
        anchor=data.anchor if data.schedule_type == "interval" else None,
        timezone=data.timezone, exclude_dates=data.exclude_dates,
        dst_policy=policy if policy.gap or policy.repeat else None,
        jitter=data.jitter or None, schedule_id=data.id, count=count)
    try:
        preview = rule_preview(request, now)
    except (TimerError, ValueError):
        return [], []
    return _marked(preview.times, data.timezone, now), preview.dst_effects


def _marked(times: Sequence[PreviewTime], zone: str, now: datetime) -> list[dict[str, Any]]:
    """The slots with the DST shifts marked: a moved wall time (the API's note) and a
    change of the zone's UTC offset since the slot before (or since now)."""
    previous = _offset(now.astimezone(cron.parse_zone(zone)))
    out = []
    for t in times:
        offset = _offset(t.local)
        shift = f"clock change: {previous} → {offset}" if offset != previous else None
        out.append({"utc": t.utc, "local": t.local, "note": t.dst_note, "shift": shift,
                    "send_at": t.send_at, "skipped": t.skipped})
        previous = offset
    return out


def _item(row: ScheduleRow, owners: dict[str, str]) -> dict[str, Any]:
    data = to_response(row)
    return {"s": data, "rule": rule_in_words(row), "display": display_state(row),
            "story": what_happened(row), "owner_name": owners.get(row.owner, row.owner)}


def _url(show: str = "all", q: str | None = None, everyone: bool = False,
         page: int = 1) -> str:
    """The list's URL with only the parameters that differ from the defaults."""
    query: dict[str, str] = {}
    if show != "all":
        query["show"] = show
    if q:
        query["q"] = q
    if everyone:
        query["everyone"] = "true"
    if page > 1:
        query["page"] = str(page)
    return "/admin/schedule/" + (f"?{urlencode(query)}" if query else "")


def _may_see(row: ScheduleRow, viewer: Viewer) -> bool:
    # the same rule as the API: owner, operator, or a system schedule (404 otherwise)
    return row.owner == viewer.role_id or row.system or viewer.operator


class SchedulePages(Controller):
    include_in_schema = False

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], state: State,
                        show: str = "all", q: str | None = None,
                        everyone: bool = False, page: int = 1) -> Template:
        services = services_from(state)
        viewer = await _viewer(request, services)
        # the failed runs the navigation counts are seen from now on
        await services.store.mark_seen(viewer.role_id, services.clock())
        show = show if show in SHOW else "all"
        everyone = everyone and viewer.operator
        text = (q or "").strip()[:200] or None
        page = max(page, 1)
        owner = None if everyone else viewer.role_id
        counts = {}
        for name in SHOW:
            flt = ScheduleFilter(text=text, system=False,
                                 state=None if name == "all" else name)
            counts[name] = (await services.store.list_schedules(owner, 1, 0, flt))[1]
        flt = ScheduleFilter(text=text, system=False, state=None if show == "all" else show)
        rows, total = await services.store.list_schedules(
            owner, PAGE_SIZE, (page - 1) * PAGE_SIZE, flt)
        system_rows, system_total = await services.store.list_schedules(
            None, SYSTEM_LIMIT, 0, ScheduleFilter(
                text=text, system=True, state=None if show == "all" else show))
        owners = await services.roles.names(r.owner for r in rows) if everyone else {}
        pages = max(1, -(-total // PAGE_SIZE))
        # the week calendar: the active schedules of whoever the list shows (not its search)
        coming, coming_total = await services.store.list_schedules(
            owner, CALENDAR_LIMIT, 0, ScheduleFilter(system=False, state="active"))
        calendar = calendar_context(coming, request.cookies.get(TZ_COOKIE), services.clock(),
                                    everyone, coming_total > len(coming),
                                    lambda r: display_state(r).key)  # type: ignore[arg-type]
        return Template("schedule/list.html", context={
            "items": [_item(r, owners) for r in rows],
            "system_items": [_item(r, {}) for r in system_rows],
            "system_total": system_total,
            "total": total, "counts": counts, "show": show, "q": text or "",
            "everyone": everyone, "operator": viewer.operator,
            "page": page, "pages": pages,
            "filter_url": {name: _url(show=name, q=text, everyone=everyone) for name in SHOW},
            "everyone_url": _url(show=show, q=text, everyone=not everyone),
            "prev_url": _url(show=show, q=text, everyone=everyone, page=page - 1)
            if page > 1 else None,
            "next_url": _url(show=show, q=text, everyone=everyone, page=page + 1)
            if page < pages else None,
            "searching": bool(text) or show != "all", "calendar": calendar,
        })

    @get("/new")
    async def new_page(self, request: Request[Any, Any, Any], state: State,
                       flow: str | None = None) -> Template:
        viewer = await _viewer(request, services_from(state))
        return Template("schedule/form.html", context={
            "mode": "new", "schedule": None, "flow": flow or "", "operator": viewer.operator})

    @get("/agent-form")
    async def agent_form(self, request: Request[Any, Any, Any], state: State,
                         flow: str) -> Response[Any]:
        """The agent's input form for the schedule form, read as the viewer, with its
        Markdown rendered by kodosumi's own renderer (as kodosumi's form shows it)."""
        services = services_from(state)
        try:
            elements = await services.flows.form(canonical_flow_url(flow), caller(request))
        except TimerError as exc:
            return Response({"error": exc.code, "detail": exc.detail, "field": exc.field},
                            status_code=exc.status)
        return Response({"elements": [rendered(e) for e in elements]})

    @get("/{schedule_id:str}")
    async def detail_page(self, request: Request[Any, Any, Any], state: State,
                          schedule_id: FromPath[str]) -> Template:
        services = services_from(state)
        viewer = await _viewer(request, services)
        row = await services.store.get_schedule(schedule_id)
        if row is None or not _may_see(row, viewer):
            return _missing(schedule_id)
        data = to_response(row)
        changes, changes_total = await services.store.changes(row.id, CHANGES_SHOWN)
        owners = await services.roles.names([row.owner, *(c.actor for c in changes)])
        upcoming, dst_effects = upcoming_slots(data, services.clock())
        mine = row.owner == viewer.role_id
        window = duration(row.catchup_window)
        # no notify of its own: its owner's default, if any (issue 12)
        default = None if row.notify_url or row.system else \
            await services.store.notify_default(row.owner)
        return Template("schedule/detail.html", context={
            "s": data, "json": data.model_dump(mode="json"), "rule": rule_in_words(data),
            "display": display_state(row), "story": what_happened(row), "upcoming": upcoming,
            "overlap": OVERLAP_WORDS.get(data.overlap, data.overlap),
            "dst_effects": dst_effects, "settings": settings_in_words(data),
            "owner_name": owners.get(row.owner, row.owner), "mine": mine, "window": window,
            # the API's rules: system schedules are changed in their file, never here;
            # pause/resume/run now on them is for operators
            "can_edit": not row.system,
            "can_act": not row.system or viewer.operator,
            # the trigger URL runs the schedule as its owner: only they make it (operators
            # for system schedules)
            "can_hook": operator_or_owner(row, viewer),
            "operator": viewer.operator,
            "changes": changes, "changes_total": changes_total, "names": owners,
            # the agent's form may have changed since the inputs were saved
            "inputs_problem": await inputs_problem(services, row),
            "default_notify": default,
            "default_notify_events": notify_events.decode(default.notify_events)
            if default else [],
        })

    @get("/{schedule_id:str}/edit")
    async def edit_page(self, request: Request[Any, Any, Any], state: State,
                        schedule_id: FromPath[str]) -> Template:
        services = services_from(state)
        viewer = await _viewer(request, services)
        row = await services.store.get_schedule(schedule_id)
        if row is None or not _may_see(row, viewer):
            return _missing(schedule_id)
        if row.system:
            return Template("schedule/missing.html", status_code=409, context={
                "title": "System schedules are read-only here",
                "message": "This schedule is declared in the schedules file or by its agent; "
                           "change it there.", "schedule_id": schedule_id})
        return Template("schedule/form.html", context={
            "mode": "edit", "schedule": to_response(row).model_dump(mode="json"),
            "flow": row.flow_url, "operator": viewer.operator})


def operator_or_owner(row: ScheduleRow, viewer: Viewer) -> bool:
    return viewer.operator if row.system else row.owner == viewer.role_id


def _missing(schedule_id: str) -> Template:
    return Template("schedule/missing.html", status_code=404, context={
        "title": "Schedule not found",
        "message": "There is no schedule with this id among the ones you can see. "
                   "It may have been deleted.", "schedule_id": schedule_id})
