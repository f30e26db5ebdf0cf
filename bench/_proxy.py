"""A recording reverse proxy between our timer and kodosumi's panel (``kodosumi_launch.py``).

uvicorn app (``uvicorn _proxy:app --app-dir bench``, upstream in ``BENCH_UPSTREAM``).
Every request is forwarded unchanged through one aiohttp session; for each one it records
when the request arrived (wall clock, before forwarding), how long the panel took to
answer, the status, and for a launch (a POST to a flow path) the ``message`` input, which
the benchmark sets to the schedule's id. So a late fire splits into our share (slot to
arrival here) and kodosumi's (the panel's answer). ``GET /_proxy/records`` serves them.
"""

import json
import os
import time
from typing import Any

import aiohttp
from _asgi import read_body, send_json

RECORDS: list[dict[str, Any]] = []
_session: aiohttp.ClientSession | None = None
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=64),
                    timeout=aiohttp.ClientTimeout(total=120))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    arrived = time.time_ns()
    path, method = scope["path"], scope["method"]
    if path == "/_proxy/records":
        await send_json(send, 200, json.dumps(RECORDS).encode())
        return
    raw = await read_body(receive)
    url = os.environ["BENCH_UPSTREAM"] + path
    if scope.get("query_string"):
        url += "?" + scope["query_string"].decode()
    headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.decode() not in HOP}
    assert _session is not None
    started = time.perf_counter()
    async with _session.request(method, url, data=raw, headers=headers,
                                allow_redirects=False) as response:
        payload = await response.read()
        status = response.status
        out_headers = [(k.encode(), v.encode()) for k, v in response.headers.items()
                       if k.lower() not in HOP]
    upstream_ms = (time.perf_counter() - started) * 1000
    record: dict[str, Any] = {"arrived_ns": arrived, "method": method, "path": path,
                              "status": status, "upstream_ms": upstream_ms}
    if method == "POST" and path.startswith("/-/"):
        try:
            record["message"] = json.loads(raw).get("message")
        except ValueError:
            pass
    RECORDS.append(record)
    out_headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out_headers})
    await send({"type": "http.response.body", "body": payload})
