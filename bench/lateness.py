"""Benchmark 1+2 of issue 8: how late do launches arrive, ours next to APScheduler 3.11.

A launch target (``_target.py``, uvicorn, own process) answers like kodosumi's proxy and
records when each launch request arrived. The scheduler under test is started in a child
process on an empty store; then N ``once`` schedules with known slots are bulk-loaded and
the child is woken (SIGUSR1: the wake-up the panel sends after a create):

* ``ours``: ``kodosumi_timer.timer.Timer`` with the real store (SQLite or PostgreSQL), the
  real ``PanelLauncher`` (owner tokens, one aiohttp pool of 32 connections), the real
  ``RoleTable`` owner check on a kodosumi ``admin.db`` and the daemon's default claim-ahead
  of 1 s; its follow loop runs as in production (the target answers ``finished``).
* ``aps``: APScheduler 3.11 ``AsyncIOScheduler`` + ``SQLAlchemyJobStore`` on the same
  database, one ``DateTrigger`` job per schedule POSTing the same request (``_apsjob.py``),
  ``misfire_grace_time=None`` so that no late job is dropped.

Lateness = arrival at the target - slot (same machine, same wall clock). Scenarios:
isolated fires (one slot at a time, random sub-second offsets), a burst of 1,000 and of
10,000 due at the same whole second, and (full run) a burst of 1,000 with two of our timers
on one store. Duplicates and launches before their slot are counted; both must be 0.

    .venv/bin/python bench/lateness.py            # full: 3 runs per cell, both backends
    .venv/bin/python bench/lateness.py --quick    # one line, under 60 s
"""

import argparse
import asyncio
import json
import logging
import math
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    FLOW,
    PG_URL,
    PY,
    SECRET,
    Child,
    load_text,
    machine,
    make_admin_db,
    median,
    pct,
    ratio,
    reset_store,
    role_ids,
    schedule_values,
    start_child,
    start_target,
    sync_url,
    wait_line,
)

OWNERS = 1000


# ---- children -------------------------------------------------------------------------

def _child_logging(workdir: str, name: str) -> None:
    # the daemon logs every launch at INFO to a file; do the same for both schedulers
    handler = logging.FileHandler(Path(workdir) / f"{name}-app.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s - %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    logging.getLogger("httpx").setLevel(logging.WARNING)


# work the daemon runs beside the timer on its store (pruning.py: the Pruner); what
# it yields is added to the child's stats line
Beside = Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]


