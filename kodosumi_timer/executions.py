"""Reading kodosumi 1.1's executions back (pure; ``kodosumi_timer.bridge`` does the HTTP).

What kodosumi keeps about an execution, read from its source (runner/main.py,
spooler.py, service/inputs/timeline/, service/inputs/outputs.py) and checked on a
live stack:

- The fid is a bson ObjectId minted by the flow's Serve replica when the agent calls
  ``Launch``: its first 8 hex digits are the creation time in epoch seconds, so fids
  sort by start time.
- The spooler writes an execution, as ``<exec dir>/<user>/<fid>/sqlite3.db``, once it
  sees the Runner actor: about a second after the launch, longer under load. Before
  that the panel does not know the fid (404).
- Per execution it keeps only the Runner's events: status ``starting``, ``inputs`` (what
  the agent passed to ``Launch``, serialised as ``{"dict": {...}}``; for the form flows
  the parsed form fields, not the posted body), ``meta`` (fid, username, ``app_url`` =
  the Serve application's base URL, entry point, the route's summary and tags), the
  agent's output, then ``error`` (the traceback text) and the final status.
- Nothing of the launch request is kept but its user (the token's subject), its flow
  and those inputs: no header (the proxy forwards them to the flow, ``Launch`` reads
  none of ours), no JWT claim, no body field the form does not declare (the form
  handler keeps only declared fields). A launch cannot carry a marker that a later
  query can read, so a launch is matched by owner + flow + inputs + start time and the
  match is never certain: a launch of the same flow with the same inputs by hand in
  the same seconds looks the same.
- ``GET /timeline/list?pp=&offset=`` lists the token owner's executions, newest fid
  first, ``offset`` a fid to continue below (its items: fid, summary, tags, inputs,
  status, startup/finish as naive local times). ``GET /outputs/status/{fid}`` adds
  ``app_url`` and ``username`` (404 for another user's fid). A deleted execution is
  archived and listed by neither.
- ``GET /outputs/main/{fid}?raw=true&extended=false`` streams the main events as
  server-sent events, ``data: {stamp}:{message}`` (a multi-line message in several
  data lines); the stream stays open 10 s after the last event, so a reader stops at
  the final status.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlparse

FINAL = ("finished", "error")
InputsVerdict = Literal["agree", "differ", "unknown"]


def fid_time(fid: str) -> int | None:
    """The creation second (epoch) of a kodosumi fid, None if it is no ObjectId."""
    if len(fid) != 24:
        return None
    try:
        return int(fid[:8], 16)
    except ValueError:
        return None


def fid_below(epoch: float) -> str:
    """A timeline ``offset`` that lists the executions started at ``epoch`` or before."""
    return f"{int(epoch) + 1:08x}" + "0" * 16


def flow_app(flow_url: str) -> tuple[str, str, str] | None:
    """(host, port, application path) of a panel flow path ``/-/host/port/app/-/route``,
    the parts kodosumi records as the execution's ``app_url``."""
    parts = urlparse(flow_url).path.strip("/").split("/")
    if len(parts) < 4 or parts[0] != "-" or "-" not in parts[3:]:
        return None
    app = parts[3:parts.index("-", 3)]
    return parts[1].lower(), parts[2], "/".join(app)


def same_app(app_url: Any, flow_url: str) -> bool | None:
    """Whether an execution's recorded ``app_url`` is the flow's application (None:
    cannot tell)."""
    wanted = flow_app(flow_url)
    if wanted is None or not isinstance(app_url, str) or not app_url:
        return None
    got = urlparse(app_url)
    return (got.hostname or "", str(got.port or ""), got.path.strip("/")) == wanted


def stored_inputs(raw: Any) -> dict[str, Any] | None:
    """The inputs of a timeline item as a dict: kodosumi serialises a dict as
    ``{"dict": {...}}`` and a pydantic model as ``{"<ClassName>": {...}}``."""
    if isinstance(raw, dict) and len(raw) == 1:
        value = next(iter(raw.values()))
        return value if isinstance(value, dict) else None
    return None


