"""A user's default notification (issue 12): the store (SQLite and PostgreSQL), which
schedules notify by it, its deliveries to a real local receiver, and its API."""

import http.server
import json
import threading
from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient

from kodosumi_timer.config import TimerSettings
from kodosumi_timer.notify import signing
from kodosumi_timer.notify.events import encode
from kodosumi_timer.panel.app import create_api_app
from kodosumi_timer.panel.services import PanelServices
from kodosumi_timer.store import RunRow, open_store
from tests.unit.conftest import ALICE, BOB, OPERATOR, once, token
from tests.unit.factories import T0, Clock, FakeFlows, FakeRoles, schedule
from tests.unit.test_notify import SECRET, Receiver, notifier

OWN = "http://127.0.0.1:9/own"
WINDOW = (T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))


@pytest.fixture
async def receiver():  # type: ignore[no-untyped-def]
    async with Receiver() as r:
        yield r


async def add_run(store, row, status="error", minutes=0):  # type: ignore[no-untyped-def]
    run = RunRow(schedule_id=row.id, owner=row.owner, slot=T0 + timedelta(minutes=minutes),
                 attempt=1, trigger="timer",
                 status=status, fid="fid-1", reason="boom", finished_at=T0)
    async with store.session.begin() as s:
        s.add(run)
    return run


# ---- the store ---------------------------------------------------------------------


async def test_a_default_is_set_changed_and_removed_per_owner(store):
    assert await store.notify_default("owner-a") is None
    row = await store.set_notify_default("owner-a", "https://a.example/h", encode(["error"]),
                                         "s1", T0)
    assert (row.notify_url, row.notify_events, row.notify_secret) == \
        ("https://a.example/h", ",error,", "s1")
    # secret None keeps the secret; the other owner is untouched
    await store.set_notify_default("owner-b", "https://b.example/h", encode(["failed"]), "s2", T0)
    later = T0 + timedelta(minutes=5)
    row = await store.set_notify_default("owner-a", "https://a.example/new",
                                         encode(["error", "missed"]), None, later)
    assert row.notify_secret == "s1" and row.notify_url == "https://a.example/new"
    assert row.updated_at == later
    assert set(await store.notify_defaults(["owner-a", "owner-b", "owner-c"])) == \
        {"owner-a", "owner-b"}
    assert await store.remove_notify_default("owner-a") is True
    assert await store.remove_notify_default("owner-a") is False
    assert await store.notify_default("owner-a") is None
    assert (await store.notify_default("owner-b")).notify_secret == "s2"  # type: ignore[union-attr]


async def test_a_schedule_without_notify_notifies_by_its_owners_default(store):
    await store.set_notify_default("owner-a", "https://a.example/h",
                                   encode(["error", "finished"]), "s1", T0)
    plain = await store.add_schedule(schedule())
    own = await store.add_schedule(schedule(notify_url=OWN, notify_events=encode(["error"]),
                                            notify_secret="own"))
    other = await store.add_schedule(schedule(owner="owner-b"))  # owner-b has no default
    system = await store.add_schedule(schedule(owner="owner-a", system=True))
    by_default = await add_run(store, plain, "error")
    by_own = await add_run(store, own, "error")
    await add_run(store, own, "finished", minutes=1)  # the schedule's own events win: not notified
    await add_run(store, other, "error")
    await add_run(store, system, "error")  # system schedules: nothing new
    found = await store.ended_to_notify(*WINDOW)
    got = {(e.run.id, e.event, e.source) for e in found}
    assert got == {(by_default.id, "error", "default"), (by_own.id, "error", "schedule")}


async def test_the_defaults_events_decide_and_paused_is_one_of_them(store):
    from kodosumi_timer import reasons

    await store.set_notify_default("owner-a", "https://a.example/h", encode(["paused"]),
                                   "s1", T0)
    plain = await store.add_schedule(schedule())
    await add_run(store, plain, "error")  # not one of the default's events
    paused = await store.add_schedule(schedule(
        state="paused", next_run=None, updated=T0,
        note=reasons.PAUSED_BY_TIMER.format(why=reasons.OWNER_INACTIVE)))
    run = await add_run(store, paused, "failed")
    found = await store.ended_to_notify(*WINDOW)
    assert [(e.run.id, e.event, e.source) for e in found] == [(run.id, "paused", "default")]