def _cpu_seconds() -> float:
    """CPU time this process used (user + system): a figure that other jobs on the
    machine move much less than wall time."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def child_ours(db: str, admin_db: str, target: str, workdir: str,
                     beside: Beside | None = None) -> None:
    from kodosumi_timer.bridge import PanelLauncher, RoleTable
    from kodosumi_timer.config import TimerSettings
    from kodosumi_timer.store import open_store
    from kodosumi_timer.timer import LocalWaker, Timer, TimerConfig

    _child_logging(workdir, "ours")
    store = await open_store(db)
    launcher = PanelLauncher(target, secret=SECRET)
    roles = RoleTable(admin_db)
    waker = LocalWaker()
    # claim-ahead as the daemon configures it by default
    claim_ahead = TimerSettings.model_fields["TIMER_CLAIM_AHEAD"].default
    timer = Timer(store, launcher, roles, waker, TimerConfig(claim_ahead=claim_ahead))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, timer.stop)
    loop.add_signal_handler(signal.SIGUSR1, lambda: loop.create_task(waker.wake()))
    extra: dict[str, Any] = {}
    try:
        async with beside(store) if beside else nullcontext(extra) as extra:
            print("ready", flush=True)
            await timer.run()
    finally:
        # the pacer's learnt limits at the end (summed over timers by the parent)
        flows = [limit.value for limit in timer.pacer.flows.values()]
        print("stats " + json.dumps({"fires": timer.stats.fires,
                                     "failures": timer.stats.failures,
                                     "panel_limit": round(timer.pacer.panel.value, 1),
                                     "flow_limit": round(min(flows, default=0), 1),
                                     "cuts": timer.pacer.panel.cuts + sum(
                                         limit.cuts for limit in timer.pacer.flows.values()),
                                     "cpu_s": round(_cpu_seconds(), 2),
                                     "gate": [timer.launching.gate.batches,
                                              timer.launching.gate.judged,
                                              round(timer.launching.gate.seconds, 2)]}
                                    | extra),
              flush=True)
        await launcher.close()
        await roles.close()
        await store.close()


async def child_aps(db: str, target: str, workdir: str) -> None:
    import _apsjob
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    _child_logging(workdir, "aps")
    scheduler = AsyncIOScheduler(jobstores={"default": SQLAlchemyJobStore(url=sync_url(db))},
                                 timezone=UTC)
    scheduler.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, scheduler.wakeup)
    print("ready", flush=True)
    await stop.wait()
    scheduler.shutdown(wait=False)
    print("stats " + json.dumps({"failures": _apsjob.FAILURES,
                                 "left": len(scheduler.get_jobs())}), flush=True)
    if _apsjob._client is not None:
        await _apsjob._client.aclose()


# ---- loading ----------------------------------------------------------------------------

async def load_ours(db: str, items: list[tuple[str, str, datetime]]) -> None:
    from sqlalchemy import insert

    from kodosumi_timer.store import ScheduleRow, open_store

    store = await open_store(db)
    now = datetime.now(UTC)
    rows = [schedule_values(sid, owner, slot, now) for sid, owner, slot in items]
    async with store.engine.begin() as conn:
        for start in range(0, len(rows), 2000):
            await conn.execute(insert(ScheduleRow.__table__), rows[start:start + 2000])
    await store.close()


def load_aps(db: str, items: list[tuple[str, str, datetime]]) -> None:
    """Bulk-insert exactly what ``add_job`` would store (pickled job state per row)."""
    from apscheduler.job import Job
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.util import datetime_to_utc_timestamp

    store = SQLAlchemyJobStore(url=sync_url(db))
    scheduler = BlockingScheduler(timezone=UTC)
    store.start(scheduler, "default")
    rows = []
    for sid, owner, slot in items:
        job = Job(scheduler, id=sid, func="_apsjob:launch", args=(sid, owner, FLOW), kwargs={},
                  trigger=DateTrigger(run_date=slot, timezone=UTC), executor="default",
                  name="launch", misfire_grace_time=None, coalesce=True, max_instances=1,
                  next_run_time=slot)
        rows.append({"id": sid, "next_run_time": datetime_to_utc_timestamp(slot),
                     "job_state": pickle.dumps(job.__getstate__(), store.pickle_protocol)})
    with store.engine.begin() as conn:
        for start in range(0, len(rows), 2000):
            conn.execute(store.jobs_t.insert(), rows[start:start + 2000])
    store.shutdown()


# ---- one measured run -----------------------------------------------------------------

@dataclass
class Outcome:
    scheduler: str
    backend: str
    scenario: str
    n: int
    late_ms: list[float] = field(default_factory=list)
    duplicates: int = 0
    early: int = 0
    missing: int = 0
    unkeyed: int = 0
    runs_by_status: dict[str, int] = field(default_factory=dict)
    child_stats: dict[str, Any] = field(default_factory=dict)
    fires_each: list[int] = field(default_factory=list)  # launches per timer process
    load: str = ""
    note: str = ""
    cap: float = 0.0  # seconds after the last slot the run waited for its launches
    worst: int = -1  # which slot (in time order) was launched latest, 0 = the first

    @property
    def p50(self) -> float:
        return pct(self.late_ms, 50)

    @property
    def p99(self) -> float:
        return pct(self.late_ms, 99)

    @property
    def max(self) -> float:
        return max(self.late_ms) if self.late_ms else float("nan")


def parse_scenario(name: str, isolated: int) -> tuple[int, int]:
    """``isolated``, ``burst10000`` (one timer), ``burst10000x4`` (four timers on one
    store), ``twotimers1000`` (the older name of ``burst1000x2``) → (slots, timers)."""
    if name == "isolated":
        return isolated, 1
    match = re.fullmatch(r"(?:burst(\d+)(?:x(\d+))?|twotimers(\d+))", name)
    if match is None:
        raise SystemExit(f"unknown scenario {name!r}: isolated, burstN or burstNxT")
    if match[3]:
        return int(match[3]), 2
    return int(match[1]), int(match[2] or 1)


def scenario_slots(scenario: str, n: int, t0: float, gap: float) -> list[float]:
    if scenario == "isolated":
        rng = random.Random(n)
        return [t0 + i * gap + rng.uniform(0, gap / 2) for i in range(n)]
    return [t0] * n


async def _run_status_counts(db: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from kodosumi_timer.store import RunRow, open_store

    store = await open_store(db, migrate_schema=False)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            select(RunRow.status, func.count()).group_by(RunRow.status))).all()
    await store.close()
    return {status: count for status, count in rows}


def measure(scheduler: str, backend: str, db: str, admin_db: str, scenario: str, n: int,
            target: str, workdir: Path, timers: int = 1, gap: float = 0.5,
            profile: str | None = None, cap: float | None = None,
            script: Path | None = None, extra_argv: Sequence[str] = (),
            reset: Callable[[str], Any] = reset_store) -> Outcome:
    """One run: start the scheduler(s) on an empty store, load the schedules, wake them
    (as the panel does after a create), wait for the launches; figures at the target.
    ``script`` and ``extra_argv``: the child's own entry (pruning.py); ``reset``: how
    the store is emptied first (pruning.py keeps its history; then the runs are not
    counted by status)."""
    child_argv = [PY, str(script or Path(__file__).resolve()), *extra_argv]
    for attempt in range(3):
        out = _measure(scheduler, backend, db, admin_db, scenario, n, target, workdir,
                       timers, gap, profile, cap, extra_lead=attempt * 3.0,
                       child_argv=child_argv, reset=reset)
        if not out.note:
            return out
        print(f"  retrying: {out.note}", flush=True)
    return out


def _measure(scheduler: str, backend: str, db: str, admin_db: str, scenario: str, n: int,
             target: str, workdir: Path, timers: int, gap: float, profile: str | None,
             cap: float | None, extra_lead: float, child_argv: list[str],
             reset: Callable[[str], Any]) -> Outcome:
    asyncio.run(reset(db))
    httpx.post(f"{target}/_reset")
    owners = role_ids(OWNERS)
    sids = [f"{scenario[:3]}{i:06d}{random.getrandbits(40):010x}" for i in range(n)]
    children: list[Child] = []
    spies: list[subprocess.Popen[bytes]] = []
    out = Outcome(scheduler, backend, scenario, n, load=load_text())
    records: list[Any] = []
    try:
        if scheduler == "aps":
            load_aps(db, [])  # APScheduler's job table exists before its scheduler starts
        for k in range(timers):
            argv = [*child_argv, "--child", scheduler, "--db", db,
                    "--admin-db", admin_db, "--target", target, "--workdir", str(workdir)]
            children.append(start_child(f"{scheduler}{k}", argv, workdir,
                                        env={"BENCH_TARGET": target}))
        for child in children:
            wait_line(child, "ready", timeout=60)
        if profile:
            for child in children:
                out_file = Path(profile) / f"{backend}-{scenario}-{scheduler}-{child.pid}.txt"
                spies.append(subprocess.Popen(
                    [str(Path(PY).parent / "py-spy"), "record", "--pid", str(child.pid),
                     "--rate", "250", "--format", "raw", "--output", str(out_file)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # the first slot leaves time to load and wake; a burst's slot is a whole second
        lead = 1.5 + n / 2000 + extra_lead
        t0 = math.ceil(time.time() + lead) if scenario != "isolated" else time.time() + lead
        slots = scenario_slots(scenario, n, t0, gap)
        items = [(sid, owners[i % OWNERS], datetime.fromtimestamp(slot, UTC))
                 for i, (sid, slot) in enumerate(zip(sids, slots, strict=True))]
        slot_of = dict(zip(sids, slots, strict=True))
        if scheduler != "aps":
            asyncio.run(load_ours(db, items))
        else:
            load_aps(db, items)
        for child in children:
            os.kill(child.pid, signal.SIGUSR1)  # the panel's wake-up after a change
        margin = min(slots) - time.time()
        if margin < 0.3:
            out.note = f"INVALID: loaded and woken only {margin:.2f} s before the first slot"
            return out
        out.cap = cap if cap is not None else max(20.0, n * 0.006)
        deadline = max(slots) + out.cap
        count = 0
        while time.time() < deadline:
            count = httpx.get(f"{target}/_count").json()["count"]
            if count >= n:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # late duplicates would show up here
        records = httpx.get(f"{target}/_results", timeout=60).json()["records"]
    finally:
        for child in children:
            child.stop()
        for spy in spies:
            spy.wait(30)
    if out.note:
        return out
    for child in children:
        try:
            line = wait_line(child, "stats", timeout=1)
            stats = json.loads(line.split(" ", 1)[1])
            out.fires_each.append(stats.get("fires", 0))
            for key, value in stats.items():
                # numbers are summed over the timers, lists are joined
                out.child_stats[key] = out.child_stats.get(
                    key, [] if isinstance(value, list) else 0) + value
        except RuntimeError:
            pass
    seen: set[str] = set()
    for arrived_ns, sid, keyed in records:
        if sid not in slot_of:
            continue
        if sid in seen:
            out.duplicates += 1
            continue
        seen.add(sid)
        late = arrived_ns / 1e6 - slot_of[sid] * 1000
        if late < 0:
            out.early += 1
        out.unkeyed += 0 if keyed else 1
        out.late_ms.append(late)
    out.missing = n - len(seen)
    if scenario == "isolated" and out.late_ms:
        order = sorted(slot_of, key=slot_of.__getitem__)
        lates = {sid: arrived_ns / 1e6 - slot_of[sid] * 1000 for arrived_ns, sid, _ in records
                 if sid in slot_of}
        out.worst = max(range(len(order)), key=lambda i: lates.get(order[i], float("-inf")))
    if scheduler != "aps" and reset is reset_store:
        out.runs_by_status = asyncio.run(_run_status_counts(db))
    return out


def target_capacity(target: str, requests: int = 2000) -> dict[str, float]:
    """Launches/s the target answers to 32 concurrent requests from one client: httpx
    (the client of ``PanelLauncher`` and of the APScheduler job) and aiohttp."""

    async def with_httpx() -> float:
        async with httpx.AsyncClient(base_url=target, limits=httpx.Limits(
                max_connections=32, max_keepalive_connections=32)) as client:
            async def one(i: int) -> None:
                await client.post(FLOW, json={"sid": f"cap{i}"})
            return await timed(one)

    async def with_aiohttp() -> float:
        import aiohttp

        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32)) as session:
            async def one(i: int) -> None:
                async with session.post(target + FLOW, json={"sid": f"cap{i}"}) as r:
                    await r.read()
            return await timed(one)

    async def timed(one: Any) -> float:
        sem = asyncio.Semaphore(32)

        async def bounded(i: int) -> None:
            async with sem:
                await one(i)

        started = time.perf_counter()
        await asyncio.gather(*(bounded(i) for i in range(requests)))
        return requests / (time.perf_counter() - started)

    rates = {"httpx": asyncio.run(with_httpx()), "aiohttp": asyncio.run(with_aiohttp())}
    httpx.post(f"{target}/_reset")
    return rates


# ---- reporting ---------------------------------------------------------------------------

def last(r: dict[str, Any]) -> str:
    """The last launch's lateness, or how many had arrived when the run gave up."""
    if r["missing"]:
        per_run = r["missing"] / max(1, r["runs"])
        return f"> {r['cap']:.0f} s ({r['n'] - per_run:,.0f} of {r['n']:,} launched)"
    return f"{fmt(r['max'])} ms"


