"""``koco-timer demo``: the whole stack on kodosumi's default ports, until Ctrl-C."""

import os
import secrets
import shutil
import signal
import time
from pathlib import Path

import click
import psutil

from kodosumi_timer.devstack import (
    DevStackError,
    ProcessGroup,
    RayPorts,
    port_is_free,
    short_temp_dir,
)
from kodosumi_timer.fullstack import start_full_stack

PANEL_PORT = 3370


def _progress(message: str) -> None:
    click.echo(f"  {time.strftime('%H:%M:%S')}  {message}")


def _claim_pidfile(path: Path) -> None:
    """Refuse to start while another demo from this directory runs."""
    if path.exists():
        try:
            pid = int(path.read_text().strip())
        except ValueError:
            pid = -1
        if pid > 0 and psutil.pid_exists(pid) and pid != os.getpid():
            raise click.ClickException(
                f"a demo is already running here (pid {pid}); stop it with Ctrl-C in its "
                f"terminal, or `kill {pid}`")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))


def run_demo(data_dir: Path, panel_port: int = PANEL_PORT) -> None:
    data_dir = data_dir.resolve()
    pidfile = data_dir / "demo.pid"
    _claim_pidfile(pidfile)
    try:
        if not port_is_free(panel_port):
            raise click.ClickException(
                f"port {panel_port} (kodosumi panel) is already in use; is a panel running?")
        ports = RayPorts.defaults()
        click.echo("kodosumi-timer demo: Ray, demo agents, spooler, panel with schedules, timer")
        click.echo(f"  data in {data_dir}")
        group = ProcessGroup(progress=_progress)
        temp_dir = short_temp_dir("kt-demo-")
        started = time.monotonic()
        try:
            stack = start_full_stack(
                group, data_dir=data_dir, temp_dir=temp_dir, ports=ports,
                panel_port=panel_port, secret=os.environ.get("KODO_SECRET_KEY")
                or secrets.token_hex(24), progress=_progress)
        except (DevStackError, KeyboardInterrupt) as exc:
            click.echo(f"demo could not start: {exc}" if isinstance(exc, DevStackError)
                       else "interrupted")
            _stop(group, temp_dir)
            raise SystemExit(1) from exc
        click.echo("")
        click.echo(f"Ready in {time.monotonic() - started:.0f} s.")
        click.echo(f"  panel:   http://localhost:{panel_port}   login: admin / admin")
        click.echo(f"  schedules: http://localhost:{panel_port}/admin/schedule")
        click.echo(f"  API:     http://localhost:{panel_port}/schedule/  (OpenAPI at /schema)")
        click.echo("  flows:   " + ", ".join(f"{k} {v}" for k, v in stack.flows.items()))
        click.echo(f"  logs:    {data_dir / 'logs'}")
        click.echo("Press Ctrl-C to stop everything this demo started.")
        _wait(group)
        _stop(group, temp_dir)
    finally:
        pidfile.unlink(missing_ok=True)


def _wait(group: ProcessGroup) -> None:
    """Block until Ctrl-C/SIGTERM or until one of our processes dies."""
    stop = {"signal": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = True

    # SIGINT explicitly too: a shell may start us with it ignored (background jobs)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stop["signal"]:
            for child in group.children:
                if child.popen.poll() is not None:
                    click.echo(f"{child.name} (pid {child.pid}) exited with code "
                               f"{child.popen.returncode}; see {child.log_path}")
                    return
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def _stop(group: ProcessGroup, temp_dir: Path) -> None:
    click.echo("\nstopping ...")
    stopped = group.stop_all()
    shutil.rmtree(temp_dir, ignore_errors=True)
    click.echo(f"stopped all {len(stopped)} processes this demo started "
               "(Ray's workers included); nothing else was touched")
