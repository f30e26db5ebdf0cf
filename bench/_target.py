"""A tiny launch target that answers like kodosumi 1.1's panel, for benchmarks and
fault tests.

Run by uvicorn in its own process (``uvicorn _target:app --app-dir bench``). A POST to
a flow path (``/-/...``) is recorded with its arrival time (wall clock, taken when the
request reaches the app, before its body is read) and the ``sid`` from its JSON body,
and answered ``200 {"result": <fid>}`` like kodosumi's ``/-/<flow>`` proxy. Each
accepted launch becomes an execution of its owner (the ``sub`` of its
``KODOSUMI_API_KEY`` token), kept the way kodosumi keeps it and read back through the
same routes, shapes and rules:

- ``GET /outputs/status/{fid}``: the owner's execution (404 for anyone else's, and
  until it is "written": ``exec_delay`` seconds after the launch, as kodosumi's
  spooler writes an execution about a second after it started);
- ``GET /timeline/list?pp=&offset=&q=``: the owner's executions, newest fid first,
  ``offset`` a fid to continue below; inputs as kodosumi serialises them
  (``{"dict": {...}}``). Like kodosumi, nothing of the request but its owner, flow
  and inputs is kept: a header such as the timer's run marker is not;
- ``GET /outputs/main/{fid}`` and ``/outputs/stream/{fid}``: the event stream
  (server-sent events ``{stamp}:{message}``), open ``linger`` seconds after the last
  event as kodosumi's is (10 s), then ``eof``.

``GET /flow`` lists no flows (for the system schedules' discovery). Faults (see
``_asgi.py``): ``POST /_faults`` or ``TARGET_FAULTS``; also ``exec_delay`` (default
0), ``run_seconds`` (how long an execution runs, default 0) and ``linger`` (default
10). For the benchmark: ``/_count``, ``/_results``, ``/_launches`` (every launch
request and what became of it), ``/_executions`` and ``POST /_reset``. With
``TARGET_RECORDS`` (``TARGET_LAUNCHES``) set, the records (launches) are also written
to that file when uvicorn shuts the app down (after the requests in flight were
answered).

An execution id minted by this target before a restart is answered ``finished``
(the fault runs restart it under a running timer, whose follow loop asks for them).

Kept framework-free and minimal so that the target, not the scheduler under test, is
never the bottleneck (its own capacity is measured and printed by ``lateness.py``).
"""

import asyncio
import base64
import itertools
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from _asgi import Faults, drop_connection, read_body, send_json, wait_or_hang

# (arrival wall-clock ns, sid, had a KODOSUMI_API_KEY header): the accepted launches
RECORDS: list[tuple[int, str | None, bool]] = []
LAUNCHES: list[dict[str, Any]] = []
FAULTS = Faults(json.loads(os.environ.get("TARGET_FAULTS") or "{}"))
ANONYMOUS = "_annon_"  # kodosumi's name for a request without a user
MARKER_HEADER = b"x-kodosumi-timer-run"
# kodosumi's fids are bson ObjectIds: 4 bytes of epoch seconds, 5 per process, a counter
TAG = "fa4e0fa4e0"
_counter = itertools.count(1)
DEFAULT_TRACE = ("Traceback (most recent call last):\n"
                 '  File "/agent/flow.py", line 12, in run\n'
                 "    count = int(inputs['count'])\n"
                 "            ^^^^^^^^^^^^^^^^^^^^\n"
                 "ValueError: invalid literal for int() with base 10: 'abc'")


@dataclass
class Execution:
    fid: str
    user: str
    app_url: str
    inputs: Any
    created: float
    error: str | None

    def visible(self, now: float) -> bool:
        return now >= self.created + float(FAULTS.config.get("exec_delay", 0))

    def events(self, now: float) -> list[tuple[int, float, str, str]]:
        """(id, stamp, kind, message) as kodosumi's Runner puts them, up to ``now``."""
        t = self.created
        end = t + float(FAULTS.config.get("run_seconds", 0))
        meta = {"fid": self.fid, "username": self.user, "app_url": self.app_url,
                "panel_url": "http://fake-panel", "entry_point": "fake.run",
                "kodosumi": "1.1.0", "tags": [], "summary": "Fake flow",
                "description": None, "deprecated": None, "author": None,
                "organization": None, "version": None}
        out = [(t, "status", "starting"),
               (t, "inputs", json.dumps({"dict": self.inputs} if isinstance(self.inputs, dict)
                                        else {"TypeError": str(self.inputs)})),
               (t, "meta", json.dumps({"dict": meta})),
               (t, "status", "running")]
        if self.error is None:
            out += [(end, "final", json.dumps({"Markdown": {"body": "done"}})),
                    (end, "status", "finished")]
        else:
            out += [(end, "error", self.error), (end, "status", "error")]
        return [(i, stamp, kind, msg) for i, (stamp, kind, msg) in enumerate(out, 1)
                if stamp <= now]

    def status(self, now: float) -> str:
        return [msg for _, _, kind, msg in self.events(now) if kind == "status"][-1]


