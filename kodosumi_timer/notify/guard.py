"""Which addresses a delivery may go to: none that is private, loopback or link-local
(the timer must not be made to probe its own network) unless the operator allows it
with ``KODO_TIMER_NOTIFY_ALLOW`` (comma-separated URL prefixes)."""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

Resolver = Callable[[str, int], Awaitable[list[str]]]


class Refused(Exception):
    """The URL may not be called; the message says why."""


def allow_list(setting: str | None) -> list[str]:
    return [p.strip() for p in (setting or "").split(",") if p.strip()]


def allowed_by_prefix(url: str, allow: Sequence[str]) -> bool:
    """Whether ``url`` starts with one of the prefixes, at a boundary: the prefix
    ``http://127.0.0.1`` allows ``http://127.0.0.1:8080/hook``, never
    ``http://127.0.0.1.example.com/``."""
    for prefix in allow:
        if url.startswith(prefix):
            rest = url[len(prefix):]
            if prefix.endswith("/") or not rest or rest[0] in "/:?#":
                return True
    return False


def check_url(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL, or Refused saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused("must be an http:// or https:// URL")
    if not parts.hostname:
        raise Refused("has no host")
    if parts.username or parts.password:
        raise Refused("must not carry a user or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise Refused(f"has a bad port ({exc})") from exc
    return parts.hostname, port


def forbidden(address: str) -> str | None:
    """Why this IP address may not be called, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind in ("unspecified", "loopback", "link_local", "private", "multicast", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    return None


def literal_refusal(url: str, allow: Sequence[str]) -> str | None:
    """What can be told without resolving (for the API): a bad URL, or a literal address
    or ``localhost`` that is not allowed."""
    try:
        host, _ = check_url(url)
    except Refused as exc:
        return str(exc)
    if allowed_by_prefix(url, allow):
        return None
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return f"{host} is a loopback address (allow it with KODO_TIMER_NOTIFY_ALLOW)"
    try:
        why = forbidden(host)
    except ValueError:
        return None  # a name: resolved at delivery
    return f"{why} (allow it with KODO_TIMER_NOTIFY_ALLOW)" if why else None


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def check(url: str, allow: Sequence[str], resolver: Resolver = resolve) -> None:
    """Refused unless every address the URL's host resolves to may be called (or the URL
    is allowed by prefix)."""
    host, port = check_url(url)
    if allowed_by_prefix(url, allow):
        return
    try:
        addresses = await resolver(host, port)
    except OSError as exc:
        raise Refused(f"{host} cannot be resolved ({exc})") from exc
    if not addresses:
        raise Refused(f"{host} resolves to no address")
    for address in addresses:
        why = forbidden(address)
        if why:
            raise Refused(f"{host}: {why}; not allowed by KODO_TIMER_NOTIFY_ALLOW")
