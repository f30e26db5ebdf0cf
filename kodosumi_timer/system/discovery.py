"""Flow-declared schedules: ``openapi_extra={"x-kodosumi-schedule": {...}}`` on
kodosumi's ``ServeAPI.enter`` lands in the flow app's OpenAPI operation, found through
the panel's flow list (asked through the bridge)."""

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

import httpx
from pydantic import ValidationError

from kodosumi_timer.bridge import PanelFlows, Unreadable, flow_path
from kodosumi_timer.system.declarations import EXTENSION, SystemEntry, _problem


@dataclass
class Discovered:
    """What the flow registry said: declared entries, flow names, and the flows whose
    OpenAPI could not be read this time (their previous declarations stay)."""

    entries: list[SystemEntry]
    names: dict[str, str]
    unreadable: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    flows: set[str] = field(default_factory=set)  # every flow URL the panel listed


class Discovery(Protocol):
    async def discover(self) -> Discovered: ...

    async def close(self) -> None: ...


def _flow_root(source: str) -> str:
    """The panel path prefix of a flow app, computed from its openapi.json URL the way
    kodosumi's register does (``/-/host/port/prefix/-/``)."""
    base = source.rstrip("/").rsplit("/", 1)[0]
    parts = urlparse(base)
    return f"/-/{parts.hostname}/{parts.port}{parts.path}/-/"


def declaration_of(openapi: dict[str, Any], flow_url: str, source: str) -> Any:
    """The ``x-kodosumi-schedule`` value of the flow's operation(s), or None."""
    root = _flow_root(source)
    url = flow_path(flow_url)
    ext = url[len(root):] if url.startswith(root) else url.rsplit("/-/", 1)[-1]
    ext = ext.strip("/")
    for path, operations in (openapi.get("paths") or {}).items():
        if path.strip("/") != ext or not isinstance(operations, dict):
            continue
        for method in ("get", "post", *operations):
            operation = operations.get(method)
            if isinstance(operation, dict) and EXTENSION in operation:
                return operation[EXTENSION]
    return None


class PanelDiscovery:
    """Flow-declared schedules, found through the panel's flow list (``GET /flow`` as
    the timer user gives each flow's ``url`` and ``source``, its openapi.json)."""

    def __init__(self, panel_url: str, secret: str, user: str, *, token_ttl: int = 300,
                 timeout: float = 10.0, client: httpx.AsyncClient | None = None):
        self.panel = PanelFlows(panel_url, secret, user, token_ttl=token_ttl,
                                timeout=timeout, client=client)

    async def discover(self) -> Discovered:
        flows = await self.panel.flow_list()  # the panel unreachable: raise, keep what we have
        found = Discovered(entries=[], names={})
        specs: dict[str, dict[str, Any] | None] = {}
        for item in flows:
            url, source = item.get("url"), item.get("source")
            if not url or not source:
                continue
            url = flow_path(url)
            found.flows.add(url)
            if item.get("summary"):
                found.names[url] = str(item["summary"])
            if source not in specs:
                try:
                    specs[source] = await self.panel.openapi(source)
                except Unreadable as exc:
                    found.warnings.append(f"cannot read {source}: {exc}")
                    specs[source] = None
            spec = specs[source]
            if spec is None:
                found.unreadable.add(url)
                continue
            declared = declaration_of(spec, url, source)
            if declared is None:
                continue
            if not isinstance(declared, dict):
                found.warnings.append(f"flow {url}: {EXTENSION} must be a mapping with "
                                      "at least 'cron'; ignored")
                continue
            try:
                entry = SystemEntry.model_validate({**declared, "flow": url})
            except ValidationError as exc:
                problems = "; ".join(str(_problem(None, None, e)) for e in exc.errors())
                found.warnings.append(f"flow {url}: {EXTENSION} ignored: {problems}")
                continue
            found.entries.append(entry.declared_by("flow", found.names.get(url)))
        return found

    async def close(self) -> None:
        await self.panel.close()
