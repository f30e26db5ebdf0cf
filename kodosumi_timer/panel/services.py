"""What the schedule routes need, bundled so tests can hand in fakes behind our interfaces."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from litestar.datastructures import State

from kodosumi_timer.bridge import Roles
from kodosumi_timer.config import TimerSettings
from kodosumi_timer.errors import FlowUnavailable, InvalidInput
from kodosumi_timer.schedules import FlowInfo, Flows
from kodosumi_timer.store import Store

STATE_KEY = "kodosumi_timer"
# reading a form is a quick GET; a schedule is not saved against an agent that hangs
FORM_TIMEOUT = 10.0


@dataclass
class PanelServices:
    store: Store
    flows: Flows
    wake: Callable[[], None]
    clock: Callable[[], datetime]
    settings: TimerSettings
    roles: Roles


class RegisteredFlows:
    """Flows from kodosumi's register actor (what ``GET /flow`` lists)."""

    def __init__(self, state: State):
        self.state = state

    def _all(self) -> list[Any]:
        import kodosumi.service.endpoint as endpoint

        return endpoint.find(self.state)

    def _endpoint(self, flow_url: str) -> Any | None:
        for ep in self._all():
            if ep.url.rstrip("/") == flow_url.rstrip("/"):
                return ep
        return None

    async def find(self, flow_url: str) -> FlowInfo | None:
        ep = self._endpoint(flow_url)
        if ep is None:
            return None
        return FlowInfo(url=ep.url if ep.url.endswith("/") else ep.url + "/",
                        summary=ep.summary)

    async def form(self, flow_url: str, owner: str) -> list[dict[str, Any]]:
        """GET on the flow's Serve app, as kodosumi's proxy does it for the owner's
        browser: fresh headers naming only the owner (never the caller's cookies or
        token), no redirects followed, a short timeout."""
        from kodosumi.const import KODOSUMI_BASE, KODOSUMI_USER

        ep = self._endpoint(flow_url)
        if ep is None:
            raise InvalidInput(f"flow {flow_url} is not registered in the panel",
                               field="flow_url")
        headers = {KODOSUMI_USER: owner, KODOSUMI_BASE: ep.source.replace("/openapi.json", ""),
                   "accept": "application/json"}
        unreadable = f"the form of flow {flow_url} could not be read, so its inputs cannot " \
                     "be checked; try again when the agent is running"
        try:
            async with httpx.AsyncClient(timeout=FORM_TIMEOUT) as client:
                response = await client.get(ep.base_url, headers=headers)
        except httpx.HTTPError as exc:
            raise FlowUnavailable(f"{unreadable} ({type(exc).__name__})",
                                  field="flow_url") from exc
        if response.status_code != 200:
            raise FlowUnavailable(f"{unreadable} (the agent answered HTTP "
                                  f"{response.status_code})", field="flow_url")
        try:
            elements = response.json().get("elements")
        except (ValueError, AttributeError):
            elements = None
        if not isinstance(elements, list) or not all(isinstance(e, dict) for e in elements):
            raise FlowUnavailable(f"{unreadable} (the agent's answer has no form)",
                                  field="flow_url")
        return elements

    async def list(self) -> list[FlowInfo]:
        return [FlowInfo(url=ep.url, summary=ep.summary) for ep in self._all()]


def services_from(state: State) -> PanelServices:
    return state[STATE_KEY]  # type: ignore[no-any-return]
