"""A schedule saved with ``exclude_dates`` None (as the API saves every rule without
excluded dates) is stored as SQL NULL (as JSON null before, see test_bad_rows); the timer
reads either as no excluded dates, not as a bad row (found by the metrics integration
test: every such schedule was paused)."""

from kodosumi_timer.store.due import DueSchedule
from tests.unit.factories import T0, schedule


async def test_exclude_dates_stored_as_json_null_is_no_excluded_dates(store):
    row = await store.add_schedule(schedule(exclude_dates=None))
    due = await store.due(T0)
    assert [type(d) for d in due] == [DueSchedule]
    assert due[0].id == row.id and due[0].exclude_dates == frozenset()
