"""Bring up and tear down the kodosumi side of a private stack, by pid.

A private stack is a Ray head on its own ports and temp dir, the demo agents of
``kodosumi_timer/demo_agents.py`` as Ray Serve applications, and kodosumi's spooler.
``koco-timer demo`` and the integration tests compose it with the panel and the
timer. Everything started here runs as a child process in its own session and
is stopped through :class:`ProcessGroup` by its pid (and its descendants'),
never by process name, never with ``ray stop``: other stacks on the same machine
stay untouched.

Typical use::

    with ProcessGroup(progress=print) as group:
        stack = start_stack(group, data_dir=Path("data"), temp_dir=short_temp_dir(),
                            ports=RayPorts.free(), secret="...", progress=print)
        ...  # start the panel with stack.env, register stack.register_urls
    # leaving the block stops every process, Ray's workers included
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import psutil

LOCALHOST = "127.0.0.1"

#: The namespace and name of the actor kodosumi's spooler registers.
SPOOLER_NAMESPACE = "kodosumi"
SPOOLER_ACTOR = "Spooler"

# Worker ports are taken from a block below Linux's ephemeral range
# (32768-60999), where ports picked by the kernel for other sockets never land.
WORKER_PORT_LOW = 20000
WORKER_PORT_HIGH = 32000
WORKER_PORT_COUNT = 200

POLL_INTERVAL = 0.2

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class DemoApp:
    """A Serve application of :mod:`kodosumi_timer.demo_agents`."""

    name: str
    import_path: str
    route_prefix: str


DEMO_APPS: tuple[DemoApp, ...] = (
    DemoApp("quick", "kodosumi_timer.demo_agents:quick", "/quick"),
    DemoApp("slow", "kodosumi_timer.demo_agents:slow", "/slow"),
    DemoApp("failing", "kodosumi_timer.demo_agents:failing", "/failing"),
    DemoApp("heartbeat", "kodosumi_timer.demo_agents:heartbeat", "/heartbeat"),
)


class DevStackError(RuntimeError):
    """A process of the private stack could not be started or did not get ready."""


class PortInUseError(DevStackError):
    """A port the stack needs is taken; the message names the port and its role."""

    def __init__(self, taken: Mapping[str, int]) -> None:
        self.taken = dict(taken)
        listed = ", ".join(f"port {port} ({role})" for role, port in taken.items())
        verb = "is" if len(taken) == 1 else "are"
        super().__init__(f"{listed} {verb} already in use")


# ---------------------------------------------------------------------------
# ports
# ---------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """True if nothing listens on ``port`` (any address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR so that a port whose last connection is in TIME_WAIT
        # counts as free: Ray's servers set it too and would bind fine.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def free_port(exclude: Iterable[int] = ()) -> int:
    """A TCP port nothing listens on, chosen by the kernel, not in ``exclude``."""
    excluded = set(exclude)
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("", 0))
            port: int = sock.getsockname()[1]
        if port not in excluded:
            return port
    raise DevStackError("no free port found")


def free_port_range(count: int = WORKER_PORT_COUNT) -> tuple[int, int]:
    """``count`` consecutive free ports below the ephemeral range: (first, last)."""
    step = max(count, 1)
    starts = list(range(WORKER_PORT_LOW, WORKER_PORT_HIGH - count, step))
    # Start somewhere random so that stacks started together rarely share a block.
    offset = int.from_bytes(os.urandom(2), "big") % len(starts)
    for start in starts[offset:] + starts[:offset]:
        if all(port_is_free(port) for port in range(start, start + count)):
            return start, start + count - 1
    raise DevStackError(
        f"no {count} consecutive free ports between {WORKER_PORT_LOW} and {WORKER_PORT_HIGH}")


def ensure_ports_free(ports: Mapping[str, int]) -> None:
    """Raise :class:`PortInUseError` naming every port (by role) that is taken."""
    taken = {role: port for role, port in ports.items() if not port_is_free(port)}
    if taken:
        raise PortInUseError(taken)


# RayPorts field -> the role named when the port is taken.
_PORT_ROLES = {
    "gcs": "Ray", "dashboard": "Ray dashboard", "serve_http": "Ray Serve",
    "client_server": "Ray client server", "node_manager": "Ray node manager",
    "object_manager": "Ray object manager", "dashboard_agent_listen": "Ray dashboard agent",
    "dashboard_agent_grpc": "Ray dashboard agent gRPC", "metrics_export": "Ray metrics",
    "runtime_env_agent": "Ray runtime env agent",
}


