"""A user's default notification (issue 12): ``/schedule/notify-default`` and its page
``/admin/schedule/notify``.

Schedules of the user without a ``notify`` of their own notify by this default (the
notifier reads it at each attempt, docs/NOTIFY.md). Static paths: Litestar matches them
before ``/schedule/{schedule_id}``, so ``notify-default`` is never read as an id.
"""

import json
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body
from litestar.response import Template
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kodosumi_timer.errors import Conflict, InvalidInput, NotFound
from kodosumi_timer.models import ErrorBody, NotifyEvent, _http_url, _known_events
from kodosumi_timer.notify import events, guard, signing
from kodosumi_timer.notify.delivery import Sender
from kodosumi_timer.notify.events import DEFAULT_EVENTS
from kodosumi_timer.panel.api import (
    COMMON,
    ApiOperation,
    active_user_guard,
    json_body_guard,
    same_origin_guard,
)
from kodosumi_timer.panel.services import PanelServices, caller, services_from
from kodosumi_timer.store.tables import UserSettingsRow

PATH = "/notify-default"
WITH_404 = {**COMMON, 404: ResponseSpec(data_container=ErrorBody,
                                       description="you have no default notification")}
WITH_409 = {**COMMON, 409: ResponseSpec(data_container=ErrorBody,
                                       description="you have no default notification")}
NONE = "you have no default notification; set one with PUT /schedule/notify-default"


class NotifyDefaultRequest(BaseModel):
    """Where and on what your schedules without a ``notify`` of their own tell you."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000,
                     description="receives a signed POST of JSON per event; private, "
                                 "loopback and link-local addresses only if "
                                 "KODO_TIMER_NOTIFY_ALLOW lists them")
    events: list[NotifyEvent] | None = Field(
        None, min_length=1, max_length=7,
        description=f"default (when first set): {', '.join(DEFAULT_EVENTS)}; left out "
                    "later: unchanged")

    _url = field_validator("url")(_http_url)
    _events = field_validator("events", mode="before")(_known_events)


class NotifyDefaultResponse(BaseModel):
    url: str
    events: list[str]
    secret: str | None = Field(
        None, description="only when it is new (first PUT, rotate): keep it then")
    updated_at: datetime


class NotifyTestResponse(BaseModel):
    delivered: bool
    url: str
    detail: str = Field(description="what happened, in words")


DefaultBody = Annotated[NotifyDefaultRequest, Body(
    media_type=RequestEncodingType.JSON, schema_extra={"additional_properties": False})]


def _view(row: UserSettingsRow, secret: bool = False) -> NotifyDefaultResponse:
    return NotifyDefaultResponse(url=row.notify_url or "", events=events.decode(row.notify_events),
                                 secret=row.notify_secret if secret else None,
                                 updated_at=row.updated_at)


def _allow(services: PanelServices) -> list[str]:
    return guard.allow_list(services.settings.TIMER_NOTIFY_ALLOW)


async def _mine(services: PanelServices, me: str) -> UserSettingsRow:
    row = await services.store.notify_default(me)
    if row is None:
        raise NotFound(NONE)
    return row


def test_body(owner: str, url: str, now: datetime) -> str:
    """A test delivery's body: shaped like a real one, event ``test``, no run."""
    return json.dumps({"event": "test", "notify_source": "default", "owner": owner,
                       "schedule_id": None, "run_id": None, "status": None,
                       "title": "test delivery of your default notification",
                       "url": url, "queued_at": now.isoformat()},
                      sort_keys=True, separators=(",", ":"))


