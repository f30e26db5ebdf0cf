"""PanelLauncher.launch against real sockets on this machine: every kind of answer and
every way an exchange can break, and what each becomes. ``not_sent`` only where the
request provably never left (it is retried); ``in_doubt`` wherever it may have reached
kodosumi (it is reconciled, never sent again blindly).

Two kinds of servers: the benchmark's fake kodosumi (``bench/_target.py`` under
uvicorn, told its fault through ``/_faults``), and raw asyncio servers for the breaks
an HTTP server would not make on purpose (a reset, half an answer, not HTTP at all).
"""

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from bench._common import start_target
from kodosumi_timer.bridge import PanelLauncher, outcome_of
from tests.unit.fake_kodosumi import (  # noqa: F401 (fixtures)
    FLOW,
    OWNER,
    SECRET,
    Target,
    fake_fixture,
    target_fixture,
)

MARKER = "ktimer-s1-1767225600-1"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def launch(url: str, inputs: dict | None = None, **options) -> object:
    launcher = PanelLauncher(url, secret=SECRET, **{"timeout": 2, **options})
    try:
        return await launcher.launch(FLOW, OWNER, inputs or {"n": 1}, marker=MARKER)
    finally:
        await launcher.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


# ---- never sent: retried -------------------------------------------------------------

async def test_a_panel_that_is_down_was_never_sent_to():
    outcome = await launch(f"http://127.0.0.1:{_closed_port()}")
    assert outcome.kind == "not_sent" and outcome.retryable, outcome
    assert outcome.reason == "panel unreachable: ClientConnectorError"


async def test_a_name_that_does_not_resolve_was_never_sent_to():
    outcome = await launch("http://no-such-panel.invalid:3370")
    assert outcome.kind == "not_sent" and outcome.retryable, outcome
    assert outcome.reason == "panel unreachable: ClientConnectorDNSError"


async def test_tls_that_fails_before_the_request_was_never_sent_to(fake: Target):
    # the fake speaks plain HTTP: the handshake fails before any request is written
    outcome = await launch(fake.url.replace("http://", "https://"))
    assert outcome.kind == "not_sent" and outcome.retryable, outcome
    assert fake.launches() == []


async def test_no_connection_within_the_connect_timeout_was_never_sent(fake: Target):
    """One connection, held by a launch that hangs: the second launch waits for it past
    its connect timeout, and never reaches the panel."""
    fake.faults({"action": "hang", "prefix": FLOW})
    launcher = PanelLauncher(fake.url, secret=SECRET, timeout=2, connect_timeout=0.3,
                             connections=1)
    try:
        first = asyncio.create_task(launcher.launch(FLOW, OWNER, {"n": 1}, marker="a"))
        await asyncio.sleep(0.3)  # let the first take the only connection
        second = await launcher.launch(FLOW, OWNER, {"n": 2}, marker="b")
        assert second.kind == "not_sent" and second.retryable, second
        assert second.reason == "panel unreachable: ConnectionTimeoutError"
        assert (await first).kind == "in_doubt"
    finally:
        await launcher.close()
    assert [launch["marker"] for launch in fake.launches()] == ["a"]


async def test_inputs_that_are_not_json_are_not_sent(fake: Target):
    outcome = await launch(fake.url, {"when": {1, 2}})
    assert outcome.kind == "not_sent" and not outcome.retryable, outcome
    assert "not JSON" in outcome.reason and fake.launches() == []


# ---- answered ------------------------------------------------------------------------

async def test_a_launch_carries_the_owner_token_and_the_marker(fake: Target):
    outcome = await launch(fake.url, {"n": 3})
    assert outcome.kind == "launched" and outcome.fid, outcome
    (seen,) = fake.launches()
    assert seen["user"] == OWNER and seen["marker"] == MARKER and seen["fid"] == outcome.fid


