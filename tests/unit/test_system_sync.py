"""System schedules synced into the store (SQLite and PostgreSQL): add, change, remove,
a broken file keeps the current set, operators' pauses stay, user schedules untouched."""

import asyncio
import textwrap
from datetime import timedelta

import pytest
from kodosumi.core import forms as F

from kodosumi_timer.errors import FlowUnavailable
from kodosumi_timer.store.repository import ScheduleFilter
from kodosumi_timer.store.tables import ChangeRow
from kodosumi_timer.system import (
    UNFIT_NOTE,
    Discovered,
    SystemEntry,
    SystemSchedules,
    status_lines,
    sync,
)
from kodosumi_timer.timer import Timer, TimerConfig
from tests.unit.factories import T0, Clock, FakeLauncher, FakeRoles, schedule

QUICK = "/-/127.0.0.1/8001/quick/-/"
SLOW = "/-/127.0.0.1/8001/slow/-/"
BEAT = "/-/127.0.0.1/8001/heartbeat/-/"
TIMER_USER = "timer"


async def system_rows(store):
    rows, _ = await store.list_schedules(None, limit=100, filters=ScheduleFilter(system=True))
    return {row.flow_url: row for row in rows}


def entry(flow=QUICK, cron="0 9 * * *", **over):
    return SystemEntry(flow=flow, cron=cron, **over)


# ---- sync ---------------------------------------------------------------------------


async def test_sync_adds_changes_and_removes(store):
    user = await store.add_schedule(schedule(owner="alice", flow_url=QUICK))
    report = await sync(store, [entry(inputs={"message": "hi"}, title="Morning"),
                                entry(SLOW, "*/5 * * * *", timezone="Europe/Berlin")],
                        T0, TIMER_USER)
    assert sorted(report.added) == [QUICK, SLOW]
    rows = await system_rows(store)
    quick = rows[QUICK]
    assert quick.system and quick.owner == TIMER_USER and quick.system_source == "file"
    assert quick.schedule_type == "cron" and quick.state == "active"
    assert quick.next_run == T0 + timedelta(hours=1)  # 09:00 UTC after 08:00
    assert quick.inputs == {"message": "hi"} and quick.title == "Morning"
    assert (quick.catchup, quick.overlap) == ("once", "skip")  # the binding defaults
    assert rows[SLOW].next_run == T0 + timedelta(minutes=5)

    # unchanged: nothing written
    again = await sync(store, [entry(inputs={"message": "hi"}, title="Morning"),
                               entry(SLOW, "*/5 * * * *", timezone="Europe/Berlin")],
                       T0, TIMER_USER)
    assert not again.changed
    assert (await store.get_schedule(quick.id)).version == 1

    # timing changed: next slot recomputed from now; inputs only: next slot kept
    later = T0 + timedelta(minutes=2)
    report = await sync(store, [entry(cron="30 8 * * *", inputs={"message": "hi"},
                                      title="Morning"),
                                entry(SLOW, "*/5 * * * *", timezone="Europe/Berlin",
                                      inputs={"seconds": 1})], later, TIMER_USER)
    assert sorted(report.updated) == [QUICK, SLOW]
    rows = await system_rows(store)
    assert rows[QUICK].next_run == T0 + timedelta(minutes=30)
    assert rows[QUICK].id == quick.id and rows[QUICK].version == 2
    assert rows[SLOW].next_run == T0 + timedelta(minutes=5)
    assert rows[SLOW].inputs == {"seconds": 1}

    # removed from every source: removed, with its runs and its change log; user
    # schedules untouched
    await store.claim(rows[SLOW], rows[SLOW].next_run, later, None, None)
    await store.log_change(ChangeRow(schedule_id=rows[SLOW].id, at=later, actor="op",
                                     action="pause", fields={}))
    report = await sync(store, [entry(cron="30 8 * * *", inputs={"message": "hi"},
                                      title="Morning")], later, TIMER_USER)
    assert report.removed == [SLOW]
    assert set(await system_rows(store)) == {QUICK}
    assert (await store.runs(rows[SLOW].id))[1] == 0
    assert (await store.changes(rows[SLOW].id))[1] == 0
    assert await store.get_schedule(user.id) is not None


