"""``koco-timer demo``: the whole stack on kodosumi's default ports, until Ctrl-C."""

import os
import secrets
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import click
import psutil

from kodosumi_timer.config import get_settings
from kodosumi_timer.devstack import (
    Child,
    DevStackError,
    ProcessGroup,
    RayPorts,
    port_is_free,
    short_temp_dir,
)
from kodosumi_timer.fullstack import start_full_stack
from kodosumi_timer.preflight import DEFAULT_SECRET

PANEL_PORT = 3370
SECRET_FILE = "secret.key"
SHELL_FILE = "demo.sh"


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


# scheduled executions running at once on the demo: keeps a two-core machine responsive
DEMO_MAX_RUNNING = 8


def demo_secret(data_dir: Path) -> tuple[str, Path | None]:
    """The operator's KODO_SECRET_KEY if set; else the demo's own, made once and kept in
    ``data_dir`` (only its owner reads it), so logins survive a restart of the demo.
    Returns the secret and the file it is kept in (None: the operator's)."""
    configured = get_settings().SECRET_KEY
    if configured != DEFAULT_SECRET:
        return configured, None
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    secret = path.read_text().strip()
    if not secret:
        raise click.ClickException(f"{path} is empty; delete it and the demo makes a new one")
    return secret, path


def write_shell_env(path: Path, env: Mapping[str, str], secret_file: Path | None) -> None:
    """A file to `source` in another terminal: koco-timer on PATH and the settings of
    this demo (the ones it set), so `koco-timer status/stop/start` find its stack."""
    lines = ["# written by `koco-timer demo`: `source` it in another terminal to use",
             "# koco-timer with the running demo's settings"]
    activate = Path(sys.prefix) / "bin" / "activate"
    if activate.exists():
        lines.append(f"source {shlex.quote(str(activate))}")
    for key, value in sorted(env.items()):
        if key == "KODO_SECRET_KEY":
            continue
        if (key.startswith("KODO_") or key == "RAY_ADDRESS") and os.environ.get(key) != value:
            lines.append(f"export {key}={shlex.quote(value)}")
    if secret_file is not None:
        lines.append(f'export KODO_SECRET_KEY="$(cat {shlex.quote(str(secret_file))})"')
    path.write_text("\n".join(lines) + "\n")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
        secret, secret_file = demo_secret(data_dir)
        # a herd of slots must not swamp a small machine (bench/real_burst.py)
        os.environ.setdefault("KODO_TIMER_MAX_RUNNING", str(DEMO_MAX_RUNNING))
        click.echo(f"  at most {os.environ['KODO_TIMER_MAX_RUNNING']} scheduled executions "
                   "at once (KODO_TIMER_MAX_RUNNING)")
        # notifications may go to a receiver on this machine (docs/NOTIFY.md)
        os.environ.setdefault("KODO_TIMER_NOTIFY_ALLOW", "http://127.0.0.1")
        click.echo(f"  notifications may reach {os.environ['KODO_TIMER_NOTIFY_ALLOW']} "
                   "(KODO_TIMER_NOTIFY_ALLOW)")
        group = ProcessGroup(progress=_progress)
        temp_dir = short_temp_dir("kt-demo-")
        started = time.monotonic()
        try:
            stack = start_full_stack(
                group, data_dir=data_dir, temp_dir=temp_dir, ports=ports,
                panel_port=panel_port, secret=secret, progress=_progress)
        except (DevStackError, KeyboardInterrupt) as exc:
            click.echo(f"demo could not start: {exc}" if isinstance(exc, DevStackError)
                       else "interrupted")
            _stop(group, temp_dir)
            raise SystemExit(1) from exc
        shell_file = data_dir / SHELL_FILE
        write_shell_env(shell_file, stack.env, secret_file)
        click.echo("")
        click.echo(f"Ready in {time.monotonic() - started:.0f} s.")
        click.echo(f"  panel:     http://localhost:{panel_port}   login: admin / admin")
        click.echo(f"  schedules: http://localhost:{panel_port}/admin/schedule")
        click.echo(f"  API:       http://localhost:{panel_port}/schedule/  "
                   "(OpenAPI at /schema/openapi.json)")
        click.echo("  flows:     " + ", ".join(f"{k} {v}" for k, v in stack.flows.items()))
        click.echo(f"  logs:      {data_dir / 'logs'}")
        click.echo("  secret:    " + (f"kept in {_shown(secret_file)} (logins survive a restart)"
                                      if secret_file else "yours (KODO_SECRET_KEY)"))
        click.echo("In another terminal, for the koco-timer command with this demo's settings:")
        click.echo(f"  source {shlex.quote(_shown(shell_file))}")
        click.echo("  koco-timer login --name admin   # then: koco-timer flows, ls, create ...")
        click.echo("Press Ctrl-C to stop everything this demo started.")
        ended = watch(group, _stop_requested(), _progress)
        if ended is not None:
            click.echo(f"{ended.name} (pid {ended.pid}) exited with code "
                       f"{ended.popen.returncode}; see {ended.log_path}")
        _stop(group, temp_dir)
        shell_file.unlink(missing_ok=True)
    finally:
        pidfile.unlink(missing_ok=True)


def _stop_requested() -> Callable[[], bool]:
    """Whether Ctrl-C or SIGTERM arrived (the handlers only set a flag)."""
    stop = {"signal": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = True

    # SIGINT explicitly too: a shell may start us with it ignored (background jobs)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return lambda: stop["signal"]


def watch(group: ProcessGroup, stopping: Callable[[], bool], say: Callable[[str], None],
          optional: Collection[str] = ("timer",), poll: float = 0.5) -> Child | None:
    """Block until ``stopping()`` (returns None) or until a child the demo cannot do
    without exits (returns it). An ``optional`` child that exits — the timer, stopped or
    replaced from another terminal (`koco-timer stop`, `start --actor`) — is said and
    let go; the rest of the demo keeps running."""
    try:
        while not stopping():
            for child in list(group.children):
                code = child.popen.poll()
                if code is None:
                    continue
                if child.name not in optional:
                    return child
                group.forget(child)
                say(f"the demo's {child.name} (pid {child.pid}) exited with code {code} "
                    f"(log {child.log_path}); the rest of the demo keeps running. "
                    "`koco-timer start` with the demo's settings starts a timer again")
            time.sleep(poll)
    except KeyboardInterrupt:
        pass
    return None


def _stop(group: ProcessGroup, temp_dir: Path) -> None:
    click.echo("\nstopping ...")
    stopped = group.stop_all()
    shutil.rmtree(temp_dir, ignore_errors=True)
    click.echo(f"stopped all {len(stopped)} processes this demo started "
               "(Ray's workers included); nothing else was touched")
