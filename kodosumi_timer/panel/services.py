"""What the schedule routes need, bundled so tests can hand in fakes behind our interfaces."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import State

from kodosumi_timer.bridge import Roles
from kodosumi_timer.config import TimerSettings
from kodosumi_timer.schedules import Flows
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


def services_from(state: State) -> PanelServices:
    return state[STATE_KEY]  # type: ignore[no-any-return]


def caller(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's role id as the panel shows it (with dashes)."""
    user = str(request.user)
    try:
        return str(uuid.UUID(user))
    except ValueError:
        return user
