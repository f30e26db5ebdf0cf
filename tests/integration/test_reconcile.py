"""Reconciling a launch in doubt, and reading an agent's error, against the real
kodosumi stack: a proxy in front of the real panel forwards a launch and then answers
502 (the panel did launch it), the launcher says ``in_doubt``, and ``find_launch``
finds the very execution the panel had answered with; a launch that never reached
kodosumi is ``absent``; the failing demo agent's error line is read back."""

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from bench._common import BENCH, PY, start_child, wait_http
from kodosumi_timer.bridge import PanelLauncher, Unanswered
from kodosumi_timer.devstack import free_port
from kodosumi_timer.fullstack import FullStack

pytestmark = pytest.mark.integration

INPUTS = {"message": "reconcile me", "repeat": "2", "shout": "on"}


@pytest.fixture
def proxy(stack: FullStack, tmp_path) -> Iterator[str]:
    """``bench/_proxy.py`` before the panel: every launch is forwarded, then answered 502."""
    port = free_port()
    faults = {"rules": [{"action": "error_after_accept", "status": 502}]}
    child = start_child("proxy", [
        PY, "-m", "uvicorn", "_proxy:app", "--app-dir", str(BENCH), "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning"], tmp_path,
        env={"BENCH_UPSTREAM": stack.panel_url, "PROXY_FAULTS": json.dumps(faults)})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_proxy/records", child)
        yield url
    finally:
        child.stop()


async def status_or_none(launcher: PanelLauncher, fid: str, owner: str) -> str | None:
    """The status, None while kodosumi does not know it or is too busy to answer."""
    try:
        return await launcher.status(fid, owner)
    except Unanswered:
        return None


async def visible(launcher: PanelLauncher, fid: str, owner: str, timeout: float = 30) -> str:
    """The execution's status once the spooler has written it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await status_or_none(launcher, fid, owner)
        if status is not None:
            return status
        await asyncio.sleep(0.25)
    raise AssertionError(f"{fid} not known to the panel within {timeout} s")


async def test_a_launch_answered_502_after_the_panel_took_it_is_found(stack, new_user, proxy):
    user = new_user("recon")
    secret = stack.env["KODO_SECRET_KEY"]
    quick, failing = stack.flows["quick"], stack.flows["failing"]
    via_proxy = PanelLauncher(proxy, secret)
    direct = PanelLauncher(stack.panel_url, secret, settle=30)
    try:
        sent_at = datetime.now(UTC)
        outcome = await via_proxy.launch(quick, user.role_id, INPUTS, marker="ktimer-r-1-1")
        assert outcome.kind == "in_doubt" and "HTTP 502" in outcome.reason, outcome
        # what the panel had answered before the proxy replaced it: the execution's fid
        async with httpx.AsyncClient() as client:
            records = (await client.get(f"{proxy}/_proxy/records")).json()
        (record,) = [r for r in records if r["method"] == "POST"]
        fid = record["fid"]
        assert fid, record

        found = await direct.find_launch(quick, user.role_id, INPUTS, marker="ktimer-r-1-1",
                                         sent_at=sent_at)
        assert found.kind == "found" and found.fid == fid, found
        assert "not by a launch id" in found.reason
        # kodosumi kept nothing of the marker: its own search does not find it
        r = user.client.get("/timeline/list", params={"q": "ktimer-r-1-1"})
        assert r.status_code == 200 and r.json()["items"] == [], r.text

        # never sent: nothing of the failing flow, though the quick one started then
        absent = await direct.find_launch(failing, user.role_id, {"note": "never sent"},
                                          marker="ktimer-r-2-1", sent_at=sent_at, settle=3)
        assert absent.kind == "absent", absent

        # the same inputs launched once more (by hand): two alike, unless one is known
        again = await direct.launch(quick, user.role_id, INPUTS, marker="by-hand")
        assert again.kind == "launched", again
        await visible(direct, again.fid, user.role_id)
        unclear = await direct.find_launch(quick, user.role_id, INPUTS, marker="ktimer-r-1-1",
                                           sent_at=sent_at, settle=0)
        assert unclear.kind == "cannot_tell", unclear
        assert fid in unclear.reason and again.fid in unclear.reason
        known = await direct.find_launch(quick, user.role_id, INPUTS, marker="ktimer-r-1-1",
                                         sent_at=sent_at, exclude=[again.fid])
        assert known.kind == "found" and known.fid == fid, known
    finally:
        await via_proxy.close()
        await direct.close()


async def test_the_failing_agents_error_line_is_read_back(stack, new_user):
    user, other = new_user("broken"), new_user("bystander")
    launcher = PanelLauncher(stack.panel_url, stack.env["KODO_SECRET_KEY"])
    try:
        outcome = await launcher.launch(stack.flows["failing"], user.role_id, {"note": "why"},
                                        marker="ktimer-e-1-1")
        assert outcome.kind == "launched", outcome
        deadline = time.monotonic() + 60
        while await status_or_none(launcher, outcome.fid, user.role_id) != "error":
            assert time.monotonic() < deadline, "the failing agent did not end in error"
            await asyncio.sleep(0.25)
        started = time.monotonic()
        reason = await launcher.error_reason(outcome.fid, user.role_id)
        assert reason == "RuntimeError: demo agent failing: this agent always fails"
        # read at the final status, not after the 10 s kodosumi keeps the stream open
        assert time.monotonic() - started < 5
        assert await launcher.error_reason(outcome.fid, other.role_id) is None
    finally:
        await launcher.close()
