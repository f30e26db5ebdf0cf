"""How long the operators' Timer page (``GET /admin/schedule/timer``) takes with 10,000
active schedules and a day of runs, on SQLite and on PostgreSQL (median of 5 GETs
after one warm-up).

The page is served by the real composed panel (kodosumi's app and templates with our
routers) in this process, without Ray: the timer's figures come from a function that
says no timer runs (reading them from the lock actor is a separate, 2 s-bounded call),
roles from a stand-in that names every owner. What is measured is the store's queries,
the coming-load expansion and the rendering: the page's own work.

    .venv/bin/python bench/timer_page.py                  # both stores
    .venv/bin/python bench/timer_page.py --stores sqlite  # KODO_BENCH_PG names the PG
"""

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import PG_URL, machine, median, reset_store, role_ids, schedule_values  # noqa: E402

os.environ.setdefault("KODO_TIMER_ALLOW_DEFAULT_SECRET", "true")

# the mix: (share of the schedules, cron expression or None for a once schedule)
MIX = [(0.40, "0 9 * * *"), (0.25, "{m} * * * *"), (0.20, "*/15 * * * *"),
       (0.01, "* * * * *"), (0.04, "30 17 * * 1-5"), (0.10, None)]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]


class Roles:
    """Every caller is an operator; every owner has a name (kodosumi's role table is
    not what this measures)."""

    async def is_operator(self, owner: str) -> bool:
        return True

    async def names(self, owners: Any) -> dict[str, str]:
        return {o: f"user {o[:8]}" for o in owners}

    async def owner_state(self, owner: str) -> str:
        return "active"

    async def close(self) -> None:
        pass


async def fill(url: str, schedules: int, runs: int, now: datetime) -> None:
    from sqlalchemy import insert

    from kodosumi_timer.rules import Rule
    from kodosumi_timer.store import open_store
    from kodosumi_timer.store.tables import RunRow, ScheduleRow

    await reset_store(url)
    rng = random.Random(7)
    owners = role_ids(200)
    rows = []
    n = 0
    for share, expression in MIX:
        for _ in range(int(schedules * share)):
            sid = f"{n:032x}"
            zone = rng.choice(ZONES)
            if expression is None:
                at = now + timedelta(minutes=rng.randrange(1, 3 * 1440))
                rows.append(schedule_values(sid, rng.choice(owners), at, now, title=f"once {n}",
                                            jitter=None))
            else:
                cron = expression.format(m=rng.randrange(60))
                nxt = Rule("cron", zone, cron).next_slots(now)[0]
                rows.append(schedule_values(sid, rng.choice(owners), nxt, now,
                                            schedule_type="cron", cron_expression=cron,
                                            run_at=None, timezone=zone, title=f"cron {n}",
                                            jitter=rng.choice([None, None, 60])))
            n += 1
    statuses = ["finished"] * 90 + ["error"] * 5 + ["missed", "failed", "skipped",
                                                    "unknown", "rejected"]
    run_rows = []
    for i in range(runs):
        row = rows[i % len(rows)]
        slot = now - timedelta(seconds=rng.uniform(0, 86_000))
        slot = slot.replace(microsecond=0) + timedelta(microseconds=i)  # unique per slot
        run_rows.append(dict(schedule_id=row["id"], owner=row["owner"], slot=slot, attempt=1,
                             trigger="timer", status=rng.choice(statuses),
                             fired_at=slot + timedelta(seconds=rng.expovariate(1 / 0.05))))
    store = await open_store(url)
    async with store.engine.begin() as conn:
        for start in range(0, len(rows), 2000):
            await conn.execute(insert(ScheduleRow), rows[start:start + 2000])
        for start in range(0, len(run_rows), 2000):
            await conn.execute(insert(RunRow), run_rows[start:start + 2000])
    await store.close()


def panel(directory: Path, url: str, now: datetime) -> Any:
    """The composed panel on ``url`` without Ray (kodosumi's startup joins a cluster)."""
    from kodosumi.service import app as kodosumi_app

    from kodosumi_timer.config import TimerSettings
    from kodosumi_timer.panel.app import create_app
    from kodosumi_timer.panel.metrics import TIMER_META_KEY
    from kodosumi_timer.panel.services import STATE_KEY, PanelServices
    from kodosumi_timer.store import open_store

    app = create_app(ADMIN_DATABASE=f"sqlite+aiosqlite:///{directory}/admin.db",
                     EXEC_DIR=f"{directory}/execution", APP_LOG_FILE=f"{directory}/app.log",
                     SPOOLER_LOG_FILE=f"{directory}/spooler.log",
                     YAML_BASE=f"{directory}/config/config.yaml",
                     UPLOAD_DIR=f"{directory}/uploads")

    async def open_services(app: Any) -> None:
        app.state[STATE_KEY] = PanelServices(
            store=await open_store(url), flows=None,  # type: ignore[arg-type]
            wake=lambda: None, clock=lambda: now, settings=TimerSettings(), roles=Roles())

        async def no_timer() -> None:
            return None

        app.state[TIMER_META_KEY] = no_timer

    app.on_startup[:] = [h for h in app.on_startup if h is not kodosumi_app.startup
                         and h.__name__ != "open_services"]
    app.on_startup.append(open_services)
    return app


async def measure(url: str, schedules: int, runs: int, reps: int) -> dict[str, Any]:
    from kodosumi.service.jwt import encode_jwt_token
    from litestar.testing import AsyncTestClient

    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    await fill(url, schedules, runs, now)
    filled = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        app = panel(Path(tmp), url, now)
        headers = {"KODOSUMI_API_KEY": encode_jwt_token(role_ids(1)[0])}
        async with AsyncTestClient(app=app, timeout=120) as client:
            times = []
            for i in range(reps + 1):
                t = time.perf_counter()
                r = await client.get("/admin/schedule/timer", headers=headers)
                elapsed = time.perf_counter() - t
                assert r.status_code == 200, r.text[:500]
                if i:  # the first GET warms imports and caches
                    times.append(elapsed)
            size = len(r.content)
            slots = r.text.split(" slots of ")[0].rsplit(">", 1)[-1].strip()
    return {"median": median(times), "min": min(times), "max": max(times), "bytes": size,
            "fill_s": filled, "slots": slots}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    print(f"# {machine()}")
    print(f"# {args.schedules} active schedules, {args.runs} runs in the last 24 h, "
          f"median of {args.reps} GETs after one warm-up")
    for name in args.stores.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/schedule.db" if name == "sqlite" else PG_URL
            result = asyncio.run(measure(url, args.schedules, args.runs, args.reps))
        print(f"{name:10s} median {result['median'] * 1000:7.0f} ms  "
              f"(min {result['min'] * 1000:.0f}, max {result['max'] * 1000:.0f})  "
              f"page {result['bytes'] / 1024:.0f} KiB, {result['slots']} slots in the "
              f"next 24 h; filled in {result['fill_s']:.1f} s")


if __name__ == "__main__":
    main()
