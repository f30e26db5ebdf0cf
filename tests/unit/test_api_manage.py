"""Managing schedules through the API: update with versions, pause/resume, trigger, runs,
filters, operators, preview."""

from datetime import timedelta

import pytest

from tests.unit.conftest import ALICE, BOB, OPERATOR, once, token
from tests.unit.factories import FLOW, T0


def cron(**over):
    body = {"flow_url": FLOW, "schedule_type": "cron", "cron_expression": "0 9 * * MON-FRI",
            "timezone": "Europe/Berlin", "inputs": {"message": "daily"}, "title": "Daily"}
    body.update(over)
    return body


async def create(api, body, who=ALICE):
    r = await api.post("/schedule/", json=body, headers=token(who))
    assert r.status_code == 201, r.text
    return r.json()


async def test_cron_create_computes_next_run(api):
    body = await create(api, cron())
    # T0 is Monday 2027-03-01 08:00 UTC = 09:00 CET: strictly after, so Tuesday 09:00 CET
    assert body["next_run"].startswith("2027-03-02T08:00:00")
    assert body["schedule_type"] == "cron" and body["run_at"] is None


async def test_invalid_cron_names_the_field(api):
    r = await api.post("/schedule/", json=cron(cron_expression="61 * * * *"), headers=token(ALICE))
    assert r.status_code == 422 and r.json()["field"] == "cron_expression"
    assert "minute" in r.json()["detail"]


async def test_put_with_version_and_stale_version_conflict(api):
    s = await create(api, cron())
    r = await api.put(f"/schedule/{s['id']}", json={"version": 1, "title": "Renamed",
                                                     "cron_expression": "30 7 * * *"},
                      headers=token(ALICE))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["title"] == "Renamed" and body["version"] == 2
    assert body["next_run"].startswith("2027-03-02T06:30:00")  # 07:30 CET
    stale = await api.put(f"/schedule/{s['id']}", json={"version": 1, "title": "Stale"},
                          headers=token(ALICE))
    assert stale.status_code == 409 and stale.json()["error"] == "conflict"
    assert stale.json()["field"] == "version"
    assert (await api.get(f"/schedule/{s['id']}", headers=token(ALICE))).json()["title"] == \
        "Renamed"


async def test_put_bad_input_changes_nothing(api):
    s = await create(api, cron())
    r = await api.put(f"/schedule/{s['id']}", json={"version": 1, "cron_expression": "0 0 30 2 *"},
                      headers=token(ALICE))
    assert r.status_code == 422 and r.json()["field"] == "cron_expression"
    after = (await api.get(f"/schedule/{s['id']}", headers=token(ALICE))).json()
    assert after["cron_expression"] == "0 9 * * MON-FRI" and after["version"] == 1


async def test_pause_and_resume_from_now(api):
    s = await create(api, cron(cron_expression="*/15 * * * *"))
    paused = (await api.post(f"/schedule/{s['id']}/pause", headers=token(ALICE))).json()
    assert paused["state"] == "paused" and paused["enabled"] is False and paused["next_run"] is None
    again = await api.post(f"/schedule/{s['id']}/pause", headers=token(ALICE))
    assert again.status_code == 409
    api.app.state["kodosumi_timer"].clock.advance(hours=5, minutes=7)
    resumed = (await api.post(f"/schedule/{s['id']}/resume", headers=token(ALICE))).json()
    assert resumed["state"] == "active"
    assert resumed["next_run"].startswith("2027-03-01T13:15:00")  # next slot after now


async def test_trigger_queues_a_manual_run_and_respects_overlap(api):
    s = await create(api, cron())
    r = await api.post(f"/schedule/{s['id']}/trigger", headers=token(ALICE))
    assert r.status_code == 202, r.text
    assert r.json()["trigger"] == "manual" and r.json()["status"] == "queued"
    # the queued run counts as running: overlap=skip refuses a second one, force allows it
    r2 = await api.post(f"/schedule/{s['id']}/trigger", headers=token(ALICE))
    assert r2.status_code == 409 and r2.json()["field"] == "force"
    api.app.state["kodosumi_timer"].clock.advance(seconds=1)
    r3 = await api.post(f"/schedule/{s['id']}/trigger?force=true", headers=token(ALICE))
    assert r3.status_code == 202
    runs = (await api.get(f"/schedule/{s['id']}/runs", headers=token(ALICE))).json()
    assert runs["total"] == 2 and {x["trigger"] for x in runs["items"]} == {"manual"}
    # next_run did not move
    assert (await api.get(f"/schedule/{s['id']}", headers=token(ALICE))).json()["next_run"] == \
        s["next_run"]


@pytest.mark.parametrize("method, suffix", [
    ("get", ""), ("put", ""), ("delete", ""), ("post", "/pause"), ("post", "/resume"),
    ("post", "/trigger"), ("get", "/runs")])
async def test_every_route_is_404_for_another_user(api, method, suffix):
    s = await create(api, cron())
    kwargs = {"json": {"version": 1, "title": "x"}} if method == "put" else {}
    r = await getattr(api, method)(f"/schedule/{s['id']}{suffix}", headers=token(BOB), **kwargs)
    assert r.status_code == 404, (method, suffix, r.text)
    assert ALICE not in r.text and "Daily" not in r.text


