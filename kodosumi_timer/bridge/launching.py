"""Launching as the owner through kodosumi's panel, reconciling a launch in doubt,
and following an execution's status and error.

Launches always go through the panel (``/-/<flow>``) with a token minted for the
owner, never to Ray Serve directly: Serve trusts an ``x-kodosumi_user`` header and
would run as anyone. What kodosumi keeps about an execution, and so how far a launch
can be found again, is in ``executions.py``.
"""

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import aiohttp

from kodosumi_timer.bridge.tokens import flow_path, mint_token
from kodosumi_timer.clock import utcnow
from kodosumi_timer.executions import (
    FINAL,
    Candidate,
    EventStream,
    InputsVerdict,
    Judgement,
    error_line,
    fid_below,
    fid_time,
    inputs_verdict,
    judge,
    same_app,
)

LaunchKind = Literal["launched", "rejected", "refused", "not_sent", "in_doubt"]


@dataclass(frozen=True)
class LaunchOutcome:
    """What became of one launch request.

    ``launched``: kodosumi answered with a fid. ``rejected``: it answered input errors
    (``errors``; not retried). ``refused``: it answered and certainly started nothing
    (``retryable``: may it be sent again). ``not_sent``: the request provably never
    reached it (``retryable``). ``in_doubt``: the request was written and may have
    started an execution: never sent again before ``find_launch`` shows none."""

    kind: LaunchKind
    fid: str | None = None
    reason: str | None = None  # short, human, never a stack trace
    errors: dict[str, Any] = field(default_factory=dict)
    retryable: bool = False


@dataclass(frozen=True)
class Reconciled:
    """``found`` (its fid; ``reason`` says how it was matched), ``absent`` (kodosumi
    answered and shows none, after the settle time) or ``cannot_tell`` (why)."""

    kind: Literal["found", "absent", "cannot_tell"]
    fid: str | None = None
    reason: str | None = None


class Unanswered(Exception):
    """kodosumi could not be asked (no answer, an error status, an unreadable answer);
    the message says which."""


class NoAnswerInTime(Unanswered):
    """The request was taken but not answered in time. kodosumi 1.1's status route
    waits without end for an execution that has no status yet, so for one it lost
    (its runner died before writing one) this is all it ever says."""


class Launcher(Protocol):
    async def launch(self, flow_url: str, owner: str, inputs: dict[str, Any], *,
                     marker: str) -> LaunchOutcome: ...

    async def find_launch(self, flow_url: str, owner: str, inputs: dict[str, Any], *,
                          marker: str, sent_at: datetime,
                          exclude: Collection[str] = ()) -> Reconciled: ...

    async def status(self, fid: str, owner: str) -> str | None: ...

    async def error_reason(self, fid: str, owner: str) -> str | None: ...

    async def end(self, fid: str, owner: str) -> None: ...

    async def close(self) -> None: ...


# sent with every launch; kodosumi forwards it to the flow but stores nothing of it
MARKER_HEADER = "X-Kodosumi-Timer-Run"


MAY_HAVE_STARTED = "; the execution may have started"
# kodosumi's proxy answers a launch made by a plain route with a redirect to the
# execution's events
_LAUNCH_REDIRECT = re.compile(r"/(?:exec/event|exec/state|admin/exec)/([0-9A-Za-z]+)$")


def _short(status_code: int, text: str) -> str:
    # kodosumi answers a crashed flow app with a stack trace: keep the last line that
    # says something (a trace ends in "ValueError: ...", or in ^ markers under it)
    line = error_line(text)
    return f"panel answered HTTP {status_code}" + (f": {line[:200]}" if line else "")