EXECUTIONS: dict[str, Execution] = {}


def _dump_records() -> None:
    # at shutdown only: blocking is fine, nothing else is served any more
    if os.environ.get("TARGET_RECORDS"):
        Path(os.environ["TARGET_RECORDS"]).write_text(json.dumps(RECORDS))
    if os.environ.get("TARGET_LAUNCHES"):
        Path(os.environ["TARGET_LAUNCHES"]).write_text(json.dumps(LAUNCHES))


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    return next((v for k, v in scope["headers"] if k.lower() == name), None)


def _user(scope: dict[str, Any]) -> str:
    """The token's subject, as kodosumi's JWT check reads it (the signature is the
    panel's business, not this fake's)."""
    token = _header(scope, b"kodosumi_api_key")
    if token is None:
        return ANONYMOUS
    try:
        payload = token.split(b".")[1]
        return str(json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
                   ["sub"])
    except (IndexError, ValueError, KeyError, TypeError):
        return ANONYMOUS


def app_url(path: str) -> str:
    """What kodosumi records as the execution's ``app_url`` for a flow path
    ``/-/host/port/app/-/route``: the Serve application's base URL."""
    parts = path.strip("/").split("/")
    app = list(itertools.takewhile(lambda p: p != "-", parts[3:]))
    return f"http://{parts[1]}:{parts[2]}/" + "/".join(app) if len(parts) > 2 else path


def _new_execution(user: str, path: str, inputs: Any, error: str | None) -> str:
    now = time.time()
    fid = f"{int(now):08x}{TAG}{next(_counter) & 0xFFFFFF:06x}"
    EXECUTIONS[fid] = Execution(fid, user, app_url(path), inputs, now, error)
    return fid


def _own(fid: str, user: str) -> Execution | None:
    execution = EXECUTIONS.get(fid)
    if execution is None or execution.user != user or not execution.visible(time.time()):
        return None
    return execution


async def launch(scope: dict[str, Any], receive: Any, send: Any, arrived: int) -> None:
    path: str = scope["path"]
    rule = FAULTS.pick("POST", path)
    if rule is not None and rule.action == "refuse" and drop_connection(send):
        LAUNCHES.append({"arrived_ns": arrived, "path": path, "action": "refuse", "fid": None})
        return
    raw = await read_body(receive)
    try:
        inputs = json.loads(raw)
    except ValueError:
        inputs = None
    sid = inputs.get("sid") if isinstance(inputs, dict) else None
    marker = _header(scope, MARKER_HEADER)
    user = _user(scope)
    fid = None
    if rule is None or rule.accepts:
        error = (rule.body or DEFAULT_TRACE) if rule is not None and rule.action == "fail" \
            else None
        fid = _new_execution(user, path, inputs, error)
        RECORDS.append((arrived, sid, _header(scope, b"kodosumi_api_key") is not None))
    LAUNCHES.append({"arrived_ns": arrived, "path": path, "sid": sid, "user": user,
                     "marker": marker.decode() if marker else None, "fid": fid,
                     "action": rule.action if rule else None})
    ok = b'{"result": "%s", "elements": []}' % (fid or "").encode()
    if rule is None or rule.action == "fail":
        await send_json(send, 200, ok)
    elif rule.action in ("error_after_accept", "answer", "refuse"):
        status = FAULTS.status(rule)
        await send_json(send, status, (rule.body or _default_body(status)).encode())
    elif rule.action in ("delay", "hang"):
        if await wait_or_hang(rule, receive):
            await send_json(send, 200, ok)
    elif rule.action == "no_fid":
        await send_json(send, 200, b'{"elements": []}')
    else:  # garbage
        body = b"<html><body>Proxy error</body>"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _default_body(status: int) -> str:
    if status == 404:
        return '{"status_code": 404, "detail": "Not Found"}'
    if status in (401, 403):
        return f'{{"status_code": {status}, "detail": "Unauthorized"}}'
    return ("Traceback (most recent call last):\n  ...\nhttpx.RemoteProtocolError: "
            f"Server disconnected without sending a response. ({status})")


def _iso(stamp: float | None) -> str | None:
    # kodosumi: datetime.fromtimestamp, naive local time of the panel's machine
    return None if stamp is None else datetime.fromtimestamp(stamp).isoformat()


def timeline_item(execution: Execution, now: float) -> dict[str, Any]:
    """One entry of kodosumi's ``/timeline/list`` (its ``DELIVER_FIELDS``)."""
    events = execution.events(now)
    first, last = events[0][1], events[-1][1]
    return {"fid": execution.fid, "tags": [], "summary": "Fake flow",
            "inputs": json.loads(next(m for _, _, k, m in events if k == "inputs")),
            "status": execution.status(now), "startup": _iso(first), "finish": _iso(last),
            "runtime": last - first, "locks": []}