@dataclass(frozen=True)
class RayPorts:
    """Every port a Ray head (and Serve's HTTP proxy) binds."""

    gcs: int
    dashboard: int
    serve_http: int
    client_server: int
    node_manager: int
    object_manager: int
    dashboard_agent_listen: int
    dashboard_agent_grpc: int
    metrics_export: int
    runtime_env_agent: int
    min_worker: int
    max_worker: int

    @classmethod
    def defaults(cls) -> Self:
        """Ray's and kodosumi's well-known ports (6379, 8265, 8001); the rest free."""
        return cls._with(gcs=6379, dashboard=8265, serve_http=8001)

    @classmethod
    def free(cls) -> Self:
        """Free ports only: for tests and for stacks beside a developer's own Ray."""
        return cls._with()

    @classmethod
    def _with(cls, **fixed: int) -> Self:
        low, high = free_port_range()
        taken = set(fixed.values()) | set(range(low, high + 1))
        chosen: dict[str, int] = dict(fixed)
        for name in _PORT_ROLES:
            if name not in chosen:
                chosen[name] = free_port(exclude=taken)
                taken.add(chosen[name])
        return cls(**chosen, min_worker=low, max_worker=high)

    def named(self) -> dict[str, int]:
        """Role -> port for every single port (not the worker range)."""
        values = asdict(self)
        return {role: values[name] for name, role in _PORT_ROLES.items()}

    def ensure_free(self) -> None:
        """Raise :class:`PortInUseError` if any of these ports is taken."""
        ensure_ports_free(self.named())

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.gcs}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{LOCALHOST}:{self.dashboard}"

    @property
    def serve_url(self) -> str:
        return f"http://{LOCALHOST}:{self.serve_http}"


def short_temp_dir(prefix: str = "kt-") -> Path:
    """A new, short directory under /tmp for Ray's ``--temp-dir``.

    Ray puts Unix sockets in it, and their paths may not exceed about 107 bytes.
    """
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------


