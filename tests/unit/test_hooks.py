"""Trigger URLs (issue 13, point 9): making, calling, replacing and revoking one through the
schedule API on a real SQLite store; the store's part on SQLite and PostgreSQL; the timer
launching a hook's run with its own inputs."""

import hashlib
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text

from kodosumi_timer.panel.hooks import RateWindow
from kodosumi_timer.panel.services import STATE_KEY
from kodosumi_timer.store import RunRow
from kodosumi_timer.store.tables import ChangeRow
from tests.unit.conftest import ALICE, BOB, OPERATOR, once, token
from tests.unit.factories import T0, Clock, FakeLauncher, FakeRoles, composed_app, schedule
from tests.unit.test_timer import make_timer


def services(api):  # type: ignore[no-untyped-def]
    return api.app.state[STATE_KEY]


async def create(api, **over) -> dict:  # type: ignore[no-untyped-def]
    response = await api.post("/schedule/", json=once(**over), headers=token(ALICE))
    assert response.status_code == 201, response.text
    return response.json()


async def make_hook(api, schedule_id: str, who: str = ALICE) -> dict:  # type: ignore[no-untyped-def]
    response = await api.post(f"/schedule/{schedule_id}/hook", headers=token(who))
    assert response.status_code == 201, response.text
    return response.json()


def path_of(url: str) -> str:
    return urlsplit(url).path


async def stored_runs(api, schedule_id: str) -> list[RunRow]:  # type: ignore[no-untyped-def]
    async with services(api).store.session() as s:
        query = select(RunRow).where(RunRow.schedule_id == schedule_id).order_by(RunRow.id)
        return list((await s.execute(query)).scalars().all())


# ---- making, calling, replacing, revoking ------------------------------------------


async def test_the_owner_makes_a_url_that_runs_the_schedule_without_a_login(api):
    row = await create(api)
    made = await make_hook(api, row["id"])
    url, secret = made["url"], made["token"]
    assert urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc
    assert path_of(url) == f"/schedule/hook/{secret}" and len(secret) >= 43
    assert (await api.get(f"/schedule/{row['id']}", headers=token(ALICE))).json()["hook"]
    before = len(api.wakes)

    response = await api.post(path_of(url))  # no token, no cookie

    assert response.status_code == 202, response.text
    run = response.json()
    assert run["schedule_id"] == row["id"] and run["trigger"] == "hook"
    assert run["status"] == "queued" and run["slot"].startswith("2027-03-01T08:00:00")
    [stored] = await stored_runs(api, row["id"])
    assert stored.owner == ALICE and stored.inputs is None  # the schedule's own inputs
    assert len(api.wakes) == before + 1
    history = (await api.get(f"/schedule/{row['id']}/runs", headers=token(ALICE))).json()
    assert [(r["trigger"], r["status"]) for r in history["items"]] == [("hook", "queued")]


async def test_the_token_is_kept_only_as_its_sha256_and_never_logged(api, tmp_path):
    row = await create(api)
    made = await make_hook(api, row["id"])
    secret = made["token"]
    back = await services(api).store.get_schedule(row["id"])
    assert back.hook_hash == hashlib.sha256(secret.encode()).hexdigest()
    # nowhere in the database file, and the change log says only that it was made
    await services(api).store.engine.dispose()
    assert secret.encode() not in (tmp_path / "s.db").read_bytes()
    changes = (await api.get(f"/schedule/{row['id']}/changes", headers=token(ALICE))).json()
    assert [(c["action"], c["changes"]) for c in changes["items"]] == [("hook", []),
                                                                        ("create", [])]
    assert secret not in str(changes) and back.hook_hash not in str(changes)
    response = await api.post(f"/schedule/{row['id']}/hook", headers=token(ALICE))
    assert response.headers["cache-control"] == "no-store"


async def test_making_it_again_replaces_it_and_the_old_url_answers_404(api):
    row = await create(api, overlap="allow")
    old = await make_hook(api, row["id"])
    new = await make_hook(api, row["id"])
    assert new["token"] != old["token"]
    gone = await api.post(path_of(old["url"]))
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"
    assert (await api.post(path_of(new["url"]))).status_code == 202


