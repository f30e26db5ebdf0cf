"""Helpers shared by the benchmarks: child processes stopped by pid, free ports, the
benchmark PostgreSQL database, kodosumi's role table, percentiles, the machine line.

Nothing here runs at import time except setting a benchmark secret for kodosumi's JWT
code when none is given, so that parent and child processes sign and check alike.
"""

import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable

os.environ.setdefault("KODO_SECRET_KEY", "kodosumi-timer-benchmark-secret")
SECRET = os.environ["KODO_SECRET_KEY"]

# a database of its own, never the test suite's kodo_timer_test:
#   su postgres -c "createdb -O kodo_timer kodo_timer_bench"
PG_URL = os.environ.get(
    "KODO_BENCH_PG", "postgresql+asyncpg://kodo_timer:kodo_timer@127.0.0.1:5432/kodo_timer_bench")
FLOW = "/-/127.0.0.1/8001/bench/-/"


def sync_url(url: str) -> str:
    """The same database for a synchronous SQLAlchemy engine (APScheduler 3's job store)."""
    if url.startswith("sqlite+aiosqlite://"):
        return "sqlite://" + url[len("sqlite+aiosqlite://"):]
    if url.startswith("postgresql+asyncpg://"):
        return "postgresql+psycopg://" + url[len("postgresql+asyncpg://"):]
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def cpu_pressure() -> float | None:
    """Share of the last 60 s in which some runnable task waited for a CPU (Linux PSI)."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(item.split("=") for item in first.split()[1:])
    return float(fields["avg60"])


def load_text() -> str:
    one, five, fifteen = load()
    stalled = cpu_pressure()
    return (f"load {one:.2f} / {five:.2f} / {fifteen:.2f}"
            + (f", CPU pressure {stalled:.0f} %" if stalled is not None else ""))


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def pct(values: Sequence[float], q: float) -> float:
    """Percentile ``q`` (0..100) with linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(theirs: float, ours: float) -> str:
    if ours != ours or theirs != theirs or ours <= 0:
        return "n/a"
    return f"{theirs / ours:.1f}x"


@dataclass
class Child:
    """A process this benchmark started; stopped by its pid only."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_child(name: str, argv: list[str], workdir: Path,
                env: dict[str, str] | None = None) -> Child:
    log = workdir / f"{name}.log"
    out = log.open("wb")
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(BENCH), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    full_env.update(env or {})
    popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full_env,
                             cwd=str(workdir))
    out.close()
    return Child(name, popen, log)


def wait_http(url: str, child: Child, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not answer {url} within {timeout} s:\n{child.tail()}")


def wait_line(child: Child, marker: str, timeout: float = 60.0) -> str:
    """Wait until the child's log has a line starting with ``marker``; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in child.log.read_text(errors="replace").splitlines():
            if line.startswith(marker):
                return line
        if not child.alive():
            raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} printed no '{marker}' in {timeout} s:\n{child.tail()}")


def start_target(workdir: Path, env: dict[str, str] | None = None,
                 port: int | None = None, name: str = "target") -> tuple[Child, str]:
    """The launch target (``_target.py``) under uvicorn in its own process."""
    port = port or free_port()
    child = start_child(name, [
        PY, "-m", "uvicorn", "_target:app", "--app-dir", str(BENCH), "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log"], workdir, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/_count", child)
    return child, url


# ---- kodosumi's role table (the timer's owner check reads it) ------------------------

def role_ids(count: int) -> list[str]:
    """Deterministic role ids, shown with dashes as the panel and our store keep them."""
    return [str(uuid.UUID(int=0xB0C4 << 96 | i)) for i in range(count)]


async def make_admin_db(path: Path, owners: Sequence[str]) -> str:
    """A kodosumi ``admin.db`` whose ``roles`` table has every owner, active."""
    from kodosumi.dtypes import Role
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import create_async_engine

    url = f"sqlite+aiosqlite:///{path}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Role.metadata.create_all, tables=[Role.__table__])
        rows = [{"id": uuid.UUID(o), "name": f"user{i}", "email": f"user{i}@example.com",
                 "active": True, "password": "x", "operator": False}
                for i, o in enumerate(owners)]
        for start in range(0, len(rows), 5000):
            await conn.execute(insert(Role), rows[start:start + 5000])
    await engine.dispose()
    return url


async def reset_store(url: str) -> None:
    """Empty our tables (schema by our migrations) and APScheduler's job table."""
    from sqlalchemy import text

    from kodosumi_timer.store import open_store

    store = await open_store(url)
    async with store.engine.begin() as conn:
        for table in ("schedule_run", "schedule"):
            await conn.execute(text(f"DELETE FROM {table}"))
        await conn.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))
    if store.dialect == "postgresql":
        async with store.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE schedule"))
            await conn.execute(text("VACUUM ANALYZE schedule_run"))
    await store.close()


def schedule_values(sid: str, owner: str, slot: datetime, now: datetime,
                    **over: Any) -> dict[str, Any]:
    """One ``schedule`` row as the API would store a ``once`` schedule."""
    values: dict[str, Any] = dict(
        id=sid, owner=owner, system=False, expose_name="Bench", flow_url=FLOW,
        title=None, schedule_type="once", cron_expression=None, run_at=slot,
        timezone="UTC", inputs={"sid": sid}, state="active", catchup="once",
        overlap="skip", end_at=None, max_runs=None, run_count=0, next_run=slot,
        last_run=None, last_fid=None, last_status=None, note=None,
        version=1, created=now, updated=now)
    values.update(over)
    return values


def run(coro: Any) -> Any:
    return asyncio.run(coro)