async def test_operator_pause_stays_and_enabled_false_pauses(store):
    await sync(store, [entry()], T0, TIMER_USER)
    row = (await system_rows(store))[QUICK]
    # an operator pauses through the API (state paused, no note)
    await store.update_versioned(row.id, None, row.version,
                                 {"state": "paused", "next_run": None, "note": None})
    await sync(store, [entry(cron="0 10 * * *")], T0, TIMER_USER)
    row = (await system_rows(store))[QUICK]
    assert row.state == "paused" and row.next_run is None and row.cron_expression == "0 10 * * *"

    # the file disables it: paused with a note saying so; enabling lifts only that pause
    await sync(store, [entry(cron="0 10 * * *", enabled=False)], T0, TIMER_USER)
    row = (await system_rows(store))[QUICK]
    assert row.state == "paused" and row.note == "disabled in the schedules file"
    await sync(store, [entry(cron="0 10 * * *")], T0, TIMER_USER)
    row = (await system_rows(store))[QUICK]
    assert row.state == "active" and row.note is None
    assert row.next_run == T0 + timedelta(hours=2)

    # an operator's resume of a disabled entry does not outlive the next sync
    await sync(store, [entry(SLOW, enabled=False)], T0, TIMER_USER)
    slow = (await system_rows(store))[SLOW]
    assert slow.state == "paused" and slow.next_run is None
    await store.update_versioned(slow.id, None, slow.version,
                                 {"state": "active", "next_run": T0, "note": None})
    await sync(store, [entry(SLOW, enabled=False)], T0, TIMER_USER)
    assert (await system_rows(store))[SLOW].state == "paused"


async def test_keep_leaves_unknown_sources_alone(store):
    flow_default = entry(BEAT, "* * * * *").declared_by("flow")
    await sync(store, [entry(), flow_default], T0, TIMER_USER)
    # the panel is unreachable (flow declarations unknown) and the file lost QUICK
    report = await sync(store, [], T0, TIMER_USER, keep={"flow"})
    assert report.removed == [QUICK]
    assert set(await system_rows(store)) == {BEAT}
    # the file broken (unknown), the flow now declares QUICK too: the file's row stays
    await sync(store, [entry(cron="0 7 * * *")], T0, TIMER_USER)
    await sync(store, [entry(cron="* * * * *").declared_by("flow"), flow_default], T0,
               TIMER_USER, keep={"file"})
    rows = await system_rows(store)
    assert rows[QUICK].cron_expression == "0 7 * * *" and rows[QUICK].system_source == "file"
    # the file, readable again, drops QUICK: the flow's own declaration takes over
    report = await sync(store, [entry(cron="* * * * *").declared_by("flow"), flow_default],
                        T0, TIMER_USER)
    rows = await system_rows(store)
    assert report.updated == [QUICK] and rows[QUICK].system_source == "flow"
    assert rows[QUICK].next_run == T0 + timedelta(minutes=1)


async def test_system_rows_not_made_by_sync_are_left_alone(store):
    other = await store.add_schedule(schedule(owner=TIMER_USER, system=True, flow_url=SLOW))
    await sync(store, [entry()], T0, TIMER_USER)
    assert await store.get_schedule(other.id) is not None


async def test_two_syncs_at_once_make_one_row_per_flow(store):
    results = await asyncio.gather(*(sync(store, [entry(), entry(SLOW)], T0, TIMER_USER)
                                     for _ in range(4)), return_exceptions=True)
    assert any(not isinstance(r, BaseException) for r in results)
    rows, total = await store.list_schedules(None, filters=ScheduleFilter(system=True))
    assert total == 2 and {r.flow_url for r in rows} == {QUICK, SLOW}


