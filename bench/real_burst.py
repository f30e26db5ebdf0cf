"""A herd on the real stack (issue 16): many slots of three users at the same second, and
a fourth user's single slot two seconds later, on a private kodosumi stack exactly as
``make demo`` runs it (Ray, the demo agents on Serve, kodosumi's spooler, the composed
panel, the timer as ``koco-timer start``).

Prints what a user would ask: did every run finish, was any lost or left unknown, how
late was each launched (the fourth user's especially), how long did the panel's
schedule list take to answer meanwhile (p50/p95/max), and the machine's load.

    .venv/bin/python bench/real_burst.py                  # 120 + 1 slots, the demo's cap
    .venv/bin/python bench/real_burst.py --slots 60 --max-running 0   # no cap

Ctrl-C (or SIGTERM) stops waiting for the runs to end and prints what is known.
"""

import argparse
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kodosumi_timer.devstack import ProcessGroup, RayPorts, free_port, short_temp_dir  # noqa: E402
from kodosumi_timer.fullstack import start_full_stack  # noqa: E402

FINAL = {"finished", "error", "failed", "rejected", "unknown", "missed", "skipped"}
DEMO_MAX_RUNNING = 8


def login(url: str, name: str, password: str) -> httpx.Client:
    r = httpx.get(f"{url}/login", params={"name": name, "password": password}, timeout=30)
    r.raise_for_status()
    return httpx.Client(base_url=url, timeout=120,
                        headers={"KODOSUMI_API_KEY": r.json()["KODOSUMI_API_KEY"]})


def make_user(admin: httpx.Client, url: str, name: str) -> httpx.Client:
    r = admin.post("/role/", json={"name": name, "email": f"{name}@example.com",
                                   "password": "secret-" + name, "active": True})
    r.raise_for_status()
    return login(url, name, "secret-" + name)


def schedule(client: httpx.Client, flow: str, at: datetime, n: int) -> str:
    r = client.post("/schedule/", json={
        "flow_url": flow, "schedule_type": "once", "timezone": "UTC",
        "run_at": at.isoformat(), "title": f"burst {n}",
        "inputs": {"message": f"burst {n}", "repeat": "1", "colour": "blue"}})
    if r.status_code != 201:
        raise SystemExit(f"creating a schedule failed: {r.status_code} {r.text[:300]}")
    return str(r.json()["id"])