class NotifyDefaultController(Controller):
    path = PATH
    tags = ["Notifications"]
    guards = [same_origin_guard, active_user_guard, json_body_guard]

    @get("/", summary="Your default notification", operation_id="getNotifyDefault",
         operation_class=ApiOperation,
         responses=WITH_404)
    async def get_default(self, request: Request[Any, Any, Any], state: State
                          ) -> NotifyDefaultResponse:
        return _view(await _mine(services_from(state), caller(request)))

    @put("/", summary="Set your default notification", operation_id="setNotifyDefault",
         operation_class=ApiOperation, responses=COMMON,
         description="Your schedules without a `notify` of their own send their "
                     "notifications here (docs/NOTIFY.md). The answer carries `secret` when "
                     "it is new (the first PUT); later PUTs keep it.")
    async def set_default(self, request: Request[Any, Any, Any], state: State,
                          data: DefaultBody) -> NotifyDefaultResponse:
        services = services_from(state)
        me = caller(request)
        current = await services.store.notify_default(me)
        if current is None or data.url != current.notify_url:
            refusal = guard.literal_refusal(data.url, _allow(services))
            if refusal:
                raise InvalidInput(f"url {refusal}", field="url")
        wanted = data.events if data.events is not None else (
            events.decode(current.notify_events) if current is not None else DEFAULT_EVENTS)
        secret = signing.new_secret() if current is None else None
        row = await services.store.set_notify_default(me, data.url, events.encode(wanted),
                                                      secret, services.clock())
        return _view(row, secret=secret is not None)

    @delete("/", summary="Remove your default notification", status_code=204,
            operation_id="removeNotifyDefault", operation_class=ApiOperation,
            responses=WITH_404,
            description="Deliveries of it still pending fail (\"the default notification "
                        "was removed\"); setting one again makes a new secret.")
    async def remove_default(self, request: Request[Any, Any, Any], state: State) -> None:
        if not await services_from(state).store.remove_notify_default(caller(request)):
            raise NotFound(NONE)

    @post("/rotate", summary="Make a new secret for your default notification",
          status_code=200, operation_id="rotateNotifyDefault", operation_class=ApiOperation,
          responses=WITH_409,
          description="The new `secret` is in the answer only; deliveries are signed with "
                      "it from now on, retries included. 409 when you have no default.")
    async def rotate(self, request: Request[Any, Any, Any], state: State
                     ) -> NotifyDefaultResponse:
        services = services_from(state)
        me = caller(request)
        current = await services.store.notify_default(me)
        if current is None:
            raise Conflict(NONE)
        row = await services.store.set_notify_default(
            me, current.notify_url or "", current.notify_events or "", signing.new_secret(),
            services.clock())
        return _view(row, secret=True)

    @post("/test", summary="Send a test delivery to your default notification",
          status_code=200, operation_id="testNotifyDefault", operation_class=ApiOperation,
          responses=WITH_409,
          description="One signed POST (event `test`) now, with the same checks, timeout "
                      "and signature as every delivery, not retried; the answer says what "
                      "happened. 409 when you have no default.")
    async def send_test(self, request: Request[Any, Any, Any], state: State
                        ) -> NotifyTestResponse:
        services = services_from(state)
        me = caller(request)
        current = await services.store.notify_default(me)
        if current is None or not current.notify_url or not current.notify_secret:
            raise Conflict(NONE)
        url = current.notify_url
        sender = Sender(_allow(services))
        try:
            outcome = await sender.send(url, test_body(me, url, services.clock()),
                                        current.notify_secret, 0, "test")
        finally:
            await sender.close()
        if outcome.delivered:
            return NotifyTestResponse(delivered=True, url=url,
                                      detail=f"delivered: {url} answered 2xx")
        return NotifyTestResponse(delivered=False, url=url,
                                  detail=f"not delivered: {outcome.error}")


class NotifyDefaultPage(Controller):
    """``/admin/schedule/notify``: the form; it talks to the API above from the browser."""

    path = "/notify"
    include_in_schema = False

    @get("/")
    async def page(self, request: Request[Any, Any, Any], state: State) -> Template:
        services = services_from(state)
        row = await services.store.notify_default(caller(request))
        return Template("schedule/notify.html", context={
            "default": _view(row).model_dump(mode="json") if row is not None else None,
            "all_events": events.EVENTS, "default_events": DEFAULT_EVENTS,
            "allow": services.settings.TIMER_NOTIFY_ALLOW})
