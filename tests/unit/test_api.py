"""The /schedule API through Litestar's test client: kodosumi's JWT middleware, our routes,
a real SQLite store, fake flows (our interface)."""

from datetime import timedelta

import pytest

from tests.unit.conftest import ALICE, BOB, once, token
from tests.unit.factories import T0


async def test_create_get_list_delete(api):
    r = await api.post("/schedule/", json=once(), headers=token(ALICE))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["owner"] == ALICE and body["state"] == "active" and body["enabled"] is True
    assert body["next_run"].startswith("2027-03-01T09:00:00")
    assert body["inputs"] == {"text": "hello", "n": "3", "message": ""}  # as the form posts
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
    ({"run_at": "1700000000"}, "run_at"),  # digits are not read as seconds since 1970
    ({"run_at": 1700000000}, "run_at"),
    ({"run_at": "2027-01-04"}, "run_at"),  # a date without a time
    ({"run_at": "0001-01-01T00:00:00+00:01"}, "run_at"),  # before year 1 in UTC
    ({"run_at": "9999-12-31T23:59:00-00:01", "end_at": None}, "run_at"),
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
