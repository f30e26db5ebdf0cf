"""The schedule store: tables, migrations and the repository the API and the timer share."""

from kodosumi_timer.store.repository import Store, open_store
from kodosumi_timer.store.tables import RunRow, ScheduleRow

__all__ = ["RunRow", "ScheduleRow", "Store", "open_store"]
