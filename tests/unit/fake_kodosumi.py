"""The benchmark's fake kodosumi (``bench/_target.py``) under uvicorn, for the launcher's
tests: a real process on a real socket, told which fault to show through its control
endpoint. Import ``target_fixture`` (the fixture ``target``: one process per test module) and
``fake_fixture`` (``fake``: the same, reset for each test)."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench._common import start_target

OWNER = "0f8fad5b-d9cb-469f-a165-70867728950e"
OTHER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
FLOW = "/-/127.0.0.1/8001/agent/-/"
OTHER_FLOW = "/-/127.0.0.1/8001/other/-/"
SECRET = "unit-test-secret"


class Target:
    def __init__(self, url: str):
        self.url = url

    def faults(self, *rules: dict[str, Any], **config: Any) -> None:
        r = httpx.post(f"{self.url}/_faults", json={"rules": list(rules), **config})
        assert r.status_code == 200, r.text

    def reset(self) -> None:
        httpx.post(f"{self.url}/_reset").raise_for_status()
        self.faults()

    def launches(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/_launches").json())

    def executions(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/_executions").json())


@pytest.fixture(scope="module", name="target")
def target_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    child, url = start_target(tmp_path_factory.mktemp("target"))
    try:
        yield Target(url)
    finally:
        child.stop()


@pytest.fixture(name="fake")
def fake_fixture(target: Target) -> Target:
    target.reset()
    return target
