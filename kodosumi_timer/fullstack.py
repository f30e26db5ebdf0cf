"""The whole product on top of a private kodosumi stack: the composed panel and the timer.

Used by ``koco-timer demo`` and by the integration tests' session fixture, so both
run exactly the same processes. Everything is a child of one ProcessGroup and is
stopped by pid.
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from kodosumi_timer.devstack import (
    LOCALHOST,
    KodoStack,
    ProcessGroup,
    Progress,
    RayPorts,
    actor_alive,
    start_stack,
    wait_until,
)
from kodosumi_timer.lock import LOCK_NAME, NAMESPACE


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class FullStack:
    kodo: KodoStack
    panel_url: str
    env: dict[str, str]
    schedule_db: str

    @property
    def flows(self) -> dict[str, str]:
        return self.kodo.flow_paths()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "kodosumi_timer.cli", *args]


def start_panel(group: ProcessGroup, stack: KodoStack, env: dict[str, str], port: int, *,
                timeout: float = 90, progress: Progress | None = None) -> str:
    """``koco-timer serve`` on ``port``; waits until it logs in and lists the demo flows."""
    say = progress or _quiet
    url = f"http://{LOCALHOST}:{port}"
    cmd = _cli("serve", "--address", url, "--exec-dir", str(stack.data_dir / "execution"),
               *sum((["--register", u] for u in stack.register_urls), []))
    say(f"starting the panel (kodosumi + schedules) at {url}")
    started = time.monotonic()
    popen = group.start("panel", cmd, env, stack.data_dir / "logs" / "panel.out",
                        cwd=stack.data_dir.parent)
    expected = len(stack.flow_paths())

    def ready() -> bool:
        login = httpx.get(f"{url}/login", params={"name": "admin", "password": "admin"},
                          timeout=5)
        if login.status_code != 200:
            return False
        token = login.json()["KODOSUMI_API_KEY"]
        flows = httpx.get(f"{url}/flow", params={"pp": 100},
                          headers={"KODOSUMI_API_KEY": token}, timeout=5)
        return flows.status_code == 200 and len(flows.json()["items"]) >= expected

    wait_until(ready, what="panel", timeout=timeout, group=group, popen=popen)
    say(f"panel ready in {time.monotonic() - started:.1f} s")
    return url


def start_timer(group: ProcessGroup, stack: KodoStack, env: dict[str, str], *,
                timeout: float = 60, progress: Progress | None = None) -> None:
    """``koco-timer start --block``; waits until its lock actor is registered."""
    say = progress or _quiet
    say("starting the timer")
    started = time.monotonic()
    popen = group.start("timer", _cli("start", "--block"), env,
                        stack.data_dir / "logs" / "timer.out", cwd=stack.data_dir.parent)
    wait_until(lambda: actor_alive(stack.dashboard_url, LOCK_NAME, NAMESPACE),
               what="timer", timeout=timeout, group=group, popen=popen)
    say(f"timer ready in {time.monotonic() - started:.1f} s")


def product_env(stack: KodoStack, panel_port: int, schedule_db: str) -> dict[str, str]:
    env = dict(stack.env)
    env.update({
        "KODO_APP_SERVER": f"http://{LOCALHOST}:{panel_port}",
        "KODO_TIMER_PANEL_URL": f"http://{LOCALHOST}:{panel_port}",
        "KODO_TIMER_DATABASE": schedule_db,
        "KODO_TIMER_LOG_FILE": str(stack.data_dir / "logs" / "timer.log"),
        "KODO_TIMER_SCHEDULES": str(stack.data_dir / "config" / "schedules.yaml"),
    })
    return env


def start_full_stack(group: ProcessGroup, *, data_dir: Path, temp_dir: Path, ports: RayPorts,
                     panel_port: int, secret: str, schedule_db: str | None = None,
                     with_timer: bool = True, progress: Progress | None = None) -> FullStack:
    data_dir = Path(data_dir).resolve()
    kodo = start_stack(group, data_dir=data_dir, temp_dir=temp_dir, ports=ports, secret=secret,
                       progress=progress)
    db = schedule_db or f"sqlite+aiosqlite:///{data_dir / 'schedule.db'}"
    env = product_env(kodo, panel_port, db)
    panel_url = start_panel(group, kodo, env, panel_port, progress=progress)
    if with_timer:
        start_timer(group, kodo, env, progress=progress)
    return FullStack(kodo=kodo, panel_url=panel_url, env=env, schedule_db=db)
