"""A recording reverse proxy between our timer and kodosumi's panel
(``kodosumi_launch.py``), which can also misbehave the way a proxy in front of
kodosumi does (the real-stack fault tests).

uvicorn app (``uvicorn _proxy:app --app-dir bench``, upstream in ``BENCH_UPSTREAM``).
Every request is forwarded unchanged through one aiohttp session; for each one it records
when the request arrived (wall clock, before forwarding), how long the panel took to
answer, the status, and for a launch (a POST to a flow path) the ``message`` input, which
the benchmark sets to the schedule's id. So a late fire splits into our share (slot to
arrival here) and kodosumi's (the panel's answer). ``GET /_proxy/records`` serves them.

Faults (the rules of ``_asgi.py``; ``POST /_proxy/faults`` or ``PROXY_FAULTS``): an
"accepted" request is forwarded to the panel, whose answer is then replaced as the rule
says (``error_after_accept``: the panel launched it, the client sees a 502).
"""

import json
import os
import time
from typing import Any

import aiohttp
from _asgi import Faults, drop_connection, read_body, send_json, wait_or_hang

RECORDS: list[dict[str, Any]] = []
FAULTS = Faults(json.loads(os.environ.get("PROXY_FAULTS") or "{}"))
_session: aiohttp.ClientSession | None = None
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


async def forward(scope: dict[str, Any], raw: bytes) -> tuple[int, list[Any], bytes]:
    url = os.environ["BENCH_UPSTREAM"] + scope["path"]
    if scope.get("query_string"):
        url += "?" + scope["query_string"].decode()
    headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.decode() not in HOP}
    assert _session is not None
    async with _session.request(scope["method"], url, data=raw, headers=headers,
                                allow_redirects=False) as response:
        payload = await response.read()
        out_headers = [(k.encode(), v.encode()) for k, v in response.headers.items()
                       if k.lower() not in HOP]
        return response.status, out_headers, payload


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
    if path == "/_proxy/faults":
        if method == "POST":
            try:
                FAULTS.configure(json.loads(await read_body(receive)))
            except (ValueError, TypeError) as exc:
                await send_json(send, 400, json.dumps({"detail": str(exc)}).encode())
                return
        await send_json(send, 200, json.dumps(FAULTS.config).encode())
        return
    rule = FAULTS.pick(method, path)
    if rule is not None and rule.action == "refuse" and drop_connection(send):
        RECORDS.append({"arrived_ns": arrived, "method": method, "path": path,
                        "fault": "refuse", "forwarded": False})
        return
    raw = await read_body(receive)
    forwarded = rule is None or rule.accepts
    status, out_headers, payload = 0, [], b""
    started = time.perf_counter()
    if forwarded:
        status, out_headers, payload = await forward(scope, raw)
    record: dict[str, Any] = {"arrived_ns": arrived, "method": method, "path": path,
                              "status": status, "forwarded": forwarded,
                              "upstream_ms": (time.perf_counter() - started) * 1000,
                              "fault": rule.action if rule else None}
    if method == "POST" and path.startswith("/-/"):
        try:
            record["message"] = json.loads(raw).get("message")
        except (ValueError, AttributeError):
            pass
        record["answer"] = payload.decode(errors="replace")[:500]
        try:  # the execution the panel launched, whatever the client is told
            record["fid"] = json.loads(payload).get("result")
        except (ValueError, AttributeError):
            record["fid"] = None
    RECORDS.append(record)
    if rule is not None and rule.action in ("error_after_accept", "answer", "refuse"):
        status = FAULTS.status(rule)
        out_headers, payload = [(b"content-type", b"text/plain")], \
            (rule.body or "Bad Gateway").encode()
    elif rule is not None and rule.action in ("delay", "hang"):
        if not await wait_or_hang(rule, receive):
            return
    elif rule is not None and rule.action == "no_fid":
        status, out_headers, payload = 200, [(b"content-type", b"application/json")], \
            b'{"elements": []}'
    elif rule is not None and rule.action == "garbage":
        status, out_headers, payload = 200, [(b"content-type", b"text/html")], b"<html>oops"
    if status == 0:  # told not to forward, and no answer of its own
        status, out_headers, payload = 502, [(b"content-type", b"text/plain")], b"Bad Gateway"
    out_headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out_headers})
    await send({"type": "http.response.body", "body": payload})
