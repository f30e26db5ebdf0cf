"""Writes as clients make them: read-modify-write with PUT, JSON merge patch, versions and
ETags, 404 before any validation, what operators may change, and the change log."""

from datetime import timedelta

import pytest

from kodosumi_timer.store.tables import ScheduleRow
from tests.unit.conftest import ALICE, BOB, OPERATOR, once, token
from tests.unit.factories import FLOW, T0


def cron(**over):
    body = {"flow_url": FLOW, "schedule_type": "cron", "cron_expression": "0 9 * * MON-FRI",
            "timezone": "Europe/Berlin", "inputs": {"message": "daily", "n": "2"},
            "title": "Daily"}
    body.update(over)
    return body


async def create(api, body, who=ALICE):
    r = await api.post("/schedule/", json=body, headers=token(who))
    assert r.status_code == 201, r.text
    return r.json()


def services(api):
    return api.app.state["kodosumi_timer"]


MERGE = {"content-type": "application/merge-patch+json"}


# ---- PUT: the representation GET returns ----------------------------------------------

async def test_get_change_put_back_round_trip(api):
    s = await create(api, cron())
    got = await api.get(f"/schedule/{s['id']}", headers=token(ALICE))
    assert got.headers["etag"] == '"1"'
    body = got.json()
    body["title"] = "Renamed"
    r = await api.put(f"/schedule/{s['id']}", json=body, headers=token(ALICE))
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "Renamed" and r.json()["version"] == 2
    assert r.headers["etag"] == '"2"'
    # nothing else moved: the same rule, the same next run
    assert r.json()["next_run"] == s["next_run"]
    assert r.json()["cron_expression"] == s["cron_expression"]


async def test_a_done_once_schedule_can_be_renamed_with_its_past_run_at(api):
    s = await create(api, once())
    # the slot has passed and the timer marked it done
    await services(api).store.update_schedule(
        s["id"], {"state": "done", "next_run": None, "run_count": 1, "note": "ran once"})
    services(api).clock.advance(days=2)
    body = (await api.get(f"/schedule/{s['id']}", headers=token(ALICE))).json()
    body["title"] = "Kept for the record"
    r = await api.put(f"/schedule/{s['id']}", json=body, headers=token(ALICE))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "done" and r.json()["title"] == "Kept for the record"


async def test_one_field_alone_without_version(api):
    s = await create(api, cron())
    r = await api.put(f"/schedule/{s['id']}", json={"title": "x"}, headers=token(ALICE))
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "x" and r.json()["inputs"] == s["inputs"]


async def test_putting_back_what_was_read_changes_nothing(api):
    s = await create(api, cron())
    body = (await api.get(f"/schedule/{s['id']}", headers=token(ALICE))).json()
    r = await api.put(f"/schedule/{s['id']}", json=body, headers=token(ALICE))
    assert r.status_code == 200 and r.json()["version"] == 1
    log = (await api.get(f"/schedule/{s['id']}/changes", headers=token(ALICE))).json()
    assert [c["action"] for c in log["items"]] == ["create"]


@pytest.mark.parametrize("field, value", [
    ("id", "0" * 32), ("owner", BOB), ("system", True), ("state", "paused"),
    ("enabled", False), ("created", "2020-01-01T00:00:00+00:00")])
async def test_changing_a_read_only_field_is_422_naming_it(api, field, value):
    s = await create(api, cron())
    body = (await api.get(f"/schedule/{s['id']}", headers=token(ALICE))).json()
    body[field] = value
    body["title"] = "not saved"
    r = await api.put(f"/schedule/{s['id']}", json=body, headers=token(ALICE))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and "read-only" in r.json()["detail"]
    after = (await api.get(f"/schedule/{s['id']}", headers=token(ALICE))).json()
    assert after["title"] == "Daily" and after["version"] == 1


