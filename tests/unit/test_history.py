"""Run history kept bounded (issue 12): the store's pruning on SQLite and on a real
PostgreSQL, and the pruner's passes."""

from datetime import timedelta

from kodosumi_timer.history import Pruner, kept
from kodosumi_timer.store import RunRow
from kodosumi_timer.store.tables import NotificationRow
from tests.unit.factories import T0, schedule


async def add_runs(store, row, statuses, start=T0, step=timedelta(minutes=1)):  # type: ignore[no-untyped-def]
    runs = [RunRow(schedule_id=row.id, owner=row.owner, slot=start + n * step, attempt=1,
                   trigger="timer", status=status) for n, status in enumerate(statuses)]
    async with store.session.begin() as s:
        s.add_all(runs)
    return runs


async def slots_left(store, row):  # type: ignore[no-untyped-def]
    rows, _ = await store.runs(row.id, 500, 0)
    return sorted(r.slot for r in rows)


async def test_only_ended_runs_beyond_the_newest_keep_go(store):
    row = await store.add_schedule(schedule())
    other = await store.add_schedule(schedule())
    runs = await add_runs(store, row, ["finished"] * 6 + ["queued", "running", "buffered"]
                          + ["error"] * 3)
    await add_runs(store, other, ["finished"] * 10)
    # keep the newest 5: slots 7..11 stay; of 0..6, the ended ones go (6 is queued)
    assert await store.prune_runs(row.id, T0 - timedelta(days=1), keep=5, batch=500) == 6
    assert await slots_left(store, row) == [r.slot for r in runs[6:]]
    assert len(await slots_left(store, other)) == 10  # another schedule is untouched
    assert await store.prune_runs(row.id, T0 - timedelta(days=1), keep=5) == 0


async def test_runs_older_than_the_cutoff_go_however_few_there_are(store):
    row = await store.add_schedule(schedule())
    runs = await add_runs(store, row, ["finished", "missed", "unknown", "finished"],
                          step=timedelta(days=1))
    assert await store.prune_runs(row.id, T0 + timedelta(days=2), keep=1000) == 2
    assert await slots_left(store, row) == [runs[2].slot, runs[3].slot]


async def test_a_batch_is_at_most_its_size_and_a_pending_notification_keeps_its_run(store):
    row = await store.add_schedule(schedule())
    runs = await add_runs(store, row, ["error"] * 8)
    async with store.session.begin() as s:
        for run, status in ((runs[0], "pending"), (runs[1], "delivered")):
            s.add(NotificationRow(schedule_id=row.id, run_id=run.id, event="error",
                                  status=status, attempts=0, body="{}", created=T0))
    assert await store.prune_runs(row.id, T0 + timedelta(days=1), keep=1, batch=3) == 3
    assert await store.prune_runs(row.id, T0 + timedelta(days=1), keep=1, batch=3) == 3
    assert await store.prune_runs(row.id, T0 + timedelta(days=1), keep=1, batch=3) == 1
    assert await slots_left(store, row) == [runs[0].slot]  # told of yet: kept
    sent, _ = await store.notifications(row.id, [runs[0].id, runs[1].id], limit=10)
    assert [n.run_id for n in sent] == [runs[0].id]  # the delivered one went with its run


async def test_a_pass_prunes_every_schedule_in_batches_until_done(store):
    rows = [await store.add_schedule(schedule()) for _ in range(3)]
    for row in rows:
        await add_runs(store, row, ["finished"] * 25)
    pruner = Pruner(store, keep_runs=4, keep_days=3650, batch=7, pause=0,
                    clock=lambda: T0)
    assert await pruner.prune() == 3 * 21
    for row in rows:
        assert len(await slots_left(store, row)) == 4
    assert await pruner.prune() == 0


def test_how_much_is_kept_is_said_in_words():
    assert kept(1000, 90) == "the newest 1,000 runs of each schedule, none older than 90 days"
    assert kept(1, 1) == "the newest run of each schedule, none older than 1 day"
