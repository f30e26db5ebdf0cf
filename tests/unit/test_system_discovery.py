"""Flow-declared schedules: kodosumi's own ServeAPI puts ``openapi_extra`` into the
OpenAPI, kodosumi's own register turns that OpenAPI into the panel's flow list, and
:class:`PanelDiscovery` finds the declaration from there. The HTTP hops are served
from memory; the real panel and Serve app are in tests/integration."""

import logging

import httpx
from kodosumi.core import ServeAPI
from kodosumi.core import forms as F
from kodosumi.service.endpoint import _extract

from kodosumi_timer.system import PanelDiscovery, SystemSchedules, declaration_of
from tests.unit.factories import T0

SERVE = "http://127.0.0.1:8001"
SECRET = "unit-test-secret"


def flow_app(declaration=None, path="/"):
    app = ServeAPI()
    extra = {"x-kodosumi-schedule": declaration} if declaration is not None else None

    @app.enter(path=path, model=F.Model(F.InputText(label="Note", name="note")),
               summary="Beat", openapi_extra=extra)
    async def enter(inputs):  # pragma: no cover - never launched here
        return inputs

    return app.openapi()


def fake_panel(specs: dict[str, dict | None], page_size: int = 1):
    """The panel's GET /flow (paged like kodosumi's) over kodosumi's own register."""
    items = []
    for prefix, spec in specs.items():
        source = f"{SERVE}{prefix}/openapi.json"
        spec_for_register = spec or flow_app()
        items += [ep.model_dump() for ep in _extract(source, spec_for_register)["register"]]
    seen_tokens = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "panel":
            seen_tokens.append(request.headers.get("KODOSUMI_API_KEY"))
            start = 0
            offset = request.url.params.get("offset")
            if offset:
                start = [i["uid"] for i in items].index(offset) + 1
            page = items[start:start + page_size]
            more = start + page_size < len(items)
            return httpx.Response(200, json={"items": page,
                                             "offset": page[-1]["uid"] if more else None})
        prefix = request.url.path.removesuffix("/openapi.json")
        spec = specs.get(prefix)
        if spec is None:
            return httpx.Response(502, text="Serve app down")
        return httpx.Response(200, json=spec)

    client = httpx.AsyncClient(base_url="http://panel", transport=httpx.MockTransport(handler))
    return client, items, seen_tokens


async def test_discovers_declarations_through_the_flow_list():
    specs = {
        "/heartbeat": flow_app({"cron": "* * * * *", "inputs": {"note": "ok"}}),
        "/plain": flow_app(),
        "/broken": flow_app({"cron": "61 * * * *", "colour": "red"}),
        "/down": None,
    }
    client, items, tokens = fake_panel(specs)
    discovery = PanelDiscovery("http://panel", SECRET, "timer", client=client)
    found = await discovery.discover()
    await discovery.close()

    beat = "/-/127.0.0.1/8001/heartbeat/-/"
    assert [(e.flow, e.cron, e.inputs, e.source) for e in found.entries] == [
        (beat, "* * * * *", {"note": "ok"}, "flow")]
    assert found.entries[0].expose_name == "Beat"
    assert found.unreadable == {"/-/127.0.0.1/8001/down/-/"}
    assert found.flows >= {beat, "/-/127.0.0.1/8001/plain/-/"}
    assert any("broken" in w and "field 'cron'" in w and "field 'colour'" in w
               for w in found.warnings), found.warnings
    # every page asked, with a token minted for the timer user
    assert len(tokens) == len(items)
    from jose import jwt
    assert jwt.decode(tokens[0], SECRET, algorithms=["HS256"])["sub"] == "timer"


def test_declaration_of_matches_the_flows_own_path():
    spec = flow_app({"cron": "0 * * * *"}, path="/nested")
    source = f"{SERVE}/app/openapi.json"
    [endpoint] = [ep for ep in _extract(source, spec)["register"]]
    assert endpoint.url == "/-/127.0.0.1/8001/app/-/nested"
    assert declaration_of(spec, endpoint.url, source) == {"cron": "0 * * * *"}
    assert declaration_of(spec, "/-/127.0.0.1/8001/app/-/", source) is None


async def test_file_flow_not_in_the_panel_is_warned_about_once(store, tmp_path, caplog):
    client, _, _ = fake_panel({"/heartbeat": flow_app()})
    path = tmp_path / "schedules.yaml"
    path.write_text("- flow: /-/127.0.0.1/8001/nowhere/-/\n  cron: '* * * * *'\n")
    system = SystemSchedules(store, path, "timer",
                             discovery=PanelDiscovery("http://panel", SECRET, "timer",
                                                      client=client))
    caplog.set_level(logging.WARNING, logger="kodosumi_timer.system")
    for _ in range(3):
        await system.refresh(T0)
        await system.wait_discovery()
    warned = [r for r in caplog.records if "is not registered in the panel" in r.message]
    assert len(warned) == 1
    await system.close()
