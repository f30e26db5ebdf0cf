"""The user commands of koco-timer, driven with click's CliRunner against the composed
panel served by uvicorn on a free port: kodosumi's real login and role table, our real
API and SQLite store; only the flow registry (kodosumi's Ray actor) is a fake."""

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
import yaml
from click.testing import CliRunner, Result

from kodosumi_timer.cli import cli
from kodosumi_timer.devstack import free_port
from tests.unit.factories import FLOW, FakeFlows

FLOW_B = "/-/127.0.0.1/8001/slow/-/"


def _serve_panel(tmp) -> Iterator[str]:
    from kodosumi.service import app as kodosumi_app

    from kodosumi_timer.bridge import RoleTable
    from kodosumi_timer.clock import utcnow
    from kodosumi_timer.config import TimerSettings
    from kodosumi_timer.panel.app import create_app
    from kodosumi_timer.panel.services import STATE_KEY, PanelServices
    from kodosumi_timer.store import open_store

    admin_db = f"sqlite+aiosqlite:///{tmp}/admin.db"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KODO_TIMER_ALLOW_DEFAULT_SECRET", "true")  # the tests' tokens use it
        app = create_app(ADMIN_DATABASE=admin_db, EXEC_DIR=str(tmp / "exec"),
                         APP_LOG_FILE=str(tmp / "app.log"))

    async def open_services(app_) -> None:  # type: ignore[no-untyped-def]
        store = await open_store(f"sqlite+aiosqlite:///{tmp}/schedule.db")
        app_.state[STATE_KEY] = PanelServices(
            store=store, flows=FakeFlows(FLOW, FLOW_B), wake=lambda: None, clock=utcnow,
            settings=TimerSettings(), roles=RoleTable(admin_db))

    # no Ray here: kodosumi's own startup (Ray, its flow registry) and ours are replaced
    app.on_startup[:] = [hook for hook in app.on_startup
                         if hook is not kodosumi_app.startup
                         and getattr(hook, "__name__", "") != "open_services"]
    app.on_startup.append(open_services)
    app.on_shutdown[:] = [hook for hook in app.on_shutdown
                          if getattr(hook, "__name__", "") != "_leave_cluster"]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the panel did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="module")
def panel(tmp_path_factory) -> Iterator[str]:
    yield from _serve_panel(tmp_path_factory.mktemp("panel"))


@pytest.fixture(scope="module")
def alice(panel) -> str:
    """A second, non-operator user, made through kodosumi's role API."""
    token = httpx.post(f"{panel}/api/login", json={"name": "admin", "password": "admin"}
                       ).json()["KODOSUMI_API_KEY"]
    r = httpx.post(f"{panel}/role/", headers={"KODOSUMI_API_KEY": token},
                   json={"name": "alice", "email": "alice@example.com", "password": "pw-alice"})
    assert r.status_code in (200, 201), r.text
    return "alice"


@pytest.fixture
def auth_file(tmp_path, monkeypatch):
    path = tmp_path / "cfg" / "auth.json"
    monkeypatch.setenv("KODO_TIMER_AUTH_FILE", str(path))
    monkeypatch.delenv("KODO_TIMER_PANEL_URL", raising=False)
    return path


