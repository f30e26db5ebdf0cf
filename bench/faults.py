"""Fault runs of issues 7 and 16: timer processes killed or frozen for real, a database
restarted, the launch target taken away or misbehaving. Every run ends with an audit
that counts, per slot, the launches that reached the target and the runs the store
recorded.

Real processes throughout: each timer is this script's ``--child`` (the production
``Timer`` with the real store, ``PanelLauncher`` and ``RoleTable``, configured from the
``KODO_TIMER_*`` environment as the daemon is, with a lease of 5 s so that a dead or
frozen timer's runs are taken over within seconds); the launch target is ``_target.py``
under uvicorn (it answers like kodosumi's panel, keeps executions as kodosumi does, and
records every launch request it receives); PostgreSQL is a private cluster this script
creates on a free port and stops by its pid. The target starts an execution at once, so
the timer's launcher may say "kodosumi shows none" 3 s after a send (``FAULTS_SETTLE``)
instead of the 65 s kodosumi's panel needs. The real-stack fault tests are in
``tests/integration``.

Scenarios:
* ``three-timers``: three timers on one store, 5,000 slots due within 5 s; no timer may
  log a deadlock.
* ``kill9``: one timer, 2,000 slots due in the same second; ``SIGKILL`` once about a
  third have arrived, then a new timer is started: it takes over the runs the dead one
  had not sent and asks the target about those it was sending.
* ``pg-restart`` (PostgreSQL only): slots due every 20 ms over 8 s; the database is
  stopped for ~3 s in the middle; the timer must log it, keep running and catch up.
* ``target-down``: the launch target is stopped for ~3 s while slots fall due; those are
  retried, then recorded ``failed`` with a reason; every other slot is launched.
* ``accept-5xx``: 400 slots over 4 s; the target starts the execution, then answers 500
  or 502 to 20 % of the launches. The timer asks the target and records the execution
  it finds; nothing is sent twice.
* ``hang``: 40 slots of one flow whose launches hang for 40 s (the timer gives up after
  its launch timeout, 10 s here, and asks the target), then 200 slots of another flow
  due over the next 10 s: those must arrive within 1 s of their slot.
* ``sigstop``: a timer claims 10 slots ahead and is frozen (``SIGSTOP``) past its lease;
  a second timer takes them over and launches them; resumed (``SIGCONT``), the frozen
  timer sends nothing.
* ``sigstop-skip``: the same with ``catchup: skip`` (window 3 s) and no second timer:
  resumed 8 s later, the timer records the slots ``missed`` instead of launching them.

Audit (all must be 0): ``duplicates`` (a slot launched twice), ``lost`` (a slot without
a final run status: ``queued``/``launching`` are not final), ``unrecorded`` (a launch
the store records as not launched), ``wrong_fid`` (a run recorded launched with an
execution id the target did not give that slot), ``early`` (a launch before its slot),
``deadlocks`` (lines in the timers' logs). ``unknown`` (kodosumi cannot tell) is counted.

    .venv/bin/python bench/faults.py                      # every scenario, both stores
    .venv/bin/python bench/faults.py --quick              # one line, under 60 s
    .venv/bin/python bench/faults.py --scenarios kill9 --backends postgresql
    .venv/bin/python bench/faults.py --scenarios sigstop-skip --freeze 70 --window 60
"""

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PY,
    SECRET,
    Child,
    free_port,
    load_text,
    make_admin_db,
    pct,
    reset_store,
    role_ids,
    schedule_values,
    start_child,
    start_target,
    wait_line,
)

BENCH = Path(__file__).resolve().parent
OWNERS = 100
# a flow of its own for the launches that hang (the target's fault rules match a prefix)
HANG_FLOW = "/-/127.0.0.1/8001/hang/-/"
# run statuses: not final while a timer holds the run; final ones say whether the slot
# reached kodosumi, except "unknown" (kodosumi itself cannot tell)
OPEN = {"queued", "launching"}
LAUNCHED = {"launched", "running", "finished", "error"}
NOT_LAUNCHED = {"missed", "failed", "skipped", "rejected"}
# the timer processes: a short lease, so that a dead or frozen timer's runs are taken
# over within seconds; a run being sent is held for twice the launch timeout + 15 s
# (35 s here); "absent" 3 s after a send (the target starts executions at once)
TIMER_ENV = {"KODO_TIMER_LEASE": "5", "KODO_TIMER_LAUNCH_TIMEOUT": "10",
             "FAULTS_SETTLE": "3"}


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


# ---- the timer process ----------------------------------------------------------------