# ---- deliveries --------------------------------------------------------------------


async def test_a_delivery_by_the_default_is_signed_with_the_defaults_secret(store, receiver):
    await store.set_notify_default("owner-a", receiver.url, encode(["error"]), SECRET, T0)
    row = await store.add_schedule(schedule(title="Nightly report"))
    run = await add_run(store, row)
    n = notifier(store, Clock(T0 + timedelta(seconds=1)))
    assert await n.step() is True
    await n.sender.close()
    assert len(receiver.got) == 1
    raw, headers = receiver.got[0]
    assert signing.verify(SECRET, raw, headers[signing.HEADER])
    body = json.loads(raw)
    assert body["notify_source"] == "default" and body["schedule_id"] == row.id
    assert body["status"] == "error" and body["fid"] == "fid-1"
    rows, _ = await store.notifications(row.id, [run.id])
    assert rows[0].source == "default" and rows[0].status == "delivered"
    from kodosumi_timer.panel.api import delivery_response

    assert delivery_response(rows[0]).source == "default"


async def test_a_schedules_own_notify_says_so_in_the_payload(store, receiver):
    await store.set_notify_default("owner-a", "https://elsewhere.example/h", encode(["error"]),
                                   "other", T0)
    row = await store.add_schedule(schedule(notify_url=receiver.url,
                                            notify_events=encode(["error"]),
                                            notify_secret=SECRET))
    await add_run(store, row)
    n = notifier(store, Clock(T0 + timedelta(seconds=1)))
    await n.step()
    await n.sender.close()
    raw, headers = receiver.got[0]
    assert signing.verify(SECRET, raw, headers[signing.HEADER])
    assert json.loads(raw)["notify_source"] == "schedule"


async def test_a_retry_uses_the_default_as_it_is_now_and_fails_once_it_is_removed(
        store, receiver):
    await store.set_notify_default("owner-a", receiver.url, encode(["error"]), SECRET, T0)
    row = await store.add_schedule(schedule())
    run = await add_run(store, row)
    receiver.script = [503]
    clock = Clock(T0 + timedelta(seconds=1))
    n = notifier(store, clock)
    await n.step()
    # rotated meanwhile: the retry is signed with the new secret
    await store.set_notify_default("owner-a", receiver.url, encode(["error"]), "rotated", T0)
    clock.now += timedelta(seconds=6)
    await n.step()
    assert len(receiver.got) == 2
    raw, headers = receiver.got[1]
    assert signing.verify("rotated", raw, headers[signing.HEADER])
    # a delivery pending when the default is removed fails, and says why
    row2 = await store.add_schedule(schedule())
    run2 = await add_run(store, row2)
    receiver.script = [503]
    clock.now += timedelta(seconds=1)
    await n.step()
    await store.remove_notify_default("owner-a")
    clock.now += timedelta(seconds=6)
    await n.step()
    await n.sender.close()
    rows, _ = await store.notifications(row2.id, [run2.id])
    assert rows[0].status == "failed"
    assert rows[0].last_error == "the default notification was removed"
    assert (await store.notifications(row.id, [run.id]))[0][0].status == "delivered"


async def test_the_address_guard_holds_for_the_default(store, receiver):
    await store.set_notify_default("owner-a", receiver.url, encode(["error"]), SECRET, T0)
    row = await store.add_schedule(schedule())
    run = await add_run(store, row)
    n = notifier(store, Clock(T0 + timedelta(seconds=1)), allow=[])
    await n.step()
    await n.sender.close()
    assert receiver.got == []
    rows, _ = await store.notifications(row.id, [run.id])
    assert rows[0].status == "failed" and "loopback" in (rows[0].last_error or "")


# ---- the API -----------------------------------------------------------------------


@pytest.fixture
async def api(tmp_path):  # type: ignore[no-untyped-def]
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    services = PanelServices(store=store, flows=FakeFlows(), wake=lambda: None,
                             clock=Clock(T0),
                             settings=TimerSettings(TIMER_NOTIFY_ALLOW="http://127.0.0.1"),
                             roles=FakeRoles(operators=(OPERATOR,)))
    async with AsyncTestClient(app=create_api_app(services)) as client:
        client.store = store  # type: ignore[attr-defined]
        yield client
    await store.close()


