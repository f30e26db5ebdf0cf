"""Small builders and fakes for unit tests of our own logic (never a stand-in for kodosumi
in an integration test)."""

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from kodosumi_timer.bridge import LaunchOutcome, NoAnswerInTime, Reconciled, Unanswered
from kodosumi_timer.store.repository import new_id
from kodosumi_timer.store.tables import ScheduleRow

T0 = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
FLOW = "/-/127.0.0.1/8001/quick/-/"


def schedule(owner: str = "owner-a", next_run: datetime | None = T0, **over: Any) -> ScheduleRow:
    values: dict[str, Any] = dict(
        id=new_id(), owner=owner, system=False, expose_name="Quick", flow_url=FLOW,
        title=None, schedule_type="once", cron_expression=None, run_at=next_run,
        timezone="UTC", inputs={"text": "hi"}, state="active", catchup="once",
        overlap="skip", end_at=None, max_runs=None, run_count=0, next_run=next_run,
        version=1, created=T0 - timedelta(hours=1), updated=T0 - timedelta(hours=1))
    values.update(over)
    return ScheduleRow(**values)


# the fake flows' input form (GET on a flow's URL answers its ``elements``)
FORM: list[dict[str, Any]] = [
    {"type": "markdown", "text": "# Quick demo"},
    {"type": "text", "name": "text", "label": "Text", "required": False, "value": None},
    {"type": "number", "name": "n", "label": "N", "required": False, "value": None},
    {"type": "text", "name": "message", "label": "Message", "required": False, "value": None},
]


class FakeFlows:
    def __init__(self, *urls: str, form: list[dict[str, Any]] | None = None):
        self.urls = set(urls or [FLOW])
        self.elements = FORM if form is None else form
        self.form_calls: list[tuple[str, str]] = []

    async def find(self, flow_url: str):  # type: ignore[no-untyped-def]
        from kodosumi_timer.schedules import FlowInfo

        return FlowInfo(flow_url, "Quick demo") if flow_url in self.urls else None

    async def form(self, flow_url: str, owner: str) -> list[dict[str, Any]]:
        self.form_calls.append((flow_url, owner))
        return [dict(e) for e in self.elements]


class Clock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeLauncher:
    """Records launches; answers from a script of outcomes (default: launched), and
    from a script of reconcile answers (default: kodosumi shows none)."""

    def __init__(self, *outcomes: LaunchOutcome, found: tuple[Reconciled, ...] = (),
                 clock: Clock | None = None):
        self.outcomes = list(outcomes)
        self.clock = clock
        self.sent_at: list[datetime] = []  # the clock's time of each launch (with a clock)
        self.found = list(found)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.markers: list[str] = []
        self.asked: list[str] = []  # markers find_launch was asked about
        self.excluded: list[set[str]] = []  # the fids it was told are other runs'
        self.statuses: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.status_calls = 0
        self.polled: list[str] = []  # fids asked for, in order
        self.unanswered = False  # status, end: kodosumi cannot be asked
        self.hung: set[str] = set()  # fids whose status request is never answered
        self.ended: list[str] = []  # fids ended through kodosumi

    async def launch(self, flow_url: str, owner: str, inputs: dict[str, Any], *,
                     marker: str) -> LaunchOutcome:
        self.calls.append((flow_url, owner, inputs))
        self.markers.append(marker)
        if self.clock is not None:
            self.sent_at.append(self.clock())
        if self.outcomes:
            return self.outcomes.pop(0)
        return LaunchOutcome("launched", fid=f"fid-{len(self.calls)}")

    async def find_launch(self, flow_url: str, owner: str, inputs: dict[str, Any], *,
                          marker: str, sent_at: datetime,
                          exclude: Collection[str] = ()) -> Reconciled:
        self.asked.append(marker)
        self.excluded.append(set(exclude))
        if self.found:
            return self.found.pop(0)
        return Reconciled("absent")

    async def status(self, fid: str, owner: str) -> str | None:
        self.status_calls += 1
        self.polled.append(fid)
        if fid in self.hung:
            raise NoAnswerInTime("no answer within 30 s")
        if self.unanswered:
            raise Unanswered("ServerDisconnectedError")
        return self.statuses.get(fid)

    async def error_reason(self, fid: str, owner: str) -> str | None:
        return self.errors.get(fid)

    async def end(self, fid: str, owner: str) -> None:
        if self.unanswered:
            raise Unanswered("ServerDisconnectedError")
        self.ended.append(fid)
        self.statuses[fid] = "error"  # kodosumi: killed

    async def close(self) -> None:
        pass


class FakeRoles:
    def __init__(self, operators: tuple[str, ...] = (), **states: str):
        self.states = states
        self.operators = set(operators)

    async def owner_state(self, owner: str) -> str:
        return self.states.get(owner, "active")

    async def owner_states(self, owners) -> dict[str, str]:  # type: ignore[no-untyped-def]
        return {owner: self.states.get(owner, "active") for owner in owners}

    async def is_operator(self, owner: str) -> bool:
        return owner in self.operators

    async def names(self, owners) -> dict[str, str]:  # type: ignore[no-untyped-def]
        return {owner: f"name of {owner}" for owner in owners}

    async def close(self) -> None:
        pass


def composed_app(directory: Any, roles: Any = None, clock: Any = None,
                 flows: Any = None) -> Any:
    """The real composed panel (kodosumi's app with our routers, error handlers and
    OpenAPI), without Ray: kodosumi's startup would join a cluster, so it and our own
    services hook are replaced by a SQLite store in ``directory`` and fakes."""
    from kodosumi.service import app as kodosumi_app

    from kodosumi_timer.config import TimerSettings
    from kodosumi_timer.panel.app import create_app
    from kodosumi_timer.panel.services import STATE_KEY, PanelServices
    from kodosumi_timer.store import open_store

    app = create_app(ADMIN_DATABASE=f"sqlite+aiosqlite:///{directory}/admin.db",
                     EXEC_DIR=f"{directory}/execution", APP_LOG_FILE=f"{directory}/app.log",
                     SPOOLER_LOG_FILE=f"{directory}/spooler.log",
                     YAML_BASE=f"{directory}/config/config.yaml",
                     UPLOAD_DIR=f"{directory}/uploads")

    async def open_services(app: Any) -> None:
        # opened inside the app's own event loop
        store = await open_store(f"sqlite+aiosqlite:///{directory}/schedule.db")
        app.state[STATE_KEY] = PanelServices(
            store=store, flows=flows or FakeFlows(), wake=lambda: None, clock=clock or Clock(T0),
            settings=TimerSettings(), roles=roles or FakeRoles())

    app.on_startup[:] = [hook for hook in app.on_startup
                         if hook is not kodosumi_app.startup
                         and hook.__name__ != "open_services"]
    app.on_startup.append(open_services)
    return app
