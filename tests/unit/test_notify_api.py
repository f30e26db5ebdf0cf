"""The ``notify`` field of the schedule API, the rotate route, and where deliveries are
listed."""

import re

from kodosumi_timer.store import RunRow
from tests.unit.conftest import ALICE, OPERATOR, once, token
from tests.unit.factories import T0

HOOK = "https://hooks.example/kodosumi"
MERGE = {"content-type": "application/merge-patch+json"}


def services(api):  # type: ignore[no-untyped-def]
    return api.app.state["kodosumi_timer"]


async def create(api, notify, who=ALICE):  # type: ignore[no-untyped-def]
    return await api.post("/schedule/", json=once(notify=notify), headers=token(who))


async def test_create_answers_the_secret_once_and_get_leaves_it_out(api):
    r = await create(api, {"url": HOOK, "events": ["error", "finished"]})
    assert r.status_code == 201, r.text
    notify = r.json()["notify"]
    assert notify["url"] == HOOK and notify["events"] == ["error", "finished"]
    assert re.fullmatch(r"[0-9a-f]{64}", notify["secret"])
    got = await api.get(f"/schedule/{r.json()['id']}", headers=token(ALICE))
    assert got.json()["notify"] == {"url": HOOK, "events": ["error", "finished"],
                                    "secret": None}
    listed = await api.get("/schedule/", headers=token(ALICE))
    assert listed.json()["items"][0]["notify"]["secret"] is None


async def test_events_default_and_no_notify_is_null(api):
    r = await create(api, {"url": HOOK})
    assert r.json()["notify"]["events"] == ["error", "failed", "rejected", "unknown", "paused"]
    plain = await api.post("/schedule/", json=once(), headers=token(ALICE))
    assert plain.json()["notify"] is None


async def test_a_put_of_what_get_returned_keeps_the_secret(api):
    made = (await create(api, {"url": HOOK})).json()
    body = (await api.get(f"/schedule/{made['id']}", headers=token(ALICE))).json()
    body["title"] = "Renamed"
    r = await api.put(f"/schedule/{made['id']}", json=body, headers=token(ALICE))
    assert r.status_code == 200, r.text
    assert r.json()["notify"]["secret"] == made["notify"]["secret"]
    # the update answer sent back as it is (secret included) is no change either
    again = await api.put(f"/schedule/{made['id']}", json=r.json(), headers=token(ALICE))
    assert again.status_code == 200 and again.json()["version"] == r.json()["version"]


async def test_patch_merges_notify_and_null_turns_it_off(api):
    made = (await create(api, {"url": HOOK})).json()
    r = await api.patch(f"/schedule/{made['id']}", content=b'{"notify": {"events": ["error"]}}',
                        headers={**token(ALICE), **MERGE})
    assert r.status_code == 200, r.text
    assert r.json()["notify"] == {"url": HOOK, "events": ["error"],
                                  "secret": made["notify"]["secret"]}
    off = await api.patch(f"/schedule/{made['id']}", content=b'{"notify": null}',
                          headers={**token(ALICE), **MERGE})
    assert off.json()["notify"] is None
    row = await services(api).store.get_schedule(made["id"])
    assert row.notify_secret is None and row.notify_events is None
    # on again: a new secret
    on = await api.patch(f"/schedule/{made['id']}", content=b'{"notify": {"url": "%s"}}'
                         % HOOK.encode(), headers={**token(ALICE), **MERGE})
    assert on.json()["notify"]["secret"] not in (None, made["notify"]["secret"])


async def test_rotate_makes_a_new_secret(api):
    made = (await create(api, {"url": HOOK})).json()
    r = await api.post(f"/schedule/{made['id']}/notify/rotate", headers=token(ALICE))
    assert r.status_code == 200, r.text
    secret = r.json()["notify"]["secret"]
    assert re.fullmatch(r"[0-9a-f]{64}", secret) and secret != made["notify"]["secret"]
    row = await services(api).store.get_schedule(made["id"])
    assert row.notify_secret == secret
    # the change log says it changed, never what it is
    log = (await api.get(f"/schedule/{made['id']}/changes", headers=token(ALICE))).json()
    assert secret not in str(log) and made["notify"]["secret"] not in str(log)
    assert log["items"][0]["changes"][0]["field"] == "notify_secret"
    plain = (await api.post("/schedule/", json=once(), headers=token(ALICE))).json()
    none = await api.post(f"/schedule/{plain['id']}/notify/rotate", headers=token(ALICE))
    assert none.status_code == 409 and none.json()["field"] == "notify"


async def test_bad_notify_names_the_field(api):
    cases = [({"url": "ftp://hooks.example/x"}, "notify.url"),
             ({"url": HOOK, "events": ["exploded"]}, "notify.events"),
             ({"url": HOOK, "events": []}, "notify.events"),
             ({"events": ["error"]}, "notify.url"),
             ({"url": "http://10.0.0.7/hook"}, "notify.url"),
             ({"url": "http://localhost:8080/hook"}, "notify.url"),
             ({"url": HOOK, "secret": "mine"}, "notify.secret"),
             ({"url": HOOK, "colour": "red"}, "notify.colour")]
    for notify, field in cases:
        r = await create(api, notify)
        assert r.status_code == 422, (notify, r.text)
        assert r.json()["field"] == field, (notify, r.json())
        assert field in r.json()["detail"], r.json()
    private = await create(api, {"url": "http://10.0.0.7/hook"})
    assert "KODO_TIMER_NOTIFY_ALLOW" in private.json()["detail"]


