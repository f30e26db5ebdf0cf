"""Benchmark 5 of issue 8: our timer on the real kodosumi stack.

Starts a private stack (Ray head on free ports, the demo agents on Serve, kodosumi's
spooler, the composed panel: ``kodosumi_timer.fullstack.start_full_stack``), a recording
reverse proxy (``_proxy.py``) in front of the panel, and the real timer
(``koco-timer start --block``, Ray lock actor, current code) launching through that proxy.
Then it measures:

1. **the panel's own launch rate**: POSTs of the ``quick`` agent's inputs straight to the
   panel (no proxy, no timer), ``--concurrency`` at a time: launches/s and the answer
   time; then it waits until those executions ended, so each phase starts on a calm stack
   (40 launches at 4 at a time left Ray with 130 processes and the panel answering in
   30 s and more on this machine);
2. **isolated scheduled fires**: schedules created through ``POST /schedule/`` a few
   seconds apart; for each launch, *ours* = arrival at the proxy - slot, *kodosumi's* =
   the panel's answer time, so RESULTS.md can say what share of a late fire is ours;
3. **a burst**: ``--burst`` schedules due at the same second, the same split;
4. **the real timer process at rest**: RSS and CPU over 30 s of the ``koco-timer start``
   process (with its Ray client) after 100,000 idle schedules were added to its store.

A cold stack takes 45-90 s on this machine, so ``--quick`` (fewer launches, no idle
part) cannot finish in 60 s; it prints one line like the other benchmarks.

    .venv/bin/python bench/kodosumi_launch.py
    .venv/bin/python bench/kodosumi_launch.py --quick
"""

import argparse
import asyncio
import math
import random
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH, PY, load_text, machine, median, pct, schedule_values  # noqa: E402

INPUTS = {"repeat": 1, "colour": "blue", "shout": "on", "day": "2027-01-04"}


def say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, flush=True)


def panel_rate(panel: str, token: str, flow: str, launches: int,
               concurrency: int) -> dict[str, Any]:
    """Launches straight to the panel: rate and answer times."""

    async def go() -> dict[str, Any]:
        times: list[float] = []
        statuses: dict[int, int] = {}
        sem = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=panel, timeout=120,
                                     headers={"KODOSUMI_API_KEY": token}) as client:
            async def one(i: int) -> None:
                async with sem:
                    started = time.perf_counter()
                    r = await client.post(flow, json={**INPUTS, "message": f"direct {i}"})
                    times.append((time.perf_counter() - started) * 1000)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 200 and isinstance(r.json().get("result"), str):
                        fids.append(r.json()["result"])

            fids: list[str] = []
            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(launches)))
            elapsed = time.perf_counter() - started
            # the executions end before the next phase, so that it starts on a calm stack
            deadline = time.monotonic() + 300
            pending = set(fids)
            while pending and time.monotonic() < deadline:
                for fid in list(pending):
                    try:
                        r = await client.get(f"/outputs/status/{fid}", timeout=15)
                    except httpx.HTTPError:
                        continue  # an overloaded panel: ask again on the next round
                    if r.status_code == 200 and r.json().get("status") in ("finished",
                                                                           "error"):
                        pending.discard(fid)
                await asyncio.sleep(1)
            settled = time.perf_counter() - started
        return {"rate": launches / elapsed, "p50": median(times), "p95": pct(times, 95),
                "max": max(times), "statuses": statuses, "unfinished": len(pending),
                "all_done_s": settled}

    return asyncio.run(go())


def settle(client: httpx.Client, ids: list[str], timeout: float) -> int:
    """Wait until these schedules' last runs ended; returns how many did not."""
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for sid in list(pending):
            try:
                r = client.get(f"/schedule/{sid}", timeout=15)
            except httpx.HTTPError:
                continue
            if r.status_code == 200 and r.json().get("last_status") in (
                    "finished", "error", "failed", "rejected"):
                pending.discard(sid)
        time.sleep(1)
    return len(pending)


