"""A second Ray node for a private stack: ``ray start --address`` on its own ports and
temp dir, a child of the stack's :class:`~kodosumi_timer.devstack.ProcessGroup`.

Two nodes on one machine make a real two-node Ray cluster (each node its own raylet,
object store and workers); killing one node's processes by pid
(:meth:`ProcessGroup.kill`) is what losing that machine looks like to Ray. Used by
the node-loss test and by ``docs/deploy/check-plain.sh``. Never ``ray stop``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from kodosumi_timer.devstack import (
    DevStackError,
    ProcessGroup,
    Progress,
    _get_json,
    _ray_script,
    ensure_ports_free,
    free_port,
    free_port_range,
    wait_until,
)


@dataclass(frozen=True)
class WorkerPorts:
    """Every port a non-head Ray node binds."""

    node_manager: int
    object_manager: int
    dashboard_agent_listen: int
    dashboard_agent_grpc: int
    metrics_export: int
    runtime_env_agent: int
    min_worker: int
    max_worker: int

    @classmethod
    def free(cls) -> Self:
        low, high = free_port_range()
        taken = set(range(low, high + 1))
        chosen: dict[str, int] = {}
        for name in ("node_manager", "object_manager", "dashboard_agent_listen",
                     "dashboard_agent_grpc", "metrics_export", "runtime_env_agent"):
            chosen[name] = free_port(exclude=taken)
            taken.add(chosen[name])
        return cls(**chosen, min_worker=low, max_worker=high)

    def named(self) -> dict[str, int]:
        return {f"Ray worker node {name.replace('_', ' ')}": port
                for name, port in vars(self).items() if name not in ("min_worker", "max_worker")}


def alive_node_ids(dashboard_url: str) -> set[str]:
    """Ids of the cluster's live nodes, from the dashboard's state API."""
    nodes = _get_json(f"{dashboard_url}/api/v0/nodes")
    return {node["node_id"] for node in nodes["data"]["result"]["result"]
            if node.get("state") == "ALIVE"}


def node_state(dashboard_url: str, node_id: str) -> str | None:
    """ALIVE or DEAD as the head sees ``node_id``; None if it does not know it."""
    nodes = _get_json(f"{dashboard_url}/api/v0/nodes")
    for node in nodes["data"]["result"]["result"]:
        if node["node_id"] == node_id:
            return str(node.get("state"))
    return None


def start_ray_worker(group: ProcessGroup, *, head_address: str, dashboard_url: str,
                     temp_dir: Path, env: Mapping[str, str], log_path: Path,
                     name: str = "ray-worker", num_cpus: int = 0,
                     ports: WorkerPorts | None = None, timeout: float = 90,
                     progress: Progress | None = None) -> str:
    """Join a node to the cluster at ``head_address`` (``ray start --address --block``)
    and wait until the head lists it alive. Returns the new node's id.

    ``num_cpus=0`` (the default) keeps tasks and CPU-bound actors (Serve replicas,
    kodosumi's Runners) off it: only what is placed there on purpose runs there.
    """
    say = progress or (lambda _m: None)
    if len(str(temp_dir)) > 40:
        raise DevStackError(f"Ray temp dir {temp_dir} is too long for Unix socket paths; "
                            "use short_temp_dir()")
    ports = ports or WorkerPorts.free()
    ensure_ports_free(ports.named())
    before = alive_node_ids(dashboard_url)
    node_env: dict[str, Any] = dict(env)
    node_env.pop("RAY_ADDRESS", None)
    node_env["RAY_USAGE_STATS_ENABLED"] = "0"
    node_env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    cmd = [
        _ray_script(), "start", f"--address={head_address}", "--block",
        "--disable-usage-stats",
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
    say(f"starting Ray node {name} joining {head_address}")
    started = time.monotonic()
    popen = group.start(name, cmd, node_env, log_path, cwd=Path(temp_dir))

    def joined() -> str | None:
        new = alive_node_ids(dashboard_url) - before
        return next(iter(new)) if len(new) == 1 else None

    node_id = wait_until(joined, what=f"Ray node {name}", timeout=timeout, group=group,
                         popen=popen)
    say(f"Ray node {name} ({node_id}) joined in {time.monotonic() - started:.1f} s")
    return node_id
