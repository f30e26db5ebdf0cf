"""The Timer page's store queries, on SQLite and on a real PostgreSQL."""

from datetime import timedelta

from kodosumi_timer.rules import jitter_offset
from kodosumi_timer.store import RunRow
from kodosumi_timer.store.insights import load_schedules, run_figures, waiting
from tests.unit.factories import T0, schedule

NOW = T0


async def add_runs(store, *runs):
    async with store.session.begin() as s:
        s.add_all(runs)


def run(sid, slot, status, fired=None, trigger="timer", owner="owner-a"):
    return RunRow(schedule_id=sid, owner=owner, slot=slot, attempt=1, trigger=trigger,
                  status=status, fired_at=fired)


async def test_lateness_and_outcomes_of_the_last_day(store):
    plain = await store.add_schedule(schedule(schedule_type="cron", cron_expression="* * * * *"))
    jittered = await store.add_schedule(schedule(schedule_type="cron",
                                                 cron_expression="* * * * *", jitter=60))
    slot = NOW - timedelta(hours=1)
    offset = jitter_offset(jittered.id, slot, 60)
    await add_runs(
        store,
        run(plain.id, slot, "finished", fired=slot + timedelta(milliseconds=20)),
        run(plain.id, slot + timedelta(minutes=1), "error",
            fired=slot + timedelta(minutes=1, seconds=3)),
        # jitter is not lateness: sent its offset after the slot, 10 ms late
        run(jittered.id, slot, "finished", fired=slot + offset + timedelta(milliseconds=10)),
        # a run now is no fire lateness, and a run of two days ago is not of the last day
        run(plain.id, slot + timedelta(minutes=2), "finished",
            fired=slot + timedelta(minutes=9), trigger="manual"),
        run(plain.id, NOW - timedelta(days=2), "failed", fired=NOW - timedelta(days=2)),
        run(plain.id, slot + timedelta(minutes=3), "missed"),
        run(plain.id, NOW + timedelta(minutes=1), "queued"),  # a slot still ahead
    )
    figures = await run_figures(store, NOW)
    assert sorted(round(v, 3) for v in figures.lateness) == [0.01, 0.02, 3.0]
    assert figures.outcomes == {"finished": 3, "error": 1, "missed": 1}
    assert not figures.lateness_capped and figures.scanned_all


async def test_an_empty_store_has_no_figures(store):
    figures = await run_figures(store, NOW)
    assert figures.lateness == [] and figures.outcomes == {}
    w = await waiting(store, NOW)
    assert (w.queued, w.buffered, w.backlog, w.oldest_due) == (0, 0, 0, None)
    assert await load_schedules(store, NOW + timedelta(days=1)) == ([], False)


async def test_waiting_counts_queued_buffered_and_the_unclaimed_backlog(store):
    overdue = await store.add_schedule(schedule(next_run=NOW - timedelta(minutes=5)))
    await store.add_schedule(schedule(next_run=NOW + timedelta(minutes=5)))
    await add_runs(store, run(overdue.id, NOW, "queued"), run(overdue.id, NOW + timedelta(minutes=1), "buffered",
                                                              trigger="buffer"),
                   run(overdue.id, NOW - timedelta(minutes=1), "queued"))
    w = await waiting(store, NOW)
    assert (w.queued, w.buffered, w.backlog) == (2, 1, 1)
    assert w.oldest_due == NOW - timedelta(minutes=5)


async def test_load_reads_active_schedules_due_within_the_window(store):
    cron = await store.add_schedule(schedule(
        schedule_type="cron", cron_expression="0 9 * * *", timezone="Europe/Berlin",
        next_run=NOW + timedelta(hours=1), max_runs=5, run_count=2, title="Daily",
        exclude_dates=["2027-03-02"], jitter=30))
    await store.add_schedule(schedule(next_run=NOW + timedelta(days=3)))  # beyond
    await store.add_schedule(schedule(state="paused", next_run=None))
    rows, more = await load_schedules(store, NOW + timedelta(days=1))
    assert not more and [r.id for r in rows] == [cron.id]
    got = rows[0]
    assert got.title == "Daily" and got.runs_left == 3 and got.jitter == 30
    assert got.rule.cron_expression == "0 9 * * *" and got.rule.timezone == "Europe/Berlin"
    assert got.next_run == NOW + timedelta(hours=1)
    assert [d.isoformat() for d in got.rule.exclude_dates] == ["2027-03-02"]


async def test_the_day_is_read_from_the_newest_runs_only(store, monkeypatch):
    from kodosumi_timer.store import insights

    monkeypatch.setattr(insights, "SCAN_ROWS", 3)
    monkeypatch.setattr(insights, "LATENESS_LIMIT", 2)
    row = await store.add_schedule(schedule(schedule_type="cron", cron_expression="* * * * *"))
    slots = [NOW - timedelta(minutes=10 - i) for i in range(6)]
    await add_runs(store, *[run(row.id, s, "finished", fired=s + timedelta(seconds=i + 1))
                            for i, s in enumerate(slots)])
    figures = await run_figures(store, NOW)
    assert figures.outcomes == {"finished": 3} and not figures.scanned_all
    # the newest two launches, 6 s and 5 s late
    assert figures.lateness_capped and sorted(figures.lateness) == [5.0, 6.0]
