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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import ray

from kodosumi_timer import lock, placement
from kodosumi_timer.bridge import PanelFlows, PanelLauncher, RoleTable
from kodosumi_timer.clock import utcnow
from kodosumi_timer.config import TimerSettings
from kodosumi_timer.history import Pruner
from kodosumi_timer.metrics import CountingStore, TimerMetrics
from kodosumi_timer.notify import guard
from kodosumi_timer.notify.delivery import Sender
from kodosumi_timer.notify.loop import Notifier
from kodosumi_timer.preflight import PreflightError, mask_url, probe_ray
from kodosumi_timer.store import open_store
from kodosumi_timer.system import PanelDiscovery, SystemSchedules
from kodosumi_timer.timer import Timer, TimerConfig, TimerStats, Waker

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
    """Join the cluster at KODO_RAY_SERVER; PreflightError within seconds if none answers
    there (Ray itself would retry, printing warnings, for minutes)."""
    probe_ray(settings.RAY_SERVER, settings.TIMER_CONNECT_TIMEOUT)
    try:
        ray.init(address=settings.RAY_SERVER, ignore_reinit_error=True, log_to_driver=False,
                 logging_level=logging.WARNING)
    except ConnectionError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PreflightError(f"cannot join the Ray cluster at {settings.RAY_SERVER} "
                             f"(KODO_RAY_SERVER): {first}") from exc


def running_meta() -> dict[str, Any] | None:
    """The registered timer's meta, or None when no live timer holds the lock."""
    actor = lock.find_lock()
    if actor is None:
        return None
    try:
        return ray.get(actor.get_meta.remote(), timeout=10)  # type: ignore[no-any-return]
    except Exception:
        return None


def timer_config(s: TimerSettings) -> TimerConfig:
    return TimerConfig(
        interval=s.TIMER_INTERVAL, follow_interval=s.TIMER_FOLLOW_INTERVAL,
        launch_attempts=s.TIMER_LAUNCH_ATTEMPTS, system_user=s.TIMER_USER,
        claim_ahead=s.TIMER_CLAIM_AHEAD, lease=s.TIMER_LEASE,
        launch_timeout=s.TIMER_LAUNCH_TIMEOUT, max_running=s.TIMER_MAX_RUNNING,
        max_in_flight=s.TIMER_MAX_IN_FLIGHT, latency_target=s.TIMER_LATENCY_TARGET)


class TimerParts:
    """The timer and what it owns, built the same way in a process and in an actor."""

    def __init__(self, settings: TimerSettings, waker: Waker,
                 on_stats: Callable[[TimerStats], None]):
        self.settings = settings
        self.waker = waker
        self.on_stats = on_stats

    async def __aenter__(self) -> Timer:
        s = self.settings
        self.store = await open_store(s.TIMER_DATABASE)
        self.launcher = PanelLauncher(s.TIMER_PANEL_URL, secret=s.SECRET_KEY,
                                      token_ttl=s.TIMER_TOKEN_TTL,
                                      timeout=s.TIMER_LAUNCH_TIMEOUT)
        self.roles = RoleTable(s.ADMIN_DATABASE)
        # system schedules (issue 6): the schedules file and the flows' own declarations
        discovery = PanelDiscovery(s.TIMER_PANEL_URL, s.SECRET_KEY, s.TIMER_USER) \
            if s.TIMER_FLOW_SCHEDULES else None
        # their inputs are checked against the agent's form, as the timer user sees it
        forms = PanelFlows(s.TIMER_PANEL_URL, s.SECRET_KEY, s.TIMER_USER)
        self.system = SystemSchedules(
            self.store, s.TIMER_SCHEDULES, s.TIMER_USER, discovery=discovery, forms=forms,
            discover_every=s.TIMER_DISCOVERY_INTERVAL, check_every=s.TIMER_SCHEDULES_CHECK)
        # notifications (issue 12): a loop of their own beside the timer, on the same store
        self.notifier = Notifier(self.store, Sender(guard.allow_list(s.TIMER_NOTIFY_ALLOW)),
                                 s.TIMER_PANEL_URL)
        self.notifying = asyncio.get_running_loop().create_task(self.notifier.run())
        # run history kept bounded, beside the timer too, away from the launch path
        self.pruner = Pruner(self.store, s.TIMER_KEEP_RUNS, s.TIMER_KEEP_DAYS,
                             every=s.TIMER_PRUNE_EVERY)
        self.pruning = asyncio.get_running_loop().create_task(self.pruner.run())
        # the timer's figures (issue 12): runs counted by status as the timer writes them
        metrics = TimerMetrics()
        return Timer(CountingStore(self.store, metrics), self.launcher, self.roles, self.waker,
                     timer_config(s), clock=utcnow, on_stats=self.on_stats, system=self.system,
                     metrics=metrics)

    async def __aexit__(self, *exc: object) -> None:
        self.pruner.stop()
        self.notifier.stop()
        try:  # a delivery cut short is held by its lease and sent again by the next start
            await asyncio.wait_for(self.notifying, 10)
        except TimeoutError:
            log.warning("the notifier did not stop within 10 s; cancelled")
        await asyncio.gather(self.pruning, return_exceptions=True)
        await self.notifier.sender.close()
        await self.system.close()
        await self.launcher.close()
        await self.roles.close()
        await self.store.close()