def outcome_of(status_code: int, text: str, flow_url: str,
               location: str | None = None) -> LaunchOutcome:
    """What the panel's answer to a launch means (pure: the HTTP client is not involved)."""
    if status_code in (301, 302, 303, 307, 308):
        found = _LAUNCH_REDIRECT.search(location or "")
        if found:
            return LaunchOutcome("launched", fid=found.group(1))
        return LaunchOutcome("in_doubt", reason=_short(status_code, "") + MAY_HAVE_STARTED)
    if status_code == 404:  # the proxy's own "no such flow", before forwarding anything
        return LaunchOutcome("refused", retryable=True, reason=(
            f"the panel has no flow {flow_url} (not registered, or its Serve application "
            "is gone)"))
    if status_code in (401, 403):
        return LaunchOutcome("refused", reason="the panel refused the owner's token")
    if status_code in (408, 425, 429):  # "not now", said before the request was taken
        return LaunchOutcome("refused", retryable=True, reason=_short(status_code, text))
    if 400 < status_code < 500:
        return LaunchOutcome("refused", reason=_short(status_code, text))
    if status_code != 200:
        # 400 comes from kodosumi's form handler after the flow's entry ran (no Launch
        # returned, a failed upload after one); a 5xx from anywhere on the way may
        # follow an accepted launch
        return LaunchOutcome("in_doubt", reason=_short(status_code, text) + MAY_HAVE_STARTED)
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # a 200 is the panel's "launched": without its execution id nobody can tell
        return LaunchOutcome("in_doubt", reason="panel answered 200 without JSON" +
                             MAY_HAVE_STARTED)
    if body.get("errors"):
        errors = body["errors"]
        messages = [f"{name}: {'; '.join(map(str, msgs))}" if name != "_global_"
                    else "; ".join(map(str, msgs))
                    for name, msgs in errors.items() if msgs] \
            if isinstance(errors, dict) else [str(errors)]
        return LaunchOutcome("rejected", reason="; ".join(messages)[:300] or "inputs rejected",
                             errors=errors if isinstance(errors, dict) else {})
    fid = body.get("result") or body.get("fid")
    if not isinstance(fid, str) or not fid:
        return LaunchOutcome("in_doubt", reason="panel answered 200 without an execution "
                             "id" + MAY_HAVE_STARTED)
    return LaunchOutcome("launched", fid=fid)




