"""kodosumi's flows: which are registered, their input forms, their OpenAPI.

Two ways in: the panel process reads the register actor it shares with kodosumi's own
panel (:class:`RegisteredFlows`); the timer asks the panel over HTTP as a user
(:class:`PanelFlows`).
"""

from typing import TYPE_CHECKING, Any

import httpx

from kodosumi_timer.bridge.tokens import flow_path, mint_token
from kodosumi_timer.errors import FlowUnavailable, InvalidInput
from kodosumi_timer.schedules import FlowInfo

if TYPE_CHECKING:
    from litestar.datastructures import State

# reading a form is a quick GET; a schedule is not saved against an agent that hangs
FORM_TIMEOUT = 10.0
HEADER = "KODOSUMI_API_KEY"


def _unreadable(flow_url: str) -> str:
    return f"the form of flow {flow_url} could not be read, so its inputs cannot " \
           "be checked; try again when the agent is running"


def _elements(response: httpx.Response, flow_url: str) -> list[dict[str, Any]]:
    """The form's ``elements`` from the agent's answer, or FlowUnavailable."""
    unreadable = _unreadable(flow_url)
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


class RegisteredFlows:
    """Flows from kodosumi's register actor (what ``GET /flow`` lists)."""

    def __init__(self, state: "State"):
        self.state = state

    def _all(self) -> list[Any]:
        import kodosumi.service.endpoint as endpoint

        return list(endpoint.find(self.state))

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
        try:
            async with httpx.AsyncClient(timeout=FORM_TIMEOUT) as client:
                response = await client.get(ep.base_url, headers=headers)
        except httpx.HTTPError as exc:
            raise FlowUnavailable(f"{_unreadable(flow_url)} ({type(exc).__name__})",
                                  field="flow_url") from exc
        return _elements(response, flow_url)

    async def list(self) -> list[FlowInfo]:
        return [FlowInfo(url=ep.url, summary=ep.summary) for ep in self._all()]


class Unreadable(Exception):
    """A flow app's OpenAPI could not be read (the message says how it failed)."""


class PanelFlows:
    """The panel's flows as a user sees them over HTTP (the timer has no register
    actor): ``GET /flow``, each flow app's openapi.json, and a flow's input form
    through the panel's proxy, all with a token minted for ``user``."""

    def __init__(self, panel_url: str, secret: str, user: str, *, token_ttl: int = 300,
                 timeout: float = 10.0, client: httpx.AsyncClient | None = None):
        self.secret, self.user, self.token_ttl = secret, user, token_ttl
        self.client = client or httpx.AsyncClient(base_url=panel_url.rstrip("/"),
                                                  timeout=timeout)

    def _headers(self) -> dict[str, str]:
        return {HEADER: mint_token(self.user, self.token_ttl, self.secret),
                "Accept": "application/json"}

    async def flow_list(self) -> list[dict[str, Any]]:
        """Every item of the panel's flow list (its ``url``, ``source``, ``summary``...);
        raises when the panel cannot be asked."""
        headers = self._headers()
        items: list[dict[str, Any]] = []
        offset: str | None = None
        for _ in range(1000):  # a cursor that never ends is the panel's bug, not a hang
            params: dict[str, Any] = {"pp": 100}
            if offset:
                params["offset"] = offset
            response = await self.client.get("/flow", params=params, headers=headers)
            response.raise_for_status()
            body = response.json()
            items.extend(body.get("items") or [])
            offset = body.get("offset")
            if not offset:
                break
        return items

    async def openapi(self, source: str) -> Any:
        """A flow app's own OpenAPI (what the panel registered, its ``source``), read
        only; :class:`Unreadable` when it does not answer."""
        try:
            response = await self.client.get(source)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unreadable(exc.__class__.__name__) from exc

    async def form(self, flow_url: str) -> list[dict[str, Any]]:
        """The flow's input form through the panel's proxy, as ``user`` gets it (the
        form a system schedule runs with is the timer user's); FlowUnavailable when it
        cannot be read."""
        try:
            response = await self.client.get(flow_path(flow_url), headers=self._headers())
        except httpx.HTTPError as exc:
            raise FlowUnavailable(f"{_unreadable(flow_url)} ({type(exc).__name__})",
                                  field="flow_url") from exc
        return _elements(response, flow_url)

    async def close(self) -> None:
        await self.client.aclose()


def rendered(element: dict[str, Any]) -> dict[str, Any]:
    """A form element with its Markdown rendered by kodosumi's own renderer (as
    kodosumi's form shows it)."""
    if element.get("type") != "markdown":
        return element
    from kodosumi.service.inputs.forms import Markdown

    return {**element, "html": Markdown(str(element.get("text") or "")).render()}
