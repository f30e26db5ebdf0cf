"""System schedules: operator-declared timers, synced into the store.

Two sources declare them, one schedule per flow:

* the schedules file (``KODO_TIMER_SCHEDULES``, YAML): a list of entries with ``flow``,
  ``cron``, ``timezone``, ``inputs``, ``enabled``, ``title``, ``catchup``, ``overlap``;
* the flows themselves: ``openapi_extra={"x-kodosumi-schedule": {...}}`` on kodosumi's
  ``ServeAPI.enter`` lands in the flow app's OpenAPI operation, found through the panel's
  flow list. The file wins when both name the same flow.

``declarations`` holds the file's model and its validation, ``discovery`` finds the
flows' own declarations (through the bridge), ``sync`` makes the store's system
schedules (owned by the timer user, ``system`` true) match the declarations in one
transaction through :class:`~kodosumi_timer.store.Store` and never touches user
schedules, and ``refresh`` is what the timer calls on every loop turn.
"""

from kodosumi_timer.system.declarations import (
    DISABLED_NOTES,
    EXTENSION,
    PRECEDENCE,
    UNFIT_NOTE,
    Problem,
    ScheduleDeclaration,
    Source,
    SystemConfigError,
    SystemEntry,
    load_file,
    merge,
    parse_entries,
)
from kodosumi_timer.system.discovery import (
    Discovered,
    Discovery,
    PanelDiscovery,
    declaration_of,
)
from kodosumi_timer.system.refresh import Forms, SystemSchedules, fit_inputs
from kodosumi_timer.system.sync import SyncReport, plan_change, status_lines, sync

__all__ = [
    "DISABLED_NOTES", "EXTENSION", "PRECEDENCE", "UNFIT_NOTE", "Discovered", "Discovery",
    "Forms", "PanelDiscovery", "Problem", "ScheduleDeclaration", "Source",
    "SyncReport", "SystemConfigError", "SystemEntry", "SystemSchedules", "declaration_of",
    "fit_inputs", "load_file", "merge", "parse_entries", "plan_change", "status_lines",
    "sync",
]
