"""The schedule API inside the real composed panel (kodosumi's app, its JWT middleware and
exception handlers, our routers), without Ray: what a client sees at /schedule and in
/schema/openapi.json."""

import pytest
from litestar.testing import AsyncTestClient

from tests.unit.conftest import ALICE, once, token
from tests.unit.factories import FORM, FakeFlows, composed_app


@pytest.fixture
async def panel(tmp_path):
    async with AsyncTestClient(app=composed_app(tmp_path)) as client:
        yield client


@pytest.fixture
async def openapi(panel):
    r = await panel.get("/schema/openapi.json", headers=token(ALICE))
    assert r.status_code == 200
    return r.json()


async def test_405_and_404_of_the_router_are_our_errors_without_a_stack_trace(panel):
    for method, path in [("get", "/schedule/preview"), ("patch", "/schedule/preview"),
                         ("post", "/schedule/abc"), ("put", "/schedule/")]:
        r = await getattr(panel, method)(path, headers=token(ALICE))
        assert r.status_code == 405, (method, path, r.text)
        assert r.json()["error"] == "method_not_allowed", r.text
        assert "stacktrace" not in r.text and "Traceback" not in r.text
        assert r.headers["allow"]
    r = await panel.get("/schedule/abc/nothing/here", headers=token(ALICE))
    assert r.status_code == 404 and r.json() == {
        "error": "not_found", "detail": "no such route", "field": None}


async def test_a_write_round_trip_with_etags(panel):
    created = await panel.post("/schedule/", json=once(), headers=token(ALICE))
    assert created.status_code == 201, created.text
    url = f"/schedule/{created.json()['id']}"
    got = await panel.get(url, headers=token(ALICE))
    body = {**got.json(), "title": "Renamed"}
    del body["version"]  # the ETag alone makes the write conditional
    r = await panel.put(url, json=body, headers={**token(ALICE), "If-Match": got.headers["etag"]})
    assert r.status_code == 200, r.text
    again = await panel.put(url, json=body, headers={**token(ALICE),
                                                     "If-Match": got.headers["etag"]})
    assert again.status_code == 409 and again.json()["field"] == "If-Match"


SCHEDULE = "/schedule/{schedule_id}"


async def test_the_openapi_documents_every_answer(openapi):
    paths = openapi["paths"]

    def statuses(path, method):
        return set(paths[path][method]["responses"])

    assert {"201", "401", "403", "422"} <= statuses("/schedule", "post")
    assert {"200", "401", "403", "422"} <= statuses("/schedule", "get")
    assert {"200", "401", "404", "405"} <= statuses(SCHEDULE, "get")
    for method in ("put", "patch"):
        assert {"200", "401", "403", "404", "405", "409", "422"} <= statuses(SCHEDULE, method)
    assert {"204", "401", "404", "405", "409"} <= statuses(SCHEDULE, "delete")
    for action in ("pause", "resume", "trigger"):
        assert {"401", "403", "404", "409"} <= statuses(f"{SCHEDULE}/{action}", "post")
    assert {"200", "401", "404", "422"} <= statuses(f"{SCHEDULE}/changes", "get")
    # bad input is a 422 everywhere, never Litestar's 400
    assert not [(path, method) for path, item in paths.items() if path.startswith("/schedule")
                for method, op in item.items() if "400" in op["responses"]]
    assert "ETag" in paths[SCHEDULE]["get"]["responses"]["200"]["headers"]
    assert any(p["name"] == "If-Match" and p["in"] == "header"
               for p in paths[SCHEDULE]["put"]["parameters"])
    assert "application/merge-patch+json" in paths[SCHEDULE]["patch"]["requestBody"]["content"]


async def test_request_bodies_refuse_unknown_fields_in_the_schema(openapi):
    schemas = openapi["components"]["schemas"]
    for name in ("ScheduleCreate", "ScheduleUpdate", "SchedulePatch", "PreviewRequest"):
        assert schemas[name]["additionalProperties"] is False, name


async def test_links_lead_from_a_created_schedule_to_its_routes(openapi):
    links = openapi["paths"]["/schedule"]["post"]["responses"]["201"]["links"]
    operations = {op["operationId"] for path in openapi["paths"].values()
                  for op in path.values() if isinstance(op, dict) and "operationId" in op}
    assert {"getSchedule", "updateSchedule", "patchSchedule", "deleteSchedule",
            "scheduleChanges"} <= set(links)
    for link in links.values():
        assert link["operationId"] in operations
        assert link["parameters"]["schedule_id"] == "$response.body#/id"
    assert links["updateSchedule"]["requestBody"] == "$response.body"


async def test_the_detail_page_shows_the_change_log(panel):
    sid = (await panel.post("/schedule/", json=once(), headers=token(ALICE))).json()["id"]
    await panel.patch(f"/schedule/{sid}", json={"title": "Renamed <b>"}, headers=token(ALICE))
    await panel.post(f"/schedule/{sid}/pause", headers=token(ALICE))
    page = await panel.get(f"/admin/schedule/{sid}", headers=token(ALICE))
    assert page.status_code == 200, page.text
    table = page.text[page.text.index('id="changes-table"'):]
    rows = table.split('class="change-row"')[1:]
    assert [row.split('data-action="')[1].split('"')[0] for row in rows] == [
        "pause", "edit", "create"]
    assert "<code>title</code>" in rows[1] and "Nightly report" in rows[1]
    assert "Renamed <b>" not in table  # escaped
    assert 'data-zone="UTC"' in rows[0] and "UTC</time>" in rows[0]


async def test_the_detail_page_names_inputs_that_no_longer_fit_the_agents_form(tmp_path):
    flows = FakeFlows()
    async with AsyncTestClient(app=composed_app(tmp_path, flows=flows)) as panel:
        body = {**once(), "inputs": {"n": "2"}}
        sid = (await panel.post("/schedule/", json=body, headers=token(ALICE))).json()["id"]
        page = await panel.get(f"/admin/schedule/{sid}", headers=token(ALICE))
        assert 'id="inputs-problem"' not in page.text
        flows.elements = [e for e in FORM if e.get("name") != "n"]  # the agent changed
        page = await panel.get(f"/admin/schedule/{sid}", headers=token(ALICE))
        problem = page.text[page.text.index('id="inputs-problem"'):][:600]
        assert "no longer fit the agent" in problem and "inputs.n" in problem
        assert f'href="/admin/schedule/{sid}/edit"' in problem