async def child_timer(db: str, admin_db: str, target: str, workdir: str, name: str) -> None:
    """One timer process, configured by the ``KODO_TIMER_*`` settings as the daemon's
    timer is (without Ray and the system schedules); prints ``ready <timer id>``."""
    import logging

    from kodosumi_timer.bridge import PanelLauncher, RoleTable
    from kodosumi_timer.config import get_settings
    from kodosumi_timer.daemon import timer_config
    from kodosumi_timer.store import open_store
    from kodosumi_timer.timer import LocalWaker, Timer

    handler = logging.FileHandler(Path(workdir) / f"{name}-app.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s - %(message)s"))
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    store = await open_store(db)
    launcher = PanelLauncher(target, secret=SECRET, timeout=settings.TIMER_LAUNCH_TIMEOUT,
                             settle=float(os.environ.get("FAULTS_SETTLE", "65")))
    roles = RoleTable(admin_db)
    waker = LocalWaker()
    timer = Timer(store, launcher, roles, waker, timer_config(settings))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, timer.stop)
    loop.add_signal_handler(signal.SIGUSR1, lambda: loop.create_task(waker.wake()))
    print(f"ready {timer.timer_id}", flush=True)
    try:
        await timer.run()
    finally:
        await launcher.close()
        await roles.close()
        await store.close()


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
    wrong_fid: int = 0
    early: int = 0
    deadlocks: int = 0
    unknown: int = 0  # slots kodosumi could not tell about
    reconciled: int = 0  # runs recorded launched after asking kodosumi
    by_killed: int = 0  # runs a killed timer recorded before it died
    taken_over: dict[str, int] = field(default_factory=dict)  # by status, from the logs
    statuses: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    late: list[float] = field(default_factory=list)  # of the measured slots, seconds
    faults: int = 0  # kills, freezes, restarts, outages injected

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.lost or self.unrecorded or self.wrong_fid
                    or self.early or self.deadlocks)

    def line(self) -> str:
        late = (f"; measured {len(self.late)} late p50 {pct(self.late, 50) * 1000:.0f} ms, "
                f"max {max(self.late) * 1000:.0f} ms") if self.late else ""
        return (f"{self.backend} {self.scenario}: {self.slots:,} slots, {self.launches:,} "
                f"launches, faults {self.faults}; duplicates {self.duplicates}, lost "
                f"{self.lost}, unrecorded {self.unrecorded}, wrong fid {self.wrong_fid}, "
                f"early {self.early}, deadlocks {self.deadlocks}; unknown {self.unknown}, "
                f"reconciled {self.reconciled}, by killed {self.by_killed}, taken over "
                f"{self.taken_over}{late}; runs "
                f"{dict(sorted(self.statuses.items()))}"
                + (f"; reasons {self.reasons}" if self.reasons else ""))


# the timer's log line when it takes over a run whose lease expired
TAKEN_OVER = re.compile(r", (queued|launching)\) taken over from timer ")
RunRecord = tuple[str, str | None, str | None, str | None]  # status, timer, reason, fid


