"""The operator commands fail fast and clearly, keep secrets out of their output, refuse
kodosumi's default secret; the demo keeps its own secret and outlives its timer."""

import os
import stat
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner, Result

from kodosumi_timer.cli import cli
from kodosumi_timer.devstack import ProcessGroup, free_port
from kodosumi_timer.preflight import DEFAULT_SECRET, PreflightError, mask_url

SECRET = "a-test-secret-that-is-not-the-default"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in ("KODO_SECRET_KEY", "KODO_TIMER_ALLOW_DEFAULT_SECRET", "KODO_RAY_SERVER",
                "KODO_TIMER_DATABASE", "KODO_TIMER_PANEL_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("KODO_RAY_SERVER", f"127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv("KODO_TIMER_DATABASE", f"sqlite+aiosqlite:///{tmp_path}/s.db")
    monkeypatch.chdir(tmp_path)  # no .env of the developer's


def run(*args: str) -> tuple[Result, float]:
    started = time.monotonic()
    result = CliRunner().invoke(cli, list(args))
    return result, time.monotonic() - started


def one_line_failure(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["start"], ["start", "--block"], ["start", "--actor"],
                                     ["serve"]])
def test_the_timer_and_the_panel_refuse_kodosumis_default_secret(command):
    result, took = run(*command)
    line = one_line_failure(result)
    assert line.startswith("Error: the timer refuses" if command[0] == "start"
                           else "Error: the panel refuses")
    assert "kodosumi's default secret key" in line and "KODO_SECRET_KEY" in line
    assert "KODO_TIMER_ALLOW_DEFAULT_SECRET=true" in line
    assert took < 5


@pytest.mark.parametrize("command", [["start", "--allow-default-secret"],
                                     ["start", "--actor", "--allow-default-secret"],
                                     ["serve", "--allow-default-secret"]])
def test_allowing_the_default_secret_explicitly_gets_past_the_check(command, monkeypatch):
    monkeypatch.setenv("KODO_RAY_SERVER", "127.0.0.1:1")
    # serve hands the allowance to the composed app in this variable: restored after
    monkeypatch.setenv("KODO_TIMER_ALLOW_DEFAULT_SECRET", "false")
    result, _ = run(*command)
    assert one_line_failure(result) == \
        "Error: no Ray cluster answers at 127.0.0.1:1 (KODO_RAY_SERVER)"


def test_the_setting_allows_it_as_well(monkeypatch):
    monkeypatch.setenv("KODO_TIMER_ALLOW_DEFAULT_SECRET", "true")
    result, _ = run("start", "--block")
    assert "no Ray cluster answers" in one_line_failure(result)


@pytest.mark.parametrize("command", [["status"], ["stop"], ["start"], ["start", "--actor"],
                                     ["start", "--block"], ["serve"]])
def test_without_a_ray_cluster_each_command_says_so_in_a_line_within_seconds(command,
                                                                           monkeypatch):
    monkeypatch.setenv("KODO_SECRET_KEY", SECRET)
    address = os.environ["KODO_RAY_SERVER"]
    result, took = run(*command)
    assert one_line_failure(result) == \
        f"Error: no Ray cluster answers at {address} (KODO_RAY_SERVER)"
    assert took < 10  # importing Ray is most of it


def test_the_ray_server_option_is_probed_too(monkeypatch):
    port = free_port()
    result, _ = run("status", "--ray-server", f"127.0.0.1:{port}")
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in one_line_failure(result)


def test_an_unreachable_store_is_one_line_and_its_password_is_masked(monkeypatch):
    port = free_port()
    monkeypatch.setenv("KODO_TIMER_DATABASE",
                       f"postgresql+asyncpg://kodo:hunter2@127.0.0.1:{port}/timer")
    result, took = run("db", "upgrade")
    line = one_line_failure(result)
    assert line.startswith(f"Error: cannot open the schedule store at "
                           f"postgresql+asyncpg://kodo:***@127.0.0.1:{port}/timer "
                           "(KODO_TIMER_DATABASE): ")
    assert "hunter2" not in result.output
    assert took < 10


def test_database_urls_are_masked():
    assert mask_url("postgresql+asyncpg://kodo:s3cr%40t@db.example:5432/timer") == \
        "postgresql+asyncpg://kodo:***@db.example:5432/timer"
    assert mask_url("postgresql://u:p:q@h/d") == "postgresql://u:***@h/d"
    assert mask_url("sqlite+aiosqlite:///./data/schedule.db") == \
        "sqlite+aiosqlite:///./data/schedule.db"
    assert mask_url("postgresql://nopass@h/d") == "postgresql://nopass@h/d"


def test_the_lock_actors_meta_never_holds_a_password():
    from kodosumi_timer.lock import LockState

    for mode in ("process", "actor"):
        state = LockState(1, "host", "postgresql+asyncpg://kodo:hunter2@db/timer", mode=mode)
        assert state.meta["database"] == "postgresql+asyncpg://kodo:***@db/timer"


def test_the_composed_panel_refuses_the_default_secret_it_would_sign_with(monkeypatch):
    import kodosumi.const

    from kodosumi_timer.panel.app import create_app

    monkeypatch.setattr(kodosumi.const, "JWT_SECRET", DEFAULT_SECRET)
    with pytest.raises(PreflightError, match="the panel refuses to start"):
        create_app()


# -- the demo ------------------------------------------------------------------------


def test_the_demo_makes_its_secret_once_and_keeps_it(tmp_path):
    from kodosumi_timer.demo import demo_secret

    data = tmp_path / "data"
    secret, path = demo_secret(data)
    assert path == data / "secret.key"
    assert len(secret) == 64 and secret != DEFAULT_SECRET
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert demo_secret(data) == (secret, path)  # a restart signs with the same secret


