"""The private kodosumi stack comes up on free ports and goes down completely, by pid."""

import dataclasses
import shutil
import socket

import httpx
import psutil
import pytest

from kodosumi_timer.devstack import (
    DEMO_APPS,
    SPOOLER_ACTOR,
    SPOOLER_NAMESPACE,
    PortInUseError,
    ProcessGroup,
    RayPorts,
    actor_alive,
    short_temp_dir,
    start_stack,
)

QUICK_INPUTS = {"message", "repeat", "colour", "shout", "day"}


def _alive(procs: list[psutil.Process]) -> list[int]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_stack_comes_up_serves_the_demo_agents_and_stops_every_process(tmp_path):
    temp_dir = short_temp_dir()
    group = ProcessGroup(progress=print)
    ports = RayPorts.free()
    try:
        stack = start_stack(group, data_dir=tmp_path / "data", temp_dir=temp_dir,
                            ports=ports, secret="test-secret", progress=print)

        assert stack.register_urls == [f"{stack.serve_url}/-/routes"]
        routes = httpx.get(stack.register_urls[0], timeout=10).json()
        assert {app.route_prefix for app in DEMO_APPS} <= set(routes)
        assert httpx.get(f"{stack.serve_url}/quick/openapi.json", timeout=10).status_code == 200
        for app in DEMO_APPS:
            form = httpx.get(f"{stack.serve_url}{app.route_prefix}/", timeout=10).json()
            assert form["elements"], app.name
            assert form["summary"]
        quick = httpx.get(f"{stack.serve_url}/quick/", timeout=10).json()
        assert QUICK_INPUTS <= {element.get("name") for element in quick["elements"]}
        assert actor_alive(stack.dashboard_url, SPOOLER_ACTOR, SPOOLER_NAMESPACE)
        assert stack.flow_paths()["quick"] == f"/-/127.0.0.1/{ports.serve_http}/quick/-/"
        started = list(group.pids)
    finally:
        stopped = group.stop_all()
        shutil.rmtree(temp_dir, ignore_errors=True)

    assert len(started) == 2  # the Ray head and the spooler
    assert {proc.pid for proc in stopped} >= set(started)
    assert len(stopped) > 10  # Ray's own processes and workers were found and stopped
    assert _alive(stopped) == []
    ports.ensure_free()  # nothing listens on the stack's ports any more


def test_a_taken_port_is_named_in_the_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = dataclasses.replace(RayPorts.free(), gcs=port)
        with pytest.raises(PortInUseError, match=rf"^port {port} \(Ray\) is already in use$"):
            ports.ensure_free()
