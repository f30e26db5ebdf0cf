"""Panel tokens and flow paths: what every request to kodosumi's panel is made of."""

import time

import httpx
from jose import jwt

TOKEN_ALGORITHM = "HS256"  # kodosumi.const.ALGORITHM


def mint_token(subject: str, ttl_seconds: int, secret: str) -> str:
    """A kodosumi panel token for ``subject`` (a role id, or the timer user), short-lived.

    Signed like kodosumi's own (``kodosumi.service.jwt``) with ``KODO_SECRET_KEY``, which
    the timer must share with the panel. Never stored, never logged.
    """
    issued = time.time()
    claims = {"exp": issued + ttl_seconds, "iat": issued, "sub": subject}
    return str(jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM))


def flow_path(flow_url: str) -> str:
    """The panel path of a flow: ``/-/host/port/app/-/`` (a full URL is cut to its path)."""
    if "://" in flow_url:
        flow_url = httpx.URL(flow_url).path
    return "/" + flow_url.strip("/") + "/"
