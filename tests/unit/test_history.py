"""Run history kept bounded (issue 12): the store's pruning on SQLite and on a real
PostgreSQL, and the pruner's passes."""

import time
from datetime import datetime, timedelta

from kodosumi_timer.clock import utcnow
from kodosumi_timer.history import Pruner, kept, wait_before_batch
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
    # max_wait=0: the schedules are due at T0, the pruner's "now"; no waiting for a gap
    pruner = Pruner(store, keep_runs=4, keep_days=3650, batch=7, pause=0, max_wait=0,
                    clock=lambda: T0)
    assert await pruner.prune() == 3 * 21
    for row in rows:
        assert len(await slots_left(store, row)) == 4
    assert await pruner.prune() == 0


async def test_a_pass_visits_only_the_schedules_with_runs_to_prune(store):
    many = await store.add_schedule(schedule())
    old = await store.add_schedule(schedule())
    fine = await store.add_schedule(schedule())
    await store.add_schedule(schedule())  # no runs at all
    await add_runs(store, many, ["finished"] * 6)
    await add_runs(store, old, ["finished"], start=T0 - timedelta(days=100))
    await add_runs(store, fine, ["finished"] * 5)
    cutoff = T0 - timedelta(days=90)
    assert sorted(await store.schedules_to_prune(cutoff, keep=5)) == sorted([many.id, old.id])
    visited = []
    real = store.prune_runs

    async def noting(schedule_id, *args):  # type: ignore[no-untyped-def]
        visited.append(schedule_id)
        return await real(schedule_id, *args)

    store.prune_runs = noting
    pruner = Pruner(store, keep_runs=5, keep_days=90, pause=0, max_wait=0, clock=lambda: T0)
    assert await pruner.prune() == 2
    assert sorted(visited) == sorted([many.id, old.id])
    assert await store.schedules_to_prune(cutoff, keep=5) == []


def test_how_much_is_kept_is_said_in_words():
    assert kept(1000, 90) == "the newest 1,000 runs of each schedule, none older than 90 days"
    assert kept(1, 1) == "the newest run of each schedule, none older than 1 day"


def test_a_batch_waits_until_just_after_a_launch_that_is_near():
    ahead, after = 0.5, 0.1
    assert wait_before_batch(T0, None, ahead, after) == 0
    assert wait_before_batch(T0, T0 + timedelta(seconds=0.6), ahead, after) == 0
    assert wait_before_batch(T0, T0 + timedelta(seconds=0.3), ahead, after) == 0.4
    # due already (being sent): a little, then look again
    assert wait_before_batch(T0, T0 - timedelta(seconds=0.05), ahead, after) == after


async def test_the_next_launch_is_a_schedules_next_slot_or_a_claimed_runs_slot(store):
    assert await store.next_launch(T0) is None
    await store.add_schedule(schedule(next_run=T0 + timedelta(seconds=30)))
    await store.add_schedule(schedule(next_run=T0 + timedelta(seconds=5), state="paused"))
    await store.add_schedule(schedule(next_run=T0 - timedelta(seconds=5)))  # before since
    assert await store.next_launch(T0) == T0 + timedelta(seconds=30)
    row = await store.add_schedule(schedule(next_run=None))
    await add_runs(store, row, ["queued"], start=T0 + timedelta(seconds=10))
    await add_runs(store, row, ["finished"], start=T0 + timedelta(seconds=1))
    assert await store.next_launch(T0) == T0 + timedelta(seconds=10)


class ComingLaunches:
    """A history store whose next launch is ``coming()`` from now; records when the
    pruner asked and pruned."""

    def __init__(self, coming: "list[timedelta | None]"):
        self.coming = coming
        self.events: list[tuple[str, float]] = []

    async def schedules_to_prune(self, older_than: datetime, keep: int) -> list[str]:
        return ["s1"]

    async def next_launch(self, since: datetime) -> datetime | None:
        self.events.append(("asked", time.monotonic()))
        step = self.coming.pop(0) if len(self.coming) > 1 else self.coming[0]
        return None if step is None else utcnow() + step

    async def prune_runs(self, schedule_id: str, older_than: datetime, keep: int,
                         batch: int = 500) -> int:
        self.events.append(("pruned", time.monotonic()))
        return 0


async def test_the_pruner_prunes_only_once_the_launch_that_was_near_has_gone():
    store = ComingLaunches([timedelta(seconds=0.1), None])
    pruner = Pruner(store, keep_runs=1, keep_days=1, gap=0.5, after=0.05, max_wait=5)
    started = time.monotonic()
    await pruner.prune()
    # before the pass's query: asked (a launch 0.1 s away: wait), asked (none); before
    # the batch: asked (none)
    assert [e for e, _ in store.events] == ["asked", "asked", "asked", "pruned"]
    assert store.events[-1][1] - started >= 0.14  # 0.1 to the launch, 0.05 after it
    assert pruner.waited >= 0.14


async def test_where_launches_never_leave_a_gap_a_batch_goes_after_max_wait():
    store = ComingLaunches([timedelta(0)])  # always one being sent
    pruner = Pruner(store, keep_runs=1, keep_days=1, after=0.02, max_wait=0.1)
    started = time.monotonic()
    await pruner.prune()
    assert store.events[-1][0] == "pruned"
    assert 0.1 <= store.events[-1][1] - started < 2
