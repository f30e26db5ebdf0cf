"""The timer as a process: join the Ray cluster, register the lock actor, run the loop
until SIGTERM/SIGINT; and the ``start``/``stop``/``status`` controls around it."""

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import ray

from kodosumi_timer import lock
from kodosumi_timer.bridge import PanelLauncher, RoleTable
from kodosumi_timer.config import TimerSettings
from kodosumi_timer.store import open_store
from kodosumi_timer.timer import Timer, TimerStats, utcnow

log = logging.getLogger("kodosumi_timer")


class AlreadyRunning(RuntimeError):
    pass


def setup_logging(settings: TimerSettings) -> None:
    Path(settings.TIMER_LOG_FILE).parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s - %(message)s")
    root = logging.getLogger("kodosumi_timer")
    root.setLevel(logging.INFO)
    root.handlers.clear()
    for handler in (logging.StreamHandler(), logging.FileHandler(settings.TIMER_LOG_FILE)):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.propagate = False


def connect(settings: TimerSettings) -> None:
    ray.init(address=settings.RAY_SERVER, ignore_reinit_error=True, log_to_driver=False,
             logging_level=logging.WARNING)


def running_meta() -> dict[str, Any] | None:
    """The registered timer's meta, or None when no live timer holds the lock."""
    actor = lock.find_lock()
    if actor is None:
        return None
    try:
        return ray.get(actor.get_meta.remote(), timeout=10)  # type: ignore[no-any-return]
    except Exception:
        return None


async def _serve(settings: TimerSettings) -> None:
    store = await open_store(settings.TIMER_DATABASE)
    try:
        actor = lock.create_lock(os.getpid(), socket.gethostname(), _safe_url(settings))
        ray.get(actor.get_meta.remote())
    except ValueError as exc:
        await store.close()
        raise AlreadyRunning("a timer is already registered on this Ray cluster") from exc
    launcher = PanelLauncher(settings.TIMER_PANEL_URL, token_ttl=settings.TIMER_TOKEN_TTL)
    roles = RoleTable(settings.ADMIN_DATABASE)

    def publish(stats: TimerStats) -> None:
        actor.update.remote(stats.fires, stats.failures)

    timer = Timer(store, launcher, roles, lock.RayWaker(actor), interval=settings.TIMER_INTERVAL,
                  follow_interval=settings.TIMER_FOLLOW_INTERVAL,
                  launch_attempts=settings.TIMER_LAUNCH_ATTEMPTS,
                  system_user=settings.TIMER_USER, clock=utcnow, on_stats=publish)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, timer.stop)
    try:
        await timer.run()
    finally:
        await launcher.close()
        await roles.close()
        await store.close()
        ray.kill(actor)


def _safe_url(settings: TimerSettings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.TIMER_DATABASE).render_as_string(hide_password=True)


def run_blocking(settings: TimerSettings) -> None:
    setup_logging(settings)
    connect(settings)
    meta = running_meta()
    if meta is not None:
        raise AlreadyRunning(f"a timer is already running on this cluster (pid={meta['pid']} "
                             f"on {meta['host']})")
    try:
        asyncio.run(_serve(settings))
    finally:
        ray.shutdown()


def start_background(argv: list[str]) -> int:
    """Start ``koco-timer start --block`` detached; returns its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kodosumi_timer.cli", *argv, "--block"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return proc.pid


def wait_registered(pid: int, timeout: float = 60.0) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return None
        meta = running_meta()
        if meta is not None and meta.get("pid") == pid:
            return meta
        time.sleep(0.25)
    return None


def stop(timeout: float = 30.0) -> int | None:
    """SIGTERM the registered timer and wait for it to exit; returns its pid or None."""
    meta = running_meta()
    if meta is None:
        return None
    pid = int(meta["pid"])
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        proc.kill()
    return pid