async def test_status_lines(store):
    await sync(store, [entry(title="Morning")], T0, TIMER_USER)
    lines = await status_lines(store)
    assert lines == [f"Morning [file] {QUICK} '0 9 * * *' UTC: active; "
                     "next 2027-03-01 09:00:00 UTC; last never ran"]


# ---- SystemSchedules: what the timer calls --------------------------------------------


class FakeDiscovery:
    """Our own Discovery interface; the real panel is in tests/integration."""

    def __init__(self, *entries: SystemEntry, fail: bool = False):
        self.entries = list(entries)
        self.fail = fail
        self.calls = 0
        self.unreadable: set[str] = set()

    async def discover(self) -> Discovered:
        self.calls += 1
        if self.fail:
            raise ConnectionError("panel down")
        return Discovered(entries=[e.declared_by("flow") for e in self.entries],
                          names={BEAT: "Heartbeat demo agent"}, unreadable=self.unreadable)

    async def close(self) -> None:
        pass


class Mono:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def write(path, text):
    path.write_text(textwrap.dedent(text))


async def turn(system, now=T0):
    report = await system.refresh(now)
    await system.wait_discovery()
    return report


async def test_refresh_follows_the_file_and_keeps_the_set_when_it_breaks(store, tmp_path):
    path = tmp_path / "config" / "schedules.yaml"
    path.parent.mkdir()
    mono = Mono()
    system = SystemSchedules(store, path, TIMER_USER, discover_every=60, monotonic=mono)
    assert (await turn(system)) is not None  # first turn: no file, nothing to sync
    assert await system_rows(store) == {}

    write(path, f"""
        - flow: {QUICK}
          cron: "0 9 * * *"
          inputs: {{message: hi}}
    """)
    report = await turn(system)
    assert report.added == [QUICK]
    assert await turn(system) is None  # unchanged file: not even read again

    # a broken file: logged, the current set keeps running unchanged
    write(path, f"""
        - flow: {QUICK}
          cron: "0 9 * * *"
        - flow: {SLOW}
          cron: "99 * * * *"
    """)
    assert await turn(system) is None
    assert "entry 2 (flow " in system.last_error and "field 'cron'" in system.last_error
    rows = await system_rows(store)
    assert set(rows) == {QUICK} and rows[QUICK].inputs == {"message": "hi"}
    # ... also at the periodic resync
    mono.now += 61
    assert not (await turn(system)).changed
    assert set(await system_rows(store)) == {QUICK}

    # fixed: taken at once
    write(path, f"""
        - flow: {SLOW}
          cron: "*/10 * * * *"
    """)
    report = await turn(system)
    assert report.added == [SLOW] and report.removed == [QUICK]
    assert system.last_error is None

    # the file deleted: its schedules go
    path.unlink()
    assert (await turn(system)).removed == [SLOW]


async def test_broken_file_at_start_keeps_what_the_store_has(store, tmp_path):
    path = tmp_path / "schedules.yaml"
    await sync(store, [entry()], T0, TIMER_USER)
    write(path, "- flow: [\n")
    system = SystemSchedules(store, path, TIMER_USER)
    await turn(system)
    assert set(await system_rows(store)) == {QUICK}
    assert "not valid YAML" in system.last_error


