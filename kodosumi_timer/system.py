"""System schedules: operator-declared timers, synced into the store.

Two sources declare them, one schedule per flow:

* the schedules file (``KODO_TIMER_SCHEDULES``, YAML): a list of entries with ``flow``,
  ``cron``, ``timezone``, ``inputs``, ``enabled``, ``title``, ``catchup``, ``overlap``;
* the flows themselves: ``openapi_extra={"x-kodosumi-schedule": {...}}`` on kodosumi's
  ``ServeAPI.enter`` lands in the flow app's OpenAPI operation, found through the panel's
  flow list. The file wins when both name the same flow.

:func:`sync` makes the store's system schedules (owned by the timer user, ``system``
true) match the declarations in one transaction and never touches user schedules.
:class:`SystemSchedules` is what the timer calls on every loop turn: it re-reads the file
only when it changed, re-discovers the flows now and then, and keeps the current set
running when a source is broken or unreachable.
"""

import asyncio
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from sqlalchemy import delete, select, update

from kodosumi_timer import cron
from kodosumi_timer.bridge import flow_path, mint_token
from kodosumi_timer.store import RunRow, ScheduleRow, Store
from kodosumi_timer.store.repository import new_id

log = logging.getLogger("kodosumi_timer.system")

EXTENSION = "x-kodosumi-schedule"
Source = Literal["file", "flow"]
# the file wins over a flow's own declaration
PRECEDENCE: dict[str, int] = {"file": 2, "flow": 1}
DISABLED_NOTES: dict[str, str] = {
    "file": "disabled in the schedules file",
    "flow": "disabled by the flow's own schedule declaration",
}


# ---- the declarations ----------------------------------------------------------


def _jsonable(value: Any, where: str = "inputs") -> Any:
    """YAML reads ``2027-01-04`` as a date: store it as the ISO text a form would send."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"{where}: {type(value).__name__} values cannot be sent to a flow")


class ScheduleDeclaration(BaseModel):
    """What a flow may declare under ``x-kodosumi-schedule``; the file's entries add
    ``flow``. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(min_length=1, max_length=1000)
    timezone: str = Field("UTC", min_length=1, max_length=64)
    inputs: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    title: str | None = Field(None, max_length=200)
    catchup: Literal["once", "skip"] | None = None
    overlap: Literal["skip", "allow"] | None = None

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        value = value.strip()
        cron.validate(value)  # CronError (a ValueError) names the cron field at fault
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return cron.parse_zone(value).key  # TimezoneError is a ValueError

    @field_validator("inputs")
    @classmethod
    def _json_inputs(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _jsonable(value)  # type: ignore[no-any-return]


class SystemEntry(ScheduleDeclaration):
    """One system schedule: a flow (its panel URL) and when and how to run it."""

    flow: str = Field(min_length=1, max_length=1000)

    _source: str = PrivateAttr("file")
    _expose_name: str | None = PrivateAttr(None)

    @field_validator("flow")
    @classmethod
    def _panel_path(cls, value: str) -> str:
        path = flow_path(value.strip())
        if not path.startswith("/-/"):
            raise ValueError(f"{value!r} is not a flow's panel URL (like /-/localhost/8001/"
                             "hello/-/); see the flow list of the panel")
        return path

    @property
    def source(self) -> str:
        return self._source

    @property
    def expose_name(self) -> str | None:
        return self._expose_name

    def declared_by(self, source: Source, expose_name: str | None = None) -> "SystemEntry":
        entry = self.model_copy()
        entry._source = source
        entry._expose_name = expose_name
        return entry


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the file; ``index`` is 1-based, None for the file as a whole."""

    index: int | None
    flow: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"entry {self.index}" + (f" (flow {self.flow})" if self.flow else ""))
        if self.field:
            where.append(f"field {self.field!r}")
        return (": ".join(where) + ": " if where else "") + self.message


class SystemConfigError(ValueError):
    """A schedules file that cannot be used; the message names each entry and field."""

    def __init__(self, path: str, problems: Sequence[Problem]):
        self.path = path
        self.problems = list(problems)
        first = self.problems[0]
        self.index, self.flow, self.field = first.index, first.flow, first.field
        lines = [f"{path}: {p}" for p in self.problems[:20]]
        if len(self.problems) > 20:
            lines.append(f"{path}: ... and {len(self.problems) - 20} more problems")
        super().__init__("\n".join(lines))


def _problem(index: int | None, flow: str | None, error: Any) -> Problem:
    loc = [str(part) for part in error.get("loc", ())]
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid"))
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(SystemEntry.model_fields,
                                   key=lambda name: (name != "flow", name != "cron")))
        message = f"unknown key (allowed: {allowed})"
    elif kind == "missing":
        message = "is required"
    return Problem(index, flow, ".".join(loc) or None, message)


def parse_entries(data: Any, path: str = "<schedules>") -> list[SystemEntry]:
    """Validate the file's parsed YAML (a list of entries, or nothing)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise SystemConfigError(path, [Problem(None, None, None, (
            "expected a list of entries (each starting with '- flow: ...'), "
            f"got {type(data).__name__}"))])
    problems: list[Problem] = []
    entries: list[SystemEntry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data, start=1):
        flow = raw.get("flow") if isinstance(raw, dict) else None
        flow = str(flow) if flow is not None else None
        if not isinstance(raw, dict):
            problems.append(Problem(index, None, None,
                                    f"expected a mapping of keys, got {type(raw).__name__}"))
            continue
        try:
            entry = SystemEntry.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_problem(index, flow, e) for e in exc.errors())
            continue
        if entry.flow in seen:
            problems.append(Problem(index, entry.flow, "flow",
                                    f"duplicate: entry {seen[entry.flow]} already schedules "
                                    "this flow (one system schedule per flow)"))
            continue
        seen[entry.flow] = index
        entries.append(entry)
    if problems:
        raise SystemConfigError(path, problems)
    return entries


