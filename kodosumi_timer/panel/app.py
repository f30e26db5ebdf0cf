"""``create_app``: kodosumi's panel with the schedule API and pages composed in.

kodosumi's own app is built unchanged; we register our routers, add our templates
and replace one hook: kodosumi's shutdown ``ray.kill``s the shared detached
``register`` actor, which would break every other panel on the cluster.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware

from kodosumi_timer.bridge import RegisteredFlows, RoleTable
from kodosumi_timer.clock import utcnow
from kodosumi_timer.config import TimerSettings, get_settings
from kodosumi_timer.lock import wake_timer
from kodosumi_timer.panel.api import (
    EXCEPTION_HANDLERS,
    ScheduleController,
    install_route_errors,
)
from kodosumi_timer.panel.hooks import HookController, call_hook
from kodosumi_timer.panel.metrics import metrics
from kodosumi_timer.panel.nav import install_templates
from kodosumi_timer.panel.notify_default import NotifyDefaultController, NotifyDefaultPage
from kodosumi_timer.panel.pages import SchedulePages
from kodosumi_timer.panel.services import STATE_KEY, PanelServices
from kodosumi_timer.panel.timer_page import timer_page
from kodosumi_timer.preflight import check_secret
from kodosumi_timer.schedules import Flows
from kodosumi_timer.store import open_store


def schedule_router() -> Router:
    return Router(path="/schedule", route_handlers=[ScheduleController, HookController,
                                                    call_hook, NotifyDefaultController],
                  exception_handlers=EXCEPTION_HANDLERS)


def pages_router() -> Router:
    return Router(path="/admin/schedule",
                  route_handlers=[SchedulePages, NotifyDefaultPage, timer_page])


def _services_hook(settings: TimerSettings, flows: Callable[[State], Flows],
                   wake: Callable[[], None], clock: Callable[[], datetime]) -> Any:
    async def open_services(app: Litestar) -> None:
        store = await open_store(settings.TIMER_DATABASE)
        roles = RoleTable(app.state["settings"].ADMIN_DATABASE)
        app.state[STATE_KEY] = PanelServices(
            store=store, flows=flows(app.state), wake=wake, clock=clock, settings=settings,
            roles=roles)

    return open_services


async def _close_services(app: Litestar) -> None:
    services = app.state.get(STATE_KEY)
    if services is not None:
        await services.store.close()
        await services.roles.close()


async def _leave_cluster(app: Litestar) -> None:
    # kodosumi's hook would ray.kill the shared register actor; we only disconnect
    from kodosumi import helper

    app.state["register"] = None
    helper.ray_shutdown()


def create_app(**kodosumi_settings: Any) -> Litestar:
    """The composed panel (uvicorn factory). Keyword arguments are kodosumi settings."""
    from kodosumi.service import app as kodosumi_app

    settings = get_settings()
    # the secret kodosumi signs and checks every token with (read when kodosumi.const
    # is imported); with kodosumi's default anyone could sign in as anyone
    from kodosumi.const import JWT_SECRET

    check_secret(JWT_SECRET, settings.TIMER_ALLOW_DEFAULT_SECRET, "the panel")
    app: Litestar = kodosumi_app.create_app(**kodosumi_settings)
    app.on_startup.append(_services_hook(settings, RegisteredFlows, wake_timer, utcnow))
    app.on_shutdown[:] = [hook for hook in app.on_shutdown if hook is not kodosumi_app.shutdown]
    app.on_shutdown.extend([_close_services, _leave_cluster])
    app.register(schedule_router())
    install_route_errors(app)
    app.register(pages_router())
    app.register(metrics)
    assert app.template_engine is not None
    install_templates(app.template_engine.engine)
    return app


def create_api_app(services: PanelServices) -> Litestar:
    """Only the schedule API behind kodosumi's JWT middleware, for unit tests (no Ray)."""
    from kodosumi.service.jwt import JWTAuthenticationMiddleware

    app = Litestar(
        route_handlers=[schedule_router(), metrics],
        middleware=[DefineMiddleware(JWTAuthenticationMiddleware, exclude_from_auth_key="no_auth")],
        state=State({STATE_KEY: services}),
    )
    install_route_errors(app)
    return app
