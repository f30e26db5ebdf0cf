"""The timer's named Ray actor: one timer per cluster, its status, and wake-ups.

Like kodosumi's spooler lock, the actor carries the timer's pid so ``koco-timer
status`` and ``stop`` find it. The panel calls ``wake`` after a change; the timer
waits on ``wait`` with a generation counter, so a wake-up is never lost even when
it arrives while the timer is busy.
"""

import asyncio
import time
from typing import Any

import ray

from kodosumi_timer import __version__, placement
from kodosumi_timer.preflight import mask_url

NAMESPACE = "kodosumi"
LOCK_NAME = "KodosumiTimer"


class LockState:
    """What the lock actor holds; also the base of the in-cluster timer actor."""

    def __init__(self, pid: int, host: str, database: str, mode: str = "process",
                 node: dict[str, str | None] | None = None):
        # the Ray node the timer runs on (a restarted actor says its new node)
        where = node if node is not None else placement.here()
        self.meta: dict[str, Any] = {
            # masked here, so no caller can publish a password through the meta
            "pid": pid, "host": host, "database": mask_url(database), "started": time.time(),
            "fires": 0, "failures": 0, "mode": mode, "version": __version__,
            # the timer's own figures (kodosumi_timer.metrics), with its last heartbeat
            "figures": {},
            "node_id": where.get("node_id"), "node_ip": where.get("node_ip"),
        }
        self.generation = 0
        self.changed = asyncio.Event()

    async def get_meta(self) -> dict[str, Any]:
        return dict(self.meta)

    async def update(self, fires: int, failures: int,
                     figures: dict[str, Any] | None = None) -> None:
        self.note(fires, failures, figures)

    def note(self, fires: int, failures: int, figures: dict[str, Any] | None) -> None:
        """What the timer published last (``figures``: a small JSON-able snapshot)."""
        self.meta.update(fires=fires, failures=failures)
        if figures is not None:
            self.meta["figures"] = figures

    async def wake(self) -> int:
        self.generation += 1
        self.changed.set()
        self.changed = asyncio.Event()
        return self.generation

    async def wait(self, seen: int, timeout: float) -> int:
        if self.generation > seen:
            return self.generation
        changed = self.changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            pass
        return self.generation


TimerLock = ray.remote(num_cpus=0)(LockState)


def find_lock() -> Any | None:
    """The running timer's lock actor on the connected cluster, or None."""
    try:
        return ray.get_actor(LOCK_NAME, namespace=NAMESPACE)
    except ValueError:
        return None


def create_lock(pid: int, host: str, database: str) -> Any:
    """Register this process as the cluster's timer; ValueError if one is registered.

    The lock actor may run on another node: it is told this process's node."""
    return TimerLock.options(name=LOCK_NAME, namespace=NAMESPACE).remote(
        pid, host, database, node=placement.here())


class DirectWaker:
    """Wake-ups when the timer runs inside the lock actor itself."""

    def __init__(self, state: LockState):
        self.state = state

    async def wait(self, seen: int, timeout: float) -> int:
        return await self.state.wait(seen, timeout)


class RayWaker:
    def __init__(self, actor: Any):
        self.actor = actor

    async def wait(self, seen: int, timeout: float) -> int:
        return int(await self.actor.wait.remote(seen, timeout))


def wake_timer() -> None:
    """Fire-and-forget wake-up of the cluster's timer (no timer running is fine)."""
    try:
        actor = find_lock()
        if actor is not None:
            actor.wake.remote()
    except Exception:  # waking is an optimisation; the timer polls anyway
        pass
