"""Benchmark 3 of issue 8: what the timer costs while nothing is due.

N enabled cron schedules (spread over 10,000 owners) whose next runs all lie between one
and 25 hours ahead are bulk-loaded; then our timer runs in a child process, built by
``kodosumi_timer.daemon.TimerParts`` exactly as ``koco-timer start`` builds it (real
store, ``PanelLauncher``, ``RoleTable``, system schedules with flow discovery, default
settings: 60 s interval, follow loop every 2 s) except for the wake-up channel
(``LocalWaker`` instead of the Ray lock actor), against the launch target of
``lateness.py`` as its panel. It is measured from outside with psutil: CPU time (user +
system) over a window, as a share of one core, and RSS at the end. Done for 10,000 and
100,000 schedules by default, SQLite and PostgreSQL; ``--sizes 10000,1000000`` for the
million (bulk-loaded: COPY on PostgreSQL, one stdlib ``executemany`` transaction on
SQLite; the largest size is loaded once and deleted down to the smaller ones).

Not included: the Ray client of a ``koco-timer start`` process (``ray.init`` to the
cluster; ``ray`` is imported, as ``daemon`` imports it); ``kodosumi_launch.py`` measures
that process on the real stack.

    .venv/bin/python bench/idle.py            # 60 s windows, 3 runs per cell
    .venv/bin/python bench/idle.py --quick    # one line, under 60 s
"""

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PG_URL,
    PY,
    load_text,
    machine,
    make_admin_db,
    median,
    reset_store,
    role_ids,
    schedule_values,
    start_child,
    start_target,
    wait_line,
)

USERS = 10_000
EXPRESSIONS = ["0 9 * * *", "30 8 * * MON-FRI", "0 */6 * * *", "15 3 1 * *", "0 12 * * SUN"]


async def shrink(db: str, n: int) -> None:
    """Keep only the first ``n`` schedules of a larger load."""
    from sqlalchemy import delete

    from kodosumi_timer.store import ScheduleRow, open_store

    started = time.monotonic()
    store = await open_store(db)
    async with store.engine.begin() as conn:
        await conn.execute(delete(ScheduleRow.__table__).where(
            ScheduleRow.__table__.c.id >= f"idle{n:08d}"))
    if store.dialect == "postgresql":
        from sqlalchemy import text

        async with store.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE schedule"))
    await store.close()
    print(f"  {store.dialect}: deleted down to {n:,} schedules in "
          f"{time.monotonic() - started:.0f} s", flush=True)


# the columns the bulk load writes; the others keep their server defaults or NULL
COLUMNS = ["id", "owner", "system", "expose_name", "flow_url", "title", "schedule_type",
           "cron_expression", "run_at", "timezone", "inputs", "state", "catchup", "overlap",
           "end_at", "max_runs", "run_count", "next_run", "last_run", "last_fid",
           "last_status", "note", "version", "created", "updated"]
CHUNK = 50_000


