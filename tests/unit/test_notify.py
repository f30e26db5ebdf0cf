"""Notifications end to end against a real local HTTP receiver: signing, retries with
backoff on an injected clock, refusals, redirects, timeouts, and a restart."""

import asyncio
import json
from datetime import timedelta

import pytest
from aiohttp import web

from kodosumi_timer.notify import guard, retry, signing
from kodosumi_timer.notify.delivery import Sender
from kodosumi_timer.notify.events import encode
from kodosumi_timer.notify.loop import LEASE, Notifier
from kodosumi_timer.store import RunRow, open_store
from tests.unit.factories import T0, Clock, schedule

SECRET = "0123456789abcdef" * 4
LOCAL = ["http://127.0.0.1"]


class Receiver:
    """A real HTTP server on a free port that records what it gets and answers from a
    script: a status code, ``redirect``, or ``hang`` (no answer in time)."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, dict[str, str]]] = []
        self.script: list[object] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.got.append((await request.read(), dict(request.headers)))
        answer = self.script.pop(0) if self.script else 200
        if answer == "redirect":
            raise web.HTTPFound(f"http://127.0.0.1:{self.port}/elsewhere")
        if answer == "hang":
            await self.release.wait()
        return web.Response(status=int(answer) if isinstance(answer, int) else 200)

    async def __aenter__(self) -> "Receiver":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.runner.cleanup()


@pytest.fixture
async def receiver():  # type: ignore[no-untyped-def]
    async with Receiver() as r:
        yield r


async def add_failed_run(store, url, events=("error",), status="error", finished_at=T0):  # type: ignore[no-untyped-def]
    row = await store.add_schedule(schedule(
        notify_url=url, notify_events=encode(events), notify_secret=SECRET,
        title="Nightly report"))
    run = RunRow(schedule_id=row.id, owner=row.owner, slot=T0, attempt=1, trigger="timer",
                 status=status, fid="fid-1", reason="the agent said no",
                 finished_at=finished_at)
    async with store.session.begin() as s:
        s.add(run)
    return row, run


def notifier(store, clock, allow=LOCAL, timeout=5.0):  # type: ignore[no-untyped-def]
    return Notifier(store, Sender(allow, timeout=timeout), "http://panel.example:3370",
                    clock=clock)


async def test_a_failed_run_is_delivered_once_signed_over_the_raw_body(store, receiver):
    row, run = await add_failed_run(store, receiver.url)
    clock = Clock(T0 + timedelta(seconds=1))
    n = notifier(store, clock)
    assert await n.step() is True
    assert await n.step() is False  # nothing new: not sent again
    await n.sender.close()
    assert len(receiver.got) == 1
    raw, headers = receiver.got[0]
    assert headers["Content-Type"] == "application/json"
    assert signing.verify(SECRET, raw, headers[signing.HEADER])
    assert not signing.verify("another secret", raw, headers[signing.HEADER])
    assert headers[signing.HEADER] == "sha256=" + __import__("hmac").new(
        SECRET.encode(), raw, "sha256").hexdigest()
    body = json.loads(raw)
    assert body["event"] == "error" and body["schedule_id"] == row.id
    assert body["title"] == "Nightly report" and body["owner"] == row.owner
    assert body["status"] == "error" and body["reason"] == "the agent said no"
    assert body["fid"] == "fid-1" and body["slot"] == T0.isoformat()
    assert body["links"] == {"schedule": f"http://panel.example:3370/admin/schedule/{row.id}",
                             "execution": "http://panel.example:3370/admin/exec/fid-1"}
    rows, _ = await store.notifications(row.id, [run.id])
    assert rows[0].status == "delivered" and rows[0].attempts == 1 and rows[0].delivered


async def test_5xx_is_retried_with_backoff_then_given_up_after_about_ten_minutes(
        store, receiver):
    row, _ = await add_failed_run(store, receiver.url)
    receiver.script = [503] * 100
    clock = Clock(T0)
    n = notifier(store, clock)
    await n.step()
    delays = []
    while True:
        (note,), _ = await store.notifications(row.id)
        if note.status != "pending":
            break
        delays.append((note.next_at - clock.now).total_seconds())
        clock.now = note.next_at - timedelta(seconds=1)
        assert await n.deliver_due() == 0  # not due before its time
        clock.now = note.next_at
        assert await n.deliver_due() == 1
    await n.sender.close()
    assert delays[:4] == [5, 10, 20, 40] and max(delays) == retry.MAX_DELAY
    assert note.status == "failed" and note.attempts == len(receiver.got) == len(delays) + 1
    assert "gave up after" in note.last_error and "HTTP 503" in note.last_error
    assert clock.now - note.created <= retry.RETRY_FOR


async def test_a_retry_that_succeeds_is_delivered(store, receiver):
    row, _ = await add_failed_run(store, receiver.url)
    receiver.script = [500]
    clock = Clock(T0)
    n = notifier(store, clock)
    await n.step()
    clock.advance(seconds=5)
    await n.step()
    await n.sender.close()
    (note,), _ = await store.notifications(row.id)
    assert note.status == "delivered" and note.attempts == 2 and note.last_error is None
    assert receiver.got[0][0] == receiver.got[1][0]  # the very same bytes, twice


async def test_no_answer_in_time_is_retried(store, receiver):
    row, _ = await add_failed_run(store, receiver.url)
    receiver.script = ["hang"]
    n = notifier(store, Clock(T0), timeout=0.3)
    await n.step()
    await n.sender.close()
    (note,), _ = await store.notifications(row.id)
    assert note.status == "pending" and note.attempts == 1
    assert note.last_error == "no answer in time"


async def test_a_redirect_is_not_followed_and_not_retried(store, receiver):
    row, _ = await add_failed_run(store, receiver.url)
    receiver.script = ["redirect"]
    n = notifier(store, Clock(T0))
    await n.step()
    await n.sender.close()
    assert len(receiver.got) == 1  # /elsewhere was never asked
    (note,), _ = await store.notifications(row.id)
    assert note.status == "failed" and "redirect" in note.last_error


async def test_a_4xx_fails_without_retry(store, receiver):
    row, _ = await add_failed_run(store, receiver.url)
    receiver.script = [404]
    n = notifier(store, Clock(T0))
    await n.step()
    await n.sender.close()
    (note,), _ = await store.notifications(row.id)
    assert note.status == "failed" and note.last_error == "HTTP 404"


async def test_a_loopback_address_is_refused_unless_allowed(store, receiver):
    row, _ = await add_failed_run(store, receiver.url)
    n = notifier(store, Clock(T0), allow=[])
    await n.step()
    await n.sender.close()
    assert receiver.got == []
    (note,), _ = await store.notifications(row.id)
    assert note.status == "failed"
    assert note.last_error.startswith("refused: 127.0.0.1: 127.0.0.1 is a loopback address")


async def test_a_restart_loses_no_delivery_and_sends_none_twice(store_url, receiver):
    first = await open_store(store_url)
    row, _ = await add_failed_run(first, receiver.url)
    clock = Clock(T0 + timedelta(seconds=1))
    dying = notifier(first, clock)
    await dying.collect()  # queued ...
    taken = await first.take_notifications(clock.now, clock.now + LEASE)  # ... and in hand
    assert len(taken) == 1
    await dying.sender.close()
    await first.close()  # the process dies before the POST went out

    second = await open_store(store_url)
    again = notifier(second, clock)
    await again.step()
    assert receiver.got == []  # still held by the dead one's lease
    clock.now += LEASE
    await again.step()
    await again.step()
    await again.sender.close()
    assert len(receiver.got) == 1
    (note,), total = await second.notifications(row.id)
    assert total == 1 and note.status == "delivered"
    await second.close()


async def test_a_run_that_ended_while_no_notifier_ran_is_found_after_the_restart(
        store, receiver):
    clock = Clock(T0 + timedelta(minutes=3))
    first = notifier(store, clock)
    await first.step()  # cursor at T0 + 3 min
    await first.sender.close()
    # the notifier stops; a run's end at T0 is recorded late (the timer kept it while
    # the store was away), behind the cursor
    await add_failed_run(store, receiver.url, finished_at=T0)
    clock.advance(minutes=5)
    second = notifier(store, clock)
    await second.step()
    await second.sender.close()
    assert len(receiver.got) == 1


async def test_an_end_committed_well_after_the_time_it_records_is_found_by_the_next_step(
        store, receiver):
    # the timer stamps an end when it sees it and commits it after the rest of its follow
    # round; under load (CI) that was more than 10 s later. Not only the sweep finds it.
    clock = Clock(T0 + timedelta(seconds=5))
    running = notifier(store, clock)
    await running.step()  # the first step after a start is a sweep; the next ones are not
    clock.advance(seconds=40)
    await running.step()  # cursor at T0 + 45 s
    await add_failed_run(store, receiver.url, finished_at=T0 + timedelta(seconds=1))
    clock.advance(seconds=2)
    await running.step()
    await running.step()
    await running.sender.close()
    assert len(receiver.got) == 1


def test_address_guard_checks_every_resolved_address() -> None:
    async def resolver(addresses):  # type: ignore[no-untyped-def]
        async def resolve(host: str, port: int) -> list[str]:
            return addresses
        return resolve

    async def check(url, addresses, allow=()):  # type: ignore[no-untyped-def]
        await guard.check(url, list(allow), await resolver(addresses))

    asyncio.run(check("https://hooks.example/x", ["93.184.216.34"]))
    for addresses, kind in ((["93.184.216.34", "10.1.2.3"], "private"),
                            (["169.254.169.254"], "link-local"),
                            (["::1"], "loopback"), (["::ffff:192.168.0.1"], "private"),
                            (["0.0.0.0"], "unspecified")):
        with pytest.raises(guard.Refused, match=kind):
            asyncio.run(check("https://hooks.example/x", addresses))
    asyncio.run(check("http://10.1.2.3:8080/x", ["10.1.2.3"], allow=["http://10.1.2.3"]))
    with pytest.raises(guard.Refused):  # the prefix ends at the host
        asyncio.run(check("http://10.1.2.3.nip.io/x", ["10.1.2.3"], allow=["http://10.1.2.3"]))
    with pytest.raises(guard.Refused, match="http"):
        asyncio.run(check("ftp://hooks.example/x", ["93.184.216.34"]))


def test_literal_refusal_for_the_api() -> None:
    assert guard.literal_refusal("https://hooks.example/x", []) is None
    assert "loopback" in (guard.literal_refusal("http://localhost:8000/x", []) or "")
    assert "private" in (guard.literal_refusal("http://192.168.1.1/x", []) or "")
    assert guard.literal_refusal("http://127.0.0.1:9000/x", LOCAL) is None
    assert "user or password" in (guard.literal_refusal("https://u:p@hooks.example/", []) or "")


def test_backoff_is_pure_and_bounded() -> None:
    assert retry.next_attempt(T0, 1, T0) == T0 + timedelta(seconds=5)
    assert retry.next_attempt(T0, 2, T0 + timedelta(seconds=5)) == T0 + timedelta(seconds=15)
    assert retry.next_attempt(T0, 9, T0 + timedelta(minutes=9)) is None
