"""Planning a due batch: what each due schedule must do now, and the claims to make.

One schedule's bad data never holds up another: a row that cannot be run is paused
with a note and a ``failed`` run saying why; a schedule whose plan fails is paused the
same way; the rest of the batch goes on.
"""

import logging
from collections.abc import Sequence
from datetime import datetime

from kodosumi_timer import policy, reasons
from kodosumi_timer.bridge import OwnerState, Roles
from kodosumi_timer.runs import RunStatus
from kodosumi_timer.store import Store
from kodosumi_timer.store.due import BadRow, DueSchedule
from kodosumi_timer.store.repository import ClaimRequest

log = logging.getLogger("kodosumi_timer.timer")


class Planner:
    def __init__(self, store: Store, roles: Roles, timer_id: str):
        self.store = store
        self.roles = roles
        self.timer_id = timer_id
        self.failures = 0

    async def plan(self, batch: Sequence[DueSchedule | BadRow], now: datetime
                   ) -> list[ClaimRequest]:
        """Record what must not launch; return the claims for the rest. Owners and
        overlaps of the whole batch are read with one query each."""
        good = [s for s in batch if isinstance(s, DueSchedule)]
        for bad in (s for s in batch if isinstance(s, BadRow)):
            await self._quarantine(bad, now)
        owners = {s.owner for s in good if not s.system}
        states = await self.roles.owner_states(owners) if owners else {}
        busy = await self.store.active_schedule_ids(
            [s.id for s in good if s.overlap in ("skip", "buffer_one")])
        waiting = await self.store.buffered_schedule_ids(
            [s.id for s in good if s.overlap == "buffer_one" and s.id in busy])
        requests: list[ClaimRequest] = []
        for schedule in good:
            try:
                request = await self._prepare(schedule, now, states, busy, waiting)
            except Exception as exc:  # logged and paused: never stalls the batch
                log.exception("schedule %s could not be handled; pausing it", schedule.id)
                await self._quarantine(BadRow(schedule.id, schedule.owner, schedule.next_run,
                                              reasons.CANNOT_PLAN.format(why=repr(exc))), now)
                continue
            if request is not None:
                requests.append(request)
        return requests

    async def _quarantine(self, bad: BadRow, now: datetime) -> None:
        self.failures += 1
        try:
            if await self.store.quarantine(bad, now, self.timer_id):
                log.error("schedule %s paused: %s", bad.id, bad.why)
        except Exception:
            log.exception("schedule %s could not be paused (%s)", bad.id, bad.why)

    async def _prepare(self, schedule: DueSchedule, now: datetime,
                       states: dict[str, OwnerState], busy: set[str],
                       waiting: set[str]) -> ClaimRequest | None:
        """The claim to make for one due schedule, or None after recording why not."""
        assert schedule.next_run is not None
        due = policy.Due(
            schedule_type=schedule.schedule_type, next_run=schedule.next_run,
            cron_expression=schedule.cron_expression, timezone=schedule.timezone,
            catchup=schedule.catchup, catchup_window=schedule.catchup_window,
            end_at=schedule.end_at, max_runs=schedule.max_runs, run_count=schedule.run_count,
            every=schedule.every_seconds, anchor=schedule.anchor,
            exclude_dates=schedule.exclude_dates, dst=schedule.rule.dst,
        )
        # a slot claimed ahead is planned as of its own instant
        plan = policy.plan(due, max(now, schedule.next_run))
        missed = [(slot, "missed", reasons.MISSED) for slot in plan.missed]
        if plan.missed_more:  # the gap after the first recorded ones is said once
            cut = policy.MAX_MISSED_RECORDED - 1
            missed[cut] = (missed[cut][0], "missed", reasons.MISSED_UNCOUNTED)
        if not schedule.system:
            reason = reasons.owner_reason(states.get(schedule.owner, "missing"))
            if reason is not None:
                fired = [(plan.fire, "failed", reason)] if plan.fire else []
                await self.store.skip_slots(
                    schedule, [*missed, *fired], now, None,
                    end_note=reasons.PAUSED_BY_TIMER.format(why=reason), pause=True,
                    timer_id=self.timer_id)
                self.failures += 1
                log.warning("schedule %s not fired: %s", schedule.id, reason)
                return None
        if plan.fire is None:
            await self.store.skip_slots(schedule, missed, now, plan.next_run,
                                        end_note=plan.end_note, timer_id=self.timer_id)
            return None
        if schedule.overlap in ("skip", "buffer_one") and schedule.id in busy:
            # buffer_one: the slot waits (unheld) until the running execution ends, and
            # is then taken like a "run now" request; a second one is skipped
            if schedule.overlap == "buffer_one" and schedule.id not in waiting:
                record = (plan.fire, RunStatus.BUFFERED.value, reasons.BUFFERED)
            else:
                record = (plan.fire, RunStatus.SKIPPED.value, reasons.OVERLAP
                          if schedule.overlap == "skip" else reasons.BUFFER_FULL)
            await self.store.skip_slots(schedule, [*missed, record], now, plan.next_run,
                                        end_note=plan.end_note, timer_id=self.timer_id)
            log.info("schedule %s slot %s %s: previous execution still running",
                     schedule.id, plan.fire, record[1])
            return None
        return ClaimRequest(schedule, plan.fire, plan.next_run, plan.end_note,
                            [(slot, why) for slot, _, why in missed])
