"""One real stack per test session: Ray head on free ports with its own temp dir, the
demo agents on Serve, kodosumi's spooler, the composed panel and the timer. Torn down
by pid; the teardown checks that no process it started is left."""

import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from kodosumi_timer.devstack import ProcessGroup, RayPorts, free_port, short_temp_dir
from kodosumi_timer.fullstack import FullStack, start_full_stack


@pytest.fixture(scope="session")
def stack_group() -> ProcessGroup:
    """The session stack's processes; tests that restart a part add it here."""
    return ProcessGroup(progress=print)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_group) -> Iterator[FullStack]:
    data_dir = tmp_path_factory.mktemp("stack") / "data"
    group = stack_group
    temp_dir = short_temp_dir()
    try:
        full = start_full_stack(group, data_dir=data_dir, temp_dir=temp_dir,
                                ports=RayPorts.free(), panel_port=free_port(),
                                secret=secrets.token_hex(24), progress=print)
        yield full
    finally:
        stopped = group.stop_all()
        shutil.rmtree(temp_dir, ignore_errors=True)
        alive = [p.pid for p in stopped if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"processes left after teardown: {alive}"


class Panel:
    """A small client of the real panel, logged in as one role."""

    def __init__(self, url: str, token: str, role_id: str, name: str):
        self.url, self.role_id, self.name = url, role_id, name
        self.client = httpx.Client(base_url=url, headers={"KODOSUMI_API_KEY": token},
                                   timeout=30)

    @classmethod
    def login(cls, url: str, name: str, password: str) -> "Panel":
        r = httpx.get(f"{url}/login", params={"name": name, "password": password}, timeout=30)
        r.raise_for_status()
        body = r.json()
        return cls(url, body["KODOSUMI_API_KEY"], str(body["id"]), name)


@pytest.fixture(scope="session")
def admin(stack: FullStack) -> Panel:
    return Panel.login(stack.panel_url, "admin", "admin")


def _role_maker(stack: FullStack, admin: Panel, made: list[Panel]):
    def make(prefix: str = "user") -> Panel:
        name = f"{prefix}-{secrets.token_hex(4)}"
        r = admin.client.post("/role/", json={"name": name, "email": f"{name}@example.com",
                                              "password": "secret-pw"})
        assert r.status_code in (200, 201), r.text
        user = Panel.login(stack.panel_url, name, "secret-pw")
        made.append(user)
        return user
    return make


def _delete_schedules(users: list[Panel], admin: Panel) -> None:
    """What a test scheduled goes with it: every-minute schedules left behind kept the
    shared stack launching more every minute, until kodosumi lagged for later tests."""
    for user in users:
        own = user.client.get("/schedule/").status_code == 200
        client, params = (user.client, {}) if own else (admin.client, {"all": "true"})
        deleted = True
        while deleted:  # pages of 500 until none is left (or none can be deleted)
            r = client.get("/schedule/", params={"limit": 500, **params})
            items = r.json()["items"] if r.status_code == 200 else []
            mine = [s["id"] for s in items if s["owner"] == user.role_id]
            codes = [client.delete(f"/schedule/{sid}").status_code for sid in mine]
            deleted = 204 in codes
        assert not mine, f"schedules of {user.name} could not be deleted: {codes}"
        user.client.close()


@pytest.fixture
def new_user(stack: FullStack, admin: Panel) -> Iterator[Callable[..., Panel]]:
    """Create kodosumi roles through kodosumi's role API and log them in; their
    schedules are deleted after the test."""
    made: list[Panel] = []
    yield _role_maker(stack, admin, made)
    _delete_schedules(made, admin)


@pytest.fixture(scope="module")
def new_user_module(stack: FullStack, admin: Panel) -> Iterator[Callable[..., Panel]]:
    made: list[Panel] = []
    yield _role_maker(stack, admin, made)
    _delete_schedules(made, admin)


def data_dir(stack: FullStack) -> Path:
    return stack.kodo.data_dir
