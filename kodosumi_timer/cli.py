"""``koco-timer``: the composed panel, the timer, previews and the demo."""

import asyncio
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kodosumi_timer import __version__
from kodosumi_timer.cli_notify import notify_default
from kodosumi_timer.cli_user import register as register_user_commands
from kodosumi_timer.config import TimerSettings, get_settings
from kodosumi_timer.placement import PlacementError
from kodosumi_timer.preflight import (
    PreflightError,
    check_secret,
    endpoint_of,
    mask_url,
    probe_ray,
    probe_store,
    tcp_answers,
)

if TYPE_CHECKING:
    from kodosumi_timer.models import PreviewResponse, PreviewTime


@click.group()
@click.version_option(__version__, prog_name="koco-timer")
def cli() -> None:
    """Scheduled agent executions for kodosumi.

    \b
    For users (through a panel): login, flows, ls, show, create, edit, pause, resume,
    run, backfill, hook, rm, runs, notify-default, logout.
    For operators: demo, serve, start, stop, status, check-config, db upgrade.
    For everyone: preview.
    """


def fail_fast[**P, R](command: Callable[P, R]) -> Callable[P, R]:
    """What a command could not reach, or refuses, is one line and exit code 1."""
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except PreflightError as exc:
            raise click.ClickException(str(exc)) from exc
    return wrapper


def _check_secret(secret: str, allowed: bool, what: str) -> None:
    try:
        check_secret(secret, allowed, what)
    except PreflightError as exc:
        # next to a running demo, its secret is one `source` away
        from kodosumi_timer.demo import SHELL_FILE

        demo = Path("data") / SHELL_FILE
        if demo.exists():
            raise PreflightError(f"{exc}; for the demo here: source {demo}") from exc
        raise


allow_default_secret = click.option(
    "--allow-default-secret", is_flag=True,
    help="Start even with kodosumi's default secret key (KODO_TIMER_ALLOW_DEFAULT_SECRET).")


@cli.command()
@click.option("--address", default=None, help="Panel URL to listen on (KODO_APP_SERVER).")
@click.option("--register", multiple=True, help="Flow source(s) to register, like koco serve.")
@click.option("--exec-dir", default=None, help="kodosumi's execution directory.")
@allow_default_secret
@fail_fast
def serve(address: str | None, register: tuple[str, ...], exec_dir: str | None,
          allow_default_secret: bool) -> None:
    """Run kodosumi's panel with the schedule API and pages."""
    from kodosumi.config import Settings

    from kodosumi_timer.panel.server import run

    overrides: dict[str, object] = {}
    if address:
        overrides["APP_SERVER"] = address
    if register:
        overrides["REGISTER_FLOW"] = list(register)
    if exec_dir:
        overrides["EXEC_DIR"] = exec_dir
    if allow_default_secret:
        # the composed app checks the secret again; it reads the choice from here
        os.environ["KODO_TIMER_ALLOW_DEFAULT_SECRET"] = "true"
    settings = get_settings()
    kodo = Settings(**overrides)
    _check_secret(kodo.SECRET_KEY, settings.TIMER_ALLOW_DEFAULT_SECRET, "the panel")
    probe_ray(kodo.RAY_SERVER, settings.TIMER_CONNECT_TIMEOUT)
    probe_store(settings.TIMER_DATABASE, settings.TIMER_CONNECT_TIMEOUT)
    run(kodo)


def _warn_without_panel(settings: TimerSettings) -> None:
    """The timer may start before the panel, but the operator should know."""
    endpoint = endpoint_of(settings.TIMER_PANEL_URL)
    if endpoint is not None and not tcp_answers(*endpoint, settings.TIMER_CONNECT_TIMEOUT):
        click.echo(f"warning: no panel answers at {settings.TIMER_PANEL_URL} "
                   "(KODO_TIMER_PANEL_URL); launches fail until one does", err=True)


@cli.command()
@click.option("--block", is_flag=True, help="Run in the foreground.")
@click.option("--actor", is_flag=True,
              help="Run inside the Ray cluster as a detached actor that Ray restarts.")
@click.option("--node", default=None, metavar="NODE-ID|IP",
              help="With --actor: pin the timer to this Ray node. If the node is lost, "
                   "start again: the stranded timer is replaced on a live node.")
