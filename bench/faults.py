"""Fault runs of issue 7: timer processes killed for real, a database restarted, the
launch target taken away. Every run ends with an audit that counts, per schedule, the
launches that reached the target and the runs the store recorded.

Real processes throughout: each timer is ``lateness.py --child ours`` (the production
``Timer`` with the real store, ``PanelLauncher`` and ``RoleTable``, claim-ahead as the
daemon's default), the launch target is ``_target.py`` under uvicorn (it answers like
kodosumi's proxy and records every launch it receives), PostgreSQL is a private cluster
this script creates on a free port and stops by its pid. The target stands in for the
panel here; the real-stack fault tests are in ``tests/integration``.

Scenarios:
* ``three-timers``: three timers on one store, 5,000 slots due within 5 s.
* ``kill9``: one timer, 2,000 slots due in the same second; ``SIGKILL`` once about a
  third have arrived, then a new timer is started.
* ``pg-restart`` (PostgreSQL only): slots due every 20 ms over 8 s; the database is
  stopped for ~3 s in the middle; the timer must log it, keep running and catch up.
* ``target-down``: the launch target is stopped for ~3 s while slots fall due; those are
  retried, then recorded ``failed`` with a reason; every other slot is launched.

Audit (all must be 0): ``duplicates`` (a slot launched twice), ``lost`` (a slot with
neither a launch nor a final record), ``unrecorded`` (a launch the store does not
account for), ``early`` (a launch before its slot).

    .venv/bin/python bench/faults.py                      # every scenario, both stores
    .venv/bin/python bench/faults.py --quick              # one line, under 60 s
    .venv/bin/python bench/faults.py --scenarios kill9 --backends postgresql
"""

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PY,
    Child,
    free_port,
    load_text,
    make_admin_db,
    reset_store,
    role_ids,
    start_child,
    start_target,
    wait_line,
)

BENCH = Path(__file__).resolve().parent
OWNERS = 100
# what a launched slot may be recorded as; "unknown": claimed, then the timer was killed
LAUNCHED = {"launched", "running", "finished", "error", "unknown"}
FINAL_NOT_LAUNCHED = {"missed", "failed", "skipped", "rejected", "unknown"}
# a slot is settled when it has one of these, or "unknown" from a timer that was killed
SETTLED = (LAUNCHED | FINAL_NOT_LAUNCHED) - {"unknown"}


# ---- a private PostgreSQL cluster ---------------------------------------------------

def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("no PostgreSQL server binaries (Debian: apt-get install postgresql)")


