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
    free_port,
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


def _koco(env: dict[str, str], *args: str, timeout: float = 120):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "kodosumi_timer.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _poll(check, what: str, timeout: float):
    import time

    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s"
        time.sleep(0.3)


@pytest.mark.integration
@pytest.mark.timeout(420)
def test_the_cli_on_a_real_stack_and_the_demo_outlives_its_timer(tmp_path):
    """What a new user does in a second terminal next to the demo: log in, schedule by
    flow name, watch it run; stop the demo's timer and put one in the cluster instead,
    while the rest of the demo keeps running."""
    import json
    import threading

    from kodosumi_timer.demo import watch
    from kodosumi_timer.fullstack import start_full_stack

    temp_dir = short_temp_dir()
    group = ProcessGroup(progress=print)
    said: list[str] = []
    stopping = threading.Event()
    ended: list[object] = []
    try:
        stack = start_full_stack(group, data_dir=tmp_path / "data", temp_dir=temp_dir,
                                 ports=RayPorts.free(), panel_port=free_port(),
                                 secret="an-integration-secret", progress=print)
        watcher = threading.Thread(
            target=lambda: ended.append(watch(group, stopping.is_set, said.append, poll=0.2)))
        watcher.start()
        env = dict(stack.env, KODO_TIMER_AUTH_FILE=str(tmp_path / "auth.json"))

        login = _koco(env, "login", "--url", stack.panel_url, "--name", "admin",
                      "--password", "admin")
        assert login.returncode == 0, login.stderr
        flows = _koco(env, "flows")
        assert "quick" in flows.stdout.split(), flows.stdout
        made = _koco(env, "create", "--flow", "quick", "--in", "3s", "--title", "cli",
                     "-i", "message=from the cli", "--json")
        assert made.returncode == 0, made.stderr
        schedule_id = json.loads(made.stdout)["id"]
        assert json.loads(made.stdout)["flow_url"] == stack.flows["quick"]

        def finished():
            runs = json.loads(_koco(env, "runs", schedule_id[:8], "--json").stdout)["items"]
            return runs if runs and runs[0]["status"] == "finished" else None
        _poll(finished, "the scheduled run", 90)
        table = _koco(env, "runs", schedule_id[:8]).stdout
        assert "finished" in table and "timer" in table, table

        # stop the demo's timer from "another terminal": the rest keeps running
        stopped = _koco(env, "stop")
        assert stopped.returncode == 0 and stopped.stdout.startswith("timer stopped"), stopped
        _poll(lambda: said, "the demo noticing its timer stopped", 30)
        assert "the rest of the demo keeps running" in said[0]
        assert watcher.is_alive() and not ended
        assert "timer" not in [c.name for c in group.children]
        assert _koco(env, "ls").returncode == 0  # the panel still answers
        status = _koco(env, "status")
        assert status.returncode == 3 and status.stdout.strip() == "timer: not running"

        # and switch to a timer inside the cluster
        actor = _koco(env, "start", "--actor")
        assert actor.returncode == 0, actor.stderr
        status = _koco(env, "status")
        assert "running in the cluster as a Ray actor" in status.stdout, status.stdout
        assert f"store: {stack.schedule_db}" in status.stdout
        rerun = _koco(env, "run", schedule_id[:8], "--json")
        assert rerun.returncode == 0, rerun.stderr

        def ran_again():
            runs = json.loads(_koco(env, "runs", schedule_id[:8], "--json").stdout)["items"]
            return [r for r in runs if r["trigger"] == "manual" and r["status"] == "finished"]
        _poll(ran_again, "the manual run through the actor timer", 90)
        assert _koco(env, "stop").returncode == 0
        assert watcher.is_alive() and not ended
    finally:
        stopping.set()
        stopped_procs = group.stop_all()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert ended == [None]
    assert _alive(stopped_procs) == []
    # with the cluster gone, status says so in a line, quickly
    gone = _koco(env, "status", timeout=30)
    assert gone.returncode == 1
    assert gone.stderr.strip() == \
        f"Error: no Ray cluster answers at {stack.kodo.ray_address} (KODO_RAY_SERVER)"