class Run:
    """The processes of one scenario: target, timers, schedules; stops what it started."""

    def __init__(self, workdir: Path, db: str, admin_db: str, target: Child, url: str):
        self.workdir, self.db, self.admin_db = workdir, db, admin_db
        self.target, self.url = target, url
        self.timers: list[Child] = []
        self.timer_ids: dict[str, str] = {}  # child name -> the timer's id
        self.killed: set[str] = set()  # ids of timers killed on purpose
        self.slot_of: dict[str, float] = {}
        self.measured: list[str] = []  # slots whose lateness is reported
        self.earlier: list[dict[str, Any]] = []  # launches a stopped target had received

    def start_timer(self, env: dict[str, str] | None = None) -> Child:
        return self.start_timers(1, env)[0]

    def start_timers(self, count: int, env: dict[str, str] | None = None) -> list[Child]:
        """Start ``count`` timer processes at once; returns them once all are ready."""
        started = []
        for _ in range(count):
            name = f"timer{len(self.timers)}"
            argv = [PY, str(Path(__file__).resolve()), "--child", name, "--db", self.db,
                    "--admin-db", self.admin_db, "--target", self.url,
                    "--workdir", str(self.workdir)]
            child = start_child(name, argv, self.workdir, env={**TIMER_ENV, **(env or {})})
            self.timers.append(child)
            started.append(child)
        for child in started:
            self.timer_ids[child.name] = wait_line(child, "ready", timeout=90).split()[1]
        return started

    def load(self, slots: list[float], **over: Any) -> list[str]:
        """Once schedules, one per slot, owners in turn; ``over``: schedule columns."""
        owners = role_ids(OWNERS)
        base = len(self.slot_of)
        items = []
        for i, slot in enumerate(slots):
            sid = f"f{base + i:07d}"
            self.slot_of[sid] = slot
            items.append((sid, owners[i % OWNERS], datetime.fromtimestamp(slot, UTC)))
        asyncio.run(_load(self.db, items, over))
        for child in self.timers:
            if child.alive():
                os.kill(child.pid, signal.SIGUSR1)  # the panel's wake-up after a create
        return [sid for sid, _, _ in items]

    def faults(self, config: dict[str, Any]) -> None:
        httpx.post(f"{self.url}/_faults", json=config, timeout=10).raise_for_status()

    def launches(self) -> list[dict[str, Any]]:
        """Every launch request the target received (this one and a stopped one)."""
        answer = httpx.get(f"{self.url}/_launches", timeout=60)
        return self.earlier + list(answer.json())

    def wait_accepted(self, count: int, timeout: float,
                      sids: list[str] | None = None) -> int:
        """Until ``count`` launches (of ``sids``, or any slot) started an execution."""
        wanted = set(sids or self.slot_of)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            seen = sum(1 for item in self.launches()
                       if item.get("fid") and item.get("sid") in wanted)
            if seen >= count:
                break
            time.sleep(0.1)
        return seen

    def kill(self, child: Child) -> None:
        self.killed.add(self.timer_ids[child.name])
        child.popen.send_signal(signal.SIGKILL)  # no cleanup, no last words
        child.popen.wait(10)

    def runs(self) -> dict[str, list[RunRecord]]:
        return asyncio.run(_runs(self.db))

    def wait_runs(self, done: Any, timeout: float) -> bool:
        """Until ``done(runs)`` holds for the store's runs; False at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.runs()):
                return True
            time.sleep(0.1)
        return False

    def pending(self, runs: dict[str, list[RunRecord]]) -> int:
        """Slots without a final status: no run yet, or one a timer still holds."""
        return sum(1 for sid in self.slot_of
                   if not runs.get(sid) or any(r[0] in OPEN for r in runs[sid]))

    def wait_settled(self, timeout: float) -> int:
        """Until every slot's run has a final status; returns how many had not."""
        left = len(self.slot_of)

        def settled(runs: dict[str, list[RunRecord]]) -> bool:
            nonlocal left
            left = self.pending(runs)
            return not left

        self.wait_runs(settled, timeout)
        return left

    def wait_log(self, child: Child, text: str, count: int, timeout: float) -> int:
        """Until the child's log has ``count`` lines with ``text``; returns how many."""
        path = self.workdir / f"{child.name}-app.log"
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            seen = path.read_text(errors="replace").count(text) if path.exists() else 0
            if seen >= count:
                break
            time.sleep(0.1)
        return seen

    def stop_target(self) -> None:
        """Stop the target; what it received up to its last answer is kept."""
        self.target.stop()
        self.earlier += json.loads((self.workdir / "target-launches.json").read_text())

    def stop(self) -> None:
        for child in self.timers:
            child.stop()

    def audit(self, scenario: str, backend: str, faults: int) -> Audit:
        time.sleep(1.0)  # a late duplicate would arrive here
        fids: dict[str, list[tuple[int, str]]] = {}  # sid -> (arrival ns, fid) accepted
        for item in self.launches():
            if item.get("fid") and item.get("sid") in self.slot_of:
                fids.setdefault(item["sid"], []).append((item["arrived_ns"], item["fid"]))
        recorded = self.runs()
        out = Audit(scenario, backend, len(self.slot_of), faults=faults)
        out.launches = sum(len(v) for v in fids.values())
        out.duplicates = sum(len(v) - 1 for v in fids.values())
        out.early = sum(1 for sid, got in fids.items() for ns, _ in got
                        if ns / 1e9 < self.slot_of[sid])
        out.late = [min(ns for ns, _ in fids[sid]) / 1e9 - self.slot_of[sid]
                    for sid in self.measured if sid in fids]
        for sid in self.slot_of:
            runs = recorded.get(sid, [])
            for status, timer, reason, _ in runs:
                out.statuses[status] = out.statuses.get(status, 0) + 1
                if reason:
                    gist = re.sub(r"\d+", "N", reason.split(":")[0])
                    out.reasons[gist] = out.reasons.get(gist, 0) + 1
                out.by_killed += timer in self.killed
                out.reconciled += status in LAUNCHED and reason is not None
            if not runs or any(r[0] in OPEN for r in runs):
                out.lost += 1
                continue
            given = {fid for _, fid in fids.get(sid, [])}
            out.wrong_fid += sum(1 for r in runs if r[0] in LAUNCHED and r[3] not in given)
            if any(r[0] == "unknown" for r in runs):
                out.unknown += 1
            elif given and not any(r[0] in LAUNCHED for r in runs):
                out.unrecorded += 1
        for path in self.workdir.glob("timer*.log"):
            text = path.read_text(errors="replace")
            out.deadlocks += text.count("DeadlockDetected")
            for status in TAKEN_OVER.findall(text):
                out.taken_over[status] = out.taken_over.get(status, 0) + 1
        return out