@click.option("--ray-server", default=None, help="Ray address (KODO_RAY_SERVER).")
@click.option("--panel", default=None, help="Panel URL to launch through (KODO_TIMER_PANEL_URL).")
@allow_default_secret
@fail_fast
def start(block: bool, actor: bool, node: str | None, ray_server: str | None,
          panel: str | None, allow_default_secret: bool) -> None:
    """Start the timer (one per Ray cluster)."""
    if node is not None and not actor:
        raise click.UsageError("--node places the Ray actor: use it with --actor")
    overrides: dict[str, object] = {}
    if ray_server:
        overrides["RAY_SERVER"] = ray_server
    if panel:
        overrides["TIMER_PANEL_URL"] = panel
    if allow_default_secret:
        overrides["TIMER_ALLOW_DEFAULT_SECRET"] = True
    settings = get_settings(**overrides)
    _check_secret(settings.SECRET_KEY, settings.TIMER_ALLOW_DEFAULT_SECRET, "the timer")
    probe_ray(settings.RAY_SERVER, settings.TIMER_CONNECT_TIMEOUT)
    probe_store(settings.TIMER_DATABASE, settings.TIMER_CONNECT_TIMEOUT)
    if not block:
        _warn_without_panel(settings)

    from kodosumi_timer import daemon

    if block:
        try:
            daemon.run_blocking(settings)
        except daemon.AlreadyRunning as exc:
            raise click.ClickException(str(exc)) from exc
        return
    daemon.connect(settings)
    meta = daemon.running_meta()
    if meta is not None:
        raise click.ClickException(
            f"a timer is already running on this cluster (pid={meta['pid']} on {meta['host']})")
    if actor:
        try:
            meta = daemon.start_actor(settings, node)
        except (daemon.AlreadyRunning, PlacementError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"timer started as a Ray actor (pid={meta['pid']} on {meta['host']}, "
                   f"ray node {_node_text(meta)}); Ray restarts it if it dies; "
                   f"log: {meta.get('log', settings.TIMER_LOG_FILE)}")
        return
    argv = ["start"] + sum(([f"--{k}", v] for k, v in
                            (("ray-server", ray_server), ("panel", panel)) if v), [])
    if allow_default_secret:
        argv.append("--allow-default-secret")
    pid = daemon.start_background(argv)
    click.echo(f"timer starting (pid={pid}) ...")
    if daemon.wait_registered(pid) is None:
        raise click.ClickException(f"the timer (pid={pid}) did not come up; see "
                                   f"{settings.TIMER_LOG_FILE}")
    click.echo(f"timer started (pid={pid}); log: {settings.TIMER_LOG_FILE}")


@cli.command()
@click.option("--ray-server", default=None, help="Ray address (KODO_RAY_SERVER).")
@fail_fast
def stop(ray_server: str | None) -> None:
    """Stop the cluster's timer (SIGTERM: it finishes the step in hand)."""
    from kodosumi_timer import daemon

    settings = get_settings(**({"RAY_SERVER": ray_server} if ray_server else {}))
    daemon.connect(settings)
    pid = daemon.stop()
    click.echo("no timer running" if pid is None else f"timer stopped (pid={pid})")


@cli.command()
@click.option("--ray-server", default=None, help="Ray address (KODO_RAY_SERVER).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the timer's and the store's figures as JSON (what GET /metrics shows).")
@fail_fast
def status(ray_server: str | None, as_json: bool) -> None:
    """Show whether the timer runs, since when, and what it did (exit code 3: not running)."""
    from kodosumi_timer import daemon
    from kodosumi_timer.store import open_store

    settings = get_settings(**({"RAY_SERVER": ray_server} if ray_server else {}))
    daemon.connect(settings)
    meta = daemon.running_meta()
    if as_json:
        _status_json(settings, meta)
        sys.exit(0 if meta is not None else 3)
    if meta is None:
        click.echo("timer: not running")
        sys.exit(3)

    async def due_next_hour() -> tuple[int, list[str]]:
        from kodosumi_timer.system import status_lines

        store = await open_store(settings.TIMER_DATABASE, migrate_schema=False)
        try:
            now = datetime.now(UTC)
            due = await store.count_due_before(now + timedelta(hours=1))
            return due, await status_lines(store)
        finally:
            await store.close()

    uptime = int(time.time() - meta["started"])
    mode = "in the cluster as a Ray actor" if meta.get("mode") == "actor" else "as a process"
    click.echo(f"timer: running {mode} (pid={meta['pid']} on {meta['host']}), up {uptime}s")
    # masked again: a timer of an older version published the URL as it was
    click.echo(f"ray node: {_node_text(meta)}")
    click.echo(f"store: {mask_url(str(meta['database']))}")
    click.echo(f"fires since start: {meta['fires']}, failures: {meta['failures']}")
    probe_store(settings.TIMER_DATABASE, settings.TIMER_CONNECT_TIMEOUT, existing=True)
    due, system_lines = asyncio.run(due_next_hour())
    click.echo(f"schedules due in the next hour: {due}")
    # system schedules (issue 6)
    click.echo(f"system schedules: {len(system_lines) or 'none'} "
               f"(file: {settings.TIMER_SCHEDULES})")
    for line in system_lines:
        click.echo(f"  {line}")


