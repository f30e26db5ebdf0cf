"""PanelLauncher against real sockets on this machine: what a panel that is down, and
one that takes the request and never answers, become (retry vs unknown)."""

import asyncio
import socket

from kodosumi_timer.bridge import PanelLauncher


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_panel_down_is_retried():
    launcher = PanelLauncher(f"http://127.0.0.1:{_closed_port()}", secret="s", timeout=2)
    try:
        outcome = await launcher.launch("/-/127.0.0.1/8001/quick/-/", "owner", {})
    finally:
        await launcher.close()
    assert outcome.kind == "retry" and outcome.reason.startswith("panel unreachable"), outcome


async def test_a_request_without_answer_is_unknown_not_retried():
    """The panel took the request: kodosumi may have started it, a retry could double it."""
    received = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        received.set()
        await asyncio.sleep(5)  # never answers within the launcher's timeout
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    launcher = PanelLauncher(f"http://127.0.0.1:{port}", secret="s", timeout=0.5)
    try:
        outcome = await launcher.launch("/-/127.0.0.1/8001/quick/-/", "owner", {"a": 1})
    finally:
        await launcher.close()
        server.close()
    assert received.is_set()
    assert outcome.kind == "unknown" and "may have started" in outcome.reason, outcome


async def test_an_owner_token_is_reused_then_renewed(monkeypatch):
    launcher = PanelLauncher("http://127.0.0.1:1", secret="s", token_ttl=900)
    clock = [1_000_000.0]
    monkeypatch.setattr("kodosumi_timer.bridge.time.time", lambda: clock[0])
    first = launcher._headers("alice")["KODOSUMI_API_KEY"]
    clock[0] += 200
    assert launcher._headers("alice")["KODOSUMI_API_KEY"] == first
    assert launcher._headers("bob")["KODOSUMI_API_KEY"] != first
    clock[0] += 200  # a third of the lifetime (300 s) has passed
    assert launcher._headers("alice")["KODOSUMI_API_KEY"] != first
