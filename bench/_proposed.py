"""A prototype of the design changes proposed for issue 8, measured by ``lateness.py``
as the scheduler ``proposed`` next to the current timer and APScheduler.

It lives in ``bench/`` only so that the figures can be measured before the lead applies
the changes to ``kodosumi_timer/`` (``bench/proposed-issue8.patch``, explained in
``bench/RESULTS.md``); it subclasses the real classes and changes exactly these things:

1. **Pre-claim, launch at the instant**: the loop wakes ``LEAD`` before the earliest
   slot, claims every slot due by ``now + LEAD`` (the plan is made as of the slot), and
   each launch task sleeps until its slot on the same wall clock, so that the store's
   latency is spent before the slot, not after it. Never early: the task re-reads the
   clock after sleeping.
2. **Batched claims**: one transaction claims a whole due batch (up to 500) with one
   conditional ``UPDATE ... FROM <the batch> WHERE next_run = <the one read> RETURNING
   id`` (the batch passed as arrays on PostgreSQL, as JSON on SQLite, so the statement
   is prepared once) and one executemany INSERT of the runs, instead of one transaction
   per schedule; launch results then find their run by its unique key.
3. **Batched checks**: one query for the owners of the batch (``RoleTable`` with a core
   table of kodosumi's ``roles``, so that the first fire no longer imports
   ``kodosumi.dtypes`` and with it litestar) and one for the schedules with an active run.
4. **Batched launch results**: results are written by one writer task, up to 500 per
   transaction, instead of one transaction per launch; the follow loop asks for the
   statuses concurrently, writes what changed in one transaction, and waits while
   launches are in flight (launching first, following after).
5. **aiohttp for launches**: the same requests, outcomes and limits (32 connections) as
   ``PanelLauncher``, through aiohttp (already installed with Ray), which answers many
   concurrent requests several times faster than httpx on this machine; an owner's token
   is reused for a third of its lifetime instead of being signed for every request.

Semantics kept: catch-up (missed slots recorded), overlap=skip, owner checks with pause,
end conditions, exactly one launch per slot (the conditional UPDATE decides, the unique
key backs it), manual runs (unchanged path), retries with backoff. The timer's unit
tests pass against it (with ``lead=0``) on SQLite and PostgreSQL.
"""

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import (
    Boolean,
    Column,
    MetaData,
    Table,
    Uuid,
    bindparam,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from kodosumi_timer import policy
from kodosumi_timer.bridge import (
    LaunchOutcome,
    OwnerState,
    RoleTable,
    flow_path,
    mint_token,
    role_uuid,
)
from kodosumi_timer.store import RunRow, ScheduleRow, Store
from kodosumi_timer.store.repository import ACTIVE_RUN_STATES, Claim
from kodosumi_timer.store.tables import UTCDateTime
from kodosumi_timer.timer import FOLLOW_GIVE_UP, MISSED_REASON, OVERLAP_REASON, Timer

log = logging.getLogger("kodosumi_timer.timer")

# kodosumi's roles table, only the columns the timer reads (no kodosumi.dtypes import)
ROLES = Table("roles", MetaData(), Column("id", Uuid, primary_key=True),
              Column("active", Boolean), Column("operator", Boolean))


class BatchRoles(RoleTable):
    async def _role(self, owner: str) -> Any:
        rid = role_uuid(owner)
        if rid is None:
            return None
        async with self.engine.connect() as conn:
            query = select(ROLES.c.active, ROLES.c.operator).where(ROLES.c.id == rid)
            return (await conn.execute(query)).first()

    async def owner_states(self, owners: Iterable[str]) -> dict[str, OwnerState]:
        ids = {owner: role_uuid(owner) for owner in owners}
        wanted = [rid for rid in ids.values() if rid is not None]
        found: dict[Any, bool] = {}
        if wanted:
            async with self.engine.connect() as conn:
                rows = await conn.execute(
                    select(ROLES.c.id, ROLES.c.active).where(ROLES.c.id.in_(wanted)))
                found = {row.id: bool(row.active) for row in rows}
        states: dict[str, OwnerState] = {}
        for owner, rid in ids.items():
            if rid is None or rid not in found:
                states[owner] = "missing"
            else:
                states[owner] = "active" if found[rid] else "inactive"
        return states


@dataclass(frozen=True)
class ClaimRequest:
    schedule: ScheduleRow
    slot: datetime
    next_run: datetime | None
    end_note: str | None
    missed: Sequence[datetime] = ()


RUNS = RunRow.__table__
SCHEDULES = ScheduleRow.__table__

_CLAIM_SET = """next_run = v.new_next, last_run = v.slot, run_count = s.run_count + 1,
    updated = :now, state = CASE WHEN v.ended THEN 'done' ELSE s.state END,
    note = CASE WHEN v.ended THEN v.note ELSE s.note END"""
CLAIM_PG = text(f"""UPDATE schedule AS s SET {_CLAIM_SET}
FROM unnest(CAST(:ids AS varchar[]), CAST(:olds AS timestamptz[]),
            CAST(:news AS timestamptz[]), CAST(:slots AS timestamptz[]),
            CAST(:ended AS boolean[]), CAST(:notes AS text[]))
     AS v(id, old_next, new_next, slot, ended, note)
WHERE s.id = v.id AND s.next_run = v.old_next AND s.state = 'active'
RETURNING s.id""").bindparams(bindparam("now", type_=UTCDateTime))
CLAIM_SQLITE = text(f"""UPDATE schedule AS s SET {_CLAIM_SET}
FROM (SELECT value ->> 0 AS id, value ->> 1 AS old_next, value ->> 2 AS new_next,
             value ->> 3 AS slot, value ->> 4 AS ended, value ->> 5 AS note
      FROM json_each(:batch)) AS v  -- SQLite: RETURNING names the target's columns bare
WHERE s.id = v.id AND s.next_run = v.old_next AND s.state = 'active'
RETURNING id""").bindparams(bindparam("now", type_=UTCDateTime))


class BatchStore(Store):
    async def active_schedule_ids(self, schedule_ids: Sequence[str]) -> set[str]:
        if not schedule_ids:
            return set()
        query = select(RUNS.c.schedule_id).where(
            RUNS.c.schedule_id.in_(schedule_ids),
            RUNS.c.status.in_((*ACTIVE_RUN_STATES, "queued"))).distinct()
        async with self.engine.connect() as conn:
            return {row[0] for row in await conn.execute(query)}

    async def claim_many(self, requests: Sequence[ClaimRequest], now: datetime,
                         timer_id: str | None) -> list[Claim]:
        """Claim every request's slot in one transaction; those another timer moved on
        are left out. Falls back to one claim each if the batch hits the unique key."""
        if not requests:
            return []
        try:
            return await self._claim_batch(requests, now, timer_id)
        except IntegrityError:
            claims = []
            for r in requests:
                claim = await self.claim(r.schedule, r.slot, now, r.next_run, r.end_note,
                                         missed=r.missed, timer_id=timer_id)
                if claim is not None:
                    claims.append(claim)
            return claims

    async def _claim_batch(self, requests: Sequence[ClaimRequest], now: datetime,
                           timer_id: str | None) -> list[Claim]:
        # one conditional UPDATE for the whole batch, its rows passed as arrays (PostgreSQL)
        # or JSON (SQLite) so that the statement text is constant and prepared once: a row
        # moves on only if its next_run is still the one we read; RETURNING says which
        # rows are ours
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                result = await conn.execute(CLAIM_PG, {
                    "now": now, "ids": [r.schedule.id for r in requests],
                    "olds": [r.schedule.next_run for r in requests],
                    "news": [r.next_run for r in requests],
                    "slots": [r.slot for r in requests],
                    "ended": [r.next_run is None for r in requests],
                    "notes": [r.end_note for r in requests]})
            else:
                dialect = self.engine.dialect
                stamp = SCHEDULES.c.next_run.type.dialect_impl(dialect).bind_processor(dialect)
                assert stamp is not None
                batch = json.dumps([[r.schedule.id, stamp(r.schedule.next_run),
                                     stamp(r.next_run), stamp(r.slot), r.next_run is None,
                                     r.end_note] for r in requests])
                result = await conn.execute(CLAIM_SQLITE, {"now": now, "batch": batch})
            mine = {row[0] for row in result}
            won = [r for r in requests if r.schedule.id in mine]
            if not won:
                return []
            rows: list[dict[str, Any]] = []
            for r in won:
                for missed_slot in r.missed:
                    rows.append(self._run_values(r.schedule, missed_slot, "missed", now,
                                                 timer_id,
                                                 reason="timer was not running at this time"))
                rows.append(self._run_values(r.schedule, r.slot, "unknown", now, timer_id))
            await conn.execute(insert(RUNS), rows)  # one executemany, no RETURNING
        # the run is known by its unique key (schedule, slot, attempt 1); id stays unset
        return [Claim(schedule=r.schedule,
                      run=RunRow(**self._run_values(r.schedule, r.slot, "unknown", now,
                                                    timer_id)))
                for r in won]

    @staticmethod
    def _run_values(schedule: ScheduleRow, slot: datetime, status: str, now: datetime,
                    timer_id: str | None, reason: str | None = None) -> dict[str, Any]:
        return dict(schedule_id=schedule.id, owner=schedule.owner, slot=slot, attempt=1,
                    trigger="timer", status=status,
                    fired_at=now if status == "unknown" else None, fid=None, reason=reason,
                    timer_id=timer_id,
                    finished_at=now if status in ("missed", "skipped", "failed") else None)

    async def record_launches(self, results: Sequence[tuple[RunRow, str, datetime,
                                                            str | None, str | None]]) -> None:
        """Many ``record_launch`` calls in one transaction (two executemany UPDATEs)."""
        if not results:
            return
        run_rows, schedule_rows = [], []
        for run, status, at, fid, reason in results:
            done = status not in ACTIVE_RUN_STATES
            run_rows.append({"b_schedule": run.schedule_id, "b_slot": run.slot,
                             "b_attempt": run.attempt, "b_status": status, "b_fid": fid,
                             "b_reason": reason, "b_at": at,
                             "b_finished": at if done else None})
            schedule_rows.append({"b_schedule": run.schedule_id, "b_fid": fid,
                                  "b_status": status, "b_at": at})
        async with self.engine.begin() as conn:
            await conn.execute(
                update(RUNS).where(RUNS.c.schedule_id == bindparam("b_schedule"),
                                   RUNS.c.slot == bindparam("b_slot"),
                                   RUNS.c.attempt == bindparam("b_attempt")).values(
                    status=bindparam("b_status"), fid=bindparam("b_fid"),
                    reason=bindparam("b_reason"), fired_at=bindparam("b_at"),
                    finished_at=bindparam("b_finished")), run_rows)
            await conn.execute(
                update(SCHEDULES).where(SCHEDULES.c.id == bindparam("b_schedule")).values(
                    last_fid=bindparam("b_fid"), last_status=bindparam("b_status"),
                    updated=bindparam("b_at")), schedule_rows)
        for run, status, at, fid, reason in results:
            run.status, run.fid, run.reason, run.fired_at = status, fid, reason, at

    async def finish_runs(self, results: Sequence[tuple[RunRow, str, datetime,
                                                        str | None]]) -> None:
        """Many ``finish_run`` calls in one transaction."""
        if not results:
            return
        run_rows, schedule_rows = [], []
        for run, status, at, reason in results:
            done = status not in ACTIVE_RUN_STATES
            run_rows.append({"b_id": run.id, "b_status": status,
                             "b_reason": reason if reason is not None else run.reason,
                             "b_finished": at if done else run.finished_at})
            schedule_rows.append({"b_schedule": run.schedule_id, "b_fid": run.fid,
                                  "b_status": status})
        async with self.engine.begin() as conn:
            await conn.execute(
                update(RUNS).where(RUNS.c.id == bindparam("b_id")).values(
                    status=bindparam("b_status"), reason=bindparam("b_reason"),
                    finished_at=bindparam("b_finished")), run_rows)
            await conn.execute(
                update(SCHEDULES).where(
                    SCHEDULES.c.id == bindparam("b_schedule"),
                    or_(SCHEDULES.c.last_fid == bindparam("b_fid"),
                        SCHEDULES.c.last_fid.is_(None))).values(
                    last_status=bindparam("b_status")), schedule_rows)


def outcome_of(status_code: int, text: str, flow_url: str) -> LaunchOutcome:
    """PanelLauncher's reading of the panel's answer, independent of the HTTP client."""
    if status_code == 404:
        return LaunchOutcome("retry", reason=f"flow {flow_url} is not registered in the panel")
    if status_code in (401, 403):
        return LaunchOutcome("failed", reason="the panel refused the owner's token")
    lines = text.strip().splitlines()
    short = f"panel answered HTTP {status_code}" + (f": {lines[-1][:200]}" if lines else "")
    if status_code >= 500:
        return LaunchOutcome("retry", reason=short)
    if status_code != 200:
        return LaunchOutcome("failed", reason=short)
    try:
        body = json.loads(text)
    except ValueError:
        return LaunchOutcome("failed", reason="panel answered with no JSON")
    if body.get("errors"):
        errors = body["errors"]
        messages = [f"{name}: {'; '.join(map(str, msgs))}" if name != "_global_"
                    else "; ".join(map(str, msgs)) for name, msgs in errors.items() if msgs]
        return LaunchOutcome("rejected", reason="; ".join(messages) or "inputs rejected",
                             errors=errors)
    fid = body.get("result")
    if not isinstance(fid, str) or not fid:
        return LaunchOutcome("failed", reason="panel answered without an execution id")
    return LaunchOutcome("launched", fid=fid)


class AiohttpLauncher:
    HEADER = "KODOSUMI_API_KEY"

    def __init__(self, panel_url: str, secret: str, token_ttl: int = 900,
                 timeout: float = 30.0, connections: int = 32):
        self.base = panel_url.rstrip("/")
        self.secret, self.token_ttl = secret, token_ttl
        self.timeout, self.connections = timeout, connections
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, tuple[float, str]] = {}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on the running loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections),
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    def _headers(self, owner: str) -> dict[str, str]:
        # one token per owner, reused for a third of its lifetime: signing (python-jose)
        # costs more than the request itself in a burst
        now = time.monotonic()
        cached = self._tokens.get(owner)
        if cached is None or cached[0] < now:
            cached = (now + self.token_ttl / 3, mint_token(owner, self.token_ttl, self.secret))
            self._tokens[owner] = cached
        return {self.HEADER: cached[1], "Accept": "application/json"}

    async def launch(self, flow_url: str, owner: str, inputs: dict[str, Any]) -> LaunchOutcome:
        try:
            async with self.session().post(self.base + flow_path(flow_url), json=inputs,
                                           headers=self._headers(owner)) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return LaunchOutcome("retry", reason=f"panel unreachable: {exc.__class__.__name__}")
        return outcome_of(status, text, flow_url)

    async def status(self, fid: str, owner: str) -> str | None:
        try:
            async with self.session().get(f"{self.base}/outputs/status/{fid}",
                                          headers=self._headers(owner)) as response:
                if response.status != 200:
                    return None
                status = (await response.json()).get("status")
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return status if isinstance(status, str) else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class BatchTimer(Timer):
    """``Timer`` with the proposed firing path (see the module docstring)."""

    store: BatchStore
    roles: BatchRoles

    def __init__(self, *args: Any, lead: float = 1.0, batch: int = 500, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lead = timedelta(seconds=lead)
        self.batch = batch
        self._results: list[tuple[RunRow, str, datetime, str | None, str | None]] = []
        self._results_waiting = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def run(self) -> None:
        # pay one-time costs (imports, the HTTP session) at start, not at the first slot
        mint_token("warm-up", 1, "warm-up")
        warm = getattr(self.launcher, "session", None)
        if callable(warm):
            warm()
        self._writer = asyncio.create_task(self._write_results())
        try:
            await super().run()
        finally:
            self._writer.cancel()
            await self._flush_results()

    async def drain(self) -> None:
        await super().drain()
        await self._flush_results()

    async def seconds_to_next(self) -> float:
        earliest = await self.store.earliest_next_run()
        if earliest is None:
            return self.interval
        wake = earliest - self.lead  # claim LEAD before the slot
        return max(0.0, min(self.interval, (wake - self.clock()).total_seconds()))

    async def fire_due(self) -> int:
        handled = 0
        while not self._stopping.is_set():
            now = self.clock()
            batch = await self.store.due(now + self.lead, limit=self.batch)
            if not batch:
                break
            try:
                handled += await self.handle_batch(batch, now)
            except Exception:
                log.exception("a batch of %d schedules could not be handled", len(batch))
                self.stats.failures += 1
                break
            if len(batch) < self.batch:
                break
        handled += await self.fire_manual()
        self._publish()
        return handled

    async def handle_batch(self, batch: Sequence[ScheduleRow], now: datetime) -> int:
        owners = {s.owner for s in batch if not s.system}
        states: dict[str, OwnerState] = {}
        if owners and hasattr(self.roles, "owner_states"):
            states = await self.roles.owner_states(owners)
        elif owners:  # a Roles without the batch query (the unit tests' fake)
            states = {owner: await self.roles.owner_state(owner) for owner in owners}
        busy = await self.store.active_schedule_ids([s.id for s in batch if s.overlap == "skip"])
        requests: list[ClaimRequest] = []
        for schedule in batch:
            try:
                request = await self._prepare(schedule, now, states, busy)
            except Exception:  # one failing schedule is logged and never stalls the batch
                log.exception("schedule %s could not be handled", schedule.id)
                self.stats.failures += 1
                continue
            if request is not None:
                requests.append(request)
        for claim in await self.store.claim_many(requests, now, self.timer_id):
            self._start_launch(claim)
        return len(batch)

    async def _prepare(self, schedule: ScheduleRow, now: datetime,
                       states: dict[str, OwnerState], busy: set[str]) -> "ClaimRequest | None":
        """Plan one schedule of the batch; records the slots it must not launch."""
        assert schedule.next_run is not None
        at = max(now, schedule.next_run)  # planned as of its slot when claimed early
        plan = policy.plan(policy.Due(
            schedule_type=schedule.schedule_type, next_run=schedule.next_run,
            cron_expression=schedule.cron_expression, timezone=schedule.timezone,
            catchup=schedule.catchup, end_at=schedule.end_at, max_runs=schedule.max_runs,
            run_count=schedule.run_count), at)
        missed = [(slot, "missed", MISSED_REASON) for slot in plan.missed]
        state = "active" if schedule.system else states.get(schedule.owner, "missing")
        if state != "active":
            reason = "owner inactive" if state == "inactive" else "owner no longer exists"
            fired = [(plan.fire, "failed", reason)] if plan.fire else []
            await self.store.skip_slots(schedule, [*missed, *fired], now, None,
                                        end_note=f"paused by the timer: {reason}",
                                        pause=True, timer_id=self.timer_id)
            self.stats.failures += 1
            return None
        if plan.fire is None:
            await self.store.skip_slots(schedule, missed, now, plan.next_run,
                                        end_note=plan.end_note, timer_id=self.timer_id)
            return None
        if schedule.id in busy:
            await self.store.skip_slots(
                schedule, [*missed, (plan.fire, "skipped", OVERLAP_REASON)], now,
                plan.next_run, end_note=plan.end_note, timer_id=self.timer_id)
            return None
        return ClaimRequest(schedule, plan.fire, plan.next_run, plan.end_note, plan.missed)

    async def follow(self) -> int:
        """Poll kodosumi for the launched executions, concurrently (bounded by the launch
        semaphore), and record what changed in one transaction. Launches come first:
        while any are in flight, following waits for the next round."""
        if self._launches:
            return 0
        runs = [run for run in await self.store.active_runs() if run.fid is not None]

        async def status_of(run: RunRow) -> str | None:
            async with self._slots:
                assert run.fid is not None
                return await self.launcher.status(run.fid, run.owner)

        statuses = await asyncio.gather(*(status_of(run) for run in runs))
        now = self.clock()
        changes: list[tuple[RunRow, str, datetime, str | None]] = []
        for run, status in zip(runs, statuses, strict=True):
            if status in ("finished", "error"):
                changes.append((run, status, now, None))
            elif status in ("starting", "running", "awaiting") and run.status != "running":
                changes.append((run, "running", now, None))
            elif status is None and run.fired_at and now - run.fired_at > FOLLOW_GIVE_UP:
                changes.append((run, "unknown", now, "kodosumi does not know this execution"))
        await self.store.finish_runs(changes)
        return sum(1 for _, status, _, _ in changes if status in ("finished", "error"))

    async def _until(self, instant: datetime) -> None:
        # sleep on the loop's monotonic clock, then check the wall clock the slot is on
        while (remaining := (instant - self.clock()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(remaining)

    async def _launch(self, claim: Claim) -> None:
        schedule = claim.schedule
        if claim.run.trigger == "timer":
            await self._until(claim.run.slot)
        async with self._slots:
            outcome = LaunchOutcome("retry", reason="not attempted")
            for attempt in range(1, self.launch_attempts + 1):
                try:
                    outcome = await self.launcher.launch(
                        schedule.flow_url, schedule.owner, dict(schedule.inputs or {}))
                except Exception as exc:
                    outcome = LaunchOutcome("retry", reason=f"launch error: {exc!r}"[:300])
                if outcome.kind != "retry" or attempt == self.launch_attempts:
                    break
                log.info("schedule %s slot %s attempt %d: %s; retrying", schedule.id,
                         claim.run.slot, attempt, outcome.reason)
                await asyncio.sleep(self.backoff(attempt))
        status = {"launched": "launched", "rejected": "rejected"}.get(outcome.kind, "failed")
        if status != "launched":
            self.stats.failures += 1
            log.warning("schedule %s slot %s %s: %s", schedule.id, claim.run.slot, status,
                        outcome.reason)
        else:
            log.info("schedule %s slot %s launched %s", schedule.id, claim.run.slot,
                     outcome.fid)
        self._results.append((claim.run, status, self.clock(), outcome.fid, outcome.reason))
        self._results_waiting.set()

    async def _write_results(self) -> None:
        while True:
            await self._results_waiting.wait()
            await asyncio.sleep(0.02)  # gather what arrives meanwhile into one transaction
            try:
                await self._flush_results()
            except Exception:
                log.exception("recording launch results failed; retrying")
                await asyncio.sleep(1.0)

    async def _flush_results(self) -> None:
        while self._results:
            chunk, self._results = self._results[:500], self._results[500:]
            if not self._results:
                self._results_waiting.clear()
            try:
                await self.store.record_launches(chunk)
            except Exception:
                self._results[:0] = chunk  # keep them for the next try
                raise
            self._publish()