async def test_the_allow_list_lets_a_local_receiver_in(api):
    services(api).settings.TIMER_NOTIFY_ALLOW = "http://127.0.0.1"
    r = await create(api, {"url": "http://127.0.0.1:8999/hook"})
    assert r.status_code == 201, r.text


async def test_an_operator_may_not_change_notify_nor_see_the_secret(api):
    made = (await create(api, {"url": HOOK})).json()
    r = await api.patch(f"/schedule/{made['id']}",
                        content=b'{"notify": {"url": "https://evil.example/"}}',
                        headers={**token(OPERATOR), **MERGE})
    assert r.status_code == 403 and r.json()["field"] == "notify"
    renamed = await api.patch(f"/schedule/{made['id']}", content=b'{"title": "by ops"}',
                              headers={**token(OPERATOR), **MERGE})
    assert renamed.status_code == 200 and renamed.json()["notify"]["secret"] is None
    rotate = await api.post(f"/schedule/{made['id']}/notify/rotate", headers=token(OPERATOR))
    assert rotate.status_code == 403


async def test_deliveries_are_listed_with_their_run(api):
    made = (await create(api, {"url": HOOK})).json()
    store = services(api).store
    run = RunRow(schedule_id=made["id"], owner=ALICE, slot=T0, attempt=1, trigger="timer",
                 status="error", finished_at=T0, reason="boom")
    async with store.session.begin() as s:
        s.add(run)
    await store.queue_notifications([{
        "schedule_id": made["id"], "run_id": run.id, "event": "error", "status": "failed",
        "attempts": 3, "next_at": None, "created": T0, "body": "{}",
        "last_error": "HTTP 404"}])
    runs = (await api.get(f"/schedule/{made['id']}/runs", headers=token(ALICE))).json()
    (delivery,) = runs["items"][0]["notifications"]
    assert delivery["event"] == "error" and delivery["status"] == "failed"
    assert delivery["last_error"] == "HTTP 404" and delivery["attempts"] == 3
    listed = (await api.get(f"/schedule/{made['id']}/notifications", headers=token(ALICE)))
    assert listed.status_code == 200 and listed.json()["total"] == 1
    assert listed.json()["items"][0]["run_id"] == run.id


async def test_the_openapi_documents_notify_and_its_routes(api):
    schema = (await api.get("/schema/openapi.json", headers=token(ALICE))).json()
    assert "/schedule/{schedule_id}/notify/rotate" in schema["paths"]
    assert "/schedule/{schedule_id}/notifications" in schema["paths"]
    parts = schema["components"]["schemas"]
    assert {"url", "events", "secret"} <= set(parts["NotifySettings"]["properties"])
    assert "notify" in parts["ScheduleResponse"]["properties"]


async def test_the_detail_page_shows_where_it_notifies(tmp_path):
    from litestar.testing import AsyncTestClient

    from tests.unit.factories import composed_app

    async with AsyncTestClient(app=composed_app(tmp_path)) as panel:
        made = await panel.post("/schedule/", json=once(notify={"url": HOOK,
                                                                "events": ["error"]}),
                                headers=token(ALICE))
        assert made.status_code == 201, made.text
        page = await panel.get(f"/admin/schedule/{made.json()['id']}", headers=token(ALICE))
    assert page.status_code == 200
    facts = page.text[page.text.index('id="notify"'):]
    assert facts.index(HOOK) < facts.index("</dd>") and "on error" in facts
    assert made.json()["notify"]["secret"] not in page.text


async def test_the_navigation_counts_failed_runs_since_the_schedules_page_was_opened(tmp_path):
    from datetime import timedelta

    from litestar.testing import AsyncTestClient

    from tests.unit.factories import Clock, composed_app

    clock = Clock(T0)
    async with AsyncTestClient(app=composed_app(tmp_path, clock=clock)) as panel:
        made = (await panel.post("/schedule/", json=once(), headers=token(ALICE))).json()
        store = panel.app.state["kodosumi_timer"].store

        async def ended(status, minutes):  # type: ignore[no-untyped-def]
            async with store.session.begin() as s:
                s.add(RunRow(schedule_id=made["id"], owner=ALICE, slot=T0 + timedelta(
                    minutes=minutes), attempt=1, trigger="timer", status=status,
                    finished_at=T0 + timedelta(minutes=minutes)))

        async def failed():  # type: ignore[no-untyped-def]
            r = await panel.get("/schedule/attention", headers=token(ALICE))
            assert r.status_code == 200, r.text
            return r.json()["failed"]

        await ended("error", -30)  # within the last day: counted before the first look
        await ended("finished", -20)
        assert await failed() == 1
        clock.advance(minutes=1)
        page = await panel.get("/admin/schedule/", headers=token(ALICE))
        assert page.status_code == 200 and "/schedule/attention" in page.text
        assert await failed() == 0
        await ended("rejected", 5)
        await ended("unknown", 6)
        await ended("missed", 7)
        assert await failed() == 2
        other = await panel.get("/schedule/attention", headers=token(OPERATOR))
        assert other.json()["failed"] == 0