async def _load(db: str, items: list[tuple[str, str, datetime]], over: dict[str, Any]) -> None:
    from sqlalchemy import insert

    from kodosumi_timer.store import ScheduleRow, open_store

    store = await open_store(db, migrate_schema=False)
    now = datetime.now(UTC)
    rows = [schedule_values(sid, owner, slot, now, **over) for sid, owner, slot in items]
    try:
        async with store.engine.begin() as conn:
            for start in range(0, len(rows), 2000):
                await conn.execute(insert(ScheduleRow.__table__), rows[start:start + 2000])
    finally:
        await store.close()


async def _runs(db: str) -> dict[str, list[RunRecord]]:
    """Every slot's run records: (status, the timer that holds or recorded it, reason,
    fid)."""
    from sqlalchemy import select

    from kodosumi_timer.store import RunRow, open_store

    store = await open_store(db, migrate_schema=False)
    try:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(
                select(RunRow.schedule_id, RunRow.status, RunRow.timer_id,
                       RunRow.reason, RunRow.fid))).all()
    finally:
        await store.close()
    out: dict[str, list[RunRecord]] = {}
    for sid, status, timer, reason, fid in rows:
        out.setdefault(sid, []).append((status, timer, reason, fid))
    return out


# ---- scenarios ----------------------------------------------------------------------

def three_timers(run: Run, slots: int = 5000) -> int:
    run.start_timers(3)
    t0 = math.ceil(time.time() + 2 + slots / 2500)
    run.load([t0 + 5.0 * i / slots for i in range(slots)])
    time.sleep(max(0.0, t0 + 5 - time.time()))
    # a poll that ends as soon as all are settled: on a loaded CI machine 5,000 launches
    # and their follow-up took longer than 60 s (1,355 still queued once)
    run.wait_settled(240)
    return 0


