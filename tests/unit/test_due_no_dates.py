"""A schedule saved without dates to leave out is runnable: its exclude_dates column
holds JSON null, which the due rows read as no dates (it made every "run now", backfill
and trigger-URL run of such a schedule fail "the stored schedule cannot be run")."""

from datetime import UTC, datetime

from kodosumi_timer.models import ScheduleCreate
from kodosumi_timer.schedules import build_schedule
from kodosumi_timer.store.due import DueSchedule
from tests.unit.factories import FakeFlows


async def test_a_schedule_without_dates_left_out_is_read_as_runnable(store):
    data = ScheduleCreate(flow_url="/-/localhost/8001/quick/-/", schedule_type="cron",
                          cron_expression="0 3 * * *", timezone="UTC", inputs={"text": "x"})
    flows = FakeFlows(data.flow_url)
    row, _ = await build_schedule(data, "owner-a", datetime(2026, 12, 3, tzinfo=UTC), flows)
    await store.add_schedule(row)
    due = (await store.due_by_id([row.id]))[row.id]
    assert isinstance(due, DueSchedule), due
    assert due.exclude_dates == frozenset()
