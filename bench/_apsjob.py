"""The APScheduler 3 job of the lateness benchmark: the same launch our timer makes.

It mints the same owner token (``bridge.mint_token``) and POSTs the same JSON to the
same target through one shared httpx client with the same limits (32 connections,
30 s timeout), so both schedulers pay the same per-launch cost. Referenced by APScheduler's
persistent job store as ``_apsjob:launch`` (``bench/`` is on the path of both processes).
"""

import os
from typing import Any

import httpx

from kodosumi_timer.bridge import flow_path, mint_token

_client: httpx.AsyncClient | None = None
FAILURES = 0


def client() -> httpx.AsyncClient:
    global _client
    if _client is None:
        _client = httpx.AsyncClient(
            base_url=os.environ["BENCH_TARGET"], timeout=30.0,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))
    return _client


async def launch(sid: str, owner: str, flow_url: str) -> Any:
    global FAILURES
    token = mint_token(owner, 900, os.environ["KODO_SECRET_KEY"])
    response = await client().post(flow_path(flow_url), json={"sid": sid},
                                   headers={"KODOSUMI_API_KEY": token,
                                            "Accept": "application/json"})
    if response.status_code != 200:
        FAILURES += 1
    return response.json().get("result")