async def test_flow_declarations_are_discovered_and_the_file_wins(store, tmp_path):
    path = tmp_path / "schedules.yaml"
    mono = Mono()
    discovery = FakeDiscovery(entry(BEAT, "* * * * *", inputs={"note": "ok"}),
                              entry(QUICK, "* * * * *"))
    write(path, f"""
        - flow: {QUICK}
          cron: "0 9 * * *"
    """)
    system = SystemSchedules(store, path, TIMER_USER, discovery=discovery,
                             discover_every=60, monotonic=mono)
    await turn(system)  # the file now, the flows in the background
    await turn(system)
    rows = await system_rows(store)
    assert rows[BEAT].system_source == "flow" and rows[BEAT].inputs == {"note": "ok"}
    assert rows[BEAT].expose_name == "Heartbeat demo agent"
    assert rows[QUICK].system_source == "file" and rows[QUICK].cron_expression == "0 9 * * *"
    assert discovery.calls == 1

    # not asked again before the interval; asked after it
    await turn(system)
    assert discovery.calls == 1
    mono.now += 60
    discovery.entries = [entry(QUICK, "* * * * *")]  # heartbeat no longer declares one
    await turn(system)
    await turn(system)
    assert discovery.calls == 2
    assert set(await system_rows(store)) == {QUICK}


async def test_unreachable_panel_keeps_the_flow_declared_schedules(store, tmp_path):
    mono = Mono()
    discovery = FakeDiscovery(entry(BEAT, "* * * * *"))
    system = SystemSchedules(store, tmp_path / "none.yaml", TIMER_USER, discovery=discovery,
                             discover_every=60, monotonic=mono)
    await turn(system)
    await turn(system)
    assert set(await system_rows(store)) == {BEAT}
    discovery.fail = True
    mono.now += 60
    await turn(system)
    await turn(system)
    assert set(await system_rows(store)) == {BEAT}
    # a flow whose OpenAPI could not be read keeps its previous declaration
    discovery.fail = False
    discovery.entries = []
    discovery.unreadable = {BEAT}
    mono.now += 60
    await turn(system)
    await turn(system)
    assert set(await system_rows(store)) == {BEAT}


async def test_never_discovered_keeps_flow_rows_and_retries_soon(store, tmp_path):
    await sync(store, [entry(BEAT, "* * * * *").declared_by("flow")], T0, TIMER_USER)
    mono = Mono()
    discovery = FakeDiscovery(fail=True)
    system = SystemSchedules(store, tmp_path / "none.yaml", TIMER_USER, discovery=discovery,
                             discover_every=60, check_every=5, monotonic=mono)
    await turn(system)
    await turn(system)
    assert set(await system_rows(store)) == {BEAT}
    mono.now += 5
    await turn(system)
    assert discovery.calls == 2  # retried after check_every, not discover_every


# ---- inputs checked against the agent's form, as a user schedule's are --------------


class FakeForms:
    """Our own Forms interface over a form built with kodosumi's own classes (what GET
    on the flow's URL answers); the real panel is in tests/integration."""

    def __init__(self, down=()):
        self.down = set(down)
        self.calls: list[str] = []

    async def form(self, flow_url: str) -> list[dict]:
        self.calls.append(flow_url)
        if flow_url in self.down:
            raise FlowUnavailable("the agent answered HTTP 503", field="flow_url")
        return F.Model(
            F.InputText(label="Message", name="message", required=True),
            F.InputNumber(label="Repeat", name="repeat", value="1"),
            F.Checkbox(label="Shout", name="shout", option="Shout", value=False),
        ).get_model()

    async def close(self) -> None:
        pass


async def test_inputs_are_stored_as_the_form_posts_them_and_refused_ones_pause(
        store, tmp_path):
    path = tmp_path / "schedules.yaml"
    write(path, f"""
        - flow: {QUICK}
          cron: "0 9 * * *"
          inputs: {{message: hi, repeat: 2, shout: true}}
        - flow: {SLOW}
          cron: "0 9 * * *"
          inputs: {{mesage: typo}}
    """)
    system = SystemSchedules(store, path, TIMER_USER, forms=FakeForms())
    # held back until the forms are read (in the background: a slow agent never
    # delays a fire)
    assert not (await turn(system)).changed
    assert await system_rows(store) == {}
    assert sorted((await turn(system)).added) == [QUICK, SLOW]
    rows = await system_rows(store)
    assert rows[QUICK].inputs == {"message": "hi", "repeat": "2", "shout": "on"}
    assert rows[QUICK].state == "active"
    # refused by the form: paused, the note says which input and why
    assert rows[SLOW].state == "paused" and rows[SLOW].next_run is None
    assert rows[SLOW].note.startswith(UNFIT_NOTE) and "inputs.mesage" in rows[SLOW].note

    write(path, f"""
        - flow: {QUICK}
          cron: "0 9 * * *"
          inputs: {{message: hi, repeat: 2, shout: true}}
        - flow: {SLOW}
          cron: "0 9 * * *"
          inputs: {{message: fixed}}
    """)
    await turn(system)
    assert (await turn(system)).updated == [SLOW]
    slow = (await system_rows(store))[SLOW]
    assert slow.state == "active" and slow.note is None
    assert slow.next_run == T0 + timedelta(hours=1)
    assert slow.inputs == {"message": "fixed", "repeat": "1"}


