"""The timer's own figures for monitoring (issue 12, metrics).

The timer counts as it works (:class:`TimerMetrics`: a few counters and two histograms
with fixed bucket bounds) and publishes a small JSON-able snapshot through its lock
actor with every turn of its loop; the panel's ``GET /metrics`` and ``koco-timer status
--json`` read that snapshot and add what only the store knows (the runs it keeps, by
status; the due backlog). :func:`facts` is the one shape both show, so they always say
the same.

Runs are counted by status as the timer records them (:class:`CountingStore`), not
read back from the store: history is pruned, so a count of the stored rows falls and
would read as a counter reset.
"""

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from kodosumi_timer.store import Store
from kodosumi_timer.store.due import BadRow
from kodosumi_timer.store.repository import Claim, ClaimRequest, LaunchResult, RunChange
from kodosumi_timer.store.tables import RunRow

# seconds; a launch is normally a few ms late, a stalled or overloaded timer seconds
LATENESS_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0)
# seconds kodosumi's panel takes to answer a launch request (~0.1 s on a quiet stack)
ANSWER_BOUNDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Histogram:
    """Observations counted per bucket (not cumulative; the last bucket is +Inf)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        # a bucket holds the values at or below its bound (Prometheus' "le")
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def snapshot(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.total,
                "count": sum(self.counts)}


@dataclass
class TimerMetrics:
    """What the timer counts while it runs; reset when it starts."""

    lateness: Histogram = field(default_factory=lambda: Histogram(LATENESS_BOUNDS))
    answer: Histogram = field(default_factory=lambda: Histogram(ANSWER_BOUNDS))
    store_errors: int = 0
    runs: Counter[str] = field(default_factory=Counter)  # recorded with each status

    def recorded(self, statuses: Iterable[str]) -> None:
        self.runs.update(str(status) for status in statuses)

    def fired(self, lateness: float) -> None:
        """A slot's launch request goes out ``lateness`` seconds after its instant."""
        self.lateness.observe(max(0.0, lateness))

    def answered(self, seconds: float) -> None:
        """kodosumi answered a launch request (or failed to) after ``seconds``."""
        self.answer.observe(max(0.0, seconds))

    def store_error(self) -> None:
        self.store_errors += 1

    def snapshot(self, now: datetime, *, waiting: int, in_flight: int,
                 running: int) -> dict[str, Any]:
        """The figures as published through the lock actor (plain JSON, a few hundred
        bytes); ``now`` is the heartbeat."""
        return {"heartbeat": now.timestamp(), "store_errors": self.store_errors,
                "runs": dict(self.runs),
                "waiting": waiting, "in_flight": in_flight, "running": running,
                "lateness_seconds": self.lateness.snapshot(),
                "answer_seconds": self.answer.snapshot()}


class CountingStore(Store):
    """The timer's store, counting the statuses the timer writes runs with (each
    write a run's status goes through in the timer is one of these)."""

    def __init__(self, store: Store, metrics: TimerMetrics):
        super().__init__(store.engine)
        self.metrics = metrics

    async def claim_many(self, requests: Sequence[ClaimRequest], *args: Any,
                         **kwargs: Any) -> list[Claim]:
        claims = await super().claim_many(requests, *args, **kwargs)
        won = {claim.schedule.id for claim in claims}
        self.metrics.recorded("missed" for r in requests if r.schedule.id in won
                              for _ in r.missed)
        return claims

    async def skip_slots(self, schedule: Any, records: Sequence[tuple[datetime, str, str]],
                         *args: Any, **kwargs: Any) -> bool:
        written = await super().skip_slots(schedule, records, *args, **kwargs)
        if written:
            self.metrics.recorded(status for _, status, _ in records)
        return written

    async def quarantine(self, bad: BadRow, *args: Any, **kwargs: Any) -> bool:
        written = await super().quarantine(bad, *args, **kwargs)
        if written:
            self.metrics.recorded(["failed"])
        return written

    async def record_launches(self, results: Sequence[LaunchResult], *args: Any,
                              **kwargs: Any) -> int:
        released = await super().record_launches(results, *args, **kwargs)
        self.metrics.recorded(result.status for result in results)
        return released

    async def finish_runs(self, changes: Sequence[RunChange], *args: Any,
                          **kwargs: Any) -> int:
        released = await super().finish_runs(changes, *args, **kwargs)
        self.metrics.recorded(change.status for change in changes)
        return released


async def store_figures(store: Store, now: datetime) -> dict[str, Any]:
    """What the store says: the runs it keeps by status (one GROUP BY along the status
    index) and the active schedules due by ``now`` that no timer has claimed yet (a
    claim moves a schedule's next_run on), with the age of the oldest of them."""
    query = select(RunRow.status, func.count()).group_by(RunRow.status)
    async with store.engine.connect() as conn:
        runs = {str(status): int(n) for status, n in await conn.execute(query)}
    backlog = await store.count_due_before(now)
    earliest = await store.earliest_next_run() if backlog else None
    oldest = max(0.0, (now - earliest).total_seconds()) if earliest is not None else 0.0
    return {"runs": runs, "backlog": backlog, "backlog_oldest_seconds": oldest}


def facts(meta: dict[str, Any] | None, store: dict[str, Any] | None, now: datetime,
          version: str) -> dict[str, Any]:
    """The timer's figures (from its lock actor's ``meta``; None: no timer is running)
    and the store's (:func:`store_figures`; None: the store could not be read), as
    ``/metrics`` renders them and ``status --json`` prints them."""
    if meta is None:
        timer: dict[str, Any] = {"up": False}
    else:
        figures = meta.get("figures") or {}
        heartbeat = figures.get("heartbeat")
        timer = {
            "up": True, "mode": meta.get("mode", "process"), "pid": meta.get("pid"),
            "host": meta.get("host"), "version": meta.get("version", version),
            "node_id": meta.get("node_id"), "node_ip": meta.get("node_ip"),
            "started": meta.get("started"), "fires": meta.get("fires", 0),
            "failures": meta.get("failures", 0),
            "heartbeat_age_seconds":
                None if heartbeat is None else max(0.0, now.timestamp() - heartbeat),
            **figures,
        }
    if store is None:
        return {"timer": timer, "store_up": False}
    return {"timer": timer, "store_up": True, "runs_kept": store["runs"],
            "backlog": store["backlog"],
            "backlog_oldest_seconds": store["backlog_oldest_seconds"]}