def _node_text(meta: dict[str, object]) -> str:
    """The Ray node the timer runs on, as status shows it."""
    if not meta.get("node_id"):
        return "unknown"  # a timer of an older version publishes none
    return f"{meta['node_id']}, ip {meta.get('node_ip')}"


def _status_json(settings: TimerSettings, meta: dict[str, object] | None) -> None:
    from kodosumi_timer import metrics
    from kodosumi_timer.store import open_store

    probe_store(settings.TIMER_DATABASE, settings.TIMER_CONNECT_TIMEOUT, existing=True)

    async def store_figures(now: datetime) -> dict[str, object]:
        store = await open_store(settings.TIMER_DATABASE, migrate_schema=False)
        try:
            return await metrics.store_figures(store, now)
        finally:
            await store.close()

    now = datetime.now(UTC)
    found = metrics.facts(meta, asyncio.run(store_figures(now)), now, __version__)
    click.echo(json.dumps(found, indent=2))


@cli.command("check-config")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def check_config(file: str | None) -> None:
    """Validate a system schedules FILE (default: KODO_TIMER_SCHEDULES) without touching
    the store; exit code 1 if it would be rejected."""
    from kodosumi_timer import cron
    from kodosumi_timer.system import SystemConfigError, load_file

    path = file or get_settings().TIMER_SCHEDULES
    try:
        entries = load_file(path, missing_ok=False)
    except SystemConfigError as exc:
        click.echo(str(exc), err=True)
        click.echo(f"{path}: rejected; the timer keeps the system schedules it has", err=True)
        sys.exit(1)
    now = datetime.now(UTC)
    click.echo(f"{path}: OK, {len(entries)} system schedule(s)")
    for entry in entries:
        nxt = cron.preview(entry.cron, entry.timezone, now, 1)
        when = nxt[0].local.strftime("%Y-%m-%d %H:%M %Z") if nxt else "-"
        state = "" if entry.enabled else " [disabled]"
        click.echo(f"  {entry.flow}  {entry.cron!r} {entry.timezone}: "
                   f"{cron.describe(entry.cron)}; next {when}{state}")


# preview's fields -> its options (what an error names)
PREVIEW_OPTIONS = {"cron_expression": "", "text": "", "run_at": "", "every": "--every",
                   "anchor": "--start", "timezone": "--timezone",
                   "exclude_dates": "--skip-date", "jitter": "--jitter", "count": "--count"}