def load_file(path: str | os.PathLike[str], missing_ok: bool = True) -> list[SystemEntry]:
    """The entries of the schedules file; an absent file has none (unless ``missing_ok``
    is false). Raises :class:`SystemConfigError` naming the entry and field at fault."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return []
        raise SystemConfigError(name, [Problem(None, None, None, "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemConfigError(name, [Problem(None, None, None,
                                               f"cannot be read: {exc}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        hint = " (quote cron expressions such as '@daily' or '*/5 * * * *')" \
            if "'@'" in str(problem) or "'*'" in str(problem) or "alias" in str(problem) else ""
        raise SystemConfigError(name, [Problem(None, None, None,
                                               f"{where}not valid YAML: {problem}{hint}")]) \
            from None
    return parse_entries(data, name)


def merge(file_entries: Iterable[SystemEntry], flow_entries: Iterable[SystemEntry],
          names: dict[str, str] | None = None) -> list[SystemEntry]:
    """One entry per flow, the file's over the flow's own; flow summaries as names."""
    names = names or {}
    merged: dict[str, SystemEntry] = {}
    for entry in flow_entries:
        merged[entry.flow] = entry.declared_by("flow", names.get(entry.flow))
    for entry in file_entries:
        merged[entry.flow] = entry.declared_by("file", names.get(entry.flow))
    return list(merged.values())


# ---- syncing into the store ----------------------------------------------------


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


def _first_fire(entry: SystemEntry, now: datetime) -> datetime | None:
    times = cron.next_fire_times(entry.cron, entry.timezone, now, 1)
    return times[0] if times else None


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
    source's ``enabled: false`` pauses with a note, and ``enabled: true`` lifts only that."""
    values = {key: value for key, value in _definition(entry, owner).items()
              if getattr(row, key) != value}
    if entry.expose_name and entry.expose_name[:200] != row.expose_name:
        values["expose_name"] = entry.expose_name[:200]
    retimed = "cron_expression" in values or "timezone" in values
    # never offer again a slot the timer already claimed (claim-ahead)
    after = max(now, row.last_run) if row.last_run else now
    disabled_note = DISABLED_NOTES[entry.source]
    if not entry.enabled:
        if row.state != "paused" or row.note != disabled_note:
            values.update(state="paused", next_run=None, note=disabled_note)
    elif (row.state == "paused" and row.note in DISABLED_NOTES.values()) \
            or row.state == "done":
        values.update(state="active", next_run=_first_fire(entry, after), note=None)
    elif row.state == "active" and (retimed or row.next_run is None):
        values["next_run"] = _first_fire(entry, after)
    return values


