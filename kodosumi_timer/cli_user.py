"""The user commands of ``koco-timer``: log in to a panel and manage one's schedules
through its ``/schedule`` API — tables for people, ``--json`` for scripts."""

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import httpx
import yaml

from kodosumi_timer.cli_rules import (
    CLEARABLE,
    OVERLAPS,
    read_as,
    rule_fields,
    rule_options,
    said_as_option,
    settings_lines,
)
from kodosumi_timer.client import (
    ClientError,
    Credentials,
    PanelClient,
    default_auth_file,
    flow_name,
    normal_url,
)
from kodosumi_timer.config import TimerSettings, get_settings

SHORT_ID = 8


def credentials(settings: TimerSettings) -> Credentials:
    path = settings.TIMER_AUTH_FILE
    return Credentials(Path(path).expanduser() if path else default_auth_file())


def panel_target(given: str | None, settings: TimerSettings,
                 creds: Credentials) -> tuple[str, str]:
    """The panel a command talks to, and how the user would change it."""
    if given:
        return normal_url(given), "--url"
    if creds.current:
        return creds.current, "the panel of your last login; --url for another"
    return normal_url(settings.TIMER_PANEL_URL), "KODO_TIMER_PANEL_URL, or --url"


def open_panel(given: str | None) -> PanelClient:
    """A client with the token of the last login at that panel."""
    settings = get_settings()
    creds = credentials(settings)
    url, hint = panel_target(given, settings, creds)
    login = creds.get(url)
    if login is None:
        raise ClientError(f"not logged in at {url}: run `koco-timer login --url {url}`")
    if login.expires is not None and login.expires <= datetime.now(UTC):
        raise ClientError(f"your login at {url} expired at {_utc(login.expires)}: run "
                          f"`koco-timer login --url {url}`")
    return PanelClient(url, login.token, url_hint=hint,
                       connect_timeout=settings.TIMER_CONNECT_TIMEOUT)


def one_line_errors[**P, R](command: Callable[P, R]) -> Callable[P, R]:
    """A failure is one line on stderr and exit code 1, never a stack trace."""
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ClientError as exc:
            raise click.ClickException(str(exc)) from exc
        except httpx.InvalidURL as exc:
            raise click.ClickException(f"not a panel URL: {exc} (--url)") from exc
    return wrapper