def fmt(value: float) -> str:
    if value != value:
        return "n/a"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def summarise(results: list[Outcome]) -> list[dict[str, Any]]:
    """Median over runs of each cell's p50/p99/max; integrity counts are summed."""
    cells: dict[tuple[str, str, str], list[Outcome]] = {}
    for r in results:
        cells.setdefault((r.backend, r.scenario, r.scheduler), []).append(r)
    rows = []
    for (backend, scenario, scheduler), runs in cells.items():
        valid = [r for r in runs if not r.note]
        rows.append({
            "backend": backend, "scenario": scenario, "scheduler": scheduler,
            "runs": len(valid), "n": runs[0].n,
            "p50": median([r.p50 for r in valid]), "p99": median([r.p99 for r in valid]),
            "max": median([r.max for r in valid]),
            "cap": runs[0].cap,
            "duplicates": sum(r.duplicates for r in runs), "early": sum(r.early for r in runs),
            "missing": sum(r.missing for r in runs),
            "invalid": sum(1 for r in runs if r.note),
            "each_max": [round(r.max, 1) for r in valid],
            "each_p99": [round(r.p99, 1) for r in valid],
            "loads": [r.load for r in runs],
        })
    return rows


NAMES = {"ours": "kodosumi-timer", "aps": "APScheduler 3.11"}


