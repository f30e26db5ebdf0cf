"""Finding a launch in doubt again (``find_launch``) and reading an agent's error
(``error_reason``): against the fake kodosumi (``bench/_target.py``, a real process,
answering kodosumi 1.1's routes with its shapes), and the pure rules behind them."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from kodosumi_timer.bridge import PanelLauncher
from kodosumi_timer.executions import (
    Candidate,
    EventStream,
    error_line,
    fid_below,
    fid_time,
    flow_app,
    inputs_verdict,
    judge,
    same_app,
)
from tests.unit.fake_kodosumi import (  # noqa: F401 (fixtures)
    FLOW,
    OTHER,
    OTHER_FLOW,
    OWNER,
    SECRET,
    Target,
    fake_fixture,
    target_fixture,
)

INPUTS = {"text": "hello", "n": 2}


def launcher_for(fake: Target, **options) -> PanelLauncher:
    return PanelLauncher(fake.url, secret=SECRET, **{"timeout": 2, "settle": 2, "poll": 0.1,
                                                    **options})


async def in_doubt(launcher: PanelLauncher, flow: str = FLOW, owner: str = OWNER,
                   inputs: dict | None = None, marker: str = "ktimer-s-1-1") -> datetime:
    sent_at = datetime.now(UTC)
    outcome = await launcher.launch(flow, owner, INPUTS if inputs is None else inputs,
                                    marker=marker)
    assert outcome.kind in ("in_doubt", "launched"), outcome
    return sent_at


def accepted_fids(fake: Target) -> list[str]:
    return [launch["fid"] for launch in fake.launches() if launch["fid"]]


# ---- find_launch against the fake ----------------------------------------------------

async def test_an_accepted_launch_answered_502_is_found(fake: Target):
    fake.faults({"action": "error_after_accept", "status": 502})
    launcher = launcher_for(fake)
    try:
        sent_at = await in_doubt(launcher)
        found = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="ktimer-s-1-1",
                                           sent_at=sent_at)
    finally:
        await launcher.close()
    assert found.kind == "found" and [found.fid] == accepted_fids(fake), found
    assert "not by a launch id" in found.reason


async def test_a_launch_written_late_is_found_not_absent(fake: Target):
    """kodosumi shows an execution only once its spooler wrote it: find_launch keeps
    asking until the settle time has passed."""
    fake.faults({"action": "error_after_accept", "status": 500}, exec_delay=0.8)
    launcher = launcher_for(fake)
    try:
        sent_at = await in_doubt(launcher)
        found = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m", sent_at=sent_at)
    finally:
        await launcher.close()
    assert found.kind == "found" and [found.fid] == accepted_fids(fake), found


async def test_a_launch_that_never_arrived_is_absent_after_the_settle_time(fake: Target):
    fake.faults({"action": "refuse"})
    launcher = launcher_for(fake, settle=1.0)
    try:
        sent_at = await in_doubt(launcher)
        started = time.monotonic()
        absent = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m", sent_at=sent_at)
    finally:
        await launcher.close()
    assert absent.kind == "absent", absent
    assert (datetime.now(UTC) - sent_at).total_seconds() >= 1.0
    assert time.monotonic() - started < 3
    assert accepted_fids(fake) == []


async def test_absent_waits_the_settle_time_on_the_injected_clock(fake: Target):
    """No real waiting: the clock advances by what the launcher sleeps."""
    t0 = datetime.now(UTC)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    launcher = PanelLauncher(fake.url, secret=SECRET, sleep=sleep,
                             clock=lambda: t0 + timedelta(seconds=sum(slept)))
    try:
        absent = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m", sent_at=t0)
    finally:
        await launcher.close()
    # by default past the 60 s kodosumi's panel waits for a flow, polled every second
    assert absent.kind == "absent" and sum(slept) == 65 and len(slept) == 65, (absent, slept)


async def test_others_flows_and_other_owners_do_not_match(fake: Target):
    launcher = launcher_for(fake, settle=0)
    try:
        sent_at = await in_doubt(launcher, flow=OTHER_FLOW)  # the owner, another flow
        await in_doubt(launcher, owner=OTHER)  # this flow, another owner
        absent = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m", sent_at=sent_at)
    finally:
        await launcher.close()
    assert absent.kind == "absent", absent


async def test_only_executions_started_near_the_launch_count(fake: Target):
    now = datetime.now(UTC)
    launcher = launcher_for(fake, settle=0, window=30,
                            clock=lambda: now + timedelta(hours=1))  # all settled
    try:
        await in_doubt(launcher)
        later = now + timedelta(seconds=120)  # it started long before this launch
        before = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m", sent_at=later)
        earlier = now - timedelta(seconds=120)  # and long after this one
        after = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m", sent_at=earlier)
        near = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m", sent_at=now)
    finally:
        await launcher.close()
    assert before.kind == "absent" and after.kind == "absent", (before, after)
    assert near.kind == "found", near


async def test_two_alike_cannot_be_told_apart_unless_one_is_known(fake: Target):
    launcher = launcher_for(fake, settle=0)
    try:
        sent_at = await in_doubt(launcher)
        await in_doubt(launcher)  # the same inputs again (by hand, or another schedule)
        first, second = accepted_fids(fake)
        unclear = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m", sent_at=sent_at)
        known = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m", sent_at=sent_at,
                                           exclude=[second])
    finally:
        await launcher.close()
    assert unclear.kind == "cannot_tell" and first in unclear.reason and second in unclear.reason
    assert known.kind == "found" and known.fid == first, known


async def test_an_execution_with_other_inputs_is_not_taken_for_absent(fake: Target):
    """The flow may keep inputs in another form than they were posted: an execution of
    the flow in the window whose inputs differ makes it uncertain, never absent (a
    wrong absent would run the agent twice)."""
    launcher = launcher_for(fake, settle=0)
    try:
        sent_at = await in_doubt(launcher, inputs={"text": "something else", "n": 2})
        unclear = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m", sent_at=sent_at)
        both = await in_doubt(launcher)
        found = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m", sent_at=both)
    finally:
        await launcher.close()
    assert unclear.kind == "cannot_tell" and "inputs differ" in unclear.reason, unclear
    assert found.kind == "found" and found.fid == accepted_fids(fake)[1], found


async def test_the_owners_timeline_is_paged(fake: Target):
    launcher = launcher_for(fake, settle=0)
    launcher.PAGE = 3
    try:
        sent_at = await in_doubt(launcher, inputs={"n": 0})
        for n in range(1, 8):
            await in_doubt(launcher, inputs={"n": n})
        found = await launcher.find_launch(FLOW, OWNER, {"n": 0}, marker="m", sent_at=sent_at)
    finally:
        await launcher.close()
    assert found.kind == "found" and found.fid == accepted_fids(fake)[0], found


def clocked(url: str, **options) -> tuple[PanelLauncher, list[float]]:
    """A launcher whose clock advances only by what it sleeps."""
    t0 = datetime.now(UTC)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    launcher = PanelLauncher(url, secret=SECRET, timeout=1, sleep=sleep,
                             clock=lambda: t0 + timedelta(seconds=sum(slept)), **options)
    return launcher, slept


async def test_a_panel_that_does_not_answer_cannot_tell_after_the_patience(fake: Target):
    launcher, slept = clocked("http://127.0.0.1:9", settle=3, patience=20)
    try:
        unclear = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m",
                                             sent_at=launcher.clock())
    finally:
        await launcher.close()
    assert unclear.kind == "cannot_tell" and unclear.reason.startswith("kodosumi did not answer")
    assert sum(slept) == 20, slept  # asked again until then, not only until the settle time


async def test_a_panel_back_after_the_settle_time_is_still_asked(fake: Target):
    """kodosumi restarting for longer than the settle time: the launch is judged once
    it answers again, not left unknown."""
    launcher, slept = clocked("http://127.0.0.1:9", settle=3, patience=60)
    real_sleep = launcher.sleep

    async def back_after_ten(seconds: float) -> None:
        await real_sleep(seconds)
        if sum(slept) >= 10:
            launcher.base = fake.url  # it answers again
    launcher.sleep = back_after_ten
    try:
        absent = await launcher.find_launch(FLOW, OWNER, INPUTS, marker="m",
                                            sent_at=launcher.clock())
    finally:
        await launcher.close()
    assert absent.kind == "absent", absent
    assert sum(slept) == 10, slept


# ---- error_reason against the fake ---------------------------------------------------

async def wait_status(launcher: PanelLauncher, fid: str, wanted: str) -> None:
    deadline = time.monotonic() + 10
    while await launcher.status(fid, OWNER) != wanted:
        assert time.monotonic() < deadline, f"{fid} never {wanted}"
        await asyncio.sleep(0.05)


async def test_the_agents_final_error_line_is_read_without_waiting_for_the_stream(fake):
    fake.faults({"action": "fail"}, run_seconds=0.3)  # the stream stays open 10 s after
    launcher = launcher_for(fake)
    try:
        outcome = await launcher.launch(FLOW, OWNER, INPUTS, marker="m")
        started = time.monotonic()
        reason = await launcher.error_reason(outcome.fid, OWNER)  # while still running
        took = time.monotonic() - started
        await wait_status(launcher, outcome.fid, "error")
        other = await launcher.error_reason(outcome.fid, OTHER)
    finally:
        await launcher.close()
    assert reason == "ValueError: invalid literal for int() with base 10: 'abc'"
    assert took < 3, took
    assert other is None  # another user's execution is not theirs to read


async def test_no_error_line_for_a_finished_or_unknown_execution(fake: Target):
    launcher = launcher_for(fake)
    try:
        outcome = await launcher.launch(FLOW, OWNER, INPUTS, marker="m")
        await wait_status(launcher, outcome.fid, "finished")
        assert await launcher.error_reason(outcome.fid, OWNER) is None
        assert await launcher.error_reason("0" * 24, OWNER) is None
    finally:
        await launcher.close()


async def test_an_error_line_is_short(fake: Target):
    fake.faults({"action": "fail", "body": "Traceback:\n  boom()\nKeyError: '" + "x" * 500
                 + "'\n  ^^^^^^\n"})
    launcher = launcher_for(fake)
    try:
        outcome = await launcher.launch(FLOW, OWNER, INPUTS, marker="m")
        reason = await launcher.error_reason(outcome.fid, OWNER)
    finally:
        await launcher.close()
    assert reason is not None and reason.startswith("KeyError: 'xxx") and len(reason) == 300


# ---- the pure rules ------------------------------------------------------------------

def test_a_fid_says_when_it_started():
    assert fid_time("68f0c0de0123456789abcdef") == 0x68F0C0DE
    assert fid_time("not-a-fid") is None and fid_time("z" * 24) is None
    below = fid_below(0x68F0C0DE)
    assert "68f0c0deffffffffffffffff" < below <= "68f0c0df0000000000000000"


def test_a_flow_is_known_by_its_serve_application():
    assert flow_app("/-/127.0.0.1/8001/quick/-/") == ("127.0.0.1", "8001", "quick")
    assert flow_app("http://panel:3370/-/Host/8001/a/b/-/route") == ("host", "8001", "a/b")
    assert flow_app("/nothing/") is None
    assert same_app("http://127.0.0.1:8001/quick", "/-/127.0.0.1/8001/quick/-/") is True
    assert same_app("http://127.0.0.1:8001/slow", "/-/127.0.0.1/8001/quick/-/") is False
    assert same_app(None, "/-/127.0.0.1/8001/quick/-/") is None


@pytest.mark.parametrize("sent, stored, verdict", [
    ({"message": " hi "}, {"dict": {"message": "hi", "repeat": 1}}, "agree"),
    ({"repeat": "2", "shout": "on"}, {"dict": {"repeat": 2, "shout": True}}, "agree"),
    ({"shout": "off"}, {"dict": {"shout": True}}, "differ"),
    ({"day": ""}, {"dict": {"day": None}}, "agree"),
    ({"tags": ["b", "a"]}, {"dict": {"tags": ["a", "b"]}}, "agree"),
    ({"message": "hi"}, {"dict": {"message": "ho"}}, "differ"),
    ({}, {"dict": {"note": ""}}, "agree"),
    ({"message": "hi"}, {"Query": {"message": "hi"}}, "agree"),  # a pydantic model
    ({"message": "hi"}, {"str": "hi"}, "unknown"),
    ({"message": "hi"}, None, "unknown"),
])
def test_posted_inputs_and_what_the_flow_kept(sent, stored, verdict):
    assert inputs_verdict(sent, stored) == verdict


def test_judging_the_window():
    at = datetime.fromtimestamp(1_000_000, UTC)
    one = Candidate("a" * 24, 1_000_001, True, "agree")
    two = Candidate("b" * 24, 1_000_002, True, "agree")
    other_flow = Candidate("c" * 24, 1_000_001, False, "agree")
    differing = Candidate("d" * 24, 1_000_001, True, "differ")
    unreadable = Candidate("e" * 24, 1_000_001, None, "agree")
    assert judge([], at).kind == "none"
    assert judge([other_flow], at).kind == "none"
    found = judge([one, other_flow, differing], at)
    assert found.kind == "found" and found.fid == one.fid and "(+1 s)" in found.reason
    assert judge([one, two], at).kind == "unclear" and judge([one, two], at).final
    assert judge([one, unreadable], at).kind == "unclear"
    assert not judge([one, unreadable], at).final  # its flow may be readable next time
    assert "could not be read" in judge([unreadable], at).reason
    assert "inputs differ" in judge([differing], at).reason


def test_the_last_line_of_a_trace():
    trace = ("Traceback (most recent call last):\n  File \"a.py\", line 3, in run\n"
             "    int(x)\n    ~~~^^^\nValueError: invalid literal for int() with base 10: 'abc'\n")
    assert error_line(trace) == "ValueError: invalid literal for int() with base 10: 'abc'"
    assert error_line("actor not found") == "actor not found"
    assert error_line("  \n ^^^ \n") is None


def test_server_sent_events_as_kodosumi_sends_them():
    stream = EventStream()
    lines = ["id: 5\r\n", "event: error\r\n", "data: 1764745066.25:Traceback (most recent\r\n",
             "data: ValueError: x\r\n", "\r\n", "event: status\r\n", "data: 1764745066.3:error\r\n",
             "\r\n", "event: eof\r\n", "data: end of stream\r\n", "\r\n"]
    events = [e for e in (stream.feed(line) for line in lines) if e]
    assert events == [("error", "Traceback (most recent\nValueError: x"), ("status", "error"),
                      ("eof", "end of stream")]
