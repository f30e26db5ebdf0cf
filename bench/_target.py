"""A tiny launch target that answers like kodosumi's proxy, for the lateness benchmark.

Run by uvicorn in its own process (``uvicorn _target:app --app-dir bench``). A POST to a
flow path (``/-/...``) is recorded with its arrival time (wall clock, taken when the
request reaches the app, before its body is read) and the ``sid`` from its JSON body,
and answered ``200 {"result": <fid>}`` like kodosumi's ``/-/<flow>`` proxy.
``GET /outputs/status/{fid}`` answers ``finished`` so the timer's follow loop does its
normal work; ``GET /flow`` lists no flows (for the system schedules' discovery).
``/_count``, ``/_results`` and ``POST /_reset`` serve the benchmark. With
``TARGET_RECORDS`` set, the records are also written to that file when uvicorn shuts
the app down (after the requests in flight were answered).

Kept framework-free and minimal so that the target, not the scheduler under test, is
never the bottleneck (its own capacity is measured and printed by ``lateness.py``).
"""

import json
import os
import time
from pathlib import Path
from typing import Any

from _asgi import read_body, send_json

# (arrival wall-clock ns, sid, had a KODOSUMI_API_KEY header)
RECORDS: list[tuple[int, str | None, bool]] = []
_fids = 0


def _dump_records() -> None:
    # at shutdown only: blocking is fine, nothing else is served any more
    if os.environ.get("TARGET_RECORDS"):
        Path(os.environ["TARGET_RECORDS"]).write_text(json.dumps(RECORDS))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _fids
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
    if method == "POST" and path.startswith("/-/"):
        raw = await read_body(receive)
        try:
            sid = json.loads(raw).get("sid")
        except ValueError:
            sid = None
        keyed = any(name.lower() == b"kodosumi_api_key" for name, _ in scope["headers"])
        RECORDS.append((arrived, sid, keyed))
        _fids += 1
        await send_json(send, 200, b'{"result": "fid%08d", "elements": []}' % _fids)
    elif method == "GET" and path == "/flow":
        await send_json(send, 200, b'{"items": [], "offset": null}')  # no flow declares a schedule
    elif method == "GET" and path.startswith("/outputs/status/"):
        await send_json(send, 200, b'{"status": "finished"}')
    elif path == "/_count":
        await send_json(send, 200, json.dumps({"count": len(RECORDS)}).encode())
    elif path == "/_results":
        await send_json(send, 200, json.dumps({"records": RECORDS}).encode())
    elif path == "/_reset" and method == "POST":
        RECORDS.clear()
        await send_json(send, 200, b'{"count": 0}')
    else:
        await send_json(send, 404, b'{"detail": "not found"}')