def timeline(user: str, query: dict[str, list[str]]) -> dict[str, Any]:
    now = time.time()
    pp = int(query.get("pp", ["10"])[0])
    offset = query.get("offset", [None])[0]
    q = (query.get("q", [None])[0] or "").lower()
    items: list[dict[str, Any]] = []
    for fid in sorted(EXECUTIONS, reverse=True):
        if len(items) >= pp:
            break
        execution = _own(fid, user)
        if execution is None or (offset and fid >= offset):
            continue
        item = timeline_item(execution, now)
        if q and q not in json.dumps(item).lower():
            continue
        items.append(item)
    return {"items": items, "query": q or None, "offset": items[-1]["fid"] if items else None}


def status(fid: str, user: str) -> tuple[int, dict[str, Any]]:
    now = time.time()
    execution = _own(fid, user)
    if execution is None:
        if fid not in EXECUTIONS and len(fid) == 24 and fid[8:18] == TAG:
            return 200, {"status": "finished", "fid": fid}  # minted before a restart
        return 404, {"status_code": 404, "detail": f"Execution {fid} not found."}
    events = execution.events(now)
    final = next((m for _, _, k, m in events if k == "final"), None)
    return 200, {"status": execution.status(now), "timestamp": events[-1][1], "final": final,
                 "fid": fid, "summary": "Fake flow", "description": None, "tags": [],
                 "deprecated": None, "author": None, "organization": None, "version": None,
                 "kodosumi_version": None, "app_url": execution.app_url,
                 "entry_point": "fake.run", "username": execution.user, "locks": []}


def _sse(event: str, id_: int, data: str) -> bytes:
    lines = "".join(f"data: {line}\r\n" for line in data.splitlines() or [""])
    return f"id: {id_}\r\nevent: {event}\r\n{lines}\r\n".encode()


async def stream(fid: str, user: str, receive: Any, send: Any) -> None:
    """kodosumi's event stream: every event, then open ``linger`` s, then ``eof``."""
    execution = _own(fid, user)
    if execution is None:
        await send_json(send, 404, b'{"status_code": 404, "detail": "not found"}')
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"),
                            (b"cache-control", b"no-cache")]})
    sent = 0
    while True:
        events = execution.events(time.time())
        for id_, stamp, kind, msg in events[sent:]:
            await send({"type": "http.response.body", "body": _sse(kind, id_, f"{stamp}:{msg}"),
                        "more_body": True})
        sent = len(events)
        if events[-1][3] in ("finished", "error"):
            break
        await asyncio.sleep(0.1)
    try:  # kodosumi keeps it open 10 s after the last event; stop when the client goes
        await asyncio.wait_for(_disconnect(receive), float(FAULTS.config.get("linger", 10)))
        return
    except TimeoutError:
        pass
    await send({"type": "http.response.body", "body": _sse("eof", 0, "end of stream")})


async def _disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                _dump_records()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    arrived = time.time_ns()
    path: str = scope["path"]
    method: str = scope["method"]
    query = parse_qs(scope.get("query_string", b"").decode())
    if method == "POST" and path.startswith("/-/"):
        await launch(scope, receive, send, arrived)
    elif method == "GET" and path.startswith("/-/"):
        await send_json(send, 200, b'{"elements": []}')
    elif method == "GET" and path == "/flow":
        await send_json(send, 200, b'{"items": [], "offset": null}')  # no flow declares a schedule
    elif method == "GET" and path.startswith("/outputs/status/"):
        code, body = status(path.rsplit("/", 1)[1], _user(scope))
        await send_json(send, code, json.dumps(body).encode())
    elif method == "GET" and path.startswith(("/outputs/main/", "/outputs/stream/")):
        await stream(path.rsplit("/", 1)[1], _user(scope), receive, send)
    elif method == "GET" and path.rstrip("/") == "/timeline/list":
        await send_json(send, 200, json.dumps(timeline(_user(scope), query)).encode())
    elif path == "/_count":
        await send_json(send, 200, json.dumps({"count": len(RECORDS)}).encode())
    elif path == "/_results":
        await send_json(send, 200, json.dumps({"records": RECORDS}).encode())
    elif path == "/_launches":
        await send_json(send, 200, json.dumps(LAUNCHES).encode())
    elif path == "/_executions":
        now = time.time()
        await send_json(send, 200, json.dumps(
            [{"fid": e.fid, "user": e.user, "app_url": e.app_url, "inputs": e.inputs,
              "created": e.created, "status": e.status(now)} for e in EXECUTIONS.values()]
        ).encode())
    elif path == "/_faults" and method == "POST":
        try:
            FAULTS.configure(json.loads(await read_body(receive)))
        except (ValueError, TypeError) as exc:
            await send_json(send, 400, json.dumps({"detail": str(exc)}).encode())
            return
        await send_json(send, 200, json.dumps(FAULTS.config).encode())
    elif path == "/_faults":
        await send_json(send, 200, json.dumps(FAULTS.config).encode())
    elif path == "/_reset" and method == "POST":
        RECORDS.clear()
        LAUNCHES.clear()
        EXECUTIONS.clear()
        await send_json(send, 200, b'{"count": 0}')
    else:
        await send_json(send, 404, b'{"detail": "not found"}')