def _new_row(entry: SystemEntry, now: datetime, owner: str) -> ScheduleRow:
    enabled = entry.enabled
    return ScheduleRow(
        id=new_id(), system=True, system_key=entry.flow,
        expose_name=(entry.expose_name or entry.title or entry.flow)[:200],
        state="active" if enabled else "paused",
        next_run=_first_fire(entry, now) if enabled else None,
        note=None if enabled else DISABLED_NOTES[entry.source],
        run_count=0, version=1, created=now, updated=now,
        **_definition(entry, owner))


async def sync(store: Store, entries: Sequence[SystemEntry], now: datetime, owner: str,
               *, keep: Collection[str] = ()) -> SyncReport:
    """Make the store's synced system schedules match ``entries`` (one per flow), in one
    transaction: add the new, update the changed, remove those no source declares.

    ``keep`` names sources whose declarations are unknown right now (a broken file, an
    unreachable panel): their schedules stay as they are, unless a source that wins over
    them declares the same flow. User schedules and system rows this module did not
    create (no ``system_source``) are never touched."""
    wanted: dict[str, SystemEntry] = {}
    for entry in entries:
        current = wanted.get(entry.flow)
        if current is None or PRECEDENCE[entry.source] > PRECEDENCE[current.source]:
            wanted[entry.flow] = entry
    report = SyncReport()
    async with store.session.begin() as s:
        rows = (await s.execute(
            select(ScheduleRow).where(ScheduleRow.system.is_(True),
                                      ScheduleRow.system_source.is_not(None))
        )).scalars().all()
        existing = {row.system_key or row.flow_url: row for row in rows}
        for key, row in existing.items():
            source = row.system_source or "file"
            wanted_entry = wanted.get(key)
            if wanted_entry is None:
                if source in keep:
                    continue
                await s.execute(delete(RunRow).where(RunRow.schedule_id == row.id))
                await s.execute(delete(ScheduleRow).where(ScheduleRow.id == row.id))
                report.removed.append(key)
                continue
            if source in keep and PRECEDENCE[wanted_entry.source] < PRECEDENCE.get(source, 0):
                continue
            values = plan_change(row, wanted_entry, now, owner)
            if not values:
                continue
            values.update(updated=now, version=ScheduleRow.version + 1, system_key=key)
            result = await s.execute(
                update(ScheduleRow).where(ScheduleRow.id == row.id,
                                          ScheduleRow.version == row.version).values(**values))
            if result.rowcount == 1:  # type: ignore[attr-defined]
                report.updated.append(key)
            else:  # changed meanwhile (an operator's pause): the next sync looks again
                log.info("system schedule %s changed meanwhile; syncing it later", row.id)
        for key, entry in wanted.items():
            if key not in existing:
                s.add(_new_row(entry, now, owner))
                report.added.append(key)
    return report


async def status_lines(store: Store) -> list[str]:
    """One line per system schedule for ``koco-timer status``: next run, last result."""
    from kodosumi_timer.store.repository import ScheduleFilter

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


# ---- flow-declared schedules ---------------------------------------------------


@dataclass
class Discovered:
    """What the flow registry said: declared entries, flow names, and the flows whose
    OpenAPI could not be read this time (their previous declarations stay)."""

    entries: list[SystemEntry]
    names: dict[str, str]
    unreadable: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    flows: set[str] = field(default_factory=set)  # every flow URL the panel listed


class Discovery(Protocol):
    async def discover(self) -> Discovered: ...

    async def close(self) -> None: ...


def _flow_root(source: str) -> str:
    """The panel path prefix of a flow app, computed from its openapi.json URL the way
    kodosumi's register does (``/-/host/port/prefix/-/``)."""
    base = source.rstrip("/").rsplit("/", 1)[0]
    parts = urlparse(base)
    return f"/-/{parts.hostname}/{parts.port}{parts.path}/-/"