def test_the_demo_uses_the_operators_secret_and_stores_nothing(tmp_path, monkeypatch):
    from kodosumi_timer.demo import demo_secret

    monkeypatch.setenv("KODO_SECRET_KEY", SECRET)
    assert demo_secret(tmp_path / "data") == (SECRET, None)
    assert not (tmp_path / "data").exists()


def test_the_demos_shell_file_has_its_settings_but_not_its_secret(tmp_path):
    from kodosumi_timer.demo import write_shell_env

    path = tmp_path / "demo.sh"
    secret_file = tmp_path / "secret.key"
    secret_file.write_text("the-secret\n")
    write_shell_env(path, {"KODO_RAY_SERVER": "127.0.0.1:6379", "KODO_SECRET_KEY": "the-secret",
                           "KODO_TIMER_DATABASE": "sqlite+aiosqlite:////d/schedule.db",
                           "PATH": "/bin"}, secret_file)
    text = path.read_text()
    assert "the-secret" not in text and "PATH" not in text
    assert "export KODO_RAY_SERVER=127.0.0.1:6379" in text
    assert f'export KODO_SECRET_KEY="$(cat {secret_file})"' in text
    shell = subprocess.run(["bash", "-c", f"source {path} >/dev/null; echo $KODO_SECRET_KEY; "
                            "command -v koco-timer"], capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin"})
    assert shell.stdout.splitlines()[0] == "the-secret"
    assert shell.stdout.splitlines()[1] == os.path.join(sys.prefix, "bin", "koco-timer")


def _child(group: ProcessGroup, name: str, code: str, tmp_path) -> subprocess.Popen[bytes]:
    return group.start(name, [sys.executable, "-c", code], None, tmp_path / f"{name}.log")


def test_the_demo_outlives_its_timer_and_stops_when_another_part_dies(tmp_path):
    from kodosumi_timer.demo import watch

    said: list[str] = []
    with ProcessGroup() as group:
        timer = _child(group, "timer", "raise SystemExit(0)", tmp_path)
        # the panel exits only once the watcher has let the timer go (reaped it)
        _child(group, "panel", "import os, sys, time\n"
               f"while True:\n"
               f"    try: os.kill({timer.pid}, 0)\n"
               f"    except ProcessLookupError: sys.exit(3)\n"
               f"    time.sleep(0.05)\n", tmp_path)
        ended = watch(group, lambda: False, said.append, poll=0.05)
        assert ended is not None and ended.name == "panel" and ended.popen.returncode == 3
        assert [c.name for c in group.children] == ["panel"]
    assert len(said) == 1
    assert said[0].startswith(f"the demo's timer (pid {timer.pid}) exited with code 0")
    assert "the rest of the demo keeps running" in said[0]


def test_the_demo_watch_ends_on_a_signal(tmp_path):
    from kodosumi_timer.demo import watch

    with ProcessGroup() as group:
        _child(group, "panel", "import time; time.sleep(60)", tmp_path)
        asked = iter([False, False, True])
        assert watch(group, lambda: next(asked), lambda _: None, poll=0.01) is None
        assert group.children[0].popen.poll() is None  # stopping is the caller's part


# -- what the package declares -------------------------------------------------------

# declared but never imported by name: drivers SQLAlchemy loads from the database URL
DRIVERS = {"aiosqlite", "asyncpg"}


def _imported_top_level_modules() -> set[str]:
    import ast
    from pathlib import Path

    import kodosumi_timer

    found: set[str] = set()
    for path in Path(kodosumi_timer.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"kodosumi_timer", "__future__"}


def _declared() -> set[str]:
    import re
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    return {re.split(r"[\[<>=!~ ]", dep, maxsplit=1)[0].lower().replace("_", "-")
            for dep in project["project"]["dependencies"]}


def test_every_import_is_declared_and_every_dependency_imported():
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    needed = {dists[module][0].lower().replace("_", "-")
              for module in _imported_top_level_modules()}
    declared = _declared()
    assert needed - declared == set(), "imported but not declared in pyproject.toml"
    assert declared - needed - DRIVERS == set(), "declared but never imported"


@pytest.mark.pg
def test_a_reachable_postgresql_store_passes_the_probe():
    from kodosumi_timer.preflight import probe_store
    from tests.conftest import require_pg

    probe_store(require_pg(), 3)


def test_next_to_a_running_demo_the_refusal_names_its_settings_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo.sh").write_text("# the demo's\n")
    result, _ = run("start")
    assert one_line_failure(result).endswith(
        "to run with it anyway; for the demo here: source data/demo.sh")


def test_a_store_that_is_not_there_is_one_line_for_status_and_no_file_is_made(tmp_path):
    # `koco-timer status` in another directory than the demo's: ./data/schedule.db is
    # not the timer's store; say so instead of a stack trace, and create nothing
    from kodosumi_timer.preflight import probe_store

    missing = tmp_path / "data" / "schedule.db"
    with pytest.raises(PreflightError, match=r"does not exist; run this where the timer "
                                             r"runs .*KODO_TIMER_DATABASE"):
        probe_store(f"sqlite+aiosqlite:///{missing}", 3, existing=True)
    assert not missing.exists() and not missing.parent.exists()


def test_a_store_without_schedules_is_one_line_for_status(tmp_path):
    import sqlite3

    from kodosumi_timer.preflight import probe_store

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(PreflightError, match="holds no schedules"):
        probe_store(f"sqlite+aiosqlite:///{empty}", 3, existing=True)
    probe_store(f"sqlite+aiosqlite:///{empty}", 3)  # start and db upgrade make it
