"""Pages under ``/admin/schedule`` in kodosumi's look (extending its ``_frame.html``)."""

from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.response import Template

from kodosumi_timer.panel.api import caller
from kodosumi_timer.panel.services import services_from
from kodosumi_timer.schedules import to_response


class SchedulePages(Controller):
    include_in_schema = False

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], state: State) -> Template:
        services = services_from(state)
        rows, total = await services.store.list_schedules(caller(request), limit=200)
        return Template("schedule/list.html", context={
            "items": [to_response(r) for r in rows], "total": total})