def declaration_of(openapi: dict[str, Any], flow_url: str, source: str) -> Any:
    """The ``x-kodosumi-schedule`` value of the flow's operation(s), or None."""
    root = _flow_root(source)
    url = flow_path(flow_url)
    ext = url[len(root):] if url.startswith(root) else url.rsplit("/-/", 1)[-1]
    ext = ext.strip("/")
    for path, operations in (openapi.get("paths") or {}).items():
        if path.strip("/") != ext or not isinstance(operations, dict):
            continue
        for method in ("get", "post", *operations):
            operation = operations.get(method)
            if isinstance(operation, dict) and EXTENSION in operation:
                return operation[EXTENSION]
    return None


class PanelDiscovery:
    """Flow-declared schedules, found through the panel's flow list (``GET /flow`` as
    the timer user gives each flow's ``url`` and ``source``, its openapi.json)."""

    HEADER = "KODOSUMI_API_KEY"

    def __init__(self, panel_url: str, secret: str, user: str, *, token_ttl: int = 300,
                 timeout: float = 10.0, client: httpx.AsyncClient | None = None):
        self.secret, self.user, self.token_ttl = secret, user, token_ttl
        self.client = client or httpx.AsyncClient(base_url=panel_url.rstrip("/"),
                                                  timeout=timeout)

    async def _flows(self) -> list[dict[str, Any]]:
        headers = {self.HEADER: mint_token(self.user, self.token_ttl, self.secret),
                   "Accept": "application/json"}
        items: list[dict[str, Any]] = []
        offset: str | None = None
        for _ in range(1000):  # a cursor that never ends is the panel's bug, not a hang
            params: dict[str, Any] = {"pp": 100}
            if offset:
                params["offset"] = offset
            response = await self.client.get("/flow", params=params, headers=headers)
            response.raise_for_status()
            body = response.json()
            items.extend(body.get("items") or [])
            offset = body.get("offset")
            if not offset:
                break
        return items

    async def discover(self) -> Discovered:
        flows = await self._flows()  # the panel unreachable: raise, keep what we have
        found = Discovered(entries=[], names={})
        specs: dict[str, dict[str, Any] | None] = {}
        for item in flows:
            url, source = item.get("url"), item.get("source")
            if not url or not source:
                continue
            url = flow_path(url)
            found.flows.add(url)
            if item.get("summary"):
                found.names[url] = str(item["summary"])
            if source not in specs:
                try:
                    # the flow app's own OpenAPI (what the panel registered), read only
                    response = await self.client.get(source)
                    response.raise_for_status()
                    specs[source] = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    found.warnings.append(f"cannot read {source}: {exc.__class__.__name__}")
                    specs[source] = None
            spec = specs[source]
            if spec is None:
                found.unreadable.add(url)
                continue
            declared = declaration_of(spec, url, source)
            if declared is None:
                continue
            if not isinstance(declared, dict):
                found.warnings.append(f"flow {url}: {EXTENSION} must be a mapping with "
                                      "at least 'cron'; ignored")
                continue
            try:
                entry = SystemEntry.model_validate({**declared, "flow": url})
            except ValidationError as exc:
                problems = "; ".join(str(_problem(None, None, e)) for e in exc.errors())
                found.warnings.append(f"flow {url}: {EXTENSION} ignored: {problems}")
                continue
            found.entries.append(entry.declared_by("flow", found.names.get(url)))
        return found

    async def close(self) -> None:
        await self.client.aclose()


# ---- what the timer calls ------------------------------------------------------


