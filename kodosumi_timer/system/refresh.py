"""What the timer calls on every loop turn: :class:`SystemSchedules` re-reads the file
only when it changed, re-discovers the flows now and then, checks each declaration's
inputs against its agent's form (as a user schedule's are), and keeps the current set
running when a source is broken or unreachable."""

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from kodosumi_timer import forminputs
from kodosumi_timer.errors import InvalidInput, TimerError
from kodosumi_timer.store import Store
from kodosumi_timer.system.declarations import SystemConfigError, SystemEntry, load_file, merge
from kodosumi_timer.system.discovery import Discovered, Discovery
from kodosumi_timer.system.sync import SyncReport, sync

log = logging.getLogger("kodosumi_timer.system")


class Forms(Protocol):
    """A flow's input form (its ``elements``) as the timer user gets it; a TimerError
    when it cannot be read."""

    async def form(self, flow_url: str) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


# a declaration's inputs as the form posts them, or why the form refuses them
Fitted = dict[str, str] | str
Key = tuple[str, str]  # (flow, its inputs as JSON)


def _key(entry: SystemEntry) -> Key:
    return entry.flow, json.dumps(entry.inputs, sort_keys=True)


async def fit_inputs(forms: Forms, entries: Sequence[SystemEntry]) -> dict[Key, Fitted | None]:
    """Each declaration's inputs checked against its agent's form, as the API checks a
    user's (``forminputs``); None where the form cannot be read now."""
    out: dict[Key, Fitted | None] = {}
    for entry in entries:
        try:
            elements = await forms.form(entry.flow)
        except TimerError as exc:
            log.warning("flow %s: its form cannot be read (%s); its system schedule keeps "
                        "its inputs as declared until it can", entry.flow, exc.detail)
            out[_key(entry)] = None
            continue
        try:
            out[_key(entry)] = forminputs.normalise(elements, entry.inputs)
        except InvalidInput as exc:
            field = exc.field or "inputs"
            out[_key(entry)] = exc.detail if field in exc.detail else f"{field}: {exc.detail}"
    return out


class SystemSchedules:
    """The timer's view of the system schedules: ``await refresh(now)`` on every loop
    turn. Cheap when nothing changed (one ``stat`` of the file); the flows are asked in
    a background task, so a slow panel never delays a fire."""

    def __init__(self, store: Store, path: str | os.PathLike[str], owner: str, *,
                 discovery: Discovery | None = None, forms: Forms | None = None,
                 discover_every: float = 60.0, check_every: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic):
        self.store = store
        self.path = Path(path)
        self.owner = owner
        self.discovery = discovery
        # None: inputs are taken as declared (no agent to ask)
        self.forms = forms
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
        # inputs checked against the forms in this discovery round (forms change when
        # an agent is deployed anew); unfitted: forms that could not be read
        self._fitted: dict[Key, Fitted] = {}
        self._unfitted: set[Key] = set()
        self._fitting: asyncio.Task[dict[Key, Fitted | None]] | None = None
        self._fitting_keys: set[Key] = set()

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

    def _take_fitting(self) -> bool:
        """Apply a finished check of inputs against forms; True if one finished."""
        task = self._fitting
        if task is None or not task.done():
            return False
        self._fitting = None
        if task.cancelled() or task.exception() is not None:
            exc = None if task.cancelled() else task.exception()
            log.warning("system schedule inputs not checked against their forms (%r); "
                        "taking them as declared", exc)
            self._unfitted |= self._fitting_keys
            return True
        for key, fitted in task.result().items():
            if fitted is None:
                self._unfitted.add(key)
            else:
                self._fitted[key] = fitted
        return True

    def _fit(self, entries: list[SystemEntry]) -> tuple[list[SystemEntry], set[str]]:
        """The entries with their inputs as their forms post them, and the flows whose
        check is still to come (held back from this sync; the check is started)."""
        if self.forms is None:
            return entries, set()
        out: list[SystemEntry] = []
        pending: list[SystemEntry] = []
        for entry in entries:
            key = _key(entry)
            fitted = self._fitted.get(key)
            if isinstance(fitted, dict):
                out.append(entry.fitted(fitted))
            elif isinstance(fitted, str):
                out.append(entry.unfit(fitted))
            elif key in self._unfitted:
                out.append(entry)
            else:
                pending.append(entry)
        if pending and self._fitting is None:
            self._fitting_keys = {_key(entry) for entry in pending}
            self._fitting = asyncio.create_task(fit_inputs(self.forms, pending))
        return out, {entry.flow for entry in pending}

    async def wait_discovery(self) -> None:
        """Wait for a discovery or a check of inputs in flight (tests, shutdown)."""
        for task in (self._discovering, self._fitting):
            if task is not None:
                await asyncio.wait({task})

    async def refresh(self, now: datetime) -> SyncReport | None:
        """Sync when a source changed, and every ``discover_every`` seconds anyway."""
        changed = self.reload_file()
        changed |= self._take_discovery()
        changed |= self._take_fitting()
        if self._discovering is None and self.monotonic() >= self._next_round:
            self._next_round = self.monotonic() + self.discover_every
            self._dirty = True
            self._fitted, self._unfitted = {}, set()
            if self.discovery is None:
                self.flow_entries = []
            else:
                self._discovering = asyncio.create_task(self.discovery.discover())
        if not (changed or self._dirty):
            return None
        keep = {source for source, known in
                (("file", self.file_entries), ("flow", self.flow_entries)) if known is None}
        self._warn_unregistered()
        entries, hold = self._fit(merge(self.file_entries or [], self.flow_entries or [],
                                        self.names))
        self._dirty = True  # until the sync went through
        report = await sync(self.store, entries, now, self.owner, keep=keep, hold=hold)
        self._dirty = False
        if report.changed:
            log.info("system schedules synced: %s", report)
        return report

    async def close(self) -> None:
        for task in (self._discovering, self._fitting):
            if task is not None:
                task.cancel()
                await asyncio.wait({task})
        self._discovering = self._fitting = None
        if self.discovery is not None:
            await self.discovery.close()
        if self.forms is not None:
            await self.forms.close()