@dataclass
class Child:
    """A process started by a :class:`ProcessGroup`."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    process: psutil.Process  # holds the start time: a reused pid is never taken for it

    @property
    def pid(self) -> int:
        return self.popen.pid


class ProcessGroup:
    """Child processes, each in its own session, stopped with all their descendants.

    Only processes started here, and processes descending from them, are ever
    signalled. Descendants are found by parentage and by session (a child is
    the leader of a new session, so an orphaned grandchild still carries the
    child's pid as its session id).
    """

    def __init__(self, progress: Progress | None = None) -> None:
        self.children: list[Child] = []
        self._progress = progress or _quiet

    def start(self, name: str, cmd: Sequence[str], env: Mapping[str, str] | None,
              log_path: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``cmd`` with exactly ``env`` (None: inherit), output to ``log_path``."""
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                list(cmd), env=dict(env) if env is not None else None, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.children.append(Child(name, popen, log_path, psutil.Process(popen.pid)))
        self._progress(f"started {name} (pid {popen.pid}), log {log_path}")
        return popen

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def child(self, popen: subprocess.Popen[bytes]) -> Child:
        return next(child for child in self.children if child.popen is popen)

    def stop_all(self, timeout: float = 15) -> list[psutil.Process]:
        """Stop every child, newest first, with all its descendants.

        The child gets SIGTERM first and up to ``timeout`` seconds to shut its
        own processes down (``ray start --block`` stops Ray in order); whatever
        is left then gets SIGTERM, a few seconds, and SIGKILL. Returns every
        process that was found, so a caller can check that none is left.
        """
        stopped: list[psutil.Process] = []
        while self.children:
            stopped.extend(self._stop_child(self.children.pop(), timeout))
        return stopped

    def forget(self, child: Child) -> None:
        """Drop a child that has exited by itself (reaped), so stopping skips it."""
        self.children.remove(child)
        with suppress(subprocess.TimeoutExpired):
            child.popen.wait(timeout=1)

    def stop(self, name: str, timeout: float = 15) -> None:
        """Stop the newest child called ``name`` (a test taking one part away)."""
        child = next(c for c in reversed(self.children) if c.name == name)
        self.children.remove(child)
        self._stop_child(child, timeout)

    def kill(self, name: str, timeout: float = 15) -> list[psutil.Process]:
        """SIGKILL the newest child called ``name`` and all its descendants at once, with
        no chance to clean up: a machine that is lost. Returns the processes killed."""
        child = next(c for c in reversed(self.children) if c.name == name)
        self.children.remove(child)
        procs = _process_tree(child.process)
        _signal_all(procs, signal.SIGKILL)
        psutil.wait_procs(procs, timeout=timeout)
        with suppress(subprocess.TimeoutExpired):
            child.popen.wait(timeout=1)  # reap our direct child
        self._progress(f"killed {child.name} (pid {child.pid}, {len(procs)} processes)")
        return procs

    def _stop_child(self, child: Child, timeout: float) -> list[psutil.Process]:
        procs = _process_tree(child.process)
        _signal_all([child.process], signal.SIGTERM)
        psutil.wait_procs([child.process], timeout=timeout)
        # Descendants the child did not stop, and any it started meanwhile.
        procs += [p for p in _process_tree(child.process) if p not in procs]
        left = [p for p in procs if _is_alive(p)]
        _signal_all(left, signal.SIGTERM)
        _, left = psutil.wait_procs(left, timeout=min(timeout, 5))
        left = [p for p in left if _is_alive(p)]
        _signal_all(left, signal.SIGKILL)
        psutil.wait_procs(left, timeout=timeout)
        with suppress(subprocess.TimeoutExpired):
            child.popen.wait(timeout=1)  # reap our direct child
        killed = f", {len(left)} killed" if left else ""
        self._progress(f"stopped {child.name} (pid {child.pid}, "
                       f"{len(procs)} processes{killed})")
        return procs

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()


def _process_tree(root: psutil.Process) -> list[psutil.Process]:
    """``root``, its descendants, and every process in the session ``root`` leads."""
    found: dict[int, psutil.Process] = {root.pid: root}
    with suppress(psutil.NoSuchProcess):
        for proc in root.children(recursive=True):
            found[proc.pid] = proc
    if not root.is_running() and psutil.pid_exists(root.pid):
        # The pid now belongs to another process, and a session id by that
        # number is no longer ours.
        return list(found.values())
    for proc in psutil.process_iter():
        if proc.pid not in found:
            with suppress(OSError):
                if os.getsid(proc.pid) == root.pid:
                    found[proc.pid] = proc
    return list(found.values())


def _signal_all(procs: Iterable[psutil.Process], sig: signal.Signals) -> None:
    for proc in procs:
        with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(sig)


def _is_alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 16384))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until[T](check: Callable[[], T | None], *, what: str, timeout: float,
               group: ProcessGroup | None = None,
               popen: subprocess.Popen[bytes] | None = None) -> T:
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds.

    Connection errors inside ``check`` count as "not yet". If ``popen`` exits
    meanwhile, fail at once with the end of its log.
    """
    deadline = time.monotonic() + timeout
    while True:
        with suppress(httpx.HTTPError, OSError):
            result = check()
            if result:
                return result
        if popen is not None and popen.poll() is not None:
            detail = ""
            if group is not None:
                child = group.child(popen)
                detail = f"; end of {child.log_path}:\n{log_tail(child.log_path)}"
            raise DevStackError(
                f"{what}: process {popen.pid} exited with code {popen.returncode}{detail}")
        if time.monotonic() >= deadline:
            raise DevStackError(f"{what}: not ready after {timeout:g} s")
        time.sleep(POLL_INTERVAL)


def _get_json(url: str, **params: Any) -> Any:
    response = httpx.get(url, params=params, timeout=5)
    response.raise_for_status()
    return response.json()


# ---------------------------------------------------------------------------
# the stack
# ---------------------------------------------------------------------------


def kodo_env(ray_address: str, data_dir: Path, secret: str, *,
             dashboard_url: str | None = None,
             base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a stack's processes: ``base`` (default os.environ) plus
    Ray's address and kodosumi's settings, every path absolute under ``data_dir``.

    The caller's own ``os.environ`` is not changed.
    """
    data = Path(data_dir).resolve()
    env = dict(os.environ if base is None else base)
    env.update({
        "RAY_ADDRESS": ray_address,
        "KODO_RAY_SERVER": ray_address,
        "KODO_SECRET_KEY": secret,
        "KODO_EXEC_DIR": str(data / "execution"),
        "KODO_UPLOAD_DIR": str(data / "uploads"),
        "KODO_ADMIN_DATABASE": f"sqlite+aiosqlite:///{data / 'admin.db'}",
        "KODO_SPOOLER_LOG_FILE": str(data / "spooler.log"),
        "KODO_APP_LOG_FILE": str(data / "app.log"),
        "KODO_YAML_BASE": str(data / "config" / "config.yaml"),
        "RAY_USAGE_STATS_ENABLED": "0",
    })
    if dashboard_url:
        env["KODO_RAY_DASHBOARD"] = dashboard_url
    return env


def _ray_script() -> str:
    return str(Path(sys.executable).with_name("ray"))