class ListProbe(threading.Thread):
    """GET /schedule/ in a loop, as a user watching the list would."""

    def __init__(self, client: httpx.Client):
        super().__init__(daemon=True)
        self.client = client
        self.times: list[float] = []
        self.loads: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.client.get("/schedule/", params={"limit": 50})
            except httpx.HTTPError:
                pass
            self.times.append(time.monotonic() - started)
            self.loads.append(os.getloadavg()[0])
            self.stop.wait(0.5)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=120, help="slots of the three users")
    ap.add_argument("--max-running", type=int, default=DEMO_MAX_RUNNING,
                    help="KODO_TIMER_MAX_RUNNING (0: no cap)")
    ap.add_argument("--lead", type=float, default=45.0, help="seconds until the slot")
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args()
    # Ctrl-C or SIGTERM stops the wait (a run kodosumi keeps `running` for ever, say):
    # what is known is printed and the stack stopped
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.max_running:
        os.environ["KODO_TIMER_MAX_RUNNING"] = str(args.max_running)
    group = ProcessGroup(progress=print)
    data = Path(tempfile.mkdtemp(prefix="kt-burst-")) / "data"
    temp_dir = short_temp_dir()
    try:
        stack = start_full_stack(group, data_dir=data, temp_dir=temp_dir,
                                 ports=RayPorts.free(), panel_port=free_port(),
                                 secret=secrets.token_hex(24), progress=print)
        flow = stack.flows["quick"]
        admin = login(stack.panel_url, "admin", "admin")
        users = [make_user(admin, stack.panel_url, f"burst{i}") for i in range(3)]
        fourth = make_user(admin, stack.panel_url, "fourth")
        slot = (datetime.now(UTC) + timedelta(seconds=args.lead)).replace(microsecond=0)
        print(f"creating {args.slots} schedules at {slot:%H:%M:%S} and one 2 s later ...")
        ids = {}
        for n in range(args.slots):
            user = users[n % 3]
            ids[schedule(user, flow, slot, n)] = user
        late_slot = slot + timedelta(seconds=2)
        ids[schedule(fourth, flow, late_slot, -1)] = fourth
        probe = ListProbe(users[0])
        probe.start()
        deadline = time.monotonic() + args.timeout
        runs: dict[str, dict] = {}
        try:
            while time.monotonic() < deadline:
                time.sleep(3)
                for sid, client in ids.items():
                    if sid in runs and runs[sid]["status"] in FINAL:
                        continue
                    items = client.get(f"/schedule/{sid}/runs").json()["items"]
                    if items:
                        runs[sid] = items[0]
                done = sum(1 for r in runs.values() if r["status"] in FINAL)
                print(f"  {done}/{len(ids)} ended, load {os.getloadavg()[0]:.1f}", flush=True)
                if done == len(ids):
                    break
        except KeyboardInterrupt:
            print("stopped waiting; what is known so far:")
        probe.stop.set()
        probe.join(5)
        statuses: dict[str, int] = {}
        for r in runs.values():
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        late = [(datetime.fromisoformat(r["fired_at"]) - datetime.fromisoformat(r["slot"]))
                .total_seconds() for r in runs.values() if r.get("fired_at")]
        fourth_id = list(ids)[-1]
        fourth_run = runs.get(fourth_id, {})
        fourth_late = (datetime.fromisoformat(fourth_run["fired_at"]) - late_slot
                       ).total_seconds() if fourth_run.get("fired_at") else float("nan")
        ends = [datetime.fromisoformat(r["finished_at"]) for r in runs.values()
                if r.get("finished_at")]
        print()
        print(f"slots: {args.slots} of 3 users + 1 of a fourth; KODO_TIMER_MAX_RUNNING="
              f"{args.max_running or 'none'}")
        print(f"outcomes: {dict(sorted(statuses.items()))}")
        for sid, r in runs.items():
            if r["status"] not in ("finished", "error"):
                print(f"  {r['status']}: {r.get('reason')}")
                if r.get("fid"):  # what kodosumi itself says of it, and its spooler's log
                    try:  # kodosumi keeps it waiting for an execution without status
                        answer = ids[sid].get(f"/outputs/status/{r['fid']}", timeout=10)
                        said = f"{answer.status_code} {answer.text[:200]}"
                    except httpx.HTTPError as exc:
                        said = f"nothing ({exc.__class__.__name__})"
                    print(f"    fid {r['fid']} fired {r.get('fired_at')}: kodosumi answers "
                          f"{said}")
                    for log in (data / "logs").glob("*"):
                        hits = [line for line in log.read_text(errors="replace").splitlines()
                                if r["fid"] in line]
                        for line in hits[-5:]:
                            print(f"    {log.name}: {line[:300]}")
        if late:
            print(f"sent after the slot: p50 {statistics.median(late):.1f} s, "
                  f"max {max(late):.1f} s")
        print(f"the fourth user's slot sent {fourth_late:.2f} s after its time")
        if ends:
            print(f"last run ended {(max(ends) - slot).total_seconds():.0f} s after the slot")
        print(f"GET /schedule/ meanwhile: n={len(probe.times)} p50 {pct(probe.times, .5):.2f} s"
              f"  p95 {pct(probe.times, .95):.2f} s  max {max(probe.times, default=0):.2f} s")
        print(f"load average (1 min) max {max(probe.loads, default=0):.0f}")
    finally:
        group.stop_all()
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(data.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