async def _serve(settings: TimerSettings) -> None:
    try:
        actor = lock.create_lock(os.getpid(), socket.gethostname(), _safe_url(settings))
        ray.get(actor.get_meta.remote())
    except ValueError as exc:
        raise AlreadyRunning("a timer is already registered on this Ray cluster") from exc

    def publish(stats: TimerStats) -> None:
        actor.update.remote(stats.fires, stats.failures, stats.figures)

    try:
        async with TimerParts(settings, lock.RayWaker(actor), publish) as timer:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, timer.stop)
            await timer.run()
    finally:
        ray.kill(actor)


class TimerActorState(lock.LockState):
    """The timer inside the Ray cluster: a detached actor Ray restarts when it dies.

    It is the lock actor too (same name), so status, wake-ups and the
    one-timer-per-cluster rule work as for the process."""

    def __init__(self, settings: dict[str, Any]):
        super().__init__(os.getpid(), socket.gethostname(), settings.get("TIMER_DATABASE", ""),
                         mode="actor")
        self.settings = TimerSettings(**settings)
        setup_logging(self.settings)
        self.timer: Timer | None = None
        self.task = asyncio.get_event_loop().create_task(self._run())

    async def _run(self) -> None:
        def publish(stats: TimerStats) -> None:
            self.note(stats.fires, stats.failures, stats.figures)

        async with TimerParts(self.settings, lock.DirectWaker(self), publish) as timer:
            self.timer = timer
            await timer.run()

    async def shutdown(self) -> bool:
        """Finish the step in hand and stop (before the actor is killed for good)."""
        if self.timer is not None:
            self.timer.stop()
        try:
            await asyncio.wait_for(self.task, 30)
        except (TimeoutError, asyncio.CancelledError):
            pass
        return True


# ray's typing knows only the task options of ray.remote; max_concurrency is an actor's
TimerActor = ray.remote(  # type: ignore[call-overload]
    num_cpus=0, max_restarts=-1, max_concurrency=100)(TimerActorState)


def absolute_settings(settings: TimerSettings) -> dict[str, Any]:
    """Settings for a process with another working directory: SQLite paths made absolute."""
    from sqlalchemy.engine import make_url

    values = settings.model_dump()
    for key in ("TIMER_DATABASE", "ADMIN_DATABASE"):
        url = make_url(values[key])
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            values[key] = url.set(database=str(Path(url.database).resolve())).render_as_string(
                hide_password=False)
    for key in ("TIMER_LOG_FILE", "TIMER_SCHEDULES"):
        values[key] = str(Path(values[key]).resolve())
    return values


def start_actor(settings: TimerSettings, node: str | None = None) -> dict[str, Any]:
    """Place the timer in the cluster as a detached actor; returns its meta.

    ``node`` (a node id or IP, see :mod:`kodosumi_timer.placement`) pins it to that
    node; PlacementError if no live node matches. A timer actor stranded on a lost node
    is removed first."""
    if running_meta() is not None:
        raise AlreadyRunning("a timer is already running on this cluster")
    _take_over_stranded()
    options: dict[str, Any] = {}
    if node is not None:
        target = placement.choose_node(placement.cluster_nodes(), node)
        options["scheduling_strategy"] = placement.scheduling_strategy(target)
    try:
        actor = TimerActor.options(name=lock.LOCK_NAME, namespace=lock.NAMESPACE,
                                   lifetime="detached", **options).remote(
                                       absolute_settings(settings))
    except ValueError as exc:
        raise AlreadyRunning("a timer is already registered on this Ray cluster") from exc
    return ray.get(actor.get_meta.remote(), timeout=120)  # type: ignore[no-any-return]


def _take_over_stranded(timeout: float = 30.0) -> None:
    """Remove a timer actor left pinned to a lost node, so a new one can take the name."""
    actor = lock.find_lock()
    if actor is None or not placement.stranded(actor):
        return
    log.warning("the timer actor's node is lost; removing it to start a new timer")
    ray.kill(actor, no_restart=True)
    deadline = time.monotonic() + timeout
    while lock.find_lock() is not None and time.monotonic() < deadline:
        time.sleep(0.2)


def _safe_url(settings: TimerSettings) -> str:
    return mask_url(settings.TIMER_DATABASE)


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
    """Stop the registered timer (it finishes the step in hand); returns its pid or None."""
    meta = running_meta()
    if meta is None:
        return None
    pid = int(meta["pid"])
    if meta.get("mode") == "actor":
        actor = lock.find_lock()
        if actor is not None:
            try:
                ray.get(actor.shutdown.remote(), timeout=timeout)
            finally:
                ray.kill(actor, no_restart=True)
        return pid
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        proc.kill()
    return pid