url_option = click.option("--url", default=None, metavar="URL",
                          help="The panel (default: the one you last logged in to).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


# -- formatting ----------------------------------------------------------------------


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _local(value: str | None, zone: str, weekday: bool = True) -> str:
    moment = _when(value)
    if moment is None:
        return "-"
    try:
        local = moment.astimezone(ZoneInfo(zone))
    except (KeyError, ValueError):
        local = moment.astimezone(UTC)
    return local.strftime("%a %Y-%m-%d %H:%M %Z" if weekday else "%Y-%m-%d %H:%M:%S %Z")


def _rule(item: dict[str, Any]) -> str:
    if item["schedule_type"] == "interval":
        return f"every {item.get('every')}"
    return str(item.get("cron_expression")) if item["schedule_type"] == "cron" else "once"


def _describe(item: dict[str, Any]) -> str:
    if item["schedule_type"] == "interval":
        return (f"every {item.get('every')} from {_local(item.get('anchor'), item['timezone'])}"
                ", counted in elapsed time")
    if item["schedule_type"] != "cron":
        return f"once, at {_local(item.get('run_at'), item['timezone'])}"
    from kodosumi_timer import cron

    try:
        words = cron.describe(item["cron_expression"])
    except ValueError:
        words = "?"
    return f"{item['cron_expression']}: {words}"


def _title(item: dict[str, Any]) -> str:
    text = item.get("title") or item.get("expose_name") or ""
    return f"{text} [system]" if item.get("system") else text


def table(headers: Sequence[str], rows: Iterable[Sequence[str]],
          widest: dict[int, int] | None = None) -> str:
    """Columns padded to their widest cell; cells of the columns in ``widest`` cut."""
    cut = widest or {}
    cells = [[(c if i not in cut or len(c) <= cut[i] else c[:cut[i] - 1] + "…")
              for i, c in enumerate(row)] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return "\n".join(lines)


def _catchup(item: dict[str, Any]) -> str:
    late = f"a slot sent over {item['catchup_window']} s late"
    return (f"{late} is missed, the latest of them runs at once (once)"
            if item["catchup"] == "once" else f"{late} is missed (skip)")


def show_schedule(item: dict[str, Any]) -> str:
    zone = item["timezone"]
    limit = f" of at most {item['max_runs']}" if item.get("max_runs") else ""
    # a missed or skipped slot leaves last_run empty: a once schedule's slot is its run_at
    last = item.get("last_run") or (item.get("run_at") if item["schedule_type"] == "once"
                                    and item.get("last_status") else None)
    fields = [
        ("id", item["id"]),
        ("title", _title(item) or "-"),
        ("flow", f"{flow_name(item['flow_url'])} ({item['flow_url']})"),
        ("owner", "the timer (system schedule)" if item.get("system") else item["owner"]),
        ("rule", f"{_describe(item)} ({zone})"),
        ("state", item["state"] + (f": {item['note']}" if item.get("note") else "")),
        ("next run", _local(item.get("next_run"), zone)),
        ("last run", "-" if not last else
         f"{_local(last, zone)}: {item.get('last_status') or '?'}"
         + (f" (fid {item['last_fid']})" if item.get("last_fid") else "")),
        ("runs", f"{item['run_count']}{limit}"),
        ("ends", _local(item.get("end_at"), zone) if item.get("end_at") else "-"),
        ("catchup", _catchup(item)),
        *settings_lines(item),
        ("inputs", json.dumps(item.get("inputs") or {}, ensure_ascii=False)),
        ("version", f"{item['version']}, changed {_local(item['updated'], zone)}"),
    ]
    problem = item.get("inputs_problem")
    if problem:
        fields.append(("problem", f"the inputs no longer fit the agent's form: "
                                  f"{problem['detail']}; the next run will be refused"))
    fields += [("note", note) for note in item.get("notes") or []]
    return "\n".join(f"{name:<9} {value}" for name, value in fields)


# -- commands ------------------------------------------------------------------------


@click.command()
@click.option("--url", default=None, metavar="URL",
              help="The panel, e.g. http://localhost:3370 (default: the last one, else "
                   "KODO_TIMER_PANEL_URL).")
@click.option("--name", default=None, help="Your kodosumi user name (prompted if left out).")
@click.option("--password", default=None,
              help="Your password (prompted, unseen, if left out; never stored).")
@one_line_errors
def login(url: str | None, name: str | None, password: str | None) -> None:
    """Log in to a panel; its token (never the password) is kept for the other commands."""
    settings = get_settings()
    creds = credentials(settings)
    target, hint = panel_target(url, settings, creds)
    if name is None:
        name = click.prompt("name")
    if password is None:
        password = click.prompt("password", hide_input=True)
    client = PanelClient(target, None, url_hint=hint,
                         connect_timeout=settings.TIMER_CONNECT_TIMEOUT)
    try:
        session = client.login(name, password)
    finally:
        client.close()
    creds.save(session)
    until = f" until {_utc(session.expires)}" if session.expires else ""
    click.echo(f"logged in at {session.url} as {session.name}; the token is valid{until}, "
               f"kept in {creds.path}")


@click.command()
@url_option
@one_line_errors
def logout(url: str | None) -> None:
    """Forget the token of a panel."""
    settings = get_settings()
    creds = credentials(settings)
    target, _ = panel_target(url, settings, creds)
    if creds.forget(target):
        click.echo(f"logged out of {target} (its token is deleted from {creds.path})")
    else:
        click.echo(f"not logged in at {target}")


@click.command()
@url_option
@json_option
@one_line_errors
def flows(url: str | None, as_json: bool) -> None:
    """The flows you can schedule: name, summary and URL."""
    client = open_panel(url)
    try:
        items = client.flows()
    finally:
        client.close()
    if as_json:
        _print_json(items)
        return
    rows = [(flow_name(f["url"]), str(f.get("summary") or ""), f["url"]) for f in items]
    click.echo(table(("NAME", "SUMMARY", "URL"), rows, {1: 40}) if rows else "no flows")


@click.command("ls")
@url_option
@json_option
@click.option("--all", "all_users", is_flag=True, help="Everyone's (operators only).")
@click.option("--system", is_flag=True, help="Only the system schedules.")
@click.option("--state", type=click.Choice(["active", "paused"]), default=None,
              help="Only active or only paused (and done) ones.")
@click.option("--type", "kind", type=click.Choice(["once", "cron", "interval"]), default=None)
@click.option("--flow", default=None, help="Only those of this flow (name or URL).")
@click.option("-q", "text", default=None, help="Only those whose title or flow has TEXT.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@one_line_errors
def list_schedules(url: str | None, as_json: bool, all_users: bool, system: bool,
                   state: str | None, kind: str | None, flow: str | None, text: str | None,
                   limit: int) -> None:
    """Your schedules, soonest next run first."""
    client = open_panel(url)
    try:
        page = client.schedules(
            all=all_users or None, system=system or None,
            enabled=None if state is None else state == "active", type=kind,
            flow_url=client.resolve_flow(flow) if flow else None, q=text, limit=limit)
    finally:
        client.close()
    if as_json:
        _print_json(page)
        return
    items = page["items"]
    if not items:
        click.echo("no schedules")
        return
    rows = [(s["id"][:SHORT_ID], s["state"], _rule(s), _local(s.get("next_run"), s["timezone"]),
             s.get("last_status") or "-", flow_name(s["flow_url"]), _title(s)) for s in items]
    click.echo(table(("ID", "STATE", "RULE", "NEXT RUN", "LAST", "FLOW", "TITLE"), rows,
                     {2: 24, 6: 40}))
    if page["total"] > len(items):
        click.echo(f"({len(items)} of {page['total']}; --limit for more)")


@click.command()
@click.argument("schedule_id", metavar="ID")
@url_option
@json_option
@one_line_errors
def show(schedule_id: str, url: str | None, as_json: bool) -> None:
    """One schedule (ID or its first characters, as `ls` shows them)."""
    client = open_panel(url)
    try:
        item = client.schedule(client.resolve_id(schedule_id))
    finally:
        client.close()
    if as_json:
        _print_json(item)
    else:
        click.echo(show_schedule(item))


def local_zone() -> str:
    """This machine's IANA zone (``TZ``, else /etc/localtime), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    target = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in target:
        candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        if name:
            try:
                ZoneInfo(name)
                return name
            except (KeyError, ValueError):
                continue
    return "UTC"


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def in_duration(text: str, now: datetime) -> str:
    match = _DURATION.match(text)
    if match is None:
        raise ClientError(f"--in {text!r}: give a number and a unit, e.g. 90s, 10m, 2h, 1d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return (now + timedelta(**{unit: int(match.group(1))})).isoformat(timespec="seconds")


# file keys as the schedules file spells them -> the API's names
ALIASES = {"flow": "flow_url", "cron": "cron_expression", "at": "run_at"}


def read_schedule_file(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ClientError(f"{path} is neither YAML nor JSON{where}") from exc
    if not isinstance(data, dict):
        raise ClientError(f"{path} must hold one schedule: a mapping of its fields")
    return {ALIASES.get(str(k), str(k)): v for k, v in data.items()}


def _inputs(pairs: Sequence[str]) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ClientError(f"--input {pair!r}: write NAME=VALUE")
        inputs[name] = value
    return inputs


# the rule fields of the options: which kind each makes
RULE_KINDS = {"cron_expression": "cron", "run_at": "once", "every": "interval"}
TOO_MANY_RULES = "give one rule: --cron, --every, --when or a time (--at/--in)"


def _rule_kind(body: dict[str, Any]) -> str | None:
    """The schedule_type the body's rule fields make (None: the text says it)."""
    given = [k for k in RULE_KINDS if body.get(k) not in (None, "")]
    if body.get("text") and given:
        raise ClientError(f"{TOO_MANY_RULES}; the rule in words (--when) is all of it")
    if len(given) > 1:
        raise ClientError(TOO_MANY_RULES)
    return RULE_KINDS[given[0]] if given else None


def _dst_policy(current: Any, gap: str | None, repeat: str | None,
                clear: Sequence[str] = ()) -> dict[str, Any] | None:
    """The whole dst_policy after the options (None: they leave it as it is)."""
    if gap is None and repeat is None and not {"dst-gap", "dst-repeat"} & set(clear):
        return None
    policy = dict(current) if isinstance(current, dict) else {}
    for name, value in (("gap", gap), ("repeat", repeat)):
        if f"dst-{name}" in clear:
            policy[name] = None
        if value is not None:
            policy[name] = value
    return {"gap": policy.get("gap"), "repeat": policy.get("repeat")}


def _read_as(client: PanelClient, text: str, zone: str) -> str:
    """How the panel reads a rule in words (before anything is saved)."""
    answer = client.json("POST", "/schedule/preview",
                         json={"text": text, "timezone": zone, "count": 1})
    return f"{text!r} reads as: {answer['description']} ({read_as(answer['rule'])})"


create_file_option = click.option(
    "-f", "--file", "path", default=None, metavar="FILE",
    help="A schedule as YAML or JSON (the API's fields; `flow`, `cron`, `at` also do); "
         "`-` reads stdin. Options given as well win.")


def _common_options[F: Callable[..., Any]](command: F) -> F:
    """The options create and edit share, in the order --help lists them."""
    options = [
        click.option("--flow", default=None,
                     help="The flow: its name (`koco-timer flows`) or URL."),
        click.option("--cron", default=None, help='A cron rule, e.g. "0 8 * * MON".'),
        click.option("--at", "run_at", default=None,
                     help='Once, at this time, e.g. "2027-01-04 09:00" (in --timezone).'),
        click.option("--in", "run_in", default=None,
                     help="Once, this long from now: 90s, 10m, 2h."),
        rule_options,
        click.option("--timezone", "zone", default=None,
                     help="IANA zone of the rule and of --at (on create, default: this "
                          "machine's)."),
        click.option("--title", default=None),
        click.option("-i", "--input", "inputs", multiple=True, metavar="NAME=VALUE",
                     help="An input of the flow's form (repeat for more)."),
        click.option("--catchup", type=click.Choice(["once", "skip"]), default=None),
        click.option("--catchup-window", type=int, default=None,
                     help="Seconds a slot may be late."),
        click.option("--overlap", type=click.Choice(OVERLAPS), default=None,
                     help="While the last run still runs, a slot is: skipped (skip), run "
                          "too (allow), started when it ends (buffer_one), or ends it and "
                          "starts (replace)."),
        click.option("--end-at", default=None, help="No runs after this time."),
        click.option("--max-runs", type=int, default=None, help="At most this many runs."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _option_fields(flow: str | None, cron: str | None, run_at: str | None,
                   run_in: str | None, zone: str | None, title: str | None,
                   catchup: str | None, catchup_window: int | None, overlap: str | None,
                   end_at: str | None, max_runs: int | None,
                   **rule: Any) -> dict[str, Any]:
    """The API's fields of the options given (not inputs and dst_policy)."""
    if run_in is not None:
        run_at = in_duration(run_in, datetime.now(UTC))
    given = {"flow_url": flow, "cron_expression": cron, "run_at": run_at, "timezone": zone,
             "title": title, "catchup": catchup, "catchup_window": catchup_window,
             "overlap": overlap, "end_at": end_at, "max_runs": max_runs}
    fields = {k: v for k, v in given.items() if v is not None}
    fields.update(rule_fields(**rule))
    return fields


@click.command()
@create_file_option
@_common_options
@url_option
@json_option
@one_line_errors
def create(path: str | None, inputs: tuple[str, ...], dst_gap: str | None,
           dst_repeat: str | None, url: str | None, as_json: bool, **options: Any) -> None:
    """Schedule a flow: once (--at, --in), by a cron rule (--cron), every so often
    (--every) or by a rule in words (--when); from options or a file."""
    body = read_schedule_file(path) if path else {}
    fields = _option_fields(**options)
    body.update(fields)
    given = set(fields) | ({"inputs"} if inputs else set())
    policy = _dst_policy(body.get("dst_policy"), dst_gap, dst_repeat)
    if policy is not None:
        body["dst_policy"] = policy
        given |= {"dst_policy", "dst_policy.gap", "dst_policy.repeat"}
    if inputs:
        merged = dict(body.get("inputs") or {})
        merged.update(_inputs(inputs))
        body["inputs"] = merged
    if "schedule_type" not in body:
        kind = _rule_kind(body)
        if kind is None and not body.get("text"):
            raise ClientError("say when: --cron RULE, --every DURATION, --when WORDS, "
                              "--at TIME or --in DURATION")
        if kind is not None:
            body["schedule_type"] = kind
    body.setdefault("timezone", local_zone())
    if not body.get("flow_url"):
        raise ClientError("say which flow: --flow NAME (see `koco-timer flows`)")
    client = open_panel(url)
    try:
        if isinstance(body["flow_url"], str):
            body["flow_url"] = client.resolve_flow(body["flow_url"])
        if body.get("text") and not as_json:
            click.echo(_read_as(client, str(body["text"]), str(body["timezone"])))
        item = client.create(body)
    except ClientError as exc:
        raise said_as_option(exc, given) from exc
    finally:
        client.close()
    if as_json:
        _print_json(item)
        return
    click.echo(f"created {item['id'][:SHORT_ID]}")
    click.echo(show_schedule(item))


# what an edit may change that `show` says differently: not listed as changed
_NOT_CHANGES = ("version", "updated", "next_run", "note", "notes", "state", "enabled",
                "inputs_problem", "notify")


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    lines = []
    for key, new in after.items():
        old = before.get(key)
        if key in _NOT_CHANGES or old == new:
            continue
        said = [("-" if v in (None, [], {}) else
                 json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else str(v))
                for v in (old, new)]
        lines.append(f"  {key:<20} {said[0]} → {said[1]}")
    return lines


@click.command()
@click.argument("schedule_id", metavar="ID")
@_common_options
@click.option("--clear", multiple=True, type=click.Choice(sorted(CLEARABLE)),
              metavar="OPTION",
              help="Clear what this option set, back to its default (repeat for more): "
                   + ", ".join(sorted(CLEARABLE)) + ".")
@url_option
@json_option
@one_line_errors
def edit(schedule_id: str, inputs: tuple[str, ...], dst_gap: str | None,
         dst_repeat: str | None, clear: tuple[str, ...], url: str | None, as_json: bool,
         **options: Any) -> None:
    """Change a schedule: only what you give changes. --skip-date adds a date (with
    --clear skip-date: replaces them); -i changes one input; --clear OPTION clears one."""
    fields = _option_fields(**options)
    for name in clear:
        field = CLEARABLE[name]
        if name == "skip-date":
            continue  # with --skip-date: the dates given replace the ones there
        if field in fields or (name == "dst-gap" and dst_gap) or \
                (name == "dst-repeat" and dst_repeat):
            raise ClientError(f"--{name} and --clear {name}: give one of them")
    kind = _rule_kind(fields)
    if kind is not None:
        fields["schedule_type"] = kind
    if not fields and not inputs and not clear and dst_gap is None and dst_repeat is None:
        raise ClientError("nothing to change: give the options to change (--help lists "
                          "them)")
    given = set(fields) | ({"inputs"} if inputs else set())
    client = open_panel(url)
    try:
        full = client.resolve_id(schedule_id)
        before = client.schedule(full)
        patch: dict[str, Any] = dict(fields)
        for name in clear:
            if not name.startswith("dst-") and CLEARABLE[name] not in fields:
                patch[CLEARABLE[name]] = None
                given.add(CLEARABLE[name])
        if "exclude_dates" in fields and "skip-date" not in clear:
            patch["exclude_dates"] = sorted(set(before.get("exclude_dates") or [])
                                            | set(fields["exclude_dates"]))
        policy = _dst_policy(before.get("dst_policy"), dst_gap, dst_repeat, clear)
        if policy is not None:
            patch["dst_policy"] = policy
            given |= {"dst_policy", "dst_policy.gap", "dst_policy.repeat"}
        if inputs:
            patch["inputs"] = _inputs(inputs)
        patch["version"] = before["version"]  # 409 if someone changed it meanwhile
        if patch.get("text") and not as_json:
            click.echo(_read_as(client, str(patch["text"]),
                                str(patch.get("timezone") or before["timezone"])))
        item = client.json("PATCH", f"/schedule/{full}", content=json.dumps(patch),
                           headers={"content-type": "application/merge-patch+json"})
    except ClientError as exc:
        raise said_as_option(exc, given) from exc
    finally:
        client.close()
    if as_json:
        _print_json(item)
        return
    changed = _changes(before, item)
    click.echo(f"edited {item['id'][:SHORT_ID]} ({_title(item) or flow_name(item['flow_url'])})"
               + (":" if changed else ": nothing changed"))
    for line in changed:
        click.echo(line)
    click.echo(show_schedule(item))


@click.command()
@click.argument("schedule_id", metavar="ID")
@click.option("--from", "start", required=True, metavar="TIME",
              help='The start of the past period, e.g. "2026-11-30" or "2026-11-30 08:00" '
                   "(in the schedule's zone unless it has an offset).")
@click.option("--to", "end", required=True, metavar="TIME",
              help="The end of the period (not included; not in the future).")
@url_option
@json_option
@one_line_errors
def backfill(schedule_id: str, start: str, end: str, url: str | None, as_json: bool) -> None:
    """Run every slot of a schedule's rule in a past period now (at most 1,000), each
    recorded with trigger `backfill`."""
    client = open_panel(url)
    try:
        item = client.schedule(client.resolve_id(schedule_id))
        answer = client.json("POST", f"/schedule/{item['id']}/backfill",
                             json={"start": start.strip(), "end": end.strip()})
    except ClientError as exc:
        raise said_as_option(exc, {"start", "end"}) from exc
    finally:
        client.close()
    if as_json:
        _print_json(answer)
        return
    short, zone, queued = item["id"][:SHORT_ID], item["timezone"], answer["queued"]
    slots = (f"its slot at {_local(answer['first'], zone)}" if queued == 1 else
             f"its slots from {_local(answer['first'], zone)} to "
             f"{_local(answer['last'], zone)}")
    one = queued == 1
    click.echo(f"queued {queued} run{'' if one else 's'} of {short} "
               f"({_title(item) or flow_name(item['flow_url'])}) for {slots};")
    click.echo(f"{'it starts' if one else 'they start'} now, paced like every launch; "
               f"`koco-timer runs {short}` shows how {'it goes' if one else 'they go'}")


@click.command()
@click.argument("schedule_id", metavar="ID")
@click.option("--revoke", is_flag=True, help="Revoke the trigger URL: it then answers 404.")
@url_option
@json_option
@one_line_errors
def hook(schedule_id: str, revoke: bool, url: str | None, as_json: bool) -> None:
    """Make a trigger URL that runs the schedule from outside, without a login (its
    token is shown only now), or --revoke it."""
    client = open_panel(url)
    try:
        item = client.schedule(client.resolve_id(schedule_id))
        answer = client.json("DELETE" if revoke else "POST", f"/schedule/{item['id']}/hook")
    except ClientError as exc:
        if str(exc) == "no such route":
            raise ClientError(f"the panel at {client.url} has no trigger URLs (no route "
                              "/schedule/{id}/hook): it runs an older kodosumi-timer") from exc
        raise
    finally:
        client.close()
    short = item["id"][:SHORT_ID]
    name = _title(item) or flow_name(item["flow_url"])
    if revoke:
        if as_json:
            _print_json({"revoked": item["id"]})
        else:
            click.echo(f"revoked the trigger URL of {short} ({name}): it answers 404 now")
        return
    if as_json:
        _print_json(answer)
        return
    link = str(answer["url"])
    if link.startswith("/"):
        link = client.url + link
    inputs = (' (with a JSON body {"inputs": {...}} merged over the stored inputs)'
              if item.get("hook_inputs") else "")
    click.echo(f"trigger URL of {short} ({name}), shown only now:\n"
               f"  url    {link}\n"
               f"  token  {answer['token']}\n"
               f"a POST to it runs the schedule now as you{inputs}; making one again "
               f"replaces it; `koco-timer hook {short} --revoke` ends it")


def _act(verb: str, action: Callable[..., dict[str, Any] | None],
         say: Callable[[dict[str, Any]], str]) -> Callable[..., None]:
    """pause, resume, run, rm: resolve the id, call, and say what happened."""

    @url_option
    @json_option
    @click.argument("schedule_id", metavar="ID")
    @one_line_errors
    def command(schedule_id: str, url: str | None, as_json: bool, **flags: Any) -> None:
        client = open_panel(url)
        try:
            full = client.resolve_id(schedule_id)
            before = client.schedule(full)
            result = action(client, full, **flags)
        finally:
            client.close()
        if as_json:
            _print_json(result if result is not None else {"deleted": full})
        else:
            click.echo(say({**before, **(result or {}), "_before": before}))

    command.__name__ = verb
    return command


def _said_pause(item: dict[str, Any]) -> str:
    return f"paused {item['id'][:SHORT_ID]} ({_title(item) or flow_name(item['flow_url'])})"


def _said_resume(item: dict[str, Any]) -> str:
    return (f"resumed {item['id'][:SHORT_ID]} ({_title(item) or flow_name(item['flow_url'])}); "
            f"next run {_local(item.get('next_run'), item['timezone'])}")


def _said_run(item: dict[str, Any]) -> str:
    before = item["_before"]
    return (f"run {item['id']} of {before['id'][:SHORT_ID]} "
            f"({_title(before) or flow_name(before['flow_url'])}) is {item['status']}; "
            f"`koco-timer runs {before['id'][:SHORT_ID]}` shows how it goes")


def _said_rm(item: dict[str, Any]) -> str:
    return (f"deleted {item['id'][:SHORT_ID]} ({_title(item) or flow_name(item['flow_url'])}) "
            "and its run history")


pause = click.command("pause", help="Pause a schedule: it runs no more until resumed.")(
    _act("pause", lambda c, i: c.pause(i), _said_pause))
resume = click.command("resume", help="Resume a schedule from now (no burst of missed runs).")(
    _act("resume", lambda c, i: c.resume(i), _said_resume))
run_now = click.command("run", help="Run a schedule now with its inputs.")(
    click.option("--force", is_flag=True,
                 help="Even while its last execution still runs.")(
        _act("run", lambda c, i, force: c.trigger(i, force), _said_run)))
remove = click.command("rm", help="Delete a schedule and its run history.")(
    _act("rm", lambda c, i: c.delete(i), _said_rm))


@click.command()
@click.argument("schedule_id", metavar="ID")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@url_option
@json_option
@one_line_errors
def runs(schedule_id: str, limit: int, url: str | None, as_json: bool) -> None:
    """A schedule's run history, newest first (times in the schedule's zone)."""
    client = open_panel(url)
    try:
        item = client.schedule(client.resolve_id(schedule_id))
        page = client.runs(item["id"], limit)
    finally:
        client.close()
    if as_json:
        _print_json(page)
        return
    if not page["items"]:
        click.echo(f"{item['id'][:SHORT_ID]} has not run yet; next run "
                   f"{_local(item.get('next_run'), item['timezone'])}")
        return
    zone = item["timezone"]
    rows = [(str(r["id"]), _local(r["slot"], zone, weekday=False),
             _local(r.get("fired_at"), zone, weekday=False), r["trigger"], r["status"],
             r.get("fid") or "-", r.get("reason") or "") for r in page["items"]]
    click.echo(table(("RUN", "SLOT", "FIRED", "TRIGGER", "STATUS", "FID", "REASON"), rows,
                     {6: 60}))
    if page["total"] > len(page["items"]):
        click.echo(f"({len(page['items'])} of {page['total']}; --limit for more)")


USER_COMMANDS = (login, logout, flows, list_schedules, show, create, edit, pause, resume,
                 run_now, backfill, hook, remove, runs)


def register(group: click.Group) -> None:
    for command in USER_COMMANDS:
        group.add_command(command)
