"""The timer's figures (issue 12, metrics): what the timer counts, what it publishes
through its lock actor, what the store adds, and ``GET /metrics`` in the Prometheus text
format, read back with prometheus_client's own parser."""

import asyncio
import time
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kodosumi_timer.config import TimerSettings
from kodosumi_timer.lock import LockState
from kodosumi_timer.metrics import (
    LATENESS_BOUNDS,
    CountingStore,
    Histogram,
    TimerMetrics,
    facts,
    store_figures,
)
from kodosumi_timer.panel.metrics import TIMER_META_KEY, authorized, render
from kodosumi_timer.panel.services import STATE_KEY
from kodosumi_timer.timer import LocalWaker, Timer, TimerConfig
from tests.unit.factories import T0, Clock, FakeLauncher, FakeRoles, schedule


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and labels (parsed, not grepped)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def types(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


# ---- the figures themselves ------------------------------------------------------

def test_a_histogram_counts_a_value_at_its_bound_in_that_bucket():
    h = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.observe(value)
    assert h.counts == [2, 2, 1]  # <=0.1, <=1.0, +Inf
    snap = h.snapshot()
    assert snap == {"bounds": [0.1, 1.0], "counts": [2, 2, 1], "sum": pytest.approx(8.65),
                    "count": 5}
    h.observe(0.2)
    assert snap["counts"] == [2, 2, 1], "a snapshot is a copy, not a view"


def test_the_snapshot_is_small_plain_data_with_the_heartbeat():
    m = TimerMetrics()
    m.fired(0.003)
    m.fired(-0.001)  # a clock step back is not early: counted as on time
    m.answered(0.08)
    m.store_error()
    snap = m.snapshot(T0, waiting=4, in_flight=2, running=7)
    assert snap["heartbeat"] == T0.timestamp()
    assert (snap["waiting"], snap["in_flight"], snap["running"], snap["store_errors"]) == \
        (4, 2, 7, 1)
    assert snap["lateness_seconds"]["count"] == 2
    assert snap["lateness_seconds"]["counts"][0] == 2  # both at or below 5 ms
    assert snap["answer_seconds"]["count"] == 1
    import json
    assert len(json.dumps(snap)) < 1000


# ---- what the timer counts --------------------------------------------------------

def make_timer(store, launcher, clock, roles=None, **kw):
    """A timer as the daemon builds it: its store counts the runs into its figures."""
    config = TimerConfig(**{"backoff": lambda attempt: 0.0, **kw})
    published = []
    metrics = TimerMetrics()
    timer = Timer(CountingStore(store, metrics), launcher, roles or FakeRoles(), LocalWaker(),
                  config, clock=clock, metrics=metrics,
                  on_stats=lambda stats: published.append(dict(stats.figures)))
    return timer, published


class SlowPanel(FakeLauncher):
    """kodosumi answering each launch after ``seconds`` (on the injected clock)."""

    def __init__(self, clock: Clock, seconds: float):
        super().__init__(clock=clock)
        self.seconds = seconds

    async def launch(self, flow_url, owner, inputs, *, marker):
        self.clock.advance(seconds=self.seconds)
        return await super().launch(flow_url, owner, inputs, marker=marker)


async def test_the_timer_counts_lateness_and_answer_time_of_a_slot(store):
    await store.add_schedule(schedule(next_run=T0))
    clock = Clock(T0 + timedelta(seconds=0.3))  # the timer gets to it 300 ms late
    timer, published = make_timer(store, SlowPanel(clock, 0.7), clock)
    await timer.fire_due()
    await timer.drain()
    figures = published[-1]
    late = figures["lateness_seconds"]
    assert late["count"] == 1 and late["sum"] == pytest.approx(0.3)
    assert late["counts"][LATENESS_BOUNDS.index(0.5)] == 1  # in the bucket le=0.5
    answer = figures["answer_seconds"]
    assert answer["count"] == 1 and answer["sum"] == pytest.approx(0.7)
    assert figures["heartbeat"] == clock().timestamp()


async def test_a_run_now_request_is_no_fire_lateness(store):
    row = await store.add_schedule(schedule(next_run=None, state="paused"))
    clock = Clock(T0)
    timer, published = make_timer(store, FakeLauncher(clock=clock), clock)
    await store.queue_manual_run(row, T0 - timedelta(minutes=5))
    await timer.fire_due()
    await timer.drain()
    assert published[-1]["lateness_seconds"]["count"] == 0
    assert published[-1]["answer_seconds"]["count"] == 1  # kodosumi still answered


async def test_a_failing_store_is_counted_and_the_heartbeat_goes_on(store):
    clock = Clock(T0)
    timer, published = make_timer(store, FakeLauncher(), clock, interval=0.05, lease=0.15)

    async def store_away(*args, **kwargs):
        raise ConnectionRefusedError("store away")

    timer.store.due = store_away  # our own store's interface, failing
    runner = asyncio.create_task(timer.run())
    try:
        deadline = time.monotonic() + 10
        while not any(f.get("store_errors", 0) >= 1 for f in published) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        timer.stop()
        await asyncio.wait_for(runner, 10)
    assert any(f.get("store_errors", 0) >= 1 for f in published)


async def test_waiting_for_capacity_is_published(store):
    clock = Clock(T0)
    timer, published = make_timer(store, FakeLauncher(), clock, max_running=1)
    ticket = await timer.pacer.turn("alice", "/flow-a/")  # alice's one, in flight
    waiter = asyncio.create_task(timer.pacer.turn("alice", "/flow-a/"))  # over the cap
    deadline = time.monotonic() + 5
    while timer.pacer.waiting == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await timer.fire_due()  # nothing due; publishes the figures
    assert (published[-1]["waiting"], published[-1]["in_flight"]) == (1, 1)
    timer.pacer.done(ticket)  # answered, nothing started: the waiting one goes
    timer.pacer.done(await asyncio.wait_for(waiter, 5))
    await timer.fire_due()
    assert published[-1]["waiting"] == 0


async def test_runs_are_counted_by_each_status_the_timer_records(store):
    clock = Clock(T0)
    launcher = FakeLauncher(clock=clock)
    timer, published = make_timer(store, launcher, clock,
                                  roles=FakeRoles(bob="inactive"))
    # an every-minute rule 3 minutes behind: 2 slots missed, the latest fires
    cron = await store.add_schedule(schedule(
        schedule_type="cron", cron_expression="* * * * *", run_at=None,
        next_run=T0 - timedelta(minutes=2), catchup_window=600))
    await store.add_schedule(schedule(owner="bob"))  # owner inactive: failed
    await timer.fire_due()
    await timer.drain()
    assert published[-1]["runs"] == {"missed": 2, "launched": 1, "failed": 1}
    launcher.statuses["fid-1"] = "finished"
    await timer.follow()
    clock.advance(minutes=1)  # the next slot, while none is running
    await timer.fire_due()
    await timer.drain()
    assert published[-1]["runs"] == {"missed": 2, "launched": 2, "failed": 1, "finished": 1}
    kept = (await store_figures(store, clock()))["runs"]
    assert kept == {"missed": 2, "launched": 1, "failed": 1, "finished": 1}
    assert (await store.runs(cron.id))[1] == 4


# ---- through the lock actor ---------------------------------------------------------

async def test_the_lock_keeps_what_the_timer_published():
    state = LockState(pid=1, host="h", database="sqlite+aiosqlite:///x.db")
    assert (await state.get_meta())["figures"] == {}
    figures = TimerMetrics().snapshot(T0, waiting=0, in_flight=0, running=0)
    await state.update(3, 1, figures)
    meta = await state.get_meta()
    assert (meta["fires"], meta["failures"], meta["figures"]) == (3, 1, figures)
    await state.update(4, 1)  # a caller of the older signature keeps the figures
    assert (await state.get_meta())["figures"] == figures


# ---- what the store adds --------------------------------------------------------------

async def test_store_figures_count_runs_by_status_and_the_due_backlog(store):
    clock = Clock(T0)
    timer, _ = make_timer(store, FakeLauncher(), clock)
    done = await store.add_schedule(schedule(next_run=T0))
    await timer.fire_due()
    await timer.drain()
    run = (await store.runs(done.id))[0][0]
    from kodosumi_timer.store.repository import RunChange
    await store.finish_runs([RunChange(run, "finished", T0)])
    await store.add_schedule(schedule(next_run=T0 - timedelta(seconds=40)))  # overdue
    await store.add_schedule(schedule(next_run=T0 + timedelta(hours=1)))  # not yet
    figures = await store_figures(store, T0)
    assert figures["runs"] == {"finished": 1}  # read back from the store's rows
    assert figures["backlog"] == 1
    assert figures["backlog_oldest_seconds"] == pytest.approx(40.0)


def test_facts_without_a_timer_say_it_is_down():
    found = facts(None, {"runs": {"finished": 2, "running": 1}, "backlog": 0,
                         "backlog_oldest_seconds": 0.0}, T0, "9.9")
    assert found["timer"] == {"up": False}
    assert found["runs_kept"] == {"finished": 2, "running": 1} and found["store_up"]


# ---- the exposition ----------------------------------------------------------------------

def running_meta(figures):
    return {"pid": 42, "host": "box", "database": "sqlite:///x", "started": T0.timestamp() - 60,
            "fires": 5, "failures": 1, "mode": "actor", "version": "0.1.0",
            "node_id": "ab12cd", "node_ip": "10.0.0.7", "figures": figures}


def test_the_exposition_parses_back_to_the_timer_figures():
    m = TimerMetrics()
    for late in (0.002, 0.004, 0.2, 3.0):
        m.fired(late)
    m.answered(0.09)
    m.store_error()
    m.recorded(["launched"] * 8 + ["finished"] * 7 + ["error"])
    figures = m.snapshot(T0 - timedelta(seconds=3), waiting=2, in_flight=1, running=6)
    store = {"runs": {"finished": 7, "error": 1, "queued": 2}, "backlog": 3,
             "backlog_oldest_seconds": 12.5}
    text = render(facts(running_meta(figures), store, T0, "0.1.0")).decode()
    got = samples(text)
    assert got[("kodosumi_timer_up", ())] == 1
    late = "kodosumi_timer_fire_lateness_seconds"
    assert types(text)[late] == "histogram"
    assert got[(f"{late}_bucket", (("le", "0.005"),))] == 2
    assert got[(f"{late}_bucket", (("le", "0.25"),))] == 3  # cumulative
    assert got[(f"{late}_bucket", (("le", "+Inf"),))] == 4
    assert got[(f"{late}_count", ())] == 4
    assert got[(f"{late}_sum", ())] == pytest.approx(3.206)
    assert got[("kodosumi_timer_launch_answer_seconds_count", ())] == 1
    assert types(text)["kodosumi_timer_runs"] == "counter"
    assert got[("kodosumi_timer_runs_total", (("status", "finished"),))] == 7
    assert got[("kodosumi_timer_runs_total", (("status", "error"),))] == 1
    assert got[("kodosumi_timer_runs_total", (("status", "launched"),))] == 8
    assert ("kodosumi_timer_runs_total", (("status", "queued"),)) not in got
    assert got[("kodosumi_timer_runs_kept", (("status", "queued"),))] == 2
    assert got[("kodosumi_timer_runs_kept", (("status", "finished"),))] == 7
    assert got[("kodosumi_timer_launches_waiting", ())] == 2
    assert got[("kodosumi_timer_launches_in_flight", ())] == 1
    assert got[("kodosumi_timer_executions_running", ())] == 6
    assert got[("kodosumi_timer_due_backlog", ())] == 3
    assert got[("kodosumi_timer_due_backlog_oldest_seconds", ())] == 12.5
    assert got[("kodosumi_timer_store_errors_total", ())] == 1
    assert got[("kodosumi_timer_fires_total", ())] == 5
    assert got[("kodosumi_timer_last_heartbeat_timestamp_seconds", ())] == \
        (T0 - timedelta(seconds=3)).timestamp()
    assert got[("kodosumi_timer_heartbeat_age_seconds", ())] == pytest.approx(3.0)
    info = ("kodosumi_timer_info", (("host", "box"), ("mode", "actor"), ("node_id", "ab12cd"),
                                    ("node_ip", "10.0.0.7"), ("pid", "42"),
                                    ("version", "0.1.0")))
    assert got[info] == 1


def test_without_a_timer_the_scrape_says_up_0_and_still_shows_the_store():
    text = render(facts(None, {"runs": {}, "backlog": 2, "backlog_oldest_seconds": 65.0},
                        T0, "0.1.0")).decode()
    got = samples(text)
    assert got[("kodosumi_timer_up", ())] == 0
    assert not any(name.startswith("kodosumi_timer_fire_lateness") for name, _ in got)
    assert got[("kodosumi_timer_due_backlog", ())] == 2


def test_a_store_that_cannot_be_read_still_renders_the_timer():
    figures = TimerMetrics().snapshot(T0, waiting=0, in_flight=0, running=0)
    got = samples(render(facts(running_meta(figures), None, T0, "0.1.0")).decode())
    assert got[("kodosumi_timer_up", ())] == 1
    assert got[("kodosumi_timer_store_up", ())] == 0
    assert ("kodosumi_timer_due_backlog", ()) not in got


def test_two_renders_share_no_registry():
    def kept(n):
        return {"runs": {"finished": n}, "backlog": 0, "backlog_oldest_seconds": 0.0}

    one = samples(render(facts(None, kept(1), T0, "0.1.0")).decode())
    two = samples(render(facts(None, kept(9), T0, "0.1.0")).decode())
    assert one[("kodosumi_timer_runs_kept", (("status", "finished"),))] == 1
    assert two[("kodosumi_timer_runs_kept", (("status", "finished"),))] == 9


def test_the_token_is_asked_for_only_when_set():
    assert authorized(None, None) and authorized("Bearer x", "")
    assert authorized("Bearer s3cret", "s3cret") and authorized("bearer s3cret", "s3cret")
    assert not authorized(None, "s3cret")
    assert not authorized("Bearer wrong", "s3cret")
    assert not authorized("Basic s3cret", "s3cret")


# ---- the route, behind kodosumi's JWT middleware ------------------------------------------

async def test_metrics_answer_without_a_login_in_the_text_format(api):
    services = api.app.state[STATE_KEY]
    await services.store.add_schedule(schedule(next_run=T0 - timedelta(seconds=5)))
    figures = TimerMetrics()
    figures.fired(0.004)

    async def meta():
        return running_meta(figures.snapshot(T0, waiting=0, in_flight=0, running=0))

    api.app.state[TIMER_META_KEY] = meta
    r = await api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = samples(r.text)
    assert got[("kodosumi_timer_up", ())] == 1
    assert got[("kodosumi_timer_fire_lateness_seconds_count", ())] == 1
    assert got[("kodosumi_timer_due_backlog", ())] == 1


async def test_metrics_without_ray_say_the_timer_is_down(api):
    # no Ray in the unit tests: the route must not start one, and still answers
    import ray

    assert not ray.is_initialized()
    r = await api.get("/metrics")
    assert r.status_code == 200
    assert samples(r.text)[("kodosumi_timer_up", ())] == 0
    assert not ray.is_initialized()


async def test_metrics_token_requires_the_bearer_header(api):
    services = api.app.state[STATE_KEY]
    services.settings = TimerSettings(TIMER_METRICS_TOKEN="s3cret")
    r = await api.get("/metrics")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "kodosumi_timer" not in r.text
    assert (await api.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code \
        == 401
    r = await api.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and ("kodosumi_timer_up", ()) in samples(r.text)