@cli.command()
@click.argument("expression", metavar="[RULE]", required=False)
@click.option("--timezone", "zone", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--after", default=None, help="ISO 8601 start instant (default: now).")
@click.option("--count", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--every", default=None, metavar="DURATION",
              help="Instead of RULE: an interval in elapsed time (90s, 15m, 2h, 1d).")
@click.option("--start", "anchor", default=None, metavar="TIME",
              help="--every: the first slot (default: --after).")
@click.option("--skip-date", "skip_dates", multiple=True, metavar="DATE",
              help="A date with no runs (YYYY-MM-DD, in --timezone); shown skipped.")
@click.option("--jitter", default=None, metavar="DURATION",
              help="Show when each run is sent: up to this long after its slot.")
@click.option("--dst-gap", type=click.Choice(["shift", "skip"]), default=None,
              help="cron: a wall time the clock skips runs when the gap ends, or not.")
@click.option("--dst-repeat", type=click.Choice(["once", "twice"]), default=None,
              help="cron: a wall time the clock shows twice runs at the first, or both.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def preview(expression: str | None, zone: str, after: str | None, count: int,
            every: str | None, anchor: str | None, skip_dates: tuple[str, ...],
            jitter: str | None, dst_gap: str | None, dst_repeat: str | None,
            as_json: bool) -> None:
    """Describe a RULE and list its next fire times.

    RULE is a cron expression ("0 9 * * MON-FRI") or a rule in words ("every weekday at
    9am", "every 90 minutes", "first Monday of the month at 08:30", "tomorrow at 9");
    or give --every instead. Excluded dates show as skipped slots, jitter as the time
    each run is sent, and what each DST choice does at the zone's next changes.
    """
    from pydantic import ValidationError

    from kodosumi_timer import cron
    from kodosumi_timer.cli_rules import seconds, validation_line
    from kodosumi_timer.client import ClientError
    from kodosumi_timer.errors import InvalidInput
    from kodosumi_timer.models import PreviewRequest
    from kodosumi_timer.previews import rule_preview

    if expression is not None and every is not None:
        raise click.ClickException("give a RULE or --every, not both")
    if expression is None and every is None:
        raise click.ClickException('give a RULE ("0 9 * * MON-FRI", "every weekday at 9am") '
                                   "or --every DURATION")
    fields: dict[str, object] = {"timezone": zone, "every": every, "anchor": anchor,
                                 "exclude_dates": list(skip_dates)}
    try:
        start_at = datetime.fromisoformat(after) if after else datetime.now(UTC)
        if start_at.tzinfo is None:
            start_at = cron.resolve_wall_time(start_at, zone)[0]
        if expression is not None:
            try:
                cron.validate(expression)
                fields["cron_expression"] = expression
            except cron.CronError:
                if _looks_like_cron(expression):
                    raise
                fields["text"] = expression
        fields["jitter"] = seconds("--jitter", jitter)
        if dst_gap or dst_repeat:
            fields["dst_policy"] = {"gap": dst_gap, "repeat": dst_repeat}
        # the API shows at most 100 times; here the count is the user's to choose
        request = PreviewRequest.model_validate(fields).model_copy(update={"count": count})
        answer = rule_preview(request, start_at)
    except ValidationError as exc:
        raise click.ClickException(validation_line(exc, PREVIEW_OPTIONS)) from exc
    except InvalidInput as exc:
        option = PREVIEW_OPTIONS.get(exc.field or "", "")
        raise click.ClickException(f"{option}: {exc.detail}" if option else exc.detail) \
            from exc
    except (ClientError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(_preview_json(expression, every, answer), indent=2))
        return
    click.echo(f"{answer.description} ({zone})")
    if answer.rule is not None:
        from kodosumi_timer.cli_rules import read_as

        click.echo(f"  read as: {read_as(answer.rule.model_dump())}")
    _echo_times(answer.times)
    for effect in answer.dst_effects:
        click.echo(f"  DST {effect}")


def _looks_like_cron(text: str) -> bool:
    """An alias, or five fields that start like a cron minute: its error is cron's."""
    fields = text.split()
    return text.strip().startswith("@") or (
        len(fields) == 5 and all(c in "0123456789*/,-" for c in fields[0]))


def _preview_json(expression: str | None, every: str | None,
                  answer: "PreviewResponse") -> dict[str, object]:
    """The preview for scripts: the rule as given, and what the API's preview says."""
    body: dict[str, object] = {}
    if answer.rule is not None:
        body["text"] = expression
    elif expression is not None:
        body["expression"] = expression
    else:
        body["every"] = every
    body["timezone"] = answer.timezone
    if answer.rule is not None:
        body["rule"] = answer.rule.model_dump(mode="json")
    body["description"] = answer.description
    times = []
    for t in answer.times:
        time_ = {"utc": t.utc.isoformat(), "local": t.local.isoformat(),
                 "dst_note": t.dst_note}
        if t.send_at is not None:
            time_["send_at"] = t.send_at.isoformat()
        if t.skipped is not None:
            time_["skipped"] = t.skipped
        times.append(time_)
    body["times"] = times
    if answer.dst_effects:
        body["dst_effects"] = answer.dst_effects
    return body


def _echo_times(times: "Sequence[PreviewTime]") -> None:
    with_seconds = any(t.local.second for t in times)
    when = "%a %Y-%m-%d %H:%M:%S %Z" if with_seconds else "%a %Y-%m-%d %H:%M %Z"
    for t in times:
        marks = [f"skipped: {t.skipped}"] if t.skipped else []
        if t.send_at is not None and not t.skipped:
            marks.append(f"sent {t.send_at.astimezone(t.local.tzinfo):%H:%M:%S} (jitter)")
        if t.dst_note:
            marks.append(f"* {t.dst_note}")
        click.echo(f"  {t.local.strftime(when):<28} "
                   f"{t.utc.strftime('%Y-%m-%d %H:%M' + ':%S' * with_seconds)} UTC"
                   + "".join(f"  {m}" for m in marks))


@cli.command()
@click.option("--data-dir", default="./data", show_default=True, help="Where everything is kept.")
@click.option("--port", default=3370, show_default=True, help="Panel port.")
def demo(data_dir: str, port: int) -> None:
    """Start Ray, the demo agents, kodosumi's spooler, the panel and the timer; Ctrl-C stops all."""
    from kodosumi_timer.demo import run_demo

    run_demo(Path(data_dir), panel_port=port)


@cli.group()
def db() -> None:
    """The schedule store."""


@db.command()
@fail_fast
def upgrade() -> None:
    """Apply the store's migrations (the panel and the timer also do this on start)."""
    from kodosumi_timer.store import open_store

    settings = get_settings()
    probe_store(settings.TIMER_DATABASE, settings.TIMER_CONNECT_TIMEOUT)

    async def run() -> None:
        store = await open_store(settings.TIMER_DATABASE)
        await store.close()

    asyncio.run(run())
    click.echo("schedule store is up to date")


register_user_commands(cli)
cli.add_command(notify_default)

if __name__ == "__main__":
    cli()
