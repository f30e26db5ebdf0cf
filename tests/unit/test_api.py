"""The /schedule API through Litestar's test client: kodosumi's JWT middleware, our routes,
a real SQLite store, fake flows (our interface)."""

from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient

from kodosumi_timer.config import TimerSettings
from kodosumi_timer.panel.app import create_api_app
from kodosumi_timer.panel.services import PanelServices
from kodosumi_timer.store import open_store
from tests.unit.factories import FLOW, T0, Clock, FakeFlows

ALICE = "0f8fad5b-d9cb-469f-a165-70867728950e"
BOB = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def token(role_id: str) -> dict[str, str]:
    from kodosumi.service.jwt import encode_jwt_token

    return {"KODOSUMI_API_KEY": encode_jwt_token(role_id)}


@pytest.fixture
async def api(tmp_path):
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    wakes: list[int] = []
    services = PanelServices(store=store, flows=FakeFlows(), wake=lambda: wakes.append(1),
                             clock=Clock(T0), settings=TimerSettings(TIMER_MAX_SCHEDULES=3))
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


async def test_create_get_list_delete(api):
    r = await api.post("/schedule/", json=once(), headers=token(ALICE))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["owner"] == ALICE and body["state"] == "active" and body["enabled"] is True
    assert body["next_run"].startswith("2027-03-01T09:00:00")
    assert body["inputs"] == {"text": "hello", "n": 3}
    assert body["expose_name"] == "Quick demo"
    assert api.wakes == [1]
    sid = body["id"]
    assert (await api.get(f"/schedule/{sid}", headers=token(ALICE))).json()["id"] == sid
    listed = (await api.get("/schedule/", headers=token(ALICE))).json()
    assert [s["id"] for s in listed["items"]] == [sid] and listed["total"] == 1
    assert (await api.delete(f"/schedule/{sid}", headers=token(ALICE))).status_code == 204
    assert (await api.get(f"/schedule/{sid}", headers=token(ALICE))).status_code == 404


async def test_other_user_gets_404_everywhere(api):
    sid = (await api.post("/schedule/", json=once(), headers=token(ALICE))).json()["id"]
    r = await api.get(f"/schedule/{sid}", headers=token(BOB))
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert (await api.delete(f"/schedule/{sid}", headers=token(BOB))).status_code == 404
    assert (await api.get("/schedule/", headers=token(BOB))).json()["items"] == []
    # and it is still there for its owner
    assert (await api.get(f"/schedule/{sid}", headers=token(ALICE))).status_code == 200


async def test_no_token_is_401(api):
    assert (await api.get("/schedule/")).status_code == 401


def _assert_422(r, field):
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error", "detail", "field"}
    assert body["field"] == field, body
    assert "Traceback" not in r.text


@pytest.mark.parametrize("over, field", [
    ({"flow_url": "/-/127.0.0.1/8001/nope/-/"}, "flow_url"),
    ({"run_at": (T0 - timedelta(minutes=5)).isoformat()}, "run_at"),
    ({"run_at": None}, "run_at"),
    ({"inputs": ["not", "an", "object"]}, "inputs"),
    ({"inputs": "text"}, "inputs"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"schedule_type": "sometimes"}, "schedule_type"),
    ({"run_at": "tomorrow-ish"}, "run_at"),
    ({"title": "x" * 201}, "title"),
    ({"surprise": 1}, "surprise"),
])
async def test_bad_input_is_422_naming_the_field(api, over, field):
    _assert_422(await api.post("/schedule/", json=once(**over), headers=token(ALICE)), field)
    assert (await api.get("/schedule/", headers=token(ALICE))).json()["total"] == 0


@pytest.mark.parametrize("missing", ["flow_url", "schedule_type"])
async def test_missing_field_is_422(api, missing):
    body = once()
    del body[missing]
    _assert_422(await api.post("/schedule/", json=body, headers=token(ALICE)), missing)


async def test_body_not_json_is_422(api):
    r = await api.post("/schedule/", content=b"{nope", headers={
        **token(ALICE), "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"


async def test_naive_run_at_is_wall_time_in_zone(api):
    r = await api.post("/schedule/", json=once(run_at="2027-03-01T12:00:00",
                                                timezone="Europe/Berlin"), headers=token(ALICE))
    assert r.status_code == 201, r.text
    assert r.json()["next_run"].startswith("2027-03-01T11:00:00")


async def test_run_at_in_dst_gap_says_so(api):
    r = await api.post("/schedule/", json=once(run_at="2027-03-28T02:30:00",
                                                timezone="Europe/Berlin"), headers=token(ALICE))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["next_run"].startswith("2027-03-28T01:00:00")  # 03:00 CEST
    assert body["notes"] and "gap" in body["notes"][0].lower()


async def test_schedule_limit(api):
    for _ in range(3):
        assert (await api.post("/schedule/", json=once(), headers=token(ALICE))).status_code == 201
    r = await api.post("/schedule/", json=once(), headers=token(ALICE))
    assert r.status_code == 422 and r.json()["error"] == "limit_exceeded"
    assert (await api.get("/schedule/", headers=token(ALICE))).json()["total"] == 3