def kill9(run: Run, slots: int = 2000) -> int:
    first = run.start_timer()
    t0 = math.ceil(time.time() + 2 + slots / 2500)
    run.load([float(t0)] * slots)
    run.wait_accepted(slots // 3, timeout=t0 - time.time() + 60)
    run.kill(first)
    run.start_timer()  # takes over the dead one's runs once their lease ends
    run.wait_settled(90)
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
    log = (run.workdir / f"{timer.name}-app.log").read_text(errors="replace")
    if "timer step failed" not in log and "recording launch results failed" not in log \
            and "not checked before sending" not in log:
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


def accept_5xx(run: Run, slots: int = 400) -> int:
    """The target starts the execution, then answers 500/502 to a fifth of launches."""
    run.faults({"seed": 7, "rules": [{"action": "error_after_accept", "fraction": 0.2,
                                      "status": [500, 502]}]})
    run.start_timer()
    t0 = math.ceil(time.time() + 2)
    run.load([t0 + 4.0 * i / slots for i in range(slots)])
    time.sleep(max(0.0, t0 + 4 - time.time()))
    run.wait_settled(90)
    return 1


def hang(run: Run, slots: int = 200, hung: int = 40, seconds: float = 40.0,
         spread: float = 10.0) -> int:
    """Launches of one flow hang; the other flow's slots, due from 1 s later over
    ``spread`` seconds, are measured. Once they have arrived the target answers again
    (the hanging requests run out at the timer's launch timeout and are reconciled)."""
    run.faults({"rules": [{"action": "hang", "prefix": HANG_FLOW, "seconds": seconds}]})
    run.start_timer()
    t0 = math.ceil(time.time() + 6)
    run.load([float(t0)] * hung, flow_url=HANG_FLOW)
    run.measured = run.load([t0 + 1.0 + spread * i / slots for i in range(slots)])
    if time.time() > t0 - 1:
        raise RuntimeError("the slots were loaded too late to be claimed ahead")
    run.wait_accepted(slots, timeout=t0 + spread + 30 - time.time(), sids=run.measured)
    run.faults({})
    run.wait_settled(90)
    return 1


def sigstop(run: Run, slots: int = 10) -> int:
    """A timer holding claims is frozen past its lease; a second one takes them over."""
    frozen, since = _claim_and_freeze(run, slots)
    run.start_timer()
    run.wait_settled(60)
    time.sleep(max(0.0, since + 6.0 - time.monotonic()))  # frozen longer than its lease
    os.kill(frozen.pid, signal.SIGCONT)
    sent_here = run.wait_log(frozen, "held by another timer now; not sent here", slots, 30)
    if sent_here != slots:
        raise RuntimeError(f"the resumed timer said {sent_here} of {slots} runs were "
                           f"taken over:\n{frozen.tail()}")
    return 1


def sigstop_skip(run: Run, slots: int = 10, freeze: float = 8.0, window: int = 3) -> int:
    """A timer holding claims of ``catchup: skip`` slots is frozen until they are
    beyond their ``catchup_window``; no other timer runs. Resumed, it must record them
    ``missed``."""
    frozen, since = _claim_and_freeze(run, slots, catchup="skip", catchup_window=window)
    time.sleep(max(0.0, since + freeze - time.monotonic()))  # the fault's duration
    os.kill(frozen.pid, signal.SIGCONT)
    run.wait_settled(60)
    return 1


def _claim_and_freeze(run: Run, slots: int, **over: Any) -> tuple[Child, float]:
    """A timer claiming 3 s ahead; frozen (SIGSTOP) once it holds every slot, before
    their instant. Returns it and when it was frozen (monotonic)."""
    first = run.start_timer(env={"KODO_TIMER_CLAIM_AHEAD": "3"})
    holder = run.timer_ids[first.name]
    t0 = math.ceil(time.time() + 5)
    sids = run.load([float(t0)] * slots, **over)
    if not run.wait_runs(lambda runs: all(
            any(r[:2] == ("queued", holder) for r in runs.get(sid, [])) for sid in sids),
            timeout=t0 - time.time()):
        raise RuntimeError(f"the timer did not claim the slots ahead:\n{first.tail()}")
    os.kill(first.pid, signal.SIGSTOP)
    since = time.monotonic()
    if time.time() >= t0:
        raise RuntimeError("frozen too late: the slots were due")
    return first, since


def target_env(workdir: Path) -> dict[str, str]:
    return {"TARGET_LAUNCHES": str(workdir / "target-launches.json")}


SCENARIOS = ("three-timers", "kill9", "pg-restart", "target-down", "accept-5xx", "hang",
             "sigstop", "sigstop-skip")
PLAIN = {"three-timers": three_timers, "kill9": kill9, "target-down": target_down,
         "accept-5xx": accept_5xx, "hang": hang, "sigstop": sigstop,
         "sigstop-skip": sigstop_skip}


def run_scenario(scenario: str, backend: str, workdir: Path | None = None,
                 **kwargs: Any) -> Audit:
    """One scenario on a fresh store and target; returns its audit. The PostgreSQL
    store is a private cluster made for this run. ``kwargs``: the scenario's own
    (``slots``, ``freeze``, ...)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario}")
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
        if scenario == "pg-restart":
            if cluster is None:
                raise ValueError("pg-restart needs the postgresql backend")
            faults = pg_restart(run, cluster, **kwargs)
        else:
            faults = PLAIN[scenario](run, **kwargs)
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
    parser.add_argument("--slots", type=int, help="slots per scenario (its own default)")
    parser.add_argument("--freeze", type=float, help="sigstop-skip: seconds frozen (8)")
    parser.add_argument("--window", type=int, help="sigstop-skip: catchup_window (3)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a timer process, named so
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--admin-db", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child_timer(args.db, args.admin_db, args.target, args.workdir,
                                args.child))
        return
    cells = [(s, b) for s in args.scenarios.split(",") for b in args.backends.split(",")
             if not (s == "pg-restart" and b != "postgresql")]
    kwargs = {k: v for k, v in (("slots", args.slots), ("freeze", args.freeze),
                                ("window", args.window)) if v is not None}
    if args.quick:
        cells, kwargs = [("kill9", "sqlite")], {"slots": 500}
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {load_text()}", flush=True)
    audits = []
    for scenario, backend in cells:
        started = time.monotonic()
        own = {k: v for k, v in kwargs.items()
               if k == "slots" or scenario == "sigstop-skip"}
        audit = run_scenario(scenario, backend, **own)
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
              f"unrecorded {sum(a.unrecorded for a in audits)}, wrong fid "
              f"{sum(a.wrong_fid for a in audits)}, early {sum(a.early for a in audits)}, "
              f"deadlocks {sum(a.deadlocks for a in audits)}; unknown "
              f"{sum(a.unknown for a in audits)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
