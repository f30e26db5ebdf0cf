"""The notifier: a loop of its own beside the timer, reading the store, never called
from the launch path.

Each step (1) queues a delivery for every run that ended in an event its schedule
notifies of (read from the store since the cursor; a queued (run, event) is never
queued again), then (2) sends the deliveries that are due, each held under a lease while
it is sent. A restart loses nothing: the cursor and the queue are in the store. It may
send a delivery twice (at least once): one whose answer was lost when the process died
is sent again after its lease.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from kodosumi_timer.clock import utcnow
from kodosumi_timer.notify import payload, retry
from kodosumi_timer.notify.delivery import Outcome, Sender
from kodosumi_timer.store import Store
from kodosumi_timer.store.tables import NotificationRow, ScheduleRow, UserSettingsRow

log = logging.getLogger("kodosumi_timer.notify")

# each step reads the runs that ended since the cursor, and a minute before it: an end is
# stamped when the timer saw it but committed after the rest of its follow round (kodosumi
# asked for other statuses and for error lines, a store busy with a burst), which under
# load was more than 10 s later (CI); queued ones are not queued again, so the overlap
# costs a read, never a second delivery
OVERLAP = timedelta(seconds=60)
# every SWEEP_EVERY steps it reads back GRACE: an end recorded late (the timer kept it
# while the store was away) is still found
GRACE = timedelta(minutes=10)
SWEEP_EVERY = 30
# the cursor is written to the store every so many steps (a restart reads back from the
# last one written: more to read, nothing lost), not on every step
CURSOR_EVERY = 5
# a delivery being sent is held this long; a notifier that died meanwhile lets it go
LEASE = timedelta(seconds=30)
BATCH = 50


def target(note: NotificationRow, schedule: ScheduleRow,
           defaults: dict[str, UserSettingsRow]) -> tuple[str | None, str | None]:
    """The url and secret a delivery goes to now: its schedule's, or (queued from the
    default) its owner's default as it is now."""
    if note.source != "default":
        return schedule.notify_url, schedule.notify_secret
    default = defaults.get(schedule.owner)
    if default is None:
        return None, None
    return default.notify_url, default.notify_secret


class Notifier:
    def __init__(self, store: Store, sender: Sender, panel_url: str,
                 clock: Callable[[], datetime] = utcnow, poll: float = 2.0,
                 concurrency: int = 8):
        self.store = store
        self.sender = sender
        self.panel_url = panel_url
        self.clock = clock
        self.poll = poll
        self._steps = 0
        self._cursor: datetime | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._stop = asyncio.Event()

    async def collect(self) -> int:
        """Queue deliveries for the runs that ended since the cursor; returns how many."""
        now = self.clock()
        if self._cursor is None:  # the first step after a start: where the last one was
            self._cursor = await self.store.notify_cursor() or now
        # the first step after a start reads back GRACE, and so does every SWEEP_EVERY-th
        sweep = self._steps % SWEEP_EVERY == 0
        self._steps += 1
        since = self._cursor - (GRACE if sweep else OVERLAP)
        queued, complete = 0, False
        while True:
            found = await self.store.ended_to_notify(since, now, BATCH)
            if not found:
                complete = True
                break
            added = await self.store.queue_notifications([
                {"schedule_id": e.schedule.id, "run_id": e.run.id, "event": e.event,
                 "status": "pending", "attempts": 0, "next_at": now, "created": now,
                 "source": e.source,
                 "body": payload.body(e.event, e.schedule, e.run, self.panel_url, now,
                                      e.source)}
                for e in found])
            queued += added
            if added == 0:  # queued by another notifier meanwhile: read again next step
                break
        if complete:
            self._cursor = now
            if self._steps % CURSOR_EVERY == 1 or queued:
                await self.store.set_notify_cursor(now)
        if sweep:
            await self.store.drop_orphan_notifications()
        return queued

    async def deliver_due(self) -> int:
        """Send the deliveries that are due; returns how many were attempted."""
        now = self.clock()
        taken = await self.store.take_notifications(now, now + LEASE, BATCH)
        if not taken:
            return 0
        schedules = await self.store.schedules_by_id(list({n.schedule_id for n in taken}))
        # a default's target is read at each attempt: a changed url or secret applies
        defaults = await self.store.notify_defaults(list({
            s.owner for n in taken if n.source == "default"
            and (s := schedules.get(n.schedule_id)) is not None}))
        await asyncio.gather(*(self._deliver(n, schedules.get(n.schedule_id), defaults)
                               for n in taken))
        return len(taken)

    async def _deliver(self, note: NotificationRow, schedule: ScheduleRow | None,
                       defaults: dict[str, UserSettingsRow]) -> None:
        attempts = note.attempts + 1
        if schedule is None:  # deleted meanwhile
            await self.store.record_attempt(note.id, "failed", note.attempts, None,
                                            "the schedule was deleted", None)
            return
        url, secret = target(note, schedule, defaults)
        if not url or not secret:
            off = ("the default notification was removed" if note.source == "default"
                   else "notifications were turned off")
            await self.store.record_attempt(note.id, "failed", note.attempts, None, off, None)
            return
        async with self._slots:
            try:
                outcome = await self.sender.send(url, note.body, secret, note.id, note.event)
            except Exception as exc:  # a bug must not stall the queue: logged, retried
                log.exception("delivery %s failed unexpectedly", note.id)
                outcome = Outcome(False, True, f"{type(exc).__name__}: {exc}")
        now = self.clock()
        if outcome.delivered:
            await self.store.record_attempt(note.id, "delivered", attempts, None, None, now)
            log.info("notification %s (%s of schedule %s) delivered", note.id, note.event,
                     note.schedule_id)
            return
        again = retry.next_attempt(note.created, attempts, now) if outcome.retry else None
        if again is not None:
            await self.store.record_attempt(note.id, "pending", attempts, again,
                                            outcome.error, None)
            log.info("notification %s attempt %d failed (%s); again at %s", note.id,
                     attempts, outcome.error, again.isoformat())
            return
        error = outcome.error if not outcome.retry else \
            f"gave up after {attempts} attempts: {outcome.error}"
        await self.store.record_attempt(note.id, "failed", attempts, None, error, None)
        log.warning("notification %s (%s of schedule %s) failed: %s", note.id, note.event,
                    note.schedule_id, error)

    async def step(self) -> bool:
        """One round; True when it did work (then the next round follows at once)."""
        queued = await self.collect()
        sent = await self.deliver_due()
        return bool(queued or sent)

    async def run(self) -> None:
        """Step until stopped; a failing step is logged and tried again."""
        while not self._stop.is_set():
            busy = False
            try:
                busy = await self.step()
            except Exception:
                log.exception("notifier step failed; trying again in %.0f s", self.poll)
            if not busy:
                try:
                    await asyncio.wait_for(self._stop.wait(), self.poll)
                except TimeoutError:
                    pass

    def stop(self) -> None:
        self._stop.set()
