"""``koco-timer notify-default``: your default notification, through the panel's
``/schedule/notify-default`` (docs/NOTIFY.md)."""

from typing import Any

import click

from kodosumi_timer.cli_user import (
    _print_json,
    json_option,
    one_line_errors,
    open_panel,
    url_option,
)
from kodosumi_timer.client import ClientError, PanelClient
from kodosumi_timer.notify.events import EVENTS

PATH = "/schedule/notify-default"


def _events(given: tuple[str, ...]) -> list[str] | None:
    """``--events error,failed --events missed`` → the list; unknown names said here."""
    names = [n.strip() for part in given for n in part.split(",") if n.strip()]
    unknown = [n for n in names if n not in EVENTS]
    if unknown:
        raise ClientError(f"--events: unknown event {unknown[0]!r}; events are "
                          f"{', '.join(EVENTS)}")
    return names or None


def _current(client: PanelClient) -> dict[str, Any]:
    """The default, or ``{"url": None}`` when there is none (the API's 404 says so; a
    404 of a panel without the route is an error)."""
    try:
        return dict(client.json("GET", PATH))
    except ClientError as exc:
        if "no default notification" in str(exc):
            return {"url": None}
        if str(exc) == "no such route":
            raise ClientError(f"the panel at {client.url} has no default notifications "
                              f"(no route {PATH}): it runs an older kodosumi-timer") from exc
        raise


def _say(answer: dict[str, Any]) -> str:
    lines = [f"default notification: {answer['url']}",
             f"  events  {', '.join(answer['events'])}"]
    if answer.get("secret"):
        lines.append(f"  secret  {answer['secret']}  (shown only now: keep it)")
    return "\n".join(lines)


@click.command("notify-default")
@click.option("--to", "target", default=None, metavar="URL",
              help="Set the URL your schedules without a notify of their own POST to.")
@click.option("--events", multiple=True, metavar="E1,E2",
              help=f"With --to: events to be told of ({', '.join(EVENTS)}).")
@click.option("--remove", is_flag=True, help="Remove your default notification.")
@click.option("--rotate", is_flag=True, help="Make a new secret (shown only now).")
@click.option("--test", "send_test", is_flag=True, help="Send one signed test delivery now.")
@url_option
@json_option
@one_line_errors
def notify_default(target: str | None, events: tuple[str, ...], remove: bool, rotate: bool,
                   send_test: bool, url: str | None, as_json: bool) -> None:
    """Show, set, remove, rotate or test your default notification: where your schedules
    without a notify of their own send their notifications."""
    chosen = [name for name, on in (("--to", target is not None), ("--remove", remove),
                                    ("--rotate", rotate), ("--test", send_test)) if on]
    if len(chosen) > 1:
        raise ClientError(f"give one of --to, --remove, --rotate, --test (not "
                          f"{' and '.join(chosen)})")
    if events and target is None:
        raise ClientError("--events goes with --to URL")
    wanted = _events(events)
    client = open_panel(url)
    try:
        if target is not None:
            body: dict[str, Any] = {"url": target}
            if wanted:
                body["events"] = wanted
            try:
                answer = client.json("PUT", PATH, json=body)
            except ClientError as exc:  # the API names its fields; say them as the options
                field = {"url": "--to", "events": "--events"}.get(exc.field or "")
                if field:
                    raise ClientError(f"{field}: {str(exc).removeprefix(f'{exc.field}: ')}"
                                      ) from exc
                raise
        elif remove:
            answer = client.json("DELETE", PATH) or {"removed": True}
        elif rotate:
            answer = client.json("POST", f"{PATH}/rotate")
        elif send_test:
            answer = client.json("POST", f"{PATH}/test")
        else:
            answer = _current(client)
    finally:
        client.close()
    if as_json:
        _print_json(answer)
        return
    if remove:
        click.echo("removed your default notification")
    elif send_test:
        if not answer["delivered"]:
            raise ClientError(answer["detail"])
        click.echo(answer["detail"])
    elif answer.get("url") is None:
        click.echo("no default notification; set one with "
                   "`koco-timer notify-default --to URL`")
    else:
        click.echo(_say(answer))