class SystemSchedules:
    """The timer's view of the system schedules: ``await refresh(now)`` on every loop
    turn. Cheap when nothing changed (one ``stat`` of the file); the flows are asked in
    a background task, so a slow panel never delays a fire."""

    def __init__(self, store: Store, path: str | os.PathLike[str], owner: str, *,
                 discovery: Discovery | None = None, discover_every: float = 60.0,
                 check_every: float = 5.0, monotonic: Callable[[], float] = time.monotonic):
        self.store = store
        self.path = Path(path)
        self.owner = owner
        self.discovery = discovery
        self.discover_every = discover_every
        # the timer wakes at least this often, so a changed file is seen in time
        self.check_interval = check_every
        self.monotonic = monotonic
        self.file_entries: list[SystemEntry] | None = None  # None: no good file read yet
        self.flow_entries: list[SystemEntry] | None = None  # None: not discovered yet
        self.names: dict[str, str] = {}
        self.flows: set[str] | None = None  # the panel's flows, once discovered
        self.last_error: str | None = None
        self._signature: tuple[int, int, int] | None | Literal["unset"] = "unset"
        self._next_round = 0.0
        self._dirty = True
        self._warned: set[str] = set()  # discovery warnings already logged
        self._unregistered: set[str] = set()  # file flows already warned about
        self._discovering: asyncio.Task[Discovered] | None = None

    def _file_signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload_file(self) -> bool:
        """Re-read the file if its mtime, size or inode changed; True if new entries were
        taken. A broken file is logged once and the last good entries stay."""
        signature = self._file_signature()
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            entries = load_file(self.path)
        except SystemConfigError as exc:
            self.last_error = str(exc)
            log.error("schedules file rejected; the current system schedules keep "
                      "running unchanged:\n%s", exc)
            return False
        self.last_error = None
        if signature is None:
            log.info("no schedules file at %s", self.path)
        else:
            log.info("schedules file %s: %d entries", self.path, len(entries))
        self.file_entries = entries
        return True

    def _take_discovery(self) -> bool:
        """Apply a finished discovery; True if it brought news."""
        task = self._discovering
        if task is None or not task.done():
            return False
        self._discovering = None
        if task.cancelled() or task.exception() is not None:
            exc = None if task.cancelled() else task.exception()
            log.warning("flow-declared schedules not discovered (%r); keeping the current "
                        "ones", exc)
            if self.flow_entries is None:  # never discovered: try again soon
                self._next_round = self.monotonic() + self.check_interval
            return False
        found = task.result()
        for message in found.warnings:
            if message not in self._warned:
                log.warning("%s", message)
        self._warned = set(found.warnings)
        previous = {e.flow: e for e in self.flow_entries or []}
        kept = [previous[url] for url in sorted(found.unreadable) if url in previous]
        self.flow_entries = found.entries + kept
        self.names = found.names
        self.flows = found.flows | found.unreadable
        return True

    def _warn_unregistered(self) -> None:
        if self.flows is None or self.file_entries is None:
            return
        for entry in self.file_entries:
            if entry.flow not in self.flows:
                message = (f"schedules file: flow {entry.flow} is not registered in the "
                           "panel; its runs fail until it is (copy the URL from GET /flow)")
                if entry.flow not in self._unregistered:
                    log.warning("%s", message)
                self._unregistered.add(entry.flow)

    async def wait_discovery(self) -> None:
        """Wait for a discovery in flight (tests, shutdown)."""
        if self._discovering is not None:
            await asyncio.wait({self._discovering})

    async def refresh(self, now: datetime) -> SyncReport | None:
        """Sync when a source changed, and every ``discover_every`` seconds anyway."""
        changed = self.reload_file()
        changed |= self._take_discovery()
        if self._discovering is None and self.monotonic() >= self._next_round:
            self._next_round = self.monotonic() + self.discover_every
            self._dirty = True
            if self.discovery is None:
                self.flow_entries = []
            else:
                self._discovering = asyncio.create_task(self.discovery.discover())
        if not (changed or self._dirty):
            return None
        keep = {source for source, known in
                (("file", self.file_entries), ("flow", self.flow_entries)) if known is None}
        self._warn_unregistered()
        entries = merge(self.file_entries or [], self.flow_entries or [], self.names)
        self._dirty = True  # until the sync went through
        report = await sync(self.store, entries, now, self.owner, keep=keep)
        self._dirty = False
        if report.changed:
            log.info("system schedules synced: %s", report)
        return report

    async def close(self) -> None:
        if self._discovering is not None:
            self._discovering.cancel()
            await asyncio.wait({self._discovering})
            self._discovering = None
        if self.discovery is not None:
            await self.discovery.close()