def sqlite_time(value: datetime | None) -> str | None:
    """A UTC moment as ``UTCDateTime`` stores it in SQLite (naive, SQLAlchemy's format)."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def rows_of(start: int, stop: int, owners: list[str], now: datetime,
            rng: random.Random, dialect: str) -> list[tuple[Any, ...]]:
    """Schedules ``start`` .. ``stop - 1`` as tuples in ``COLUMNS`` order, bound as the
    store binds them (SQLite: text timestamps, 0/1; PostgreSQL: aware datetimes)."""
    rows = []
    for i in range(start, stop):
        slot = now + timedelta(hours=1, seconds=rng.uniform(60, 24 * 3600))
        values = schedule_values(
            f"idle{i:08d}", owners[i % USERS], slot, now, schedule_type="cron",
            cron_expression=EXPRESSIONS[i % len(EXPRESSIONS)], run_at=None,
            timezone="Europe/Berlin", inputs={"text": "daily report", "n": i})
        values["inputs"] = json.dumps(values["inputs"])
        if dialect == "sqlite":
            for key in ("run_at", "end_at", "next_run", "last_run", "created", "updated"):
                values[key] = sqlite_time(values[key])
            values["system"] = int(values["system"])
        rows.append(tuple(values[c] for c in COLUMNS))
    return rows


async def load(db: str, n: int) -> None:
    """Bulk-load ``n`` schedules: COPY on PostgreSQL, one ``executemany`` transaction with
    the stdlib driver on SQLite; no SQLAlchemy per row (1,000,000 load in about a minute)."""
    from sqlalchemy.engine import make_url

    from kodosumi_timer.store import open_store

    await reset_store(db)  # our migrations create the schema and its indexes
    store = await open_store(db)
    dialect = store.dialect
    await store.close()
    owners = role_ids(USERS)
    now = datetime.now(UTC)
    rng = random.Random(n)
    started = time.monotonic()

    def progress(done: int) -> None:
        if n >= 200_000 or done == n:
            print(f"  {dialect}: loaded {done:,} of {n:,} schedules "
                  f"({time.monotonic() - started:.0f} s)", flush=True)

    if dialect == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(db.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            for start in range(0, n, CHUNK):
                stop = min(n, start + CHUNK)
                await conn.copy_records_to_table(
                    "schedule", records=rows_of(start, stop, owners, now, rng, dialect),
                    columns=COLUMNS)
                progress(stop)
            await conn.execute("VACUUM ANALYZE schedule")
        finally:
            await conn.close()
    else:
        import sqlite3

        path = make_url(db).database
        assert path, db
        conn = sqlite3.connect(path)
        try:
            sql = (f"INSERT INTO schedule ({', '.join(COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(COLUMNS))})")
            with conn:
                for start in range(0, n, CHUNK):
                    stop = min(n, start + CHUNK)
                    conn.executemany(sql, rows_of(start, stop, owners, now, rng, dialect))
                    progress(stop)
        finally:
            conn.close()
    print(f"  {dialect}: {n:,} schedules in {time.monotonic() - started:.0f} s", flush=True)


async def child(db: str, admin_db: str, panel: str, workdir: str, prune: bool = True) -> None:
    """The timer as ``koco-timer start`` composes it, with an in-process waker (and, for
    ``--no-prune``, a history pruner that does nothing: a diagnostic, not a setting)."""
    import signal

    from kodosumi_timer.config import TimerSettings
    from kodosumi_timer.daemon import TimerParts
    from kodosumi_timer.history import Pruner
    from kodosumi_timer.timer import LocalWaker

    if not prune:
        async def no_pruning(self: Pruner) -> None:
            await self._stopping.wait()

        Pruner.run = no_pruning  # type: ignore[method-assign]

    settings = TimerSettings(
        TIMER_DATABASE=db, ADMIN_DATABASE=admin_db, TIMER_PANEL_URL=panel,
        TIMER_SCHEDULES=str(Path(workdir) / "schedules.yaml"),
        TIMER_LOG_FILE=str(Path(workdir) / "timer.log"))
    async with TimerParts(settings, LocalWaker(), lambda stats: None) as timer:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, timer.stop)
        print("ready", flush=True)
        await timer.run()


def measure(db: str, admin_db: str, panel: str, workdir: Path, window: float,
            warmup: float, prune: bool = True) -> dict[str, Any]:
    argv = [PY, str(Path(__file__).resolve()), "--child", "--db", db, "--admin-db", admin_db,
            "--panel", panel, "--workdir", str(workdir)] + ([] if prune else ["--no-prune"])
    child = start_child("idle-timer", argv, workdir)
    try:
        wait_line(child, "ready", timeout=60)
        proc = psutil.Process(child.pid)
        time.sleep(warmup)
        load_before = load_text()
        before = proc.cpu_times()
        started = time.monotonic()
        peak = proc.memory_info().rss
        while time.monotonic() - started < window:
            time.sleep(min(1.0, window - (time.monotonic() - started)))
            peak = max(peak, proc.memory_info().rss)
        after = proc.cpu_times()
        elapsed = time.monotonic() - started
        cpu = (after.user - before.user) + (after.system - before.system)
        rss = proc.memory_info().rss
        uss = proc.memory_full_info().uss
    finally:
        child.stop()
    return {"cpu_pct": 100 * cpu / elapsed, "cpu_s": cpu, "window": elapsed,
            "rss_mb": rss / 2**20, "peak_mb": peak / 2**20, "uss_mb": uss / 2**20,
            "load": load_before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--no-prune", action="store_true",
                        help="diagnostic: the timer without its history pruner's passes")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--admin-db", help=argparse.SUPPRESS)
    parser.add_argument("--panel", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.db, args.admin_db, args.panel, args.workdir, not args.no_prune))
        return
    warmup = 5.0
    if args.quick:
        args.runs, args.window, args.backends, warmup = 1, 8.0, "sqlite", 1.5
    workdir = Path(tempfile.mkdtemp(prefix="kt-bench-idle-"))
    target, panel = start_target(workdir)
    admin_db = asyncio.run(make_admin_db(workdir / "admin.db", role_ids(USERS)))
    dbs = {"sqlite": f"sqlite+aiosqlite:///{workdir / 'schedule.db'}", "postgresql": PG_URL}
    if not args.quick:
        print(f"# {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {load_text()}"
              + ("; WITHOUT the history pruner (--no-prune)" if args.no_prune else ""))
    cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        for backend in args.backends.split(","):
            # load the largest size once, then delete down to the smaller ones
            for k, n in enumerate(sorted((int(s) for s in args.sizes.split(",")),
                                         reverse=True)):
                started = time.monotonic()
                asyncio.run(load(dbs[backend], n) if k == 0 else shrink(dbs[backend], n))
                loaded = time.monotonic() - started
                for rep in range(args.runs):
                    m = measure(dbs[backend], admin_db, panel, workdir, args.window, warmup,
                                not args.no_prune)
                    cells.setdefault((backend, n), []).append(m)
                    if not args.quick:
                        print(f"{backend:10} {n:>7,} run {rep + 1}: CPU {m['cpu_pct']:.3f} % "
                              f"of a core ({m['cpu_s']:.2f} s in {m['window']:.0f} s), RSS "
                              f"{m['rss_mb']:.1f} MB (peak {m['peak_mb']:.1f}, USS "
                              f"{m['uss_mb']:.1f}); loaded in {loaded:.1f} s [{m['load']}]",
                              flush=True)
    finally:
        target.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = {key: {"cpu": median([m["cpu_pct"] for m in ms]),
                     "rss": median([m["rss_mb"] for m in ms]),
                     "peak": median([m["peak_mb"] for m in ms])}
               for key, ms in cells.items()}
    sizes = [int(s) for s in args.sizes.split(",")]
    small, big = min(sizes), max(sizes)
    if args.quick:
        s, b = summary[("sqlite", small)], summary[("sqlite", big)]
        print(f"idle sqlite {big:,} schedules: CPU {b['cpu']:.2f} % of a core over "
              f"{args.window:.0f} s, RSS {b['rss']:.0f} MB ({small:,}: {s['rss']:.0f} MB, "
              f"{100 * (b['rss'] / s['rss'] - 1):+.1f} %); {load_text()}")
        return
    print()
    print("| backend | schedules | CPU, % of one core (median) | RSS MB (median) | "
          "peak RSS MB | RSS vs smallest |")
    print("|---|---:|---:|---:|---:|---:|")
    for (backend, n), s in summary.items():
        base = summary[(backend, small)]["rss"]
        print(f"| {backend} | {n:,} | {s['cpu']:.3f} | {s['rss']:.1f} | {s['peak']:.1f} | "
              f"{100 * (s['rss'] / base - 1):+.1f} % |")


if __name__ == "__main__":
    main()
