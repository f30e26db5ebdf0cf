"""What the schedule routes need, bundled so tests can hand in fakes behind our interfaces."""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import State

from kodosumi_timer.bridge import Roles
from kodosumi_timer.config import TimerSettings
from kodosumi_timer.errors import FlowUnavailable, InvalidInput
from kodosumi_timer.models import InputsProblem
from kodosumi_timer.schedules import Flows, checked_inputs
from kodosumi_timer.store import ScheduleRow, Store

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


# how long GET waits for the agent's form to re-check the inputs; slower: not checked
FORM_CHECK_TIMEOUT = 1.0  # a slow agent must not slow every GET down


async def inputs_problem(services: PanelServices, row: ScheduleRow) -> InputsProblem | None:
    """Whether the stored inputs still fit the agent's form as it is now (it may have
    changed since they were checked on save): the field and why, or None. A form that
    cannot be read now (the agent is down or slow) is no verdict either way."""
    try:
        await asyncio.wait_for(
            checked_inputs(services.flows, row.flow_url, row.owner, row.inputs or {}),
            FORM_CHECK_TIMEOUT)
    except InvalidInput as exc:
        return InputsProblem(field=exc.field or "inputs", detail=exc.detail)
    except (FlowUnavailable, TimeoutError):
        return None
    return None