async def test_input_errors_are_rejected(fake: Target):
    fake.faults({"action": "answer", "status": 200,
                 "body": '{"errors": {"n": ["too big"], "_global_": ["check it"]}}'})
    outcome = await launch(fake.url)
    assert outcome.kind == "rejected" and outcome.errors == {"n": ["too big"],
                                                             "_global_": ["check it"]}
    assert outcome.reason == "n: too big; check it"


@pytest.mark.parametrize("status, retryable", [(404, True), (429, True), (408, True),
                                               (401, False), (403, False), (422, False)])
async def test_answers_that_started_nothing_are_refused(fake: Target, status, retryable):
    fake.faults({"action": "answer", "status": status})
    outcome = await launch(fake.url)
    assert outcome.kind == "refused" and outcome.retryable is retryable, outcome
    assert fake.executions() == []


@pytest.mark.parametrize("status", [500, 502, 503, 504, 400])
async def test_an_accepted_launch_answered_with_an_error_is_in_doubt(fake: Target, status):
    """kodosumi (or a proxy before it) took the launch and then answered an error: the
    execution exists, so this must never be sent again blindly."""
    fake.faults({"action": "error_after_accept", "status": status})
    outcome = await launch(fake.url)
    assert outcome.kind == "in_doubt" and "may have started" in outcome.reason, outcome
    assert outcome.reason.startswith(f"panel answered HTTP {status}")
    assert len(fake.executions()) == 1


async def test_a_stack_trace_becomes_its_last_line(fake: Target):
    trace = ("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
             "httpx.ConnectError: All connection attempts failed\n")
    fake.faults({"action": "answer", "status": 500, "body": trace})
    outcome = await launch(fake.url)
    assert outcome.reason == ("panel answered HTTP 500: httpx.ConnectError: All connection "
                              "attempts failed; the execution may have started")


@pytest.mark.parametrize("action", ["no_fid", "garbage"])
async def test_a_200_without_an_execution_id_is_in_doubt(fake: Target, action):
    fake.faults({"action": action})
    outcome = await launch(fake.url)
    assert outcome.kind == "in_doubt" and "may have started" in outcome.reason, outcome


async def test_no_answer_within_the_timeout_is_in_doubt(fake: Target):
    fake.faults({"action": "hang"})
    outcome = await launch(fake.url, timeout=0.5)
    assert outcome.kind == "in_doubt", outcome
    assert outcome.reason == ("the panel did not answer within 0.5 s; the execution may "
                              "have started")
    assert len(fake.executions()) == 1  # it had: kodosumi took it


async def test_a_slow_answer_within_the_timeout_is_launched(fake: Target):
    fake.faults({"action": "delay", "seconds": 0.5, "prefix": FLOW})
    outcome = await launch(fake.url, timeout=3)
    assert outcome.kind == "launched" and outcome.fid, outcome


async def test_a_connection_closed_before_the_request_was_read_is_in_doubt(fake: Target):
    """From the client's side the request was written: it cannot know it was not read."""
    fake.faults({"action": "refuse"})
    outcome = await launch(fake.url)
    assert outcome.kind == "in_doubt" and "broke after the request was sent" in outcome.reason
    assert fake.executions() == []


# ---- the breaks no server makes on purpose ------------------------------------------

async def test_a_reset_after_the_request_was_sent_is_in_doubt():
    got: list[bytes] = []

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await read_request(reader))
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST

    async with raw_server(reset) as url:
        outcome = await launch(url)
    assert got and b'"n": 1' in got[0]
    assert outcome.kind == "in_doubt" and "broke after the request was sent" in outcome.reason
    assert "ClientOSError" in outcome.reason or "ServerDisconnectedError" in outcome.reason


async def test_an_answer_that_breaks_off_is_judged_by_its_status():
    async def half(status: bytes) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 100\r\n\r\n{\"res")
            await writer.drain()
            writer.close()
        return handler

    async with raw_server(await half(b"200 OK")) as url:
        ok = await launch(url)
    async with raw_server(await half(b"404 Not Found")) as url:
        missing = await launch(url)
    assert ok.kind == "in_doubt" and "answered HTTP 200, then the answer broke off" in ok.reason
    assert missing.kind == "refused" and missing.retryable, missing