_TRUE = {"on", "true", "1", "yes"}


def _agrees(sent: Any, stored: Any) -> bool:
    """A posted value and what the flow stored for it, after kodosumi's form parsing
    (a checkbox ``"on"`` becomes True, numbers may arrive as text, text is trimmed)."""
    if sent == stored:
        return True
    if stored is None or stored == "":
        return sent is None or sent == ""
    if isinstance(stored, bool):
        return (sent is True or str(sent).strip().lower() in _TRUE) == stored
    if isinstance(stored, int | float):
        try:
            return float(str(sent).strip()) == float(stored)
        except ValueError:
            return False
    if isinstance(stored, str):
        return isinstance(sent, str | int | float) and str(sent).strip() == stored.strip()
    if isinstance(stored, list) and isinstance(sent, list):
        return sorted(map(str, sent)) == sorted(map(str, stored))
    return False


def inputs_verdict(sent: dict[str, Any], stored: Any) -> InputsVerdict:
    """``differ`` when a posted field was stored with another value; fields the flow
    did not keep, or added (its defaults), say nothing."""
    values = stored_inputs(stored)
    if values is None:
        return "unknown"
    if any(key in values and not _agrees(value, values[key]) for key, value in sent.items()):
        return "differ"
    return "agree"


@dataclass(frozen=True)
class Candidate:
    """An execution of the owner that started in the launch's time window."""

    fid: str
    started: int  # epoch second, from the fid
    same_flow: bool | None  # None: its flow could not be read
    inputs: InputsVerdict


@dataclass(frozen=True)
class Judgement:
    kind: Literal["found", "none", "unclear"]
    fid: str | None = None
    reason: str | None = None
    final: bool = False  # a later look cannot change it


def judge(candidates: Iterable[Candidate], sent_at: datetime) -> Judgement:
    """Which of the window's executions is the launch (pure)."""
    rows = [c for c in candidates if c.same_flow is not False]
    strong = [c for c in rows if c.same_flow and c.inputs == "agree"]
    doubtful = [c for c in rows if c not in strong]
    blocking = [c for c in doubtful if c.inputs != "differ"]
    if len(strong) > 1:
        return Judgement("unclear", final=True, reason=(
            f"{len(strong)} executions of this flow with these inputs started then "
            f"({', '.join(c.fid for c in strong[:3])}); kodosumi keeps no launch id"))
    if len(strong) == 1 and not blocking:
        match = strong[0]
        offset = round(match.started - sent_at.timestamp())
        return Judgement("found", fid=match.fid, reason=(
            f"matched by owner, flow, inputs and start ({offset:+d} s), not by a launch "
            "id (kodosumi keeps none): the same launch by hand then would look alike"))
    if rows:
        what = ("whose flow could not be read" if any(c.same_flow is None for c in rows)
                else "whose inputs differ" if all(c.inputs == "differ" for c in doubtful)
                else "whose inputs kodosumi keeps in another form")
        return Judgement("unclear", reason=(
            f"an execution {what} started then ({', '.join(c.fid for c in rows[:3])}); "
            "kodosumi keeps no launch id to tell whether it is this launch"))
    return Judgement("none")


def error_line(text: str) -> str | None:
    """The last line of a traceback that says something (not the ``^^^`` markers
    under a line), at most 300 characters."""
    lines = [line.strip() for line in text.splitlines()]
    telling = [line for line in lines if re.search("[A-Za-z]", line)
               and not set(line) <= set("^~ ")]
    return telling[-1][:300] if telling else None


class EventStream:
    """Server-sent events, fed line by line: ``feed`` returns (event, message) at the
    end of each event, the message without kodosumi's ``{stamp}:`` prefix."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        line = line.rstrip("\r\n")
        if not line:
            if not self.data:
                return None
            event, data = self.event, "\n".join(self.data)
            self.event, self.data = "message", []
            stamp, sep, message = data.partition(":")
            if sep and re.fullmatch(r"\d+(\.\d+)?", stamp):
                data = message
            return event, data
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        return None
