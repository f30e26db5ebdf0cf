"""The store's part of the API's writes, on SQLite and PostgreSQL: the change log with
its schedule, and text search that matches LIKE's wildcards literally."""

from datetime import timedelta

from kodosumi_timer.store.repository import ScheduleFilter
from kodosumi_timer.store.tables import ChangeRow
from tests.unit.factories import T0, schedule


def change(row, action, at=T0, **fields):
    return ChangeRow(schedule_id=row.id, at=at, actor="someone", action=action,
                     fields={k: list(v) for k, v in fields.items()})


async def test_change_log_is_written_with_its_change_and_deleted_with_the_schedule(store):
    row = schedule(title="first")
    other = schedule(title="other")
    await store.add_schedule_logged(row, change(row, "create"))
    await store.add_schedule_logged(other, change(other, "create"))
    updated = await store.update_logged(row.id, 1, {"title": "second"},
                                        change(row, "edit", T0 + timedelta(seconds=1),
                                               title=("first", "second")))
    assert updated is not None and updated.title == "second" and updated.version == 2
    # a stale version changes nothing and logs nothing
    assert await store.update_logged(row.id, 1, {"title": "third"}, change(row, "edit")) is None
    run = await store.queue_manual_run_logged(row, T0, change(row, "trigger"))
    assert run is not None and run.status == "queued"
    # a second run for the very same instant is refused, and not logged either
    assert await store.queue_manual_run_logged(row, T0, change(row, "trigger")) is None
    rows, total = await store.changes(row.id)
    assert total == 3 and [c.action for c in rows] == ["trigger", "edit", "create"]
    assert rows[1].fields == {"title": ["first", "second"]} and rows[1].at == T0 + timedelta(
        seconds=1)
    assert [c.action for c in (await store.changes(row.id, 1, 1))[0]] == ["edit"]
    assert await store.delete_schedule_logged(row.id)
    assert await store.changes(row.id) == ([], 0)
    assert await store.runs(row.id) == ([], 0)
    assert (await store.changes(other.id))[1] == 1
    assert not await store.delete_schedule_logged(row.id)


async def test_text_search_matches_wildcards_literally(store):
    for title in ("100% sure", "1000 sure", "a_b", "axb", "back\\slash", "backXslash"):
        await store.add_schedule(schedule(title=title))

    async def titles(text):
        rows, _ = await store.list_schedules(None, filters=ScheduleFilter(text=text))
        return sorted(r.title for r in rows)

    assert await titles("100%") == ["100% sure"]
    assert await titles("a_b") == ["a_b"]
    assert await titles("k\\s") == ["back\\slash"]
    assert await titles("%") == ["100% sure"]
    assert await titles("SURE") == ["100% sure", "1000 sure"]