async def test_what_the_timer_moves_meanwhile_does_not_refuse_a_write(api):
    s = await create(api, cron())
    body = (await api.get(f"/schedule/{s['id']}", headers=token(ALICE))).json()
    # the timer fires between the client's GET and its PUT
    await services(api).store.update_schedule(s["id"], {
        "run_count": 1, "last_run": T0, "last_status": "launched", "last_fid": "f1",
        "next_run": T0 + timedelta(days=1), "updated": T0 + timedelta(seconds=1)})
    body["title"] = "Renamed"
    r = await api.put(f"/schedule/{s['id']}", json={**body, "version": 1},
                      headers=token(ALICE))
    assert r.status_code == 200, r.text
    assert r.json()["run_count"] == 1 and r.json()["last_fid"] == "f1"


async def test_null_clears_or_resets_and_required_fields_cannot_be_removed(api):
    s = await create(api, cron(end_at="2027-06-01T00:00:00", max_runs=5, timezone="Asia/Tokyo"))
    r = await api.put(f"/schedule/{s['id']}", json={
        "title": None, "end_at": None, "max_runs": None, "timezone": None,
        "expose_name": None}, headers=token(ALICE))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["title"] is None and body["end_at"] is None and body["max_runs"] is None
    assert body["timezone"] == "UTC" and body["expose_name"] == "Quick demo"
    for field in ("flow_url", "schedule_type"):
        bad = await api.put(f"/schedule/{s['id']}", json={field: None}, headers=token(ALICE))
        assert bad.status_code == 422 and bad.json()["field"] == field, bad.text


async def test_invalid_values_name_the_field(api):
    s = await create(api, cron())
    r = await api.put(f"/schedule/{s['id']}", json={"catchup_window": 0}, headers=token(ALICE))
    assert r.status_code == 422 and r.json()["field"] == "catchup_window", r.text
    r = await api.put(f"/schedule/{s['id']}", json={"timezone": "Mars/Base"},
                      headers=token(ALICE))
    assert r.status_code == 422 and r.json()["field"] == "timezone", r.text


# ---- optimistic concurrency -------------------------------------------------------------