def schedule(client: httpx.Client, flow: str, tag: str, run_at: datetime) -> dict[str, Any]:
    r = client.post("/schedule/", json={
        "flow_url": flow, "schedule_type": "once", "run_at": run_at.isoformat(),
        "timezone": "UTC", "title": tag, "inputs": {**INPUTS, "message": tag}})
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def scheduled_fires(panel: str, proxy: str, token: str, flow: str, slots: list[datetime],
                    timeout: float) -> dict[str, Any]:
    """Create one schedule per slot, wait for their launches at the proxy, split them."""
    tags = {}
    ids = []
    with httpx.Client(base_url=panel, timeout=120,
                      headers={"KODOSUMI_API_KEY": token}) as client:
        for slot in slots:
            tag = f"bench-{secrets.token_hex(6)}"
            created = schedule(client, flow, tag, slot)
            ids.append(created["id"])
            tags[tag] = datetime.fromisoformat(created["next_run"]).timestamp()
        deadline = max(tags.values()) + timeout
        found: dict[str, dict[str, Any]] = {}
        while time.time() < deadline and len(found) < len(tags):
            time.sleep(0.5)
            for record in httpx.get(f"{proxy}/_proxy/records", timeout=30).json():
                if record.get("message") in tags and record["message"] not in found:
                    found[record["message"]] = record
        unfinished = settle(client, ids, 180)
    ours = [r["arrived_ns"] / 1e6 - tags[t] * 1000 for t, r in found.items()]
    theirs = [r["upstream_ms"] for r in found.values()]
    answered = [r["arrived_ns"] / 1e6 + r["upstream_ms"] - tags[t] * 1000
                for t, r in found.items()]
    return {"n": len(tags), "launched": len(found), "unfinished": unfinished,
            "ok": sum(1 for r in found.values() if r["status"] == 200),
            "early": sum(1 for x in ours if x < 0),
            "ours": {"p50": median(ours), "max": max(ours, default=float("nan"))},
            "kodosumi": {"p50": median(theirs), "max": max(theirs, default=float("nan"))},
            "answered": {"p50": median(answered),
                         "max": max(answered, default=float("nan"))}}


async def add_idle_schedules(db: str, owner: str, n: int) -> None:
    from sqlalchemy import insert

    from kodosumi_timer.store import ScheduleRow, open_store

    store = await open_store(db, migrate_schema=False)
    now = datetime.now(UTC)
    rng = random.Random(5)
    async with store.engine.begin() as conn:
        for start in range(0, n, 5000):
            rows = [schedule_values(
                f"idle{i:08d}", owner, now + timedelta(hours=1, seconds=rng.uniform(60, 86400)),
                now, schedule_type="cron", cron_expression="0 9 * * *", run_at=None,
                flow_url="/-/127.0.0.1/1/none/-/", inputs={"message": "idle"})
                for i in range(start, min(n, start + 5000))]
            await conn.execute(insert(ScheduleRow.__table__), rows)
    await store.close()


def at_rest(pid: int, window: float) -> dict[str, float]:
    proc = psutil.Process(pid)
    family = [proc, *proc.children(recursive=True)]
    before = sum(p.cpu_times().user + p.cpu_times().system for p in family)
    time.sleep(window)
    after = sum(p.cpu_times().user + p.cpu_times().system for p in family)
    return {"cpu_pct": 100 * (after - before) / window,
            "rss_mb": sum(p.memory_info().rss for p in family) / 2**20,
            "processes": len(family)}


