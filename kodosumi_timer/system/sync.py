"""Syncing declared system schedules into the store, through :class:`Store` like every
other write: what to add, change and remove is planned here from the rows the store
reads, and written by it in one transaction."""

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kodosumi_timer.schedules import next_slot
from kodosumi_timer.store import ScheduleRow, Store
from kodosumi_timer.store.repository import ScheduleFilter, new_id
from kodosumi_timer.store.system_rows import SystemWrites
from kodosumi_timer.system.declarations import PRECEDENCE, SystemEntry, paused_by_source

log = logging.getLogger("kodosumi_timer.system")


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def __str__(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, "
                f"{len(self.removed)} removed")


def _definition(entry: SystemEntry, owner: str) -> dict[str, Any]:
    return {
        "owner": owner, "flow_url": entry.flow, "title": entry.title,
        "schedule_type": "cron", "cron_expression": entry.cron, "run_at": None,
        "timezone": entry.timezone, "inputs": entry.inputs,
        "catchup": entry.catchup or "once", "overlap": entry.overlap or "skip",
        "end_at": None, "max_runs": None, "system_source": entry.source,
    }


def plan_change(row: ScheduleRow, entry: SystemEntry, now: datetime,
                owner: str) -> dict[str, Any]:
    """The column values that bring ``row`` in line with ``entry`` (empty: nothing to do).

    The next slot is recomputed when the timing changed; an operator's pause stays; the
    source's ``enabled: false`` (or inputs the agent's form refuses) pauses with a note,
    and only that pause is lifted when the entry is enabled and fits again."""
    values = {key: value for key, value in _definition(entry, owner).items()
              if getattr(row, key) != value}
    if entry.expose_name and entry.expose_name[:200] != row.expose_name:
        values["expose_name"] = entry.expose_name[:200]
    retimed = "cron_expression" in values or "timezone" in values
    pause_note = entry.pause_note
    if pause_note is not None:
        if row.state != "paused" or row.note != pause_note:
            values.update(state="paused", next_run=None, note=pause_note)
    elif (row.state == "paused" and paused_by_source(row.note)) or row.state == "done":
        values.update(state="active", note=None,
                      next_run=next_slot(entry.cron, entry.timezone, now, row.last_run))
    elif row.state == "active" and (retimed or row.next_run is None):
        values["next_run"] = next_slot(entry.cron, entry.timezone, now, row.last_run)
    return values


def _new_row(entry: SystemEntry, now: datetime, owner: str) -> ScheduleRow:
    pause_note = entry.pause_note
    return ScheduleRow(
        id=new_id(), system=True, system_key=entry.flow,
        expose_name=(entry.expose_name or entry.title or entry.flow)[:200],
        state="active" if pause_note is None else "paused",
        next_run=next_slot(entry.cron, entry.timezone, now) if pause_note is None else None,
        note=pause_note, run_count=0, version=1, created=now, updated=now,
        **_definition(entry, owner))


async def sync(store: Store, entries: Sequence[SystemEntry], now: datetime, owner: str,
               *, keep: Collection[str] = (), hold: Collection[str] = ()) -> SyncReport:
    """Make the store's synced system schedules match ``entries`` (one per flow), in one
    transaction: add the new, update the changed, remove those no source declares
    (with their runs and change log).

    ``keep`` names sources whose declarations are unknown right now (a broken file, an
    unreachable panel): their schedules stay as they are, unless a source that wins over
    them declares the same flow. ``hold`` names flows whose declaration is not settled
    yet (its inputs still being checked against the agent's form): their schedules stay
    as they are. User schedules and system rows this module did not create (no
    ``system_source``) are never touched."""
    wanted: dict[str, SystemEntry] = {}
    for entry in entries:
        current = wanted.get(entry.flow)
        if current is None or PRECEDENCE[entry.source] > PRECEDENCE[current.source]:
            wanted[entry.flow] = entry
    report = SyncReport()
    changing: dict[str, str] = {}  # row id: its flow

    def plan(rows: Sequence[ScheduleRow]) -> SystemWrites:
        writes = SystemWrites()
        existing = {row.system_key or row.flow_url: row for row in rows}
        for key, row in existing.items():
            if key in hold:
                continue
            source = row.system_source or "file"
            wanted_entry = wanted.get(key)
            if wanted_entry is None:
                if source not in keep:
                    writes.remove.append(row)
                    report.removed.append(key)
                continue
            if source in keep and PRECEDENCE[wanted_entry.source] < PRECEDENCE.get(source, 0):
                continue
            values = plan_change(row, wanted_entry, now, owner)
            if values:
                values.update(updated=now, system_key=key)
                writes.change.append((row, values))
                changing[row.id] = key
        for key, entry in wanted.items():
            if key not in existing and key not in hold:
                writes.add.append(_new_row(entry, now, owner))
                report.added.append(key)
        return writes

    written = await store.sync_system(plan)
    for row_id, key in changing.items():
        if row_id in written:
            report.updated.append(key)
        else:  # changed meanwhile (an operator's pause): the next sync looks again
            log.info("system schedule %s changed meanwhile; syncing it later", row_id)
    return report


async def status_lines(store: Store) -> list[str]:
    """One line per system schedule for ``koco-timer status``: next run, last result."""
    rows, _ = await store.list_schedules(None, limit=500, filters=ScheduleFilter(system=True))

    def when(moment: datetime | None) -> str:
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"

    lines = []
    for row in rows:
        name = row.title or row.expose_name
        source = row.system_source or "?"
        state = row.state + (f" ({row.note})" if row.note else "")
        last = f"{when(row.last_run)} {row.last_status or ''}".strip() if row.last_run \
            else "never ran"
        lines.append(f"{name} [{source}] {row.flow_url} '{row.cron_expression}' "
                     f"{row.timezone}: {state}; next {when(row.next_run)}; last {last}")
    return lines