def start_ray_head(group: ProcessGroup, temp_dir: Path, ports: RayPorts,
                   env: Mapping[str, str], *, log_path: Path, num_cpus: int = 4,
                   timeout: float = 90, progress: Progress | None = None) -> str:
    """Start a Ray head (``ray start --head --block``) and wait until it answers.

    Ray's workers run this interpreter, so Serve and kodosumi's Runner actors import
    the demo agents from the installed package. Returns the address
    ``127.0.0.1:<gcs port>``.
    """
    say = progress or _quiet
    if len(str(temp_dir)) > 40:
        raise DevStackError(f"Ray temp dir {temp_dir} is too long for Unix socket paths; "
                            "use short_temp_dir()")
    ports.ensure_free()
    head_env = dict(env)
    head_env.pop("RAY_ADDRESS", None)  # the head starts a cluster, it joins none
    head_env["RAY_USAGE_STATS_ENABLED"] = "0"
    # On SIGTERM, `ray start --block` would first drain the node for up to 30 s
    # (meant for Kubernetes rollouts); a private stack stops at once.
    head_env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    cmd = [
        # No --node-ip-address: Ray turns 127.0.0.1 into the host's address
        # anyway, and its GCS and raylet listen on every interface. The
        # dashboard and Serve's proxy are bound to 127.0.0.1.
        _ray_script(), "start", "--head", "--block", "--disable-usage-stats",
        f"--port={ports.gcs}",
        "--include-dashboard=true",
        f"--dashboard-host={LOCALHOST}",
        f"--dashboard-port={ports.dashboard}",
        f"--ray-client-server-port={ports.client_server}",
        f"--node-manager-port={ports.node_manager}",
        f"--object-manager-port={ports.object_manager}",
        f"--min-worker-port={ports.min_worker}",
        f"--max-worker-port={ports.max_worker}",
        f"--dashboard-agent-listen-port={ports.dashboard_agent_listen}",
        f"--dashboard-agent-grpc-port={ports.dashboard_agent_grpc}",
        f"--metrics-export-port={ports.metrics_export}",
        f"--runtime-env-agent-port={ports.runtime_env_agent}",
        f"--num-cpus={num_cpus}",
        f"--temp-dir={temp_dir}",
    ]
    say(f"starting Ray head at {ports.address}, dashboard {ports.dashboard_url}")
    started = time.monotonic()
    popen = group.start("ray-head", cmd, head_env, log_path, cwd=Path(temp_dir))

    def node_alive() -> bool:
        health = httpx.get(f"{ports.dashboard_url}/api/gcs_healthz", timeout=5)
        if health.status_code != 200:
            return False
        nodes = _get_json(f"{ports.dashboard_url}/api/v0/nodes")
        return any(node.get("state") == "ALIVE"
                   for node in nodes["data"]["result"]["result"])

    wait_until(node_alive, what="Ray head", timeout=timeout, group=group, popen=popen)
    say(f"Ray head ready in {time.monotonic() - started:.1f} s")
    return ports.address


def deploy_demo_agents(dashboard_url: str, serve_port: int, *,
                    apps: Sequence[DemoApp] = DEMO_APPS, timeout: float = 120,
                    progress: Progress | None = None) -> list[str]:
    """Deploy the demo agents on Ray Serve at 127.0.0.1:``serve_port``.

    Uses Serve's REST API on the Ray dashboard (what ``serve deploy`` does):
    the applications belong to the Serve controller, no driver has to stay
    alive. Waits until every application's ``/openapi.json`` answers. Returns
    the URLs kodosumi's panel should register (``--register``).

    This declares the complete set of Serve applications of the cluster.
    """
    say = progress or _quiet
    serve_url = f"http://{LOCALHOST}:{serve_port}"
    config = {
        "proxy_location": "HeadOnly",
        "http_options": {"host": LOCALHOST, "port": serve_port},
        "applications": [
            {"name": app.name, "route_prefix": app.route_prefix,
             "import_path": app.import_path}
            for app in apps
        ],
    }
    say(f"deploying {', '.join(app.name for app in apps)} on Ray Serve at {serve_url}")
    started = time.monotonic()
    response = httpx.put(f"{dashboard_url}/api/serve/applications/", json=config,
                         timeout=timeout)
    if response.status_code != 200:
        raise DevStackError(
            f"Serve refused the demo applications ({response.status_code}): {response.text}")

    def running() -> bool:
        details = _get_json(f"{dashboard_url}/api/serve/applications/")
        states = details.get("applications", {})
        for app in apps:
            state = states.get(app.name, {})
            if state.get("status") == "DEPLOY_FAILED":
                raise DevStackError(
                    f"Serve application {app.name} failed to deploy: {state.get('message')}")
        return all(states.get(app.name, {}).get("status") == "RUNNING" for app in apps)

    def answering() -> bool:
        for app in apps:
            url = f"{serve_url}{app.route_prefix}/openapi.json"
            if httpx.get(url, timeout=5).status_code != 200:
                return False
        return True

    wait_until(running, what="Serve applications", timeout=timeout)
    left = max(1.0, timeout - (time.monotonic() - started))
    wait_until(answering, what="Serve applications' openapi.json", timeout=left)
    say(f"Serve applications ready in {time.monotonic() - started:.1f} s")
    return [f"{serve_url}/-/routes"]


