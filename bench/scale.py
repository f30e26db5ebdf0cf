"""Benchmark 4 of issue 8: one million schedules in PostgreSQL (or SQLite).

Bulk-loads (COPY; on SQLite one stdlib ``executemany`` transaction) 1,000,000 schedules
across 10,000 users (100 each: 70 cron and 10 once active, next runs spread over the
coming week and month; 15 paused and 5 done without a next run) plus one finished run
per schedule, then measures:

* ``EXPLAIN (ANALYZE, BUFFERS)`` (SQLite: ``EXPLAIN QUERY PLAN``) of the timer's due
  query, captured exactly as ``Store.due`` sends it, of ``earliest_next_run``, and of the
  two queries behind ``GET /schedule/`` (one user's page and their count);
* the time to fetch the next due batch (``Store.due(now, limit=100)``) with nothing due
  and with thousands due, median and p95 of 300 calls;
* the API served by uvicorn in its own process (``_scale_api.py``: ``create_api_app`` with
  the real store and the real role table behind kodosumi's JWT middleware):
  ``GET /schedule/`` (one user, 50 per page) and ``POST /schedule/`` (a cron schedule),
  1,000 requests each from one client, one at a time, latency measured at the client.

Uses its own database (``kodo_timer_scale``; create it with
``su postgres -c "createdb -O kodo_timer kodo_timer_scale"``) so the other benchmarks'
resets never touch the million rows; a loaded database is reused (``--reload`` forces).
``--backend sqlite`` uses a file of its own (``--sqlite-file``, default
``$TMPDIR/kodo_timer_scale.db``, about 1 GB), reused the same way; it is not ANALYZEd
(nothing does that in a real SQLite store), PostgreSQL is (as autovacuum would).

    .venv/bin/python bench/scale.py            # full: 1,000 requests each, 3 rounds
    .venv/bin/python bench/scale.py --quick    # one line; loads first if needed
    .venv/bin/python bench/scale.py --backend sqlite
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    FLOW,
    PY,
    free_port,
    load_text,
    machine,
    make_admin_db,
    median,
    pct,
    role_ids,
    start_child,
    wait_http,
)

SCALE_URL = os.environ.get(
    "KODO_BENCH_PG_SCALE",
    "postgresql+asyncpg://kodo_timer:kodo_timer@127.0.0.1:5432/kodo_timer_scale")
USERS = 10_000
PER_USER = 100
EXPRESSIONS = ["0 9 * * *", "30 8 * * MON-FRI", "0 */6 * * *", "15 3 1 * *", "0 12 * * SUN",
               "*/30 * * * *", "0 7 * * 1", "45 17 * * 5"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
COLUMNS = ["id", "owner", "system", "expose_name", "flow_url", "title", "schedule_type",
           "cron_expression", "run_at", "timezone", "inputs", "state", "catchup", "overlap",
           "end_at", "max_runs", "run_count", "next_run", "last_run", "last_fid",
           "last_status", "note", "version", "created", "updated"]
RUN_COLUMNS = ["schedule_id", "owner", "slot", "attempt", "trigger", "status", "fired_at",
               "fid", "reason", "finished_at", "timer_id"]


SQLITE_FILE = Path(tempfile.gettempdir()) / "kodo_timer_scale.db"
TIMES = {"run_at", "end_at", "next_run", "last_run", "created", "updated", "slot",
         "fired_at", "finished_at"}


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL; None for PostgreSQL."""
    prefix = "sqlite+aiosqlite:///"
    return url[len(prefix):] if url.startswith(prefix) else None