async def test_stale_version_or_if_match_is_409_and_current_ones_pass(api):
    s = await create(api, cron())
    url = f"/schedule/{s['id']}"
    assert (await api.put(url, json={"title": "a", "version": 1},
                          headers=token(ALICE))).status_code == 200
    stale = await api.put(url, json={"title": "b", "version": 1}, headers=token(ALICE))
    assert stale.status_code == 409 and stale.json()["field"] == "version"
    stale = await api.put(url, json={"title": "b"}, headers={**token(ALICE), "If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["field"] == "If-Match"
    stale = await api.patch(url, json={"title": "b"},
                            headers={**token(ALICE), **MERGE, "If-Match": '"1"'})
    assert stale.status_code == 409
    assert (await api.delete(url, headers={**token(ALICE), "If-Match": '"1"'})).status_code == 409
    etag = (await api.get(url, headers=token(ALICE))).headers["etag"]
    ok = await api.put(url, json={"title": "c"}, headers={**token(ALICE), "If-Match": etag})
    assert ok.status_code == 200 and ok.json()["title"] == "c"
    ok = await api.patch(url, json={"title": "d"},
                         headers={**token(ALICE), **MERGE, "If-Match": f'W/"0", {ok.headers["etag"]}'})
    assert ok.status_code == 200, ok.text
    assert (await api.put(url, json={"title": "e"},
                          headers={**token(ALICE), "If-Match": "*"})).status_code == 200
    assert (await api.get(url, headers=token(ALICE))).json()["title"] == "e"


# ---- PATCH: JSON merge patch ------------------------------------------------------------

async def test_patch_merges_inputs_and_null_removes(api):
    s = await create(api, cron(inputs={"message": "daily", "n": "2", "text": "x"}))
    r = await api.patch(f"/schedule/{s['id']}", json={
        "inputs": {"n": "3", "text": None}, "title": None},
        headers={**token(ALICE), **MERGE})
    assert r.status_code == 200, r.text
    # text removed: what the agent's form posts for an empty text field
    assert r.json()["inputs"] == {"message": "daily", "n": "3", "text": ""}
    assert r.json()["title"] is None and r.json()["cron_expression"] == "0 9 * * MON-FRI"
    # plain JSON is accepted too; PUT replaces inputs as a whole
    r = await api.patch(f"/schedule/{s['id']}", json={"catchup": "skip"}, headers=token(ALICE))
    assert r.status_code == 200 and r.json()["catchup"] == "skip"
    r = await api.put(f"/schedule/{s['id']}", json={"inputs": {"message": "only"}},
                      headers=token(ALICE))
    assert r.json()["inputs"] == {"message": "only", "n": "", "text": ""}


async def test_patch_retimes_a_cron_schedule(api):
    s = await create(api, cron())
    r = await api.patch(f"/schedule/{s['id']}", json={"cron_expression": "30 7 * * *"},
                        headers={**token(ALICE), **MERGE})
    assert r.status_code == 200, r.text
    assert r.json()["next_run"].startswith("2027-03-02T06:30:00")  # 07:30 CET


async def test_patch_with_extra_field_is_422(api):
    s = await create(api, cron())
    r = await api.patch(f"/schedule/{s['id']}", json={"surprise": 1},
                        headers={**token(ALICE), **MERGE})
    assert r.status_code == 422 and r.json()["field"] == "surprise"


# ---- 404 comes first --------------------------------------------------------------------

@pytest.mark.parametrize("method, body", [
    ("put", {}), ("put", {"surprise": 1}), ("put", {"version": "x"}), ("patch", {}),
    ("patch", {"title": "x" * 500}), ("put", None)])
async def test_another_users_schedule_is_404_whatever_the_body(api, method, body):
    s = await create(api, cron())
    kwargs = {"json": body} if body is not None else {"content": b"{not json"}
    r = await getattr(api, method)(f"/schedule/{s['id']}", headers={
        **token(BOB), "content-type": "application/json"}, **kwargs)
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "not_found"
    missing = await getattr(api, method)("/schedule/" + "0" * 32, headers={
        **token(ALICE), "content-type": "application/json"}, **kwargs)
    assert missing.status_code == 404, missing.text


# ---- operators and owners ---------------------------------------------------------------

@pytest.mark.parametrize("change", [
    {"inputs": {"message": "mine now"}}, {"flow_url": "/-/127.0.0.1/8001/other/-/"},
    {"cron_expression": "* * * * *"}, {"timezone": "Asia/Tokyo"}, {"max_runs": 1},
    {"schedule_type": "once"}, {"overlap": "allow"}, {"catchup_window": 5}])
async def test_operator_may_not_change_what_runs_as_the_owner(api, change):
    s = await create(api, cron())
    r = await api.patch(f"/schedule/{s['id']}", json=change,
                        headers={**token(OPERATOR), **MERGE})
    assert r.status_code == 403, r.text
    assert r.json()["field"] == next(iter(change)) and "owner" in r.json()["detail"]
    assert (await api.get(f"/schedule/{s['id']}", headers=token(ALICE))).json()["version"] == 1


async def test_operator_renames_pauses_resumes_triggers_and_deletes(api):
    s = await create(api, cron())
    url = f"/schedule/{s['id']}"
    body = (await api.get(url, headers=token(OPERATOR))).json()
    body["title"] = "Named by ops"
    r = await api.put(url, json=body, headers=token(OPERATOR))  # the whole object back
    assert r.status_code == 200 and r.json()["title"] == "Named by ops", r.text
    assert r.json()["owner"] == ALICE
    for action in ("pause", "resume", "trigger"):
        r = await api.post(f"{url}/{action}", headers=token(OPERATOR))
        assert r.status_code in (200, 202), (action, r.text)
    assert (await api.delete(url, headers=token(OPERATOR))).status_code == 204
    assert (await api.get(url, headers=token(ALICE))).status_code == 404


# ---- the change log ---------------------------------------------------------------------

async def test_every_change_is_recorded_with_who_and_old_and_new(api):
    s = await create(api, cron())
    url = f"/schedule/{s['id']}"
    await api.patch(url, json={"title": "Renamed", "inputs": {"n": "3"}},
                    headers={**token(ALICE), **MERGE})
    services(api).clock.advance(minutes=1)
    await api.post(f"{url}/pause", headers=token(OPERATOR))
    await api.post(f"{url}/resume", headers=token(ALICE))
    await api.post(f"{url}/trigger", headers=token(OPERATOR))
    log = (await api.get(f"{url}/changes", headers=token(ALICE))).json()
    assert log["total"] == 5
    actions = [(c["action"], c["actor"]) for c in log["items"]]
    assert actions == [("trigger", OPERATOR), ("resume", ALICE), ("pause", OPERATOR),
                       ("edit", ALICE), ("create", ALICE)]
    edit = {c["field"]: (c["old"], c["new"]) for c in log["items"][3]["changes"]}
    assert edit == {"title": ("Daily", "Renamed"),
                    "inputs": ({"message": "daily", "n": "2", "text": ""},
                               {"message": "daily", "n": "3", "text": ""})}
    pause = {c["field"]: (c["old"], c["new"]) for c in log["items"][2]["changes"]}
    assert pause == {"state": ("active", "paused")}
    assert log["items"][2]["at"].startswith("2027-03-01T08:01:00")
    page = (await api.get(f"{url}/changes?limit=2&offset=1", headers=token(ALICE))).json()
    assert [c["action"] for c in page["items"]] == ["resume", "pause"] and page["total"] == 5
    # nobody else reads it
    assert (await api.get(f"{url}/changes", headers=token(BOB))).status_code == 404


async def test_the_change_log_goes_with_the_schedule(api):
    s = await create(api, cron())
    await api.put(f"/schedule/{s['id']}", json={"title": "x"}, headers=token(ALICE))
    assert (await services(api).store.changes(s["id"]))[1] == 2
    assert (await api.delete(f"/schedule/{s['id']}", headers=token(ALICE))).status_code == 204
    assert (await services(api).store.changes(s["id"]))[1] == 0


# ---- system schedules, routes that do not exist, q ------------------------------------------

async def _system(api, source):
    row = ScheduleRow(
        id=f"{source:0<32}", owner="timer", system=True, expose_name="Heartbeat",
        flow_url=FLOW, schedule_type="cron", cron_expression="* * * * *", timezone="UTC",
        inputs={}, state="active", catchup="once", catchup_window=60, overlap="skip",
        run_count=0, next_run=T0, version=1, created=T0, updated=T0,
        system_source=source, system_key=f"{FLOW}{source}")
    await services(api).store.add_schedule(row)
    return row.id


@pytest.mark.parametrize("source, says", [
    ("file", "schedules file"), ("flow", "declared by its flow")])
async def test_system_schedules_say_where_they_come_from(api, source, says):
    sid = await _system(api, source)
    for method in ("delete", "put"):
        kwargs = {"json": {"title": "x"}} if method == "put" else {}
        r = await getattr(api, method)(f"/schedule/{sid}", headers=token(OPERATOR), **kwargs)
        assert r.status_code == 409, r.text
        assert says in r.json()["detail"]
        done = "deleted" if method == "delete" else "edited"
        assert f"cannot be {done} through the API" in r.json()["detail"]
        if source == "flow":
            assert "schedules file" not in r.json()["detail"]


@pytest.mark.parametrize("method, path, allowed", [
    ("get", "/schedule/preview", "POST"), ("put", "/schedule/preview", "POST"),
    ("post", "/schedule/0f0f", "GET, PUT, DELETE, PATCH"), ("delete", "/schedule/", "POST, GET")])
async def test_405_is_our_error_without_a_stack_trace(api, method, path, allowed):
    r = await getattr(api, method)(path, headers=token(ALICE))
    assert r.status_code == 405, r.text
    assert r.json()["error"] == "method_not_allowed" and set(r.json()) == {
        "error", "detail", "field"}
    assert "Traceback" not in r.text and "stacktrace" not in r.text
    assert set(r.headers["allow"].split(", ")) >= set(allowed.split(", "))


async def test_q_matches_percent_and_underscore_literally(api):
    await create(api, cron(title="100% done"))
    await create(api, cron(title="a_b"))
    await create(api, cron(title="axb 100 done"))
    found = {q: [x["title"] for x in (await api.get(
        "/schedule/", params={"q": q}, headers=token(ALICE))).json()["items"]]
        for q in ("100%", "a_b", "%", "_", "\\")}
    assert found == {"100%": ["100% done"], "a_b": ["a_b"], "%": ["100% done"],
                     "_": ["a_b"], "\\": []}


# ---- the agent's form changed after the inputs were saved -------------------------------

async def test_get_says_which_stored_inputs_no_longer_fit_the_agents_form(api):
    s = await create(api, cron())
    got = await api.get(f"/schedule/{s['id']}", headers=token(ALICE))
    assert got.json()["inputs_problem"] is None
    # the agent drops its `n` input and adds a required `topic`
    flows = services(api).flows
    flows.elements = [e for e in flows.elements if e.get("name") != "n"] + [
        {"type": "text", "name": "topic", "label": "Topic", "required": True, "value": None}]
    got = await api.get(f"/schedule/{s['id']}", headers=token(ALICE))
    assert got.json()["inputs_problem"]["field"] == "inputs.n"
    assert "not an input of this agent's form" in got.json()["inputs_problem"]["detail"]
    # what GET answered goes back with PUT (the problem is ignored there); a rename keeps
    # the stored inputs as they are
    body = got.json() | {"title": "Renamed"}
    assert (await api.put(f"/schedule/{s['id']}", json=body,
                          headers=token(ALICE))).status_code == 200
    # fixing the inputs: the next field is named, then none
    r = await api.patch(f"/schedule/{s['id']}", json={"inputs": {"n": None}},
                        headers=token(ALICE) | MERGE)
    assert r.status_code == 422 and r.json()["field"] == "inputs.topic"
    r = await api.patch(f"/schedule/{s['id']}", json={"inputs": {"n": None, "topic": "x"}},
                        headers=token(ALICE) | MERGE)
    assert r.status_code == 200, r.text
    got = await api.get(f"/schedule/{s['id']}", headers=token(ALICE))
    assert got.json()["inputs_problem"] is None


async def test_a_form_that_cannot_be_read_now_is_no_verdict(api):
    from kodosumi_timer.errors import FlowUnavailable

    s = await create(api, cron())

    async def down(flow_url, owner):
        raise FlowUnavailable("the agent does not answer", field="flow_url")

    services(api).flows.form = down
    got = await api.get(f"/schedule/{s['id']}", headers=token(ALICE))
    assert got.status_code == 200 and got.json()["inputs_problem"] is None


async def test_a_flow_that_is_gone_is_the_inputs_problem(api):
    from kodosumi_timer.errors import InvalidInput

    s = await create(api, cron())

    async def gone(flow_url, owner):  # what RegisteredFlows.form says of such a flow
        raise InvalidInput(f"flow {flow_url} is not registered in the panel", field="flow_url")

    services(api).flows.form = gone
    got = await api.get(f"/schedule/{s['id']}", headers=token(ALICE))
    assert got.json()["inputs_problem"]["field"] == "flow_url"