def actor_alive(dashboard_url: str, name: str, namespace: str) -> bool:
    """True if the named actor is ALIVE, asked through the dashboard's state API."""
    data = _get_json(f"{dashboard_url}/api/v0/actors",
                     filter_keys="name", filter_predicates="=", filter_values=name,
                     detail="true", limit="100")
    return any(actor.get("state") == "ALIVE" and actor.get("ray_namespace") == namespace
               for actor in data["data"]["result"]["result"])


def start_spooler(group: ProcessGroup, ray_address: str, exec_dir: Path,
                  env: Mapping[str, str], log_path: Path, *, dashboard_url: str,
                  cwd: Path | None = None, timeout: float = 60,
                  progress: Progress | None = None) -> subprocess.Popen[bytes]:
    """Start kodosumi's spooler in the foreground as a child of ``group``.

    Waits until its named actor (``Spooler`` in namespace ``kodosumi``) is alive.
    """
    say = progress or _quiet
    if actor_alive(dashboard_url, SPOOLER_ACTOR, SPOOLER_NAMESPACE):
        # kodosumi's spooler would log "already running" and exit at once.
        raise DevStackError(f"a kodosumi spooler already runs on Ray at {ray_address}")
    cmd = [sys.executable, "-m", "kodosumi.cli", "spool", "--block",
           "--ray-server", ray_address, "--exec-dir", str(exec_dir)]
    say(f"starting kodosumi spooler on {ray_address}")
    started = time.monotonic()
    popen = group.start("spooler", cmd, env, log_path, cwd=cwd)
    wait_until(lambda: actor_alive(dashboard_url, SPOOLER_ACTOR, SPOOLER_NAMESPACE),
               what="kodosumi spooler", timeout=timeout, group=group, popen=popen)
    say(f"spooler ready in {time.monotonic() - started:.1f} s")
    return popen


@dataclass(frozen=True)
class KodoStack:
    """What a started stack offers to the panel, the timer and the tests."""

    ports: RayPorts
    data_dir: Path
    temp_dir: Path
    env: dict[str, str]
    register_urls: list[str]

    @property
    def ray_address(self) -> str:
        return self.ports.address

    @property
    def dashboard_url(self) -> str:
        return self.ports.dashboard_url

    @property
    def serve_url(self) -> str:
        return self.ports.serve_url

    def flow_paths(self, apps: Sequence[DemoApp] = DEMO_APPS) -> dict[str, str]:
        """Demo app name -> its flow path on kodosumi's panel (``/-/host/port/app/-/``)."""
        return {app.name: f"/-/{LOCALHOST}/{self.ports.serve_http}{app.route_prefix}/-/"
                for app in apps}


def start_stack(group: ProcessGroup, *, data_dir: Path, temp_dir: Path, ports: RayPorts,
                secret: str, num_cpus: int = 4,
                progress: Progress | None = None) -> KodoStack:
    """Ray head, demo agents on Serve, and kodosumi's spooler, all in ``group``.

    Logs go to ``data_dir/logs``; kodosumi's data (executions, admin.db) to
    ``data_dir``. Ray's own logs stay in ``temp_dir/session_latest/logs``.
    """
    data_dir = Path(data_dir).resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = kodo_env(ports.address, data_dir, secret, dashboard_url=ports.dashboard_url)
    start_ray_head(group, temp_dir, ports, env, log_path=logs / "ray-head.log",
                   num_cpus=num_cpus, progress=progress)
    register_urls = deploy_demo_agents(ports.dashboard_url, ports.serve_http, progress=progress)
    start_spooler(group, ports.address, data_dir / "execution", env,
                  logs / "spooler.out", dashboard_url=ports.dashboard_url, cwd=data_dir,
                  progress=progress)
    return KodoStack(ports=ports, data_dir=data_dir, temp_dir=Path(temp_dir), env=env,
                     register_urls=register_urls)
