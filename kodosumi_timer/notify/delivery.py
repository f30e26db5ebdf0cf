"""One delivery attempt: a signed POST, a few seconds at most, no redirects followed."""

from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from kodosumi_timer.notify import guard, signing

TIMEOUT = 5.0
# answers worth another try; any other 4xx will not change by asking again
RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool
    error: str | None = None


class Sender:
    """Sends deliveries over one HTTP client; ``resolver`` is the address guard's."""

    def __init__(self, allow: Sequence[str], timeout: float = TIMEOUT,
                 resolver: guard.Resolver = guard.resolve,
                 client: httpx.AsyncClient | None = None):
        self.allow = list(allow)
        self.resolver = resolver
        self.client = client or httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False,
            headers={"user-agent": "kodosumi-timer-notify"})

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, url: str, body: str, secret: str, delivery_id: int, event: str
                   ) -> Outcome:
        raw = body.encode()
        try:
            await guard.check(url, self.allow, self.resolver)
        except guard.Refused as exc:
            return Outcome(False, False, f"refused: {exc}")
        headers = {"content-type": "application/json",
                   signing.HEADER: signing.signature(secret, raw),
                   "X-Kodosumi-Event": event, "X-Kodosumi-Delivery": str(delivery_id)}
        try:
            response = await self.client.post(url, content=raw, headers=headers)
        except httpx.TimeoutException:
            return Outcome(False, True, "no answer in time")
        except httpx.HTTPError as exc:
            return Outcome(False, True, f"{type(exc).__name__}: {exc}"[:500])
        code = response.status_code
        if 200 <= code < 300:
            return Outcome(True, False)
        if 300 <= code < 400:
            where = response.headers.get("location", "?")
            return Outcome(False, False, f"HTTP {code} redirect to {where[:200]} "
                                         "(redirects are not followed)")
        return Outcome(False, code >= 500 or code in RETRY_STATUSES, f"HTTP {code}")