async def test_an_unreadable_form_keeps_the_inputs_as_declared_until_the_next_round(
        store, tmp_path):
    path = tmp_path / "schedules.yaml"
    write(path, f"""
        - flow: {QUICK}
          cron: "0 9 * * *"
          inputs: {{message: hi, repeat: 2}}
    """)
    mono = Mono()
    forms = FakeForms(down={QUICK})
    system = SystemSchedules(store, path, TIMER_USER, forms=forms, discover_every=60,
                             monotonic=mono)
    await turn(system)
    assert (await turn(system)).added == [QUICK]
    row = (await system_rows(store))[QUICK]
    assert row.inputs == {"message": "hi", "repeat": 2} and row.state == "active"
    assert await turn(system) is None and forms.calls == [QUICK]  # not asked every turn
    # the next round asks again; the agent answers now
    forms.down.clear()
    mono.now += 60
    await turn(system)
    assert (await turn(system)).updated == [QUICK]
    assert (await system_rows(store))[QUICK].inputs == {"message": "hi", "repeat": "2"}


# ---- the timer calls it and fires system schedules as the timer user -------------------


async def test_timer_syncs_then_fires_as_the_timer_user(store, tmp_path):
    path = tmp_path / "schedules.yaml"
    write(path, f"""
        - flow: {QUICK}
          cron: "* * * * *"
          inputs: {{message: from the file, shout: "on"}}
    """)
    clock = Clock(T0)
    system = SystemSchedules(store, path, TIMER_USER)
    launcher = FakeLauncher()
    # the timer user is no kodosumi role: a role check would call it missing
    timer = Timer(store, launcher, FakeRoles(**{TIMER_USER: "missing"}), _NoWaker(),
                  TimerConfig(system_user=TIMER_USER), clock=clock, system=system)
    await timer.refresh_system()
    clock.advance(minutes=1)
    assert await timer.fire_due() == 1
    await timer.drain()
    assert launcher.calls == [(QUICK, TIMER_USER, {"message": "from the file", "shout": "on"})]
    row = (await system_rows(store))[QUICK]
    assert row.last_status == "launched" and row.next_run == T0 + timedelta(minutes=2)


async def test_timer_survives_a_failing_system_refresh(store):
    class Broken:
        check_interval = 0.01
        calls = 0

        async def refresh(self, now):
            Broken.calls += 1
            raise RuntimeError("store away")

    timer = Timer(store, FakeLauncher(), FakeRoles(), _NoWaker(), system=Broken())
    task = asyncio.create_task(timer.run())
    deadline = asyncio.get_running_loop().time() + 5
    while Broken.calls < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    timer.stop()
    await asyncio.wait_for(task, 5)
    assert Broken.calls >= 3  # the loop went on, and woke at the system's interval


class _NoWaker:
    async def wait(self, seen: int, timeout: float) -> int:
        await asyncio.sleep(timeout)
        return seen


@pytest.fixture(autouse=True)
def _quiet_system_log(caplog):
    caplog.set_level("INFO", logger="kodosumi_timer.system")
