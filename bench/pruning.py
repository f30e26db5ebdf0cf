"""Issue 12 point 3: does pruning a big run history move the timer's isolated-fire lateness?

The store is filled with N ended runs (default 10,000,000) of 50 schedules that fired
every 1, 2, 5, 15 or 60 minutes (200,000 runs each, reaching back months to decades),
so that all but the newest ``KODO_TIMER_KEEP_RUNS`` of each can go; the runs of all
schedules lie interleaved, one tick at a time, as in a table that grew over years. Then
the isolated-fire lateness of our real timer is measured on that store exactly as
``lateness.py`` does it (a child process, the launch target, 40 ``once`` slots half a
second apart), in turns, in three modes: ``off`` (no pruning); ``plain`` (the ``Pruner``
deleting those rows beside the timer, in the same process and on the same store, as
``TimerParts`` runs it, but without waiting for gaps in the launches: ``max_wait=0``, as
it was first committed); ``gaps`` (the ``Pruner`` as it is). Batch and pause are the
Pruner's defaults; ``every`` is short so that it never idles. The child counts the rows
deleted, the time spent waiting for gaps and how long each batch took.

    .venv/bin/python bench/pruning.py            # 10,000,000 rows; 3 runs per mode; both stores
    .venv/bin/python bench/pruning.py --quick    # 200,000 rows; one run off, one with gaps; < 3 min
    .venv/bin/python bench/pruning.py --rows 1000000 --backends sqlite

PostgreSQL: ``KODO_BENCH_PG`` (see ``_common.py``); the run tables there are emptied.
"""

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PG_URL,
    load_text,
    machine,
    make_admin_db,
    median,
    pct,
    ratio,
    role_ids,
    schedule_values,
    start_target,
)
from lateness import OWNERS, Outcome, child_ours, fmt, measure  # noqa: E402

SCHEDULES = 50
STEP_MINUTES = (1, 2, 5, 15, 60)  # schedule k fires every STEP_MINUTES[k % 5] minutes
THIS = Path(__file__).resolve()


# ---- the history ---------------------------------------------------------------------

def history_schedules() -> list[tuple[str, str, int]]:
    """(schedule id, owner, seconds between its slots) of the schedules with history."""
    owners = role_ids(OWNERS)
    return [(f"hist{k:04d}{'0' * 24}", owners[k], STEP_MINUTES[k % len(STEP_MINUTES)] * 60)
            for k in range(SCHEDULES)]


async def _schedules(db: str, now: datetime) -> str:
    """Migrate the store, empty its run tables, add the schedules with history (cron,
    paused: the timer has nothing of theirs to fire); returns the dialect."""
    from sqlalchemy import insert, text

    from kodosumi_timer.store import ScheduleRow, open_store

    store = await open_store(db)
    async with store.engine.begin() as conn:
        for table in ("notification", "schedule_change", "schedule_run", "schedule"):
            await conn.execute(text(f"DELETE FROM {table}" if store.dialect == "sqlite"
                                    else f"TRUNCATE {table}"))
        await conn.execute(insert(ScheduleRow), [
            schedule_values(sid, owner, now, now, schedule_type="cron", run_at=None,
                            cron_expression=f"*/{step // 60} * * * *" if step < 3600
                            else "0 * * * *", state="paused", next_run=None)
            for sid, owner, step in history_schedules()])
    dialect = store.dialect
    await store.close()
    return dialect


# tick i (0 the oldest) holds one run of every schedule, schedule k's at `t` seconds
# after the epoch, so that a schedule's runs lie scattered among the others' as in a
# table that grew over time; mostly finished, every 17th an error, every 31st skipped
RUN_COLUMNS = ("schedule_id, owner, slot, attempt, trigger, status, fired_at, fid, "
               "reason, finished_at, timer_id")
STATUS = ("CASE WHEN i % 31 = 0 THEN 'skipped' WHEN i % 17 = 0 THEN 'error' "
          "ELSE 'finished' END")
REASON = ("CASE WHEN i % 31 = 0 THEN 'the previous run was still running' "
          "WHEN i % 17 = 0 THEN 'RuntimeError: the agent gave up' END")