def sqlite_time(value: datetime) -> str:
    """A UTC moment as ``UTCDateTime`` stores it in SQLite (naive, SQLAlchemy's format)."""
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def for_sqlite(columns: list[str], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows bound as the store binds them in SQLite: text timestamps, 0/1 booleans."""
    times = [k for k, c in enumerate(columns) if c in TIMES]
    out = []
    for row in rows:
        values = list(row)
        for k in times:
            if values[k] is not None:
                values[k] = sqlite_time(values[k])
        out.append(tuple(int(v) if isinstance(v, bool) else v for v in values))
    return out


def sqlite_count(path: str) -> int:
    if not Path(path).exists():
        return 0
    with sqlite3.connect(path) as lite:
        exists = lite.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                              "AND name = 'schedule'").fetchone()[0]
        return int(lite.execute("SELECT count(*) FROM schedule").fetchone()[0]
                   if exists else 0)


def remove_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(path + suffix).unlink(missing_ok=True)


async def loaded_count(url: str) -> int:
    import asyncpg

    path = sqlite_path(url)
    if path is not None:
        return sqlite_count(path)
    conn = await asyncpg.connect(dsn(url))
    try:
        exists = await conn.fetchval("SELECT to_regclass('public.schedule') IS NOT NULL")
        return int(await conn.fetchval("SELECT count(*) FROM schedule")) if exists else 0
    finally:
        await conn.close()


async def bulk_load(url: str) -> dict[str, float]:
    """COPY the million schedules and their runs; returns the phases' seconds."""
    import asyncpg

    from kodosumi_timer.store import open_store

    path = sqlite_path(url)
    if path is not None:
        remove_sqlite(path)
    store = await open_store(url)  # our migrations create the schema and its indexes
    await store.close()
    if path is not None:
        lite = sqlite3.connect(path)
        try:
            with lite:
                started = time.monotonic()
                for rows, runs, done in generate():
                    lite.executemany(
                        f"INSERT INTO schedule ({', '.join(COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(COLUMNS))})", for_sqlite(COLUMNS, rows))
                    lite.executemany(
                        f"INSERT INTO schedule_run ({', '.join(RUN_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                        for_sqlite(RUN_COLUMNS, runs))
                    print(f"  loaded {done:,} schedules and runs "
                          f"({time.monotonic() - started:.0f} s)", flush=True)
            return {"copy": time.monotonic() - started, "analyze": 0.0}
        finally:
            lite.close()
    conn = await asyncpg.connect(dsn(url))
    timings: dict[str, float] = {}
    try:
        await conn.execute("TRUNCATE schedule, schedule_run RESTART IDENTITY")
        started = time.monotonic()
        for rows, runs, done in generate():
            await conn.copy_records_to_table("schedule", records=rows, columns=COLUMNS)
            await conn.copy_records_to_table("schedule_run", records=runs, columns=RUN_COLUMNS)
            print(f"  loaded {done:,} schedules and runs "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
        timings["copy"] = time.monotonic() - started
        started = time.monotonic()
        await conn.execute("VACUUM ANALYZE schedule")
        await conn.execute("VACUUM ANALYZE schedule_run")
        timings["analyze"] = time.monotonic() - started
    finally:
        await conn.close()
    return timings


def generate() -> Any:
    """The million schedules and one finished run each, in chunks of 100,000:
    yields (schedule rows, run rows, schedules so far) in ``COLUMNS`` / ``RUN_COLUMNS``."""
    owners = role_ids(USERS)
    now = datetime.now(UTC)
    rng = random.Random(1)
    total = USERS * PER_USER
    chunk = min(100_000, total)
    for base in range(0, total, chunk):
        rows, runs = [], []
        for i in range(base, base + chunk):
            owner = owners[i // PER_USER]
            kind = i % PER_USER
            sid = f"{i:08x}{rng.getrandbits(96):024x}"
            created = now - timedelta(days=rng.uniform(1, 300))
            cron_expr: str | None = EXPRESSIONS[i % len(EXPRESSIONS)]
            run_at = None
            schedule_type, state = "cron", "active"
            if kind < 70:
                next_run: datetime | None = now + timedelta(seconds=rng.uniform(60, 7 * 86400))
            elif kind < 80:
                schedule_type, cron_expr = "once", None
                next_run = run_at = now + timedelta(seconds=rng.uniform(60, 30 * 86400))
            elif kind < 95:
                state, next_run = "paused", None
            else:
                schedule_type, cron_expr, state, next_run = "once", None, "done", None
                run_at = now - timedelta(days=rng.uniform(1, 30))
            last_run = now - timedelta(hours=rng.uniform(1, 500))
            rows.append((sid, owner, False, "Daily report", FLOW, f"report {kind}",
                         schedule_type, cron_expr, run_at, ZONES[i % len(ZONES)],
                         json.dumps({"text": "summarise my inbox", "n": kind}), state,
                         "once", "skip", None, None, 3, next_run, last_run,
                         f"fid{i:08x}", "finished", None, 1, created, created))
            runs.append((sid, owner, last_run, 1, "timer", "finished", last_run,
                         f"fid{i:08x}", None, last_run + timedelta(seconds=30), "bench"))
        yield rows, runs, base + chunk


async def explain_and_fetch(url: str, reps: int) -> dict[str, Any]:
    from sqlalchemy import event, func, select

    from kodosumi_timer.store import ScheduleRow, open_store

    store = await open_store(url, migrate_schema=False)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        captured.append((statement, parameters))

    out: dict[str, Any] = {}
    # the loaded next runs age with the dataset: measure relative to the earliest one
    earliest = await store.earliest_next_run()
    assert earliest is not None
    now = earliest - timedelta(seconds=1)  # nothing is due yet
    busy = earliest + timedelta(hours=2)  # several thousand schedules are due by then
    event.listen(store.engine.sync_engine, "before_cursor_execute", capture)
    await store.due(now, limit=100)
    due_sql, due_params = captured[-1]
    await store.earliest_next_run()
    min_sql, min_params = captured[-1]
    await store.due(busy, limit=100)
    busy_params = captured[-1][1]
    await store.list_schedules(role_ids(USERS)[USERS // 2 + 7], limit=50)  # GET /schedule/'s two
    (list_sql, list_params), (count_sql, count_params) = captured[-2], captured[-1]
    event.remove(store.engine.sync_engine, "before_cursor_execute", capture)
    out["due_sql"] = due_sql
    out["list_sql"] = list_sql
    lite = store.dialect == "sqlite"
    explain = "EXPLAIN QUERY PLAN " if lite else "EXPLAIN (ANALYZE, BUFFERS) "
    async with store.engine.connect() as conn:
        for label, sql, params in (("due", due_sql, due_params),
                                   ("earliest_next_run", min_sql, min_params),
                                   ("due_busy", due_sql, busy_params),
                                   ("list", list_sql, list_params),
                                   ("count", count_sql, count_params)):
            rows = (await conn.exec_driver_sql(explain + sql, params)).all()
            out[f"explain_{label}"] = "\n".join(
                f"{r[0]} {r[1]} {r[-1]}" if lite else r[0] for r in rows)
        out["due_by_busy"] = (await conn.execute(
            select(func.count()).select_from(ScheduleRow).where(
                ScheduleRow.state == "active", ScheduleRow.next_run <= busy))).scalar_one()
    for label, until in (("none_due", now), ("busy", busy)):
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            batch = await store.due(until, limit=100)
            times.append((time.perf_counter() - started) * 1000)
        out[f"fetch_{label}"] = {"median": median(times), "p95": pct(times, 95),
                                 "rows": len(batch)}
    # where the time of a batch goes: the same rows as plain tuples (no ORM objects)
    columns = select(*ScheduleRow.__table__.c).where(
        ScheduleRow.next_run <= busy, ScheduleRow.state == "active").order_by(
        ScheduleRow.next_run).limit(100)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        async with store.engine.connect() as conn:
            (await conn.execute(columns)).all()
        times.append((time.perf_counter() - started) * 1000)
    out["fetch_core"] = {"median": median(times), "p95": pct(times, 95)}
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        await store.earliest_next_run()
        times.append((time.perf_counter() - started) * 1000)
    out["earliest"] = {"median": median(times), "p95": pct(times, 95)}
    await store.close()
    return out


def api_round(base: str, requests: int, rng: random.Random) -> dict[str, Any]:
    """``requests`` GETs then ``requests`` POSTs, one at a time, as random users."""
    from kodosumi.service.jwt import encode_jwt_token

    owners = role_ids(USERS)
    tokens: dict[str, str] = {}

    def headers(owner: str) -> dict[str, str]:
        if owner not in tokens:
            tokens[owner] = encode_jwt_token(uuid.UUID(owner).hex)
        return {"KODOSUMI_API_KEY": tokens[owner]}

    gets, posts, statuses = [], [], {"get": {}, "post": {}}  # type: ignore[var-annotated]
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(50):  # warm up connections, caches, the pool
            client.get("/schedule/", params={"limit": 50},
                       headers=headers(rng.choice(owners)))
        for _ in range(requests):
            owner = rng.choice(owners)
            h = headers(owner)
            started = time.perf_counter()
            r = client.get("/schedule/", params={"limit": 50}, headers=h)
            gets.append((time.perf_counter() - started) * 1000)
            statuses["get"][r.status_code] = statuses["get"].get(r.status_code, 0) + 1
        for i in range(requests):
            owner = rng.choice(owners)
            body = {"flow_url": FLOW, "schedule_type": "cron",
                    "cron_expression": EXPRESSIONS[i % len(EXPRESSIONS)],
                    "timezone": ZONES[i % len(ZONES)], "title": f"bench {i}",
                    "inputs": {"text": "summarise my inbox", "n": i}}
            h = headers(owner)
            started = time.perf_counter()
            r = client.post("/schedule/", json=body, headers=h)
            posts.append((time.perf_counter() - started) * 1000)
            statuses["post"][r.status_code] = statuses["post"].get(r.status_code, 0) + 1
    return {"get": {"median": median(gets), "p95": pct(gets, 95), "p99": pct(gets, 99)},
            "post": {"median": median(posts), "p95": pct(posts, 95), "p99": pct(posts, 99)},
            "statuses": statuses}


async def delete_bench_posts(url: str) -> int:
    import asyncpg

    path = sqlite_path(url)
    if path is not None:
        with sqlite3.connect(path) as lite:
            return lite.execute("DELETE FROM schedule WHERE title LIKE 'bench %'").rowcount
    conn = await asyncpg.connect(dsn(url))
    try:
        result = await conn.execute("DELETE FROM schedule WHERE title LIKE 'bench %'")
        return int(result.split()[-1])
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--sqlite-file", default=str(SQLITE_FILE),
                        help="the SQLite database of --backend sqlite (reused when loaded)")
    parser.add_argument("--reload", action="store_true", help="load the million rows anew")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", metavar="FILE",
                        help="record the API server with py-spy (raw stacks) into FILE")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rounds = 300, 1
    expected = USERS * PER_USER
    url = SCALE_URL if args.backend == "postgresql" else f"sqlite+aiosqlite:///{args.sqlite_file}"
    count = asyncio.run(loaded_count(url))
    load_timings: dict[str, float] = {}
    if args.reload or count < expected:
        print(f"loading {expected:,} schedules into {url.rsplit('/', 1)[-1]} "
              f"(found {count:,}) ...", flush=True)
        load_timings = asyncio.run(bulk_load(url))
        count = asyncio.run(loaded_count(url))
    if not args.quick:
        print(f"# {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {load_text()}")
        print(f"# {args.backend}, {count:,} schedules" + (
            (f"; COPY {load_timings['copy']:.0f} s, VACUUM ANALYZE "
             f"{load_timings['analyze']:.0f} s" if args.backend == "postgresql" else
             f"; loaded in {load_timings['copy']:.0f} s") if load_timings else " (reused)"))
    db = asyncio.run(explain_and_fetch(url, 100 if args.quick else 300))
    uses_index = "ix_schedule_next_run" in db["explain_due"]
    list_index = "ix_schedule_owner" in db["explain_list"]
    how = "EXPLAIN QUERY PLAN" if args.backend == "sqlite" else "EXPLAIN ANALYZE"
    workdir = Path(tempfile.mkdtemp(prefix="kt-bench-scale-"))
    admin_db = asyncio.run(make_admin_db(workdir / "admin.db", role_ids(USERS)))
    port = free_port()
    server = start_child("api", [
        PY, "-m", "uvicorn", "--factory", "_scale_api:create", "--app-dir",
        str(Path(__file__).resolve().parent), "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log"], workdir,
        env={"BENCH_DB": url, "BENCH_ADMIN_DB": admin_db})
    rounds = []
    spy: subprocess.Popen[bytes] | None = None
    try:
        wait_http(f"http://127.0.0.1:{port}/schedule/", server)
        if args.profile:
            spy = subprocess.Popen(
                [str(Path(PY).parent / "py-spy"), "record", "--pid", str(server.pid),
                 "--rate", "200", "--format", "raw", "--output", args.profile],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rng = random.Random(8)
        for k in range(args.rounds):
            load_before = load_text()
            result = api_round(f"http://127.0.0.1:{port}", args.requests, rng)
            result["load"] = load_before
            rounds.append(result)
            if not args.quick:
                print(f"API round {k + 1}: GET p50 {result['get']['median']:.1f} p95 "
                      f"{result['get']['p95']:.1f} p99 {result['get']['p99']:.1f} ms; POST p50 "
                      f"{result['post']['median']:.1f} p95 {result['post']['p95']:.1f} p99 "
                      f"{result['post']['p99']:.1f} ms; {result['statuses']} [{load_before}]",
                      flush=True)
    finally:
        server.stop()
        if spy is not None:
            spy.wait(30)
        removed = asyncio.run(delete_bench_posts(url))
        shutil.rmtree(workdir, ignore_errors=True)
    get95 = median([r["get"]["p95"] for r in rounds])
    post95 = median([r["post"]["p95"] for r in rounds])
    if args.quick:
        print(f"scale {args.backend} {count:,} schedules: due query uses ix_schedule_next_run: "
              f"{'yes' if uses_index else 'NO'}; next due batch "
              f"{db['fetch_busy']['median']:.2f} ms (nothing due "
              f"{db['fetch_none_due']['median']:.2f} ms); GET /schedule/ p95 {get95:.1f} ms, "
              f"POST /schedule/ p95 {post95:.1f} ms over {args.requests}; {load_text()}")
        return
    print(f"\ndue query ({'uses' if uses_index else 'DOES NOT use'} ix_schedule_next_run):\n"
          f"{db['due_sql']}\n\n{how}, nothing due:\n{db['explain_due']}\n\n"
          f"{how}, {db['due_by_busy']:,} due:\n{db['explain_due_busy']}\n\n"
          f"{how}, earliest_next_run:\n{db['explain_earliest_next_run']}\n\n"
          f"GET /schedule/ ({'uses' if list_index else 'DOES NOT use'} ix_schedule_owner):\n"
          f"{db['list_sql']}\n\n{how}, one user's page:\n{db['explain_list']}\n\n"
          f"{how}, their count:\n{db['explain_count']}\n")
    print("| measure | median ms | p95 ms | target |")
    print("|---|---:|---:|---|")
    print(f"| `Store.due(now, 100)`, nothing due | {db['fetch_none_due']['median']:.2f} | "
          f"{db['fetch_none_due']['p95']:.2f} | ≤ 5 ms |")
    print(f"| `Store.due(now, 100)`, {db['due_by_busy']:,} due | "
          f"{db['fetch_busy']['median']:.2f} | {db['fetch_busy']['p95']:.2f} | ≤ 5 ms |")
    print(f"| the same 100 rows as tuples (core select, no ORM objects) | "
          f"{db['fetch_core']['median']:.2f} | {db['fetch_core']['p95']:.2f} | - |")
    print(f"| `Store.earliest_next_run()` | {db['earliest']['median']:.2f} | "
          f"{db['earliest']['p95']:.2f} | - |")
    print(f"| `GET /schedule/?limit=50` (median of {len(rounds)} rounds of "
          f"{args.requests}) | {median([r['get']['median'] for r in rounds]):.1f} | "
          f"{get95:.1f} | p95 ≤ 50 ms (issue 8), ≤ 20 ms (issue 15) |")
    print(f"| `POST /schedule/` (median of {len(rounds)} rounds of {args.requests}) | "
          f"{median([r['post']['median'] for r in rounds]):.1f} | {post95:.1f} | "
          f"p95 ≤ 30 ms |")
    print(f"\n({removed} schedules created by the POSTs were deleted again)")


if __name__ == "__main__":
    main()