async def test_operator_lists_all_and_acts(api):
    s = await create(api, cron())
    await create(api, cron(title="Bob's"), who=BOB)
    assert (await api.get("/schedule/?all=true", headers=token(ALICE))).status_code == 403
    listed = (await api.get("/schedule/?all=true", headers=token(OPERATOR))).json()
    assert {x["owner"] for x in listed["items"]} == {ALICE, BOB}
    r = await api.post(f"/schedule/{s['id']}/pause", headers=token(OPERATOR))
    assert r.status_code == 200 and r.json()["owner"] == ALICE


async def test_list_filters_and_paging(api):
    await create(api, cron())
    await create(api, once(title="Report once"))
    r = (await api.get("/schedule/?type=once", headers=token(ALICE))).json()
    assert [x["title"] for x in r["items"]] == ["Report once"]
    r = (await api.get("/schedule/?q=daily", headers=token(ALICE))).json()
    assert [x["title"] for x in r["items"]] == ["Daily"]
    r = (await api.get("/schedule/?limit=1", headers=token(ALICE))).json()
    assert len(r["items"]) == 1 and r["total"] == 2
    bad = await api.get("/schedule/?type=weekly", headers=token(ALICE))
    assert bad.status_code == 422 and bad.json()["field"] == "type"


async def test_preview(api):
    r = await api.post("/schedule/preview", json={"cron_expression": "30 2 * * *",
                                                  "timezone": "Europe/Berlin", "count": 40},
                       headers=token(ALICE))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["description"] and len(body["times"]) == 40
    gap = [t for t in body["times"] if t["dst_note"]]
    assert gap and gap[0]["local"].startswith("2027-03-28T03:00:00")
    bad = await api.post("/schedule/preview", json={"cron_expression": "* * *"},
                         headers=token(ALICE))
    assert bad.status_code == 422 and bad.json()["field"] == "cron_expression"
    once_preview = await api.post("/schedule/preview", json={
        "run_at": "2027-03-28T02:30:00", "timezone": "Europe/Berlin"}, headers=token(ALICE))
    assert once_preview.json()["times"][0]["dst_note"]
    # found by schemathesis: the edge of the calendar is a 422, not an OverflowError
    edge = await api.post("/schedule/preview", json={
        "run_at": "0001-01-01T00:00:00+00:01"}, headers=token(ALICE))
    assert edge.status_code == 422 and edge.json()["field"] == "run_at", edge.text


async def test_end_at_before_first_fire_is_422(api):
    r = await api.post("/schedule/", json=cron(end_at=(T0 - timedelta(days=1)).isoformat()),
                       headers=token(ALICE))
    assert r.status_code == 422 and r.json()["field"] == "end_at"


async def test_backfill_queues_each_slot_of_a_past_period(api):
    s = await create(api, cron(cron_expression="0 * * * *", timezone="UTC"))
    url = f"/schedule/{s['id']}/backfill"
    r = await api.post(url, json={"start": "2027-03-01T02:00:00+00:00",
                                  "end": "2027-03-01T05:00:00Z"}, headers=token(ALICE))
    assert r.status_code == 202, r.text
    assert r.json() == {"queued": 3, "first": "2027-03-01T02:00:00Z",
                        "last": "2027-03-01T04:00:00Z"}
    runs = (await api.get(f"/schedule/{s['id']}/runs", headers=token(ALICE))).json()["items"]
    assert sorted((x["slot"], x["trigger"], x["status"]) for x in runs) == [
        (f"2027-03-01T0{h}:00:00Z", "backfill", "queued") for h in (2, 3, 4)]
    changes = (await api.get(f"/schedule/{s['id']}/changes", headers=token(ALICE))).json()
    assert changes["items"][0]["action"] == "backfill"


@pytest.mark.parametrize("body, field, words", [
    ({"start": "2027-03-01T05:00:00Z", "end": "2027-03-01T02:00:00Z"}, "end", "after start"),
    ({"start": "2027-03-01T05:00:00Z", "end": "2027-03-02T05:00:00Z"}, "end", "future"),
    ({"start": "2027-01-01T00:00:00Z", "end": "2027-03-01T00:00:00Z"}, "end", "1,000"),
    ({"start": "2027-03-01T02:10:00Z", "end": "2027-03-01T02:50:00Z"}, "start", "no slot"),
    ({"start": "2027-03-01T02:00:00Z"}, "end", "required"),
    ({"start": "2027-03-01T02:00:00Z", "end": "2027-03-01T03:00:00Z", "x": 1}, "x", "xtra"),
])
async def test_backfill_refuses_what_it_cannot_run_naming_the_field(api, body, field, words):
    s = await create(api, cron(cron_expression="0 * * * *", timezone="UTC"))
    r = await api.post(f"/schedule/{s['id']}/backfill", json=body, headers=token(ALICE))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and words in r.json()["detail"], r.json()
    assert (await api.get(f"/schedule/{s['id']}/runs", headers=token(ALICE))).json()[
        "total"] == 0  # nothing half-written


async def test_backfill_of_a_once_schedule_or_someone_elses_is_refused(api):
    mine = await create(api, once())
    r = await api.post(f"/schedule/{mine['id']}/backfill", headers=token(ALICE),
                       json={"start": "2027-03-01T02:00:00Z", "end": "2027-03-01T03:00:00Z"})
    assert r.status_code == 422 and "trigger" in r.json()["detail"]
    r = await api.post(f"/schedule/{mine['id']}/backfill", headers=token(BOB),
                       json={"start": "2027-03-01T02:00:00Z", "end": "2027-03-01T03:00:00Z"})
    assert r.status_code == 404
