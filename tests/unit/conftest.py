"""Fixtures of the API unit tests: the schedule API behind kodosumi's JWT middleware,
a real SQLite store, fake flows and roles (our own interfaces)."""

import os
from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient

from kodosumi_timer.config import TimerSettings
from kodosumi_timer.panel.app import create_api_app
from kodosumi_timer.panel.services import PanelServices
from kodosumi_timer.store import open_store
from tests.unit.factories import FLOW, T0, Clock, FakeFlows, FakeRoles

# the unit tests sign their tokens with kodosumi's default secret, on purpose; the panel
# refuses it unless told (tests/unit/test_cli_ops.py checks that refusal)
os.environ.setdefault("KODO_TIMER_ALLOW_DEFAULT_SECRET", "true")

ALICE = "0f8fad5b-d9cb-469f-a165-70867728950e"
BOB = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
OPERATOR = "3b241101-e2bb-4255-8caf-4136c566a962"


def token(role_id: str) -> dict[str, str]:
    from kodosumi.service.jwt import encode_jwt_token

    return {"KODOSUMI_API_KEY": encode_jwt_token(role_id)}


@pytest.fixture
async def api(tmp_path):
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    wakes: list[int] = []
    services = PanelServices(store=store, flows=FakeFlows(), wake=lambda: wakes.append(1),
                             clock=Clock(T0), settings=TimerSettings(TIMER_MAX_SCHEDULES=3),
                             roles=FakeRoles(operators=(OPERATOR,)))
    app = create_api_app(services)
    async with AsyncTestClient(app=app) as client:
        client.wakes = wakes  # type: ignore[attr-defined]
        yield client
    await store.close()


def once(**over):
    body = {"flow_url": FLOW, "schedule_type": "once",
            "run_at": (T0 + timedelta(hours=1)).isoformat(), "timezone": "UTC",
            "inputs": {"text": "hello", "n": 3}, "title": "Nightly report"}
    body.update(over)
    return body