def table(rows: list[dict[str, Any]]) -> str:
    """One line per backend, scenario and scheduler; APS/this = how many times later
    APScheduler was than this scheduler (> 1: this one is faster)."""
    by = {(r["backend"], r["scenario"], r["scheduler"]): r for r in rows}
    lines = ["| backend | scenario | scheduler | runs | p50 ms | p99 ms | last launch | "
             "APS/this p99 | APS/this max | dup | early | missing |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        aps = by.get((r["backend"], r["scenario"], "aps"))
        lines.append(
            f"| {r['backend']} | {r['scenario']} | {NAMES.get(r['scheduler'], r['scheduler'])} "
            f"| {r['runs']} | {fmt(r['p50'])} | {fmt(r['p99'])} | {last(r)} | "
            f"{ratio(aps['p99'], r['p99']) if aps else '-'} | "
            f"{ratio(aps['max'], r['max']) if aps else '-'} | {r['duplicates']} | "
            f"{r['early']} | {r['missing']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one line, under 60 s")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--scenarios", default="isolated,burst1000,burst10000,twotimers1000")
    parser.add_argument("--schedulers", default="ours,aps")
    parser.add_argument("--isolated", type=int, default=40, help="isolated fires per run")
    parser.add_argument("--cap", type=float,
                        help="seconds after the slot a burst run waits for its launches")
    parser.add_argument("--json", help="write every run's figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--profile", metavar="DIR",
                        help="record each scheduler child with py-spy (raw stacks) into DIR")
    parser.add_argument("--child", choices=["ours", "aps"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--admin-db", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "ours":
        asyncio.run(child_ours(args.db, args.admin_db, args.target, args.workdir))
        return
    if args.child == "aps":
        asyncio.run(child_aps(args.db, args.target, args.workdir))
        return

    cap = args.cap
    if args.quick:
        args.runs, args.isolated = 1, 4
        args.scenarios = "isolated,burst1000"
        if args.backends == parser.get_default("backends"):
            args.backends = "sqlite"
        cap = cap if cap is not None else 5.0
    workdir = Path(tempfile.mkdtemp(prefix="kt-bench-lateness-"))
    target, target_url = start_target(workdir)
    results: list[Outcome] = []
    try:
        admin_db = asyncio.run(make_admin_db(workdir / "admin.db", role_ids(OWNERS)))
        capacity = {} if args.quick else target_capacity(target_url)
        if not args.quick:
            print(f"# {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {load_text()}")
            print(f"# launch target alone, 32 concurrent requests: {capacity['httpx']:,.0f}/s "
                  f"from httpx, {capacity['aiohttp']:,.0f}/s from aiohttp")
        dbs = {"sqlite": f"sqlite+aiosqlite:///{workdir / 'schedule.db'}",
               "postgresql": PG_URL}
        for backend in args.backends.split(","):
            for scenario in args.scenarios.split(","):
                n, timers = parse_scenario(scenario, args.isolated)
                for rep in range(args.runs):
                    for scheduler in args.schedulers.split(","):
                        if timers > 1 and scheduler == "aps":
                            continue  # APScheduler 3 does not support sharing a job store
                        out = measure(scheduler, backend, dbs[backend],
                                      admin_db, scenario, n, target_url, workdir,
                                      timers=timers, profile=args.profile,
                                      cap=None if scenario == "isolated" else cap)
                        results.append(out)
                        if not args.quick:
                            print(f"{backend:10} {scenario:14} {scheduler:4} run {rep + 1}: "
                                  f"p50 {fmt(out.p50)} p99 {fmt(out.p99)} max {fmt(out.max)} ms"
                                  f"; dup {out.duplicates} early {out.early} "
                                  f"missing {out.missing}; runs {out.runs_by_status} "
                                  f"{out.child_stats}"
                                  + (f" per timer {out.fires_each}" if timers > 1 else "")
                                  + (f" worst: slot #{out.worst}" if out.worst >= 0 else "")
                                  + f" {out.note} [{out.load}]", flush=True)
    finally:
        target.stop()
    rows = summarise(results)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine(), "capacity": capacity, "rows": rows,
             "runs": [r.__dict__ | {"late_ms": None, "p50": r.p50, "p99": r.p99,
                                    "max": r.max} for r in results]}, indent=1))
    if args.keep:
        print(f"# kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.quick:
        by = {(r["backend"], r["scenario"], r["scheduler"]): r for r in rows}
        parts = []
        for backend in args.backends.split(","):
            for scheduler in args.schedulers.split(","):
                iso, burst = by[(backend, "isolated", scheduler)], by[(backend, "burst1000",
                                                                       scheduler)]
                parts.append(f"{backend} {scheduler}: isolated p99 {fmt(iso['p99'])} ms, "
                             f"burst 1,000 last {last(burst)}")
        dup = sum(r["duplicates"] for r in rows)
        early = sum(r["early"] for r in rows)
        print(f"lateness {'; '.join(parts)}; duplicates {dup}, early {early}; {load_text()}")
        return
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