async def test_an_answer_that_is_not_http_is_in_doubt():
    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    async with raw_server(babble) as url:
        outcome = await launch(url)
    assert outcome.kind == "in_doubt" and "could not be read" in outcome.reason, outcome


async def test_headers_then_silence_is_in_doubt():
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3)
        writer.close()

    async with raw_server(stall) as url:
        outcome = await launch(url, timeout=0.5)
    assert outcome.kind == "in_doubt", outcome
    assert "answered HTTP 200, then the answer broke off (TimeoutError)" in outcome.reason


# ---- the pure reading of an answer ---------------------------------------------------

def test_outcome_of_a_launch_redirect_is_launched():
    """kodosumi's proxy answers a flow that returns ``Launch`` directly with a redirect to
    the execution's events."""
    outcome = outcome_of(302, "", "/f/", location="/exec/event/68f0c0de0123456789abcdef")
    assert outcome.kind == "launched" and outcome.fid == "68f0c0de0123456789abcdef"
    assert outcome_of(302, "", "/f/", location="/login").kind == "in_doubt"


def test_outcome_of_reads_the_panel():
    assert outcome_of(200, '{"result": "f1"}', "/f/").fid == "f1"
    assert outcome_of(200, '{"errors": {"n": ["too big"]}}', "/f/").kind == "rejected"
    assert "Serve application is gone" in outcome_of(404, "", "/f/").reason
    assert outcome_of(201, "", "/f/").kind == "in_doubt"
    trace = "Traceback...\n    int('x')\n    ^^^^^^^^\nValueError: invalid literal"
    assert outcome_of(500, trace, "/f/").reason == \
        "panel answered HTTP 500: ValueError: invalid literal; the execution may have started"


async def test_an_owner_token_is_reused_then_renewed(monkeypatch):
    launcher = PanelLauncher("http://127.0.0.1:1", secret="s", token_ttl=900)
    clock = [1_000_000.0]
    monkeypatch.setattr("kodosumi_timer.bridge.launching.time.time", lambda: clock[0])
    first = launcher._headers("alice")["KODOSUMI_API_KEY"]
    clock[0] += 200
    assert launcher._headers("alice")["KODOSUMI_API_KEY"] == first
    assert launcher._headers("bob")["KODOSUMI_API_KEY"] != first
    clock[0] += 200  # a third of the lifetime (300 s) has passed
    assert launcher._headers("alice")["KODOSUMI_API_KEY"] != first


# ---- the fake's faults are repeatable ------------------------------------------------

async def test_a_fraction_of_accepted_launches_fails_the_same_way_each_run(fake: Target):
    rule = {"action": "error_after_accept", "fraction": 0.3, "status": [500, 502]}
    runs = []
    for _ in range(2):
        fake.reset()
        fake.faults(rule, seed=7)
        launcher = PanelLauncher(fake.url, secret=SECRET, timeout=2)
        try:
            kinds = [(await launcher.launch(FLOW, OWNER, {"n": n}, marker=f"m{n}")).kind
                     for n in range(30)]
        finally:
            await launcher.close()
        runs.append(kinds)
        assert len(fake.executions()) == 30  # every launch was accepted
    assert runs[0] == runs[1] and 3 <= runs[0].count("in_doubt") <= 15, runs[0]
    assert set(runs[0]) == {"launched", "in_doubt"}


def test_faults_can_be_set_at_start_and_bad_ones_are_refused(tmp_path):
    child, url = start_target(tmp_path, env={"TARGET_FAULTS": json.dumps(
        {"rules": [{"action": "answer", "status": 404}]})})
    try:
        assert httpx.post(f"{url}/-/127.0.0.1/8001/agent/-/", json={}).status_code == 404
        bad = httpx.post(f"{url}/_faults", json={"rules": [{"action": "explode"}]})
        assert bad.status_code == 400 and "explode" in bad.json()["detail"]
        assert httpx.get(f"{url}/_faults").json()["rules"][0]["status"] == 404  # kept
    finally:
        child.stop()