class PrivateCluster:
    """A PostgreSQL cluster of our own in a temp dir, on a free port. As root the server
    runs as the ``postgres`` user (PostgreSQL refuses root). Stopped by its pid."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        # a temp dir of its own: the server user must be able to reach it
        self.root = Path(tempfile.mkdtemp(prefix="kt-pg-"))
        self.root.chmod(0o755)
        self.dir = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else os.environ.get("USER", "postgres")
        self.pid: int | None = None

    def _run(self, *argv: str) -> None:
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_root else []) + list(argv)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> "PrivateCluster":
        self.dir.mkdir()
        if self.as_root:
            shutil.chown(self.dir, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.dir), "-A", "trust", "-U",
                  self.user, "--no-sync")
        return self

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-l", str(self.dir / "log"),
                  "-w", "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off", "start")
        self.pid = int((self.dir / "postmaster.pid").read_text().split()[0])

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT to the postmaster): sessions are cut, as in a crash of
        the network or a restart by an operator."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# ---- one run ------------------------------------------------------------------------

@dataclass
class Audit:
    scenario: str
    backend: str
    slots: int
    launches: int = 0
    duplicates: int = 0
    lost: int = 0
    unrecorded: int = 0
    early: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)  # of runs not launched
    faults: int = 0  # kills, restarts, outages injected

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.lost or self.unrecorded or self.early)

    def line(self) -> str:
        return (f"{self.backend} {self.scenario}: {self.slots:,} slots, {self.launches:,} "
                f"launches, faults {self.faults}; duplicates {self.duplicates}, lost "
                f"{self.lost}, unrecorded {self.unrecorded}, early {self.early}; runs "
                f"{dict(sorted(self.statuses.items()))}"
                + (f"; reasons {self.reasons}" if self.reasons else ""))


class Run:
    """The processes of one scenario: target, timers, schedules; stops what it started."""

    def __init__(self, workdir: Path, db: str, admin_db: str, target: Child, url: str):
        self.workdir, self.db, self.admin_db = workdir, db, admin_db
        self.target, self.url = target, url
        self.timers: list[Child] = []
        self.killed: set[str] = set()  # timer ids of timers killed on purpose
        self.slot_of: dict[str, float] = {}
        self.records: list[Any] = []  # launches a stopped target had received

    def start_timer(self) -> Child:
        argv = [PY, str(BENCH / "lateness.py"), "--child", "ours", "--db", self.db,
                "--admin-db", self.admin_db, "--target", self.url,
                "--workdir", str(self.workdir)]
        child = start_child(f"timer{len(self.timers)}", argv, self.workdir)
        self.timers.append(child)
        wait_line(child, "ready", timeout=60)
        return child

    def load(self, slots: list[float]) -> None:
        from lateness import load_ours  # the same bulk load as the benchmark

        owners = role_ids(OWNERS)
        base = len(self.slot_of)
        items = []
        for i, slot in enumerate(slots):
            sid = f"f{base + i:07d}"
            self.slot_of[sid] = slot
            items.append((sid, owners[i % OWNERS], datetime.fromtimestamp(slot, UTC)))
        asyncio.run(load_ours(self.db, items))
        for child in self.timers:
            if child.alive():
                os.kill(child.pid, signal.SIGUSR1)  # the panel's wake-up after a create

    def arrivals(self) -> int:
        return int(httpx.get(f"{self.url}/_count", timeout=10).json()["count"])

    def wait_arrivals(self, count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            seen = self.arrivals()
            if seen >= count:
                break
            time.sleep(0.05)
        return seen

    def kill(self, child: Child) -> None:
        self.killed.add(f"{socket.gethostname()}:{child.pid}")
        child.popen.send_signal(signal.SIGKILL)  # no cleanup, no last words
        child.popen.wait(10)

    def wait_settled(self, timeout: float) -> int:
        """Until every slot has its outcome recorded (a claimed slot is ``unknown`` while
        its launch is attempted); returns how many were still open at the deadline."""
        deadline = time.monotonic() + timeout
        pending = len(self.slot_of)
        while time.monotonic() < deadline:
            recorded = asyncio.run(_runs(self.db))
            pending = sum(1 for sid in self.slot_of if not any(
                status in SETTLED or (status == "unknown" and timer in self.killed)
                for status, timer, _ in recorded.get(sid, [])))
            if not pending:
                break
            time.sleep(0.2)
        return pending

    def stop_target(self) -> None:
        """Stop the target; what it received up to its last answer is kept."""
        self.target.stop()
        self.records += json.loads((self.workdir / "target-records.json").read_text())

    def stop(self) -> None:
        for child in self.timers:
            child.stop()

    def audit(self, scenario: str, backend: str, faults: int) -> Audit:
        time.sleep(1.0)  # a late duplicate would arrive here
        records = self.records + httpx.get(f"{self.url}/_results",
                                           timeout=60).json()["records"]
        recorded = asyncio.run(_runs(self.db))
        out = Audit(scenario, backend, len(self.slot_of), faults=faults)
        arrived = Counter(sid for _, sid, _ in records if sid in self.slot_of)
        out.launches = sum(arrived.values())
        out.duplicates = sum(n - 1 for n in arrived.values() if n > 1)
        out.early = sum(1 for ns, sid, _ in records
                        if sid in self.slot_of and ns / 1e9 < self.slot_of[sid])
        for sid in self.slot_of:
            runs = recorded.get(sid, [])
            statuses = [status for status, _, _ in runs]
            for status, _, reason in runs:
                out.statuses[status] = out.statuses.get(status, 0) + 1
                if status not in LAUNCHED and reason:
                    out.reasons[reason] = out.reasons.get(reason, 0) + 1
            if arrived[sid] and not any(s in LAUNCHED for s in statuses):
                out.unrecorded += 1
            elif not arrived[sid] and not any(s in FINAL_NOT_LAUNCHED for s in statuses):
                out.lost += 1
        return out


async def _runs(db: str) -> dict[str, list[tuple[str, str | None, str | None]]]:
    """Every slot's run records: (status, the timer that claimed it, reason)."""
    from sqlalchemy import select

    from kodosumi_timer.store import RunRow, open_store

    store = await open_store(db, migrate_schema=False)
    try:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(
                select(RunRow.schedule_id, RunRow.status, RunRow.timer_id,
                       RunRow.reason))).all()
    finally:
        await store.close()
    out: dict[str, list[tuple[str, str | None, str | None]]] = {}
    for sid, status, timer, reason in rows:
        out.setdefault(sid, []).append((status, timer, reason))
    return out


# ---- scenarios ----------------------------------------------------------------------

def three_timers(run: Run, slots: int = 5000) -> int:
    for _ in range(3):
        run.start_timer()
    t0 = math.ceil(time.time() + 2 + slots / 2500)
    run.load([t0 + 5.0 * i / slots for i in range(slots)])
    time.sleep(max(0.0, t0 + 5 - time.time()))
    run.wait_settled(60)
    return 0


