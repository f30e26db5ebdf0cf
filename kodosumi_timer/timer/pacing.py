"""Pacing: launch as fast as kodosumi takes it, fairly by owner.

How many launch requests may be in flight is learnt from kodosumi's answers, like an
adaptive concurrency limiter (additive increase, multiplicative decrease): an answer
within ``target`` seconds raises the limit by one per limit's worth of answers; a slow
answer, an error or no answer cuts it (at most once per ``target`` seconds, so that one
wave of slow answers is one cut). Until its first cut a limit grows by one per quick
answer instead (a slow start, as TCP's: it doubles per round), so that a burst against a
kodosumi that keeps up is not held to a few requests for hundreds of answers (the ramp
was half the time of a burst of 1,000 in the lab).

There is one limit for the panel and one per flow: a flow whose app hangs uses up its
own limit, not the others'. A request in flight for longer than ``stuck_after`` seconds
no longer counts against the panel's limit (it is its flow's problem), so hanging
requests never stall unrelated launches.

An optional cap, ``max_running``, bounds the executions launched and not ended; an owner
with nothing running or being sent may still start one above it, so that other users'
herds never make one user's single slot wait for their executions to end.

Launches that cannot go yet wait in one queue per owner; the queues are served in turn,
so one user's thousand slots never delay another user's one.
"""

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass
class Limit:
    """An additive-increase / multiplicative-decrease limit of requests in flight."""

    value: float = 4.0
    low: float = 1.0
    high: float = 32.0
    target: float = 2.0  # seconds: slower answers mean "overloaded"
    backoff: float = 0.5
    cuts: int = 0  # how often it was cut (benches print it)
    _cut_at: float = -1e9

    def allows(self, in_flight: int) -> bool:
        return in_flight < int(self.value)

    def observe(self, seconds: float, overloaded: bool, now: float) -> None:
        if overloaded or seconds > self.target:
            if now - self._cut_at >= self.target:
                self.value = max(self.low, self.value * self.backoff)
                self._cut_at = now
                self.cuts += 1
        elif self.cuts == 0:  # slow start: doubles per round until the first cut
            self.value = min(self.high, self.value + 1.0)
        else:
            self.value = min(self.high, self.value + 1.0 / self.value)


@dataclass(eq=False)
class Ticket:
    """Leave to send one launch request; given back with ``Pacer.done``."""

    owner: str
    flow: str
    started: float = 0.0


@dataclass(eq=False)
class _Waiter:
    owner: str
    flow: str
    future: "asyncio.Future[Ticket]"
    seq: int  # arrival order


# an owner's waiting launches, one queue per flow: a flow that is full never hides
# another flow's launches behind it
_OwnerQueue = dict[str, deque[_Waiter]]