def fmt(x: float) -> str:
    return "n/a" if x != x else (f"{x:,.1f}" if abs(x) < 100 else f"{x:,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--launches", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--isolated", type=int, default=8)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--idle", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    if args.quick:
        args.launches, args.isolated, args.burst, args.idle = 6, 3, 5, 0
    quiet = args.quick

    from kodosumi_timer.devstack import (
        ProcessGroup,
        RayPorts,
        actor_alive,
        free_port,
        short_temp_dir,
        wait_until,
    )
    from kodosumi_timer.fullstack import start_full_stack
    from kodosumi_timer.lock import LOCK_NAME, NAMESPACE

    work = Path(tempfile.mkdtemp(prefix="kt-bench-kodo-"))
    temp_dir = short_temp_dir()
    group = ProcessGroup(progress=None if quiet else print)
    results: dict[str, Any] = {}
    try:
        started = time.monotonic()
        stack = start_full_stack(group, data_dir=work / "data", temp_dir=temp_dir,
                                 ports=RayPorts.free(), panel_port=free_port(),
                                 secret=secrets.token_hex(24), with_timer=False,
                                 progress=None if quiet else print)
        results["stack_s"] = time.monotonic() - started
        proxy_port = free_port()
        proxy = f"http://127.0.0.1:{proxy_port}"
        env = dict(stack.env)
        env["BENCH_UPSTREAM"] = stack.panel_url
        group.start("proxy", [PY, "-m", "uvicorn", "_proxy:app", "--app-dir", str(BENCH),
                              "--host", "127.0.0.1", "--port", str(proxy_port),
                              "--log-level", "warning", "--no-access-log"],
                    env, work / "proxy.log")
        wait_until(lambda: httpx.get(f"{proxy}/_proxy/records", timeout=2).status_code == 200,
                   what="proxy", timeout=30)
        timer_env = dict(stack.env)
        timer_env["KODO_TIMER_PANEL_URL"] = proxy
        timer = group.start("timer", [PY, "-m", "kodosumi_timer.cli", "start", "--block"],
                            timer_env, stack.kodo.data_dir / "logs" / "timer.out",
                            cwd=stack.kodo.data_dir.parent)
        wait_until(lambda: actor_alive(stack.kodo.dashboard_url, LOCK_NAME, NAMESPACE),
                   what="timer", timeout=90)
        login = httpx.get(f"{stack.panel_url}/login",
                          params={"name": "admin", "password": "admin"}, timeout=30).json()
        token, admin_id = login["KODOSUMI_API_KEY"], str(login["id"])
        flow = stack.flows["quick"]
        say(quiet, f"# {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {load_text()}; "
                   f"stack up in {results['stack_s']:.0f} s")

        results["direct"] = panel_rate(stack.panel_url, token, flow, args.launches,
                                       args.concurrency)
        d = results["direct"]
        say(quiet, f"panel alone: {d['rate']:.2f} launches/s at concurrency "
                   f"{args.concurrency}; answer p50 {fmt(d['p50'])} ms, p95 {fmt(d['p95'])} "
                   f"ms, max {fmt(d['max'])} ms; {d['statuses']}; all executions ended "
                   f"{d['all_done_s']:.0f} s after the first launch ({d['unfinished']} did "
                   f"not) [{load_text()}]")

        first = time.time() + 10
        slots = [datetime.fromtimestamp(first + 8 * i + random.uniform(0, 1), UTC)
                 for i in range(args.isolated)]
        results["isolated"] = scheduled_fires(stack.panel_url, proxy, token, flow, slots, 60)
        burst_at = datetime.fromtimestamp(math.ceil(time.time() + 8), UTC)
        results["burst"] = scheduled_fires(stack.panel_url, proxy, token, flow,
                                           [burst_at] * args.burst, 120)
        for key in ("isolated", "burst"):
            r = results[key]
            say(quiet, f"{key}: {r['launched']}/{r['n']} launched ({r['ok']} answered 200, "
                       f"{r['unfinished']} not ended after 180 s, "
                       f"{r['early']} early); ours (slot -> request at the panel) p50 "
                       f"{fmt(r['ours']['p50'])} ms, max {fmt(r['ours']['max'])} ms; "
                       f"kodosumi's answer p50 {fmt(r['kodosumi']['p50'])} ms, max "
                       f"{fmt(r['kodosumi']['max'])} ms; slot -> answered p50 "
                       f"{fmt(r['answered']['p50'])} ms, max {fmt(r['answered']['max'])} ms "
                       f"[{load_text()}]")
        if args.idle:
            asyncio.run(add_idle_schedules(stack.schedule_db, admin_id, args.idle))
            time.sleep(10)
            results["rest"] = at_rest(timer.pid, 30.0)
            r = results["rest"]
            say(quiet, f"koco-timer start at rest with {args.idle:,} idle schedules: CPU "
                       f"{r['cpu_pct']:.2f} % of a core over 30 s, RSS {r['rss_mb']:.0f} MB "
                       f"({r['processes']} process(es)) [{load_text()}]")
    finally:
        group.stop_all()
        shutil.rmtree(temp_dir, ignore_errors=True)
        if args.keep:
            print(f"# kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.quick:
        d, i, b = results["direct"], results["isolated"], results["burst"]
        share = i["ours"]["p50"] / max(i["answered"]["p50"], 1e-9)
        print(f"kodosumi_launch panel {d['rate']:.2f} launches/s (answer p50 "
              f"{fmt(d['p50'])} ms); isolated: ours p50 {fmt(i['ours']['p50'])} ms of "
              f"{fmt(i['answered']['p50'])} ms to the panel's answer ({100 * share:.0f} % "
              f"ours); burst {b['n']}: last request {fmt(b['ours']['max'])} ms, last answer "
              f"{fmt(b['answered']['max'])} ms after the slot; {load_text()}")


if __name__ == "__main__":
    main()