TICKS_PER_STATEMENT = 4000  # 200,000 rows with 50 schedules

SQLITE_RUNS = f"""
INSERT INTO schedule_run ({RUN_COLUMNS})
WITH RECURSIVE tick(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM tick WHERE i < :last)
SELECT sid, owner, datetime(t, 'unixepoch') || '.000000', 1, 'timer', {STATUS},
       CASE WHEN i % 31 <> 0 THEN datetime(t, 'unixepoch') || '.250000' END,
       CASE WHEN i % 31 <> 0 THEN printf('%08x%016x', k, i) END,
       {REASON}, datetime(t + 42, 'unixepoch') || '.000000', 'bench-history'
FROM (SELECT i, k, sid, owner, newest - (:n - 1 - i) * step AS t
      FROM tick CROSS JOIN bench_history ORDER BY i, k)
"""

PG_RUNS = f"""
INSERT INTO schedule_run ({RUN_COLUMNS})
SELECT sid, owner, to_timestamp(t), 1, 'timer', {STATUS},
       CASE WHEN i % 31 <> 0 THEN to_timestamp(t + 0.25) END,
       CASE WHEN i % 31 <> 0 THEN lpad(to_hex(k), 8, '0') || lpad(to_hex(i), 16, '0') END,
       {REASON}, to_timestamp(t + 42), 'bench-history'
FROM (SELECT i, k, sid, owner, newest - (CAST(:n AS integer) - 1 - i) * step AS t
      FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS i
      CROSS JOIN bench_history ORDER BY i, k) AS g
"""

HISTORY_TABLE = ("CREATE TEMPORARY TABLE bench_history (k integer, sid text, owner text, "
                 "step bigint, newest bigint)")


def fill(backend: str, db: str, rows: int) -> None:
    """The history, ``rows // SCHEDULES`` runs per schedule, generated by the database
    (a recursive CTE in SQLite, generate_series in PostgreSQL) tick by tick in
    statements of TICKS_PER_STATEMENT; each schedule's newest slot a step ago."""
    now = datetime.now(UTC)
    asyncio.run(_schedules(db, now))
    n = rows // SCHEDULES
    history = [{"k": k, "sid": sid, "owner": owner, "step": step,
                "newest": int(now.timestamp()) // step * step}
               for k, (sid, owner, step) in enumerate(history_schedules())]
    chunks = [{"n": n, "first": first, "last": min(n, first + TICKS_PER_STATEMENT) - 1}
              for first in range(0, n, TICKS_PER_STATEMENT)]
    started = time.perf_counter()
    shown = 0.0

    def progress(chunk: dict[str, int]) -> None:
        nonlocal shown
        done = (chunk["last"] + 1) * SCHEDULES
        elapsed = time.perf_counter() - started
        if done == n * SCHEDULES or elapsed - shown > 10:
            shown = elapsed
            print(f"  {backend}: {done:,} of {n * SCHEDULES:,} run rows, {elapsed:.0f} s "
                  f"({done / elapsed:,.0f}/s)", flush=True)

    if backend == "sqlite":
        con = sqlite3.connect(db.split(":///", 1)[1], isolation_level=None)
        # loading only: no rollback journal, no fsync, a big page cache
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144",
                       "temp_store=MEMORY"):
            con.execute(f"PRAGMA {pragma}")
        con.execute(HISTORY_TABLE)
        con.executemany("INSERT INTO bench_history VALUES (:k, :sid, :owner, :step, :newest)",
                        history)
        for chunk in chunks:
            con.execute("BEGIN")
            con.execute(SQLITE_RUNS, chunk)
            con.execute("COMMIT")
            progress(chunk)
        con.close()
    else:
        asyncio.run(_fill_pg(db, history, chunks, progress))


