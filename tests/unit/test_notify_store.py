"""The notification outbox in the store, on SQLite and on a real PostgreSQL."""

from datetime import timedelta

from kodosumi_timer import reasons
from kodosumi_timer.notify.events import encode
from kodosumi_timer.store import RunRow
from tests.unit.factories import T0, schedule

HOOK = "http://127.0.0.1:9/hook"


def notifying(events=("error", "failed"), **over):  # type: ignore[no-untyped-def]
    return schedule(notify_url=HOOK, notify_events=encode(events), notify_secret="s3cret",
                    **over)


async def add_run(store, row, status, finished_at=T0, minutes=0, **over):  # type: ignore[no-untyped-def]
    run = RunRow(schedule_id=row.id, owner=row.owner, slot=T0 + timedelta(minutes=minutes),
                 attempt=1, trigger="timer", status=status, finished_at=finished_at, **over)
    async with store.session.begin() as s:
        s.add(run)
    return run


def pending(ended, now=T0):  # type: ignore[no-untyped-def]
    return [{"schedule_id": e.schedule.id, "run_id": e.run.id, "event": e.event,
             "status": "pending", "attempts": 0, "next_at": now, "created": now, "body": "{}"}
            for e in ended]


async def test_only_ended_runs_in_the_window_with_a_notified_status_are_found(store):
    row = await store.add_schedule(notifying())
    quiet = await store.add_schedule(schedule())  # no notify
    error = await add_run(store, row, "error", fid="f1", reason="boom")
    await add_run(store, row, "finished", minutes=1)  # not one of its events
    await add_run(store, row, "running", finished_at=None, minutes=2)
    await add_run(store, row, "failed", finished_at=T0 - timedelta(hours=1), minutes=3)  # old
    await add_run(store, quiet, "error", minutes=4)
    found = await store.ended_to_notify(T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))
    assert [(e.event, e.run.id, e.schedule.id) for e in found] == [("error", error.id, row.id)]


async def test_a_run_event_is_queued_once_however_often_it_is_seen(store):
    row = await store.add_schedule(notifying())
    await add_run(store, row, "error")
    since, until = T0 - timedelta(minutes=1), T0 + timedelta(minutes=1)
    found = await store.ended_to_notify(since, until)
    assert await store.queue_notifications(pending(found)) == 1
    # a second notifier that read the same runs meanwhile queues nothing
    assert await store.queue_notifications(pending(found)) == 0
    assert await store.ended_to_notify(since, until) == []
    rows, total = await store.notifications(row.id)
    assert total == 1 and rows[0].event == "error" and rows[0].status == "pending"


async def test_the_timer_pausing_a_schedule_is_the_paused_event(store):
    why = reasons.OWNER_INACTIVE
    row = await store.add_schedule(notifying(
        events=("paused",), state="paused", next_run=None, updated=T0,
        note=reasons.PAUSED_BY_TIMER.format(why=why)))
    run = await add_run(store, row, "failed", reason=why)
    found = await store.ended_to_notify(T0 - timedelta(minutes=1), T0)
    assert [(e.event, e.run.id) for e in found] == [("paused", run.id)]
    # a user's pause (no note) is not the timer's
    user = await store.add_schedule(notifying(events=("paused",), state="paused",
                                              next_run=None, updated=T0, note=None))
    await add_run(store, user, "failed", reason="whatever")
    assert len(await store.ended_to_notify(T0 - timedelta(minutes=1), T0)) == 1


async def test_a_due_delivery_is_taken_by_one_notifier_until_its_lease_ends(store):
    row = await store.add_schedule(notifying())
    await add_run(store, row, "error")
    await store.queue_notifications(pending(
        await store.ended_to_notify(T0 - timedelta(minutes=1), T0)))
    lease = T0 + timedelta(seconds=30)
    first = await store.take_notifications(T0, lease)
    assert len(first) == 1 and first[0].next_at == lease
    assert await store.take_notifications(T0 + timedelta(seconds=29), lease) == []
    # the first one died before it recorded anything: due again after its lease
    again = await store.take_notifications(lease, lease + timedelta(seconds=30))
    assert [n.id for n in again] == [first[0].id]
    await store.record_attempt(first[0].id, "delivered", 1, None, None, lease)
    assert await store.take_notifications(lease + timedelta(hours=1), lease) == []
    rows, _ = await store.notifications(row.id, [first[0].run_id])
    assert rows[0].status == "delivered" and rows[0].attempts == 1


async def test_the_cursor_only_moves_forward_and_outlives_the_store_object(store_url):
    from kodosumi_timer.store import open_store

    one = await open_store(store_url)
    assert await one.notify_cursor() is None
    await one.set_notify_cursor(T0)
    await one.set_notify_cursor(T0 - timedelta(minutes=5))  # a slower notifier
    await one.close()
    two = await open_store(store_url)
    assert await two.notify_cursor() == T0
    await two.close()


async def test_deliveries_of_a_deleted_schedule_go_with_it(store):
    row = await store.add_schedule(notifying())
    kept = await store.add_schedule(notifying())
    await add_run(store, row, "error")
    await add_run(store, kept, "error")
    await store.queue_notifications(pending(
        await store.ended_to_notify(T0 - timedelta(minutes=1), T0)))
    await store.delete_schedule_logged(row.id)
    assert await store.drop_orphan_notifications() == 1
    assert (await store.notifications(kept.id))[1] == 1
