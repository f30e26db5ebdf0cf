"""Where the timer actor runs on a Ray cluster: choose a node, and say where it is.

``koco-timer start --actor --node <node-id|ip>`` pins the detached timer actor to one
node of the cluster (Ray's node affinity, ``soft=False``). Measured on Ray 2.60: a
*soft* affinity did not place the actor on the node asked for (it ran on the driver's
node), and a pinned actor whose node is lost is never restarted elsewhere (Ray reports
it unschedulable). So ``koco-timer start --actor`` takes over such a stranded actor
(:func:`stranded`): run it again, or from a starter loop, and the timer runs on a live
node.

The matching is pure (:func:`choose_node` takes the node list as an argument);
:func:`cluster_nodes` and :func:`here` are the only functions that ask Ray.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class PlacementError(ValueError):
    """The node asked for is not one the timer can be placed on; the message says why."""


@dataclass(frozen=True)
class Node:
    """One node of the cluster as ``ray.nodes()`` describes it."""

    node_id: str
    ip: str
    alive: bool
    head: bool = False

    @classmethod
    def from_ray(cls, row: Mapping[str, Any]) -> Node:
        resources = row.get("Resources") or {}
        return cls(node_id=str(row.get("NodeID", "")),
                   ip=str(row.get("NodeManagerAddress", "")),
                   alive=bool(row.get("Alive", False)),
                   head="node:__internal_head__" in resources)

    def describe(self) -> str:
        return f"{self.node_id} ({self.ip}{', head' if self.head else ''})"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def choose_node(nodes: Iterable[Node], wanted: str) -> Node:
    """The live node ``wanted`` names: a node id (full hex, or a unique prefix of at
    least 6 characters), or the IP address of exactly one live node.

    PlacementError when nothing or more than one live node matches, or the node is dead.
    """
    wanted = wanted.strip()
    if not wanted:
        raise PlacementError("--node: empty; give a node id or an IP address")
    listed = list(nodes)
    live = [n for n in listed if n.alive]
    known = "; live nodes: " + (", ".join(n.describe() for n in live) or "none")
    if _is_ip(wanted):
        at_ip = [n for n in live if n.ip == wanted]
        if len(at_ip) == 1:
            return at_ip[0]
        if not at_ip:
            raise PlacementError(f"--node {wanted}: no live Ray node has this IP address{known}")
        raise PlacementError(f"--node {wanted}: {len(at_ip)} live nodes share this IP address; "
                             f"give the node id instead{known}")
    key = wanted.lower()
    if len(key) < 6 or any(c not in "0123456789abcdef" for c in key):
        raise PlacementError(f"--node {wanted}: neither an IP address nor a node id "
                             f"(hex, at least 6 characters){known}")
    matches = [n for n in listed if n.node_id.lower().startswith(key)]
    if not matches:
        raise PlacementError(f"--node {wanted}: no Ray node has this id{known}")
    if len(matches) > 1:
        raise PlacementError(f"--node {wanted}: the id prefix matches {len(matches)} nodes; "
                             f"give more of it{known}")
    node = matches[0]
    if not node.alive:
        raise PlacementError(f"--node {wanted}: node {node.node_id} is dead{known}")
    return node


def scheduling_strategy(node: Node) -> Any:
    """Ray's node affinity pinning an actor to ``node`` (soft=False: see above)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node.node_id, soft=False)


def cluster_nodes() -> list[Node]:
    """Every node the connected Ray cluster knows, live or dead."""
    import ray

    return [Node.from_ray(row) for row in ray.nodes()]


def here() -> dict[str, str | None]:
    """The Ray node this process (or actor) runs on: ``node_id`` and ``node_ip``;
    both None when Ray is not connected."""
    import ray

    if not ray.is_initialized():
        return {"node_id": None, "node_ip": None}
    from ray.util import get_node_ip_address

    return {"node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": get_node_ip_address()}


def stranded(actor: Any) -> bool:
    """True when the named timer actor can never run again: it is not alive and the
    node it ran on is dead. A timer pinned to a node (node affinity, ``soft=False``)
    stays so after its node is lost: Ray does not restart it elsewhere."""
    from ray.util.state import get_actor

    state = get_actor(actor._actor_id.hex(), timeout=10)
    if state is None or state.state == "ALIVE":
        return False
    live = {n.node_id for n in cluster_nodes() if n.alive}
    return state.node_id not in live