async def _fill_pg(db: str, history: list[dict[str, Any]], chunks: list[dict[str, int]],
                   progress: Any) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(db)
    async with engine.connect() as conn:
        await conn.execute(text(HISTORY_TABLE))
        await conn.execute(text("INSERT INTO bench_history VALUES (:k, :sid, :owner, "
                                "CAST(:step AS bigint), CAST(:newest AS bigint))"), history)
        await conn.execute(text("SET synchronous_commit = off"))  # loading only
        await conn.commit()
        for chunk in chunks:
            await conn.execute(text(PG_RUNS), chunk)
            await conn.commit()
            progress(chunk)
    # as a long-lived table is: vacuumed (visibility map, hint bits) and analysed
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        started = time.perf_counter()
        await conn.execute(text("VACUUM ANALYZE schedule_run"))
        await conn.execute(text("VACUUM ANALYZE schedule"))
        print(f"  postgresql: VACUUM ANALYZE {time.perf_counter() - started:.0f} s", flush=True)
    await engine.dispose()


async def drop_measured(db: str) -> None:
    """Before each run: the schedules (and runs) an earlier run measured go, lest the
    next timer fire what its predecessor left; the history stays."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(db)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM schedule_run WHERE schedule_id IN "
                                "(SELECT id FROM schedule WHERE id NOT LIKE 'hist%')"))
        await conn.execute(text("DELETE FROM schedule WHERE id NOT LIKE 'hist%'"))
    await engine.dispose()


async def _count_runs(db: str) -> int:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(db)
    async with engine.connect() as conn:
        count = int((await conn.execute(text("SELECT count(*) FROM schedule_run"))).scalar_one())
    await engine.dispose()
    return count


# ---- the child: lateness.py's timer, with the Pruner beside it ------------------------

class Counted:
    """The store as the Pruner sees it, counting the rows each batch deleted and timing
    it (a batch's time includes waiting for a lock or a connection)."""

    def __init__(self, store: Any):
        self.store = store
        self.pruned = 0
        self.batch_ms: list[float] = []

    async def schedules_to_prune(self, older_than: datetime, keep: int) -> list[str]:
        ids: list[str] = await self.store.schedules_to_prune(older_than, keep)
        return ids

    async def next_launch(self, since: datetime) -> datetime | None:
        coming: datetime | None = await self.store.next_launch(since)
        return coming

    async def prune_runs(self, schedule_id: str, older_than: datetime, keep: int,
                         batch: int = 500) -> int:
        started = time.perf_counter()
        gone: int = await self.store.prune_runs(schedule_id, older_than, keep, batch)
        self.batch_ms.append((time.perf_counter() - started) * 1000)
        self.pruned += gone
        return gone


@asynccontextmanager
async def pruner_beside(store: Any, every: float, batch: int | None, pause: float | None,
                        max_wait: float | None) -> AsyncIterator[dict[str, Any]]:
    from kodosumi_timer.config import TimerSettings
    from kodosumi_timer.history import Pruner

    fields = TimerSettings.model_fields
    counted = Counted(store)
    pruner = Pruner(counted, fields["TIMER_KEEP_RUNS"].default,
                    fields["TIMER_KEEP_DAYS"].default, every=every)
    pruner.batch = pruner.batch if batch is None else batch  # default: the Pruner's own
    pruner.pause = pruner.pause if pause is None else pause
    pruner.max_wait = pruner.max_wait if max_wait is None else max_wait
    task = asyncio.get_running_loop().create_task(pruner.run())
    started = time.perf_counter()
    stats: dict[str, Any] = {}
    try:
        yield stats
    finally:
        pruner.stop()
        await task
        stats.update(pruned=counted.pruned, waited_seconds=round(pruner.waited, 2),
                     prune_seconds=round(time.perf_counter() - started, 2),
                     batches=len(counted.batch_ms),
                     batch_ms_p50=round(pct(counted.batch_ms, 50), 2),
                     batch_ms_p99=round(pct(counted.batch_ms, 99), 2),
                     batch_ms_max=round(max(counted.batch_ms, default=0.0), 2))


# ---- measuring and reporting -----------------------------------------------------------

# off: no pruning; plain: the Pruner without waiting for gaps in the launches (as it was
# first committed: max_wait=0); gaps: the Pruner as it is (waits for a gap before a batch)
MODES = {"off": "off", "plain": "deleting", "gaps": "deleting, waits for gaps"}


def measure_mode(backend: str, db: str, admin_db: str, target: str, workdir: Path,
                 mode: str, args: argparse.Namespace) -> Outcome:
    extra: list[str] = []
    if mode != "off":
        extra = ["--prune-every", str(args.every)]
        if args.batch is not None:
            extra += ["--prune-batch", str(args.batch)]
        if args.pause is not None:
            extra += ["--prune-pause", str(args.pause)]
        if mode == "plain":
            extra += ["--prune-max-wait", "0"]
    return measure("ours", backend, db, admin_db, "isolated", args.fires, target, workdir,
                   gap=args.gap, script=THIS, extra_argv=extra, reset=drop_measured)


def row(backend: str, rows: int, mode: str, outs: list[Outcome]) -> dict[str, Any]:
    valid = [o for o in outs if not o.note]
    pruned = sum(o.child_stats.get("pruned", 0) for o in valid)
    seconds = sum(o.child_stats.get("prune_seconds", 0.0) for o in valid)
    return {
        "backend": backend, "rows": rows, "mode": mode, "runs": len(valid),
        "p50": median([o.p50 for o in valid]), "p95": median([pct(o.late_ms, 95) for o in valid]),
        "p99": median([o.p99 for o in valid]), "max": median([o.max for o in valid]),
        "each_p99": [round(o.p99, 1) for o in valid],
        "pruned": pruned, "rate": pruned / seconds if seconds else float("nan"),
        "waited": sum(o.child_stats.get("waited_seconds", 0.0) for o in valid),
        "seconds": seconds,
        "batch_p50": median([o.child_stats["batch_ms_p50"] for o in valid
                             if o.child_stats.get("batches")]),
        "batch_max": max((o.child_stats.get("batch_ms_max", 0.0) for o in valid), default=0.0),
        "bad": sum(o.duplicates + o.early + o.missing for o in outs),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| store | run rows | pruner | runs | p50 ms | p95 ms | p99 ms | max ms | "
             "p99 of each run | p99 / off | rows pruned | rows/s | waited for gaps | "
             "batch ms p50 / max | dup+early+missing |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    by = {(r["backend"], r["mode"]): r for r in rows}
    for r in rows:
        off = by.get((r["backend"], "off"))
        on = r["mode"] != "off"
        lines.append(
            f"| {r['backend']} | {r['rows']:,} | {MODES[r['mode']]} | "
            f"{r['runs']} | {fmt(r['p50'])} | {fmt(r['p95'])} | {fmt(r['p99'])} | "
            f"{fmt(r['max'])} | {', '.join(fmt(v) for v in r['each_p99'])} | "
            f"{ratio(r['p99'], off['p99']) if on and off else '-'} | "
            f"{r['pruned']:,} | {fmt(r['rate']) if on else '-'} | "
            + (f"{r['waited'] / r['seconds']:.0%} | {fmt(r['batch_p50'])} / "
               f"{fmt(r['batch_max'])}" if on and r["seconds"] else "- | -")
            + f" | {r['bad']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="200,000 rows, one run off and one with gaps, both stores")
    parser.add_argument("--rows", type=int, default=10_000_000, help="run rows to fill in")
    parser.add_argument("--runs", type=int, default=3, help="runs in each mode")
    parser.add_argument("--modes", default=",".join(MODES),  # --quick: off,gaps
                        help="off (no pruning), plain (the Pruner not waiting for gaps), "
                        "gaps (the Pruner as it is)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--fires", type=int, default=40, help="isolated fires per run")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between two slots")
    parser.add_argument("--every", type=float, default=1.0,
                        help="the Pruner's pause between two passes (s)")
    parser.add_argument("--batch", type=int, help="the Pruner's batch (default: its own)")
    parser.add_argument("--pause", type=float,
                        help="the Pruner's pause between batches (default: its own)")
    parser.add_argument("--data", type=Path,
                        help="keep the SQLite store here (default: a temporary directory)")
    parser.add_argument("--no-fill", action="store_true",
                        help="measure on the history the stores already hold")
    parser.add_argument("--fill-only", action="store_true",
                        help="fill the stores (--data for SQLite) and stop")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--child", choices=["ours"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--admin-db", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--prune-every", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--prune-batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prune-pause", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--prune-max-wait", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        beside = None if args.prune_every is None else partial(
            pruner_beside, every=args.prune_every, batch=args.prune_batch,
            pause=args.prune_pause, max_wait=args.prune_max_wait)
        asyncio.run(child_ours(args.db, args.admin_db, args.target, args.workdir, beside))
        return
    if args.quick:
        args.rows, args.runs = 200_000, 1
        if args.modes == parser.get_default("modes"):
            args.modes = "off,gaps"

    workdir = Path(tempfile.mkdtemp(prefix="kt-bench-pruning-"))
    data = args.data or workdir
    data.mkdir(parents=True, exist_ok=True)
    dbs = {"sqlite": f"sqlite+aiosqlite:///{data / 'schedule.db'}", "postgresql": PG_URL}
    print(f"# {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {load_text()}", flush=True)
    if args.fill_only:
        for backend in args.backends.split(","):
            started = time.perf_counter()
            fill(backend, dbs[backend], args.rows)
            print(f"# {backend}: filled in {time.perf_counter() - started:.0f} s", flush=True)
        shutil.rmtree(workdir, ignore_errors=True)
        return
    target, target_url = start_target(workdir)
    rows: list[dict[str, Any]] = []
    try:
        admin_db = asyncio.run(make_admin_db(workdir / "admin.db", role_ids(OWNERS)))
        for backend in args.backends.split(","):
            db = dbs[backend]
            if not args.no_fill:
                started = time.perf_counter()
                fill(backend, db, args.rows)
                print(f"# {backend}: filled in {time.perf_counter() - started:.0f} s",
                      flush=True)
            present = asyncio.run(_count_runs(db))
            print(f"# {backend}: {present:,} run rows; {load_text()}", flush=True)
            modes = args.modes.split(",")
            outs: dict[str, list[Outcome]] = {mode: [] for mode in modes}
            for rep in range(args.runs):
                for mode in modes:  # taking turns: the machine's noise hits every mode
                    out = measure_mode(backend, db, admin_db, target_url, workdir, mode, args)
                    outs[mode].append(out)
                    s = out.child_stats
                    print(f"{backend:10} run {rep + 1} {mode:5}: "
                          f"p50 {fmt(out.p50)} p95 {fmt(pct(out.late_ms, 95))} "
                          f"p99 {fmt(out.p99)} max {fmt(out.max)} ms; "
                          f"dup {out.duplicates} early {out.early} missing {out.missing}"
                          + (f"; pruned {s.get('pruned', 0):,} rows in "
                             f"{s.get('prune_seconds', 0)} s (waited "
                             f"{s.get('waited_seconds', 0)} s for gaps), "
                             f"{s.get('batches', 0)} batches "
                             f"(ms p50 {s.get('batch_ms_p50')}, p99 {s.get('batch_ms_p99')}, "
                             f"max {s.get('batch_ms_max')})" if mode != "off" else "")
                          + f" {out.note} [{out.load}]", flush=True)
            rows += [row(backend, present, mode, outs[mode]) for mode in modes]
    finally:
        target.stop()
        if args.keep:
            print(f"# kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(rows))
    by = {(r["backend"], r["mode"]): r for r in rows}
    parts = []
    for b in args.backends.split(","):
        off = by.get((b, "off"))
        for mode in args.modes.split(","):
            r = by[(b, mode)]
            parts.append(f"{b} {mode}: p99 {fmt(r['p99'])} ms"
                         + (f" ({ratio(r['p99'], off['p99'])} off), {fmt(r['rate'])} rows/s"
                            if off and mode != "off" else ""))
    print(f"\npruning ({rows[0]['rows']:,} rows) {'; '.join(parts)}; {load_text()}")


if __name__ == "__main__":
    main()