@dataclass
class Pacer:
    max_running: int | None = None
    initial: float = 4.0
    high: float = 32.0
    target: float = 2.0
    stuck_after: float = 10.0
    clock: Callable[[], float] = time.monotonic
    # executions launched and not ended, by owner (kept by the launches and the follower)
    running: Counter[str] = field(default_factory=Counter)
    panel: Limit = field(init=False)
    flows: dict[str, Limit] = field(default_factory=dict)
    _in_flight: dict[Ticket, None] = field(default_factory=dict)
    _by_flow: Counter[str] = field(default_factory=Counter)
    _by_owner: Counter[str] = field(default_factory=Counter)
    _queues: dict[str, _OwnerQueue] = field(default_factory=dict)
    _turns: deque[str] = field(default_factory=deque)
    _waiting_by_flow: Counter[str] = field(default_factory=Counter)
    _recheck: asyncio.TimerHandle | None = None
    _arrivals: int = 0

    def __post_init__(self) -> None:
        self.panel = Limit(value=self.initial * 2, high=self.high, target=self.target)

    # ---- what the launches call ----------------------------------------------------

    async def turn(self, owner: str, flow: str) -> Ticket:
        """Wait until this launch may be sent; served round-robin by owner."""
        if (ticket := self.try_turn(owner, flow)) is not None:
            return ticket
        self._arrivals += 1
        waiter = _Waiter(owner, flow, asyncio.get_running_loop().create_future(),
                         self._arrivals)
        if owner not in self._queues:
            self._queues[owner] = {}
            self._turns.append(owner)
        self._queues[owner].setdefault(flow, deque()).append(waiter)
        self._waiting_by_flow[flow] += 1
        self._dispatch()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.done(waiter.future.result())  # granted as it was cancelled
            raise

    def observe(self, ticket: Ticket, overloaded: bool, seconds: float | None = None) -> None:
        """kodosumi answered the request of ``ticket`` (or did not: ``overloaded``) after
        ``seconds`` (default: since the turn was given; the launch passes the request's
        own time, so that the store's check before sending is not taken for kodosumi's)."""
        now = self.clock()
        if seconds is None:
            seconds = now - ticket.started
        self.panel.observe(seconds, overloaded, now)
        self._flow(ticket.flow).observe(seconds, overloaded, now)

    def try_turn(self, owner: str, flow: str) -> Ticket | None:
        """A turn now if this launch would get one without waiting, else None."""
        if not self._turns and self._room(owner, flow):
            return self._grant(owner, flow)
        return None

    def done(self, ticket: Ticket, launched: bool = False) -> None:
        """The request of ``ticket`` is over; ``launched``: its execution now runs."""
        if ticket in self._in_flight:
            del self._in_flight[ticket]
            self._by_flow[ticket.flow] -= 1
            self._by_owner[ticket.owner] -= 1
        if launched:
            self.running[ticket.owner] += 1
        self._dispatch()

    def set_running(self, running: Mapping[str, int]) -> None:
        """The executions running now, by owner (the store's count)."""
        self.running = Counter({owner: n for owner, n in running.items() if n > 0})
        self._dispatch()

    def ended(self, owner: str) -> None:
        """An execution of ``owner`` ended."""
        if self.running[owner] > 0:
            self.running[owner] -= 1
        self._dispatch()

    @property
    def waiting(self) -> int:
        return sum(len(q) for queues in self._queues.values() for q in queues.values())

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # ---- inside -------------------------------------------------------------------

    def _flow(self, flow: str) -> Limit:
        if flow not in self.flows:
            self.flows[flow] = Limit(value=self.initial, high=self.high, target=self.target)
        return self.flows[flow]

    def _panel_busy(self) -> int:
        now = self.clock()
        return sum(1 for t in self._in_flight if now - t.started < self.stuck_after)

    def _capped(self) -> bool:
        return self.max_running is not None and \
            self.running.total() + len(self._in_flight) >= self.max_running

    def _global_room(self, owner: str) -> bool:
        if self._capped() and self.running[owner] + self._by_owner[owner] > 0:
            return False
        return self.panel.allows(self._panel_busy())

    def _room(self, owner: str, flow: str) -> bool:
        return self._global_room(owner) and self._flow(flow).allows(self._by_flow[flow])

    def _grant(self, owner: str, flow: str) -> Ticket:
        ticket = Ticket(owner, flow, self.clock())
        self._in_flight[ticket] = None
        self._by_flow[flow] += 1
        self._by_owner[owner] += 1
        if self._recheck is None:  # a request that hangs stops counting for the panel
            self._recheck = asyncio.get_running_loop().call_later(
                self.stuck_after, self._recheck_stuck)
        return ticket

    def _recheck_stuck(self) -> None:
        self._recheck = None
        self._dispatch()
        if self._in_flight and self._recheck is None:
            self._recheck = asyncio.get_running_loop().call_later(
                self.stuck_after / 2, self._recheck_stuck)

    def _dispatch(self) -> None:
        """Hand out turns while there is room: owners in turn, each owner's oldest launch
        whose flow has room. An owner served goes to the back of the line; one whose
        launches cannot go yet keeps its place. Called on every answer: when the panel
        or every waiting flow is full it returns without looking at the owners (a burst
        of one agent for a thousand owners made each call a scan of a thousand)."""
        while self._turns and self.panel.allows(self._panel_busy()):
            open_flows = {flow for flow, n in self._waiting_by_flow.items()
                          if n > 0 and self._flow(flow).allows(self._by_flow[flow])}
            if not open_flows:
                return
            capped = self._capped()
            for owner in list(self._turns):
                queues = self._queues[owner]
                waiter = None
                if not (capped and self.running[owner] + self._by_owner[owner] > 0) \
                        and not open_flows.isdisjoint(queues):
                    waiter = self._oldest_ready(queues)
                self._drop_empty(owner)
                if waiter is not None:
                    queues[waiter.flow].popleft()
                    self._waiting_by_flow[waiter.flow] -= 1
                    waiter.future.set_result(self._grant(waiter.owner, waiter.flow))
                    self._drop_empty(owner)
                    if owner in self._queues:
                        self._turns.remove(owner)
                        self._turns.append(owner)
                    break
            else:
                return  # nobody could go

    def _drop_empty(self, owner: str) -> None:
        queues = self._queues.get(owner)
        if queues is None:
            return
        for flow in [f for f, q in queues.items() if not q]:
            del queues[flow]
        if not queues:
            del self._queues[owner]
            self._turns.remove(owner)

    def _oldest_ready(self, queues: _OwnerQueue) -> _Waiter | None:
        """The oldest waiting launch of an owner whose flow has room (cancelled ones
        are dropped on the way)."""
        best: _Waiter | None = None
        for flow, queue in queues.items():
            while queue and queue[0].future.cancelled():
                queue.popleft()
                self._waiting_by_flow[flow] -= 1
            if queue and self._flow(flow).allows(self._by_flow[flow]) and \
                    (best is None or queue[0].seq < best.seq):
                best = queue[0]
        return best