URL = "/schedule/notify-default"


async def test_put_get_rotate_delete_and_the_secret_shown_only_when_new(api):
    me = token(ALICE)
    r = await api.get(URL, headers=me)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await api.put(URL, headers=me, json={"url": "https://hooks.example/k"})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["events"] == ["error", "failed", "rejected", "unknown", "paused"]
    assert len(first["secret"]) == 64
    r = await api.put(URL, headers=me, json={"url": "https://hooks.example/k2",
                                             "events": ["missed", "error"]})
    assert r.json()["secret"] is None and r.json()["events"] == ["error", "missed"]
    got = (await api.get(URL, headers=me)).json()
    assert got["url"] == "https://hooks.example/k2" and got["secret"] is None
    stored = await api.store.notify_default(ALICE)  # type: ignore[attr-defined]
    assert stored.notify_secret == first["secret"]  # kept
    r = await api.post(URL + "/rotate", headers=me)
    assert r.status_code == 200 and r.json()["secret"] not in (None, first["secret"])
    assert (await api.get(URL, headers=token(BOB))).status_code == 404  # per user
    assert (await api.delete(URL, headers=me)).status_code == 204
    assert (await api.delete(URL, headers=me)).status_code == 404
    assert (await api.post(URL + "/rotate", headers=me)).status_code == 409
    assert (await api.post(URL + "/test", headers=me)).status_code == 409


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://x.example/"}, "url"),
    ({"url": "http://10.0.0.8/hook"}, "url"),
    ({"url": "http://localhost:8080/"}, "url"),
    ({}, "url"),
    ({"url": "https://x.example/", "events": ["error", "exploded"]}, "events"),
    ({"url": "https://x.example/", "events": []}, "events"),
    ({"url": "https://x.example/", "secret": "mine"}, "secret"),
])
async def test_bad_input_is_422_naming_the_field(api, body, field):
    r = await api.put(URL, headers=token(ALICE), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


async def test_the_route_is_not_read_as_a_schedule_id(api):
    me = token(ALICE)
    created = (await api.post("/schedule/", headers=me, json=once())).json()
    assert (await api.get(f"/schedule/{created['id']}", headers=me)).status_code == 200
    r = await api.get(URL, headers=me)
    assert r.status_code == 404 and "default notification" in r.json()["detail"]
    r = await api.patch(URL, headers=me, json={})
    assert r.status_code == 405


class ThreadReceiver:
    """A real HTTP server in a thread of its own: the test client holds the test's event
    loop while the app sends the test delivery."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, dict[str, str]]] = []
        self.script: list[int] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers["content-length"]))
                outer.got.append((raw, dict(self.headers)))
                self.send_response(outer.script.pop(0) if outer.script else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_send_test_delivers_one_signed_post_and_says_what_happened(api):
    receiver = ThreadReceiver()
    try:
        await _send_test(api, receiver)
    finally:
        receiver.close()


async def _send_test(api, receiver):  # type: ignore[no-untyped-def]
    me = token(ALICE)
    secret = (await api.put(URL, headers=me, json={"url": receiver.url})).json()["secret"]
    r = await api.post(URL + "/test", headers=me)
    assert r.status_code == 200 and r.json()["delivered"] is True, r.text
    raw, headers = receiver.got[0]
    assert signing.verify(secret, raw, headers[signing.HEADER])
    body = json.loads(raw)
    assert body["event"] == "test" and body["notify_source"] == "default"
    assert body["owner"] == ALICE
    receiver.script = [500]
    r = await api.post(URL + "/test", headers=me)
    assert r.json() == {"delivered": False, "url": receiver.url,
                        "detail": "not delivered: HTTP 500"}


async def test_a_browser_form_post_from_another_site_is_refused(api):
    r = await api.put(URL, headers={**token(ALICE)}, json={"url": "https://x.example/"})
    assert r.status_code == 200
    cookie_like = {"sec-fetch-site": "cross-site"}
    r = await api.delete(URL, headers=cookie_like)
    assert r.status_code in (401, 403)