async def test_revoking_it_makes_the_url_answer_404(api):
    row = await create(api)
    made = await make_hook(api, row["id"])
    response = await api.delete(f"/schedule/{row['id']}/hook", headers=token(ALICE))
    assert response.status_code == 204
    assert (await api.post(path_of(made["url"]))).status_code == 404
    assert not (await api.get(f"/schedule/{row['id']}", headers=token(ALICE))).json()["hook"]
    # once more: still 204, nothing more in the log
    assert (await api.delete(f"/schedule/{row['id']}/hook",
                             headers=token(ALICE))).status_code == 204
    changes = (await api.get(f"/schedule/{row['id']}/changes", headers=token(ALICE))).json()
    assert [c["action"] for c in changes["items"]] == ["unhook", "hook", "create"]
    assert await stored_runs(api, row["id"]) == []


async def test_an_unknown_token_is_404(api):
    for path in ("/schedule/hook/nothing-like-this", "/schedule/hook/" + "A" * 43):
        response = await api.post(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"


# ---- who may make and revoke one ---------------------------------------------------


async def test_other_users_get_404_and_operators_403_naming_the_trigger_url(api):
    row = await create(api)
    for method in ("post", "delete"):
        response = await getattr(api, method)(f"/schedule/{row['id']}/hook", headers=token(BOB))
        assert response.status_code == 404, (method, response.text)
        response = await getattr(api, method)(f"/schedule/{row['id']}/hook",
                                              headers=token(OPERATOR))
        assert response.status_code == 403, (method, response.text)
        assert "trigger URL" in response.json()["detail"]
    assert (await services(api).store.get_schedule(row["id"])).hook_hash is None


async def test_system_schedules_hooks_are_operators_only(api):
    row = await services(api).store.add_schedule(
        schedule(owner="timer", system=True, system_source="file", next_run=T0))
    response = await api.post(f"/schedule/{row.id}/hook", headers=token(ALICE))
    assert response.status_code == 403 and "operators" in response.json()["detail"]
    made = await make_hook(api, row.id, who=OPERATOR)
    assert (await api.post(path_of(made["url"]))).status_code == 202
    [run] = await stored_runs(api, row.id)
    assert run.owner == "timer" and run.trigger == "hook"
    response = await api.delete(f"/schedule/{row.id}/hook", headers=token(OPERATOR))
    assert response.status_code == 204
    assert (await api.post(path_of(made["url"]))).status_code == 404


async def test_a_cross_site_page_cannot_make_one_with_a_users_cookie(api):
    row = await create(api)
    from kodosumi.const import TOKEN_KEY

    api.cookies.set(TOKEN_KEY, token(ALICE)["KODOSUMI_API_KEY"])
    try:
        response = await api.post(f"/schedule/{row['id']}/hook",
                                  headers={"sec-fetch-site": "cross-site",
                                           "origin": "https://evil.example"})
    finally:
        api.cookies.clear()
    assert response.status_code == 403
    assert (await services(api).store.get_schedule(row["id"])).hook_hash is None


# ---- calling it --------------------------------------------------------------------


async def test_a_login_sent_along_is_ignored_the_run_is_the_owners(api):
    row = await create(api)
    made = await make_hook(api, row["id"])
    response = await api.post(path_of(made["url"]), headers={
        **token(BOB), "sec-fetch-site": "cross-site", "origin": "https://evil.example"})
    assert response.status_code == 202, response.text  # no cross-site guard: machines call it
    [run] = await stored_runs(api, row["id"])
    assert run.owner == ALICE


async def test_a_browser_form_post_from_another_site_is_refused_and_queues_nothing(api):
    row = await create(api, hook_inputs=True)
    made = await make_hook(api, row["id"])
    response = await api.post(path_of(made["url"]), content=b"inputs=x",
                              headers={"content-type": "application/x-www-form-urlencoded",
                                       "sec-fetch-site": "cross-site",
                                       "origin": "https://evil.example"})
    assert response.status_code == 422, response.text
    assert await stored_runs(api, row["id"]) == []


async def test_a_paused_schedule_answers_409_paused(api):
    row = await create(api)
    made = await make_hook(api, row["id"])
    assert (await api.post(f"/schedule/{row['id']}/pause",
                           headers=token(ALICE))).status_code == 200
    response = await api.post(path_of(made["url"]))
    assert response.status_code == 409 and response.json()["error"] == "paused"
    assert await stored_runs(api, row["id"]) == []


async def test_an_inactive_owner_is_refused(api):
    row = await create(api)
    made = await make_hook(api, row["id"])
    services(api).roles.states[ALICE] = "inactive"
    response = await api.post(path_of(made["url"]))
    assert response.status_code == 403 and "not an active user" in response.json()["detail"]
    assert await stored_runs(api, row["id"]) == []


async def test_overlap_skip_refuses_while_the_last_run_has_not_ended(api):
    row = await create(api)  # overlap: skip
    made = await make_hook(api, row["id"])
    assert (await api.post(path_of(made["url"]))).status_code == 202
    services(api).clock.advance(seconds=1)
    response = await api.post(path_of(made["url"]))
    assert response.status_code == 409 and "overlap=skip" in response.json()["detail"]
    assert len(await stored_runs(api, row["id"])) == 1


async def test_more_calls_than_the_rate_in_a_minute_are_429_with_retry_after(api):
    row = await create(api, overlap="allow")
    made = await make_hook(api, row["id"])
    clock = services(api).clock
    limit = services(api).settings.TIMER_HOOK_RATE
    assert limit == 6  # the default
    for _ in range(limit):
        assert (await api.post(path_of(made["url"]))).status_code == 202
        clock.advance(seconds=1)
    response = await api.post(path_of(made["url"]))  # 6 s after the first
    assert response.status_code == 429 and response.json()["error"] == "rate_limited"
    assert response.headers["retry-after"] == "54"
    assert len(await stored_runs(api, row["id"])) == limit
    # another hook has its own window
    other = await create(api, overlap="allow")
    assert (await api.post(path_of((await make_hook(api, other["id"]))["url"]))
            ).status_code == 202
    # a minute after the first call, one more is taken
    clock.advance(seconds=54)
    assert (await api.post(path_of(made["url"]))).status_code == 202


def test_the_window_slides():
    window = RateWindow(2, timedelta(seconds=10))
    assert window.admit("a", T0) is None
    assert window.admit("a", T0 + timedelta(seconds=4)) is None
    assert window.admit("a", T0 + timedelta(seconds=5)) == 5.0
    assert window.admit("b", T0 + timedelta(seconds=5)) is None
    assert window.admit("a", T0 + timedelta(seconds=10)) is None  # the first one left
    assert window.admit("a", T0 + timedelta(seconds=11)) == 3.0
    # keys of hooks not called for a whole span are forgotten
    assert window.admit("c", T0 + timedelta(seconds=30)) is None
    assert set(window._calls) == {"c"}


# ---- inputs in the call --------------------------------------------------------------


async def test_inputs_of_the_call_are_merged_over_the_stored_ones_and_checked(api):
    row = await create(api, hook_inputs=True, overlap="allow")  # inputs text=hello, n=3
    made = await make_hook(api, row["id"])
    response = await api.post(path_of(made["url"]), json={"inputs": {"n": 5, "message": "hi"}})
    assert response.status_code == 202, response.text
    [run] = await stored_runs(api, row["id"])
    assert run.inputs == {"text": "hello", "n": "5", "message": "hi"}
    listed = (await api.get(f"/schedule/{row['id']}/runs", headers=token(ALICE))).json()
    assert [r["inputs"] for r in listed["items"]] == [run.inputs]  # the run shows its own
    # the schedule keeps its own
    assert (await services(api).store.get_schedule(row["id"])).inputs == {
        "text": "hello", "n": "3", "message": ""}
    services(api).clock.advance(seconds=1)
    # a body without inputs (any sender's payload): the stored inputs
    response = await api.post(path_of(made["url"]), json={"action": "push", "ref": "main"})
    assert response.status_code == 202, response.text
    assert (await stored_runs(api, row["id"]))[-1].inputs is None


@pytest.mark.parametrize(("inputs", "field"), [
    ({"nope": 1}, "inputs.nope"),
    ({"n": "many"}, "inputs.n"),
])
async def test_inputs_the_form_refuses_are_422_naming_the_input(api, inputs, field):
    row = await create(api, hook_inputs=True)
    made = await make_hook(api, row["id"])
    response = await api.post(path_of(made["url"]), json={"inputs": inputs})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert await stored_runs(api, row["id"]) == []


async def test_inputs_to_a_hook_that_takes_none_are_422(api):
    row = await create(api)  # hook_inputs: false
    made = await make_hook(api, row["id"])
    response = await api.post(path_of(made["url"]), json={"inputs": {"n": 5}})
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "inputs" and "takes no inputs" in body["detail"]
    response = await api.post(path_of(made["url"]), json={"inputs": "n=5"})
    assert response.status_code == 422 and response.json()["field"] == "inputs"
    assert await stored_runs(api, row["id"]) == []


# ---- the token stays out of the panel's request log ------------------------------------


async def test_the_composed_panels_request_log_shows_no_token(tmp_path):
    # kodosumi's app writes every request's method, path and status to its log file
    app = composed_app(tmp_path, roles=FakeRoles(), clock=Clock(T0))
    async with AsyncTestClient(app=app) as client:
        created = await client.post("/schedule/", json=once(), headers=token(ALICE))
        assert created.status_code == 201, created.text
        made = (await client.post(f"/schedule/{created.json()['id']}/hook",
                                  headers=token(ALICE))).json()
        called = await client.post(path_of(made["url"]))
        assert called.status_code == 202, called.text
        missing = await client.post("/schedule/hook/not-a-token-at-all")
        assert missing.status_code == 404
    logged = (tmp_path / "app.log").read_text()
    assert "POST /schedule/hook/(token) - 202" in logged, logged
    assert "POST /schedule/hook/(token) - 404" in logged, logged
    assert made["token"] not in logged and "not-a-token-at-all" not in logged


async def test_the_openapi_documents_the_routes(tmp_path):
    app = composed_app(tmp_path)
    async with AsyncTestClient(app=app) as client:
        schema = (await client.get("/schema/openapi.json", headers=token(ALICE))).json()
    paths = schema["paths"]
    make = paths["/schedule/{schedule_id}/hook"]["post"]
    assert make["operationId"] == "makeHook" and "201" in make["responses"]
    assert paths["/schedule/{schedule_id}/hook"]["delete"]["operationId"] == "revokeHook"
    call = paths["/schedule/hook/{token}"]["post"]
    assert call["operationId"] == "callHook"
    assert {"202", "404", "409", "422", "429"} <= set(call["responses"])
    assert call["requestBody"]["required"] is False and "security" not in call


# ---- the store, on SQLite and PostgreSQL ------------------------------------------------


async def test_a_hook_run_keeps_its_own_inputs_in_the_store(store):
    row = await store.add_schedule(schedule(hook_hash="ab" * 32, inputs={"text": "hi"}))
    assert (await store.schedule_by_hook("ab" * 32)).id == row.id
    assert await store.schedule_by_hook("cd" * 32) is None
    own = await store.queue_hook_run(row, T0, {"text": "other", "n": "2"})
    plain = await store.queue_hook_run(row, T0 + timedelta(seconds=1), None)
    assert own is not None and plain is not None
    assert await store.queue_hook_run(row, T0, None) is None  # this very instant: taken
    runs, total = await store.runs(row.id)
    assert total == 2
    by_slot = {r.slot: r for r in runs}
    assert by_slot[T0].inputs == {"text": "other", "n": "2"} and by_slot[T0].trigger == "hook"
    assert by_slot[T0 + timedelta(seconds=1)].inputs is None
    # the timer takes them with their inputs, like any "run now" request
    taken = await store.take_manual("t", T0, T0 + timedelta(seconds=30))
    assert [(r.trigger, r.inputs) for r in taken] == [("hook", {"text": "other", "n": "2"}),
                                                      ("hook", None)]
    async with store.engine.connect() as conn:
        stored = (await conn.execute(text(
            "SELECT count(*) FROM schedule_run WHERE inputs IS NULL"))).scalar_one()
    assert stored == 1  # NULL, not a JSON null, when the run has none of its own


async def test_the_timer_launches_a_hook_run_with_its_own_inputs(store):
    row = await store.add_schedule(schedule(owner="alice", inputs={"text": "stored"},
                                            next_run=T0 + timedelta(days=1)))
    await store.queue_hook_run(row, T0, {"text": "from the call"})
    await store.queue_hook_run(row, T0 + timedelta(seconds=1), None)
    launcher = FakeLauncher()
    timer = make_timer(store, launcher, clock=Clock(T0 + timedelta(seconds=2)))
    assert await timer.fire_manual() == 2
    await timer.drain()
    assert sorted(call[2]["text"] for call in launcher.calls) == ["from the call", "stored"]
    runs, _ = await store.runs(row.id)
    assert {(r.trigger, r.status) for r in runs} == {("hook", "launched")}


async def test_a_deleted_schedule_takes_its_hook_runs_with_it(store):
    row = await store.add_schedule(schedule(hook_hash="ef" * 32))
    await store.queue_hook_run(row, T0, {"text": "x"})
    assert await store.delete_schedule_logged(row.id)
    assert await store.schedule_by_hook("ef" * 32) is None
    async with store.session() as s:
        assert (await s.execute(select(RunRow))).scalars().all() == []
        assert (await s.execute(select(ChangeRow))).scalars().all() == []