class PanelLauncher:
    """Launch, reconcile and follow executions through kodosumi's panel, as the owner.

    One aiohttp session (at most ``connections`` connections): under many concurrent
    launches it is several times faster than httpx on a small machine (bench/RESULTS.md).
    An owner's token is reused for a third of its lifetime: signing it costs more than
    the request.

    ``find_launch`` looks for executions started from ``skew`` seconds before the launch
    to ``window`` seconds after it, and says ``absent`` only ``settle`` seconds after
    the launch was sent: kodosumi's panel waits up to 60 s for the flow's Serve app, so
    a launch that timed out here can still start an execution that late, and its
    spooler shows an execution a second or more after it started. While kodosumi cannot
    be asked at all (down, restarting), it is asked again until ``patience`` seconds
    after the launch: a restart of a few seconds must not leave the run ``unknown``."""

    HEADER = "KODOSUMI_API_KEY"
    PAGE = 50  # timeline items per query
    MAX_PAGES = 20

    def __init__(self, panel_url: str, secret: str, token_ttl: int = 900,
                 timeout: float = 30.0, connections: int = 128, *,
                 connect_timeout: float = 10.0, settle: float = 65.0, window: float = 65.0,
                 skew: float = 2.0, poll: float = 1.0, patience: float = 300.0,
                 stream_timeout: float = 10.0, clock: Callable[[], datetime] = utcnow,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep):
        self.base = panel_url.rstrip("/")
        self.secret = secret
        self.token_ttl = token_ttl
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self.connections = connections
        self.settle, self.window, self.skew, self.poll = settle, window, skew, poll
        self.patience = max(patience, settle)
        self.stream_timeout = stream_timeout
        self.clock, self.sleep = clock, sleep
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, tuple[float, str]] = {}

    def session(self) -> aiohttp.ClientSession:
        """The shared session, made on first use inside the running loop."""
        if self._session is None:
            # idle connections are dropped before the panel's (uvicorn: 5 s) would close
            # them under a request. The connect phase (a free connection included) has
            # its own, shorter limit: what times out there was never sent, and aiohttp
            # says so (ConnectionTimeoutError) only when that limit, not the total, fires
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=2),
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=self.connect_timeout))
        return self._session

    def _headers(self, owner: str) -> dict[str, str]:
        # the wall clock, as the token's own expiry: a suspended machine wakes with
        # fresh tokens
        now = time.time()
        cached = self._tokens.get(owner)
        if cached is None or not now < cached[0]:
            cached = (now + self.token_ttl / 3, mint_token(owner, self.token_ttl, self.secret))
            self._tokens[owner] = cached
        return {self.HEADER: cached[1], "Accept": "application/json"}

    async def launch(self, flow_url: str, owner: str, inputs: dict[str, Any], *,
                     marker: str) -> LaunchOutcome:
        try:
            body = json.dumps(inputs)
        except (TypeError, ValueError) as exc:
            return LaunchOutcome("not_sent", reason=f"the inputs are not JSON: {exc}"[:300])
        headers = {**self._headers(owner), "Content-Type": "application/json",
                   MARKER_HEADER: marker}
        status: int | None = None
        try:
            async with self.session().post(self.base + flow_path(flow_url), data=body,
                                           headers=headers, allow_redirects=False) as response:
                status = response.status
                location = response.headers.get("Location")
                text = (await response.read()).decode(errors="replace")
            return outcome_of(status, text, flow_url, location)
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            # never connected (refused, name resolution, TLS, no connection in time):
            # nothing was written, so it is safe to send again
            return LaunchOutcome("not_sent", retryable=True,
                                 reason=f"panel unreachable: {exc.__class__.__name__}")
        except aiohttp.InvalidURL:
            return LaunchOutcome("not_sent", reason=f"not a valid flow URL: {flow_url}"[:300])
        except (TimeoutError, aiohttp.ClientError) as exc:
            return self._broken_off(status, exc, flow_url)

    def _broken_off(self, status: int | None, exc: BaseException, flow_url: str) -> LaunchOutcome:
        """The request was written, then the exchange broke: kodosumi may have taken it."""
        name = exc.__class__.__name__
        if status is not None:
            judged = outcome_of(status, "", flow_url)
            if judged.kind == "refused":  # its status says enough
                return judged
            what = f"the panel answered HTTP {status}, then the answer broke off ({name})"
        elif isinstance(exc, TimeoutError):
            what = f"the panel did not answer within {self.timeout:g} s"
        elif isinstance(exc, aiohttp.ClientResponseError):
            what = f"the panel's answer could not be read ({exc.message})"[:150]
        else:
            what = f"the connection broke after the request was sent ({name})"
        return LaunchOutcome("in_doubt", reason=what + MAY_HAVE_STARTED)

    async def find_launch(self, flow_url: str, owner: str, inputs: dict[str, Any], *,
                          marker: str, sent_at: datetime, exclude: Collection[str] = (),
                          settle: float | None = None) -> Reconciled:
        """Whether kodosumi started an execution for the launch sent at ``sent_at``.

        Asks as the owner: their timeline around ``sent_at``, then each execution's
        flow. ``exclude``: fids already known to belong to other runs (the same
        schedule's other slots look alike). kodosumi keeps no ``marker`` (see
        ``executions.py``): a match is by owner, flow, inputs and start time, and its
        ``reason`` says so. ``absent`` only once kodosumi answered and ``settle``
        seconds have passed since ``sent_at``."""
        settled = sent_at + timedelta(seconds=self.settle if settle is None else settle)
        given_up = max(settled, sent_at + timedelta(seconds=self.patience))
        while True:
            deadline = settled
            try:
                judgement = await self._look(flow_url, owner, inputs, sent_at, set(exclude))
            except Unanswered as exc:
                judgement = Judgement("unclear", reason=f"kodosumi did not answer: {exc}")
                deadline = given_up
            if judgement.kind == "found":
                return Reconciled("found", fid=judgement.fid, reason=judgement.reason)
            now = self.clock()
            if judgement.final or now >= deadline:
                if judgement.kind == "none":
                    return Reconciled("absent", reason=(
                        f"kodosumi shows no execution of this flow by the owner started "
                        f"within {self.window:g} s of the launch"))
                return Reconciled("cannot_tell", reason=judgement.reason)
            await self.sleep(max(0.0, min(self.poll, (deadline - now).total_seconds())))

    async def _look(self, flow_url: str, owner: str, inputs: dict[str, Any],
                    sent_at: datetime, exclude: set[str]) -> Judgement:
        start = sent_at.timestamp()
        items = [(item, inputs_verdict(inputs, item.get("inputs")))
                 for item in await self._timeline(owner, int(start - self.skew),
                                                  start + self.window)
                 if item["fid"] not in exclude]
        # executions with other inputs matter only when none has these: their flows
        # are read (one request each) only then
        alike = await self._candidates([it for it in items if it[1] != "differ"], owner,
                                       flow_url)
        judgement = judge(alike, sent_at)
        if judgement.kind == "none" and len(alike) < len(items):
            judgement = judge(alike + await self._candidates(
                [it for it in items if it[1] == "differ"], owner, flow_url), sent_at)
        return judgement

    async def _candidates(self, items: list[tuple[dict[str, Any], InputsVerdict]], owner: str,
                          flow_url: str) -> list[Candidate]:
        """The timeline does not say which flow an execution ran: its status does."""
        bodies = await asyncio.gather(*(self._status_body_or_none(item["fid"], owner)
                                        for item, _ in items))
        return [Candidate(item["fid"], fid_time(item["fid"]) or 0,
                          None if body is None else same_app(body.get("app_url"), flow_url),
                          verdict)
                for (item, verdict), body in zip(items, bodies, strict=True)]

    async def _timeline(self, owner: str, low: int, high: float) -> list[dict[str, Any]]:
        """The owner's executions started between ``low`` and ``high`` (epoch s)."""
        found: list[dict[str, Any]] = []
        offset = fid_below(high)
        for _ in range(self.MAX_PAGES):
            page = await self._get_json("/timeline/list", owner,
                                        {"pp": str(self.PAGE), "offset": offset})
            items = page.get("items") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise Unanswered("its timeline answered without items")
            for item in items:
                fid = item.get("fid") if isinstance(item, dict) else None
                started = fid_time(fid) if isinstance(fid, str) else None
                if started is None:
                    continue
                if started < low:  # newest first: the rest are older still
                    return found
                if started <= high:
                    found.append(item)
            if len(items) < self.PAGE:
                return found
            offset = items[-1]["fid"]
        raise Unanswered(f"more than {self.PAGE * self.MAX_PAGES} executions of the owner "
                          "then")

    async def _get_json(self, path: str, owner: str, params: dict[str, str]) -> Any:
        try:
            async with self.session().get(self.base + path, params=params,
                                          headers=self._headers(owner)) as response:
                if response.status != 200:
                    raise Unanswered(f"{path} answered HTTP {response.status}")
                return await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise Unanswered(f"{path}: {exc.__class__.__name__}") from exc

    async def _status_body(self, fid: str, owner: str) -> dict[str, Any] | None:
        """kodosumi's status answer for an execution; None when it does not know it
        (404). Raises ``Unanswered`` as ``status`` says."""
        try:
            async with self.session().get(f"{self.base}/outputs/status/{fid}",
                                          headers=self._headers(owner)) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise Unanswered(f"HTTP {response.status}")
                body = await response.json(content_type=None)
        except aiohttp.ConnectionTimeoutError as exc:  # never reached it
            raise Unanswered(exc.__class__.__name__) from exc
        except TimeoutError as exc:
            raise NoAnswerInTime(f"no answer within {self.timeout:g} s") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise Unanswered(exc.__class__.__name__) from exc
        if not isinstance(body, dict):
            raise Unanswered("an answer that is not an object")
        return body

    async def _status_body_or_none(self, fid: str, owner: str) -> dict[str, Any] | None:
        """The status answer, None for any failure (a candidate whose flow is unread)."""
        try:
            return await self._status_body(fid, owner)
        except Unanswered:
            return None

    async def status(self, fid: str, owner: str) -> str | None:
        """The execution's kodosumi status; None when kodosumi answers that it does not
        know it (404). Raises ``Unanswered`` when it cannot be asked (no answer, 5xx, an
        answer without a status): that says nothing about the execution."""
        body = await self._status_body(fid, owner)
        if body is None:
            return None
        status = body.get("status")
        if not isinstance(status, str):
            raise Unanswered("an answer without a status")
        return status

    async def end(self, fid: str, owner: str) -> None:
        """End an execution as its owner: kodosumi 1.1 kills a running one and archives
        it (``DELETE /outputs/{fid}``); one it does not know (404) is ended already.
        Raises ``Unanswered`` when kodosumi could not be asked or did not do it."""
        try:
            async with self.session().delete(f"{self.base}/outputs/{fid}",
                                             headers=self._headers(owner)) as response:
                if response.status != 404 and not 200 <= response.status < 300:
                    raise Unanswered(f"HTTP {response.status}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unanswered(exc.__class__.__name__) from exc

    async def error_reason(self, fid: str, owner: str) -> str | None:
        """The agent's final error line from the execution's event stream (the last
        line of its traceback), None if it cannot be read within ``stream_timeout``."""
        reader, error = EventStream(), None
        try:
            async with asyncio.timeout(self.stream_timeout):
                async with self.session().get(
                        f"{self.base}/outputs/main/{fid}", headers=self._headers(owner),
                        params={"raw": "true", "extended": "false"}) as response:
                    if response.status != 200:
                        return None
                    async for raw in response.content:
                        event = reader.feed(raw.decode(errors="replace"))
                        if event is None:
                            continue
                        kind, message = event
                        if kind == "error":
                            error = message
                        elif kind == "eof" or kind == "status" and message in FINAL:
                            break  # kodosumi keeps the stream open 10 s longer
        except (TimeoutError, aiohttp.ClientError, ValueError):
            pass
        return error_line(error) if error else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
