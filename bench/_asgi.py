"""What the benchmark's tiny servers share (``_target.py``, ``_proxy.py``): two ASGI
helpers and the faults they can be told to show. They stay framework-free so that
they, not the timer under test, are never the bottleneck.

Faults are rules, configured with ``POST /_faults`` (the proxy: ``/_proxy/faults``)
or at start from the environment (``TARGET_FAULTS`` / ``PROXY_FAULTS``), as JSON::

    {"seed": 7, "rules": [{"action": "error_after_accept", "fraction": 0.2,
                           "status": [500, 502]},
                          {"action": "delay", "prefix": "/-/127.0.0.1/8001/slow/",
                           "seconds": 40}]}

A request is matched by ``method`` (default POST) and path ``prefix`` (default
``/-/``, the flows); the first rule that matches and whose ``fraction`` is drawn
(a ``random.Random(seed)``, so a run can be repeated) applies. Actions, and whether
the launch is accepted (the target records an execution, the proxy forwards it) by
default (``record`` overrides):

=====================  ========  =====================================================
``error_after_accept``  accepted  then answers ``status`` (one, or a list drawn from)
``answer``              not       answers ``status`` with ``body`` (404 of a Serve app
                                  restarting, 401, a 500 trace before accepting)
``delay``               accepted  answers normally after ``seconds``
``hang``                accepted  never answers (until the client gives up); with
                                  ``seconds``: answers normally after them
``refuse``              not       drops the connection before reading the request
``no_fid``              accepted  answers 200 without an execution id
``garbage``             accepted  answers 200 with a body that is not JSON
``fail``                accepted  answers normally; the execution ends in ``error``
                                  with ``body`` as its traceback (target only)
=====================  ========  =====================================================
"""

import asyncio
import random
from dataclasses import dataclass
from typing import Any

ACCEPTS = {"error_after_accept": True, "answer": False, "delay": True, "hang": True,
           "refuse": False, "no_fid": True, "garbage": True, "fail": True}


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def send_json(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def until_disconnected(receive: Any) -> None:
    """Wait until the client goes away (the request body must have been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def drop_connection(send: Any) -> bool:
    """Close the client's connection without answering, as a crashing server would.

    ASGI has no message for it: uvicorn's request cycle (whose bound ``send`` this is)
    holds the transport. Returns False when the server is not uvicorn."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    transport.abort()
    return True


@dataclass(frozen=True)
class Rule:
    action: str
    prefix: str = "/-/"
    method: str = "POST"
    fraction: float = 1.0
    status: tuple[int, ...] = (502,)
    seconds: float | None = None
    record: bool | None = None
    body: str | None = None

    @property
    def accepts(self) -> bool:
        return ACCEPTS[self.action] if self.record is None else self.record


def _rule(raw: Any) -> Rule:
    if not isinstance(raw, dict) or raw.get("action") not in ACCEPTS:
        raise ValueError(f"a rule needs an action of {sorted(ACCEPTS)}: {raw!r}")
    status = raw.get("status", 502)
    statuses = tuple(int(s) for s in (status if isinstance(status, list) else [status]))
    seconds = raw.get("seconds")
    return Rule(action=raw["action"], prefix=str(raw.get("prefix", "/-/")),
                method=str(raw.get("method", "POST")).upper(),
                fraction=float(raw.get("fraction", 1.0)), status=statuses,
                seconds=None if seconds is None else float(seconds),
                record=raw.get("record"), body=raw.get("body"))


class Faults:
    """The configured rules and the seeded draw that picks among them."""

    def __init__(self, config: dict[str, Any] | None = None):
        self.configure(config or {})

    def configure(self, config: dict[str, Any]) -> None:
        rules = [_rule(raw) for raw in config.get("rules", [])]  # all valid, or none
        self.config = config
        self.rules = rules
        self.rng = random.Random(config.get("seed", 0))

    def pick(self, method: str, path: str) -> Rule | None:
        for rule in self.rules:
            if method == rule.method and path.startswith(rule.prefix):
                if rule.fraction >= 1 or self.rng.random() < rule.fraction:
                    return rule
        return None

    def status(self, rule: Rule) -> int:
        return rule.status[0] if len(rule.status) == 1 else self.rng.choice(rule.status)


async def wait_or_hang(rule: Rule, receive: Any) -> bool:
    """``delay``/``hang``: False when the request is never to be answered."""
    if rule.seconds is None:
        await until_disconnected(receive)
        return False
    await asyncio.sleep(rule.seconds)
    return True
