"""The schedule API for ``scale.py``, without Ray: ``create_api_app`` with a real store.

uvicorn factory (``uvicorn --factory _scale_api:create``). The store is the real one
(``BENCH_DB``), and so is the role table (``RoleTable`` on a kodosumi ``admin.db`` at
``BENCH_ADMIN_DB`` holding every benchmark user); flows are a stand-in behind our own
interface that knows the one benchmark flow. kodosumi's JWT middleware checks the tokens
as in the panel.
"""

import os
from typing import Any

from litestar import Litestar

from kodosumi_timer.bridge import RoleTable
from kodosumi_timer.clock import utcnow
from kodosumi_timer.config import TimerSettings
from kodosumi_timer.errors import InvalidInput
from kodosumi_timer.panel.app import create_api_app
from kodosumi_timer.panel.services import STATE_KEY, PanelServices
from kodosumi_timer.schedules import FlowInfo
from kodosumi_timer.store import open_store

FLOW = "/-/127.0.0.1/8001/bench/-/"


# the bench flow's input form (kodosumi ``elements``): the POSTs' inputs are checked
# against it as against an agent's own form (issue 17); a real panel fetches it
FORM: list[dict[str, Any]] = [{"type": "text", "name": "text"}, {"type": "text", "name": "n"}]


class BenchFlows:
    async def find(self, flow_url: str) -> FlowInfo | None:
        return FlowInfo(FLOW, "Bench flow") if flow_url == FLOW else None

    async def form(self, flow_url: str, owner: str) -> list[dict[str, Any]]:
        if flow_url != FLOW:
            raise InvalidInput(f"unknown flow {flow_url}", field="flow_url")
        return FORM


def create() -> Litestar:
    services = PanelServices(store=None, flows=BenchFlows(),  # type: ignore[arg-type]
                             wake=lambda: None, clock=utcnow, settings=TimerSettings(),
                             roles=RoleTable(os.environ["BENCH_ADMIN_DB"]))
    app = create_api_app(services)

    async def open_services(app: Any) -> None:
        # the store is opened on the server's event loop (asyncpg connections are per loop)
        services.store = await open_store(os.environ["BENCH_DB"], migrate_schema=False)

    async def close_services(app: Any) -> None:
        await app.state[STATE_KEY].store.close()
        await app.state[STATE_KEY].roles.close()

    app.on_startup.append(open_services)
    app.on_shutdown.append(close_services)
    return app
