"""Placing the timer actor on a Ray node (issue 15): which node ``--node`` names, the
affinity Ray is given, and where status says the timer runs. No Ray is started here."""

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from kodosumi_timer import daemon, placement
from kodosumi_timer.cli import _node_text, cli
from kodosumi_timer.lock import LockState
from kodosumi_timer.metrics import facts
from kodosumi_timer.placement import Node, PlacementError, choose_node

HEAD = Node("a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c", "10.0.0.1", True, True)
WORKER = Node("ffee0011223344556677889900aabbccddeeff0011223344556677ff", "10.0.0.2", True)
DEAD = Node("0badc0de0011223344556677889900aabbccddeeff00112233445566", "10.0.0.3", False)
# a second node on the head's machine (what the two-node test cluster looks like)
TWIN = Node("a1b2c3ffff0011223344556677889900aabbccddeeff001122334455", "10.0.0.1", True)


def test_a_full_node_id_or_a_unique_prefix_names_the_node():
    assert choose_node([HEAD, WORKER], WORKER.node_id) == WORKER
    assert choose_node([HEAD, WORKER], "FFEE0011") == WORKER  # hex, any case
    assert choose_node([HEAD, WORKER], f"  {HEAD.node_id[:8]} ") == HEAD


def test_an_ip_names_the_one_live_node_there():
    assert choose_node([HEAD, WORKER, DEAD], "10.0.0.2") == WORKER


def test_an_ip_shared_by_two_live_nodes_asks_for_the_id():
    with pytest.raises(PlacementError, match="2 live nodes share this IP.*node id"):
        choose_node([HEAD, TWIN], "10.0.0.1")


def test_a_prefix_of_two_nodes_asks_for_more():
    with pytest.raises(PlacementError, match="matches 2 nodes"):
        choose_node([HEAD, TWIN], "a1b2c3")


def test_a_dead_node_is_refused_by_id_and_not_found_by_ip():
    with pytest.raises(PlacementError, match="is dead"):
        choose_node([HEAD, DEAD], DEAD.node_id[:10])
    with pytest.raises(PlacementError, match="no live Ray node has this IP"):
        choose_node([HEAD, DEAD], "10.0.0.3")


@pytest.mark.parametrize("wanted, message", [
    ("", "empty"),
    ("abc", "neither an IP address nor a node id"),  # too short to be a prefix
    ("worker-1", "neither an IP address nor a node id"),
    ("999999", "no Ray node has this id"),
])
def test_bad_names_say_what_is_wrong_and_list_the_live_nodes(wanted, message):
    with pytest.raises(PlacementError, match=message) as err:
        choose_node([HEAD, WORKER], wanted)
    if wanted:
        assert WORKER.node_id in str(err.value) and "live nodes:" in str(err.value)


def test_node_from_ray_reads_ray_nodes_rows():
    row = {"NodeID": HEAD.node_id, "NodeManagerAddress": "10.0.0.1", "Alive": True,
           "Resources": {"CPU": 2.0, "node:__internal_head__": 1.0}}
    assert Node.from_ray(row) == HEAD
    assert Node.from_ray({"NodeID": "x", "Alive": False}).head is False


def test_the_affinity_pins_the_node():
    # soft=True did not place the actor there on Ray 2.60 (measured): pinned instead
    hard = placement.scheduling_strategy(WORKER)
    assert (hard.node_id, hard.soft) == (WORKER.node_id, False)


def test_start_actor_refuses_an_unknown_node_before_creating_anything(monkeypatch):
    monkeypatch.setattr(daemon, "running_meta", lambda: None)
    monkeypatch.setattr(daemon, "_take_over_stranded", lambda: None)
    monkeypatch.setattr(placement, "cluster_nodes", lambda: [HEAD, WORKER])

    def no_actor(*_args, **_kwargs):
        raise AssertionError("an actor was created")

    monkeypatch.setattr(daemon.TimerActor, "options", no_actor)
    with pytest.raises(PlacementError, match="no Ray node has this id"):
        daemon.start_actor(None, node="0123456789")  # type: ignore[arg-type]


@pytest.mark.parametrize("args, message", [
    (["start", "--node", "10.0.0.2"], "use it with --actor"),
])
def test_cli_node_options_misused_give_a_message_not_a_traceback(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_the_lock_and_status_say_on_which_node_the_timer_runs():
    got = LockState(7, "box", "sqlite:///x", mode="actor",
                    node={"node_id": WORKER.node_id, "node_ip": WORKER.ip}).meta
    assert (got["node_id"], got["node_ip"]) == (WORKER.node_id, "10.0.0.2")
    assert _node_text(got) == f"{WORKER.node_id}, ip 10.0.0.2"
    timer = facts(got, None, datetime.now(UTC), "0.1.0")["timer"]
    assert (timer["node_id"], timer["node_ip"]) == (WORKER.node_id, "10.0.0.2")
    assert _node_text({"pid": 1}) == "unknown"


def test_without_ray_here_says_no_node():
    import ray

    if ray.is_initialized():  # pragma: no cover - another test left Ray connected
        pytest.fail("Ray is connected in a unit test")
    assert placement.here() == {"node_id": None, "node_ip": None}
