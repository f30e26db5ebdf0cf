"""Timer faults found by the fault runs (bench/faults.py), each pinned by a test with a
real store, an injected clock and a fake launcher (our own interfaces)."""

import asyncio
import time
from datetime import timedelta

from kodosumi_timer.store import RunRow
from tests.unit.factories import T0, Clock, FakeLauncher, schedule
from tests.unit.test_timer import make_timer


async def _runs_of(store, schedule_id: str) -> list[RunRow]:
    return (await store.runs(schedule_id))[0]


async def test_leases_are_renewed_while_the_timer_waits_for_its_backlog(store):
    """A timer holding a full batch of pending launches waits for them before it claims
    more; meanwhile the leases of the runs it holds must still be renewed, or other
    timers take them over (found with three timers sharing 5,000 slots, lease 5 s)."""
    first = await store.add_schedule(schedule(next_run=T0 + timedelta(seconds=0.5)))
    await store.add_schedule(schedule(next_run=T0 + timedelta(seconds=0.5)))
    clock = Clock(T0)
    go = asyncio.Event()

    async def sleep(seconds: float) -> None:  # the launches wait for their instant
        await go.wait()
        clock.advance(seconds=seconds)

    timer = make_timer(store, FakeLauncher(), clock=clock, claim_ahead=1.0, batch=1,
                       lease=0.3, sleep=sleep)
    firing = asyncio.create_task(timer.fire_due())  # claims one, waits for its backlog
    deadline = time.monotonic() + 5
    while not await _runs_of(store, first.id) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    [run] = await _runs_of(store, first.id)
    clock.advance(seconds=0.2)  # most of the lease has passed on the timer's clock
    renewed = False
    while not renewed and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        [run] = await _runs_of(store, first.id)
        renewed = run.lease_until is not None and \
            run.lease_until.replace(tzinfo=T0.tzinfo) > clock() + timedelta(seconds=0.15)
    go.set()
    await firing
    await timer.drain()
    assert renewed, f"lease not renewed while waiting: {run.lease_until} at {clock()}"
