"""System schedules as declared: the schedules file's model and its validation, what
a flow may declare under ``x-kodosumi-schedule``, and the merging of both (the file
wins)."""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from kodosumi_timer import cron
from kodosumi_timer.bridge import flow_path

EXTENSION = "x-kodosumi-schedule"
Source = Literal["file", "flow"]
# the file wins over a flow's own declaration
PRECEDENCE: dict[str, int] = {"file": 2, "flow": 1}
DISABLED_NOTES: dict[str, str] = {
    "file": "disabled in the schedules file",
    "flow": "disabled by the flow's own schedule declaration",
}
# a declaration whose inputs the agent's form refuses is paused with this note, until
# they fit (as the API answers 422 to a user's)
UNFIT_NOTE = "its inputs do not fit the agent's form: "


def paused_by_source(note: str | None) -> bool:
    """Whether a pause with ``note`` is the sync's own (lifted when the declaration is
    enabled and fits again), not an operator's."""
    return note is not None and (note in DISABLED_NOTES.values()
                                 or note.startswith(UNFIT_NOTE))


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
    _unfit: str | None = PrivateAttr(None)  # why the agent's form refuses its inputs

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

    @property
    def pause_note(self) -> str | None:
        """Why the sync keeps this schedule paused: disabled by its source, or inputs
        the agent's form refuses; None when it runs."""
        if not self.enabled:
            return DISABLED_NOTES[self._source]
        if self._unfit is not None:
            return (UNFIT_NOTE + self._unfit)[:1000]
        return None

    def declared_by(self, source: Source, expose_name: str | None = None) -> "SystemEntry":
        entry = self.model_copy()
        entry._source = source
        entry._expose_name = expose_name
        return entry

    def fitted(self, inputs: dict[str, Any]) -> "SystemEntry":
        """This declaration with its inputs as the agent's form posts them."""
        return self.model_copy(update={"inputs": inputs})

    def unfit(self, why: str) -> "SystemEntry":
        """This declaration, whose inputs the agent's form refuses (``why``)."""
        entry = self.model_copy()
        entry._unfit = why
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