def kill9(run: Run, slots: int = 2000) -> int:
    first = run.start_timer()
    t0 = math.ceil(time.time() + 2 + slots / 2500)
    run.load([float(t0)] * slots)
    run.wait_arrivals(slots // 3, timeout=t0 - time.time() + 60)
    run.kill(first)
    run.start_timer()  # its first step finds what the killed one left
    run.wait_settled(60)
    return 1


def pg_restart(run: Run, cluster: PrivateCluster, slots: int = 400) -> int:
    timer = run.start_timer()
    t0 = math.ceil(time.time() + 2)
    run.load([t0 + 8.0 * i / slots for i in range(slots)])
    time.sleep(max(0.0, t0 + 2.5 - time.time()))
    cluster.stop()
    time.sleep(3.0)  # slots keep falling due while the database is away
    cluster.start()
    time.sleep(max(0.0, t0 + 8 - time.time()))
    run.wait_settled(60)
    if not timer.alive():
        raise RuntimeError("the timer died with the database:\n" + timer.tail())
    log = (run.workdir / "ours-app.log").read_text(errors="replace")
    if "timer step failed" not in log and "recording launch results failed" not in log:
        raise RuntimeError("the timer did not log the database outage")
    return 1


def target_down(run: Run, slots: int = 400) -> int:
    run.start_timer()
    t0 = math.ceil(time.time() + 2)
    run.load([t0 + 8.0 * i / slots for i in range(slots)])
    time.sleep(max(0.0, t0 + 2.5 - time.time()))
    port = int(run.url.rsplit(":", 1)[1])
    run.stop_target()
    time.sleep(3.0)
    run.target, _ = start_target(run.workdir, env=target_env(run.workdir), port=port,
                                 name="target2")
    run.wait_settled(60)
    return 1


def target_env(workdir: Path) -> dict[str, str]:
    return {"TARGET_RECORDS": str(workdir / "target-records.json")}


SCENARIOS = ("three-timers", "kill9", "pg-restart", "target-down")


def run_scenario(scenario: str, backend: str, slots: int | None = None,
                 workdir: Path | None = None) -> Audit:
    """One scenario on a fresh store and target; returns its audit. The PostgreSQL
    store is a private cluster made for this run."""
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="kt-faults-")) if workdir is None else workdir
    cluster = PrivateCluster().init() if backend == "postgresql" else None
    target: Child | None = None
    run: Run | None = None
    try:
        if cluster is not None:
            cluster.start()
            db = cluster.url
        else:
            db = f"sqlite+aiosqlite:///{root / 'schedule.db'}"
        asyncio.run(reset_store(db))
        admin_db = asyncio.run(make_admin_db(root / "admin.db", role_ids(OWNERS)))
        target, url = start_target(root, env=target_env(root))
        run = Run(root, db, admin_db, target, url)
        kwargs: dict[str, Any] = {} if slots is None else {"slots": slots}
        if scenario == "three-timers":
            faults = three_timers(run, **kwargs)
        elif scenario == "kill9":
            faults = kill9(run, **kwargs)
        elif scenario == "pg-restart":
            if cluster is None:
                raise ValueError("pg-restart needs the postgresql backend")
            faults = pg_restart(run, cluster, **kwargs)
        elif scenario == "target-down":
            faults = target_down(run, **kwargs)
        else:
            raise ValueError(f"unknown scenario {scenario}")
        run.stop()
        return run.audit(scenario, backend, faults)
    finally:
        if run is not None:
            run.stop()
            run.target.stop()
        elif target is not None:
            target.stop()
        if cluster is not None:
            cluster.remove()
        if own:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one line, under 60 s")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    cells = [(s, b) for s in args.scenarios.split(",") for b in args.backends.split(",")
             if not (s == "pg-restart" and b != "postgresql")]
    if args.quick:
        cells = [("kill9", "sqlite")]
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {load_text()}", flush=True)
    audits = []
    for scenario, backend in cells:
        started = time.monotonic()
        audit = run_scenario(scenario, backend, slots=500 if args.quick else None)
        audits.append(audit)
        if not args.quick:
            print(f"{audit.line()} [{time.monotonic() - started:.0f} s]", flush=True)
    bad = [a for a in audits if not a.clean]
    if args.quick:
        a = audits[0]
        print(f"faults {a.line()}; {load_text()}")
    else:
        total = sum(a.slots for a in audits)
        print(f"\n{len(audits)} runs, {total:,} slots, "
              f"{sum(a.faults for a in audits)} faults injected; duplicates "
              f"{sum(a.duplicates for a in audits)}, lost {sum(a.lost for a in audits)}, "
              f"unrecorded {sum(a.unrecorded for a in audits)}, early "
              f"{sum(a.early for a in audits)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
