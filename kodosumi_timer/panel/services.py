"""What the schedule routes need, bundled so tests can hand in fakes behind our interfaces."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar.datastructures import State

from kodosumi_timer.bridge import Roles
from kodosumi_timer.config import TimerSettings
from kodosumi_timer.schedules import FlowInfo, Flows
from kodosumi_timer.store import Store

STATE_KEY = "kodosumi_timer"


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

    async def find(self, flow_url: str) -> FlowInfo | None:
        for ep in self._all():
            if ep.url.rstrip("/") == flow_url.rstrip("/"):
                return FlowInfo(url=ep.url if ep.url.endswith("/") else ep.url + "/",
                                summary=ep.summary)
        return None

    async def list(self) -> list[FlowInfo]:
        return [FlowInfo(url=ep.url, summary=ep.summary) for ep in self._all()]


def services_from(state: State) -> PanelServices:
    return state[STATE_KEY]  # type: ignore[no-any-return]