def koco(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def ok(*args: str) -> str:
    result = koco(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def fails(*args: str) -> str:
    """A failing command: exit code 1, one line on stderr, no stack trace."""
    result = koco(*args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def as_admin(panel, auth_file) -> str:
    ok("login", "--url", panel, "--name", "admin", "--password", "admin")
    return panel


def test_login_prompts_and_keeps_the_token_never_the_password(panel, auth_file):
    result = koco("login", "--url", panel, input="admin\nadmin\n")
    assert result.exit_code == 0, result.output
    assert f"logged in at {panel} as admin" in result.output
    assert str(auth_file) in result.output
    saved = json.loads(auth_file.read_text())
    assert saved["current"] == panel
    assert saved["panels"][panel]["token"].count(".") == 2  # a JWT
    assert "admin\n" not in auth_file.read_text().replace('"admin"', "")  # no password
    assert "password" not in auth_file.read_text()
    assert stat.S_IMODE(os.stat(auth_file).st_mode) == 0o600
    # the last login is the default panel of the other commands
    assert "no schedules" in ok("ls") or "ID" in ok("ls")


def test_a_wrong_password_is_one_line_and_nothing_is_kept(panel, auth_file):
    line = fails("login", "--url", panel, "--name", "admin", "--password", "nope")
    assert line == f"Error: login at {panel} refused: invalid name or password, or the " \
                   "user is not active"
    assert not auth_file.exists()


def test_without_a_login_the_command_says_how(panel, auth_file):
    assert fails("ls", "--url", panel) == \
        f"Error: not logged in at {panel}: run `koco-timer login --url {panel}`"


def test_no_panel_at_the_url_is_said_at_once(auth_file):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    assert fails("login", "--url", url, "--name", "a", "--password", "b") == \
        f"Error: no panel answers at {url} (--url)"
    assert time.monotonic() - started < 5


def test_the_default_panel_is_named_by_its_setting(auth_file, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("KODO_TIMER_PANEL_URL", url)
    assert fails("login", "--name", "a", "--password", "b") == \
        f"Error: no panel answers at {url} (KODO_TIMER_PANEL_URL, or --url)"


def test_an_expired_login_says_so(panel, auth_file):
    from jose import jwt

    expired = jwt.encode({"sub": "x", "iat": 0, "exp": 1}, "k", algorithm="HS256")
    auth_file.parent.mkdir(parents=True)
    auth_file.write_text(json.dumps({"current": panel, "panels": {
        panel: {"name": "admin", "id": "x", "token": expired}}}))
    assert fails("ls") == (f"Error: your login at {panel} expired at 1970-01-01 00:00 UTC: "
                           f"run `koco-timer login --url {panel}`")


def test_create_list_show_pause_resume_run_runs_rm(as_admin):
    out = ok("create", "--flow", FLOW, "--in", "10m", "--timezone", "Europe/Berlin",
             "--title", "cli once", "-i", "message=hello", "-i", "n=2")
    first = out.splitlines()[0]
    assert first.startswith("created ")
    short = first.split()[1]
    assert "rule      once, at" in out and "(Europe/Berlin)" in out
    # inputs as kodosumi's form posts them (checked against the agent's form)
    assert '"n": "2", "message": "hello"' in out

    listed = ok("ls")
    header, *rows = listed.splitlines()
    assert header.split() == ["ID", "STATE", "RULE", "NEXT", "RUN", "LAST", "FLOW", "TITLE"]
    row = next(r for r in rows if r.startswith(short))
    assert "active" in row and "once" in row and "quick" in row and "cli once" in row

    page = json.loads(ok("ls", "--json"))
    item = next(i for i in page["items"] if i["id"].startswith(short))
    assert item["title"] == "cli once" and item["timezone"] == "Europe/Berlin"
    full = item["id"]

    shown = ok("show", short)
    assert f"id        {full}" in shown
    assert json.loads(ok("show", full, "--json"))["id"] == full

    assert ok("pause", short).startswith(f"paused {short} (cli once)")
    assert json.loads(ok("show", short, "--json"))["state"] == "paused"
    assert "paused" in ok("ls", "--state", "paused")
    assert fails("pause", short).startswith("Error: schedule ")  # the API's 409 detail

    resumed = ok("resume", short)
    assert resumed.startswith(f"resumed {short} (cli once); next run ")

    ran = ok("run", short)
    assert f"of {short} (cli once) is queued" in ran
    history = ok("runs", short)
    assert history.splitlines()[0].split() == \
        ["RUN", "SLOT", "FIRED", "TRIGGER", "STATUS", "FID", "REASON"]
    assert "manual" in history and "queued" in history
    assert json.loads(ok("runs", short, "--json"))["total"] == 1

    assert ok("rm", short).startswith(f"deleted {short} (cli once) and its run history")
    assert fails("show", full) == f"Error: schedule {full} not found"


def test_create_from_a_yaml_file_with_the_schedules_file_names(as_admin, tmp_path):
    path = tmp_path / "weekly.yaml"
    path.write_text(yaml.safe_dump({
        "flow": FLOW_B, "cron": "0 8 * * MON", "timezone": "Europe/Berlin",
        "title": "from the file", "inputs": {"message": "good morning"}}))
    made = json.loads(ok("create", "-f", str(path), "--title", "the option wins", "--json"))
    assert made["schedule_type"] == "cron" and made["cron_expression"] == "0 8 * * MON"
    assert made["flow_url"] == FLOW_B and made["title"] == "the option wins"
    assert made["inputs"] == {"message": "good morning", "n": "", "text": ""}
    assert datetime.fromisoformat(made["next_run"]).astimezone(UTC).hour in (6, 7)
    json_file = tmp_path / "once.json"
    json_file.write_text(json.dumps({"flow_url": FLOW, "run_at": (
        datetime.now(UTC) + timedelta(hours=2)).isoformat(), "timezone": "UTC"}))
    assert json.loads(ok("create", "-f", str(json_file), "--json"))["schedule_type"] == "once"


def test_bad_input_is_the_apis_message_naming_the_field(as_admin, tmp_path):
    line = fails("create", "--flow", FLOW, "--cron", "0 0 30 2 *")
    assert line == "Error: --cron: day-of-month 30 never occurs in February"  # the option
    assert fails("create", "--flow", FLOW, "--cron", "* * * * *", "--timezone", "Mars/Base") \
        .startswith("Error: ")
    assert fails("create", "--flow", FLOW, "--cron", "* * * * *", "--at", "2030-01-01 09:00") \
        == "Error: give one rule: --cron, --every, --when or a time (--at/--in)"
    assert fails("create", "--flow", FLOW) == \
        "Error: say when: --cron RULE, --every DURATION, --when WORDS, --at TIME or --in DURATION"
    assert fails("create", "--flow", FLOW, "--in", "soon") == \
        "Error: --in 'soon': give a number and a unit, e.g. 90s, 10m, 2h, 1d"
    assert fails("create", "--flow", FLOW, "--in", "1h", "-i", "novalue") == \
        "Error: --input 'novalue': write NAME=VALUE"
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    assert fails("create", "-f", str(bad)) == \
        f"Error: {bad} must hold one schedule: a mapping of its fields"
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("flow: /x/\ncron: '* * * * *'\ncolour: red\n")
    assert "colour" in fails("create", "-f", str(unknown))


def test_ids_are_resolved_from_a_unique_prefix_among_what_the_user_sees(as_admin, panel,
                                                                      alice):
    mine = json.loads(ok("create", "--flow", FLOW, "--cron", "@daily", "--title", "admin's",
                         "--json"))["id"]
    assert fails("show", "ab") == ("Error: 'ab' is not a schedule id (give at least 4 of its "
                                   "characters, as `koco-timer ls` shows them)")
    assert fails("show", "zzzzzz").startswith("Error: 'zzzzzz' is not a schedule id")
    ok("login", "--url", panel, "--name", "alice", "--password", "pw-alice")
    # another user's schedule: the same 404 as a missing one, by id or by prefix
    assert fails("show", mine) == f"Error: schedule {mine} not found"
    assert fails("show", mine[:8]) == \
        f"Error: no schedule you can see has an id starting with {mine[:8]}"
    assert fails("rm", mine) == f"Error: schedule {mine} not found"
    assert "no schedules" in ok("ls")
    assert fails("ls", "--all") == "Error: all: only operators may list everyone's schedules"


def test_logout_forgets_the_token(as_admin, auth_file):
    assert ok("logout").startswith(f"logged out of {as_admin}")
    assert as_admin not in json.loads(auth_file.read_text())["panels"]
    assert fails("ls", "--url", as_admin).startswith("Error: not logged in")


def test_flow_names_are_the_route_of_kodosumis_proxy_urls():
    from kodosumi_timer.client import flow_name

    assert flow_name("/-/127.0.0.1/8001/quick/-/") == "quick"
    assert flow_name("/-/localhost/8001/team/report/-/") == "team/report"
    assert flow_name("/odd/") == "odd"



def _shown_item(**over):
    item = {"id": "f" * 32, "title": "t", "expose_name": "Quick", "flow_url": FLOW,
            "owner": "o", "system": False, "schedule_type": "once", "cron_expression": None,
            "run_at": "2026-12-03T11:39:00Z", "timezone": "Europe/Berlin", "state": "done",
            "note": None, "next_run": None, "last_run": None, "last_status": "missed",
            "last_fid": None, "run_count": 0, "max_runs": None, "end_at": None,
            "catchup": "skip", "catchup_window": 1, "overlap": "skip", "inputs": {},
            "version": 1, "updated": "2026-12-03T11:38:00Z", "notes": []}
    return item | over


def test_show_tells_a_missed_once_slot_and_inputs_that_no_longer_fit():
    from kodosumi_timer.cli_user import show_schedule

    shown = show_schedule(_shown_item(inputs_problem={
        "field": "inputs.n", "detail": "inputs.n is not an input of this agent's form"}))
    assert "last run  Thu 2026-12-03 12:39 CET: missed" in shown
    assert ("problem   the inputs no longer fit the agent's form: inputs.n is not an input "
            "of this agent's form; the next run will be refused") in shown
    never = show_schedule(_shown_item(state="active", last_status=None, inputs_problem=None))
    assert "last run  -" in never and "problem" not in never
