"""Pacing: adaptive limits, fairness by owner, hanging requests, the running cap."""

import asyncio

import pytest

from kodosumi_timer.timer.pacing import Limit, Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limit_grows_on_quick_answers_and_is_cut_once_per_wave_of_slow_ones():
    limit = Limit(value=4.0, high=8.0, target=2.0)
    for _ in range(4):  # slow start: one more per quick answer, doubled in a round
        limit.observe(0.1, overloaded=False, now=0.0)
    assert limit.value == 8.0
    limit.observe(0.1, overloaded=False, now=0.0)
    assert limit.value == 8.0  # capped
    limit.observe(5.0, overloaded=False, now=10.0)
    limit.observe(5.0, overloaded=False, now=10.5)  # the same wave: no second cut
    assert limit.value == 4.0
    limit.observe(0.1, overloaded=True, now=13.0)
    assert limit.value == 2.0
    for _ in range(2):  # after a cut: additive, one more per limit's worth of answers
        limit.observe(0.1, overloaded=False, now=14.0)
    assert limit.value == pytest.approx(2.0 + 1 / 2 + 1 / 2.5)
    for t in range(20):
        limit.observe(0.1, overloaded=True, now=20.0 + 3 * t)
    assert limit.value == 1.0  # never below one


async def test_waiting_launches_are_served_round_robin_by_owner():
    pacer = Pacer(initial=1.0, high=1.0)
    first = await pacer.turn("alice", "/f/")  # takes the only place
    order: list[str] = []

    async def one(owner: str) -> None:
        ticket = await pacer.turn(owner, "/f/")
        order.append(owner)
        pacer.done(ticket)

    tasks = [asyncio.create_task(one("alice")) for _ in range(5)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(one("bob")))
    await asyncio.sleep(0)
    assert pacer.waiting == 6
    pacer.done(first)
    await asyncio.gather(*tasks)
    assert order.index("bob") <= 1  # bob's one slot waits for at most one of alice's


async def test_a_hanging_flow_does_not_hold_up_another_flow():
    clock = Clock()
    pacer = Pacer(initial=2.0, high=32.0, stuck_after=10.0, clock=clock)
    hanging = [await pacer.turn("alice", "/slow/") for _ in range(2)]
    # the slow flow's limit is used up; its next launch waits
    waiting = asyncio.create_task(pacer.turn("alice", "/slow/"))
    await asyncio.sleep(0)
    assert not waiting.done()
    # another flow goes at once
    other = await asyncio.wait_for(pacer.turn("bob", "/quick/"), 1)
    pacer.done(other)
    clock.now = 11.0  # the hanging requests no longer count against the panel's limit (4)
    many = [await asyncio.wait_for(pacer.turn("carol", f"/f{i}/"), 1) for i in range(4)]
    fifth = asyncio.create_task(pacer.turn("carol", "/f9/"))  # but fresh requests do
    await asyncio.sleep(0)
    assert not fifth.done()
    pacer.done(many.pop())
    many.append(await asyncio.wait_for(fifth, 1))
    for ticket in [*hanging, *many]:
        pacer.done(ticket)
    pacer.done(await waiting)


async def test_the_running_cap_holds_launches_until_executions_end():
    pacer = Pacer(max_running=2, initial=8.0)
    pacer.set_running({"alice": 2})
    waiting = asyncio.create_task(pacer.turn("alice", "/f/"))
    await asyncio.sleep(0)
    assert not waiting.done() and pacer.waiting == 1
    pacer.ended("alice")  # one execution ended
    ticket = await asyncio.wait_for(waiting, 1)
    pacer.done(ticket, launched=True)
    assert pacer.running == {"alice": 2}


async def test_above_the_cap_an_owner_with_nothing_running_still_gets_one():
    pacer = Pacer(max_running=2, initial=8.0)
    pacer.set_running({"alice": 1, "bob": 1})
    alice = asyncio.create_task(pacer.turn("alice", "/f/"))
    await asyncio.sleep(0)
    assert not alice.done()  # alice's herd waits for the cap
    carol = await asyncio.wait_for(pacer.turn("carol", "/f/"), 1)  # carol's one slot goes
    second = asyncio.create_task(pacer.turn("carol", "/f/"))
    await asyncio.sleep(0)
    assert not second.done()  # but only one above the cap
    pacer.done(carol, launched=True)
    for task in (alice, second):
        task.cancel()
    await asyncio.gather(alice, second, return_exceptions=True)


async def test_a_cancelled_waiter_gives_its_place_back():
    pacer = Pacer(initial=1.0, high=1.0)
    held = await pacer.turn("alice", "/f/")
    waiter = asyncio.create_task(pacer.turn("bob", "/f/"))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    pacer.done(held)
    ticket = await asyncio.wait_for(pacer.turn("carol", "/f/"), 1)
    assert pacer.in_flight == 1
    pacer.done(ticket)
    assert pacer.in_flight == 0


async def test_a_full_flow_never_hides_the_same_owners_launches_of_another_flow():
    pacer = Pacer(initial=1.0, high=1.0)
    held = await pacer.turn("alice", "/slow/")
    stuck = [asyncio.create_task(pacer.turn("alice", "/slow/")) for _ in range(100)]
    await asyncio.sleep(0)
    other = await asyncio.wait_for(pacer.turn("alice", "/quick/"), 1)
    pacer.done(other)
    for task in stuck:
        task.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)
    pacer.done(held)
    assert pacer.waiting == 0 and pacer.in_flight == 0


async def test_an_answer_during_a_full_burst_does_not_look_at_every_waiting_owner(
        monkeypatch):
    # a burst of one agent for a thousand owners: each answer frees one place; handing
    # it out must look at the owners until one can go, not at all thousand every time
    pacer = Pacer(initial=2.0, high=2.0)
    held = [await pacer.turn(f"owner{i}", "/f/") for i in range(2)]
    tasks = [asyncio.create_task(pacer.turn(f"owner{i}", "/f/")) for i in range(2, 1002)]
    await asyncio.sleep(0)
    assert pacer.waiting == 1000
    looked = 0
    oldest_ready = Pacer._oldest_ready

    def counting(self, queues):
        nonlocal looked
        looked += 1
        return oldest_ready(self, queues)

    monkeypatch.setattr(Pacer, "_oldest_ready", counting)
    for ticket in held:
        pacer.done(ticket)
    await asyncio.sleep(0)
    assert looked == 2  # one owner per freed place
    assert sum(t.done() for t in tasks) == 2
    assert [t.result().owner for t in tasks if t.done()] == ["owner2", "owner3"]
    looked = 0
    pacer.done(tasks[0].result())  # the flow is full again after this grant
    pacer.observe(tasks[1].result(), overloaded=False)
    assert looked == 1
    for task in tasks:
        task.cancel()


async def test_the_limit_learns_from_the_request_time_not_the_wait_before_it():
    """A launch whose turn came 5 s before its request went (the store's check was slow)
    but which kodosumi answered in 0.1 s does not cut the limit."""
    clock = Clock()
    pacer = Pacer(initial=4.0, high=32.0, target=2.0, clock=clock)
    ticket = await pacer.turn("alice", "/f/")
    clock.now = 5.0
    pacer.observe(ticket, overloaded=False, seconds=0.1)
    assert pacer.panel.cuts == 0 and pacer.panel.value > 8.0
    pacer.observe(ticket, overloaded=False)  # measured from the turn: 5 s, too slow
    assert pacer.panel.cuts == 1
    pacer.done(ticket)
